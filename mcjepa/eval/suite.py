"""Evaluate one trained run on every protocol of the paper that its data allows, in one call.

    flow:          EPE / Fl / n-px on held-out pairs (embedded; KITTI/Sintel at paper scale)
    segmentation:  frozen linear probe mIoU (embedded stills; VOC/Cityscapes/ADE20k at paper scale)
    davis:         label propagation J&F (embedded sequences; DAVIS 2017 at paper scale)
Results are plain dicts of floats (fractions for mIoU and J&F, pixels for EPE, percent for Fl).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..config import Config

from ..data.registry import EVAL_TASKS, eval_spec, flow_eval_dataset, segmentation_datasets, video_dataset
from ..models.checkpoint import load_model
from .davis import evaluate_davis
from .references import OneHotLabels, OneHotMasks, label_features, raw_colour_fn
from .flow_metrics import evaluate_flow_dataset
from .runners import feature_fn, flow_fn
from .segmentation import LinearProbeConfig, linear_probe_segmentation

TASKS = EVAL_TASKS


@dataclass(frozen=True)
class RawColour:
    """Stands for a run in `evaluate_run`: the no-network floor (`references.raw_colour_fn`) on the evaluation
    data of `config` (its data section: the embedded scene)."""

    config: Config
    name: str = "raw colour (no network)"  # what tables print where a run prints its folder name


@dataclass(frozen=True)
class TrueLabels:
    """Stands for a run in `evaluate_run`: the protocol's reference, the probe and the propagation reading the one-hot
    maps of the evaluation's own labels (`references.label_features`) on the evaluation data of `config`."""

    config: Config
    name: str = "true labels (the protocol's reference)"


def zero_flow_metrics(dataset, max_samples: int | None = None) -> dict:
    """The zero-flow baseline on the same pairs (what "no motion model" scores)."""
    import torch

    return evaluate_flow_dataset(lambda a, b: torch.zeros(a.shape[0], 2, *a.shape[-2:]), dataset, stride=1,
                                 max_samples=max_samples, progress=False)


def fit_probe(features, dataset: str, cfg: Config, root: str | None = None, progress: bool = True,
              seed: int = 0, true_labels: bool = False) -> dict:
    """The linear probe of segmentation dataset `dataset` (`linear_probe_segmentation`'s result, plus "levels":
    the feature choice it read), by the dataset's protocol (`EvalDataset.features` and `.class_weights`).

    Args:
        features: levels -> feature function, e.g. `functools.partial(runners.feature_fn, model)` or
            `references.raw_colour_fn`.
    """
    spec = eval_spec("segmentation", dataset)
    train, val, classes = segmentation_datasets(dataset, root, cfg)
    if true_labels:  # the protocol's reference: the images replaced by their labels' one-hot maps
        train, val = OneHotLabels(train, classes), OneHotLabels(val, classes)
    probe = linear_probe_segmentation(features(spec.features), train, val, classes,
                                      LinearProbeConfig(progress=progress, seed=seed,
                                                        class_weights=spec.class_weights))
    return {**probe, "levels": spec.features}


def evaluate_run(run: str | Path, tasks=TASKS, flow_dataset: str = "embedded", seg_dataset: str = "embedded",
                 video: str = "embedded", roots: dict | None = None, progress: bool = True,
                 davis_kwargs: dict | None = None, probe_seed: int = 0) -> dict:
    """{task: metrics} for the checkpoint of `run` (a run folder or checkpoint file), or for the raw-colour
    floor when `run` is `RawColour(config)` and for the protocol's reference when it is `TrueLabels(config)` (content
    tasks only). The probe and the propagation read the
    features the evaluation dataset names (`EvalDataset.features`); `probe_seed` re-seeds the probe alone."""
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown evaluation tasks {sorted(unknown)}; known: {TASKS}")
    roots = roots or {}
    if isinstance(run, RawColour):
        model, cfg = None, run.config
        features = raw_colour_fn
    elif isinstance(run, TrueLabels):
        model, cfg = None, run.config
        features = label_features
    else:
        model, cfg = load_model(run)
        features = partial(feature_fn, model)
    results: dict = {}
    if "flow" in tasks and model is not None and cfg.train.method not in ("vicreg", "supervised"):
        pairs = flow_eval_dataset(flow_dataset, roots.get(flow_dataset), cfg)
        results["flow"] = evaluate_flow_dataset(flow_fn(model), pairs, stride=model.stride, progress=progress)
    if "segmentation" in tasks:
        probe = fit_probe(features, seg_dataset, cfg, roots.get(seg_dataset), progress, probe_seed,
                          true_labels=isinstance(run, TrueLabels))
        results["segmentation"] = {"miou": probe["miou"], "pixel_acc": probe["pixel_acc"],
                                   "per_class_iou": [float(v) for v in probe["per_class_iou"]]}
    if "davis" in tasks:
        sequences = video_dataset(video, roots.get(video), cfg)
        sequences = OneHotMasks(sequences) if isinstance(run, TrueLabels) else sequences
        davis = evaluate_davis(features(eval_spec("davis", video).features), sequences, progress=progress,
                               **(davis_kwargs or {}))
        results["davis"] = {k: davis[k] for k in ("J_mean", "F_mean", "JF_mean", "n_objects")}
    return results
