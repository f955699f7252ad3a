"""Fuzzing the readers with hypothesis: every malformed file ends in a DataFormatError naming it, or parses.

Each case starts from a valid file written by the kit's writers and damages it (truncation, byte flips,
insertions, trailing bytes, a rewritten header with random sizes, a re-compressed PNG stream). The contract
(mcjepa.data.formats): a reader returns an array or raises `DataFormatError` whose message contains the path;
any other exception fails the test. CI runs FUZZ_EXAMPLES cases per reader (derandomised, so deterministic);
`MCJEPA_FUZZ_EXAMPLES=3000 pytest -m fuzz tests/test_fuzz_readers.py --hypothesis-show-statistics` runs
thousands and prints how the cases ended (the `event`s below).
"""

import io
import os
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from mcjepa.data import formats as F
from mcjepa.data import manifests as M

FUZZ_EXAMPLES = int(os.environ.get("MCJEPA_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
pytestmark = pytest.mark.fuzz


# ------------------------------------------------------------------------------------------- helpers
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, bitdepth: int, colour: int, idat: bytes, extra: bytes = b"") -> bytes:
    """A PNG with a valid signature and CRCs around any IHDR values and any (compressed) IDAT payload."""
    ihdr = struct.pack(">IIBBBBB", width, height, bitdepth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + extra + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


@st.composite
def damaged(draw, valid: bytes) -> bytes:
    """Up to 4 random edits of `valid`: truncate, flip bytes, insert, delete, append trailing bytes."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "append"]))
        at = draw(st.integers(0, max(0, len(data))))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and data:
            at = min(at, len(data) - 1)
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        else:
            data += draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def _outcome(reader, path):
    """Run `reader` on `path`: 'parsed' or 'DataFormatError'; anything else propagates and fails the test."""
    try:
        reader(path)
    except F.DataFormatError as error:
        assert str(path) in str(error), f"error without the path: {error}"
        event("DataFormatError: " + _error_class(str(error).split(": ", 1)[1]))
        return "error"
    event("parsed")
    return "parsed"


def _error_class(message: str) -> str:
    """A short name for the class of a DataFormatError message (for hypothesis' statistics)."""
    if message.startswith("unreadable"):
        return message.split(" (")[0] + " (" + message.split(" (", 1)[-1].split(":")[0] + ")"
    for key in (
        "too short",
        "magic",
        "absurd",
        "MAX_PIXELS",
        "truncated",
        "trailing bytes",
        "malformed",
        "inflates beyond",
        "not ASCII",
        "scale",
        "16-bit",
        "channels",
        "mode",
        "not an 8-bit",
    ):
        if key in message:
            return key
    return message[:40]


def _valid_bytes(tmp_path, writer, name, *args) -> bytes:
    path = tmp_path / name
    writer(path, *args)
    return path.read_bytes()


def _write(tmp_path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


sides = st.integers(1, 6)
header_sides = st.one_of(st.integers(-3, 12), st.integers(2**15, 2**31 - 1), st.sampled_from([8000, 65536, 65537]))


# ------------------------------------------------------------------------------------------------ .flo
@FUZZ
@given(data=st.data(), h=sides, w=sides, header=st.tuples(header_sides, header_sides) | st.none())
def test_fuzz_flo(tmp_path, data, h, w, header):
    valid = _valid_bytes(tmp_path, F.write_flo, "v.flo", np.ones((h, w, 2), np.float32))
    if header is not None:
        valid = valid[:4] + struct.pack("<ii", *header) + valid[12:]
    _outcome(F.read_flo, _write(tmp_path, "x.flo", data.draw(damaged(valid))))


# ------------------------------------------------------------------------------------------------ .pfm
header_token = st.one_of(st.integers(-5, 10**9).map(str), st.sampled_from(["nan", "inf", "-0.0", "1e400", "x", ""]),
                         st.text(alphabet="0123456789 .-+eE\t", max_size=12))


@FUZZ
@given(data=st.data(), h=sides, w=sides, channels=st.sampled_from([1, 3]),
       header=st.tuples(header_token, header_token, header_token) | st.none())
def test_fuzz_pfm(tmp_path, data, h, w, channels, header):
    shape = (h, w) if channels == 1 else (h, w, 3)
    valid = _valid_bytes(tmp_path, F.write_pfm, "v.pfm", np.ones(shape, np.float32))
    if header is not None:
        magic, _, rest = valid.split(b"\n", 3)[0], None, valid.split(b"\n", 3)[3]
        valid = magic + f"\n{header[0]} {header[1]}\n{header[2]}\n".encode() + rest
    _outcome(F.read_pfm, _write(tmp_path, "x.pfm", data.draw(damaged(valid))))


# ------------------------------------------------------------------------------------------ KITTI PNG
@st.composite
def png_stream(draw, bitdepths=(1, 2, 4, 8, 16), colours=(0, 2, 3, 4, 6)):
    """A PNG with CRC-correct chunks around random IHDR values and a random (possibly huge) zlib stream."""
    width, height = draw(header_sides), draw(header_sides)
    raw = draw(st.one_of(st.binary(max_size=64), st.integers(0, 4 << 20).map(lambda n: bytes(n))))
    idat = draw(st.sampled_from([zlib.compress, lambda b: zlib.compress(b)[:-3], lambda b: b]))(raw)
    return _png(width % 2**32, height % 2**32, draw(st.sampled_from(bitdepths)), draw(st.sampled_from(colours)), idat)


@FUZZ
@given(data=st.data(), h=sides, w=sides, crafted=st.booleans())
def test_fuzz_kitti_flow_png(tmp_path, data, h, w, crafted):
    if crafted:
        content = data.draw(png_stream())
    else:
        flow = np.full((h, w, 2), 1.5)
        content = data.draw(damaged(_valid_bytes(tmp_path, F.write_kitti_flow_png, "v.png", flow)))
    _outcome(F.read_kitti_flow_png, _write(tmp_path, "x.png", content))


# ------------------------------------------------------------------------------------- palette / label
@FUZZ
@given(data=st.data(), h=sides, w=sides, crafted=st.booleans(), label=st.booleans())
def test_fuzz_palette_and_label_png(tmp_path, data, h, w, crafted, label):
    if crafted:
        content = data.draw(png_stream(bitdepths=(1, 8, 16), colours=(0, 3)))
    else:
        labels = np.arange(h * w).reshape(h, w) % 7
        content = data.draw(damaged(_valid_bytes(tmp_path, F.write_palette_png, "v.png", labels)))
    _outcome(F.read_label_png if label else F.read_palette_png, _write(tmp_path, "x.png", content))


# ---------------------------------------------------------------------------------------------- images
@FUZZ
@given(data=st.data(), h=sides, w=sides, suffix=st.sampled_from([".png", ".jpg", ".ppm", ".bmp"]),
       crafted=st.booleans())
def test_fuzz_image(tmp_path, data, h, w, suffix, crafted):
    if crafted and suffix == ".png":
        content = data.draw(png_stream(bitdepths=(8,), colours=(0, 2, 6)))
    elif crafted and suffix == ".ppm":
        content = f"P6\n{data.draw(header_sides)} {data.draw(header_sides)}\n255\n".encode() + bytes(12)
    else:
        image = np.full((h, w, 3), 100, np.uint8)
        content = data.draw(damaged(_valid_bytes(tmp_path, F.write_image, "v" + suffix, image)))
    _outcome(F.read_image, _write(tmp_path, "x" + suffix, content))


# -------------------------------------------------------------------------------- manifests / data verify
yaml_leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=True),
                      st.text(max_size=12), st.sampled_from(["../*", "/etc/*", "**/*.png", "", "a/../../b", "*"]))
yaml_value = st.recursive(yaml_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.sampled_from(["glob", "count", "reader", "path", "lines", "optional",
                                                             "x"]), inner, max_size=4), max_leaves=12)
manifest_keys = ["folders", "split_files", "patterns", "checksums", "kind", "module", "provides", "default_root",
                 "title", "url"]


@st.composite
def manifest_text(draw) -> bytes:
    """A manifest: random values under the real keys, or damaged YAML text, or random bytes."""
    kind = draw(st.sampled_from(["structured"] * 2 + ["plausible"] * 2 + ["damaged"] * 3 + ["bytes", "deep"]))
    if kind == "plausible":  # well-typed patterns with hostile globs: verified (or rejected for '..' / '/')
        globs = st.sampled_from(["d/*.png", "**/*.png", "*", "../*", "/etc/*", "d/[", "**", "d/*.png/x", "*/../*"])
        patterns = st.lists(st.fixed_dictionaries({"glob": globs, "count": st.none() | st.integers(0, 3),
                                                   "reader": st.sampled_from(sorted(M.READERS))}), max_size=3)
        return yaml.safe_dump({"name": "m", "patterns": draw(patterns)}).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "deep":
        return b"name: m\npatterns: " + b"[" * draw(st.integers(10, 1200))
    document = {"name": "m"} | draw(st.dictionaries(st.sampled_from(manifest_keys), yaml_value, max_size=5))
    text = yaml.safe_dump(document).encode()
    return draw(damaged(text)) if kind == "damaged" else text


@FUZZ
@given(content=manifest_text())
def test_fuzz_manifest_and_data_verify_cli(tmp_path, content, capsys):
    manifests, root = tmp_path / "manifests", tmp_path / "root" / "inner"
    (root / "d").mkdir(parents=True, exist_ok=True)
    (root / "d" / "a.png").write_bytes(b"not a png")
    (tmp_path / "root" / "outside.png").write_bytes(b"outside")
    manifests.mkdir(exist_ok=True)
    path = _write(manifests, "m.yaml", content)
    try:
        report = M.verify_dataset("m", root, manifests, counts="min")
    except F.DataFormatError as error:
        assert str(path) in str(error)
        event("DataFormatError: manifest")
    else:
        assert all("outside.png" not in problem for problem in report.problems)  # no glob leaves ROOT
        event("verified: ok" if report.ok else "verified: problems reported")
    status = M.main(["verify", "m", str(root), "--manifests", str(manifests), "--counts", "min"])
    assert status in (0, 1, 2)
    assert M.main(["list", "--manifests", str(manifests)]) in (0, 1)
    out = capsys.readouterr()
    assert status != 2 or str(path) in out.err
    assert "Traceback" not in out.err


# ------------------------------------------------------------------------- declared sizes, bombs, rules
def _peak_mib(function, *args) -> float:
    tracemalloc.start()
    try:
        function(*args)
    except F.DataFormatError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


@pytest.mark.parametrize("reader", [F.read_kitti_flow_png, F.read_label_png, F.read_palette_png, F.read_image])
def test_lying_png_header_is_rejected_before_allocating(tmp_path, reader):
    path = _write(tmp_path, "big.png", _png(20000, 20000, 16 if reader is F.read_kitti_flow_png else 8,
                                            2 if reader in (F.read_kitti_flow_png, F.read_image) else 0,
                                            zlib.compress(bytes(1000))))
    with pytest.raises(F.DataFormatError, match="exceeds the limit MAX_PIXELS=") as info:
        reader(path)
    assert str(path) in str(info.value)
    assert _peak_mib(reader, path) < 8


def test_zlib_bomb_is_rejected_after_reading_only_the_declared_size(tmp_path):
    # 64 MiB of zeros compress to ~64 KB; the header says 4x4 (4 * (1 + 4 * 6) = 100 bytes of scanlines)
    bomb = zlib.compress(bytes(64 << 20), 9)
    path = _write(tmp_path, "bomb.png", _png(4, 4, 16, 2, bomb))
    with pytest.raises(F.DataFormatError, match="inflates beyond the 100 bytes") as info:
        F.read_kitti_flow_png(path)
    assert str(path) in str(info.value)
    assert _peak_mib(F.read_kitti_flow_png, path) < 8


def test_one_rule_for_trailing_bytes_and_extra_header_tokens(tmp_path):
    flo = _valid_bytes(tmp_path, F.write_flo, "a.flo", np.zeros((2, 3, 2), np.float32))
    pfm = _valid_bytes(tmp_path, F.write_pfm, "a.pfm", np.zeros((2, 3), np.float32))
    for name, content, message in [("t.flo", flo + b"\0", "trailing bytes"), ("t.pfm", pfm + b"\0", "trailing bytes"),
                                   ("s.flo", flo[:-1], "truncated"), ("s.pfm", pfm[:-1], "truncated"),
                                   ("x.pfm", pfm.replace(b"3 2\n", b"3 2 7\n", 1), "malformed PFM header"),
                                   ("y.pfm", pfm.replace(b"-1.0\n", b"-1.0 2\n", 1), "malformed PFM header"),
                                   ("n.pfm", pfm.replace(b"-1.0\n", b"nan\n", 1), "finite and non-zero")]:
        path = _write(tmp_path, name, content)
        reader = F.read_flo if name.endswith(".flo") else F.read_pfm
        with pytest.raises(F.DataFormatError, match=message) as info:
            reader(path)
        assert str(path) in str(info.value)


def test_label_png_keeps_the_files_dtype(tmp_path):
    labels = np.array([[0, 1], [254, 255]])
    F.write_label_png(tmp_path / "l.png", labels)
    back = F.read_label_png(tmp_path / "l.png")
    assert back.dtype == np.uint8 and back.tolist() == labels.tolist()
    Image.fromarray(np.array([[0, 65535]], np.uint16)).save(tmp_path / "w.png")
    wide = F.read_label_png(tmp_path / "w.png")
    assert wide.dtype in (np.uint16, np.int32) and wide.tolist() == [[0, 65535]]


def test_manifest_paths_cannot_leave_root(tmp_path):
    for glob in ["../*", "/etc/*", "a/../../b/*"]:
        (tmp_path / "m.yaml").write_text(yaml.safe_dump({"name": "m", "patterns": [{"glob": glob, "count": 1}]}))
        with pytest.raises(F.DataFormatError, match="must not contain '..'") as info:
            M.load_manifest("m", tmp_path)
        assert str(tmp_path / "m.yaml") in str(info.value)


def test_data_list_reports_a_malformed_manifest_and_lists_the_rest(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_bytes(b"name: bad\npatterns: [\n")
    (tmp_path / "good.yaml").write_text(yaml.safe_dump({"name": "good", "title": "Good one"}))
    assert M.main(["list", "--manifests", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert "Good one" in out.out and str(tmp_path / "bad.yaml") in out.err and "YAML" in out.err


def test_png_raw_size_matches_pypng_for_interlaced_images():
    png = pytest.importorskip("png")
    for width, height in [(1, 1), (3, 5), (9, 8), (17, 2)]:
        buffer = io.BytesIO()
        png.Writer(width, height, greyscale=False, bitdepth=16, interlace=True).write(
            buffer, np.zeros((height, width * 3), np.uint16))
        reader = png.Reader(bytes=buffer.getvalue())
        reader.preamble()
        idat = b"".join(data for kind, data in reader.chunks() if kind == b"IDAT")
        assert F._png_raw_size(width, height, 16, 3, 1) == len(zlib.decompress(idat))


@pytest.mark.parametrize("pixels", [F.MAX_PIXELS + 1, Image.MAX_IMAGE_PIXELS + 1, 2 * Image.MAX_IMAGE_PIXELS + 1])
def test_declared_sizes_around_every_limit_are_one_error(tmp_path, pixels):
    # found by the long fuzz run: between PIL's warning and error limits PIL warns (an error under our filter)
    width = 65536  # MAX_SIDE: the height makes the area just exceed `pixels`'s limit
    path = _write(tmp_path, "big.ppm", f"P6\n{width} {pixels // width + 1}\n255\n".encode() + bytes(6))
    with pytest.raises(F.DataFormatError, match="MAX_PIXELS") as info:
        F.read_image(path)
    assert str(path) in str(info.value)
