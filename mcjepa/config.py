"""Plain dataclass configs with the paper's defaults, a `tiny()` preset, and dotted-name overrides.

`paper()` follows the paper as restated in docs/method.md (ConvNeXt-T, 6-level pyramid, 100 epochs, flow from
epoch 10, ...).
Where the paper's exact value is unknown the field's comment says "our choice". `tiny()` is small enough to
train in minutes on 2 CPU cores at 96x128 on the embedded synthetic data.

Overrides use dotted names, from the CLI (`--set loss.cycle=0.2`) and from notebooks
(`apply_overrides(cfg, {"loss.cycle": 0.2})`); an unknown name is an error that lists the valid ones.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping


# -- what a field declares beside its default ---------------------------------------------------------------
# Each knob's valid range sits next to it (`knob(default, rule)`); `validate` checks every field against its rule.
# A rule is (predicate, the valid range in words). Types are checked first, against the default (`_check_type`).
NON_NEGATIVE = (lambda v: v >= 0, ">= 0")
AT_LEAST_ONE = (lambda v: v >= 1, ">= 1")
POSITIVE = (lambda v: v > 0, "> 0")
PROBABILITY = (lambda v: 0 <= v <= 1, "in [0, 1]")
CHECKED_WHERE_USED = (lambda v: True, "checked where it is used")  # names and paths (the dataset registry, ...)
METHODS = ("m-jepa", "vicreg", "mc-jepa", "supervised")


def choice(*options: Any) -> tuple:
    """The rule of a field that takes one of `options`."""
    words = " or ".join(", ".join(repr(o) for o in options).rsplit(", ", 1))
    return (lambda v: v in options, words)


def knob(default: Any, valid: tuple | None = None, neutral: bool = False) -> Any:
    """A config field: its `default`, its `valid` rule (None only for bools, tuples and dicts: their type, and
    `_check_tuples`, say what is valid) and whether it is hash-`neutral`: a knob added after runs were cached
    whose default reproduces the behaviour from before it existed; while it holds that default it is left out of
    the run's identity (`identity`), so adding it does not orphan every cached run. A field that is not neutral
    changes every run's hash when it is added (tests/test_config_fields.py names it)."""
    return field(default=default, metadata={"valid": valid, "neutral": neutral})


@dataclass
class EncoderConfig:
    """ConvNeXt pyramid. Levels, finest first: stem (stride 2), the four stages (4, 8, 16, 32), extra (64)."""

    stem_dim: int = knob(48, AT_LEAST_ONE)  # our choice: width of the stride-2 level (the split stride-4 stem)
    depths: tuple[int, ...] = (3, 3, 9, 3)  # ConvNeXt-T
    dims: tuple[int, ...] = (96, 192, 384, 768)  # ConvNeXt-T
    extra_level: bool = True  # a stride-64 level so the flow pyramid has 6 levels, as in the paper
    drop_path: float = knob(0.1, (lambda v: 0 <= v < 1, "in [0, 1)"))
    layer_scale_init: float = knob(1e-6, NON_NEGATIVE)


@dataclass
class FlowHeadConfig:
    """PWC-style coarse-to-fine estimator (paper: LayerNorm after every conv but the last; flows clipped at 128)."""

    strides: tuple[int, ...] = (64, 32, 16, 8, 4, 2)  # pyramid levels used, coarse to fine
    # cost volume radius r -> (2r+1)^2 channels (PWC-Net)
    radius: int = knob(4, (lambda v: v >= 1, ">= 1 (the cost volume has (2r+1)^2 channels)"))
    widths: tuple[int, ...] = (128, 128, 96, 64, 32)  # estimator convs before the flow output
    filter_factor: int = knob(2, AT_LEAST_ONE)  # paper: estimator "filter factor 2" multiplies the widths
    shared_estimator: bool = True  # one estimator for all levels after a 1x1 projection (ARFlow-style)
    projection_dim: int = knob(64, AT_LEAST_ONE)  # our choice: common width of the 1x1 projections
    # "none" | "l2" | "center": normalisation before the cost volume (ablated)
    feature_norm: str = knob("none", choice("none", "l2", "center"))
    layer_norm: bool = True
    flow_clip: float = knob(128.0, POSITIVE)
    # finest flow to the image: "bilinear" (the paper) | "convex" (RAFT's learned upsampling: per image pixel a softmax
    # over the 3x3 coarse neighbours, weights predicted from the features)
    upsample: str = knob("bilinear", choice("bilinear", "convex"))


