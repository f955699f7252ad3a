"""Dataset manifests (data_manifests/<name>.yaml) and `verify_dataset`, the checker behind
`python -m mcjepa data verify NAME [ROOT] [--manifests DIR] [--counts full|min] [--sample N]`.

A manifest describes the full official release, relative to the folder ROOT should point to (`root_hint`):
  folders:     [rel/dir, ...]                      must exist
  split_files: [{path, lines (null = unknown), optional}]
  patterns:    [{glob, count (null = unknown), reader, optional}]  files counted with Path.glob
  checksums:   {rel/path: sha256}                  empty for datasets we cannot hash (no copy here)
  kind:        files | generated (generated: `module` must import and define `provides`)
  default_root (optional; "{skimage_data}" expands to scikit-image's data folder), url, licence, citation, notes.

Count modes: `full` (default) compares each known count / line count exactly (unknown ones need >= 1 file);
`min` (alias `fixture`) only needs >= 1 file per non-optional pattern and existing split files - for partial
copies and the tiny fixture trees of the tests. In both modes up to `--sample` files per pattern (first and
last in sorted order, then evenly spaced) are parsed with the pattern's reader, and listed checksums are checked.
Exit status: 0 when `report.ok`, 1 otherwise, 2 for usage errors (unknown manifest, bad arguments, a
malformed manifest). Every malformed manifest (not YAML, not UTF-8, wrong types, unknown reader, a path or glob
that is absolute or climbs out of ROOT with '..') raises `formats.DataFormatError` naming the manifest file.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from mcjepa.data import formats
from mcjepa.data.formats import DataFormatError

MANIFESTS_DIR = Path(__file__).resolve().parents[2] / "data_manifests"
COUNT_MODES = {"full": "full", "min": "min", "fixture": "min"}


def _read_video(path: Path):
    import imageio.v2 as imageio

    with imageio.get_reader(path, format="FFMPEG") as reader:
        return reader.get_data(0)


def _read_npz(path: Path):
    with np.load(path) as data:
        return {key: data[key].shape for key in data.files}


def _read_text(path: Path):
    return path.read_text()


READERS = {
    "image": formats.read_image,
    "flo": formats.read_flo,
    "pfm": formats.read_pfm,
    "kitti_flow_png": formats.read_kitti_flow_png,
    "label_png": formats.read_label_png,
    "palette_png": formats.read_palette_png,
    "video": _read_video,
    "npz": _read_npz,
    "text": _read_text,
    "none": None,
}


@dataclass
class VerifyReport:
    """Outcome of `verify_dataset`: `ok` iff no problem; each problem string names a path."""

    name: str
    root: Path
    mode: str
    problems: list[str] = field(default_factory=list)
    counts: list[tuple[str, int | None, int]] = field(default_factory=list)  # (glob, expected, found)
    parsed: int = 0
    checksums_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [f"dataset {self.name} at {self.root} (counts: {self.mode})"]
        for pattern, expected, found in self.counts:
            lines.append(f"  {pattern}: found {found}, expected {'?' if expected is None else expected}")
        lines.append(f"  parsed {self.parsed} sample files, checked {self.checksums_checked} checksums")
        lines += [f"  PROBLEM: {problem}" for problem in self.problems]
        lines.append("OK" if self.ok else f"FAILED ({len(self.problems)} problems)")
        return "\n".join(lines)


def _inside_root(text, path: Path, what: str) -> str:
    """A relative path or glob that stays inside ROOT (no absolute path, no '..' component)."""
    if not isinstance(text, str) or not text.strip():
        raise DataFormatError(f"{path}: {what} must be a non-empty string, got {text!r}")
    if text.startswith(("/", "\\")) or Path(text).is_absolute() or ".." in Path(text).parts or "\0" in text:
        raise DataFormatError(f"{path}: {what} {text!r} must be relative to ROOT and must not contain '..'")
    return text


def _typed(value, types, path: Path, what: str):
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = "/".join("null" if t is type(None) else t.__name__ for t in types)
        raise DataFormatError(f"{path}: {what} must be {names}, got {value!r:.80}")
    return value


def _entries(manifest: dict, key: str, path: Path) -> list:
    return _typed(manifest.get(key) or [], (list,), path, key)


def _validate(manifest: dict, path: Path) -> None:
    """Check every field's type and every path the manifest names (module docstring's schema)."""
    for key in ("title", "url", "licence", "citation", "notes", "root_hint", "default_root", "module"):
        _typed(manifest.get(key, ""), (str, type(None)), path, key)
    if manifest.get("kind", "files") not in ("files", "generated"):
        raise DataFormatError(f"{path}: kind must be 'files' or 'generated', got {manifest.get('kind')!r:.80}")
    for attribute in _entries(manifest, "provides", path):
        _typed(attribute, (str,), path, "provides[]")
    for folder in _entries(manifest, "folders", path):
        _inside_root(folder, path, "folder")
    for entry in _entries(manifest, "split_files", path):
        _typed(entry, (dict,), path, "split_files[]")
        _inside_root(entry.get("path"), path, "split file path")
        _typed(entry.get("lines"), (int, type(None)), path, "split_files[].lines")
        _typed(entry.get("optional", False), (bool,), path, "split_files[].optional")
    for pattern in _entries(manifest, "patterns", path):
        _typed(pattern, (dict,), path, "patterns[]")
        _inside_root(pattern.get("glob"), path, "glob")
        _typed(pattern.get("count"), (int, type(None)), path, f"count of {pattern['glob']}")
        _typed(pattern.get("optional", False), (bool,), path, f"optional of {pattern['glob']}")
        if _typed(pattern.get("reader", "none"), (str,), path, "reader") not in READERS:
            raise DataFormatError(f"{path}: unknown reader {pattern.get('reader')!r} for {pattern.get('glob')} "
                                  f"(known: {sorted(READERS)})")
    checksums = _typed(manifest.get("checksums") or {}, (dict,), path, "checksums")
    for relative, digest in checksums.items():
        _inside_root(relative, path, "checksum path")
        _typed(digest, (str,), path, f"sha256 of {relative}")


def load_manifest(name: str, manifests_dir=None) -> dict:
    """Parse and check data_manifests/<name>.yaml -> dict.

    Raises FileNotFoundError for an unknown name, DataFormatError (a ValueError) naming the file for a
    malformed manifest.
    """
    path = Path(manifests_dir or MANIFESTS_DIR) / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise FileNotFoundError(f"{path}: no manifest named {name!r} (known: {known})")
    try:
        manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError, ValueError) as error:
        detail = str(error).replace("\n", " ")[:300]
        raise DataFormatError(f"{path}: not a valid UTF-8 YAML manifest ({type(error).__name__}: {detail})") from error
    if not isinstance(manifest, dict) or manifest.get("name") != name:
        raise DataFormatError(f"{path}: manifest must be a mapping whose 'name' is {name!r}")
    try:
        _validate(manifest, path)
    except RecursionError as error:
        raise DataFormatError(f"{path}: manifest nested too deeply") from error
    return manifest


def default_root(manifest: dict) -> Path | None:
    template = manifest.get("default_root")
    if not template:
        return None
    if "{skimage_data}" in template:
        import skimage.data

        template = template.replace("{skimage_data}", str(Path(skimage.data.__file__).parent))
    return Path(template)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sample_indices(count: int, how_many: int) -> list[int]:
    if count == 0 or how_many <= 0:
        return []
    return sorted(set(np.linspace(0, count - 1, min(count, how_many)).round().astype(int).tolist()))


def _verify_generated(manifest: dict, report: VerifyReport) -> None:
    module_name = manifest.get("module", "")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any import failure is a problem to report
        report.problems.append(f"{module_name}: cannot import the generator module ({error})")
        return
    for attribute in manifest.get("provides") or []:
        if not hasattr(module, attribute):
            report.problems.append(f"{module_name}.{attribute}: missing from the generator module")


def verify_dataset(name: str, root=None, manifests_dir=None, counts: str = "full", sample: int = 2) -> VerifyReport:
    """Check a copy of dataset `name` at `root` against its manifest (module docstring)."""
    if counts not in COUNT_MODES:
        raise ValueError(f"counts must be one of {sorted(COUNT_MODES)}, got {counts!r}")
    mode = COUNT_MODES[counts]
    manifest = load_manifest(name, manifests_dir)
    root = Path(root) if root is not None else default_root(manifest)
    report = VerifyReport(name, root, mode)
    if manifest.get("kind", "files") == "generated":
        _verify_generated(manifest, report)
        if root is None:
            return report
    if root is None:
        report.problems.append(f"{name}: no ROOT given and the manifest has no default_root")
        return report
    if not root.is_dir():
        report.problems.append(f"{root}: dataset root does not exist ({manifest.get('root_hint', '')})")
        return report
    for folder in manifest.get("folders") or []:
        if not (root / folder).is_dir():
            report.problems.append(f"{root / folder}: missing folder")
    for split_file in manifest.get("split_files") or []:
        path = root / split_file["path"]
        if not path.is_file():
            if not split_file.get("optional", False):
                report.problems.append(f"{path}: missing split file")
            continue
        try:
            lines = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        except (UnicodeDecodeError, OSError) as error:
            report.problems.append(f"{path}: unreadable split file ({type(error).__name__}: {error})")
            continue
        expected = split_file.get("lines")
        if mode == "full" and expected is not None and lines != expected:
            report.problems.append(f"{path}: {lines} lines, expected {expected}")
        if lines == 0:
            report.problems.append(f"{path}: empty split file")
    for pattern in manifest.get("patterns") or []:
        try:
            files = sorted(root.glob(pattern["glob"]))
        except (ValueError, NotImplementedError, OSError) as error:
            report.problems.append(f"{root / pattern['glob']}: glob failed ({type(error).__name__}: {error})")
            continue
        expected = pattern.get("count")
        report.counts.append((pattern["glob"], expected if mode == "full" else None, len(files)))
        optional = pattern.get("optional", False)
        if mode == "full" and expected is not None and len(files) != expected and not (optional and not files):
            report.problems.append(f"{root / pattern['glob']}: found {len(files)} files, expected {expected}")
        elif not files and not optional:
            report.problems.append(f"{root / pattern['glob']}: no file matches")
        reader = READERS[pattern.get("reader", "none")]
        if reader is None:
            continue
        for index in _sample_indices(len(files), sample):
            try:
                reader(files[index])
                report.parsed += 1
            except Exception as error:  # every reader failure is reported with its path
                message = str(error) if str(files[index]) in str(error) else f"{files[index]}: {error}"
                report.problems.append(f"unreadable: {message}")
    for relative, digest in (manifest.get("checksums") or {}).items():
        path = root / relative
        if not path.is_file():
            report.problems.append(f"{path}: missing (listed in checksums)")
            continue
        report.checksums_checked += 1
        if sha256_of(path) != digest:
            report.problems.append(f"{path}: sha256 mismatch (expected {digest[:12]}...)")
    return report


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _list(folder: Path) -> int:
    """Print one line per manifest; a malformed one is reported (named) and listing goes on. 1 if any was bad."""
    bad = 0
    for path in sorted(folder.glob("*.yaml")):
        try:
            manifest = load_manifest(path.stem, folder)
        except (OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            bad += 1
            continue
        print(f"{path.stem:16s} {manifest.get('title') or ''}  <- {manifest.get('url') or ''}")
    return 1 if bad else 0


def main(argv=None) -> int:
    """CLI: `data verify NAME [ROOT] [--manifests DIR] [--counts full|min|fixture] [--sample N]`, `data list`."""
    parser = argparse.ArgumentParser(prog="python -m mcjepa data", description="Dataset manifests and checks.")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="check a dataset copy against its manifest")
    verify.add_argument("name")
    verify.add_argument("root", nargs="?", default=None, help="dataset folder (default: the manifest's default_root)")
    verify.add_argument("--manifests", default=None, help=f"manifest folder (default {MANIFESTS_DIR})")
    verify.add_argument("--counts", default="full", choices=sorted(COUNT_MODES))
    verify.add_argument("--sample", type=_non_negative, default=2, help="files parsed per pattern (>= 0)")
    listing = commands.add_parser("list", help="list the known manifests")
    listing.add_argument("--manifests", default=None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.command == "list":
        return _list(Path(args.manifests or MANIFESTS_DIR))
    try:
        report = verify_dataset(args.name, args.root, args.manifests, args.counts, args.sample)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report)
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
