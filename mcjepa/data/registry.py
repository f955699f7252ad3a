"""Build training datasets by name, so configs and the CLI can say `flow_datasets=("sintel*2", "kitti2015")`."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, Dataset

from ..config import DataConfig
from .cache import RenderedOnce

FLOW_DATASETS = ("embedded", "flyingchairs", "flyingthings3d", "sintel", "kitti2015", "kitti2012",
                 "kitti_multiview", "kitti_raw", "hd1k", "opencv_doc")
IMAGE_DATASETS = ("embedded", "imagenet")


def parse_mix(entry: str) -> tuple[str, int]:
    """"sintel*3" -> ("sintel", 3); "kitti2015" -> ("kitti2015", 1)."""
    name, _, repeat = entry.partition("*")
    try:
        times = int(repeat) if repeat else 1
    except ValueError as err:
        raise ValueError(f"flow dataset entry {entry!r}: the repeat factor after '*' must be an integer") from err
    if times < 1:
        raise ValueError(f"flow dataset entry {entry!r}: the repeat factor must be >= 1")
    return name, times


def _root(cfg: DataConfig, name: str) -> str:
    if name not in cfg.roots:
        raise ValueError(f"dataset {name!r} needs a root folder: set data.roots, e.g. "
                         f"--set \"data.roots={{'{name}': '/path/to/{name}'}}\" (check it with "
                         f"`python -m mcjepa data verify {name} /path/to/{name}`)")
    return cfg.roots[name]


def embedded_scene(cfg: DataConfig, split: str = "test"):
    """The generator settings of the embedded data for a data config; the train split may move faster
    (`embedded_train_max_translation`) while val/test stay the fixed held-out benchmark."""
    from .synthetic import SceneConfig

    translation = cfg.embedded_max_translation
    if split == "train" and cfg.embedded_train_max_translation > 0:
        translation = cfg.embedded_train_max_translation
    return SceneConfig(height=cfg.embedded_size[0], width=cfg.embedded_size[1], max_translation=translation)


def flow_dataset(name: str, cfg: DataConfig, split: str = "train", frames_only: bool = False) -> Dataset:
    """One flow dataset of unlabelled (for training) frame pairs by its registry name. `frames_only`: the
    trainer's view, items may hold only "frame1"/"frame2" (the embedded pairs then come rendered once from
    the cache, `mcjepa.data.cache`)."""
    if name == "embedded":
        from .synthetic import SyntheticFlowPairs

        length = cfg.embedded_pairs if split == "train" else max(16, cfg.embedded_pairs // 32)
        pairs = SyntheticFlowPairs(length, seed=cfg.seed, cfg=embedded_scene(cfg, split), split=split)
        return RenderedOnce(pairs, ("frame1", "frame2")) if frames_only else pairs
    from . import flow_datasets as fd

    builders: dict[str, Callable[[str], Dataset]] = {
        "flyingchairs": lambda root: fd.FlyingChairs(root, split="train" if split == "train" else "val"),
        "flyingthings3d": lambda root: fd.FlyingThings3D(root, split="TRAIN" if split == "train" else "TEST"),
        "sintel": lambda root: fd.Sintel(root, split="training"),
        "kitti2015": lambda root: fd.KITTI2015(root, split="training"),
        "kitti2012": lambda root: fd.KITTI2012(root, split="training"),
        "kitti_multiview": lambda root: fd.KITTIMultiview(root),
        "kitti_raw": lambda root: fd.KITTIRaw(root),
        "hd1k": lambda root: fd.HD1K(root),
    }
    if name == "opencv_doc":
        from .offline_sources import OpenCVDocVideos

        return OpenCVDocVideos(size=cfg.embedded_size)
    if name not in builders:
        raise ValueError(f"unknown flow dataset {name!r}; known: {FLOW_DATASETS}")
    return builders[name](_root(cfg, name))


def flow_mix(cfg: DataConfig, split: str = "train", frames_only: bool = False) -> Dataset:
    """The configured mix of flow datasets, each repeated by its factor (RAFT-style `3*sintel + kitti`)."""
    parts = []
    for entry in cfg.flow_datasets:
        name, times = parse_mix(entry)
        parts += [flow_dataset(name, cfg, split, frames_only)] * times
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def image_dataset(cfg: DataConfig, split: str = "train", images_only: bool = False) -> Dataset:
    """Still images for the content (VICReg) branch; `images_only` as `frames_only` in `flow_dataset`."""
    name = cfg.image_dataset
    if name == "embedded":
        from .synthetic import SyntheticStills

        length = cfg.embedded_pairs if split == "train" else max(16, cfg.embedded_pairs // 32)
        stills = SyntheticStills(length, seed=cfg.seed, cfg=embedded_scene(cfg), split=split)
        return RenderedOnce(stills, ("image",)) if images_only else stills
    if name == "imagenet":
        from .content_datasets import ImageFolder

        return ImageFolder(_root(cfg, name), split=split)
    raise ValueError(f"unknown image dataset {name!r}; known: {IMAGE_DATASETS}")


def random_crop(tensors: dict[str, torch.Tensor], size: tuple[int, int], generator: torch.Generator,
                name: str = "") -> dict[str, torch.Tensor]:
    """Crop every (.., H, W) tensor of a sample at one random offset to `size` = (h, w)."""
    reference = next(v for v in tensors.values() if isinstance(v, torch.Tensor))
    height, width = reference.shape[-2:]
    h, w = size
    if height < h or width < w:
        raise ValueError(f"sample {name!r} is {height}x{width}, smaller than the crop {h}x{w}: lower data.crop")
    top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
    return {k: v[..., top:top + h, left:left + w] if isinstance(v, torch.Tensor) else v for k, v in tensors.items()}


def collate_pairs(samples: list[dict], crop: tuple[int, int], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """List of pair samples of any size -> batch {"frame1","frame2" (B,3,h,w), "flow"/"valid" if all have them}."""
    keys = [k for k in ("frame1", "frame2", "flow", "valid", "occlusion") if all(k in s for s in samples)]
    cropped = [random_crop({k: s[k] for k in keys}, crop, generator, s.get("name", "")) for s in samples]
    return {k: torch.stack([c[k] for c in cropped]) for k in keys}


def collate_images(samples: list[dict], size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """List of still samples of any size -> (B, 3, h, w): resize the shorter side to fit `size`, random crop.

    The VICReg views (random resized crops) are then taken from these base images.
    """
    images = []
    for sample in samples:
        image = sample["image"]
        factor = max(size[0] / image.shape[-2], size[1] / image.shape[-1])
        if abs(factor - 1.0) > 1e-6 and (image.shape[-2] != size[0] or image.shape[-1] != size[1]):
            new = (max(size[0], round(image.shape[-2] * factor)), max(size[1], round(image.shape[-1] * factor)))
            image = F.interpolate(image[None], size=new, mode="bilinear", align_corners=False, antialias=True)[0]
        images.append(random_crop({"image": image}, size, generator, sample.get("name", ""))["image"])
    return torch.stack(images)