@dataclass
class ModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    flow: FlowHeadConfig = field(default_factory=FlowHeadConfig)
    expander: tuple[int, ...] = (8192, 8192, 8192)  # VICReg expander widths after the pooled 768-d vector
    # classes of the 1x1 segmentation head of train.method="supervised" (0: no head)
    segmentation_classes: int = knob(0, NON_NEGATIVE, neutral=True)


@dataclass
class LossConfig:
    """Coefficients of L = L_flow + balance * L_ssl (see mcjepa/losses/total.py for the equations)."""

    reconstruction: float = knob(1.0, NON_NEGATIVE)
    rec_l1: float = knob(0.15, NON_NEGATIVE)  # ARFlow's balance; our choice
    rec_l2: float = knob(0.0, NON_NEGATIVE)  # the paper names L2 too; weight unknown, off by default (our choice)
    rec_ssim: float = knob(0.85, NON_NEGATIVE)
    # census (ternary) loss of UnFlow/ARFlow/UFlow; not in the paper (tiny preset: on)
    rec_census: float = knob(0.0, NON_NEGATIVE)
    census_radius: int = knob(3, AT_LEAST_ONE)  # census patch (2r+1)^2: UFlow's 7x7
    regression: float = knob(1.0, NON_NEGATIVE)  # feature regression (JEPA prediction), every level
    smoothness: float = knob(75.0, NON_NEGATIVE)  # ARFlow KITTI value, applied to flow / min(H, W)
    smooth_order: int = knob(2, choice(1, 2))
    smooth_alpha: float = knob(10.0, NON_NEGATIVE)
    cycle: float = knob(0.1, NON_NEGATIVE)  # our choice; the subject of Fig. 5-2
    feature_losses_train_flow: bool = True  # regression/cycle gradients reach the flow (the flow as predictor);
    # False: they shape only the features and the flow learns from the image reconstruction (tiny preset)
    vc: float = knob(1.0, NON_NEGATIVE)  # weight of the variance-covariance regulariser on every level
    vc_variance: float = knob(1.0, NON_NEGATIVE)
    vc_covariance: float = knob(0.04, NON_NEGATIVE)  # VICReg's 25:1 variance:covariance ratio
    # positions per level fed to the covariance (evenly strided subsample)
    vc_max_positions: int = knob(4096, AT_LEAST_ONE)
    level_weights: tuple[float, ...] = ()  # per-level multipliers, coarse to fine; () = all ones
    rec_coarse_weights: tuple[float, ...] = ()  # reconstruction loss of the coarser flow levels (ARFlow's
    # multi-scale photometric loss), coarse to fine, one per level but the finest; () = finest level only
    # where the smoothness term reads the flow: "image" (the finest flow upsampled to the image, ARFlow) | "flow" (the
    # finest flow level itself, against the image area-resized to it: UFlow)
    smooth_level: str = knob("image", choice("image", "flow"))
    # "fb": UnFlow's forward-backward check (the paper) | "range": Wang et al.'s range map (pixels of frame 1 that the
    # backward flow of frame 2 lands on less than occlusion_range_threshold)
    occlusion_method: str = knob("fb", choice("fb", "range"))
    occlusion_alpha1: float = knob(0.01, NON_NEGATIVE)  # UnFlow forward-backward check
    occlusion_alpha2: float = knob(0.5, NON_NEGATIVE)
    occlusion_range_threshold: float = knob(0.2, NON_NEGATIVE)  # ARFlow's value for the range map
    # our guard: at most this share of each image is masked (the most inconsistent pixels); without it a poor flow can
    # mask every pixel and the photometric loss vanishes
    occlusion_max_fraction: float = knob(0.5, PROBABILITY)
    use_occlusion: bool = True
    # epochs after the flow starts (train.flow_start_epoch for MC-JEPA, 0 otherwise); our choice: mask occlusions only
    # once the flow is roughly right
    occlusion_start_epoch: float = knob(1.0, NON_NEGATIVE)
    vicreg_sim: float = knob(25.0, NON_NEGATIVE)
    vicreg_std: float = knob(25.0, NON_NEGATIVE)
    vicreg_cov: float = knob(1.0, NON_NEGATIVE)
    balance: float = knob(0.1, NON_NEGATIVE)  # lambda of L_flow + lambda * L_ssl (Fig. 5-3)
    # supervised ceiling: "balanced" weighs each class present in the batch equally (1 / (K' * its pixel share)), "none"
    # plain cross-entropy (87 % of the pixels are background)
    supervised_class_weights: str = knob("balanced", choice("balanced", "none"), neutral=True)


