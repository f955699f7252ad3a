"""The MC-JEPA ablations (paper Fig. 5 and the VC-regulariser table) as sweep points, collected into figures.

One point = one MC-JEPA training run with one knob changed, evaluated, summarised and stored as
`figures_dir/ablations/<ablation>/<value>.json` (`point_path`):

    ablation     config key               what the paper reports
    flow_start   train.flow_start_epoch   Fig. 5-1: epoch at which the flow losses switch on (SSL only before)
    cycle        loss.cycle               Fig. 5-2: cycle-consistency coefficient
    balance      loss.balance             Fig. 5-3: lambda of L_flow + lambda * L_ssl
    vc           loss.vc                  variance-covariance regulariser on every level; 0 = off (unstable)

A point file holds the settings (ablation, key, value, scale, epochs, steps_per_epoch, seed), `config_hash`
(the run's full config), `recipe_hash` (the config with the ablated knob at the preset value: points of one
sweep share it, and it equals the hash of the base MC-JEPA run), `run_dir`, `eval_datasets`, the headline
numbers `epe` (px; held-out embedded pairs at tiny scale, KITTI 2015 at paper scale), `fl` (%), `miou` (linear
probe, FRACTION), `jf` (DAVIS-style J&F, FRACTION, only with davis=True), the full `flow` / `segmentation` / `davis` result dicts, and the training
stability summary (`stability_summary`): per flow level (0 = coarsest) the final and minimum feature std
(mean over channels of the per-channel std over positions: the collapse signal), `diverged` with
`diverged_step` / `diverged_message` when training stopped on a NaN or exploding features
(`TrainingDiverged`), and `evaluated_step` (the checkpoint that was evaluated: the last good one of a
diverged run, None if it diverged before any checkpoint).

Points are cached: `run_point` returns the stored point when its config hash and tasks match (the training
run itself is cached by `ensure_run`), so re-running a sweep only does new work.
"""

from __future__ import annotations

import datetime
import json
import math
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .config import Config, apply_overrides
from .data.registry import SCALE_DATASETS
from .experiments import check_non_negative, config_hash, ensure_run, resolve_dir, run_config, run_dir, save_json
from .eval.suite import evaluate_run
from .eval.tables import PAPER_ABLATIONS
from .train.metrics_log import read_metrics
from .train.trainer import TrainingDiverged

ABLATIONS = {"cycle": "loss.cycle", "flow_start": "train.flow_start_epoch", "balance": "loss.balance", "vc": "loss.vc"}
LABELS = {"flow_start": "flow start epoch", "cycle": "cycle-consistency coefficient",
          "balance": "balance coefficient $\\lambda$", "vc": "VC-regulariser coefficient"}
XSCALES = {"flow_start": "linear", "cycle": "symlog", "balance": "symlog", "vc": "symlog"}
FIG5_PANELS = ("flow_start", "cycle", "balance")  # the order of the paper's Fig. 5 (5-1, 5-2, 5-3)
POINT_FORMAT = 1
EVAL_DATASETS = {scale: {task: names[0] for task, names in per.items()} for scale, per in SCALE_DATASETS.items()}

# What the paper says about each ablation (docs/method.md) (no more: it does not give the Fig. 5 curves' values).
PAPER_TRENDS = {
    "flow_start": "Fig. 5-1 sweeps the epoch at which flow training starts (out of 100 pretraining epochs); "
                  "the final recipe starts the flow losses at epoch 10 (SSL only before). The curve's values "
                  "are not given in our copy of the paper.",
    "cycle": "Fig. 5-2 sweeps the cycle-consistency coefficient; the curve's values are not given in our copy "
             "of the paper.",
    "balance": "Fig. 5-3: the balance coefficient lambda improves both flow EPE and segmentation mIoU up to "
               "about 0.1; above it segmentation drops sharply.",
    "vc": "Without the variance-covariance regulariser the multi-task training is unstable: 3.41 KITTI-15 EPE / "
          "47.3 VOC mIoU / 37.8 DAVIS J&F, against 2.67 / 67.1 / 70.5 with VC on every layer and a 1-epoch "
          "warm-up.",
}


