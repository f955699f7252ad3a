"""Glue between a trained MC-JEPA and the evaluators: datasets by name and frozen-feature functions.

Evaluation datasets by name (`root` needed for the real ones):
    flow:          embedded (held-out generated pairs), motorcycle, kitti2015, kitti2012, sintel_clean,
                   sintel_final, flyingchairs (val)
    segmentation:  embedded, pascal_voc, cityscapes, ade20k      -> (train, val) pair of datasets
    video:         embedded, davis2017
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..config import Config
from ..data.registry import embedded_scene
from ..models.mcjepa import MCJEPA
from .flow_metrics import InputPadder

EMBEDDED_EVAL = {"flow_pairs": 32, "seg_train": 96, "seg_val": 32, "sequences": 6, "frames": 8}


def _need_root(name: str, root: str | None) -> str:
    if root is None:
        raise ValueError(f"evaluation dataset {name!r} needs a root folder (check it with "
                         f"`python -m mcjepa data verify {name.split('_')[0]} ROOT`)")
    return root


def flow_eval_dataset(name: str, root: str | None, cfg: Config) -> Dataset:
    """A flow dataset with ground truth, by name."""
    from ..data import flow_datasets as fd

    if name == "embedded":
        from ..data.synthetic import SyntheticFlowPairs

        return SyntheticFlowPairs(EMBEDDED_EVAL["flow_pairs"], seed=cfg.data.seed, cfg=embedded_scene(cfg.data), split="test")
    if name == "motorcycle":
        from ..data.offline_sources import MotorcycleStereo

        return MotorcycleStereo(scale=0.25)
    builders = {
        "kitti2015": lambda r: fd.KITTI2015(r, split="training", occ="occ"),
        "kitti2012": lambda r: fd.KITTI2012(r, split="training", occ="occ"),
        "sintel_clean": lambda r: fd.Sintel(r, split="training", pass_="clean"),
        "sintel_final": lambda r: fd.Sintel(r, split="training", pass_="final"),
        "flyingchairs": lambda r: fd.FlyingChairs(r, split="val"),
    }
    if name not in builders:
        raise ValueError(f"unknown flow evaluation dataset {name!r}; known: {['embedded', 'motorcycle', *builders]}")
    return builders[name](_need_root(name, root))


def segmentation_datasets(name: str, root: str | None, cfg: Config) -> tuple[Dataset, Dataset, int]:
    """(train, val, num_classes) for the linear probe."""
    from ..data import content_datasets as cd

    if name == "embedded":
        from ..data.synthetic import CLASS_NAMES, SyntheticStills

        scene = embedded_scene(cfg.data)
        return (SyntheticStills(EMBEDDED_EVAL["seg_train"], seed=cfg.data.seed, cfg=scene, split="val"),
                SyntheticStills(EMBEDDED_EVAL["seg_val"], seed=cfg.data.seed, cfg=scene, split="test"),
                len(CLASS_NAMES))
    builders = {
        "pascal_voc": (lambda r: cd.PascalVOC(r, "train_aug"), lambda r: cd.PascalVOC(r, "val"), 21),
        "cityscapes": (lambda r: cd.Cityscapes(r, "train"), lambda r: cd.Cityscapes(r, "val"), 19),
        "ade20k": (lambda r: cd.ADE20k(r, "training"), lambda r: cd.ADE20k(r, "validation"), 150),
    }
    if name not in builders:
        raise ValueError(f"unknown segmentation dataset {name!r}; known: {['embedded', *builders]}")
    train, val, classes = builders[name]
    root = _need_root(name, root)
    return train(root), val(root), classes


def video_dataset(name: str, root: str | None, cfg: Config) -> Dataset:
    """Sequences with first-frame instance masks, DAVIS-style."""
    if name == "embedded":
        from ..data.synthetic import SyntheticSequences

        return SyntheticSequences(EMBEDDED_EVAL["sequences"], num_frames=EMBEDDED_EVAL["frames"], seed=cfg.data.seed,
                                  cfg=embedded_scene(cfg.data), split="test")
    if name == "davis2017":
        from ..data.content_datasets import DAVIS2017

        return DAVIS2017(_need_root(name, root), split="val")
    raise ValueError(f"unknown video dataset {name!r}; known: ['embedded', 'davis2017']")


def pad_to_stride(images: torch.Tensor, stride: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad (B,3,H,W) at the bottom/right to multiples of `stride`; returns the original (H, W).

    Bottom/right padding keeps feature cell (0, 0) aligned with pixel (0, 0), so maps are cropped from the
    top-left corner."""
    padder = InputPadder(images.shape, stride=stride, mode="bottom_right")
    return padder.pad_tensor(images), (padder.height, padder.width)


def feature_fn(model: MCJEPA, levels: str | tuple[int, ...] = "last") -> Callable[[torch.Tensor], torch.Tensor]:
    """Frozen dense features for probes and label propagation: images (B,3,H,W) -> (B, C, h, w).

    levels: "last" = the stride-32 stage (the paper's frozen-feature protocol); "concat" = the stride-8, 16
    and 32 stages resized to the stride-8 grid and concatenated; or explicit pyramid indices (finest = 0).
    Inputs of any size are padded to the model stride, and the features cropped back accordingly.
    """
    stage32 = len(model.encoder.stages)
    chosen = {"last": (stage32,), "concat": (stage32 - 2, stage32 - 1, stage32)}.get(levels, levels)

    @torch.no_grad()
    def features(images: torch.Tensor) -> torch.Tensor:
        device = next(model.parameters()).device
        padded, (height, width) = pad_to_stride(images.to(device), model.stride)
        pyramid = model.encoder(padded)
        finest = min(chosen)
        stride = model.encoder.strides[finest]
        size = (-(-height // stride), -(-width // stride))
        grid = pyramid[finest].shape[-2:]
        maps = [F.interpolate(pyramid[i], size=grid, mode="bilinear", align_corners=False) if i != finest
                else pyramid[i] for i in chosen]
        return torch.cat(maps, dim=1)[..., :size[0], :size[1]].cpu()

    return features


def pooled_fn(model: MCJEPA) -> Callable[[torch.Tensor], torch.Tensor]:
    """images (B,3,H,W) -> the pooled representation (B, D) (before the expander, as for linear eval)."""

    @torch.no_grad()
    def pooled(images: torch.Tensor) -> torch.Tensor:
        device = next(model.parameters()).device
        padded, _ = pad_to_stride(images.to(device), model.stride)
        return model.encoder.pool(model.encoder(padded)).cpu()

    return pooled


def flow_fn(model: MCJEPA) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """frame1, frame2 (B,3,H,W) (multiples of model.stride) -> forward flow (B,2,H,W) on the CPU."""

    def predict(frame1: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
        device = next(model.parameters()).device
        return model.predict_flow(frame1.to(device), frame2.to(device)).cpu()

    return predict