@dataclass
class DataConfig:
    flow_datasets: tuple[str, ...] = ("embedded",)  # "name" or "name*repeat"; real ones need roots
    image_dataset: str = knob("embedded", CHECKED_WHERE_USED)  # a name of the dataset registry
    roots: dict[str, str] = field(default_factory=dict)  # dataset name -> root folder
    crop: tuple[int, int] = (256, 832)  # flow training crop (H, W)
    image_size: tuple[int, int] = (224, 224)  # VICReg view size
    image_base: tuple[int, int] = (256, 256)  # stills are resized/cropped to this before the views are drawn
    embedded_pairs: int = knob(4096, AT_LEAST_ONE)  # size of the generated training set (rendered on the fly)
    embedded_size: tuple[int, int] = (96, 128)
    # px/frame of the generated objects (background: 0.4x); defines the held-out evaluation pairs too
    embedded_max_translation: float = knob(8.0, NON_NEGATIVE)
    # training pairs only; 0 = same as embedded_max_translation
    embedded_train_max_translation: float = knob(0.0, (lambda v: v >= 0, ">= 0 (0: same as embedded_max_translation)"))
    # training pairs only: the background's motion as a fraction of the objects' (translation, rotation, scale
    # change; data.synthetic_scene.SceneConfig.background_motion_fraction); the held-out pairs keep 0.4. At 1.0
    # the training backgrounds move up to 16 px like the real pair (10-15 px at 1/4): measured on tiny M-JEPA,
    # seed 0, 600 / 1,200 / 2,400 steps, Motorcycle 2.98 / 2.21 / 1.79 px against 3.93 / 3.51 / 2.68 at 0.4,
    # embedded test 1.46 / 1.17 / 0.97 against 1.34 / 1.13 / 0.93; MC-JEPA 2.97 / 2.59 / 1.77 against 4.78 / 4.07 /
    # 2.58, 1.54 / 1.20 / 0.93 against 1.38 / 1.16 / 0.89 (README, "Flow levers"). tiny() keeps 0.4 so far: the
    # claims' stored runs and `make demo`'s figures were trained with it
    embedded_train_background_motion: float = knob(0.4, PROBABILITY, neutral=True)
    # "class": each class its own photo | "scene": one photo for every layer of a scene, background included
    # (camouflage: only outline and motion tell objects apart) | "texture": each class its own photo, in grey
    # with its low frequencies removed (no colour cue; data.synthetic_scene)
    embedded_textures: str = knob("class", choice("class", "scene", "texture"), neutral=True)
    # the object classes' photos are resized to a short side of this many times min(H, W): smaller = more texture
    # periods inside an object (data.synthetic_scene). It changes every embedded dataset, the training pairs and the
    # held-out flow and content benchmarks included, so results are comparable only at the same value. In the
    # "texture" mode, 0.6 lifts the supervised ceiling from probe 24.7 / J&F 24.5 (3.0) to 33.9 / 28.0, the floors
    # stay at 14.5 / <= 14.5 (README, "Content evaluations")
    embedded_texture_scale: float = knob(3.0, POSITIVE, neutral=True)
    seed: int = knob(0, NON_NEGATIVE)
    # the image stream's batch order is seeded by seed + this (the pairs': seed) frame-pair augmentation
    # (mcjepa.data.augment.FlowAugment; no crop, no scaling: the flow losses need none)
    image_seed_offset: int = knob(7919, NON_NEGATIVE, neutral=True)
    flow_hflip_p: float = knob(0.5, PROBABILITY, neutral=True)  # horizontal flip of both frames
    # ColorJitter brightness, contrast, saturation, hue
    flow_jitter: tuple[float, ...] = knob((0.2, 0.2, 0.2, 0.05), neutral=True)
    flow_jitter_p: float = knob(0.8, PROBABILITY, neutral=True)  # one jitter draw per pair, shared by both frames
    # VICReg views (VICRegAugConfig): "paper" | "tiny" (crops >= 25 % of the area, blur sigma <= 1 px) | "auto": "tiny"
    # when the views are smaller than 128 px, else "paper"
    view_augment: str = knob("auto", choice("auto", "tiny", "paper"), neutral=True)
    # the supervised ceiling's stills: "none" (crop and flip only) | "views" (also the VICReg views' colour jitter and
    # grayscale, data.augment.ColourViews, at the strength of the data.view_augment preset). Measured (seed 0): "views"
    # lowers the ceiling's probe 77.7 -> 59.3 and J&F 61.7 -> 59.3 on the shipped data; under a per-frame lighting
    # change of the videos (an exploration, not shipped) it reads J&F 42.0 where "none" reads 27.5 (README,
    # "Content evaluations"). "none" stays the default
    supervised_colour: str = knob("none", choice("none", "views"), neutral=True)
    # frames decoded per "video:NAME" training video (mcjepa.data.video); 0 = all
    video_max_frames: int = knob(0, (lambda v: v >= 0, ">= 0 (0: every frame)"), neutral=True)


