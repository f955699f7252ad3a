"""Flow on anything: `python -m mcjepa flow RUN INPUT... --out OUT` (and `flow_on_frames` from Python).

INPUT is a video file, a folder of frames (sorted by name) or two or more image files (`mcjepa.data.video`).
For every consecutive pair (t, t+1) it writes OUT/flow/<t, 6 digits>.flo (Middlebury, forward flow in pixels of
the frames as given to the model, i.e. after `resize`), then two videos at the input's frame rate:

    OUT/flow.mp4            the flow of each pair in the Middlebury colour code (`viz.flow_colors`), one colour
                            scale for the whole clip (`max_flow`: by default the largest 99th-percentile flow
                            length over the pairs, so a few outlier vectors do not wash the colours out)
    OUT/side_by_side.mp4    frame t | its flow colour
    OUT/summary.json        what was run: run, input, pairs, size, device, colour scale, frame rate, seconds

Frames of any size go through the model padded to its stride and the flow cropped back (`any_size_flow_fn`).
Every file is written under a temporary name and renamed when complete.

Notebook 15 (fine-tuning on your own video) also calls `default_video` (the clip it uses when given none) and
`compare_on_pairs` (flows and photometric/census errors of several models on the same held-out pairs).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data.flow_datasets import image_to_tensor
from .data.formats import read_flo, write_flo
from .data.offline_sources import OPENCV_DOC_DATA
from .data.synthetic_export import export_clip
from .data.synthetic_scene import SceneConfig
from .data.video import count_frames, frame_source, iter_frames, video_fps
from .eval.photometric import photometric_errors, zero_flow
from .eval.runners import any_size_flow_fn
from .models.checkpoint import load_model
from .train.trainer import resolve_device
from .utils import atomic_write
from .viz.flow_colors import flow_to_rgb, robust_flow_radius

DEFAULT_FPS = 10.0  # frame rate of the output videos when the input is images or its header gives none

Resize = float | tuple[int, int] | None


def parse_resize(text: str | None) -> Resize:
    """"HxW" (e.g. "96x128") -> (H, W); a number (e.g. "0.5") -> a scale factor; None -> None.
    Raises ValueError naming the text and the valid forms."""
    if text is None:
        return None
    try:
        if "x" in text.lower():
            height, width = (int(v) for v in text.lower().split("x"))
            if height >= 1 and width >= 1:
                return height, width
        else:
            factor = float(text)
            if np.isfinite(factor) and factor > 0:
                return factor
    except ValueError:
        pass
    raise ValueError(f"--resize {text!r}: give HxW in pixels (e.g. 96x128) or a scale factor > 0 (e.g. 0.5)")


def frame_tensor(frame: np.ndarray, resize: Resize = None) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, h, w) float in [0, 1], resized (antialiased bilinear) to `resize` = (h, w) or by a
    scale factor (sides rounded, at least 1 px)."""
    image = image_to_tensor(frame)
    if resize is None:
        return image
    if isinstance(resize, tuple):
        size = resize
    else:
        size = (max(1, round(image.shape[-2] * resize)), max(1, round(image.shape[-1] * resize)))
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0].clamp(0, 1)


def _even(image: np.ndarray) -> np.ndarray:
    """Pad (H, W, 3) by edge replication to even sides (H.264 in yuv420p needs them)."""
    return np.pad(image, ((0, image.shape[0] % 2), (0, image.shape[1] % 2), (0, 0)), mode="edge")


class _VideoFile:
    """An mp4 written under a temporary name and renamed onto `path` when closed without error."""

    def __init__(self, path: Path, fps: float):
        import imageio.v2 as imageio  # deferred: imageio-ffmpeg locates its ffmpeg binary on import

        self.path, self.temporary = path, path.with_name(f".{path.stem}.partial{path.suffix}")
        self.writer = imageio.get_writer(self.temporary, format="FFMPEG", fps=fps, codec="libx264",
                                         pixelformat="yuv420p", macro_block_size=1, quality=8)

    def append(self, image: np.ndarray) -> None:
        self.writer.append_data(_even(image))

    def close(self, ok: bool) -> None:
        self.writer.close()
        if ok:
            os.replace(self.temporary, self.path)
        else:
            self.temporary.unlink(missing_ok=True)


def _uint8(image: torch.Tensor) -> np.ndarray:
    return (image.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)


