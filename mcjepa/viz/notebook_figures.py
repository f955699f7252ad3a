"""Small figure builders used by the training and figure notebooks (00-03, 12-14), beside mcjepa/viz/plots.py.

Like plots.py, every builder returns a matplotlib Figure made without pyplot; save it with
`mcjepa.viz.plots.save_figure` and show it with `show` (PNG bytes, so it displays in any frontend).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from mcjepa.eval.flow_metrics import flow_metrics
from mcjepa.viz.flow_colors import flow_to_rgb, max_flow_radius, to_numpy
from mcjepa.viz.plots import add_flow_legend, to_image

__all__ = ["show", "markdown_table", "plot_flow_rows", "plot_grouped_bars", "plot_dimension_std", "plot_data_overview",
           "plot_per_frame_scores"]


def show(fig: Figure) -> None:
    """Display a Figure inline as a PNG (works without a pyplot backend)."""
    from IPython.display import Image, display

    from mcjepa.viz.widgets import figure_png

    display(Image(data=figure_png(fig, dpi=100)))


def markdown_table(table: Mapping[str, Mapping[str, object]], digits: int = 3) -> str:
    """A Markdown table from {row: {column: value}} (columns in order of first appearance; floats rounded to
    `digits` decimals, missing or non-finite values shown as "-"); display it with IPython's Markdown."""
    if not table:
        raise ValueError("markdown_table: empty table")
    columns: list[str] = []
    for values in table.values():
        columns += [c for c in values if c not in columns]

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            return "-"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {row} | " + " | ".join(cell(values.get(c)) for c in columns) + " |" for row, values in table.items()]
    return "\n".join(lines)


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def plot_flow_rows(rows: Sequence[Mapping], flow_names: Sequence[str] | None = None) -> Figure:
    """Paper Fig. 3 style: one row per sample (rows may have different image sizes), columns
    [image, each predicted flow, ground truth (if any row has it), colour wheel].

    Args:
        rows: dicts {"name": str, "frame1": (3,H,W), "flows": {column name: (2,H,W)}, optional "gt" (2,H,W),
            "valid" (H,W) bool}.
        flow_names: prediction columns in order (default: the keys of the first row's "flows").
    Each row has its own colour radius, max |GT| over valid pixels (max over the predictions if no GT), shared
    by all its flow panels; prediction titles give the EPE over valid pixels (mcjepa.eval.flow_metrics).
    """
    if not rows:
        raise ValueError("plot_flow_rows: no rows")
    names = list(flow_names) if flow_names is not None else list(rows[0]["flows"])
    for row in rows:
        missing = set(names) - set(row["flows"])
        if missing:
            raise ValueError(f"plot_flow_rows: row {row.get('name', '?')!r} lacks flows {sorted(missing)}")
    has_gt = any(row.get("gt") is not None for row in rows)
    ncols = 1 + len(names) + has_gt
    aspect = max(to_numpy(r["frame1"]).shape[-2] / to_numpy(r["frame1"]).shape[-1] for r in rows)
    fig = Figure(figsize=(2.7 * ncols + 1.0, (2.7 * aspect + 0.55) * len(rows)), layout="constrained")
    grid = fig.subplots(len(rows), ncols + 1, squeeze=False,
                        gridspec_kw={"width_ratios": [1.0] * ncols + [0.4]})
    for r, row in enumerate(rows):
        axes = grid[r]
        gt = row.get("gt")
        valid = row.get("valid")
        mask = None if gt is None else (np.ones(to_numpy(gt).shape[-2:], bool) if valid is None
                                        else to_numpy(valid).astype(bool))
        if gt is not None:
            radius = max_flow_radius(np.where(mask[None], to_numpy(gt), 0.0))
        else:
            radius = max_flow_radius(*(row["flows"][n] for n in names))
        axes[0].imshow(to_image(row["frame1"]))
        axes[0].set_title(str(row.get("name", f"row {r}")), fontsize=9)
        for c, name in enumerate(names, start=1):
            flow = row["flows"][name]
            axes[c].imshow(flow_to_rgb(flow, max_flow=radius))
            title = name
            if gt is not None:
                title += f"\nEPE {flow_metrics(flow, gt, valid)['epe']:.2f} px"
            axes[c].set_title(title, fontsize=9)
        if has_gt:
            ax = axes[ncols - 1]
            if gt is not None:
                rgb = flow_to_rgb(gt, max_flow=radius)
                rgb[~mask] = 0  # no ground truth: black
                ax.imshow(rgb)
                ax.set_title("ground truth" + ("" if mask.all() else "\n(black: no GT)"), fontsize=9)
            else:
                ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", transform=ax.transAxes)
        for ax in axes[:-1]:
            _off(ax)
        add_flow_legend(axes[-1], radius)
    return fig