@dataclass
class TrainConfig:
    # "m-jepa" | "vicreg" | "mc-jepa" | "supervised" (the content ceiling: cross-entropy on the class maps of the
    # embedded stills, same steps and image batch as VICReg; mcjepa.train.trainer)
    method: str = knob("mc-jepa", choice(*METHODS))
    epochs: int = knob(100, AT_LEAST_ONE)
    steps_per_epoch: int = knob(1000, AT_LEAST_ONE)
    flow_start_epoch: float = knob(10.0, NON_NEGATIVE)  # SSL only before this epoch (MC-JEPA); Fig. 5-1
    warmup_epochs: float = knob(10.0, NON_NEGATIVE)
    batch_size: int = knob(8, AT_LEAST_ONE)  # frame pairs per step, global: N processes take batch_size / N each
    # still images per step, global (as batch_size)
    image_batch_size: int = knob(384, (lambda v: v >= 2, ">= 2 (VICReg's variance and BatchNorm need two images)"))
    # "combined": both batches every step | "alternate": one stream per step
    sampling: str = knob("combined", choice("combined", "alternate"))
    lr_encoder: float = knob(3e-4, NON_NEGATIVE)
    lr_flow: float = knob(1e-4, NON_NEGATIVE)
    weight_decay: float = knob(0.05, NON_NEGATIVE)  # our choice (ConvNeXt default)
    min_lr_ratio: float = knob(0.01, PROBABILITY)
    grad_clip: float = knob(1.0, (lambda v: v > 0, "> 0 (inf: no clipping)"))
    amp: str = knob("bf16", choice("bf16", "none"))  # "bf16" on CUDA, ignored on CPU; "none" to disable
    device: str = knob("auto", (lambda v: v in ("auto", "cpu", "cuda", "mps") or v[:5] == "cuda:" and v[5:].isdigit(),
                                "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"))
    num_workers: int = knob(4, NON_NEGATIVE)
    seed: int = knob(0, NON_NEGATIVE)
    log_every: int = knob(10, AT_LEAST_ONE)
    checkpoint_every: int = knob(1000, AT_LEAST_ONE)
    # instability guard: stop when a level's mean feature norm exceeds it
    max_feature_norm: float = knob(1e4, POSITIVE)
    # collapse guard: stop when a level's feature std falls below it once the flow losses are on (0 = off); see
    # TrainingDiverged
    min_feature_std: float = knob(0.0, NON_NEGATIVE, neutral=True)
    # guard: stop when the occlusion mask covers more than this share of the pixels, which leaves the photometric loss
    # (and the flow) without signal (1 = off)
    max_occluded_fraction: float = knob(0.99, PROBABILITY)
    # step s augments the pairs with step_seed(seed + this, s)
    flow_augment_seed_offset: int = knob(1, NON_NEGATIVE, neutral=True)
    # step s draws the VICReg views with step_seed(seed + this, s)
    views_seed_offset: int = knob(2, NON_NEGATIVE, neutral=True)
    # a run folder or checkpoint whose encoder and flow head start this run (fine-tuning); "" = none
    init: str = knob("", CHECKED_WHERE_USED, neutral=True)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def total_steps(self) -> int:
        return int(self.train.epochs * self.train.steps_per_epoch)


