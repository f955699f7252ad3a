"""Figures of the ablations (paper Fig. 5 and the VC ablation) from stored sweep points (mcjepa.ablations).

Every figure reads point files only (their numbers and `feat_std_series`), so the committed points redraw the
figures in a fresh clone without the training runs. Seeds of one value are drawn as small dots around their
mean ± std (error bar).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..ablations import (ABLATIONS, FIG5_PANELS, VC_COLUMNS, ablation_spec, by_value, collect, describe_sweep,
                         point_name, points_markdown, sweep_markdown, trends_markdown, vc_markdown, vc_rows)
from ..claims import claims_markdown, save_claims
from ..report import save_and_show, save_json, show_markdown
from ..utils import atomic_write


def _means(rows: Sequence[Mapping], key: str, factor: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    mean = np.array([r[key]["mean"] * factor if r[key]["n"] else np.nan for r in rows], dtype=np.float64)
    std = np.array([r[key]["std"] * factor if r[key]["std"] is not None else 0.0 for r in rows], dtype=np.float64)
    return mean, std


METRIC_STYLE = {  # key: (axis label, factor, colour, marker, digits, minimum visible span)
    "epe": ("flow EPE (px)", 1.0, "C0", "o", 2, 0.5),
    "miou": ("linear-probe mIoU (%)", 100.0, "C1", "s", 1, 5.0),
}
# the content references drawn across a mIoU panel (claims.reference_means): floors grey, the ceiling green
REFERENCE_STYLE = {"raw colour": ("0.55", ":"), "untrained": ("0.35", "--"), "supervised": ("C2", "-.")}


def draw_ablation_panel(ax, points: Sequence[Mapping], ablation: str, key: str = "epe",
                        title: str | None = None, references: Mapping[str, float] | None = None) -> list:
    """One metric of a Fig. 5 panel on `ax` (`METRIC_STYLE`: flow EPE or linear-probe mIoU in percent) against
    the ablated value: the mean over seeds with a ± std error bar and its number, each seed a small dot; symlog
    x for the coefficients so that 0 shows; a value with a diverged seed gets a red cross; `references`
    ({name: value in the metric's stored unit}, e.g. `claims.reference_means`: the floors and the ceiling of
    the probe) as labelled horizontal lines inside the y range. No points: a message. Returns the legend
    handles (the caller places the legend below the panels)."""
    spec = ablation_spec(ablation)
    name, factor, colour, marker, digits, min_span = METRIC_STYLE[key]
    ax.set_title(title or "", fontsize=10)
    ax.set_ylabel(name)
    if not points:
        ax.text(0.5, 0.5, f"no points yet\n(run the {ablation} ablation notebook)", ha="center", va="center",
                transform=ax.transAxes, fontsize=9, color="0.4")
        ax.set_xticks([])
        ax.set_yticks([])
        return []
    rows = by_value(points)
    x = np.array([r["value"] for r in rows], dtype=np.float64)
    if spec.xscale == "symlog":
        positive = np.abs(x[x != 0])
        ax.set_xscale("symlog", linthresh=float(positive.min()) if positive.size else 1.0)
    ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.minorticks_off()
    ax.grid(True, alpha=0.3)
    mean, std = _means(rows, key, factor)
    n = max(r[key]["n"] for r in rows)
    handles = [ax.errorbar(x, mean, yerr=std, fmt=f"{marker}-", color=colour, markersize=6, capsize=3,
                           label="mean ± std over seeds" if n > 1 else "one seed")]
    seeds = [(xv, v * factor) for xv, r in zip(x, rows) for v in r[key]["values"]]
    if n > 1:
        handles += ax.plot(*zip(*seeds), ".", color="0.35", alpha=0.6, markersize=4, label="each seed")
    for xv, yv, sv in zip(x, mean, std):
        if np.isfinite(yv):
            ax.annotate(f"{yv:.{digits}f}", (xv, yv + sv), textcoords="offset points", xytext=(0, 4), ha="center",
                        fontsize=7, color=colour)
    bad = np.array([r["diverged"] > 0 for r in rows])
    if bad.any():
        y = np.where(np.isfinite(mean[bad]), mean[bad], np.nanmean(mean) if np.isfinite(mean).any() else 0.0)
        handles += ax.plot(x[bad], y, "x", color="red", markersize=11, markeredgewidth=2.5, linestyle="none",
                           label="a seed diverged (last good checkpoint)")
    levels = {ref: value * factor for ref, value in (references or {}).items() if value is not None}
    for ref, level in levels.items():
        shade, style = REFERENCE_STYLE.get(ref, ("0.5", "-"))
        handles.append(ax.axhline(level, color=shade, linestyle=style, linewidth=1.2, label=ref))
    values = np.concatenate([mean - std, mean + std, [v for _, v in seeds], list(levels.values())])
    finite = values[np.isfinite(values)]
    if finite.size:  # a minimum visible span (EPE 0.5 px, mIoU 5 points) so that noise-level differences look flat
        lo, hi = float(finite.min()), float(finite.max())
        centre, span = (lo + hi) / 2, max(1.3 * (hi - lo), min_span)
        ax.set_ylim(centre - span / 2, centre + span / 2)
    return handles


def _legend_below(fig: Figure, handles: list) -> None:
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)


def _scale_text(sweeps: Sequence[Sequence[Mapping]]) -> str:
    """'tiny scale, embedded data, 3 seed(s) per value' for the points of one or more sweeps."""
    points = [p for sweep in sweeps for p in sweep]
    scales = sorted({str(p.get("scale", "?")) for p in points})
    data = "embedded data" if scales == ["tiny"] else "paper data"
    seeds = sorted({len(r["seeds"]) for sweep in sweeps for r in by_value(sweep)})
    return f"{'/'.join(scales)} scale, {data}, {'/'.join(map(str, seeds))} seed(s) per value" if scales else "no points"


def _panels(fig: Figure, sweeps: Sequence[tuple[str, Sequence[Mapping], str]],
            references: Mapping[str, Mapping[str, float]] | None = None) -> None:
    """Flow EPE (top row) and mIoU (bottom row) of each (ablation, points, title) column, x shared per column,
    `references[key]` across the panels of that metric, one legend below."""
    axes = np.array(fig.subplots(2, len(sweeps), sharex="col", squeeze=False))
    handles = {}
    for column, (ablation, points, title) in enumerate(sweeps):
        for row, key in enumerate(METRIC_STYLE):
            ax = axes[row, column]
            for handle in draw_ablation_panel(ax, points, ablation, key, title=title if row == 0 else None,
                                              references=(references or {}).get(key)):
                handles.setdefault(handle.get_label(), handle)
        axes[1, column].set_xlabel(ABLATIONS[ablation].label)
    _legend_below(fig, list(handles.values()))


def plot_sweep(ablation: str, figures_dir: str | Path | None = None, recipe: str | None = None) -> Figure:
    """One ablation's points so far (the per-point notebooks' figure): EPE above, mIoU below."""
    points = collect(ablation, figures_dir, recipe)
    fig = Figure(figsize=(5.8, 5.6), layout="constrained")
    _panels(fig, [(ablation, points, f"{ablation_spec(ablation).label}: {len(points)} run{'s' * (len(points) != 1)}"
                                     f"\n({_scale_text([points])})")])
    return fig


def plot_fig5(figures_dir: str | Path | None = None, recipe: str | None = None,
              references: Mapping[str, Mapping[str, float]] | None = None) -> Figure:
    """Paper Fig. 5 in kind: flow start epoch | cycle coefficient | balance coefficient, flow EPE in the top row
    and linear-probe mIoU in the bottom row, mean ± std over seeds, against the parameter; `references`
    ({"miou": {name: value}}) drawn across the panels of that metric."""
    sweeps = [(name, collect(name, figures_dir, recipe), f"5-{ABLATIONS[name].fig5_panel}: {ABLATIONS[name].label}")
              for name in FIG5_PANELS]
    fig = Figure(figsize=(15.5, 6.4), layout="constrained")
    _panels(fig, sweeps, references)
    fig.suptitle(f"MC-JEPA ablations (Fig. 5 in kind; {_scale_text([p for _, p, _ in sweeps])}): flow EPE lower is "
                 f"better, mIoU higher is better", fontsize=11)
    return fig


def _std_axis(ax, values: np.ndarray) -> None:
    """Log y-axis spanning at least [0.1, 1] (so that healthy runs look flat and collapsed ones fall away,
    on the same scale in every figure), with the VC target gamma = 1 dotted."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values) & (values > 0)]
    ax.set_yscale("log")
    if values.size:
        ax.set_ylim(min(values.min(), 0.1) / 1.5, max(values.max(), 1.0) * 1.5)
    ax.axhline(1.0, color="0.5", linestyle=":", linewidth=1.0, label="VC target $\\gamma$ = 1")


