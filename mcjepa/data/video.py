"""Your own footage as frames: two image files, a folder of frames or a video file (mp4/avi/... decoded by
imageio's FFMPEG plugin, whose static ffmpeg binary comes with the imageio-ffmpeg wheel).

    frame_source(inputs)      which kind of input it is, checked: ("images", [paths]) or ("video", path)
    iter_frames(inputs)       the frames one at a time, (H, W, 3) uint8 RGB (a folder: its images sorted by name)
    video_fps(inputs)         the video's frame rate (None for images)
    VideoPairs(path, ...)     consecutive pairs of one video or folder as a flow training set (no ground truth)
    changing_pairs(frames)    which consecutive pairs move: static pairs and cuts are dropped

A video becomes a training set by its entry `video:<name>` in `data.flow_datasets` with its path in
`data.roots["video:<name>"]` (`mcjepa.data.registry.flow_dataset`), so a run on it is cached by config as any.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mcjepa.data.flow_datasets import image_to_tensor
from mcjepa.data.formats import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")
HELD_OUT_FRACTION = 0.1  # the last 10 % of a video's pairs (at least one) are held out of training
MIN_CHANGE, MAX_CHANGE = 1e-3, 0.05  # mean |frame2 - frame1| (in [0, 1]) below: static pair; above: a cut


def frame_source(inputs: str | Path | Sequence[str | Path]) -> tuple[str, list[Path] | Path]:
    """Check what `inputs` is: a video file -> ("video", path); a folder -> ("images", its image files sorted by
    name); two or more image files -> ("images", them, in the order given).

    Raises FileNotFoundError naming a missing path, ValueError for an unsupported suffix (listing the valid
    ones), an empty folder or a mix of videos and images."""
    paths = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    if not paths:
        raise ValueError("no input given: pass a video file, a folder of frames or two image files")
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"input {path} does not exist")
    if len(paths) == 1 and paths[0].is_dir():
        frames = sorted(p for p in paths[0].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not frames:
            raise ValueError(f"folder {paths[0]} holds no frames (image files ending in {', '.join(IMAGE_SUFFIXES)})")
        return "images", frames
    if len(paths) == 1 and paths[0].suffix.lower() in VIDEO_SUFFIXES:
        return "video", paths[0]
    for path in paths:
        if path.is_dir() or path.suffix.lower() not in IMAGE_SUFFIXES:
            what = "a folder" if path.is_dir() else f"suffix {path.suffix or '(none)'!r}"
            raise ValueError(f"input {path}: {what} is not supported here; give one video "
                             f"({', '.join(VIDEO_SUFFIXES)}), one folder of frames, or two or more images "
                             f"({', '.join(IMAGE_SUFFIXES)})")
    return "images", paths


def _rgb(frame: np.ndarray) -> np.ndarray:
    """(H, W) grey, (H, W, 1), (H, W, 3) or (H, W, 4) -> (H, W, 3) uint8."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.shape[-1] == 1:
        frame = np.repeat(frame, 3, axis=-1)
    return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)


def _open_video(path: Path):
    import imageio.v2 as imageio  # deferred: imageio-ffmpeg locates its ffmpeg binary on import

    try:
        return imageio.get_reader(path, format="FFMPEG")
    except Exception as error:  # imageio raises various types for unreadable media
        raise ValueError(f"{path}: cannot open the video ({type(error).__name__}: {error})") from error


def iter_frames(inputs: str | Path | Sequence[str | Path], max_frames: int | None = None) -> Iterator[np.ndarray]:
    """The frames of `inputs` (see `frame_source`) in order, at most `max_frames`: (H, W, 3) uint8 RGB each.
    Raises as `frame_source`; DataFormatError / ValueError naming an undecodable file."""
    kind, source = frame_source(inputs)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    count = 0
    if kind == "images":
        for path in source:
            if max_frames is not None and count >= max_frames:
                return
            count += 1
            yield read_image(path)
        return
    with _open_video(source) as reader:
        try:
            for frame in reader:
                if max_frames is not None and count >= max_frames:
                    return
                count += 1
                yield _rgb(frame)
        except (OSError, RuntimeError) as error:
            raise ValueError(f"{source}: cannot decode frame {count} ({error})") from error


def count_frames(inputs: str | Path | Sequence[str | Path], max_frames: int | None = None) -> int | None:
    """How many frames `iter_frames` will give, if known without decoding: a video's frame count or, when its
    header has none, duration x frame rate (an estimate, for progress bars); None when unknown."""
    kind, source = frame_source(inputs)
    if kind == "images":
        total = len(source)
    else:
        with _open_video(source) as reader:
            meta = reader.get_meta_data()
        frames = meta.get("nframes")
        if not (isinstance(frames, (int, float)) and np.isfinite(frames) and frames > 0):  # avi: from the duration
            frames = meta.get("duration", 0) * meta.get("fps", 0)
        total = round(frames) if isinstance(frames, (int, float)) and np.isfinite(frames) and frames > 0 else None
    if total is None:
        return max_frames
    return total if max_frames is None else min(total, max_frames)


def video_fps(inputs: str | Path | Sequence[str | Path]) -> float | None:
    """Frames per second of a video input (None for image inputs or when the header does not say)."""
    kind, source = frame_source(inputs)
    if kind != "video":
        return None
    with _open_video(source) as reader:
        fps = reader.get_meta_data().get("fps")
    return float(fps) if isinstance(fps, (int, float)) and np.isfinite(fps) and fps > 0 else None