def paper() -> Config:
    """The paper's settings (8 V100s, ImageNet + the flow mix)."""
    cfg = Config()
    cfg.data.flow_datasets = ("kitti_raw*1", "sintel*1", "flyingchairs*1", "flyingthings3d*1", "hd1k*1")
    cfg.data.image_dataset = "imagenet"
    return cfg


def tiny() -> Config:
    """Minutes on 2 CPU cores at 96x128 on the embedded data.

    Each departure from `paper()` was measured at this scale (held-out embedded pairs / Motorcycle EPE, px;
    README "What the tiny reproduction gives" has the curves):
    - census loss instead of 0.15 L1 + 0.85 SSIM: at 1,600 steps 0.98 vs 1.32 embedded (SSIM plateaus at
      ~1.43 val); the photometric textures are smooth (mean |dI| 0.016 per px), where L1/SSIM flatten out;
    - centred features before the cost volume (UFlow): 1.35 vs ~1.47 at 400 steps;
    - layer scale 1.0 instead of 1e-6: a 1e-6 residual branch barely moves in a few hundred steps
      (1.32 / 4.61 vs 1.36 / 5.35 with 0.1, 1.35 / 5.02 with 1e-6, 400 steps);
    - 4 pairs per step instead of 8 at twice the steps, same pairs seen: 1.24 / 4.20 vs 1.35 / 5.02;
      not 2 at twice the steps again (val 1.47 against 1.52 at 600 steps of 4, about the same wall time: noise);
    - training pairs moving up to 16 px/frame (held-out pairs: 8): 1.19 / 3.58 vs 1.24 / 4.20 at 800 steps;
      the real pair moves 10-15 px at this scale;
    - not kept: lr 1e-3 (1.41, noisier), the multi-scale photometric loss (1.45 / 5.79), both at 400 steps;
    - first-order smoothness at weight 50 (ARFlow's Sintel setting); feature-space terms at 0.1 that shape
      the features only (at weight 1 they kept the flow at the zero-flow level for 200 steps);
    - lr 3e-4 (2e-3 and 5e-4 did not learn with L1+SSIM in 200 steps; 1e-3 no better with census);
    - occlusion by the range map from step 0 (threshold 0.8) instead of the forward-backward check from epoch 5:
      the check marked 64-96 % of the pixels of the shipped runs (5.9-6.6 % are occluded) and, trained 4x longer,
      100 % from step 600 on, where the photometric loss is 0 and the flow falls back to zero flow (val 2.11 px);
      the range map of a smooth flow marks few pixels, so longer training keeps learning (README, "Flow
      levers"). Threshold 0.8: on the true flows of the held-out pairs 0.5 marks 5.6 % against 6.6 % occluded
      (precision 0.96, recall 0.81; ARFlow's 0.2: 4.4 %, 1.00, 0.66), but a learned flow is smooth across
      the occluding edges, so its range map dips less: 0.5 marked 0.8 % at 600 steps and 1.1 % at 1,200
      (recall 0.09-0.15), 0.8 marks 3.0 % / 3.4 % (precision 0.57-0.62, recall 0.26-0.31; MC-JEPA 2.9 % at 600
      steps against 0.8 %). The EPE does not decide it (one seed, within the seeds' spread): M-JEPA 1.36 / 4.27
      against 1.39 / 4.91 at 600 steps and 1.13 / 3.51 against 1.18 / 3.88 at 1,200, MC-JEPA 1.41 / 4.92
      against 1.41 / 4.77 at 600 (embedded / Motorcycle test EPE, seed 0);
    - convex upsampling of the stride-4 flow (RAFT) and smoothness at the flow's own level with UFlow's edge
      weight 150: each changes the 600-step EPE by less than the run-to-run noise (val 1.49-1.51 px, test
      1.34-1.36 against 1.34 for the range map alone); kept because they let the flow follow edges (Fig. 3).
    """
    cfg = Config()
    cfg.model.encoder = EncoderConfig(stem_dim=16, depths=(1, 1, 2, 1), dims=(32, 48, 64, 96), extra_level=False,
                                      drop_path=0.0, layer_scale_init=1.0)
    # 3 levels: at 96x128 the stride-32 grid is 3x4, too coarse to help; radius 3 at stride 16 covers +-48 px
    cfg.model.flow = FlowHeadConfig(strides=(16, 8, 4), radius=3, widths=(48, 32, 32), filter_factor=1,
                                    projection_dim=32, feature_norm="center")
    cfg.model.expander = (256, 256, 256)
    cfg.model.flow.upsample = "convex"
    cfg.loss = LossConfig(rec_l1=0.0, rec_ssim=0.0, rec_census=1.0, smoothness=50.0, smooth_order=1,
                          smooth_level="flow", smooth_alpha=150.0, regression=0.1, cycle=0.1, vc=0.1,
                          feature_losses_train_flow=False, occlusion_method="range", occlusion_range_threshold=0.8,
                          occlusion_start_epoch=0.0, vc_max_positions=1024)
    cfg.data.crop = (96, 128)
    cfg.data.image_size = (64, 64)
    cfg.data.image_base = (96, 128)
    cfg.data.embedded_pairs = 2048
    cfg.data.embedded_train_max_translation = 16.0
    cfg.train = TrainConfig(epochs=10, steps_per_epoch=60, flow_start_epoch=1.0, warmup_epochs=0.25, batch_size=4,
                            image_batch_size=32, lr_encoder=3e-4, lr_flow=3e-4, weight_decay=1e-4, num_workers=0,
                            log_every=5, checkpoint_every=100)
    return cfg


