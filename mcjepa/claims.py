"""The paper's four claims, measured over seeds, each with a verdict from one stated rule.

    (i)   MC-JEPA's flow is at least as good as M-JEPA's         flow EPE, MC-JEPA vs M-JEPA runs
    (ii)  MC-JEPA's content features beat VICReg's               mIoU and J&F, MC-JEPA vs VICReg runs
    (iii) without the VC regulariser multi-task training is      EPE / mIoU / J&F / min feature std of the
          unstable or clearly worse                              vc sweep: vc = preset value vs vc = 0; and the
                                                                 runs the collapse guard stopped in the
                                                                 instability setting (ablations.INSTABILITY)
    (iv)  the cycle coefficient has a useful interior value      flow EPE along the cycle sweep (Fig. 5-2)

The rule (`VERDICT_RULE`): Welch's t test (unequal variances, scipy) on the per-seed values of the two groups,
one-sided at ALPHA = 5 %. A claim "A better than B" holds when A is significantly better, is contradicted when
A is significantly worse, and is "not shown" otherwise; a claim "A at least as good as B" is contradicted only
by a significantly worse A. With fewer than 2 seeds in a group there is no verdict.

The method runs (M-JEPA, VICReg, MC-JEPA at each seed) are evaluated once and stored as
`figures_dir/claims/runs/<method>_seed<seed>.json`, reused while the run's config hash and the evaluation
datasets are the same (`result_cache`). A `Setting` (mcjepa.experiments) says which recipe and folders.

The content rows are read against the reference rows of `eval.references` at the same seeds (raw colour and the
untrained encoder as floors, the supervised ceiling at tiny scale; `reference_result`, stored beside the methods'
as `reference-<name>_seed<seed>.json` by the full profile): each content row carries their summaries and the
fraction of the floor-to-ceiling range each group covers (`references_markdown`).
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from .ablations import EVAL_DATASETS, INSTABILITY, base_config, by_value, collect, recipe_hash, summarize
from .data.registry import SCALE_DATASETS, eval_roots
from .eval.compare import untrained_run
from .eval.references import RAW_COLOUR, SUPERVISED, UNTRAINED, range_fraction, range_share_text
from .eval.suite import RawColour, evaluate_run
from .config import config_hash
from .experiments import Setting, check_integer, ensure_run, is_finished, run_dir
from .report import fmt, load_json, markdown_table, mean_std_text, save_json
from .result_cache import cached_result, store_result
from .utils import atomic_write, resolve_dir

ALPHA = 0.05
VERDICT_RULE = ("Welch's t test (unequal variances) on the per-seed values, one-sided at 5 %: 'holds' = "
                "significantly better in the claimed direction; 'contradicted' = significantly worse; 'not shown' "
                "= the difference is within the seed-to-seed noise (for 'at least as good' claims: 'holds (not "
                "worse)'); 'no verdict' with fewer than 2 seeds per group. (iv) picks the cycle value with the "
                "lowest mean EPE and tests it against the sweep's two ends; picking the best first favours the "
                "claim. Effect: mean(ours) - mean(compared with), in the measure's unit, with its two-sided 95 % "
                "Welch interval (Welch-Satterthwaite degrees of freedom); for the collapse counts, the difference "
                "of the stopped fractions.")
METHODS = ("m-jepa", "vicreg", "mc-jepa")
TASKS = {"m-jepa": ("flow", "segmentation", "davis"), "vicreg": ("segmentation", "davis"),
         "mc-jepa": ("flow", "segmentation", "davis")}
RESULT_FORMAT = 2  # 2: the probe reads the stride-8/16/32 features of 384 stills (data.registry EMBEDDED_EVAL)
REFERENCES = (RAW_COLOUR, UNTRAINED, SUPERVISED)  # floors, then the ceiling (tiny scale only: dense labels)


# ------------------------------------------------------------------------------------------- method runs
def result_path(method: str, seed: int = 0, figures_dir: str | Path | None = None) -> Path:
    return resolve_dir(figures_dir, "figures") / "claims" / "runs" / f"{method}_seed{check_integer('seed', seed)}.json"


def _eval_datasets(method: str, scale: str) -> dict:
    """What a method run is evaluated on: the points' datasets, and every flow dataset of the scale (claim (i) is
    read on each) for the methods that predict flow."""
    flows = SCALE_DATASETS[scale]["flow"] if "flow" in TASKS[method] else ()
    return {**EVAL_DATASETS[scale], "flow": list(flows)}


def method_result(method: str, setting: Setting, train: bool = True) -> dict | None:
    """The stored evaluation of the run of `method` in `setting` (its seed, scale, schedule, data roots and
    folders; `result_path`): {"method", "seed", "config_hash", "run_dir" (the run's folder name under runs_dir,
    never a machine path), "flow": {dataset: metrics}, "miou" (fraction), "jf" (fraction), "epe/<dataset>" (px),
    ...}, reused while the run's config hash and evaluation datasets are the same (`result_cache`).

    Trains the run first when it is missing and `train` is True; with `train=False` a missing run gives None
    (notebook 08 reads what exists). Raises ValueError for an unknown method."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; the claims compare {METHODS}")
    cfg = setting.config(method)
    path, cfg_hash = result_path(method, cfg.train.seed, setting.figures_dir), config_hash(cfg)
    datasets = _eval_datasets(method, setting.scale)
    stored = cached_result(path, {"format": RESULT_FORMAT, "config_hash": cfg_hash, "eval_datasets": datasets},
                           what="stored evaluation")
    if stored is not None:
        return stored
    folder = run_dir(cfg, setting.runs)
    if not is_finished(folder, cfg):
        if not train:
            return None
        ensure_run(cfg, runs_dir=setting.runs, progress=setting.progress)
    roots, progress = eval_roots(setting.data_roots), setting.progress
    content = [t for t in TASKS[method] if t != "flow"]
    results = evaluate_run(folder, tasks=content, seg_dataset=datasets["segmentation"], video=datasets["davis"],
                           roots=roots, progress=progress)
    flow = {name: evaluate_run(folder, tasks=("flow",), flow_dataset=name, roots=roots, progress=progress)["flow"]
            for name in datasets["flow"]}
    result = {"format": RESULT_FORMAT, "method": method, "seed": cfg.train.seed, "scale": setting.scale,
              "config_hash": cfg_hash, "eval_datasets": datasets, "run_dir": folder.name, "flow": flow,
              **{f"epe/{name}": metrics.get("epe") for name, metrics in flow.items()},
              "miou": results.get("segmentation", {}).get("miou"), "jf": results.get("davis", {}).get("JF_mean"),
              "segmentation": results.get("segmentation", {}), "davis": results.get("davis", {}),
              "created": datetime.datetime.now().isoformat(timespec="seconds")}
    return store_result(result, path, "stored evaluation")


