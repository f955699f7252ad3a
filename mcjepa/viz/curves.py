"""Training curves and the collapse check: loss terms, feature std, validation and lr against the step;
per-dimension std of embeddings.

Curves read the trainer's JSONL rows (`mcjepa.train.metrics_log.read_metrics`): {"step": int, metric: float}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from mcjepa.viz.flow_colors import to_numpy

__all__ = ["group_loss_keys", "plot_loss_curves", "plot_dimension_std", "plot_validation_curves"]

_SKIP_KEYS = {"step", "epoch", "time", "wall_time", "timestamp", "seconds"}
_LOSS_GROUPS = ("losses", "flow losses", "content losses")


def group_loss_keys(keys: Sequence[str]) -> dict[str, list[str]]:
    """Group metric names for `plot_loss_curves`: "losses" (loss*), "flow losses" (the trainer's flow/* terms
    but flow/*fraction), "content losses" (ssl/*), "feature std" (feat_std*), "validation" (val/*), "occlusion"
    (the masked fraction in training, val/occ_*: the mask against the true occlusion), "lr" (lr*), "other" (the
    rest, e.g. grad_norm); empty groups are dropped, order kept. Wall-clock keys are skipped."""
    groups: dict[str, list[str]] = {"losses": [], "flow losses": [], "content losses": [], "feature std": [],
                                    "validation": [], "occlusion": [], "lr": [], "other": []}
    for key in keys:
        if key in _SKIP_KEYS:
            continue
        if key == "flow/occluded_fraction" or key.startswith("val/occ_"):
            groups["occlusion"].append(key)
        elif key.startswith("loss"):
            groups["losses"].append(key)
        elif key.startswith("flow/") and not key.endswith("fraction"):
            groups["flow losses"].append(key)
        elif key.startswith("ssl/"):
            groups["content losses"].append(key)
        elif key.startswith("feat_std"):
            groups["feature std"].append(key)
        elif key.startswith("val/"):
            groups["validation"].append(key)
        elif key == "lr" or key.startswith("lr/") or key.startswith("lr_"):
            groups["lr"].append(key)
        else:
            groups["other"].append(key)
    return {name: ks for name, ks in groups.items() if ks}


def _ema(values: np.ndarray, smooth: float) -> np.ndarray:
    """Bias-corrected exponential moving average (TensorBoard-style), `smooth` in [0, 1)."""
    out, acc, weight = np.empty_like(values), 0.0, 0.0
    for i, v in enumerate(values):
        acc = smooth * acc + (1 - smooth) * v
        weight = smooth * weight + (1 - smooth)
        out[i] = acc / weight
    return out


def plot_loss_curves(records: Sequence[Mapping], keys: Sequence[str] | None = None, smooth: float = 0.0,
                     log_scale: bool = True, title: str | None = None) -> Figure:
    """Training curves from JSONL rows {"step": int, "loss/total": float, "feat_std/level0": ..., "lr": ...}.

    One subplot per group of `group_loss_keys` (losses, flow/content loss terms, feature std per level,
    validation, lr, other); a key missing from a row is simply skipped. `smooth` in [0, 1): EMA coefficient
    (raw curve drawn faintly behind). `log_scale`: log y-axis for the loss groups and lr when all values > 0.
    """
    if not records:
        raise ValueError("plot_loss_curves: no records")
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"plot_loss_curves: smooth must be in [0, 1), got {smooth}")
    if keys is None:
        seen: dict[str, None] = {}
        for row in records:
            for key, value in row.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    seen.setdefault(key, None)
        keys = list(seen)
    groups = group_loss_keys(keys)
    if not groups:
        raise ValueError(f"plot_loss_curves: no plottable keys among {list(keys)}")
    fig = Figure(figsize=(5.0 * len(groups), 3.6), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (name, group) in zip(axes, groups.items()):
        all_positive = True
        for index, key in enumerate(group):
            rows = [(r.get("step", i), r[key]) for i, r in enumerate(records)
                    if key in r and r[key] is not None and np.isfinite(r[key])]
            if not rows:
                continue
            steps, values = (np.asarray(c, dtype=np.float64) for c in zip(*rows))
            all_positive &= bool((values > 0).all())
            colour = f"C{index % 10}"
            if smooth > 0:
                ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
                values = _ema(values, smooth)
            ax.plot(steps, values, color=colour, linewidth=1.5, label=key)
        if log_scale and name in (*_LOSS_GROUPS, "lr") and all_positive:
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    return fig


def plot_dimension_std(panels: Mapping[str, Mapping[str, object]], target: float | None = 1.0,
                       title: str | None = None) -> Figure:
    """Collapse check: per-dimension std of embeddings, dimensions sorted by decreasing std, one subplot per
    panel = {panel title: {curve name: (D,) stds or (N, D) embeddings}}; `target` draws VICReg's gamma line.
    A collapsed representation has most stds near 0; a healthy one keeps them near or above the target."""
    if not panels:
        raise ValueError("plot_dimension_std: no panels")
    fig = Figure(figsize=(4.4 * len(panels), 3.3), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (panel, curves) in zip(axes, panels.items()):
        for index, (name, values) in enumerate(curves.items()):
            arr = to_numpy(values).astype(np.float64)
            stds = arr.std(axis=0, ddof=1) if arr.ndim == 2 else arr
            stds = np.sort(stds)[::-1]
            ax.plot(np.arange(1, stds.size + 1), stds, color=f"C{index}", linewidth=1.5,
                    label=f"{name} (mean {stds.mean():.2f})")
        if target is not None:
            ax.axhline(target, color="k", linestyle=":", linewidth=1, label=f"VICReg target {target:g}")
        ax.set_xlabel("dimension (sorted by std)")
        ax.set_ylabel("std over images")
        ax.set_ylim(bottom=0)
        ax.set_title(panel, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    return fig



def plot_validation_curves(curves: Mapping[str, Sequence[Mapping]], references: Mapping[str, float],
                           key: str = "val/epe", seconds_per_step: Mapping[str, float] | None = None,
                           title: str | None = None, log_x: bool = False) -> Figure:
    """Held-out EPE of several runs against training time, beside methods that need no training.

    curves: {label: the run's JSONL rows}, each row with "step" and `key` (px); references: {label: EPE} drawn
    as horizontal lines (e.g. DIS, zero flow). The x axis is core-seconds, step x `seconds_per_step[label]`
    (measured in one quiet run of the step benchmark), or the step where no time is given; `log_x` draws it on a
    log scale (runs of 1x to 16x the steps side by side). Every curve gets its own colour (tab10 up to 10
    curves; tab20 beyond, with the legend beside the axes). Raises ValueError when no curve has a `key` value."""
    many = len(curves) > 10  # tab20, and the legend beside the axes instead of over the curves
    fig = Figure(figsize=(11.5 if many else 7.5, 4.6 if many else 4.2), layout="constrained")
    ax = fig.subplots()
    drawn = 0
    timed = seconds_per_step or {}
    palette = matplotlib.colormaps["tab20" if many else "tab10"]
    for index, (label, rows) in enumerate(curves.items()):
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None and np.isfinite(r[key])]
        if not points:
            continue
        steps, values = (np.asarray(c, dtype=np.float64) for c in zip(*points))
        x = steps * timed[label] if label in timed else steps
        ax.plot(x, values, marker="o", markersize=3, color=palette(index % palette.N), label=label)
        drawn += 1
    if not drawn:
        raise ValueError(f"plot_validation_curves: no curve has {key!r}")
    for index, (label, value) in enumerate(references.items()):
        ax.axhline(value, color="0.3", linestyle=("--", ":", "-.")[index % 3], linewidth=1.2,
                   label=f"{label} ({value:.2f})")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(("core-seconds of training" if timed else "training step") + (" (log scale)" if log_x else ""))
    ax.set_ylabel(f"{key} (px)")
    ax.grid(True, alpha=0.3)
    if many:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=7, loc="upper right")
    if title:
        ax.set_title(title)
    return fig