PRESETS = {"paper": paper, "tiny": tiny}


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {sorted(PRESETS)}")
    return PRESETS[name]()


def flat_keys(obj: Any, prefix: str = "") -> list[str]:
    """All dotted leaf names of a (nested) config dataclass, e.g. ['model.encoder.depths', ..., 'train.seed']."""
    keys = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{prefix}{f.name}"
        keys += flat_keys(value, name + ".") if dataclasses.is_dataclass(value) else [name]
    return keys


def _coerce(text_or_value: Any, current: Any, key: str) -> Any:
    """Parse a CLI string (or check a Python value) against the type of the current value."""
    value = text_or_value
    if isinstance(value, str) and not isinstance(current, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as err:
            raise ValueError(f"--set {key}={text_or_value!r}: cannot parse the value") from err
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be True or False, got {value!r}")
    elif isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    elif isinstance(current, tuple):
        value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    elif current is not None and not isinstance(value, type(current)):
        raise ValueError(f"{key} expects {type(current).__name__}, got {value!r}")
    return value


def apply_overrides(cfg: Config, overrides: Mapping[str, Any] | Iterable[str]) -> Config:
    """Set dotted fields in place. `overrides` is {"loss.cycle": 0.2} or ["loss.cycle=0.2", ...]."""
    if not isinstance(overrides, Mapping):
        pairs = {}
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} must look like key=value, e.g. loss.cycle=0.2")
            key, value = item.split("=", 1)
            pairs[key.strip()] = value.strip()
        overrides = pairs
    valid = flat_keys(cfg)
    candidate = copy.deepcopy(cfg)  # a rejected override leaves `cfg` as it was
    for key, value in overrides.items():
        if key not in valid:
            raise KeyError(f"unknown config key {key!r}; valid keys:\n  " + "\n  ".join(valid))
        *path, leaf = key.split(".")
        node = candidate
        for part in path:
            node = getattr(node, part)
        setattr(node, leaf, _coerce(value, getattr(node, leaf), key))
    validate(candidate)
    for f in dataclasses.fields(cfg):
        setattr(cfg, f.name, getattr(candidate, f.name))
    return cfg


_INFINITE_OK = {"train.grad_clip", "train.max_feature_norm"}  # inf means "no clipping" / "no guard"


def _field_types(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted name -> default value of every leaf field (the types `validate` checks against)."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        out.update(_field_types(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value)
                   else {f"{prefix}{f.name}": value})
    return out


