"""The kit's embedded default data: deterministic synthetic video with exact ground truth.

A scene = a textured background plus K objects (K uniform in [min_objects, max_objects]), each layer moving by
its own similarity transform with constant velocity in (translation, angle, log-scale); the background moves
too, more slowly. Each object has a class (`CLASS_NAMES`: disc, square, triangle, ring, cross) that fixes its
shape and its texture photo (from scikit-image's wheel, nothing downloaded); class 0 is the background.
Instances are numbered 1..K back to front (instance K is the topmost); 0 is the background.

Ground truth is analytic (`synthetic_render.py`): flow_{t->s}(x) = T_L(s) T_L(t)^{-1} x - x for the visible
layer L at x, occlusion = target outside the image or covered by a layer above L in frame s. Textures are
pre-blurred (sigma `cfg.texture_blur_sigma` = 1 texel) so that `warp(frame_s, flow_{t->s}) ~= frame_t` on
non-occluded pixels up to a small bilinear-interpolation error (measured: mean abs. error 0.003 on non-occluded
interior pixels of default pairs, below 0.006 on each of 50 pairs, vs 0.03 for zero flow; object boundaries,
where the bilinear footprint straddles two layers, dominate it).

Determinism: a scene is a function of its integer seed only (local `np.random.default_rng`); dataset item i
of split `split` uses `derive_seed(seed, split, i)`, so train/val/test never share scenes.
Layout: scene model `synthetic_scene.py`, renderer `synthetic_render.py`, on-disk exports `synthetic_export.py`.
"""

from __future__ import annotations

import numpy as np
import torch

from mcjepa.data.synthetic_render import render_layers
from mcjepa.data.synthetic_scene import CLASS_NAMES, Layer, SceneConfig, sample_scene

__all__ = ["CLASS_NAMES", "Layer", "SceneConfig", "derive_seed", "render_sequence", "render_pair", "render_still",
           "SyntheticFlowPairs", "SyntheticStills", "SyntheticSequences"]

SPLITS = {"train": 0, "val": 1, "test": 2}


def derive_seed(seed: int, split: str, index: int) -> int:
    """Scene seed of item `index` of `split` for dataset seed `seed` (a 63-bit int, distinct per triple)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if seed < 0 or index < 0:
        raise ValueError(f"derive_seed: seed ({seed}) and index ({index}) must be non-negative")
    state = np.random.SeedSequence([int(seed), SPLITS[split], int(index)]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def render_sequence(seed: int, num_frames: int, cfg: SceneConfig = SceneConfig()) -> dict:
    """Render the scene of `seed` over `num_frames` consecutive frames.

    Returns frames (T,3,H,W) float32 in [0,1]; flows_fw (T-1,2,H,W) t->t+1; flows_bw (T-1,2,H,W) t+1->t
    (defined on frame t+1); occlusions_fw / occlusions_bw (T-1,H,W) bool (True = not visible in the other
    frame); instances (T,H,W) int64 (0 = background, 1..K back to front); classes (T,H,W) int64.
    """
    if num_frames < 1:
        raise ValueError(f"render_sequence: num_frames must be >= 1, got {num_frames}")
    layers = sample_scene(np.random.default_rng(seed), num_frames, cfg)
    return render_layers(layers, num_frames, cfg.height, cfg.width)


def render_pair(seed: int, cfg: SceneConfig = SceneConfig()) -> dict:
    """`render_sequence(seed, 2, cfg)` flattened: frame1, frame2 (3,H,W); flow_fw, flow_bw (2,H,W);
    occlusion_fw, occlusion_bw (H,W) bool; instances1, instances2, classes1, classes2 (H,W) int64."""
    seq = render_sequence(seed, 2, cfg)
    return {"frame1": seq["frames"][0], "frame2": seq["frames"][1],
            "flow_fw": seq["flows_fw"][0], "flow_bw": seq["flows_bw"][0],
            "occlusion_fw": seq["occlusions_fw"][0], "occlusion_bw": seq["occlusions_bw"][0],
            "instances1": seq["instances"][0], "instances2": seq["instances"][1],
            "classes1": seq["classes"][0], "classes2": seq["classes"][1]}


def render_still(seed: int, cfg: SceneConfig = SceneConfig()) -> dict:
    """One frame: image (3,H,W) float32, label (H,W) int64 class map, instances (H,W) int64."""
    seq = render_sequence(seed, 1, cfg)
    return {"image": seq["frames"][0], "label": seq["classes"][0], "instances": seq["instances"][0]}


class _SyntheticDataset(torch.utils.data.Dataset):
    """Base: `length` items generated on the fly; item i renders scene `derive_seed(seed, split, i)`."""

    def __init__(self, length: int, seed: int = 0, cfg: SceneConfig = SceneConfig(), split: str = "train"):
        if length < 0:
            raise ValueError(f"{type(self).__name__}: length must be >= 0, got {length}")
        derive_seed(seed, split, 0)  # validates seed and split
        self.length, self.seed, self.cfg, self.split = int(length), int(seed), cfg, split

    def __len__(self) -> int:
        return self.length

    def _scene_seed(self, index: int) -> int:
        if not -self.length <= index < self.length:
            raise IndexError(f"{type(self).__name__}: index {index} out of range for length {self.length}")
        return derive_seed(self.seed, self.split, index % self.length)

    def _name(self, index: int) -> str:
        return f"synthetic_{self.split}_{self.seed}_{index % self.length:06d}"


class SyntheticFlowPairs(_SyntheticDataset):
    """Frame pairs: {"frame1","frame2" (3,H,W), "flow" (2,H,W) forward GT, "valid" (H,W) all True,
    "occlusion" (H,W) forward occlusion, "flow_bw" (2,H,W), "occlusion_bw" (H,W), "name"}."""

    def __getitem__(self, index: int) -> dict:
        pair = render_pair(self._scene_seed(index), self.cfg)
        return {"frame1": pair["frame1"], "frame2": pair["frame2"], "flow": pair["flow_fw"],
                "valid": torch.ones(self.cfg.height, self.cfg.width, dtype=torch.bool),
                "occlusion": pair["occlusion_fw"], "flow_bw": pair["flow_bw"],
                "occlusion_bw": pair["occlusion_bw"], "name": self._name(index)}


class SyntheticStills(_SyntheticDataset):
    """Still images with class labels: {"image" (3,H,W), "label" (H,W) int64 in [0, num_classes), "name"}."""

    def __getitem__(self, index: int) -> dict:
        still = render_still(self._scene_seed(index), self.cfg)
        return {"image": still["image"], "label": still["label"], "name": self._name(index)}


class SyntheticSequences(_SyntheticDataset):
    """Videos: {"frames" (T,3,H,W), "masks" (T,H,W) int64 instance ids, "classes" (T,H,W),
    "flows_fw" (T-1,2,H,W), "occlusions_fw" (T-1,H,W), "name"}."""

    def __init__(self, length: int, num_frames: int = 8, seed: int = 0, cfg: SceneConfig = SceneConfig(),
                 split: str = "train"):
        super().__init__(length, seed, cfg, split)
        if num_frames < 1:
            raise ValueError(f"SyntheticSequences: num_frames must be >= 1, got {num_frames}")
        self.num_frames = int(num_frames)

    def __getitem__(self, index: int) -> dict:
        seq = render_sequence(self._scene_seed(index), self.num_frames, self.cfg)
        return {"frames": seq["frames"], "masks": seq["instances"], "classes": seq["classes"],
                "flows_fw": seq["flows_fw"], "occlusions_fw": seq["occlusions_fw"], "name": self._name(index)}

