"""Every dataset by name: the training sets of a config (`flow_datasets=("sintel*2", "kitti2015")`) and the
evaluation sets of each task, with their root folders, aliases, class names, paper-table columns, and what is
evaluated on at each scale. Adding an evaluation dataset is one entry in `EVAL_DATASETS` (and in
`SCALE_DATASETS` if a scale evaluates on it by default).

    training:      flow_dataset / flow_mix (frame pairs), image_dataset (stills), collate_pairs / collate_images
    evaluation:    flow_eval_dataset (pairs with ground truth), segmentation_datasets ((train, val, classes) of
                   the linear probe), video_dataset (sequences with first-frame instance masks, DAVIS-style)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, Dataset

from ..config import Config, DataConfig
from . import content_datasets as cd
from . import flow_datasets as fd
from .cache import RenderedOnce
from .offline_sources import MotorcycleStereo, OpenCVDocVideos
from .synthetic import CLASS_NAMES, SceneConfig, SyntheticFlowPairs, SyntheticSequences, SyntheticStills
from .video import VideoPairs

FLOW_DATASETS = ("embedded", "flyingchairs", "flyingthings3d", "sintel", "kitti2015", "kitti2012",
                 "kitti_multiview", "kitti_raw", "hd1k", "opencv_doc")
IMAGE_DATASETS = ("embedded", "imagenet")
VIDEO_PREFIX = "video:"  # "video:NAME": your own video or folder of frames, path in data.roots["video:NAME"]


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
    (`embedded_train_max_translation`, `embedded_train_background_motion`) while val/test stay the fixed held-out
    benchmark."""
    held_out = SceneConfig(height=cfg.embedded_size[0], width=cfg.embedded_size[1],
                           max_translation=cfg.embedded_max_translation, textures=cfg.embedded_textures,
                           texture_scale=cfg.embedded_texture_scale)
    if split != "train":
        return held_out
    translation = cfg.embedded_train_max_translation or cfg.embedded_max_translation
    return replace(held_out, max_translation=translation,
                   background_motion_fraction=cfg.embedded_train_background_motion)


