"""Write synthetic data to disk in the official FlyingChairs and DAVIS 2017 layouts.

So that the real loaders (`flow_datasets.FlyingChairs`, `content_datasets.DAVIS2017`) and external tools can be
exercised end to end without downloading anything. File formats come from `mcjepa.data.formats`
(`write_flo`, `write_palette_png`, `write_image` for PPM); JPEGs are written with Pillow (quality 95, 4:4:4)
through `atomic_write`. Images are rounded to 8 bits; flows are the exact float32 ground truth.

Split assignment: with n items and validation fraction f, item i (0-based) is a validation item iff
floor((i + 1) f) > floor(i f) (floor(n f) items, evenly spread). The k-th training item is the scene of
`SyntheticFlowPairs(..., split="train")[k]` / `SyntheticSequences(..., split="train")[k]` (same for "val"),
so an export is identical to the on-the-fly datasets up to 8-bit quantisation of the images.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from PIL import Image

from mcjepa.data.formats import write_flo, write_image, write_palette_png
from mcjepa.data.synthetic import derive_seed, render_pair, render_sequence
from mcjepa.data.synthetic_scene import SceneConfig
from mcjepa.utils import atomic_write


def _split_assignment(num_items: int, val_fraction: float) -> list[tuple[str, int]]:
    """[(split, rank within split)] for items 0..n-1 (module docstring)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    ranks = {"train": 0, "val": 0}
    assignment = []
    for index in range(num_items):
        split = "val" if math.floor((index + 1) * val_fraction) > math.floor(index * val_fraction) else "train"
        assignment.append((split, ranks[split]))
        ranks[split] += 1
    return assignment


def to_uint8_image(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8 (rounded)."""
    return rearrange((image.clamp(0, 1) * 255.0).round().to(torch.uint8), "c h w -> h w c").contiguous().numpy()


def _save_jpeg(path: Path, image: torch.Tensor) -> None:
    """JPEG quality 95 without chroma subsampling (4:4:4): `formats.write_image` would subsample to 4:2:0."""
    with atomic_write(path, "wb") as handle:
        Image.fromarray(to_uint8_image(image)).save(handle, format="JPEG", quality=95, subsampling=0)


def export_flyingchairs(root, num_pairs: int, seed: int = 0, cfg: SceneConfig = SceneConfig(),
                        val_fraction: float = 0.1) -> Path:
    """Write `num_pairs` synthetic pairs as FlyingChairs: root/data/%05d_img1.ppm, %05d_img2.ppm, %05d_flow.flo
    (numbered from 00001) and root/FlyingChairs_train_val.txt (one line per pair: 1 = train, 2 = val).

    Returns `root` (the equivalent of `FlyingChairs_release/`).
    """
    if num_pairs < 1:
        raise ValueError(f"export_flyingchairs: num_pairs must be >= 1, got {num_pairs}")
    root = Path(root)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    assignment = _split_assignment(num_pairs, val_fraction)
    for index, (split, rank) in enumerate(assignment, start=1):
        pair = render_pair(derive_seed(seed, split, rank), cfg)
        write_image(data / f"{index:05d}_img1.ppm", to_uint8_image(pair["frame1"]))
        write_image(data / f"{index:05d}_img2.ppm", to_uint8_image(pair["frame2"]))
        write_flo(data / f"{index:05d}_flow.flo", rearrange(pair["flow_fw"], "c h w -> h w c").contiguous().numpy())
    with atomic_write(root / "FlyingChairs_train_val.txt", "w") as handle:
        handle.write("".join("2\n" if split == "val" else "1\n" for split, _ in assignment))
    return root


def export_davis(root, num_sequences: int, num_frames: int, seed: int = 0, cfg: SceneConfig = SceneConfig(),
                 val_fraction: float = 0.5) -> Path:
    """Write synthetic videos as DAVIS 2017: root/JPEGImages/480p/<seq>/%05d.jpg (JPEG quality 95, 4:4:4),
    root/Annotations/480p/<seq>/%05d.png (palette PNG of instance ids, every frame annotated) and
    root/ImageSets/2017/{train,val}.txt (one sequence name per line).

    The folder is called 480p as in DAVIS although the images have the size of `cfg`. Sequence names are
    `synthetic-<split>-%04d`. Returns `root` (the equivalent of `DAVIS/`).
    """
    if num_sequences < 1 or num_frames < 1:
        raise ValueError(f"export_davis: num_sequences ({num_sequences}) and num_frames ({num_frames}) must be >= 1")
    root = Path(root)
    names: dict[str, list[str]] = {"train": [], "val": []}
    for split, rank in _split_assignment(num_sequences, val_fraction):
        name = f"synthetic-{split}-{rank:04d}"
        names[split].append(name)
        seq = render_sequence(derive_seed(seed, split, rank), num_frames, cfg)
        image_dir, mask_dir = root / "JPEGImages" / "480p" / name, root / "Annotations" / "480p" / name
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        for frame_index in range(num_frames):
            _save_jpeg(image_dir / f"{frame_index:05d}.jpg", seq["frames"][frame_index])
            write_palette_png(mask_dir / f"{frame_index:05d}.png",
                              seq["instances"][frame_index].to(torch.uint8).numpy())
    for split, split_names in names.items():
        with atomic_write(root / "ImageSets" / "2017" / f"{split}.txt", "w") as handle:
            handle.write("".join(f"{name}\n" for name in split_names))
    return root


CLIP_INDEX = 1_000_000  # the clip's scene: item CLIP_INDEX of the test split, far from the evaluated items


def export_clip(path, num_frames: int = 48, seed: int = 0, cfg: SceneConfig = SceneConfig(), fps: float = 10.0
                ) -> Path:
    """Write one generated scene (`render_sequence(seed, num_frames, cfg)`: objects moving over a moving
    background) as an H.264 .mp4 of `num_frames` frames at `fps`: a video the kit can make anywhere (a stand-in
    for your own footage in notebook 15 and the tests). Written under a temporary name, then renamed; returns
    the path. Frame sides must be even (H.264 in yuv420p); raises ValueError otherwise."""
    import imageio.v2 as imageio  # deferred: imageio-ffmpeg locates its ffmpeg binary on import

    path = Path(path)
    if cfg.height % 2 or cfg.width % 2 or num_frames < 1:
        raise ValueError(f"export_clip: need even frame sides and >= 1 frame, got {cfg.height}x{cfg.width}, "
                         f"{num_frames} frames")
    frames = render_sequence(derive_seed(seed, "test", CLIP_INDEX), num_frames, cfg)["frames"]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        with imageio.get_writer(temporary, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                                macro_block_size=1, quality=9) as writer:
            for frame in frames:
                writer.append_data(to_uint8_image(frame))
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