# ------------------------------------------------------------------------------------------- points
def check_ablation(ablation: str) -> str:
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; known: {sorted(ABLATIONS)}")
    return ablation


def check_value(ablation: str, value: Any, epochs: int) -> float:
    """The value as a float; ValueError if it is negative/non-finite, or a flow start after the last epoch.
    A flow start equal to `epochs` is allowed with a warning (the flow head is then never trained)."""
    check_ablation(ablation)
    if value is None:
        raise ValueError(f"ablation {ablation!r}: a value is needed, got None")
    check_non_negative(**{ablation: value})
    value = float(value)
    if ablation == "flow_start":
        if value > epochs:
            raise ValueError(f"flow_start epoch {value:g} is beyond the run's {epochs} epochs: the flow losses "
                             f"would never switch on; use a value in [0, {epochs})")
        if value == epochs:
            warnings.warn(f"flow_start epoch {value:g} equals the number of epochs: the flow head is never trained")
    return value


def point_name(value: float) -> str:
    """File stem of a point: the shortest exact float text (0.1 -> '0.1', 1 -> '1.0', 1e-05 -> '1e-05')."""
    return repr(float(value))


def point_path(ablation: str, value: float, figures_dir: str | Path | None = None) -> Path:
    return resolve_dir(figures_dir, "figures") / "ablations" / check_ablation(ablation) / f"{point_name(value)}.json"


def base_config(scale: str = "tiny", epochs: int | None = None, steps_per_epoch: int | None = None,
                seed: int | None = 0, data_roots: Mapping[str, str] | None = None) -> Config:
    """The MC-JEPA config every point of a sweep starts from (the one of notebook 03_train_mc_jepa)."""
    return run_config(scale, "mc-jepa", {}, epochs=epochs, steps_per_epoch=steps_per_epoch, seed=seed,
                      data_roots=data_roots)


def recipe_hash(scale: str = "tiny", epochs: int | None = None, steps_per_epoch: int | None = None,
                seed: int | None = 0, data_roots: Mapping[str, str] | None = None) -> str:
    """Hash of `base_config`: the `recipe_hash` of every point of sweeps run with these settings."""
    return config_hash(base_config(scale, epochs, steps_per_epoch, seed, data_roots))


def point_config(ablation: str, value: float, scale: str = "tiny", epochs: int | None = None,
                 steps_per_epoch: int | None = None, seed: int | None = 0,
                 data_roots: Mapping[str, str] | None = None) -> Config:
    """`base_config` with the ablated key set to `value` (validated)."""
    cfg = base_config(scale, epochs, steps_per_epoch, seed, data_roots)
    value = check_value(check_ablation(ablation), value, cfg.train.epochs)
    return apply_overrides(cfg, {ABLATIONS[ablation]: value})


