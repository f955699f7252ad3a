"""Real data that ships offline: a Middlebury stereo pair (in scikit-image) and OpenCV's sample videos.

1. `MotorcycleStereo`: `skimage.data.stereo_motorcycle()` -> (left, right, disparity), Middlebury 2014
   "Motorcycle", 500x741, files bundled in the scikit-image wheel (skimage/data/motorcycle_*.png/.npz: no
   download). The pair is rectified, so the left->right flow is (u, v) = (-disparity, 0). Measured: nearest
   sampling of the right image at x - d gives a mean grey error of 7.8 vs 45.0 at x + d (skimage's docstring
   suggests the opposite sign). Unknown disparities are stored as +inf (27,226 of 370,500 pixels; no NaN or 0
   although the docstring mentions NaN): those pixels get valid = False.
2. `OpenCVDocVideos`: Debian's `opencv-doc` package (4.6.0) installs /usr/share/doc/opencv-doc/examples/data
   with vtest.avi (768x576, 795 frames, msmpeg4v3), tree.avi (320x240, 449 frames, cinepak), Megamind.avi
   (720x528, 271 frames, mpeg4), plain (not gzipped), plus the image pairs basketball1/2.png and
   rubberwhale1/2.png. No ground truth. Videos are decoded with imageio's FFMPEG plugin (imageio-ffmpeg
   ships a static ffmpeg binary, is maintained, decodes all three codecs; OpenCV is not a dependency).
   Measured at 48x64: tree.avi repeats frames (9 of its first 10 consecutive pairs are identical) and
   Megamind.avi has a cut between frames 1 and 2 (mean |diff| 0.127 vs ~0.008): pairs whose mean absolute
   difference is below `min_change` (default 1e-3) or above the cut bound (`mcjepa.data.video.cut_bound`: `max_change`,
   default 0.05, or 1.5x the clip's median change) are dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mcjepa.data.flow_datasets import image_to_tensor
from mcjepa.data.formats import read_image
from mcjepa.data.video import changing_pairs

OPENCV_DOC_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
OPENCV_DOC_VIDEOS = ("vtest.avi", "tree.avi", "Megamind.avi")
OPENCV_DOC_PAIRS = (("basketball1.png", "basketball2.png"), ("rubberwhale1.png", "rubberwhale2.png"))


def motorcycle_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left (H,W,3) uint8, right (H,W,3) uint8, disparity (H,W) float32 with inf = unknown)."""
    from skimage.data import stereo_motorcycle

    left, right, disparity = stereo_motorcycle()
    return left, right, np.asarray(disparity, np.float32)


def resize_flow_with_validity(flow: torch.Tensor, valid: torch.Tensor, size: tuple[int, int]):
    """Area-downsample a (2,H,W) flow with its (H,W) validity to `size` = (h, w).

    flow_small = area(flow * valid) / area(valid) scaled by (w / W, h / H) per component;
    valid_small = every source pixel under the output pixel was valid (area(valid) == 1).
    """
    height, width = flow.shape[-2:]
    weight = valid.float()[None, None]
    summed = F.interpolate((flow * weight[0])[None], size=size, mode="area")[0]
    coverage = F.interpolate(weight, size=size, mode="area")[0, 0]
    small = summed / coverage.clamp_min(1e-6)
    scale = torch.tensor([size[1] / width, size[0] / height], dtype=flow.dtype)[:, None, None]
    small_valid = coverage > 1 - 1e-4
    return torch.where(small_valid[None], small * scale, torch.zeros_like(small)), small_valid