def reference_result(name: str, setting: Setting, compute: bool = False) -> dict | None:
    """The stored content evaluation (probe mIoU and J&F, fractions) of reference `name` (`REFERENCES`) at the
    seed of `setting`: raw colour and the untrained encoder of the MC-JEPA config, the finished supervised run
    (tiny scale only). Stored as `result_path("reference-<name>", seed)`, reused while the config hash and the
    evaluation datasets are the same. Missing: measured when `compute` (a missing supervised run is not
    trained: None; the full profile trains it), else None. The probe is read at probe seed 0 (bench_content
    averages 3 probe seeds, so its raw colour reads 24.2 where this reads 24.4). Stale or missing reference
    files only drop the references table; `stale_evaluations` checks the methods' files. Raises ValueError for
    an unknown name."""
    if name not in REFERENCES:
        raise ValueError(f"unknown reference {name!r}; the claims read {REFERENCES}")
    if name == SUPERVISED and setting.scale != "tiny":
        return None  # the supervised ceiling trains on the embedded stills' class maps
    cfg = setting.config("supervised" if name == SUPERVISED else "mc-jepa")
    datasets = {task: EVAL_DATASETS[setting.scale][task] for task in ("segmentation", "davis")}
    path = result_path("reference-" + name.replace(" ", "-"), cfg.train.seed, setting.figures_dir)
    stored = cached_result(path, {"format": RESULT_FORMAT, "config_hash": config_hash(cfg),
                                  "eval_datasets": datasets}, what="stored evaluation")
    if stored is not None or not compute:
        return stored
    if name == RAW_COLOUR:
        run = RawColour(cfg)
    elif name == UNTRAINED:
        run = untrained_run(cfg, setting.runs)
    else:
        run = run_dir(cfg, setting.runs)
        if not is_finished(run, cfg):
            return None
    results = evaluate_run(run, tasks=("segmentation", "davis"), seg_dataset=datasets["segmentation"],
                           video=datasets["davis"], roots=eval_roots(setting.data_roots), progress=setting.progress)
    result = {"format": RESULT_FORMAT, "reference": name, "seed": cfg.train.seed, "scale": setting.scale,
              "config_hash": config_hash(cfg), "eval_datasets": datasets,
              "miou": results["segmentation"]["miou"], "jf": results["davis"]["JF_mean"],
              "created": datetime.datetime.now().isoformat(timespec="seconds")}
    return store_result(result, path, "stored evaluation")