def plot_grouped_bars(table: Mapping[str, Mapping[str, float]], ylabel: str, title: str | None = None,
                      fmt: str = "{:.2f}") -> Figure:
    """Bars grouped on the x axis: `table` = {group: {series: value}} (e.g. {"EPE": {"M-JEPA": 1.2,
    "zero flow": 3.4}}); every series has one colour; values written on the bars; None/NaN bars are skipped."""
    if not table:
        raise ValueError("plot_grouped_bars: empty table")
    groups = list(table)
    series: list[str] = []
    for values in table.values():
        series += [s for s in values if s not in series]
    width = 0.8 / len(series)
    fig = Figure(figsize=(max(3.4, 1.2 + 0.8 * len(groups) * len(series)), 3.2), layout="constrained")
    ax = fig.subplots()
    for index, name in enumerate(series):
        xs, ys = [], []
        for g, group in enumerate(groups):
            value = table[group].get(name)
            if value is not None and np.isfinite(value):
                xs.append(g + (index - (len(series) - 1) / 2) * width)
                ys.append(float(value))
        bars = ax.bar(xs, ys, width=width * 0.95, color=f"C{index}", label=name)
        ax.bar_label(bars, labels=[fmt.format(y) for y in ys], fontsize=8, padding=2)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.15)
    ax.grid(True, axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
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


def plot_data_overview(tour, picks: Mapping[str, int], max_columns: int = 6) -> Figure:
    """One row per dataset of a `mcjepa.viz.widgets.DataTour`: the panels of `tour.compute_panels(name, index)`
    for each {name: index} of `picks` (at most `max_columns` per row), the row labelled with the dataset."""
    if not picks:
        raise ValueError("plot_data_overview: no datasets picked")
    contents = {name: tour.compute_panels(name, index) for name, index in picks.items()}
    ncols = min(max_columns, max(len(c["panels"]) for c in contents.values()))
    fig = Figure(figsize=(2.5 * ncols, 2.35 * len(contents)), layout="constrained")
    grid = fig.subplots(len(contents), ncols, squeeze=False)
    for r, (name, content) in enumerate(contents.items()):
        for c, ax in enumerate(grid[r]):
            if c >= len(content["panels"][:ncols]):
                ax.set_axis_off()
                continue
            label, arr, kind = content["panels"][c]
            if kind == "mask":
                ax.imshow(arr, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(arr, interpolation="nearest")
            ax.set_title(label, fontsize=8)
            _off(ax)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    return fig


def plot_per_frame_scores(scores: Mapping[str, Mapping[str, Sequence[float]]], first_frame: int = 2,
                          title: str | None = None) -> Figure:
    """Per-frame curves against the 1-based frame number starting at `first_frame` (DAVIS scores skip frame 1):
    `scores` = {object label: {metric: values}} (e.g. {"object 1": {"J": [...], "F": [...]}}); one colour per
    object, one line style per metric (solid, dashed, dotted, ...)."""
    if not scores:
        raise ValueError("plot_per_frame_scores: no scores")
    styles = ("-", "--", ":", "-.")
    fig = Figure(figsize=(6.0, 3.0), layout="constrained")
    ax = fig.subplots()
    metrics: list[str] = []
    for index, (label, series) in enumerate(scores.items()):
        for name, values in series.items():
            metrics += [name] if name not in metrics else []
            values = np.asarray(values, dtype=np.float64)
            ax.plot(np.arange(first_frame, first_frame + values.size), values, color=f"C{index % 10}",
                    linestyle=styles[metrics.index(name) % len(styles)], linewidth=1.3, label=f"{name} {label}")
    ax.set_xlabel("frame")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=len(metrics))
    if title:
        ax.set_title(title, fontsize=10)
    return fig
