"""File formats of the optical-flow and segmentation datasets: read/write, strict, with clear errors.

- `.flo` (Middlebury): float32 magic 202021.25 (bytes b'PIEH'), int32 W, int32 H, then H*W*2 float32
  row-major interleaved (u, v), little-endian.  Returns (H, W, 2) float32.
- `.pfm` (FlyingThings3D): text header 'PF' (3 channels) or 'Pf' (1 channel), "W H", scale (negative =
  little-endian), then float32 rows stored **bottom-up**.  Returns (H, W, 3) or (H, W) top-down.
- KITTI flow PNG (KITTI 2012/2015, HD1K): 16-bit, 3 channels, R = u, G = v, B = valid,
  u = (R - 2**15) / 64.  Read/written with `pypng` because Pillow silently truncates 16-bit RGB PNGs to
  8 bits (measured with Pillow 13: a 48-bit PNG opens as mode 'RGB' uint8 holding the high bytes) and
  OpenCV is not a dependency.  pypng is pure Python: ~0.7 s to read a 375x1242 KITTI map on this machine.
- Palette (indexed, mode 'P') PNGs: DAVIS / Pascal VOC labels, default palette = the PASCAL VOC colormap.
- `read_image`: any 8-bit RGB/L/P/RGBA png, jpg, ppm -> (H, W, 3) uint8 RGB.

Error contract of every reader: FileNotFoundError for a missing file, and `DataFormatError` (a ValueError)
whose message starts with the file's path and says what is wrong for every malformed input: bad magic, bad
header tokens, truncated or trailing bytes (one rule for .flo and .pfm: the payload must be exactly the size the
header declares), corrupt compressed streams, undecodable images. Nothing is allocated from a header before
its size is checked: sides must lie in [1, MAX_SIDE] and width * height must not exceed MAX_PIXELS, and a
PNG's zlib stream is inflated with a cap of the size its header implies (a zlib bomb is rejected after
reading at most that many bytes).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from mcjepa.utils import atomic_write

FLO_MAGIC = 202021.25
FLO_MAGIC_BYTES = b"PIEH"
MAX_SIDE = 1 << 16  # larger sides are treated as a corrupt header
MAX_PIXELS = 1 << 26  # 67 M pixels (e.g. 8192 x 8192): the largest image any reader decodes
KITTI_OFFSET = 2.0**15
KITTI_SCALE = 64.0
PFM_HEADER_LINE = 256  # bytes: a longer PFM header line is corrupt


class DataFormatError(ValueError):
    """A malformed data file: the message starts with the file's path and says what is wrong."""


def _require_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


def _check_side(path: Path, width: int, height: int) -> None:
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise DataFormatError(f"{path}: absurd image size width={width} height={height} (corrupt header?)")
    if width * height > MAX_PIXELS:
        raise DataFormatError(f"{path}: {width}x{height} = {width * height} pixels exceeds the limit "
                              f"MAX_PIXELS={MAX_PIXELS} (corrupt header or decompression bomb?)")


@contextlib.contextmanager
def _reading(path: Path, what: str):
    """Turn any decoder failure on hostile content into a DataFormatError naming `path`."""
    try:
        yield
    except DataFormatError:
        raise
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (ValueError, OSError, EOFError, SyntaxError, IndexError, KeyError, TypeError, AttributeError,
            OverflowError, struct.error, zlib.error, Image.DecompressionBombError) as error:
        kind = type(error).__name__ if type(error).__module__ == "builtins" else \
            f"{type(error).__module__.split('.')[0]}.{type(error).__name__}"
        raise DataFormatError(f"{path}: unreadable {what} ({kind}: {error})") from error