def reference_seeds(name: str, seeds: Sequence[int]) -> list[int]:
    """The seeds a reference is evaluated at: all of `seeds`, but only the first for raw colour (no network, no
    seed: its value is the same at every seed, and repeating it would show a spread of zero as if measured)."""
    return list(seeds[:1]) if name == RAW_COLOUR else list(seeds)


def reference_results(seeds: Sequence[int], setting: Setting, compute: bool = False) -> dict[str, list[dict]]:
    """{reference: [stored results over `reference_seeds`]} (`reference_result`; missing ones left out)."""
    out = {}
    for name in REFERENCES:
        found = [reference_result(name, setting.replace(seed=seed), compute) for seed in reference_seeds(name, seeds)]
        out[name] = [r for r in found if r is not None]
    return out


def reference_means(seeds: Sequence[int], setting: Setting, key: str = "miou") -> dict[str, float]:
    """{reference: mean of `key` ("miou" or "jf", fractions) over its stored results at `seeds`}
    (`reference_results`, read only, averaged by `summarize` as the references table does; references without a
    stored number are left out)."""
    means = {name: summarize([r.get(key) for r in results])["mean"]
             for name, results in reference_results(seeds, setting).items()}
    return {name: mean for name, mean in means.items() if mean is not None}


def with_references(row: dict, references: Mapping[str, Sequence[Mapping]], key: str) -> dict:
    """`row` (a content row: `key` "miou" or "jf") with "references" ({reference: summarize(values)}) and
    "range" ({"a", "b"}: the fraction of the floor-to-ceiling range each group's mean covers,
    `references.range_fraction`; NaN without both floors and the ceiling)."""
    summaries = {name: summarize([r.get(key) for r in references.get(name, [])]) for name in REFERENCES}
    row["references"] = summaries
    floors = [summaries[name]["mean"] for name in (RAW_COLOUR, UNTRAINED)]
    ceiling = summaries[SUPERVISED]["mean"]  # range_fraction gives NaN for a missing (None) number
    row["range"] = {group: range_fraction(row[group + "_summary"]["mean"], floors, ceiling) for group in ("a", "b")}
    return row


def method_results(seeds: Sequence[int], setting: Setting, train: bool = False) -> dict[str, list[dict]]:
    """{method: [stored results over `seeds`]} of `setting` at each seed (missing runs left out when `train` is
    False)."""
    out = {}
    for method in METHODS:
        found = [method_result(method, setting.replace(seed=seed), train=train) for seed in seeds]
        out[method] = [r for r in found if r is not None]
    return out


def stale_evaluations(seeds: Sequence[int], setting: Setting) -> list[str]:
    """The method runs ("m-jepa seed 1", ...) of `setting` at `seeds` whose stored evaluation (`result_path`)
    is missing or was measured with another config than today's preset or another evaluation protocol
    (`RESULT_FORMAT`): after a recipe or protocol change the claims table is out of date until the full profile
    (`make reproduce`) re-measures it. Raises ValueError naming a stored file that is torn or was altered."""
    stale = []
    for method in METHODS:
        for seed in seeds:
            path = result_path(method, seed, setting.figures_dir)
            cfg_hash = config_hash(setting.replace(seed=seed).config(method))
            stored = load_json(path, "stored evaluation") if path.is_file() else {}
            if stored.get("config_hash") != cfg_hash or stored.get("format") != RESULT_FORMAT:
                stale.append(f"{method} seed {seed}")
    return stale