def plot_feature_std(point: Mapping, title: str | None = None, floor: float | None = None) -> Figure:
    """Per-level feature std of frame-1 features against the training step (log y) from a point's
    `feat_std_series`: a level collapsing towards 0 or exploding is the instability the VC regulariser
    prevents. A diverged point gets a red line at its step; `floor` draws the collapse guard's threshold."""
    series = point.get("feat_std_series") or {}
    strides = list(point.get("flow_levels_strides") or [])
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    if not series:
        ax.text(0.5, 0.5, "no feature std logged\n(no metrics, or the flow losses never switched on)",
                ha="center", va="center", transform=ax.transAxes, color="0.4")
    for index, (level, pairs) in enumerate(sorted(series.items())):
        steps, values = np.array(pairs, dtype=np.float64).T
        name = f"level {level}" + (f" (stride {strides[int(level)]})" if level.isdigit() and int(level) < len(strides)
                                   else "")
        ax.plot(steps, values, "-", color=f"C{index % 10}", linewidth=1.5, label=name)
    if series and all(np.array(p)[:, 1].min() > 0 for p in series.values()):
        _std_axis(ax, np.concatenate([np.array(p)[:, 1] for p in series.values()] + [[floor or 1.0]]))
    if floor:
        ax.axhline(floor, color="red", linestyle=":", linewidth=1.2, label=f"collapse guard ({floor:g})")
    if point.get("diverged_step") is not None:
        step = point["diverged_step"]
        ax.axvline(step, color="red", linestyle="--", linewidth=1.2, label=f"stopped (step {step})")
    ax.set_xlabel("training step")
    ax.set_ylabel("feature std (mean over channels)")
    ax.grid(True, alpha=0.3, which="both")
    if ax.get_lines():
        ax.legend(fontsize=8, loc="best")
    ax.set_title(title or f"feature std per flow level: {Path(str(point.get('run_dir', ''))).name}", fontsize=10)
    return fig


