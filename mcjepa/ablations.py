"""The MC-JEPA ablations (paper Fig. 5 and the VC-regulariser table) as sweep points, collected into figures.

One point = one MC-JEPA training run with one knob changed, evaluated, summarised and stored as
`figures_dir/ablations/<ablation>/<value>_seed<seed>.json` (`point_path`). `ABLATIONS` is the table of the
ablations (one `Ablation` each: config key, label, axis scale, Fig. 5 panel, what the paper reports, notebook and
its papermill parameter, the full profile's values); what reads them (reproduce, the figures, the claims, the
tests) reads that table, so that a new ablation is one entry there plus its notebook.

A point file holds the settings (ablation, key, value, scale, epochs, steps_per_epoch, seed), `config_hash`
(the run's full config), `recipe_hash` (the config with the ablated knob at the preset value and seed 0: the
points of one sweep share it over values and seeds, and it equals the hash of the seed-0 base MC-JEPA run),
`run_dir` (the run's folder name under runs_dir, never a machine path), `eval_datasets`, the headline
numbers `epe` (px; held-out embedded pairs at tiny scale, KITTI 2015 at paper scale), `fl` (%), `miou` (linear
probe, FRACTION), `jf` (DAVIS-style J&F, FRACTION, only with davis=True), the full `flow` / `segmentation` /
`davis` result dicts, and the training
stability summary (`stability_summary`): per flow level (0 = coarsest) the final and minimum feature std
(mean over channels of the per-channel std over positions: the collapse signal), `diverged` with
`diverged_step` / `diverged_message` when training stopped on a NaN or exploding features
(`TrainingDiverged`), and `evaluated_step` (the checkpoint that was evaluated: the last good one of a
diverged run, None if it diverged before any checkpoint), and `feat_std_series` ({level: [[step, std], ...]}:
the curves of the stability figures, so that they need the point file only).

`by_value` reduces the seeds of each value to mean, std and n (what Fig. 5 and mcjepa.claims use).

Points are cached (`result_cache`): `run_point` returns the stored point when its config hash, evaluation data
and tasks match (the training run itself is cached by `ensure_run`), so re-running a sweep only does new work.
"""

from __future__ import annotations

import datetime
import functools
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .config import Config, apply_overrides, config_hash
from .data.registry import SCALE_DATASETS, eval_roots
from .eval.suite import evaluate_run
from .eval.tables import PAPER_ABLATIONS
from .experiments import Setting, check_integer, check_non_negative, ensure_run, run_config, run_dir
from .models.checkpoint import read_checkpoint
from .report import fmt, is_number, load_json, markdown_table, mean_std_text
from .result_cache import cached_result, store_result
from .train.metrics_log import read_metrics
from .train.trainer import TrainingDiverged
from .utils import resolve_dir


@dataclass(frozen=True)
class Ablation:
    """One ablation of the paper: a knob of the MC-JEPA recipe swept by a per-point notebook.

    key:         the dotted config key the sweep sets (`config.apply_overrides`)
    label:       its name on the figures' axes and in the tables
    xscale:      the figures' x axis: "linear", or "symlog" for a coefficient (so that 0 shows)
    fig5_panel:  its panel of the paper's Fig. 5 (1, 2, 3: Fig. 5-1 ...), None when Fig. 5 does not show it
    paper:       what the paper reports about it (docs/method.md), nothing more
    notebook:    the notebook that measures one point (notebooks/<notebook>.ipynb, papermill-parameterised)
    parameter:   that notebook's papermill parameter holding the value (`-p coef 0.2`)
    full_values: the full profile's values (`make reproduce`); None stands for the preset's value
    epoch:       True when the value is an epoch of the run: at most `train.epochs` (equal warns), and the full
                 profile's values are fractions of the run's epochs
    claim:       the number of the paper claim its sweep measures (mcjepa.claims: 3 = (iii), 4 = (iv)); the full
                 profile trains these sweeps first, by claim, then the others in table order
    instability: also swept in the instability setting of claim (iii) (`INSTABILITY`, the notebook's parameter
                 `instability=True`)
    """

    key: str
    label: str
    xscale: str
    fig5_panel: int | None
    paper: str
    notebook: str
    parameter: str
    full_values: tuple[float | None, ...]
    epoch: bool = False
    claim: int | None = None
    instability: bool = False