def _check_type(key: str, value: Any, default: Any) -> None:
    """bool only for bool fields, int (not bool, not 2.5) for int fields, finite numbers for float fields."""
    if isinstance(default, bool):
        ok, what = isinstance(value, bool), "True or False"
    elif isinstance(default, int):
        ok, what = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
            math.isfinite(value) or (key in _INFINITE_OK and value == math.inf))
        what = "a finite number" + (" or inf" if key in _INFINITE_OK else "")
    elif isinstance(default, str):
        ok, what = isinstance(value, str), "a string"
    elif isinstance(default, dict):
        ok = isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        what = "a mapping of strings to strings"
    else:
        ok, what = isinstance(value, tuple), "a tuple"
    if not ok:
        raise ValueError(f"{key} must be {what}, got {value!r}")


def _tuple_of(key: str, value: tuple, kind: str, length: int | None = None, low: float = 1) -> None:
    """A tuple of positive ints ('int', each >= low) or of non-negative finite numbers ('float')."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if kind == "int":
        numbers = numbers and all(isinstance(v, int) for v in value)
    if not numbers or any(v < low for v in value) or (length is not None and len(value) != length):
        size = f"{length} " if length is not None else ""
        rule = f"integers >= {low}" if kind == "int" else f"finite numbers >= {low}"
        raise ValueError(f"{key} must be a tuple of {size}{rule}, got {value!r}")


# The ceiling's lr, chosen on the ceiling alone: at the presets' 3e-4 its balanced cross-entropy was still near
# chance (1.4-1.8, ln 6 = 1.79) after the 600 tiny steps; at 1e-3 it fell to 0.15 on the embedded stills.
SUPERVISED_LR = 1e-3
EMBEDDED_CLASSES = 6  # background + the five shapes of the embedded data (data.synthetic_scene.CLASS_TABLE)


def for_method(cfg: Config, method: str) -> Config:
    """`cfg` (changed in place and returned) set to train `method`; "supervised" also gets its segmentation
    head (`model.segmentation_classes` = the embedded classes) and its learning rate (`SUPERVISED_LR`), the
    other methods no head. Overrides applied afterwards win."""
    cfg.train.method = method
    cfg.model.segmentation_classes = EMBEDDED_CLASSES if method == "supervised" else 0
    if method == "supervised":
        cfg.train.lr_encoder = SUPERVISED_LR
    return cfg


def _check_tuples(cfg: Config) -> None:
    encoder, flow = cfg.model.encoder, cfg.model.flow
    _tuple_of("model.encoder.depths", encoder.depths, "int", 4)
    _tuple_of("model.encoder.dims", encoder.dims, "int", 4)
    _tuple_of("model.flow.widths", flow.widths, "int", None)
    _tuple_of("model.expander", cfg.model.expander, "int", None)
    for key in ("level_weights", "rec_coarse_weights"):  # per-level weight tuples (those this version has)
        if hasattr(cfg.loss, key):
            _tuple_of(f"loss.{key}", getattr(cfg.loss, key), "float", None, low=0)
    for key in ("crop", "image_size", "image_base", "embedded_size"):
        _tuple_of(f"data.{key}", getattr(cfg.data, key), "int", 2)
    _tuple_of("data.flow_jitter", cfg.data.flow_jitter, "float", 4, low=0)
    if not flow.widths or not cfg.model.expander:
        raise ValueError(f"model.flow.widths and model.expander must not be empty, got {flow.widths!r} and "
                         f"{cfg.model.expander!r}")
    if not cfg.data.flow_datasets or not all(isinstance(v, str) and v for v in cfg.data.flow_datasets):
        raise ValueError(f"data.flow_datasets must be a non-empty tuple of names, got {cfg.data.flow_datasets!r}")


def validate(cfg: Config) -> None:
    """Reject settings that cannot work: ValueError naming the field and its valid range or type.

    Every leaf field is type-checked against its default (bool for bool, int - not bool, not 2.5 - for int,
    a finite number for float, inf allowed only for train.grad_clip / train.max_feature_norm) and
    range-checked (the rule each field declares with `knob`, tuples by `_check_tuples`); then the cross-field
    rules below.
    """
    defaults = _field_types(Config())
    for key, value in _field_types(cfg).items():
        _check_type(key, value, defaults[key])
        rule = RULES.get(key)
        if rule is not None and not rule[0](value):
            raise ValueError(f"{key} must be {rule[1]}, got {value!r}")
    _check_tuples(cfg)
    if (cfg.train.method == "supervised") != (cfg.model.segmentation_classes > 0):
        raise ValueError(f"train.method={cfg.train.method!r} with model.segmentation_classes="
                         f"{cfg.model.segmentation_classes}: the supervised ceiling needs its head (the number of "
                         f"classes, 6 for the embedded stills: `for_method(cfg, 'supervised')` sets it) and the "
                         f"self-supervised methods have none (0)")
    if cfg.train.method == "supervised" and cfg.data.image_dataset != "embedded":
        raise ValueError(f"train.method='supervised' trains on the class maps of the embedded stills; "
                         f"data.image_dataset={cfg.data.image_dataset!r} has no dense labels")
    if cfg.loss.level_weights and len(cfg.loss.level_weights) != len(cfg.model.flow.strides):
        raise ValueError(f"loss.level_weights has {len(cfg.loss.level_weights)} entries but the flow head has "
                         f"{len(cfg.model.flow.strides)} levels {cfg.model.flow.strides}")
    if cfg.loss.rec_coarse_weights and len(cfg.loss.rec_coarse_weights) != len(cfg.model.flow.strides) - 1:
        raise ValueError(f"loss.rec_coarse_weights has {len(cfg.loss.rec_coarse_weights)} entries; it needs one per "
                         f"flow level but the finest: {len(cfg.model.flow.strides) - 1} for {cfg.model.flow.strides}")
    if any(w < 0 for w in cfg.loss.rec_coarse_weights):
        raise ValueError(f"loss.rec_coarse_weights must be >= 0, got {cfg.loss.rec_coarse_weights}")
    available = {2, 4, 8, 16, 32} | ({64} if cfg.model.encoder.extra_level else set())
    if not cfg.model.flow.strides or not set(cfg.model.flow.strides) <= available or list(
            cfg.model.flow.strides) != sorted(set(cfg.model.flow.strides), reverse=True):
        raise ValueError(
            f"model.flow.strides {cfg.model.flow.strides} must be decreasing and among {sorted(available)}"
        )


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def _declarations(obj: Any, prefix: str = "") -> dict[str, tuple[Any, dict]]:
    """Dotted name -> (default, the field's `knob` metadata) of every leaf field."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        out.update(_declarations(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value)
                   else {f"{prefix}{f.name}": (value, f.metadata)})
    return out


