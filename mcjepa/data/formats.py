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

Every reader raises FileNotFoundError for a missing file and ValueError naming the file for bad content.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mcjepa.utils import atomic_write

FLO_MAGIC = 202021.25
FLO_MAGIC_BYTES = b"PIEH"
MAX_SIDE = 1 << 16  # larger sides are treated as a corrupt header
KITTI_OFFSET = 2.0**15
KITTI_SCALE = 64.0


def _require_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


def _check_side(path: Path, width: int, height: int) -> None:
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise ValueError(f"{path}: absurd image size width={width} height={height} (corrupt header?)")


# ---------------------------------------------------------------------------------------------- .flo
def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury .flo file -> (H, W, 2) float32 (u, v)."""
    path = _require_file(path)
    data = path.read_bytes()
    if len(data) < 12:
        raise ValueError(f"{path}: .flo file too short ({len(data)} bytes) for its 12-byte header")
    if data[:4] != FLO_MAGIC_BYTES:
        magic = np.frombuffer(data[:4], "<f4")[0]
        raise ValueError(f"{path}: wrong .flo magic {magic!r} (bytes {data[:4]!r}), expected {FLO_MAGIC} (b'PIEH')")
    width, height = (int(v) for v in np.frombuffer(data[4:12], "<i4"))
    _check_side(path, width, height)
    expected = 12 + 8 * width * height
    if len(data) != expected:
        raise ValueError(f"{path}: .flo size {len(data)} bytes != {expected} for {width}x{height} (truncated?)")
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
    line = handle.readline()
    if not line:
        raise ValueError(f"{path}: PFM header truncated")
    try:
        return line.decode("ascii").strip()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: PFM header is not ASCII") from error


def read_pfm(path: str | os.PathLike) -> np.ndarray:
    """Read a PFM file -> (H, W, 3) for 'PF' or (H, W) for 'Pf', float32, rows top-down."""
    path = _require_file(path)
    with open(path, "rb") as handle:
        magic = _read_header_line(handle, path)
        if magic not in ("PF", "Pf"):
            raise ValueError(f"{path}: wrong PFM magic {magic[:8]!r}, expected 'PF' or 'Pf'")
        channels = 3 if magic == "PF" else 1
        dims = _read_header_line(handle, path).split()
        try:
            width, height = int(dims[0]), int(dims[1])
            scale = float(_read_header_line(handle, path))
        except (IndexError, ValueError) as error:
            raise ValueError(f"{path}: malformed PFM header (size / scale lines)") from error
        _check_side(path, width, height)
        if scale == 0:
            raise ValueError(f"{path}: PFM scale must be non-zero (its sign gives the endianness)")
        dtype = "<f4" if scale < 0 else ">f4"
        payload = handle.read()
    count = width * height * channels
    if len(payload) < 4 * count:
        raise ValueError(f"{path}: PFM data has {len(payload)} bytes, needs {4 * count} for {width}x{height}x{channels}")
    data = np.frombuffer(payload[: 4 * count], dtype).reshape(height, width, channels)
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


def read_png16(path: str | os.PathLike) -> np.ndarray:
    """Read a 16-bit PNG losslessly -> (H, W, planes) uint16 (pypng, all PNG filters)."""
    path = _require_file(path)
    png = _png_module()
    try:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        if info["bitdepth"] != 16:
            raise ValueError(f"{path}: expected a 16-bit PNG, got bit depth {info['bitdepth']}")
        planes = info["planes"]
        array = np.vstack([np.asarray(row, np.uint16) for row in rows])
    except (png.Error, EOFError, OSError, ValueError) as error:
        if isinstance(error, ValueError) and str(path) in str(error):
            raise
        raise ValueError(f"{path}: unreadable PNG ({error})") from error
    return array.reshape(height, width, planes)


def read_kitti_flow_png(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a KITTI flow PNG -> (flow (H, W, 2) float32, valid (H, W) bool).

    flow = (R|G - 2**15) / 64, valid = B > 0; flow is set to 0 where not valid (the raw value is -512).
    """
    raw = read_png16(path)
    if raw.shape[2] != 3:
        raise ValueError(f"{path}: KITTI flow PNG must have 3 channels (R=u, G=v, B=valid), got {raw.shape[2]}")
    valid = raw[..., 2] > 0
    flow = (raw[..., :2].astype(np.float32) - KITTI_OFFSET) / KITTI_SCALE
    flow[~valid] = 0.0
    return flow, valid