# The ablations in notebook order. The full profile's sweeps each hold the tiny preset's value (cycle 0.1, flow
# start 1, balance 0.1, vc 0.1), so the base point of every sweep is the MC-JEPA run of notebook 03. vc = 0
# leaves only VICReg's own variance-covariance terms on the pooled embedding ("pooled only"); vc > 0 adds them
# on every flow level. `paper` is all the paper says (it does not give the Fig. 5 curves' values).
ABLATIONS: dict[str, Ablation] = {
    "cycle": Ablation(
        "loss.cycle", "cycle-consistency coefficient", "symlog", 2,
        "Fig. 5-2 sweeps the cycle-consistency coefficient; the curve's values are not given in our copy of the "
        "paper.",
        "04_ablation_cycle", "coef", (0.0, 0.01, 0.03, 0.1, 0.3, 1.0), claim=4),
    "flow_start": Ablation(
        "train.flow_start_epoch", "flow start epoch", "linear", 1,
        "Fig. 5-1 sweeps the epoch at which flow training starts (out of 100 pretraining epochs); the final "
        "recipe starts the flow losses at epoch 10 (SSL only before). The curve's values are not given in our "
        "copy of the paper.",
        "05_ablation_flow_start", "flow_start_epoch", (0.0, 0.1, 0.3, 0.6, 0.9),  # epochs 0, 1, 3, 6, 9 of 10
        epoch=True),
    "balance": Ablation(
        "loss.balance", "balance coefficient $\\lambda$", "symlog", 3,
        "Fig. 5-3: the balance coefficient lambda improves both flow EPE and segmentation mIoU up to about 0.1; "
        "above it segmentation drops sharply.",
        "06_ablation_balance", "balance", (0.01, 0.03, 0.1, 0.3, 1.0)),
    "vc": Ablation(
        "loss.vc", "VC-regulariser coefficient", "symlog", None,
        "Without the variance-covariance regulariser the multi-task training is unstable: 3.41 KITTI-15 EPE / "
        "47.3 VOC mIoU / 37.8 DAVIS J&F, against 2.67 / 67.1 / 70.5 with VC on every layer and a 1-epoch "
        "warm-up.",
        "07_ablation_vc", "vc", (0.0, None), claim=3, instability=True),  # None: tiny 0.1, paper 1.0
}
FIG5_PANELS = tuple(sorted((n for n, a in ABLATIONS.items() if a.fig5_panel), key=lambda n: ABLATIONS[n].fig5_panel))
POINT_FORMAT = 2  # 2: seed in the file name, seed-free recipe hash, feat_std_series
# evaluation data of the points (the paper's ablations report KITTI-15 EPE, VOC mIoU, DAVIS J&F): the first
# dataset of each task in the registry's per-scale table
EVAL_DATASETS = {scale: {task: names[0] for task, names in per.items()} for scale, per in SCALE_DATASETS.items()}

# The instability setting of claim (iii): the tiny recipe with the paper's weights of the feature losses
# (regression and cycle 1.0 instead of the tiny preset's 0.1) and the collapse guard on. Measured (seed 0, no
# guard): without VC the std of the two coarse levels falls from ~0.7 to 0.03-0.05 within 150 steps and stays
# there; the healthy runs' lowest per-level std is >= 0.38 (README, "The paper's claims"). The guard's floor,
# 0.05, sits between the two.
INSTABILITY = {"loss.regression": 1.0, "loss.cycle": 1.0, "train.min_feature_std": 0.05}


def ablation_spec(name: str) -> Ablation:
    """The table entry of ablation `name`; ValueError listing the known ones."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; known: {sorted(ABLATIONS)}")
    return ABLATIONS[name]


def sweep_values(name: str, scale: str = "tiny") -> tuple[float, ...]:
    """The full profile's values of ablation `name` at `scale`: None as the preset's value, epochs from the
    fractions of the run's length (`Ablation.epoch`)."""
    spec, preset = ablation_spec(name), run_config(scale, "mc-jepa")
    if spec.epoch:
        return tuple(round(f * preset.train.epochs, 6) for f in spec.full_values)
    value = functools.reduce(getattr, spec.key.split("."), preset)
    return tuple(value if v is None else v for v in spec.full_values)


def training_order() -> list[tuple[str, bool]]:
    """(ablation, instability) of the full profile's sweeps in the order it trains them: the sweeps of the
    paper's claims first (by claim; a sweep's instability setting right after it, `Ablation.instability`), so
    that an interrupted profile has measured the claims, then the others in table order."""
    names = sorted(ABLATIONS, key=lambda n: (ABLATIONS[n].claim is None, ABLATIONS[n].claim or 0))
    return [(name, instability) for name in names for instability in (False, True)[:1 + ABLATIONS[name].instability]]