def declared_fields(root: Any) -> tuple[dict[str, tuple], dict[str, Any]]:
    """({dotted name: rule}, {dotted name: default of the hash-neutral fields}) of a nested config dataclass
    instance, as its fields declare them with `knob`. Raises TypeError naming a number or text field declared
    without a rule (for `Config` on import: adding a field is one edit, and forgetting its rule is an error)."""
    rules, neutral = {}, {}
    for key, (default, meta) in _declarations(root).items():
        if meta.get("valid") is not None:
            rules[key] = meta["valid"]
        elif isinstance(default, (int, float, str)) and not isinstance(default, bool):
            raise TypeError(f"config field {key} declares no valid range: write it as knob({default!r}, RULE) "
                            f"(NON_NEGATIVE, PROBABILITY, choice(...), ... or CHECKED_WHERE_USED)")
        if meta.get("neutral"):
            neutral[key] = default
    return rules, neutral


RULES, HASH_NEUTRAL = declared_fields(Config())


def identity(cfg: Config) -> dict:
    """`to_dict(cfg)` less the `HASH_NEUTRAL` knobs that hold their neutral value: what a run's hash covers."""
    data = to_dict(cfg)
    for key, neutral in HASH_NEUTRAL.items():
        *path, leaf = key.split(".")
        node = data
        for part in path:
            node = node[part]
        if node[leaf] == neutral:
            del node[leaf]
    return data


def config_hash(cfg: Config) -> str:
    """10 hex digits naming a run: the hash of `identity(cfg)` (the config less knobs at hash-neutral
    values, so that adding a knob keeps every cached run)."""
    text = json.dumps(identity(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def from_dict(data: Mapping[str, Any]) -> Config:
    """Inverse of `to_dict` (lists become tuples again)."""
    cfg = Config()
    flat = {}

    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, Mapping) and k != "roots":
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v

    walk(data)
    for key, value in flat.items():
        *path, leaf = key.split(".")
        node = cfg
        for part in path:
            node = getattr(node, part)
        current = getattr(node, leaf)
        setattr(node, leaf, tuple(value) if isinstance(current, tuple) else value)
    return cfg
