"""Evaluate one trained run on every protocol of the paper that its data allows, in one call.

    flow:          EPE / Fl / n-px on held-out pairs (embedded; KITTI/Sintel at paper scale)
    segmentation:  frozen linear probe mIoU (embedded stills; VOC/Cityscapes/ADE20k at paper scale)
    davis:         label propagation J&F (embedded sequences; DAVIS 2017 at paper scale)
Results are plain dicts of floats (fractions for mIoU and J&F, pixels for EPE, percent for Fl).
"""

from __future__ import annotations

from pathlib import Path

from ..data.registry import EVAL_TASKS, flow_eval_dataset, segmentation_datasets, video_dataset
from ..models.checkpoint import load_model
from .davis import evaluate_davis
from .flow_metrics import evaluate_flow_dataset
from .runners import feature_fn, flow_fn
from .segmentation import LinearProbeConfig, linear_probe_segmentation

TASKS = EVAL_TASKS


def zero_flow_metrics(dataset, max_samples: int | None = None) -> dict:
    """The zero-flow baseline on the same pairs (what "no motion model" scores)."""
    import torch

    return evaluate_flow_dataset(lambda a, b: torch.zeros(a.shape[0], 2, *a.shape[-2:]), dataset, stride=1,
                                 max_samples=max_samples, progress=False)


def evaluate_run(run: str | Path, tasks=TASKS, flow_dataset: str = "embedded", seg_dataset: str = "embedded",
                 video: str = "embedded", roots: dict | None = None, progress: bool = True,
                 davis_kwargs: dict | None = None) -> dict:
    """{task: metrics} for the checkpoint of `run` (a run folder or checkpoint file)."""
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown evaluation tasks {sorted(unknown)}; known: {TASKS}")
    roots = roots or {}
    model, cfg = load_model(run)
    results: dict = {}
    if "flow" in tasks and cfg.train.method != "vicreg":
        pairs = flow_eval_dataset(flow_dataset, roots.get(flow_dataset), cfg)
        results["flow"] = evaluate_flow_dataset(flow_fn(model), pairs, stride=model.stride, progress=progress)
    if "segmentation" in tasks:
        train, val, classes = segmentation_datasets(seg_dataset, roots.get(seg_dataset), cfg)
        probe = linear_probe_segmentation(feature_fn(model, "last"), train, val, classes,
                                          LinearProbeConfig(progress=progress))
        results["segmentation"] = {"miou": probe["miou"], "pixel_acc": probe["pixel_acc"],
                                   "per_class_iou": [float(v) for v in probe["per_class_iou"]]}
    if "davis" in tasks:
        sequences = video_dataset(video, roots.get(video), cfg)
        davis = evaluate_davis(feature_fn(model, "concat"), sequences, progress=progress, **(davis_kwargs or {}))
        results["davis"] = {k: davis[k] for k in ("J_mean", "F_mean", "JF_mean", "n_objects")}
    return results