# ------------------------------------------------------------------------------------------- points
def check_value(ablation: str, value: Any, epochs: int) -> float:
    """The value as a float; ValueError if it is negative/non-finite, or an epoch (`Ablation.epoch`) after the
    last one. An epoch equal to `epochs` is allowed with a warning (what it switches on is never trained)."""
    spec = ablation_spec(ablation)
    if value is None:
        raise ValueError(f"ablation {ablation!r}: a value is needed, got None")
    check_non_negative(**{ablation: value})
    value = float(value)
    if spec.epoch:
        if value > epochs:
            raise ValueError(f"{ablation} epoch {value:g} is beyond the run's {epochs} epochs: {spec.key} would "
                             f"never take effect; use a value in [0, {epochs})")
        if value == epochs:
            warnings.warn(f"{ablation} epoch {value:g} equals the number of epochs: what {spec.key} switches on is "
                          f"never trained")
    return value


def point_name(value: float, seed: int = 0, overrides: Mapping[str, Any] | None = None) -> str:
    """File stem of a point: the shortest exact float text, the seed and any extra overrides (0.1 ->
    '0.1_seed0', 1e-05 -> '1e-05_seed0', 0 with {"train.min_feature_std": 0.05} ->
    '0.0_seed0_train.min_feature_std=0.05')."""
    extra = "".join(f"_{key}={value!r}" for key, value in sorted((overrides or {}).items()))
    return f"{float(value)!r}_seed{check_integer('seed', seed)}{extra}"


def point_path(ablation: str, value: float, seed: int = 0, figures_dir: str | Path | None = None,
               overrides: Mapping[str, Any] | None = None) -> Path:
    ablation_spec(ablation)
    folder = resolve_dir(figures_dir, "figures") / "ablations" / ablation
    return folder / f"{point_name(value, seed, overrides)}.json"


def base_config(setting: Setting, overrides: Mapping[str, Any] | None = None) -> Config:
    """The MC-JEPA config every point of a sweep starts from (the one of notebook 03_train_mc_jepa) with the
    setting's schedule, seed and data roots, and any extra `overrides` (e.g. the collapse guard of the
    instability setting, `INSTABILITY`)."""
    return setting.config("mc-jepa", overrides)


def recipe_hash(setting: Setting, overrides: Mapping[str, Any] | None = None) -> str:
    """Hash of the seed-0 `base_config`: the `recipe_hash` of every point (any value, any seed) of sweeps run
    with this setting (its seed aside)."""
    return config_hash(base_config(setting.replace(seed=0), overrides))


def point_config(ablation: str, value: float, setting: Setting,
                 overrides: Mapping[str, Any] | None = None) -> Config:
    """`base_config` with the ablated key set to `value` (validated); ValueError if `overrides` sets it too."""
    key = ablation_spec(ablation).key
    if key in (overrides or {}):
        raise ValueError(f"overrides set {key}, the key of the {ablation!r} ablation: pass it as the point's value")
    cfg = base_config(setting, overrides)
    value = check_value(ablation, value, cfg.train.epochs)
    return apply_overrides(cfg, {key: value})


def _dedupe_by_step(rows: Sequence[Mapping]) -> list[Mapping]:
    """One row per step, the last written wins (a restarted run may have appended rows for the same steps)."""
    by_step = {}
    for row in rows:
        by_step[row.get("step")] = row
    return [by_step[s] for s in sorted(by_step, key=lambda s: -1 if s is None else s)]


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
            if not is_number(value):
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


def feature_std_series(rows: Sequence[Mapping]) -> dict[str, list[list[float]]]:
    """{level: [[step, feature std], ...]} from metrics rows (one row per step, finite values only)."""
    series: dict[str, list[list[float]]] = {}
    for row in _dedupe_by_step(rows):
        for key, value in row.items():
            if key.startswith("feat_std/") and is_number(value):
                series.setdefault(key.split("/", 1)[1], []).append([float(row.get("step", 0)), float(value)])
    return dict(sorted(series.items()))


def _checkpoint_step(folder: Path) -> int | None:
    path = folder / "checkpoint.pt"
    return int(read_checkpoint(path)["step"]) if path.is_file() else None