def _dedupe_by_step(rows: Sequence[Mapping]) -> list[Mapping]:
    """One row per step, the last written wins (a restarted run may have appended rows for the same steps)."""
    by_step = {}
    for row in rows:
        by_step[row.get("step")] = row
    return [by_step[s] for s in sorted(by_step, key=lambda s: -1 if s is None else s)]


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def stability_summary(rows: Sequence[Mapping]) -> dict:
    """Training-stability numbers from metrics rows ({"step", "feat_std/<level>", "feat_norm/max", ...}).

    Returns {"feat_std_final": {level: last finite value}, "feat_std_min": {level: min over steps},
    "feat_std_min_all": min over levels of feat_std_min (None if never logged), "feat_norm_max": max of
    "feat_norm/max" (None if never logged), "last_logged_step": int or None}. Levels are the strings after
    "feat_std/" (flow levels, 0 = coarsest); null/NaN values are skipped.
    """
    rows = _dedupe_by_step(rows)
    final: dict[str, float] = {}
    minimum: dict[str, float] = {}
    norm_max = None
    for row in rows:
        for key, value in row.items():
            if not _finite(value):
                continue
            if key.startswith("feat_std/"):
                level = key.split("/", 1)[1]
                final[level] = float(value)
                minimum[level] = min(minimum.get(level, math.inf), float(value))
            elif key == "feat_norm/max":
                norm_max = float(value) if norm_max is None else max(norm_max, float(value))
    order = sorted(final, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
    return {"feat_std_final": {k: final[k] for k in order}, "feat_std_min": {k: minimum[k] for k in order},
            "feat_std_min_all": min(minimum.values()) if minimum else None, "feat_norm_max": norm_max,
            "last_logged_step": rows[-1].get("step") if rows else None}


def _checkpoint_step(folder: Path) -> int | None:
    from .train.checkpoint import read_checkpoint

    path = folder / "checkpoint.pt"
    return int(read_checkpoint(path)["step"]) if path.is_file() else None


def _cached_point(path: Path, cfg_hash: str, tasks: Sequence[str], datasets: Mapping[str, str]) -> dict | None:
    if not path.is_file():
        return None
    try:
        point = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if (point.get("format") == POINT_FORMAT and point.get("config_hash") == cfg_hash
            and set(tasks) <= set(point.get("tasks", ())) and point.get("eval_datasets") == dict(datasets)):
        return point
    return None


def run_point(ablation: str, value: float, scale: str = "tiny", epochs: int | None = None,
              steps_per_epoch: int | None = None, seed: int = 0, runs_dir: str | Path | None = None,
              figures_dir: str | Path | None = None, data_roots: Mapping[str, str] | None = None,
              progress: bool = True, davis: bool = False, force: bool = False,
              eval_every: int | None = None, eval_datasets: Mapping[str, str] | None = None) -> dict:
    """Train (or reuse) the MC-JEPA run of one sweep point, evaluate it, and store the point (module docstring).

    Tasks: flow EPE + linear-probe segmentation (+ DAVIS-style J&F with `davis=True`) on `eval_datasets`
    ({"flow", "segmentation", "davis"} -> dataset name; default `EVAL_DATASETS[scale]`: the embedded data at
    tiny scale, KITTI 2015 / Pascal VOC / DAVIS 2017 at paper scale, as the paper's ablations; roots from
    `data_roots`). A run that diverges is recorded (diverged, step, message), not raised; its last good
    checkpoint, if any, is evaluated. `force=True` re-evaluates even when a matching point is stored.
    """
    from .eval.compare import eval_roots

    cfg = point_config(ablation, value, scale, epochs, steps_per_epoch, seed, data_roots)
    value = float(value)
    tasks = ("flow", "segmentation") + (("davis",) if davis else ())
    datasets = {**EVAL_DATASETS[scale], **dict(eval_datasets or {})}
    path = point_path(ablation, value, figures_dir)
    cfg_hash = config_hash(cfg)
    cached = None if force else _cached_point(path, cfg_hash, tasks, datasets)
    if cached is not None:
        print(f"reusing stored point {path}")
        return cached

    runs = resolve_dir(runs_dir, "runs")
    folder = run_dir(cfg, runs)
    divergence, divergence_step = None, None
    try:
        ensure_run(cfg, runs_dir=runs, progress=progress, eval_every=eval_every)
    except TrainingDiverged as err:
        divergence, divergence_step = str(err), err.step
        print(f"training diverged (recorded in the point): {err}")
    evaluated_step = _checkpoint_step(folder)
    results = {} if evaluated_step is None else evaluate_run(
        folder, tasks=tasks, flow_dataset=datasets["flow"], seg_dataset=datasets["segmentation"],
        video=datasets["davis"], roots=eval_roots(data_roots), progress=progress)
    rows = read_metrics(folder) if (folder / "metrics.jsonl").is_file() else []
    flow, seg, dav = results.get("flow", {}), results.get("segmentation", {}), results.get("davis", {})
    point = {
        "format": POINT_FORMAT, "ablation": ablation, "key": ABLATIONS[ablation], "value": value,
        "scale": scale, "epochs": cfg.train.epochs, "steps_per_epoch": cfg.train.steps_per_epoch,
        "seed": cfg.train.seed, "config_hash": cfg_hash,
        "recipe_hash": recipe_hash(scale, epochs, steps_per_epoch, seed, data_roots),
        "run_dir": str(folder), "tasks": list(tasks), "eval_datasets": datasets,
        "epe": flow.get("epe"), "fl": flow.get("fl"), "miou": seg.get("miou"), "jf": dav.get("JF_mean"),
        "flow": flow, "segmentation": seg, "davis": dav,
        "diverged": divergence is not None, "diverged_step": divergence_step,
        "diverged_message": divergence, "evaluated_step": evaluated_step,
        "flow_levels_strides": list(cfg.model.flow.strides),
        **stability_summary(rows),
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    save_json(point, path)
    return json.loads(path.read_text())  # what collect() will read back (NaN -> None)


def collect(ablation: str, figures_dir: str | Path | None = None, recipe: str | None = None) -> list[dict]:
    """Every stored point of `ablation`, sorted by value; with `recipe`, only points of that recipe hash."""
    folder = resolve_dir(figures_dir, "figures") / "ablations" / check_ablation(ablation)
    points = []
    for path in sorted(folder.glob("*.json")):
        try:
            point = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"ablation point {path} is not valid JSON ({err}); delete it and re-run the point") from err
        if not isinstance(point, dict) or "value" not in point:
            raise ValueError(f"ablation point {path} has no 'value': not a point file")
        if recipe is None or point.get("recipe_hash") == recipe:
            points.append(point)
    return sorted(points, key=lambda p: float(p["value"]))


# ------------------------------------------------------------------------------------------- tables
def _num(value, factor: float = 1.0, digits: int = 2) -> str:
    return f"{value * factor:.{digits}f}" if _finite(value) else "-"


def _stability_text(point: Mapping) -> str:
    if not point.get("diverged"):
        return "no"
    step = point.get("diverged_step")
    return f"yes (step {step})" if step is not None else "yes"


def points_markdown(points: Sequence[Mapping]) -> str:
    """A Markdown table of points: value, EPE, Fl, mIoU (%), J&F (%), min feature std, diverged, run."""
    lines = ["| value | flow EPE (px) | Fl (%) | mIoU (%) | J&F (%) | min feature std | diverged | run |",
             "|---|---|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p['value']:g} | {_num(p.get('epe'))} | {_num(p.get('fl'), digits=1)} | "
                     f"{_num(p.get('miou'), 100, 1)} | {_num(p.get('jf'), 100, 1)} | "
                     f"{_num(p.get('feat_std_min_all'), digits=3)} | {_stability_text(p)} | "
                     f"{Path(str(p.get('run_dir', ''))).name} |")
    if not points:
        lines.append("| (no points yet) | | | | | | | |")
    return "\n".join(lines) + "\n"


def describe_sweep(points: Sequence[Mapping]) -> str:
    """Our trend in words: where EPE is lowest and mIoU highest, and which points diverged."""
    if not points:
        return "no points yet"
    parts = []
    for key, name, factor, unit, best in (("epe", "lowest EPE", 1.0, " px", min), ("miou", "highest mIoU", 100.0, " %", max)):
        scored = [p for p in points if _finite(p.get(key))]
        if scored:
            top = best(scored, key=lambda p: p[key])
            parts.append(f"{name} {top[key] * factor:.2f}{unit} at {top['value']:g}")
    diverged = [f"{p['value']:g}" for p in points if p.get("diverged")]
    if diverged:
        parts.append(f"diverged at value{'s' * (len(diverged) > 1)} {', '.join(diverged)}")
    values = ", ".join(f"{float(p['value']):g}" for p in points)
    plural = "s" * (len(points) != 1)
    return f"{'; '.join(parts) or 'no scores'} ({len(points)} point{plural}: {values})"


def trends_markdown(figures_dir: str | Path | None = None, recipe: str | None = None) -> str:
    """Markdown table: each ablation, what the paper reports (PAPER_TRENDS), what our points show."""
    lines = ["| ablation | paper (reported) | ours (stored points) |", "|---|---|---|"]
    for ablation in (*FIG5_PANELS, "vc"):
        lines.append(f"| {LABELS[ablation]} (`{ABLATIONS[ablation]}`) | {PAPER_TRENDS[ablation]} | "
                     f"{describe_sweep(collect(ablation, figures_dir, recipe))} |")
    return "\n".join(lines) + "\n"


def vc_table(figures_dir: str | Path | None = None, recipe: str | None = None) -> tuple[str, Figure]:
    """The VC-regulariser ablation: our points (vc = 0 vs vc > 0) beside the paper's two rows.

    Columns: flow EPE, mIoU (%), J&F (%), min feature std, diverged? Paper rows use KITTI-15 train EPE,
    VOC linear mIoU and DAVIS-17 J&F; ours the evaluation data of the run's scale (embedded at tiny scale).
    Returns (markdown, matplotlib Figure with the same table; our rows highlighted).
    """
    points = collect("vc", figures_dir, recipe)
    header = ["setting", "flow EPE (px)", "mIoU (%)", "J&F (%)", "min feature std", "diverged?"]
    rows, ours = [], []
    for p in points:
        name = "no VC (vc = 0)" if p["value"] == 0 else f"VC on every level (vc = {p['value']:g})"
        rows.append([f"ours ({p.get('scale', '?')}): {name}", _num(p.get("epe")), _num(p.get("miou"), 100, 1),
                     _num(p.get("jf"), 100, 1), _num(p.get("feat_std_min_all"), digits=3), _stability_text(p)])
        ours.append(True)
    if not points:
        rows.append(["ours: no vc points yet (run 07_ablation_vc)", "-", "-", "-", "-", "-"])
        ours.append(True)
    paper = {r["setting"]: r for r in PAPER_ABLATIONS}
    for setting, stability in (("no VC regularisation", "unstable (reported)"),
                               ("VC on every layer + 1-epoch warm-up (final)", "-")):
        r = paper[setting]
        rows.append([f"paper: {setting}", _num(r["kitti2015_train_epe"]), _num(r["voc_linear"], digits=1),
                     _num(r["davis_jf"], digits=1), "-", stability])
        ours.append(False)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f"**{c}**" if mine else c for c in row) + " |" for row, mine in zip(rows, ours)]
    note = ("Paper rows: KITTI-15 train EPE, VOC frozen linear mIoU, DAVIS-17 J&F (reported). Our rows: the "
            "kit's evaluation data at its own scale (embedded pairs / stills / sequences at tiny scale): not "
            "comparable to the paper's numbers; compare vc = 0 with vc > 0.")
    markdown = "\n".join(lines) + f"\n\n{note}\n"

    fig = Figure(figsize=(10.5, 0.27 * (len(rows) + 1) + 0.45), layout="constrained")
    ax = fig.subplots()
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=header, cellLoc="center", bbox=[0, 0, 1, 1],
                     colWidths=[0.42, 0.11, 0.1, 0.1, 0.13, 0.14])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (r, _), cell in table.get_celld().items():
        if r == 0:
            cell.set_facecolor("#dddddd")
        elif ours[r - 1]:
            cell.set_facecolor("#fff2b3")
    ax.set_title("VC-regulariser ablation: ours (highlighted; not paper scale) vs paper (reported)", fontsize=9)
    return markdown, fig