def flow_on_frames(run: str | Path, inputs: str | Path | Sequence[str | Path], out: str | Path,
                   device: str = "auto", max_frames: int | None = None, resize: Resize = None,
                   max_flow: float | None = None, fps: float | None = None, progress: bool = True) -> dict:
    """Run the flow model of `run` (a run folder or a checkpoint file) on every consecutive pair of `inputs`
    and write the files of the module docstring under `out`. `device`: "auto" | "cpu" | "cuda" | "cuda:N";
    `max_frames`: use at most this many frames; `resize`: (H, W) or a scale factor applied to every frame first;
    `max_flow`: the colour scale in pixels (None: from the flows); `fps`: of the videos (None: the input's).
    Returns the summary (also written to out/summary.json).

    Raises FileNotFoundError for a missing input or run, ValueError for an unsupported input, a file that is
    not a checkpoint, fewer than 2 frames or frames of different sizes."""
    began = time.time()
    kind, _ = frame_source(inputs)
    if max_frames is not None and max_frames < 2:
        raise ValueError(f"max_frames must be >= 2 (flow needs a pair of frames), got {max_frames}")
    if max_flow is not None and not (np.isfinite(max_flow) and max_flow > 0):
        raise ValueError(f"max_flow must be a number > 0 (pixels), got {max_flow}")
    if device not in ("auto", "cpu") and not (device.startswith("cuda") and torch.cuda.is_available()):
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} usable CUDA GPU(s); "
                         f"use auto or cpu")
    torch_device = resolve_device(device)
    model, _ = load_model(run, device=str(torch_device))
    predict = any_size_flow_fn(model)
    out = Path(out)
    flows_dir = out / "flow"
    total = count_frames(inputs, max_frames)
    bar = tqdm(total=None if total is None else max(total - 1, 0), desc="flow", unit="pair", disable=not progress,
               dynamic_ncols=True)
    previous, radii, size = None, [], None
    with bar:
        for index, frame in enumerate(iter_frames(inputs, max_frames)):
            image = frame_tensor(frame, resize)
            if previous is not None:
                if image.shape != previous.shape:
                    raise ValueError(f"frame {index} is {tuple(image.shape[-2:])} but frame {index - 1} is "
                                     f"{tuple(previous.shape[-2:])}: all frames must have one size")
                flow = predict(previous[None], image[None])[0]
                write_flo(flows_dir / f"{index - 1:06d}.flo", flow.permute(1, 2, 0).numpy())
                radii.append(robust_flow_radius(flow))
                bar.update(1)
            previous, size = image, tuple(image.shape[-2:])
    if not radii:
        raise ValueError(f"{inputs}: {0 if previous is None else 1} frame(s): flow needs at least 2")
    pairs = len(radii)
    for stale in flows_dir.glob("[0-9][0-9][0-9][0-9][0-9][0-9].flo"):  # left by an earlier, longer run
        if int(stale.stem) >= pairs:
            stale.unlink()
    scale = float(max_flow) if max_flow is not None else max(max(radii), 1e-3)
    fps = float(fps or video_fps(inputs) or DEFAULT_FPS)
    colour, side = _VideoFile(out / "flow.mp4", fps), _VideoFile(out / "side_by_side.mp4", fps)
    ok = False
    try:
        for index, frame in enumerate(iter_frames(inputs, pairs)):
            rgb = flow_to_rgb(read_flo(flows_dir / f"{index:06d}.flo").transpose(2, 0, 1), max_flow=scale)
            colour.append(rgb)
            side.append(np.concatenate([_uint8(frame_tensor(frame, resize)), rgb], axis=1))
        ok = True
    finally:
        colour.close(ok)
        side.close(ok)
    summary = {"run": str(run), "input": [str(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)],
               "input_kind": kind, "pairs": pairs, "size": list(size), "device": str(torch_device),
               "max_flow": scale, "fps": fps, "seconds": round(time.time() - began, 2),
               "flow_dir": str(flows_dir), "flow_video": str(out / "flow.mp4"),
               "side_by_side_video": str(out / "side_by_side.mp4")}
    with atomic_write(out / "summary.json", "w") as handle:
        json.dump(summary, handle, indent=1)
    return summary


def default_video(clips_dir: str | Path, num_frames: int = 48) -> tuple[Path, str]:
    """(path, what it is) of the clip notebook 15 fine-tunes on when given none: OpenCV's vtest.avi (pedestrians,
    768x576, 795 frames) when Debian's opencv-doc package is installed, else a generated scene
    (`export_clip`, 96x128, `num_frames` frames) written once to clips_dir/generated_clip.mp4."""
    vtest = OPENCV_DOC_DATA / "vtest.avi"
    if vtest.is_file():
        return vtest, "OpenCV's sample video vtest.avi (from the opencv-doc package)"
    path = Path(clips_dir) / f"generated_clip_{num_frames}.mp4"
    if not path.is_file():
        export_clip(path, num_frames=num_frames, cfg=SceneConfig(height=96, width=128))
    return path, f"a generated clip ({num_frames} frames of the kit's synthetic scenes; opencv-doc is not installed)"


def compare_on_pairs(models: Mapping[str, torch.nn.Module], pairs: Sequence[Mapping], census_radius: int = 3
                     ) -> tuple[list[dict], dict]:
    """The flows of several models (name -> MCJEPA) on the same pairs ({"frame1", "frame2" (3,H,W), "name"}):
    (rows for `viz.flow.plot_flow_rows` / `plot_flow_overlay`: {"name", "frame1", "flows": {model: (2,H,W)}},
    errors: `eval.photometric.photometric_errors` of "zero flow" and of every model over all the pairs)."""
    fns = {name: any_size_flow_fn(model) for name, model in models.items()}
    rows = [{"name": str(pair.get("name", i)), "frame1": pair["frame1"],
             "flows": {name: fn(pair["frame1"][None], pair["frame2"][None])[0] for name, fn in fns.items()}}
            for i, pair in enumerate(pairs)]
    errors = photometric_errors({"zero flow": zero_flow, **fns}, pairs, census_radius)
    return rows, errors