# ---------------------------------------------------------------------------------------------- .flo
def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury .flo file -> (H, W, 2) float32 (u, v) in px.

    Raises FileNotFoundError, or DataFormatError for a wrong magic, an absurd size, or a payload that is not
    exactly 8 * W * H bytes (truncated or trailing bytes).
    """
    path = _require_file(path)
    size = path.stat().st_size
    if size > 12 + 8 * MAX_PIXELS:
        raise DataFormatError(f"{path}: .flo file of {size} bytes exceeds the limit for MAX_PIXELS={MAX_PIXELS}")
    data = path.read_bytes()
    if len(data) < 12:
        raise DataFormatError(f"{path}: .flo file too short ({len(data)} bytes) for its 12-byte header")
    if data[:4] != FLO_MAGIC_BYTES:
        magic = np.frombuffer(data[:4], "<f4")[0]
        raise DataFormatError(
            f"{path}: wrong .flo magic {magic!r} (bytes {data[:4]!r}), expected {FLO_MAGIC} (b'PIEH')"
        )
    width, height = (int(v) for v in np.frombuffer(data[4:12], "<i4"))
    _check_side(path, width, height)
    expected = 12 + 8 * width * height
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "trailing bytes"
        raise DataFormatError(f"{path}: .flo size {len(data)} bytes != {expected} for {width}x{height} ({what})")
    flow = np.frombuffer(data[12:], "<f4").reshape(height, width, 2)
    return flow.astype(np.float32, copy=True)


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write (H, W, 2) flow as a Middlebury .flo file (atomic)."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"{path}: flow must be (H, W, 2), got {flow.shape}")
    height, width = flow.shape[:2]
    with atomic_write(path, "wb") as handle:
        handle.write(FLO_MAGIC_BYTES)
        handle.write(np.array([width, height], "<i4").tobytes())
        handle.write(np.ascontiguousarray(flow, "<f4").tobytes())


# ---------------------------------------------------------------------------------------------- .pfm
def _read_header_line(handle, path: Path) -> str:
    line = handle.readline(PFM_HEADER_LINE)
    if not line.endswith(b"\n"):
        raise DataFormatError(f"{path}: PFM header truncated or a header line longer than {PFM_HEADER_LINE} bytes")
    try:
        return line.decode("ascii").strip()
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: PFM header is not ASCII") from error


def _pfm_header(handle, path: Path) -> tuple[int, int, int, str]:
    """(width, height, channels, numpy dtype) from the three header lines, each with exactly its tokens."""
    magic = _read_header_line(handle, path)
    if magic not in ("PF", "Pf"):
        raise DataFormatError(f"{path}: wrong PFM magic {magic[:8]!r}, expected 'PF' or 'Pf'")
    dims = _read_header_line(handle, path).split()
    scale_tokens = _read_header_line(handle, path).split()
    try:
        if len(dims) != 2 or len(scale_tokens) != 1:
            raise ValueError("expected 'W H' and one scale")
        width, height = int(dims[0]), int(dims[1])
        scale = float(scale_tokens[0])
    except ValueError as error:
        raise DataFormatError(f"{path}: malformed PFM header (size line {dims[:3]}, scale line "
                              f"{scale_tokens[:2]}): expected 'W H' then one number") from error
    _check_side(path, width, height)
    if scale == 0 or not math.isfinite(scale):
        raise DataFormatError(f"{path}: PFM scale must be finite and non-zero (its sign gives the endianness), "
                              f"got {scale}")
    return width, height, 3 if magic == "PF" else 1, "<f4" if scale < 0 else ">f4"


def read_pfm(path: str | os.PathLike) -> np.ndarray:
    """Read a PFM file -> (H, W, 3) for 'PF' or (H, W) for 'Pf', float32, rows top-down.

    Raises FileNotFoundError, or DataFormatError for a wrong magic, extra or missing header tokens, an absurd
    size, a zero/non-finite scale, or a payload that is not exactly 4 * W * H * channels bytes.
    """
    path = _require_file(path)
    with open(path, "rb") as handle:
        width, height, channels, dtype = _pfm_header(handle, path)
        count = width * height * channels
        payload = handle.read(4 * count + 1)
    if len(payload) != 4 * count:
        what = "truncated" if len(payload) < 4 * count else "trailing bytes"
        raise DataFormatError(f"{path}: PFM data has {'more than ' * (len(payload) > 4 * count)}{len(payload)} "
                              f"bytes, needs exactly {4 * count} for {width}x{height}x{channels} ({what})")
    data = np.frombuffer(payload, dtype).reshape(height, width, channels)
    data = np.flipud(data).astype(np.float32)  # stored bottom-up
    return data[..., 0].copy() if channels == 1 else np.ascontiguousarray(data)


def write_pfm(path: str | os.PathLike, array: np.ndarray, scale: float = 1.0) -> None:
    """Write (H, W, 3) -> 'PF' or (H, W) -> 'Pf', little-endian (negative scale), bottom-up rows (atomic)."""
    array = np.asarray(array, np.float32)
    if array.ndim == 2:
        magic, channels = b"Pf", 1
    elif array.ndim == 3 and array.shape[2] == 3:
        magic, channels = b"PF", 3
    else:
        raise ValueError(f"{path}: PFM needs (H, W) or (H, W, 3), got {array.shape}")
    height, width = array.shape[:2]
    body = np.ascontiguousarray(np.flipud(array.reshape(height, width, channels)), "<f4")
    with atomic_write(path, "wb") as handle:
        handle.write(magic + b"\n" + f"{width} {height}\n{-abs(scale)}\n".encode("ascii"))
        handle.write(body.tobytes())


# -------------------------------------------------------------------------------------- KITTI flow PNG
def _png_module():
    try:
        import png  # pypng
    except ImportError as error:  # pragma: no cover - dependency documented in the report
        raise ImportError("KITTI 16-bit PNGs need pypng: pip install pypng") from error
    return png


def _png_raw_size(width: int, height: int, bitdepth: int, planes: int, interlace: int) -> int:
    """Bytes of the decompressed PNG scanlines (filter byte + packed samples per row, per Adam7 pass)."""
    if not interlace:
        return height * (1 + (width * planes * bitdepth + 7) // 8)
    total = 0
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)):
        pass_w, pass_h = max(0, (width - x0 + dx - 1) // dx), max(0, (height - y0 + dy - 1) // dy)
        if pass_w and pass_h:
            total += pass_h * (1 + (pass_w * planes * bitdepth + 7) // 8)
    return total


def _check_png_stream(path: Path, png) -> None:
    """Check the header's size, then inflate the IDAT stream with a cap of the size that header implies."""
    reader = png.Reader(filename=str(path))
    reader.preamble()
    _check_side(path, reader.width, reader.height)
    expected = _png_raw_size(reader.width, reader.height, reader.bitdepth, reader.planes, reader.interlace)
    inflater, produced = zlib.decompressobj(), 0
    while True:
        kind, data = reader.chunk()
        if kind == b"IEND":
            break
        if kind != b"IDAT":
            continue
        produced += len(inflater.decompress(data, expected - produced + 1))
        if produced > expected or inflater.unconsumed_tail:
            raise DataFormatError(f"{path}: PNG image data inflates beyond the {expected} bytes its "
                                  f"{reader.width}x{reader.height} header implies (zlib bomb or corrupt)")
    if produced < expected:
        raise DataFormatError(f"{path}: PNG image data is truncated ({produced} of {expected} bytes)")