# ------------------------------------------------------------------------------------------- figures
def _values(points: Sequence[Mapping], key: str, factor: float = 1.0) -> np.ndarray:
    return np.array([p[key] * factor if _finite(p.get(key)) else np.nan for p in points], dtype=np.float64)


def draw_ablation_panel(ax, points: Sequence[Mapping], ablation: str, title: str | None = None) -> list:
    """Fig. 5 panel on `ax` (style of mcjepa.viz.plots.plot_ablation): flow EPE on the left axis (C0, o-),
    linear-probe mIoU in percent on a twin right axis (C1, s--), against the ablated value; symlog x for the
    coefficients so 0 shows; diverged points get a red cross. No points: a message. Returns the legend handles
    (the caller places the legend, below the panels, so that it never hides a point)."""
    check_ablation(ablation)
    ax.set_title(title or LABELS[ablation], fontsize=10)
    ax.set_xlabel(LABELS[ablation])
    if not points:
        ax.text(0.5, 0.5, f"no points yet\n(run the {ablation} ablation notebook)", ha="center", va="center",
                transform=ax.transAxes, fontsize=9, color="0.4")
        ax.set_xticks([])
        ax.set_yticks([])
        return []
    x = _values(points, "value")
    epe, miou = _values(points, "epe"), _values(points, "miou", 100.0)
    if XSCALES[ablation] == "symlog":
        positive = np.abs(x[x != 0])
        ax.set_xscale("symlog", linthresh=float(positive.min()) if positive.size else 1.0)
    ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.minorticks_off()
    ax.grid(True, alpha=0.3)
    handles = ax.plot(x, epe, "o-", color="C0", markersize=9, label="flow EPE (px)")
    ax.set_ylabel("flow EPE (px)", color="C0")
    ax.tick_params(axis="y", colors="C0")
    right = ax.twinx()
    handles += right.plot(x, miou, "s--", color="C1", markersize=5, label="linear-probe mIoU (%)")
    for axis, values, colour, dy, digits in ((ax, epe, "C0", 7, 2), (right, miou, "C1", -13, 1)):
        for xv, yv in zip(x, values):  # the numbers, EPE above and mIoU below their markers
            if np.isfinite(yv):
                axis.annotate(f"{yv:.{digits}f}", (xv, yv), textcoords="offset points", xytext=(0, dy),
                              ha="center", fontsize=7, color=colour)
    right.set_ylabel("linear-probe mIoU (%)", color="C1")
    right.tick_params(axis="y", colors="C1")
    bad = np.array([bool(p.get("diverged")) for p in points])
    if bad.any():
        y = np.where(np.isfinite(epe[bad]), epe[bad], np.nanmean(epe) if np.isfinite(epe).any() else 0.0)
        handles += ax.plot(x[bad], y, "x", color="red", markersize=11, markeredgewidth=2.5, linestyle="none",
                           label="diverged (last good checkpoint)")
    # a minimum visible span per axis (EPE 0.5 px, mIoU 5 points) so that noise-level differences look flat
    for axis, values, min_span in ((ax, epe, 0.5), (right, miou, 5.0)):
        finite = values[np.isfinite(values)]
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            centre, span = (lo + hi) / 2, max(1.3 * (hi - lo), min_span)
            axis.set_ylim(centre - span / 2, centre + span / 2)
    return handles