# ------------------------------------------------------------------------------------------- statistics
def welch(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """Welch's t test of mean(a) vs mean(b): {"t", "p_less" (one-sided, H1: mean a < mean b), "p_greater",
    "difference" (mean a - mean b), "ci" (its two-sided `confidence` interval, Welch-Satterthwaite degrees of
    freedom)}. NaN p-values and interval when a group has fewer than 2 values or both have zero spread (the
    difference is still given when both groups have a value)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    difference = float(a.mean() - b.mean()) if a.size and b.size else math.nan
    if a.size < 2 or b.size < 2 or (a.std() == 0 and b.std() == 0):
        return {"t": math.nan, "p_less": math.nan, "p_greater": math.nan, "difference": difference,
                "ci": (math.nan, math.nan)}
    less = stats.ttest_ind(a, b, equal_var=False, alternative="less")
    greater = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    two_sided = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    return {"t": float(less.statistic), "p_less": float(less.pvalue), "p_greater": float(greater.pvalue),
            "difference": difference, "ci": (float(two_sided.low), float(two_sided.high))}


def verdict(a: Sequence[float], b: Sequence[float], lower_is_better: bool, kind: str = "better",
            alpha: float = ALPHA, test: Mapping | None = None) -> tuple[str, float]:
    """(verdict, one-sided p that A is better) for the claim that A is better than B (`kind="better"`) or at
    least as good (`kind="not worse"`), by `VERDICT_RULE`; `test`: `welch(a, b)` if already computed."""
    if kind not in ("better", "not worse"):
        raise ValueError(f"kind must be 'better' or 'not worse', got {kind!r}")
    test = test if test is not None else welch(a, b)
    p_better, p_worse = ((test["p_less"], test["p_greater"]) if lower_is_better
                         else (test["p_greater"], test["p_less"]))
    if len(a) < 2 or len(b) < 2:
        return f"no verdict (n = {len(a)} and {len(b)}; 2 per group needed)", p_better
    if math.isnan(p_better):
        return "no verdict (no spread in either group)", p_better
    if p_better < alpha:
        return "holds", p_better
    if p_worse < alpha:
        return "contradicted", p_better
    return ("holds (not worse)" if kind == "not worse" else "not shown"), p_better


# ------------------------------------------------------------------------------------------- the claims
def _row(claim: str, paper: str, measure: str, names: tuple[str, str], a: Sequence, b: Sequence,
         lower_is_better: bool, kind: str, factor: float = 1.0, digits: int = 2) -> dict:
    a, b = [v for v in a if v is not None], [v for v in b if v is not None]
    test = welch(a, b)
    result, p = verdict(a, b, lower_is_better, kind, test=test)
    return {"claim": claim, "paper": paper, "measure": measure, "a": names[0], "b": names[1],
            "a_summary": summarize(a), "b_summary": summarize(b), "factor": factor, "digits": digits,
            "lower_is_better": lower_is_better, "kind": kind, "p": p, "verdict": result,
            "difference": test["difference"], "ci": list(test["ci"])}


def _values(results: Sequence[Mapping], key: str) -> list:
    return [r.get(key) for r in results]


def claims(setting: Setting, seeds: Sequence[int] = (0, 1, 2), train: bool = False) -> list[dict]:
    """The claims table's rows from the stored method results and sweep points of the recipe of `setting`
    (scale, schedule, data roots; its folders say where they are; module docstring).

    Each row: {"claim", "paper", "measure", "a", "b", "a_summary", "b_summary" (mcjepa.ablations.summarize),
    "p" (one-sided Welch p that a is better), "verdict"}. With `train=True` missing method runs are trained
    and evaluated first."""
    runs = method_results(seeds, setting, train=train)
    references = reference_results(seeds, setting, compute=train)
    mc, m, vic = runs["mc-jepa"], runs["m-jepa"], runs["vicreg"]
    rows = []
    for name in SCALE_DATASETS[setting.scale]["flow"]:
        rows.append(_row("(i) MC-JEPA's flow is at least as good as M-JEPA's", "KITTI-15 EPE 2.67 vs 3.01",
                         f"flow EPE (px), {name}", ("MC-JEPA", "M-JEPA"), _values(mc, f"epe/{name}"),
                         _values(m, f"epe/{name}"), True, "not worse"))
    rows.append(with_references(_row("(ii) MC-JEPA's content features beat VICReg's", "VOC mIoU 67.1 vs 60.1",
                                     "linear-probe mIoU (%)", ("MC-JEPA", "VICReg"), _values(mc, "miou"),
                                     _values(vic, "miou"), False, "better", 100.0, 1), references, "miou"))
    rows.append(with_references(_row("(ii) MC-JEPA's content features beat VICReg's", "DAVIS J&F 70.5 vs 58.1",
                                     "label-propagation J&F (%)", ("MC-JEPA", "VICReg"), _values(mc, "jf"),
                                     _values(vic, "jf"), False, "better", 100.0, 1), references, "jf"))

    figures_dir, recipe = setting.figures_dir, recipe_hash(setting)
    preset = base_config(setting.replace(seed=0))
    vc = collect("vc", figures_dir, recipe)
    on = [p for p in vc if float(p["value"]) == preset.loss.vc]
    off = [p for p in vc if float(p["value"]) == 0.0]
    names = (f"vc = {preset.loss.vc:g}", "vc = 0")
    claim = "(iii) without the VC regulariser multi-task training is unstable or clearly worse"
    for key, paper, measure, lower, factor, digits in (
            ("epe", "KITTI-15 EPE 2.67 vs 3.41", "flow EPE (px)", True, 1.0, 2),
            ("miou", "VOC mIoU 67.1 vs 47.3", "linear-probe mIoU (%)", False, 100.0, 1),
            ("jf", "DAVIS J&F 70.5 vs 37.8", "label-propagation J&F (%)", False, 100.0, 1),
            ("feat_std_min_all", "unstable without VC (reported)", "lowest per-level feature std", False, 1.0, 3)):
        row = _row(claim, paper, measure, names, _values(on, key), _values(off, key), lower, "better", factor, digits)
        rows.append(with_references(row, references, key) if key in ("miou", "jf") else row)
    guarded = collect("vc", figures_dir, recipe_hash(setting, INSTABILITY))
    rows.append(instability_row(guarded, preset.loss.vc))
    rows.append(cycle_claim(collect("cycle", figures_dir, recipe)))
    return rows


def instability_row(points: Sequence[Mapping], preset_vc: float) -> dict:
    """Claim (iii) in the instability setting (mcjepa.ablations.INSTABILITY): how many runs the collapse guard
    stopped with VC (vc = `preset_vc`) and without (vc = 0), and at which steps. A count, not a test: the
    verdict says what was seen and the one-sided Fisher's exact test (it cannot reach 5 % with 3 runs per group:
    its smallest p is then exactly 0.05; the full profile trains `reproduce.INSTABILITY_SEEDS`, 5 per group, where
    it is 0.004)."""
    claim = "(iii) without the VC regulariser multi-task training is unstable or clearly worse"
    on = [p for p in points if float(p["value"]) == preset_vc]
    off = [p for p in points if float(p["value"]) == 0.0]
    row = _row(claim, "unstable without VC (reported)", "runs stopped by the collapse guard, instability setting",
               (f"vc = {preset_vc:g}", "vc = 0"), [float(bool(p.get("diverged"))) for p in on],
               [float(bool(p.get("diverged"))) for p in off], True, "better")
    stopped_on, stopped_off = (sum(bool(p.get("diverged")) for p in group) for group in (on, off))
    steps = sorted(p["diverged_step"] for p in off if p.get("diverged") and p.get("diverged_step") is not None)
    where = f" (steps {steps[0]}-{steps[-1]})" if len(steps) > 1 else f" (step {steps[0]})" if steps else ""
    test = stats.fisher_exact([[stopped_off, len(off) - stopped_off], [stopped_on, len(on) - stopped_on]],
                              alternative="greater") if on and off else None
    row["p"] = float(test.pvalue) if test is not None else math.nan
    row["ci"] = [math.nan, math.nan]  # a t interval on 0/1 outcomes can leave [-1, 1]: the difference alone
    seen = f"collapse in {stopped_off} of {len(off)} runs without VC{where}, {stopped_on} of {len(on)} with VC"
    if not on or not off:
        row["verdict"] = f"no verdict ({seen})"
    elif row["p"] < ALPHA:
        row["verdict"] = f"holds ({seen}; Fisher's exact test)"
    else:
        row["verdict"] = f"not shown ({seen}; Fisher's exact test, p >= 0.05: more runs needed)"
    row["counts"] = {"with_vc": [stopped_on, len(on)], "without_vc": [stopped_off, len(off)], "steps": steps}
    return row


def cycle_claim(points: Sequence[Mapping]) -> dict:
    """Claim (iv): the cycle value with the lowest mean EPE is interior and significantly better than both ends
    of the sweep (Welch, one-sided, each end)."""
    claim, paper = "(iv) the cycle coefficient has a useful interior value", "Fig. 5-2 (curve; values not given)"
    rows = [r for r in by_value(points) if r["epe"]["n"]]
    if len(rows) < 3:
        return _row(claim, paper, "flow EPE (px) along the cycle sweep", ("best interior", "ends"), [], [], True,
                    "better") | {"verdict": f"no verdict ({len(rows)} values; 3 needed)"}
    best = min(rows, key=lambda r: r["epe"]["mean"])
    ends = (rows[0], rows[-1])
    measure = f"flow EPE (px): best cycle = {best['value']:g} vs the ends {ends[0]['value']:g} / {ends[1]['value']:g}"
    if best in ends:
        row = _row(claim, paper, measure, (f"cycle = {best['value']:g}", "interior values"), best["epe"]["values"],
                   [v for r in rows[1:-1] for v in r["epe"]["values"]], True, "better")
        row["verdict"] = f"not shown (lowest mean EPE at the end of the sweep, {best['value']:g})"
        return row
    tests = [verdict(best["epe"]["values"], end["epe"]["values"], True) for end in ends]
    harder = max(range(2), key=lambda i: math.inf if math.isnan(tests[i][1]) else tests[i][1])  # beaten least
    row = _row(claim, paper, measure, (f"cycle = {best['value']:g}", f"cycle = {ends[harder]['value']:g}"),
               best["epe"]["values"], ends[harder]["epe"]["values"], True, "better")
    row["p"] = tests[harder][1]
    both = [v for v, _ in tests]
    no_verdict = [v for v in both if v.startswith("no verdict")]
    row["verdict"] = (no_verdict[0] if no_verdict else "holds" if all(v == "holds" for v in both)
                      else "contradicted" if "contradicted" in both else "not shown")
    row["end_summaries"] = [end["epe"] for end in ends]
    return row


def _group(row: Mapping, which: str) -> str:
    return f"{row[which]}: {mean_std_text(row[which + '_summary'], row['factor'], row['digits'])}"


def effect_text(row: Mapping) -> str:
    """'-0.13 [-0.21, -0.05]': mean A - mean B with its 95 % Welch interval, in the measure's unit; '-' without
    the numbers (rows stored before they were recorded, or an empty group)."""
    difference, (low, high) = row.get("difference", math.nan), row.get("ci", (math.nan, math.nan))
    if difference is None or not math.isfinite(difference):
        return "-"
    scale, digits = row["factor"], row["digits"]
    text = f"{scale * difference:+.{digits}f}"
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        text += f" [{scale * low:+.{digits}f}, {scale * high:+.{digits}f}]"
    return text


def claims_markdown(rows: Sequence[Mapping]) -> str:
    """The claims table: claim | paper (reported) | measure | ours A | ours B | A - B (95 % CI) | p | verdict,
    then the rule."""
    cells, previous = [], None
    for r in rows:
        claim, previous = ("" if r["claim"] == previous else r["claim"]), r["claim"]
        cells.append([claim, r["paper"], r["measure"], _group(r, "a"), _group(r, "b"), effect_text(r),
                      fmt(r["p"], digits=3), f"**{r['verdict']}**"])
    header = ["claim", "paper (reported)", "measure", "ours", "compared with", "ours - compared with (95 % CI)",
              "p (one-sided)", "verdict"]
    references = references_markdown(rows)
    return (markdown_table(header, cells) + f"\n\nVerdict rule: {VERDICT_RULE}\n"
            + (f"\n{references}" if references else ""))


def references_markdown(rows: Sequence[Mapping]) -> str:
    """The content rows against their references: measure | groups | raw colour | untrained | supervised | the
    share of the floor-to-ceiling range each group covers. Empty when no row has references."""
    cells = []
    for r in rows:
        if not any(summary.get("n") for summary in r.get("references", {}).values()):
            continue
        refs = [mean_std_text(r["references"][name], r["factor"], r["digits"]) for name in REFERENCES]
        shares = [f"{r[g]}: {range_share_text(r['range'][g])}" for g in ("a", "b")]
        cells.append([r["measure"], f"{r['a']} / {r['b']}", *refs, ", ".join(shares)])
    if not cells:
        return ""
    header = ["measure", "groups", *REFERENCES, "share of the floor-to-ceiling range (0 % = best floor)"]
    return ("Content references (the same seeds; raw colour and untrained are the floors, supervised the "
            "ceiling):\n\n" + markdown_table(header, cells) + "\n")


def save_claims(rows: Sequence[Mapping], folder: str | Path) -> tuple[Path, Path]:
    """claims.json and claims.md in `folder` (atomic writes)."""
    folder = Path(folder)
    json_path = save_json({"rule": VERDICT_RULE, "alpha": ALPHA, "rows": list(rows)}, folder / "claims.json")
    with atomic_write(folder / "claims.md", "w") as handle:
        handle.write(claims_markdown(rows))
    return json_path, folder / "claims.md"