def read_png16(path: str | os.PathLike) -> np.ndarray:
    """Read a 16-bit PNG losslessly -> (H, W, planes) uint16 (pypng, all PNG filters).

    Raises FileNotFoundError, or DataFormatError for a non-16-bit, oversized, corrupt or zlib-bomb PNG.
    """
    path = _require_file(path)
    png = _png_module()
    with _reading(path, "16-bit PNG"):
        try:
            _check_png_stream(path, png)
            width, height, rows, info = png.Reader(filename=str(path)).asDirect()
            if info["bitdepth"] != 16:
                raise DataFormatError(f"{path}: expected a 16-bit PNG, got bit depth {info['bitdepth']}")
            planes = info["planes"]
            array = np.vstack([np.asarray(row, np.uint16) for row in rows])
            return array.reshape(height, width, planes)
        except png.Error as error:
            raise DataFormatError(f"{path}: unreadable PNG ({error})") from error


def read_kitti_flow_png(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a KITTI flow PNG -> (flow (H, W, 2) float32, valid (H, W) bool).

    flow = (R|G - 2**15) / 64, valid = B > 0; flow is set to 0 where not valid (the raw value is -512).
    """
    raw = read_png16(path)
    if raw.shape[2] != 3:
        raise DataFormatError(f"{path}: KITTI flow PNG must have 3 channels (R=u, G=v, B=valid), got {raw.shape[2]}")
    valid = raw[..., 2] > 0
    flow = (raw[..., :2].astype(np.float32) - KITTI_OFFSET) / KITTI_SCALE
    flow[~valid] = 0.0
    return flow, valid


def write_kitti_flow_png(path: str | os.PathLike, flow: np.ndarray, valid: np.ndarray | None = None) -> int:
    """Write (H, W, 2) flow in px + (H, W) valid as a KITTI 16-bit PNG (atomic). Invalid pixels are all-zero.

    Values are quantised to 1/64 px; like the KITTI devkit, `u * 64 + 2**15` is clamped into [0, 65535], so
    flow beyond [-512, 511.98] px is saturated rather than aborting a submission (a warning gives the count;
    non-finite flow at a valid pixel is clamped too: NaN -> -512 px, +-Inf -> the range's ends).
    Returns the number of clamped values. Raises ValueError for wrong shapes.
    """
    flow = np.asarray(flow, np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"{path}: flow must be (H, W, 2), got {flow.shape}")
    valid = np.ones(flow.shape[:2], bool) if valid is None else np.asarray(valid, bool)
    if valid.shape != flow.shape[:2]:
        raise ValueError(f"{path}: valid {valid.shape} does not match flow {flow.shape[:2]}")
    encoded = np.nan_to_num(np.rint(flow * KITTI_SCALE + KITTI_OFFSET), nan=0.0, posinf=65535.0, neginf=0.0)
    outside = ((encoded < 0) | (encoded > 65535) | ~np.isfinite(flow)) & valid[..., None]
    clamped = int(outside.sum())
    if clamped:
        warnings.warn(f"{path}: {clamped} flow values outside the KITTI PNG range [-512, 511.98] px (or "
                      f"non-finite) were clamped, as the KITTI devkit does", stacklevel=2)
    encoded = np.clip(encoded, 0, 65535)
    raw = np.zeros(flow.shape[:2] + (3,), np.uint16)
    raw[..., :2] = np.where(valid[..., None], encoded, 0).astype(np.uint16)
    raw[..., 2] = valid
    png = _png_module()
    height, width = valid.shape
    buffer = io.BytesIO()
    png.Writer(width, height, greyscale=False, bitdepth=16).write(buffer, raw.reshape(height, width * 3))
    with atomic_write(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return clamped


# ------------------------------------------------------------------------------------------ palette PNG
def voc_palette(num_colors: int = 256) -> np.ndarray:
    """The PASCAL VOC / DAVIS colormap (num_colors, 3) uint8: bits of the index spread over R, G, B."""
    index = np.arange(num_colors)
    palette = np.zeros((num_colors, 3), np.int64)
    for shift in range(8):  # 8 bit planes, vectorised over indices
        for channel in range(3):
            bit = (index >> (3 * shift + channel)) & 1
            palette[:, channel] |= bit << (7 - shift)
    return palette.astype(np.uint8)


def _open_image(path: Path) -> Image.Image:
    """Open with PIL, check the declared size against MAX_PIXELS, then decode; errors name `path`."""
    with _reading(path, "image"), warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:  # PIL's own header check
            raise DataFormatError(f"{path}: declared size exceeds the limit MAX_PIXELS={MAX_PIXELS} ({error})") \
                from error
        _check_side(path, *image.size)
        image.load()
        return image


def read_palette_png(path: str | os.PathLike, return_palette: bool = False):
    """Read an indexed ('P') PNG -> indices (H, W) uint8 [, palette (N, 3) uint8].

    Raises FileNotFoundError, or DataFormatError for a non-indexed, oversized or undecodable file.
    """
    path = _require_file(path)
    image = _open_image(path)
    if image.mode != "P":
        raise DataFormatError(f"{path}: expected an indexed (mode 'P') PNG, got mode {image.mode!r}")
    with _reading(path, "palette PNG"):
        indices = np.array(image, np.uint8)
        if not return_palette:
            return indices
        palette = np.array(image.getpalette() or [], np.uint8)
        return indices, palette[: len(palette) // 3 * 3].reshape(-1, 3)


def write_palette_png(path: str | os.PathLike, indices: np.ndarray, palette: np.ndarray | None = None) -> None:
    """Write (H, W) integer labels in [0, 255] as an indexed PNG with `palette` (default VOC/DAVIS; atomic)."""
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.min(initial=0) < 0 or indices.max(initial=0) > 255:
        raise ValueError(f"{path}: palette PNG needs (H, W) labels in [0, 255], got {indices.shape}")
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    image.putpalette((voc_palette() if palette is None else np.asarray(palette, np.uint8)).reshape(-1).tolist())
    _save_pil(path, image, "PNG")


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a label map PNG stored as indices ('P') or grey levels ('L', 'I;16', 'I') -> (H, W) integers.

    The dtype is the file's own (uint8 for 'P'/'L', uint16 for 'I;16', int32 for 'I'): no widening copy.
    Colour (RGB) label images are rejected: their colours would need a palette lookup.
    Raises FileNotFoundError, or DataFormatError for another mode, an oversized or undecodable file.
    """
    path = _require_file(path)
    image = _open_image(path)
    dtypes = {"P": np.uint8, "L": np.uint8, "I;16": np.uint16, "I": np.int32}
    if image.mode not in dtypes:
        raise DataFormatError(f"{path}: label PNG must be indexed or greyscale, got mode {image.mode!r}")
    with _reading(path, "label PNG"):
        return np.array(image, dtypes[image.mode])


def write_label_png(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Write (H, W) labels in [0, 255] as an 8-bit greyscale ('L') PNG (atomic)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
        raise ValueError(f"{path}: label PNG needs (H, W) labels in [0, 255], got {labels.shape}")
    _save_pil(path, Image.fromarray(labels.astype(np.uint8), mode="L"), "PNG")


# --------------------------------------------------------------------------------------------- images
_PIL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".ppm": "PPM", ".bmp": "BMP"}


def _save_pil(path: str | os.PathLike, image: Image.Image, pil_format: str, **options) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **options)
    with atomic_write(path, "wb") as handle:
        handle.write(buffer.getvalue())


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit image (png/jpg/ppm, RGB/L/P/RGBA) -> (H, W, 3) uint8 RGB.

    Raises FileNotFoundError, or DataFormatError for a 16-bit/float, oversized or undecodable file.
    """
    path = _require_file(path)
    image = _open_image(path)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        raise DataFormatError(f"{path}: {image.mode!r} is not an 8-bit colour image")
    with _reading(path, "image"):
        return np.array(image.convert("RGB"), np.uint8)


def write_image(path: str | os.PathLike, image: np.ndarray, quality: int = 95) -> None:
    """Write an (H, W, 3) uint8 image; format from the suffix (.png/.jpg/.jpeg/.ppm/.bmp; atomic)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _PIL_FORMATS:
        raise ValueError(f"{path}: unsupported image suffix {suffix!r}")
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{path}: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    options = {"quality": quality} if _PIL_FORMATS[suffix] == "JPEG" else {}
    _save_pil(path, Image.fromarray(image, "RGB"), _PIL_FORMATS[suffix], **options)


def read_flow_any(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read flow by suffix -> (flow (H, W, 2) float32, valid (H, W) bool).

    .flo / .pfm: valid = finite and |u|, |v| < 1000 (RAFT's rule; FlyingThings3D has a few huge values);
    .png: the KITTI encoding with its valid channel.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        return read_kitti_flow_png(path)
    if suffix == ".flo":
        flow = read_flo(path)
    elif suffix == ".pfm":
        data = read_pfm(path)
        if data.ndim != 3:
            raise DataFormatError(f"{path}: a flow PFM must have 3 channels ('PF'), got a 1-channel 'Pf'")
        flow = np.ascontiguousarray(data[..., :2])
    else:
        raise DataFormatError(f"{path}: unknown flow file suffix {suffix!r}")
    valid = np.isfinite(flow).all(-1) & (np.abs(flow) < 1000).all(-1)
    return np.where(valid[..., None], flow, 0).astype(np.float32), valid
