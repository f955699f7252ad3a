"""Small shared helpers: atomic file writes (with a sha256 beside the file on request), seeding, and the
repository's folders."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import torch


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary file next to `path`; rename it onto `path` only if the block succeeds.

    A crash or an exception inside the block leaves `path` untouched (old content or absent),
    never half-written. An OSError without a file name (ENOSPC from a write) is re-raised naming `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno and not err.filename:
            raise OSError(err.errno, f"cannot write ({err.strerror}); left unchanged", str(path)) from err
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(obj, path: str | os.PathLike, checksum: bool = False) -> None:
    """`torch.save` through `atomic_write`; with `checksum`, also the file's sha256 beside it
    (`checksum_path`, what `verify_checksum` checks on reading).

    The checksum file lists the old file's digest and the new one while the new file replaces the old, then
    the new one only: a crash at any point leaves a file whose digest is listed."""
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        hashing = _HashingWriter(handle)
        torch.save(obj, hashing)
        if checksum:
            digest = hashing.digest.hexdigest()
            _write_checksums(path, [*_recorded(path), digest])
    if checksum:
        _write_checksums(path, [digest])


class _HashingWriter:
    """A binary writer that hashes (sha256) what passes through it."""

    def __init__(self, handle):
        self.handle, self.digest = handle, hashlib.sha256()

    def write(self, data) -> int:
        self.digest.update(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def checksum_path(path: str | os.PathLike) -> Path:
    """Where the sha256 of `path` is kept: `<path>.sha256`, in `sha256sum` format (`sha256sum -c` checks it)."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _recorded(path: Path) -> list[str]:
    """The digests listed in `checksum_path(path)` ([] when there is none); ValueError if it is malformed."""
    sidecar = checksum_path(path)
    if not sidecar.is_file():
        return []
    digests = []
    for line in sidecar.read_text(encoding="utf-8", errors="replace").splitlines():
        digest = line.split(" ", 1)[0].strip().lower()
        if not _SHA256.fullmatch(digest):
            raise ValueError(f"{sidecar}: not a sha256 checksum file (line {line[:80]!r}); it was damaged: delete "
                             f"it to load {path.name} without verification")
        digests.append(digest)
    return digests


def _write_checksums(path: Path, digests: list[str]) -> None:
    with atomic_write(checksum_path(path), "w") as handle:
        handle.writelines(f"{digest}  {path.name}\n" for digest in dict.fromkeys(digests))


_SHA256 = re.compile(r"[0-9a-f]{64}")
_UNVERIFIED: set[str] = set()


def verify_checksum(path: str | os.PathLike, what: str = "file") -> bool:
    """Check `path` against the sha256 recorded beside it at save time (`checksum_path`).

    Returns True when it matches; False, with one warning per file and process, when no checksum was recorded
    (files written before checksums existed). Raises ValueError naming the file when its bytes differ from
    what was written (altered or corrupted since) or the checksum file is damaged."""
    path = Path(path)
    recorded = _recorded(path)
    if not recorded:
        if str(path) not in _UNVERIFIED:
            _UNVERIFIED.add(str(path))
            warnings.warn(f"{what} {path} has no checksum file ({checksum_path(path).name}; written before the "
                          f"kit recorded checksums?): loaded without verifying its bytes", stacklevel=3)
        return False
    actual = file_sha256(path)
    if actual not in recorded:
        raise ValueError(f"{what} {path} was altered, truncated or corrupted after it was written: its sha256 "
                         f"{actual[:16]}... "
                         f"differs from the one recorded at save time in {checksum_path(path).name} "
                         f"({recorded[-1][:16]}...); restore it or delete the run to retrain")
    return True


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def project_root() -> Path:
    """The repository root (the folder holding pyproject.toml above this package), else the working dir."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def resolve_dir(path: str | Path | None, default: str) -> Path:
    """`path` if given (relative paths are taken from the repository root), else root/default. Only resolves:
    nothing is created (`ensure_dir` creates)."""
    folder = Path(path) if path else project_root() / default
    return folder if folder.is_absolute() else project_root() / folder


def ensure_dir(path: str | Path | None, default: str) -> Path:
    """`resolve_dir`, created with its parents if missing. Raises OSError when it cannot be created."""
    folder = resolve_dir(path, default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