def flow_dataset(name: str, cfg: DataConfig, split: str = "train", frames_only: bool = False) -> Dataset:
    """One flow dataset of unlabelled (for training) frame pairs by its registry name. `frames_only`: the
    trainer's view, items may hold only "frame1"/"frame2" (the embedded pairs then come rendered once from
    the cache, `mcjepa.data.cache`)."""
    if name == "embedded":
        length = cfg.embedded_pairs if split == "train" else max(16, cfg.embedded_pairs // 32)
        pairs = SyntheticFlowPairs(length, seed=cfg.seed, cfg=embedded_scene(cfg, split), split=split)
        return RenderedOnce(pairs, ("frame1", "frame2")) if frames_only else pairs
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
        return OpenCVDocVideos(size=cfg.embedded_size)
    if name.startswith(VIDEO_PREFIX) and len(name) > len(VIDEO_PREFIX):
        return VideoPairs(_root(cfg, name), crop=cfg.crop, split=split, max_frames=cfg.video_max_frames)
    if name not in builders:
        raise ValueError(f"unknown flow dataset {name!r}; known: {FLOW_DATASETS}, or {VIDEO_PREFIX}NAME for your "
                         f"own video (its file or folder of frames in data.roots['{VIDEO_PREFIX}NAME'])")
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
        length = cfg.embedded_pairs if split == "train" else max(16, cfg.embedded_pairs // 32)
        stills = SyntheticStills(length, seed=cfg.seed, cfg=embedded_scene(cfg), split=split)
        return RenderedOnce(stills, ("image",)) if images_only else stills
    if name == "imagenet":
        return cd.ImageFolder(_root(cfg, name), split=split)
    raise ValueError(f"unknown image dataset {name!r}; known: {IMAGE_DATASETS}")


def labelled_stills(cfg: DataConfig) -> Dataset:
    """The embedded training stills with their class maps, {"image" (3,H,W), "label" (H,W) int64}, rendered
    once: the training data of the supervised ceiling (`train.method="supervised"`), the same stills as VICReg's.
    Raises ValueError for another image dataset (no dense labels)."""
    if cfg.image_dataset != "embedded":
        raise ValueError(f"labelled stills exist for the embedded data only, not data.image_dataset="
                         f"{cfg.image_dataset!r}")
    stills = SyntheticStills(cfg.embedded_pairs, seed=cfg.seed, cfg=embedded_scene(cfg), split="train")
    return RenderedOnce(stills, ("image", "label"))


def collate_labelled(samples: list[dict], size: tuple[int, int], generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Labelled stills -> (images (B,3,h,w), labels (B,h,w) int64): one random crop of `size` = (h, w) per
    still, the same for image and label, then a horizontal flip with probability 1/2 (both drawn from
    `generator`). No resizing, so the labels stay exact. Raises ValueError for a still smaller than `size`."""
    images, labels = [], []
    for sample in samples:
        crop = random_crop({"image": sample["image"], "label": sample["label"]}, size, generator,
                           sample.get("name", ""))
        flip = bool(torch.rand((), generator=generator) < 0.5)
        images.append(crop["image"].flip(-1) if flip else crop["image"])
        labels.append(crop["label"].flip(-1) if flip else crop["label"])
    return torch.stack(images), torch.stack(labels).long()


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


# ---- evaluation datasets ------------------------------------------------------------------------------------

EVAL_TASKS = ("flow", "segmentation", "davis")
# The embedded probe protocol, chosen on the reference rows alone (raw colour, the untrained encoder, the
# supervised ceiling; seed 0, 3 probe seeds; README "Content evaluations"):
# - features: the stride-32 stage (the paper's) is a 3x4 grid at 96x128 and every encoder's probe, the
#   ceiling's included, predicted background nearly everywhere (14.6-16.0 mIoU); the stride-8/16/32 stages
#   ("concat") give raw colour 14.9, untrained 35.2, supervised 65.8 on 96/32 stills;
# - probe set: 384 train / 128 val stills instead of 96 / 32: ceiling minus the best floor 35.6 points instead
#   of 30.6 (raw colour 24.2, untrained 42.2, supervised 77.7); the probe seed moves mIoU by < 0.5 point;
# - class weights: none. Tried on textures without class colours, balanced cross-entropy sent the raw-colour
#   probe to the rare classes everywhere (3.9 mIoU, 4 % pixel accuracy): floors that mean nothing.
EMBEDDED_EVAL = {"flow_pairs": 32, "seg_train": 384, "seg_val": 128, "sequences": 6, "frames": 8}
EMBEDDED_PROBE_WEIGHTS = "none"


@dataclass(frozen=True)
class EvalDataset:
    """One evaluation dataset of a task.

    build:         (root or None, config) -> the dataset; segmentation: (train, val) of the linear probe
    root:          the `data.roots` name of its folder when it shares a training dataset's (sintel_clean and
                   sintel_final read "sintel"); None: its own name, or no folder at all (`needs_root=False`)
    needs_root:    False for the data that comes with the kit (embedded, Motorcycle)
    classes:       class names, index = label id (segmentation only)
    paper_column:  the column of the paper's table (mcjepa.eval.tables) its headline number goes to
    stands_in_for: at tiny scale, the paper column it stands in for (the row label says so)
    features:      the frozen features the probe / label propagation reads (`eval.runners.feature_fn` levels):
                   "last" = the stride-32 stage (the paper's protocol at 512 px: a 16x16 grid), "concat" = the
                   stride-8, 16 and 32 stages on the stride-8 grid (DINO's propagation grid; the embedded
                   stills at 96x128 give a 3x4 stride-32 grid, on which every probe predicted background)
    class_weights: the linear probe's cross-entropy weights (`LinearProbeConfig.class_weights`)
    """

    build: Callable[[str | None, Config], object]
    root: str | None = None
    needs_root: bool = True
    classes: tuple[str, ...] = ()
    paper_column: str | None = None
    stands_in_for: str | None = None
    features: str = "last"
    class_weights: str = "none"


def _embedded_pairs(root: str | None, cfg: Config) -> Dataset:
    return SyntheticFlowPairs(EMBEDDED_EVAL["flow_pairs"], seed=cfg.data.seed, cfg=embedded_scene(cfg.data),
                              split="test")


def _embedded_stills(root: str | None, cfg: Config) -> tuple[Dataset, Dataset]:
    scene = embedded_scene(cfg.data)
    return (SyntheticStills(EMBEDDED_EVAL["seg_train"], seed=cfg.data.seed, cfg=scene, split="val"),
            SyntheticStills(EMBEDDED_EVAL["seg_val"], seed=cfg.data.seed, cfg=scene, split="test"))


def _embedded_sequences(root: str | None, cfg: Config) -> Dataset:
    return SyntheticSequences(EMBEDDED_EVAL["sequences"], num_frames=EMBEDDED_EVAL["frames"], seed=cfg.data.seed,
                              cfg=embedded_scene(cfg.data), split="test")


EVAL_DATASETS: dict[str, dict[str, EvalDataset]] = {
    "flow": {
        "embedded": EvalDataset(_embedded_pairs, needs_root=False, stands_in_for="sintel_clean_train"),
        "motorcycle": EvalDataset(lambda r, c: MotorcycleStereo(scale=0.25), needs_root=False,
                                  stands_in_for="kitti2015_train_epe"),
        "kitti2015": EvalDataset(lambda r, c: fd.KITTI2015(r, split="training", occ="occ"),
                                 paper_column="kitti2015_train_epe"),
        "kitti2012": EvalDataset(lambda r, c: fd.KITTI2012(r, split="training", occ="occ")),
        "sintel_clean": EvalDataset(lambda r, c: fd.Sintel(r, split="training", pass_="clean"), root="sintel",
                                    paper_column="sintel_clean_train"),
        "sintel_final": EvalDataset(lambda r, c: fd.Sintel(r, split="training", pass_="final"), root="sintel",
                                    paper_column="sintel_final_train"),
        "flyingchairs": EvalDataset(lambda r, c: fd.FlyingChairs(r, split="val")),
    },
    "segmentation": {
        "embedded": EvalDataset(_embedded_stills, needs_root=False, classes=tuple(CLASS_NAMES),
                                stands_in_for="voc_linear", features="concat", class_weights=EMBEDDED_PROBE_WEIGHTS),
        "pascal_voc": EvalDataset(lambda r, c: (cd.PascalVOC(r, "train_aug"), cd.PascalVOC(r, "val")),
                                  classes=cd.VOC_CLASSES, paper_column="voc_linear"),
        "cityscapes": EvalDataset(lambda r, c: (cd.Cityscapes(r, "train"), cd.Cityscapes(r, "val")),
                                  classes=cd.CITYSCAPES_CLASSES, paper_column="cityscapes_linear"),
        "ade20k": EvalDataset(lambda r, c: (cd.ADE20k(r, "training"), cd.ADE20k(r, "validation")),
                              classes=cd.ADE20K_CLASSES, paper_column="ade20k_linear"),
    },
    "davis": {
        "embedded": EvalDataset(_embedded_sequences, needs_root=False, stands_in_for="davis_jf", features="concat"),
        "davis2017": EvalDataset(lambda r, c: cd.DAVIS2017(r, split="val"), paper_column="davis_jf",
                                 features="concat"),
    },
}

# What each scale evaluates on, per task; the first dataset of each is the one of the ablation points (the
# paper's ablations report KITTI-15 EPE, VOC mIoU and DAVIS J&F).
SCALE_DATASETS: dict[str, dict[str, tuple[str, ...]]] = {
    "tiny": {"flow": ("embedded", "motorcycle"), "segmentation": ("embedded",), "davis": ("embedded",)},
    "paper": {"flow": ("kitti2015", "sintel_clean", "sintel_final"),
              "segmentation": ("pascal_voc", "cityscapes", "ade20k"), "davis": ("davis2017",)},
}


def eval_spec(task: str, name: str) -> EvalDataset:
    """The registry entry of evaluation dataset `name` of `task`; ValueError listing the known ones."""
    if task not in EVAL_DATASETS:
        raise ValueError(f"unknown evaluation task {task!r}; known: {EVAL_TASKS}")
    if name not in EVAL_DATASETS[task]:
        kind = {"flow": "flow evaluation", "segmentation": "segmentation", "davis": "video"}[task]
        raise ValueError(f"unknown {kind} dataset {name!r}; known: {list(EVAL_DATASETS[task])}")
    return EVAL_DATASETS[task][name]


def eval_roots(roots: Mapping[str, str] | None) -> dict:
    """`roots` plus the evaluation names that share a training dataset's folder (sintel_clean and sintel_final
    from "sintel"), so one `data_roots` dict serves the training and the evaluation notebooks."""
    out = dict(roots or {})
    for per_task in EVAL_DATASETS.values():
        for name, spec in per_task.items():
            if spec.root and name not in out and spec.root in out:
                out[name] = out[spec.root]
    return out


def _build(task: str, name: str, root: str | None, cfg: Config):
    spec = eval_spec(task, name)
    if spec.needs_root and root is None:
        raise ValueError(f"evaluation dataset {name!r} needs a root folder (check it with "
                         f"`python -m mcjepa data verify {spec.root or name} ROOT`)")
    return spec.build(root, cfg)


def describe_pairs(samples) -> str:
    """One line per flow sample (a dataset item with "name", "frame1", "flow" and optionally "valid"): its name,
    size, the largest and mean ground-truth motion over its valid pixels and their share. Ground truth only, no
    model: notebook 12 prints it for the pairs it shows (nbval compares it)."""
    lines = []
    for sample in samples:
        flow = sample["flow"]
        valid = sample.get("valid")
        valid = (torch.ones(flow.shape[-2:], dtype=torch.bool) if valid is None
                 else valid.bool().reshape(flow.shape[-2:]))
        magnitude = flow.norm(dim=0)[valid]
        height, width = sample["frame1"].shape[-2:]
        lines.append(f"{sample['name']}: {height}x{width}, |flow| max {magnitude.max():.2f} px, mean "
                     f"{magnitude.mean():.2f} px, {valid.float().mean():.1%} valid")
    return "\n".join(lines)


def flow_eval_dataset(name: str, root: str | None, cfg: Config) -> Dataset:
    """A flow dataset with ground truth, by name (`EVAL_DATASETS["flow"]`)."""
    return _build("flow", name, root, cfg)


def segmentation_datasets(name: str, root: str | None, cfg: Config) -> tuple[Dataset, Dataset, int]:
    """(train, val, num_classes) for the linear probe."""
    train, val = _build("segmentation", name, root, cfg)
    return train, val, len(EVAL_DATASETS["segmentation"][name].classes)


def video_dataset(name: str, root: str | None, cfg: Config) -> Dataset:
    """Sequences with first-frame instance masks, DAVIS-style."""
    return _build("davis", name, root, cfg)


def class_names(dataset: str) -> tuple[str, ...]:
    """Class names of a segmentation evaluation dataset (embedded: the synthetic classes)."""
    if dataset not in EVAL_DATASETS["segmentation"]:
        raise ValueError(f"no class names for segmentation dataset {dataset!r}; known: "
                         f"{list(EVAL_DATASETS['segmentation'])}")
    return EVAL_DATASETS["segmentation"][dataset].classes