def lowest_std_curve(point: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """(steps, min over levels of the feature std at that step) from a point's `feat_std_series`."""
    by_step: dict[float, float] = {}
    for pairs in (point.get("feat_std_series") or {}).values():
        for step, value in pairs:
            by_step[step] = min(value, by_step.get(step, np.inf))
    steps = np.array(sorted(by_step), dtype=np.float64)
    return steps, np.array([by_step[s] for s in steps], dtype=np.float64)


def plot_vc_stability(points: Sequence[Mapping], title: str | None = None) -> Figure:
    """Minimum-over-levels feature std against the step, one line per point (vc = 0 dashed, one colour per
    vc value, one line per seed)."""
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    colours = {value: f"C{i % 10}" for i, value in enumerate(sorted({float(p["value"]) for p in points}))}
    labelled = set()
    for p in points:
        steps, lowest = lowest_std_curve(p)
        if not steps.size:
            continue
        value = float(p["value"])
        label = None if value in labelled else f"vc = {value:g}"
        labelled.add(value)
        ax.plot(steps, lowest, "--" if value == 0 else "-", color=colours[value], linewidth=1.4, alpha=0.85,
                label=label)
        if p.get("diverged"):
            ax.plot(steps[-1], lowest[-1], "x", color="red", markersize=9, markeredgewidth=2)
    if labelled:
        _std_axis(ax, np.concatenate([line.get_ydata() for line in ax.get_lines()]))
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no vc points with feature std yet\n(run 07_ablation_vc)", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
    ax.set_xlabel("training step")
    ax.set_ylabel("min over levels of feature std")
    ax.grid(True, alpha=0.3, which="both")
    ax.set_title(title or "VC regulariser: the lowest per-level feature std during training (one line per seed)",
                 fontsize=10)
    return fig


def plot_vc_table(points: Sequence[Mapping]) -> Figure:
    """The VC table (`mcjepa.ablations.vc_rows`) as a figure, our rows highlighted."""
    rows = vc_rows(points)
    fig = Figure(figsize=(12.5, 0.3 * (len(rows) + 1) + 0.45), layout="constrained")
    ax = fig.subplots()
    ax.axis("off")
    table = ax.table(cellText=[r for r, _ in rows], colLabels=list(VC_COLUMNS), cellLoc="center", bbox=[0, 0, 1, 1],
                     colWidths=[0.4, 0.13, 0.12, 0.12, 0.14, 0.09])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (r, _), cell in table.get_celld().items():
        if r == 0:
            cell.set_facecolor("#dddddd")
        elif rows[r - 1][1]:
            cell.set_facecolor("#fff2b3")
    ax.set_title("VC-regulariser ablation: ours (highlighted; mean ± std over seeds, not paper scale) vs paper "
                 "(reported)", fontsize=9)
    return fig


# ------------------------------------------------------------------------------------------- claims
VERDICT_COLOURS = {"holds": "#2a9d3a", "contradicted": "#c0392b"}


def plot_claims(rows: Sequence[Mapping]) -> Figure:
    """One panel per claims-table row (mcjepa.claims.claims): the per-seed values of both groups as dots, their
    mean ± std as an error bar, and the verdict with its one-sided Welch p in the title (green holds, red
    contradicted, grey otherwise)."""
    columns = 3
    lines = max(1, -(-len(rows) // columns))
    fig = Figure(figsize=(4.8 * columns, 3.3 * lines), layout="constrained")
    axes = np.atleast_1d(fig.subplots(lines, columns)).ravel()
    for ax, row in zip(axes, rows):
        factor = row.get("factor", 1.0)
        for x, which in enumerate(("a", "b")):
            summary = row[f"{which}_summary"]
            values = np.array(summary["values"], dtype=np.float64) * factor
            jitter = np.linspace(-0.08, 0.08, values.size) if values.size > 1 else np.zeros(values.size)
            ax.plot(x + jitter, values, "o", color=f"C{x}", alpha=0.55, markersize=5)
            if summary["n"]:
                ax.errorbar(x + 0.22, summary["mean"] * factor, yerr=(summary["std"] or 0.0) * factor, fmt="s",
                            color=f"C{x}", capsize=4, markersize=6)
        ax.set_xticks([0, 1], [row["a"], row["b"]], fontsize=8)
        ax.set_xlim(-0.5, 1.6)
        ax.set_ylabel(row["measure"].split(":")[0], fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        p = row.get("p")
        p_text = "" if p is None or not np.isfinite(p) else f", p = {p:.3f}"
        colour = next((c for key, c in VERDICT_COLOURS.items() if row["verdict"].startswith(key)), "0.35")
        title = textwrap.fill(f"{row['verdict']}{p_text}", 58)
        ax.set_title(f"{row['claim'][:4].strip()} {textwrap.shorten(row['measure'].split(':')[0], 58)}\n{title}",
                     fontsize=8.5, color=colour)
    for ax in axes[len(rows):]:
        ax.axis("off")
    if not rows:
        axes[0].text(0.5, 0.5, "no claims rows", ha="center", va="center", transform=axes[0].transAxes)
    fig.suptitle("The paper's claims at this scale: per-seed values (dots) and mean ± std (squares); "
                 "verdict by Welch's t test, one-sided, 5 %", fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------- notebook reports
def report_point(point: Mapping, folder: Path, figures_dir: str | Path | None = None) -> list[str]:
    """What an ablation notebook (04-07) shows for its point: the point's row, its divergence message if any,
    the sweep so far (the points under `figures_dir`: mean ± std over seeds per value, ours vs the paper's trend)
    and the sweep figure, saved as `folder/<ablation>_points.png` (`folder`: the notebook's, `Session.folder`);
    for the vc ablation also this run's feature std per level (`feature_std_vc_<point name>.png`) and the
    lowest std of every vc point (`vc_stability.png`). Returns the names of the files it wrote, sorted."""
    ablation = point["ablation"]
    tag = point_name(0, 0, point.get("overrides")).split("_seed0", 1)[1]  # the recipe's overrides, if any
    show_markdown(f"**This point** (`{ABLATIONS[ablation].key}` = {point['value']:g}, seed {point.get('seed', 0)})\n\n"
                  + points_markdown([point]))
    if point.get("diverged"):
        print("STOPPED:", point["diverged_message"])
    points = collect(ablation, figures_dir, recipe=point["recipe_hash"])
    show_markdown(f"**The sweep so far** (same recipe: scale, schedule, overrides)\n\n{sweep_markdown(points)}\n"
                  f"ours: {describe_sweep(points)}\n\npaper: {ABLATIONS[ablation].paper}")
    written = [save_and_show(plot_sweep(ablation, figures_dir, recipe=point["recipe_hash"]),
                       folder / f"{ablation}_points{tag}.png")]
    if ablation == "vc":
        name = Path(str(point.get("run_dir", ""))).name
        floor = (point.get("overrides") or {}).get("train.min_feature_std")
        written.append(save_and_show(
            plot_feature_std(point, floor=floor, title=f"vc = {point['value']:g}, seed {point.get('seed', 0)}: "
                                                       f"feature std per flow level ({name})"),
            folder / f"feature_std_vc_{point_name(point['value'], point.get('seed', 0), point.get('overrides'))}.png"))
        written.append(save_and_show(plot_vc_stability(points), folder / f"vc_stability{tag}.png"))
    return sorted(path.name for path in written)



def report_ablations(figures_dir: str | Path | None, recipe: str | None, folder: Path,
                     guard_recipe: str | None = None,
                     references: Mapping[str, Mapping[str, float]] | None = None) -> tuple[dict, list[str]]:
    """What notebook 08 shows of the sweeps: every stored point of the recipe (one table per ablation, and all
    of them in `ablation_points.json`), Fig. 5 (`fig5_ablations.png`), the paper's trends beside ours, the VC
    table (`vc_table.md` / `.png`), the lowest feature std of every vc run (`vc_stability.png`) and, with
    `guard_recipe`, the collapse-guarded vc runs of the instability setting (`instability.png`); Fig. 5 draws
    `references` ({"miou": {name: value}}, `claims.reference_means`) across its mIoU panels. Returns the
    points by ablation and the names of the files written (in `folder`)."""
    points = {ablation: collect(ablation, figures_dir, recipe) for ablation in ABLATIONS}
    for ablation, found in points.items():
        show_markdown(f"**{ABLATIONS[ablation].label}** (`{ABLATIONS[ablation].key}`)\n\n" + sweep_markdown(found))
    trends = {name: spec.paper for name, spec in ABLATIONS.items()}
    written = [save_json({"recipe": recipe, "points": points, "paper_trends": trends},
                         folder / "ablation_points.json"),
               save_and_show(plot_fig5(figures_dir, recipe, references), folder / "fig5_ablations.png")]
    show_markdown(trends_markdown(figures_dir, recipe))
    markdown = vc_markdown(points["vc"])
    show_markdown(markdown)
    with atomic_write(folder / "vc_table.md", "w") as handle:
        handle.write(markdown)
    written += [folder / "vc_table.md", save_and_show(plot_vc_table(points["vc"]), folder / "vc_table.png"),
                save_and_show(plot_vc_stability(points["vc"]), folder / "vc_stability.png")]
    if guard_recipe is not None:
        guarded = collect("vc", figures_dir, guard_recipe)
        for p in guarded:
            print(f"vc = {p['value']:g}, seed {p.get('seed', 0)}: "
                  + (f"STOPPED by the guard: {p['diverged_message']}" if p.get("diverged") else "not stopped"))
        title = "instability setting (mcjepa.ablations.INSTABILITY, collapse guard on): lowest per-level feature std"
        written.append(save_and_show(plot_vc_stability(guarded, title=title), folder / "instability.png"))
    return points, sorted(Path(path).name for path in written)


def report_claims(rows: Sequence[Mapping], folder: Path) -> list[str]:
    """What notebook 08 shows of the claims: the table with verdicts (`claims.md`, `claims.json`) and one panel
    per row (`claims.png`). Returns the names of the files written (in `folder`), sorted."""
    written = list(save_claims(rows, folder))
    show_markdown(claims_markdown(rows))
    written.append(save_and_show(plot_claims(rows), folder / "claims.png"))
    return sorted(path.name for path in written)