class MotorcycleStereo(Dataset):
    """One real sample with dense GT: Middlebury Motorcycle left->right as flow, at `scale` of 500x741.

    Sample: {"frame1": left (3,h,w), "frame2": right, "flow": (2,h,w) = (-disparity * w/W, 0),
    "valid": (h,w) bool, "name": "middlebury2014/motorcycle"} with h, w = round(scale * (500, 741)).
    """

    def __init__(self, scale: float = 0.25):
        if not 0 < scale <= 1:
            raise ValueError(f"MotorcycleStereo scale must be in (0, 1], got {scale}")
        left, right, disparity = motorcycle_arrays()
        height, width = disparity.shape
        valid = torch.from_numpy(np.isfinite(disparity))
        flow = torch.zeros(2, height, width)
        flow[0] = torch.from_numpy(np.where(np.isfinite(disparity), -disparity, 0).astype(np.float32))
        frames = [image_to_tensor(left), image_to_tensor(right)]
        size = (round(height * scale), round(width * scale))
        if size != (height, width):
            frames = [F.interpolate(f[None], size=size, mode="area")[0] for f in frames]
            flow, valid = resize_flow_with_validity(flow, valid, size)
        self.sample = {"frame1": frames[0], "frame2": frames[1], "flow": flow, "valid": valid,
                       "name": "middlebury2014/motorcycle"}

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict:
        if index not in (0, -1):
            raise IndexError(f"MotorcycleStereo has one sample, got index {index}")
        return dict(self.sample)


def require_opencv_doc(root: str | Path = OPENCV_DOC_DATA) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: OpenCV sample data not found; install it with `apt-get install opencv-doc` (Debian/Ubuntu)")
    return root


def read_video_frames(path: Path, size: tuple[int, int], max_frames: int | None) -> torch.Tensor:
    """Decode up to `max_frames` frames with imageio-ffmpeg, area-resized -> (T, 3, h, w) float in [0, 1]."""
    import imageio.v2 as imageio

    frames = []
    try:
        reader = imageio.get_reader(path, format="FFMPEG")
    except Exception as error:  # imageio raises various types for unreadable media
        raise ValueError(f"{path}: cannot open video ({error})") from error
    with reader:
        for frame in reader:
            if max_frames is not None and len(frames) >= max_frames:
                break
            frames.append(F.interpolate(image_to_tensor(frame)[None], size=size, mode="area")[0])
    if len(frames) < 2:
        raise ValueError(f"{path}: fewer than 2 decodable frames")
    return torch.stack(frames)


class OpenCVDocVideos(Dataset):
    """Consecutive frame pairs (no GT) from OpenCV's sample videos and still pairs, resized to `size`.

    Videos are decoded once, lazily, at the first access (max_frames per video); static pairs and cuts are
    dropped (`min_change`, `max_change` on the mean absolute frame difference). Samples:
    {"frame1", "frame2" (3,h,w), "name": "vtest.avi/000012"} - no "flow" key.
    """

    def __init__(self, root=OPENCV_DOC_DATA, size: tuple[int, int] = (96, 128), max_frames: int | None = 64,
                 videos=OPENCV_DOC_VIDEOS, image_pairs=OPENCV_DOC_PAIRS, min_change: float = 1e-3,
                 max_change: float | None = 0.05):
        self.root = require_opencv_doc(root)
        self.size, self.max_frames = tuple(size), max_frames
        self.min_change, self.max_change = min_change, max_change
        self.videos = [self.root / v for v in videos]
        self.image_pairs = [(self.root / a, self.root / b) for a, b in image_pairs]
        for path in self.videos + [p for pair in self.image_pairs for p in pair]:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing from opencv-doc (reinstall: apt-get install opencv-doc)")
        self._index = None

    def _build(self):
        index = []
        for path in self.videos:
            frames = read_video_frames(path, self.size, self.max_frames)
            keep = changing_pairs(frames, self.min_change, self.max_change)
            index += [(frames, t, f"{path.name}/{t:06d}") for t in range(len(frames) - 1) if keep[t]]
        for first, second in self.image_pairs:
            pair = torch.stack([F.interpolate(image_to_tensor(read_image(p))[None], size=self.size, mode="area")[0]
                                for p in (first, second)])
            index.append((pair, 0, f"{first.stem}-{second.stem}"))
        self._index = index

    def __len__(self) -> int:
        if self._index is None:
            self._build()
        return len(self._index)

    def __getitem__(self, index: int) -> dict:
        if self._index is None:
            self._build()
        frames, t, name = self._index[index]
        return {"frame1": frames[t].clone(), "frame2": frames[t + 1].clone(), "name": name}

