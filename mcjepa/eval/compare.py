"""Several runs side by side, for the evaluation notebooks (09 flow, 10 segmentation, 11 DAVIS).

    eval_datasets(task, scale)          the evaluation datasets of a scale (tiny: embedded data + Motorcycle)
    untrained_run(cfg, runs_dir)        a run folder holding a freshly initialised model: the "no training" floor
    evaluate_runs(runs, task, datasets) {method: {dataset: metrics}} through mcjepa.eval.suite.evaluate_run
    zero_flow_results(cfg, datasets)    the zero-flow baseline on the same pairs
    classical_flow_baselines(cfg, ...)  OpenCV's Farneback and DIS on the same pairs (mcjepa.eval.classical)
    paper_table_rows(results, task)     our rows for mcjepa.viz.paper_table.save_results_table (x100 for mIoU/J&F)
    results_markdown, bar_values        our numbers as a Markdown table / as bars for
                                        mcjepa.viz.bars.plot_grouped_bars
    plot_per_class_iou                  per-class IoU heatmap (methods x classes)

Units: as the evaluators return them (EPE px, Fl %, px1/3/5, mIoU, pixel accuracy, J, F, J&F as FRACTIONS);
the tables and figures show fractions x100 (percent) and say so.

Paper columns at tiny scale: the paper's datasets are not available, so our headline number on the tiny
evaluation data is placed in the column of the paper dataset it stands in for, and the row label says so
(`STAND_INS`): embedded pairs (synthetic, dense GT) for Sintel clean, Motorcycle (real, sparse valid mask)
for KITTI-15, embedded stills for VOC, embedded sequences for DAVIS-17. Not comparable numbers: only the
ordering of the methods can be compared with the paper's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from ..config import Config, config_hash, to_dict
from ..data.registry import EVAL_DATASETS, EVAL_TASKS, SCALE_DATASETS, class_names, eval_roots, flow_eval_dataset
from ..models.mcjepa import MCJEPA
from ..report import fmt, is_number, markdown_table
from ..utils import atomic_torch_save, atomic_write, resolve_dir
from . import suite
from .classical import CLASSICAL_FLOW, classical_flow_results
from .references import FLOORS, RAW_COLOUR, SUPERVISED, TRUE_LABELS, range_fraction

TASKS = EVAL_TASKS
# Views of the registry (mcjepa.data.registry.EVAL_DATASETS), task -> {evaluation dataset: column of the paper's
# table (mcjepa.eval.tables)}: the dataset's own column, and at tiny scale the column it stands in for.
PAPER_COLUMNS = {task: {name: spec.paper_column for name, spec in per.items() if spec.paper_column}
                 for task, per in EVAL_DATASETS.items()}
STAND_INS = {task: {name: spec.stands_in_for for name, spec in per.items() if spec.stands_in_for}
             for task, per in EVAL_DATASETS.items()}
HEADLINE = {"flow": ("epe", 1.0), "segmentation": ("miou", 100.0), "davis": ("JF_mean", 100.0)}
SHORT_COLUMN = {"sintel_clean_train": "Sintel clean", "sintel_final_train": "Sintel final",
                "kitti2015_train_epe": "KITTI-15", "voc_linear": "VOC", "cityscapes_linear": "Cityscapes",
                "ade20k_linear": "ADE20k", "davis_jf": "DAVIS-17"}

# (metric key, header, factor, digits) of our own tables
FLOW_METRICS = (("epe", "EPE (px)", 1, 2), ("fl", "Fl (%)", 1, 1), ("px1", "<1 px (%)", 100, 1),
                ("px3", "<3 px (%)", 100, 1), ("px5", "<5 px (%)", 100, 1), ("epe_noc", "EPE noc", 1, 2),
                ("epe_occ", "EPE occ", 1, 2), ("n_images", "pairs", 1, 0))
RANGE_METRIC = ("range", "of floor-to-ceiling range (%)", 100, 0)
SEGMENTATION_METRICS = (("miou", "mIoU (%)", 100, 1), ("pixel_acc", "pixel acc. (%)", 100, 1), RANGE_METRIC)
DAVIS_METRICS = (("J_mean", "J (%)", 100, 1), ("F_mean", "F (%)", 100, 1), ("JF_mean", "J&F (%)", 100, 1),
                 RANGE_METRIC, ("n_objects", "objects", 1, 0))


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown evaluation task {task!r}; known: {TASKS}")
    return task


def eval_datasets(task: str, scale: str, names: Sequence[str] | str | None = None) -> tuple[str, ...]:
    """`names` (a name or a list) if given, else the evaluation datasets of `task` at `scale`
    (`mcjepa.data.registry.SCALE_DATASETS`)."""
    _check_task(task)
    if names:
        return (names,) if isinstance(names, str) else tuple(names)
    if scale not in SCALE_DATASETS:
        raise ValueError(f"scale must be one of {tuple(SCALE_DATASETS)}, got {scale!r}")
    return SCALE_DATASETS[scale][task]


def untrained_run(cfg: Config, runs_dir: str | Path | None = None) -> Path:
    """`runs_dir/untrained-<hash>`: a checkpoint of MCJEPA(cfg.model) freshly initialised with cfg.train.seed
    (step 0), loadable by load_model / evaluate_run like a trained run. Written once, then reused."""
    folder = resolve_dir(runs_dir, "runs") / f"untrained-{config_hash(cfg)}"
    checkpoint = folder / "checkpoint.pt"
    if checkpoint.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():  # the caller's global RNG is left as it was
        torch.manual_seed(cfg.train.seed)
        model = MCJEPA(cfg.model)
    atomic_torch_save({"model": model.state_dict(), "step": 0, "config": to_dict(cfg)}, checkpoint, checksum=True)
    with atomic_write(folder / "config.json", "w") as handle:
        json.dump(to_dict(cfg), handle, indent=2)
    return folder


def evaluate_runs(runs: Mapping[str, str | Path], task: str, datasets: Sequence[str], roots: Mapping | None = None,
                  progress: bool = True, davis_kwargs: Mapping | None = None) -> dict:
    """{method: {dataset: metrics}} for every run on every dataset of one task (mcjepa.eval.suite.evaluate_run).
    Runs without a result for the task (flow of a VICReg run) are left out."""
    _check_task(task)
    out: dict = {}
    for method, run in runs.items():
        for dataset in datasets:
            kwargs = {"flow": {"flow_dataset": dataset}, "segmentation": {"seg_dataset": dataset},
                      "davis": {"video": dataset, "davis_kwargs": dict(davis_kwargs or {})}}[task]
            result = suite.evaluate_run(run, tasks=(task,), roots=eval_roots(roots), progress=progress, **kwargs)
            if task in result:
                out.setdefault(method, {})[dataset] = result[task]
    return out


def add_range_fraction(results: dict, key: str) -> dict:
    """`results` ({method: {dataset: metrics}}) with metrics["range"] = the fraction of the floor-to-ceiling
    range that `key` covers (`references.range_fraction`: floors "raw colour" and "untrained", ceiling
    "supervised", each present on the same dataset); NaN where a reference is missing. Changed in place and
    returned."""
    for dataset in {d for per in results.values() for d in per}:
        def value(method):
            return results.get(method, {}).get(dataset, {}).get(key, math.nan)
        floors = [value(m) for m in FLOORS if m in results]
        ceiling = value(SUPERVISED)
        for per in results.values():
            if dataset in per:
                per[dataset]["range"] = range_fraction(per[dataset].get(key, math.nan), floors, ceiling)
    return results


def zero_flow_results(cfg: Config, datasets: Sequence[str], roots: Mapping | None = None) -> dict:
    """{dataset: metrics} of the zero-flow prediction on the evaluation pairs of each dataset."""
    roots = eval_roots(roots)
    return {name: suite.zero_flow_metrics(flow_eval_dataset(name, roots.get(name), cfg)) for name in datasets}


def classical_flow_baselines(cfg: Config, datasets: Sequence[str], roots: Mapping | None = None) -> dict:
    """{method label: {dataset: metrics}} of OpenCV's Farneback and DIS on the evaluation pairs of each dataset:
    the methods a user would pick instead of a learned model. Needs the eval extra.

    Their wall time per pair is left out: the notebooks commit these numbers, and a time measured again would
    change them on every run (benchmarks/bench_flow_quality.py times the methods side by side)."""
    roots = eval_roots(roots)
    results = classical_flow_results({name: flow_eval_dataset(name, roots.get(name), cfg) for name in datasets})
    return {method: {name: {k: v for k, v in metrics.items() if k != "seconds_per_pair"}
                     for name, metrics in per_dataset.items()} for method, per_dataset in results.items()}


def baseline_backbones() -> dict:
    """The backbone cell of the non-learned rows of our tables."""
    return {"zero flow": "-", **{label: "- (classical)" for label in CLASSICAL_FLOW.values()}}


def paper_table_rows(results: Mapping[str, Mapping[str, Mapping]], task: str, scale: str = "tiny",
                     backbones: Mapping[str, str] | None = None) -> dict:
    """Our rows for `save_results_table(ours, ..., kind="flow" | "segmentation")`: {label: {column: value}}.

    The headline metric (EPE; mIoU and J&F x100) of each dataset goes to its paper column: the dataset's own
    at paper scale (`PAPER_COLUMNS`), the one it stands in for at tiny scale (`STAND_INS`, named in the
    label). Datasets without a column are left out; a method with none is left out. The backbone cell is
    `backbones[method]` if given, else "ConvNeXt (<scale>)" ("- (no network)" for the raw-colour floor, "- (the
    labels)" for the true-labels reference).
    """
    _check_task(task)
    metric, factor = HEADLINE[task]
    mapping = STAND_INS[task] if scale == "tiny" else PAPER_COLUMNS[task]
    rows = {}
    for method, per_dataset in results.items():
        row, stand_ins = {}, []
        for dataset, metrics in per_dataset.items():
            column = mapping.get(dataset)
            if column is None or not is_number(metrics.get(metric)):
                continue
            row[column] = metrics[metric] * factor
            if scale == "tiny":
                stand_ins.append(f"{SHORT_COLUMN[column]} col. = {dataset}")
        if row:
            label = f"ours ({scale}): {method}" + (f" [{', '.join(stand_ins)}]" if stand_ins else "")
            default = {RAW_COLOUR: "- (no network)", TRUE_LABELS: "- (the labels)"}.get(method, f"ConvNeXt ({scale})")
            rows[label] = {**row, "backbone": (backbones or {}).get(method, default)}
    return rows


def results_markdown(results: Mapping[str, Mapping[str, Mapping]],
                     metrics: Sequence[tuple[str, str, float, int]]) -> str:
    """Markdown table, one row per (method, dataset), columns `metrics` = (key, header, factor, digits)."""
    header = ["method", "dataset"] + [h for _, h, _, _ in metrics]
    rows = ([method, dataset] + [fmt(values.get(k), f, d) for k, _, f, d in metrics]
            for method, per_dataset in results.items() for dataset, values in per_dataset.items())
    return markdown_table(header, rows) + "\n"


def bar_values(results: Mapping[str, Mapping[str, Mapping]], metrics: Sequence[tuple[str, str, float]]) -> dict:
    """{group: {method: value}} for `mcjepa.viz.bars.plot_grouped_bars`; groups are the datasets
    (one metric), the metric labels (one dataset) or 'dataset: metric'. `metrics` = (key, label, factor);
    missing values are NaN."""
    datasets = list(dict.fromkeys(d for per in results.values() for d in per))
    groups: dict = {}
    for dataset in datasets:
        for key, label, factor in metrics:
            name = dataset if len(metrics) == 1 else label if len(datasets) == 1 else f"{dataset}: {label}"
            groups[name] = {m: (per[dataset][key] * factor if dataset in per and is_number(per[dataset].get(key))
                                else math.nan) for m, per in results.items()}
    return groups


def plot_per_class_iou(results: Mapping[str, Mapping[str, Mapping]], dataset: str,
                       names: Sequence[str] | None = None, max_classes: int = 40) -> Figure:
    """Per-class IoU (%) of every method on `dataset` as a heatmap (rows = methods, columns = classes, the
    value written in each cell; grey 'n/a' = class absent from both prediction and ground truth, so excluded
    from the mIoU). At most `max_classes` classes (the first ones) are drawn."""
    per_method = {m: per[dataset]["per_class_iou"] for m, per in results.items() if dataset in per}
    if not per_method:
        raise ValueError(f"plot_per_class_iou: no method has results on {dataset!r}")
    count = min(max(len(v) for v in per_method.values()), max_classes)
    names = list(names or class_names(dataset))[:count]
    names += [str(i) for i in range(len(names), count)]
    grid = np.array([[100 * ious[i] if i < len(ious) and is_number(ious[i]) else np.nan for i in range(count)]
                     for ious in per_method.values()], dtype=np.float64)
    fig = Figure(figsize=(1.6 + 0.62 * count, 0.9 + 0.42 * len(per_method)), layout="constrained")
    ax = fig.subplots()
    ax.set_facecolor("0.85")  # NaN cells
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for r in range(grid.shape[0]):
        for c in range(grid.shape[1]):
            value = grid[r, c]
            ax.text(c, r, "n/a" if np.isnan(value) else f"{value:.0f}", ha="center", va="center", fontsize=8,
                    color="k" if np.isnan(value) or value > 60 else "w")
    ax.set_xticks(range(count), names, rotation=45 if max(map(len, names)) > 6 else 0, ha="right"
                  if max(map(len, names)) > 6 else "center", fontsize=8)
    ax.set_yticks(range(len(per_method)), list(per_method), fontsize=8)
    fig.colorbar(image, ax=ax, label="IoU (%)", fraction=0.04, pad=0.01)
    ax.set_title(f"per-class IoU on {dataset} (frozen linear probe)", fontsize=10)
    return fig