def write_kitti_flow_png(path: str | os.PathLike, flow: np.ndarray, valid: np.ndarray | None = None) -> None:
    """Write (H, W, 2) flow + (H, W) valid as a KITTI 16-bit PNG (atomic). Invalid pixels are all-zero.

    Values are quantised to 1/64 px and must lie within [-512, 512) px.
    """
    flow = np.asarray(flow, np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"{path}: flow must be (H, W, 2), got {flow.shape}")
    valid = np.ones(flow.shape[:2], bool) if valid is None else np.asarray(valid, bool)
    if valid.shape != flow.shape[:2]:
        raise ValueError(f"{path}: valid {valid.shape} does not match flow {flow.shape[:2]}")
    encoded = np.rint(flow * KITTI_SCALE + KITTI_OFFSET)
    if (encoded[valid] < 0).any() or (encoded[valid] > 65535).any():
        raise ValueError(f"{path}: flow outside the KITTI PNG range [-512, 512) px")
    raw = np.zeros(flow.shape[:2] + (3,), np.uint16)
    raw[..., :2] = np.where(valid[..., None], encoded, 0).astype(np.uint16)
    raw[..., 2] = valid
    png = _png_module()
    height, width = valid.shape
    buffer = io.BytesIO()
    png.Writer(width, height, greyscale=False, bitdepth=16).write(buffer, raw.reshape(height, width * 3))
    with atomic_write(path, "wb") as handle:
        handle.write(buffer.getvalue())


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
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path}: unreadable image ({error})") from error
    return image


def read_palette_png(path: str | os.PathLike, return_palette: bool = False):
    """Read an indexed ('P') PNG -> indices (H, W) uint8 [, palette (N, 3) uint8]."""
    path = _require_file(path)
    image = _open_image(path)
    if image.mode != "P":
        raise ValueError(f"{path}: expected an indexed (mode 'P') PNG, got mode {image.mode!r}")
    indices = np.array(image, np.uint8)
    if not return_palette:
        return indices
    palette = np.array(image.getpalette() or [], np.uint8).reshape(-1, 3)
    return indices, palette


def write_palette_png(path: str | os.PathLike, indices: np.ndarray, palette: np.ndarray | None = None) -> None:
    """Write (H, W) integer labels in [0, 255] as an indexed PNG with `palette` (default VOC/DAVIS; atomic)."""
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.min(initial=0) < 0 or indices.max(initial=0) > 255:
        raise ValueError(f"{path}: palette PNG needs (H, W) labels in [0, 255], got {indices.shape}")
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    image.putpalette((voc_palette() if palette is None else np.asarray(palette, np.uint8)).reshape(-1).tolist())
    _save_pil(path, image, "PNG")


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a label map PNG stored as indices ('P') or grey levels ('L', 'I;16', 'I') -> (H, W) int64.

    Colour (RGB) label images are rejected: their colours would need a palette lookup.
    """
    path = _require_file(path)
    image = _open_image(path)
    if image.mode not in ("P", "L", "I;16", "I"):
        raise ValueError(f"{path}: label PNG must be indexed or greyscale, got mode {image.mode!r}")
    return np.array(image).astype(np.int64)


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
    """Read an 8-bit image (png/jpg/ppm, RGB/L/P/RGBA) -> (H, W, 3) uint8 RGB."""
    path = _require_file(path)
    image = _open_image(path)
    if image.mode in ("I;16", "I;16B", "I", "F"):
        raise ValueError(f"{path}: {image.mode!r} is not an 8-bit colour image")
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
            raise ValueError(f"{path}: a flow PFM must have 3 channels ('PF'), got a 1-channel 'Pf'")
        flow = np.ascontiguousarray(data[..., :2])
    else:
        raise ValueError(f"{path}: unknown flow file suffix {suffix!r}")
    valid = np.isfinite(flow).all(-1) & (np.abs(flow) < 1000).all(-1)
    return np.where(valid[..., None], flow, 0).astype(np.float32), valid