CUT_FACTOR = 1.5  # a pair changing more than this times the clip's median change (and > max_change) is a cut


def cut_bound(change: torch.Tensor, max_change: float) -> float:
    """The mean absolute difference above which a pair is a cut: max(max_change, CUT_FACTOR x the clip's median
    change). Relative to the clip, so that a steady camera pan (every pair changes a lot: a 2 px pan of a
    textured scene already changes 0.07, 3 px of skimage's astronaut at 1/4 0.13-0.15) is kept and only the
    spikes of a cut are dropped (a cut from that pan to another photo: 0.28; Megamind.avi's cut: 0.127 against a
    median of ~0.008). A cut inside a fast pan of high-contrast texture can stay under the bound."""
    return max(max_change, CUT_FACTOR * change.median().item()) if change.numel() else max_change


def changing_pairs(frames: torch.Tensor, min_change: float = MIN_CHANGE, max_change: float | None = MAX_CHANGE
                   ) -> torch.Tensor:
    """(T, 3, H, W) in [0, 1] -> (T-1,) bool: pair (t, t+1) has a mean absolute difference of at least
    `min_change` (below: a static or repeated frame) and at most `cut_bound` (above: a cut; None: no cut test)."""
    change = (frames[1:] - frames[:-1]).abs().mean(dim=(1, 2, 3))
    keep = change >= min_change
    if max_change is not None:
        keep &= change <= cut_bound(change, max_change)
    return keep


def cover_size(height: int, width: int, crop: tuple[int, int]) -> tuple[int, int]:
    """The size (h, w) of a (height, width) frame scaled by one factor so that it just covers `crop`."""
    factor = max(crop[0] / height, crop[1] / width)
    return max(crop[0], round(height * factor)), max(crop[1], round(width * factor))


class VideoPairs(Dataset):
    """Consecutive frame pairs of one video file or folder of frames, for self-supervised flow training.

    Frames are decoded once, at the first access (at most `max_frames`, 0 = all), area-resized by one factor
    so that they just cover `crop` = (h, w) (the aspect ratio kept; the trainer then crops at random), and
    pairs that do not move or that cross a cut are dropped (`changing_pairs`). The last `HELD_OUT_FRACTION`
    of the pairs (at least one) is the "val"/"test" split; the pair between the two splits is left out, so held-out
    pairs never share a frame with training. Samples: {"frame1", "frame2" (3,h,w) float in [0,1],
    "name": "<file>/<frame index, 6 digits>"}, no "flow".

    Raises FileNotFoundError / ValueError (as `frame_source`) at construction, ValueError at the first access
    when fewer than 4 frames decode, frames differ in size or no pair of the split moves.
    """

    def __init__(self, path: str | Path, crop: tuple[int, int], split: str = "train", max_frames: int = 0,
                 min_change: float = MIN_CHANGE, max_change: float | None = MAX_CHANGE):
        if split not in ("train", "val", "test"):
            raise ValueError(f"VideoPairs split must be 'train', 'val' or 'test', got {split!r}")
        frame_source(path)  # fail now on a missing or unsupported path
        self.path, self.crop, self.split = Path(path), tuple(crop), split
        self.max_frames = max_frames or None
        self.min_change, self.max_change = min_change, max_change
        self._frames: torch.Tensor | None = None
        self._index: list[int] = []

    def _build(self) -> None:
        frames, first = [], None
        for frame in iter_frames(self.path, self.max_frames):
            image = image_to_tensor(frame)
            first = first or tuple(image.shape[-2:])
            if tuple(image.shape[-2:]) != first:
                raise ValueError(f"{self.path}: frame {len(frames)} is {tuple(image.shape[-2:])}, the first "
                                 f"{first}: all frames must have one size")
            size = cover_size(*first, self.crop)
            frames.append(F.interpolate(image[None], size=size, mode="area")[0])
        if len(frames) < 4:
            raise ValueError(f"{self.path}: {len(frames)} frame(s) decoded; a training video needs at least 4 "
                             f"(training pairs and a held-out pair)")
        stacked = torch.stack(frames)
        pairs = len(frames) - 1
        held = max(1, round(pairs * HELD_OUT_FRACTION))
        span = range(0, pairs - held - 1) if self.split == "train" else range(pairs - held, pairs)
        keep = changing_pairs(stacked, self.min_change, self.max_change)
        self._index = [t for t in span if keep[t]]
        if not self._index:
            change = (stacked[1:] - stacked[:-1]).abs().mean(dim=(1, 2, 3))[list(span)]
            static = int((change < self.min_change).sum())
            raise ValueError(f"{self.path}: no {self.split} pair is kept (of {len(span)}: {static} change less than "
                             f"min_change={self.min_change} (static), {len(span) - static} more than the cut bound "
                             f"(max_change={self.max_change} or {CUT_FACTOR}x the clip's median change))")
        self._frames = stacked

    def __len__(self) -> int:
        if self._frames is None:
            self._build()
        return len(self._index)

    def __getitem__(self, index: int) -> dict:
        if self._frames is None:
            self._build()
        t = self._index[index]
        return {"frame1": self._frames[t].clone(), "frame2": self._frames[t + 1].clone(),
                "name": f"{self.path.name}/{t:06d}"}