def run_point(ablation: str, value: float, setting: Setting, davis: bool = False, force: bool = False,
              eval_datasets: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> dict:
    """Train (or reuse) the MC-JEPA run of one sweep point of `setting` (scale, schedule, seed, data roots,
    folders, progress), evaluate it, and store the point (module docstring).

    Tasks: flow EPE + linear-probe segmentation (+ DAVIS-style J&F with `davis=True`) on `eval_datasets`
    ({"flow", "segmentation", "davis"} -> dataset name; default `EVAL_DATASETS[scale]`: the embedded data at
    tiny scale, KITTI 2015 / Pascal VOC / DAVIS 2017 at paper scale, as the paper's ablations; roots from
    the setting's `data_roots`). A run that diverges is recorded (diverged, step, message), not raised; its last
    good checkpoint, if any, is evaluated. `force=True` re-evaluates even when a matching point is stored.
    `overrides` ({dotted key: value}) change other settings of the recipe: such points form a recipe of their
    own (their recipe hash includes them) and their file names carry them. Raises ValueError for an unknown
    ablation or a bad value (`check_value`).
    """
    overrides = dict(overrides or {})
    cfg = point_config(ablation, value, setting, overrides)
    value = float(value)
    tasks = ("flow", "segmentation") + (("davis",) if davis else ())
    datasets = {**EVAL_DATASETS[setting.scale], **dict(eval_datasets or {})}
    path = point_path(ablation, value, cfg.train.seed, setting.figures_dir, overrides)
    cfg_hash = config_hash(cfg)
    cached = None if force else cached_result(
        path, {"format": POINT_FORMAT, "config_hash": cfg_hash, "eval_datasets": datasets}, {"tasks": tasks},
        "ablation point")
    if cached is not None:
        print(f"reusing stored point {path}")
        return cached

    folder = run_dir(cfg, setting.runs)
    divergence, divergence_step = None, None
    try:
        ensure_run(cfg, runs_dir=setting.runs, progress=setting.progress, eval_every=setting.eval_every)
    except TrainingDiverged as err:
        divergence, divergence_step = str(err), err.step
        print(f"training diverged (recorded in the point): {err}")
    evaluated_step = _checkpoint_step(folder)
    results = {} if evaluated_step is None else evaluate_run(
        folder, tasks=tasks, flow_dataset=datasets["flow"], seg_dataset=datasets["segmentation"],
        video=datasets["davis"], roots=eval_roots(setting.data_roots), progress=setting.progress)
    rows = read_metrics(folder) if (folder / "metrics.jsonl").is_file() else []
    flow, seg, dav = results.get("flow", {}), results.get("segmentation", {}), results.get("davis", {})
    point = {
        "format": POINT_FORMAT, "ablation": ablation, "key": ABLATIONS[ablation].key, "value": value,
        "scale": setting.scale, "epochs": cfg.train.epochs, "steps_per_epoch": cfg.train.steps_per_epoch,
        "seed": cfg.train.seed, "config_hash": cfg_hash, "recipe_hash": recipe_hash(setting, overrides),
        "overrides": overrides, "run_dir": folder.name, "tasks": list(tasks), "eval_datasets": datasets,
        "epe": flow.get("epe"), "fl": flow.get("fl"), "miou": seg.get("miou"), "jf": dav.get("JF_mean"),
        "flow": flow, "segmentation": seg, "davis": dav,
        "diverged": divergence is not None, "diverged_step": divergence_step,
        "diverged_message": divergence, "evaluated_step": evaluated_step,
        "flow_levels_strides": list(cfg.model.flow.strides),
        **stability_summary(rows), "feat_std_series": feature_std_series(rows),
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    return store_result(point, path, "ablation point")  # as collect() will read it back (NaN -> None)


def collect(ablation: str, figures_dir: str | Path | None = None, recipe: str | None = None) -> list[dict]:
    """Every stored point of `ablation`, sorted by value then seed; with `recipe`, only points of that recipe
    hash (and of the current point format)."""
    ablation_spec(ablation)
    folder = resolve_dir(figures_dir, "figures") / "ablations" / ablation
    points = []
    for path in sorted(folder.glob("*.json")):
        point = load_json(path, "ablation point")
        if not isinstance(point, dict) or "value" not in point:
            raise ValueError(f"ablation point {path} has no 'value': not a point file")
        if recipe is None or (point.get("recipe_hash") == recipe and point.get("format") == POINT_FORMAT):
            points.append(point)
    unique = {p.get("config_hash") or id(p): p for p in points}  # one run stored under two names counts once
    return sorted(unique.values(), key=lambda p: (float(p["value"]), p.get("seed", 0)))


METRICS = ("epe", "fl", "miou", "jf", "feat_std_min_all")


def summarize(values: Sequence[float | None]) -> dict:
    """{"mean", "std" (sample std, ddof 1; None for n < 2), "n", "values"} of the finite values; mean None if
    there are none."""
    finite = [float(v) for v in values if is_number(v)]
    n = len(finite)
    return {"mean": float(np.mean(finite)) if n else None, "std": float(np.std(finite, ddof=1)) if n > 1 else None,
            "n": n, "values": finite}


def by_value(points: Sequence[Mapping]) -> list[dict]:
    """The seeds of each value reduced: [{"value", "seeds", "diverged" (count), "epe": summarize(...), "fl",
    "miou", "jf", "feat_std_min_all"}, ...] sorted by value."""
    groups: dict[float, list[Mapping]] = {}
    for p in points:
        groups.setdefault(float(p["value"]), []).append(p)
    return [{"value": value, "seeds": [p.get("seed", 0) for p in group],
             "diverged": sum(bool(p.get("diverged")) for p in group),
             **{key: summarize([p.get(key) for p in group]) for key in METRICS}}
            for value, group in sorted(groups.items())]


# ------------------------------------------------------------------------------------------- tables
def _stability_text(point: Mapping) -> str:
    if not point.get("diverged"):
        return "no"
    step = point.get("diverged_step")
    return f"yes (step {step})" if step is not None else "yes"


def points_markdown(points: Sequence[Mapping]) -> str:
    """A Markdown table of points: value, seed, EPE, Fl, mIoU (%), J&F (%), min feature std, diverged, run."""
    header = ["value", "seed", "flow EPE (px)", "Fl (%)", "mIoU (%)", "J&F (%)", "min feature std", "diverged", "run"]
    rows = ([f"{p['value']:g}", p.get("seed", 0), fmt(p.get("epe")), fmt(p.get("fl"), digits=1),
             fmt(p.get("miou"), 100, 1), fmt(p.get("jf"), 100, 1), fmt(p.get("feat_std_min_all"), digits=3),
             _stability_text(p), Path(str(p.get("run_dir", ""))).name] for p in points)
    return markdown_table(header, rows, empty="(no points yet)") + "\n"


def sweep_markdown(points: Sequence[Mapping]) -> str:
    """A Markdown table of a sweep, one row per value: mean ± std over seeds (n) of EPE, mIoU, J&F and the
    minimum feature std, and how many of the seeds diverged."""
    header = ["value", "flow EPE (px)", "mIoU (%)", "J&F (%)", "min feature std", "diverged"]
    rows = ([f"{row['value']:g}", mean_std_text(row["epe"]), mean_std_text(row["miou"], 100, 1),
             mean_std_text(row["jf"], 100, 1), mean_std_text(row["feat_std_min_all"], digits=3),
             f"{row['diverged']} of {len(row['seeds'])}"] for row in by_value(points))
    return markdown_table(header, rows, empty="(no points yet)") + "\n"


def describe_point(point: Mapping) -> str:
    """A point's settings in one line, none of its results: the ablation, its key and value, the seed, scale and
    schedule, any extra overrides, and what was evaluated on which dataset. The ablation notebooks print it (nbval
    compares it at smoke settings), e.g. "cycle: loss.cycle = 0.1, seed 0, tiny scale, 1 epoch(s) x 4 steps;
    evaluated: flow on embedded, segmentation on embedded"."""
    extra = "".join(f", {key} = {value!r}" for key, value in sorted((point.get("overrides") or {}).items()))
    datasets = point.get("eval_datasets") or {}
    evaluated = ", ".join(f"{task} on {datasets.get(task, '?')}" for task in point.get("tasks", ()))
    key = ABLATIONS[point["ablation"]].key
    return (f"{point['ablation']}: {key} = {point['value']:g}, seed {point.get('seed', 0)}, "
            f"{point['scale']} scale, {point['epochs']:g} epoch(s) x {point['steps_per_epoch']} steps{extra}; "
            f"evaluated: {evaluated or 'nothing'}")


def describe_points(points: Mapping[str, Sequence[Mapping]]) -> str:
    """One line per ablation of {ablation: points} (`collect`'s lists): how many points and their values and
    seeds, none of their results; notebook 08 prints it for the points it found."""
    lines = []
    for ablation, found in points.items():
        values = ", ".join(f"{p['value']:g} (seed {p.get('seed', 0)})" for p in found)
        lines.append(f"{ablation} ({ABLATIONS[ablation].key}): {len(found)} point(s)"
                     + (f": {values}" if found else ""))
    return "\n".join(lines)


def describe_sweep(points: Sequence[Mapping]) -> str:
    """Our trend in words from the means over seeds: where EPE is lowest and mIoU highest, which diverged."""
    if not points:
        return "no points yet"
    rows, parts = by_value(points), []
    for key, name, factor, unit, best in (("epe", "lowest EPE", 1.0, " px", min),
                                          ("miou", "highest mIoU", 100.0, " %", max)):
        scored = [r for r in rows if r[key]["n"]]
        if scored:
            top = best(scored, key=lambda r: r[key]["mean"])
            parts.append(f"{name} {top[key]['mean'] * factor:.2f}{unit} at {top['value']:g}")
    diverged = [f"{r['value']:g} ({r['diverged']} of {len(r['seeds'])})" for r in rows if r["diverged"]]
    if diverged:
        parts.append(f"diverged at {', '.join(diverged)}")
    values = ", ".join(f"{r['value']:g}" for r in rows)
    seeds = sorted({len(r["seeds"]) for r in rows})
    runs = f"{len(points)} run{'s' * (len(points) != 1)}, {'/'.join(map(str, seeds))} seed(s) per value"
    return f"{'; '.join(parts) or 'no scores'} ({runs}: {values})"


def trends_markdown(figures_dir: str | Path | None = None, recipe: str | None = None) -> str:
    """Markdown table: each ablation (the Fig. 5 panels in order, then the others), what the paper reports
    (`Ablation.paper`), what our points show."""
    order = (*FIG5_PANELS, *(name for name in ABLATIONS if name not in FIG5_PANELS))
    rows = ([f"{ABLATIONS[name].label} (`{ABLATIONS[name].key}`)", ABLATIONS[name].paper,
             describe_sweep(collect(name, figures_dir, recipe))] for name in order)
    return markdown_table(["ablation", "paper (reported)", "ours (stored points, means over seeds)"], rows) + "\n"


VC_COLUMNS = ("setting", "flow EPE (px)", "mIoU (%)", "J&F (%)", "min feature std", "diverged")


def vc_rows(points: Sequence[Mapping]) -> list[tuple[list[str], bool]]:
    """Rows of the VC table (`VC_COLUMNS`): ours (mean ± std over seeds per vc value) then the paper's two rows;
    each with True for ours."""
    rows = []
    for row in by_value(points):
        scale = "/".join(sorted({str(p.get("scale", "?")) for p in points if float(p["value"]) == row["value"]}))
        name = ("vc = 0: pooled embedding only" if row["value"] == 0
                else f"vc = {row['value']:g}: every flow level + pooled")
        rows.append(([f"ours ({scale}): {name}", mean_std_text(row["epe"]), mean_std_text(row["miou"], 100, 1),
                      mean_std_text(row["jf"], 100, 1), mean_std_text(row["feat_std_min_all"], digits=3),
                      f"{row['diverged']} of {len(row['seeds'])}"], True))
    if not points:
        rows.append((["ours: no vc points yet (run 07_ablation_vc)", "-", "-", "-", "-", "-"], True))
    paper = {r["setting"]: r for r in PAPER_ABLATIONS}
    for setting, stability in (("no VC regularisation", "unstable (reported)"),
                               ("VC on every layer + 1-epoch warm-up (final)", "-")):
        r = paper[setting]
        rows.append(([f"paper: {setting}", fmt(r["kitti2015_train_epe"]), fmt(r["voc_linear"], digits=1),
                      fmt(r["davis_jf"], digits=1), "-", stability], False))
    return rows


VC_NOTE = ("Paper rows: KITTI-15 train EPE, VOC frozen linear mIoU, DAVIS-17 J&F (reported). Our rows: mean ± std "
           "over seeds on the kit's evaluation data at its own scale (embedded pairs / stills / sequences at tiny "
           "scale): not comparable to the paper's numbers; compare vc = 0 with vc > 0.")


def vc_markdown(points: Sequence[Mapping]) -> str:
    """The VC-regulariser ablation as Markdown: `vc_rows` (ours in bold) and `VC_NOTE`."""
    rows = vc_rows(points)
    return markdown_table(VC_COLUMNS, [r for r, _ in rows], bold=[mine for _, mine in rows]) + f"\n\n{VC_NOTE}\n"