def _legend_below(fig: Figure, handles: list) -> None:
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)


def plot_sweep(ablation: str, figures_dir: str | Path | None = None, recipe: str | None = None) -> Figure:
    """One ablation's points so far (the per-point notebooks' figure)."""
    points = collect(ablation, figures_dir, recipe)
    fig = Figure(figsize=(5.6, 4.0), layout="constrained")
    handles = draw_ablation_panel(fig.subplots(), points, ablation,
                                  title=f"{LABELS[ablation]}: {len(points)} point{'s' * (len(points) != 1)}"
                                        f" ({_scale_text(points)})")
    _legend_below(fig, handles)
    return fig


def _scale_text(points: Sequence[Mapping]) -> str:
    scales = sorted({str(p.get("scale", "?")) for p in points})
    data = "embedded data" if scales == ["tiny"] else "paper data"
    return f"{'/'.join(scales)} scale, {data}" if scales else "no points"


def plot_fig5(figures_dir: str | Path | None = None, recipe: str | None = None) -> Figure:
    """Paper Fig. 5 in kind: flow start epoch | cycle coefficient | balance coefficient, each with flow EPE
    (left axis) and linear-probe mIoU (right axis) against the parameter."""
    fig = Figure(figsize=(15.5, 4.0), layout="constrained")
    axes = fig.subplots(1, len(FIG5_PANELS))
    all_points, handles = [], {}
    for number, (ax, ablation) in enumerate(zip(axes, FIG5_PANELS), start=1):
        points = collect(ablation, figures_dir, recipe)
        all_points += points
        for handle in draw_ablation_panel(ax, points, ablation, title=f"5-{number}: {LABELS[ablation]}"):
            handles.setdefault(handle.get_label(), handle)
    _legend_below(fig, list(handles.values()))
    fig.suptitle(f"MC-JEPA ablations (Fig. 5 in kind; {_scale_text(all_points)}): flow EPE lower is better, "
                 f"mIoU higher is better", fontsize=11)
    return fig


def _feature_std_series(run: str | Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[int]]:
    """{level: (steps, values)} from a run's metrics, and the flow strides (coarse to fine) if known."""
    folder = Path(run)
    rows = _dedupe_by_step(read_metrics(folder)) if (folder / "metrics.jsonl").is_file() else []
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        for key, value in row.items():
            if key.startswith("feat_std/") and _finite(value):
                series.setdefault(key.split("/", 1)[1], []).append((float(row.get("step", 0)), float(value)))
    strides: list[int] = []
    config = folder / "config.json"
    if config.is_file():
        strides = list(json.loads(config.read_text())["model"]["flow"]["strides"])
    return {k: tuple(np.array(c) for c in zip(*v)) for k, v in series.items()}, strides


def _std_axis(ax, values: np.ndarray) -> None:
    """Log y-axis spanning at least [0.1, 1] (so that healthy runs look flat and collapsed ones fall away,
    on the same scale in every figure), with the VC target gamma = 1 dotted."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values) & (values > 0)]
    ax.set_yscale("log")
    if values.size:
        ax.set_ylim(min(values.min(), 0.1) / 1.5, max(values.max(), 1.0) * 1.5)
    ax.axhline(1.0, color="0.5", linestyle=":", linewidth=1.0, label="VC target $\\gamma$ = 1")


def plot_feature_std(run: str | Path, diverged_at: int | None = None, title: str | None = None) -> Figure:
    """Per-level feature std of frame-1 features against the training step (log y): a level collapsing
    towards 0 or exploding is the instability the VC regulariser prevents. `diverged_at` draws a red line."""
    series, strides = _feature_std_series(run)
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    if not series:
        ax.text(0.5, 0.5, "no feature std logged\n(no metrics.jsonl, or the flow losses never switched on)",
                ha="center", va="center",
                transform=ax.transAxes, color="0.4")
    for index, (level, (steps, values)) in enumerate(sorted(series.items())):
        name = f"level {level}"
        if level.isdigit() and int(level) < len(strides):
            name += f" (stride {strides[int(level)]})"
        ax.plot(steps, values, "-", color=f"C{index % 10}", linewidth=1.5, label=name)
    if series and all((v > 0).all() for _, v in series.values()):
        _std_axis(ax, np.concatenate([v for _, v in series.values()]))
    if diverged_at is not None:
        ax.axvline(diverged_at, color="red", linestyle="--", linewidth=1.2, label=f"diverged (step {diverged_at})")
    ax.set_xlabel("training step")
    ax.set_ylabel("feature std (mean over channels)")
    ax.grid(True, alpha=0.3, which="both")
    if series or diverged_at is not None:
        ax.legend(fontsize=8, loc="best")
    ax.set_title(title or f"feature std per flow level: {Path(run).name}", fontsize=10)
    return fig


def plot_vc_stability(figures_dir: str | Path | None = None, recipe: str | None = None) -> Figure:
    """Minimum-over-levels feature std against the step, one line per vc point (vc = 0 dashed)."""
    points = collect("vc", figures_dir, recipe)
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    drawn = False
    for index, p in enumerate(points):
        folder = Path(str(p.get("run_dir", "")))
        if not (folder / "metrics.jsonl").is_file():
            continue
        series, _ = _feature_std_series(folder)
        if not series:
            continue
        steps = sorted(set().union(*(set(s.tolist()) for s, _ in series.values())))
        lowest = [min(v[s == step].min() for s, v in series.values() if (s == step).any()) for step in steps]
        ax.plot(steps, lowest, "--" if p["value"] == 0 else "-", color=f"C{index % 10}", linewidth=1.6,
                label=f"vc = {p['value']:g}" + (" (diverged)" if p.get("diverged") else ""))
        drawn = True
    if drawn:
        _std_axis(ax, np.concatenate([line.get_ydata() for line in ax.get_lines()]))
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no vc points with metrics yet\n(run 07_ablation_vc)", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
    ax.set_xlabel("training step")
    ax.set_ylabel("min over levels of feature std")
    ax.grid(True, alpha=0.3, which="both")
    ax.set_title("VC regulariser: the lowest per-level feature std during training", fontsize=10)
    return fig
