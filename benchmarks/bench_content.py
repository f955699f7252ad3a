"""The content instruments, measured: probe mIoU and label-propagation J&F of every encoder beside its references.

    python benchmarks/bench_content.py [--seeds 0 1 2] [--methods vicreg m-jepa mc-jepa] [--runs-dir runs]
                                       [--no-train] [--workers 2] [--out figures/content_bench]

Rows, each measured in this run on the embedded evaluation data of the tiny preset:
- raw colour (no network: the RGB average-pooled at the features' strides), the untrained encoder (one per
  training seed: its initialisation), the supervised ceiling (`train.method="supervised"`), the true labels
  (the protocol's reference: the one-hot labels pooled to the features' grid, `references.label_features`),
  and
  the methods;
- per row and training seed: the linear probe's mIoU under `--probe-seeds` probe seeds (the same features;
  their spread is the probe's own noise) and the J&F of label propagation;
- per method: mean +- sd over the training seeds, the fraction of the floor-to-ceiling range it covers, and
  the one-sided Welch p that it lies above each floor (the claims' verdict rule, alpha 0.05).
Missing runs are trained into the run cache (`--workers` at a time) unless `--no-train`. Written to `--out`:
content.json (the measurements), content.md and content.png (`--redraw` rebuilds these two from the JSON).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from concurrent import futures
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing the kit

from mcjepa.claims import welch  # noqa: E402
from mcjepa.eval.compare import untrained_run  # noqa: E402
from mcjepa.eval.references import (  # noqa: E402
    FLOORS,
    RAW_COLOUR,
    SUPERVISED,
    TRUE_LABELS,
    UNTRAINED,
    range_fraction,
    range_share_text,
)
from mcjepa.experiments import ensure_runs, run_config, run_dir  # noqa: E402
from mcjepa.report import load_json, save_json  # noqa: E402
from mcjepa.utils import atomic_write  # noqa: E402

LABELS = {"vicreg": "VICReg", "m-jepa": "M-JEPA", "mc-jepa": "MC-JEPA"}
ALPHA = 0.05


def evaluate(job: tuple) -> tuple:
    """(row, seed, {"miou": [per probe seed], "jf": J&F}) of one encoder (a worker process, one thread)."""
    import torch

    from mcjepa.eval.suite import RawColour, TrueLabels, evaluate_run

    torch.set_num_threads(1)
    row, seed, run, probe_seeds = job
    if run in (RAW_COLOUR, TRUE_LABELS):
        run = (RawColour if run == RAW_COLOUR else TrueLabels)(run_config("tiny", "mc-jepa", seed=seed))
    mious = [evaluate_run(run, tasks=("segmentation",), progress=False, probe_seed=k)["segmentation"]["miou"]
             for k in range(probe_seeds)]
    jf = evaluate_run(run, tasks=("davis",), progress=False)["davis"]["JF_mean"]
    return row, seed, {"miou": [100 * v for v in mious], "jf": 100 * jf}


def summary(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=list(LABELS), choices=list(LABELS))
    parser.add_argument("--probe-seeds", type=int, default=3)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--no-train", action="store_true", help="use cached runs only (an error names a missing one)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="figures/content_bench")
    parser.add_argument("--redraw", action="store_true", help="only redraw content.md/.png from --out's content.json")
    args = parser.parse_args()
    if args.redraw:
        return render(Path(args.out))
    began = time.time()

    configs = {(label, seed): run_config("tiny", method, seed=seed)
               for seed in args.seeds for method, label in [("supervised", SUPERVISED)]
               + [(m, LABELS[m]) for m in args.methods]}
    folders = {key: run_dir(cfg, args.runs_dir) for key, cfg in configs.items()}
    missing = [key for key, folder in folders.items() if not (folder / "checkpoint.pt").is_file()]
    if missing and args.no_train:
        raise SystemExit(f"--no-train: no cached run for {missing} under {args.runs_dir}")
    if missing:
        outcome = ensure_runs([configs[key] for key in missing], args.runs_dir, workers=args.workers)
        failed = {name: err for name, err in outcome.items() if isinstance(err, Exception)}
        if failed:
            raise SystemExit(f"training failed: {failed}")
    jobs = [(row, args.seeds[0], row, args.probe_seeds) for row in (RAW_COLOUR, TRUE_LABELS)]
    jobs += [(UNTRAINED, seed, str(untrained_run(run_config("tiny", "mc-jepa", seed=seed), args.runs_dir)),
              args.probe_seeds) for seed in args.seeds]
    jobs += [(label, seed, str(folder), args.probe_seeds) for (label, seed), folder in folders.items()]
    measured: dict[str, dict[int, dict]] = {}
    with futures.ProcessPoolExecutor(args.workers) as pool:
        for row, seed, values in pool.map(evaluate, jobs):
            measured.setdefault(row, {})[seed] = values
            print(f"[{time.time() - began:5.0f}s] {row} seed {seed}: probe mIoU "
                  f"{', '.join(f'{v:.1f}' for v in values['miou'])}, J&F {values['jf']:.1f}", flush=True)

    rows = [RAW_COLOUR, UNTRAINED, SUPERVISED, TRUE_LABELS] + [LABELS[m] for m in args.methods]
    per_metric = {"miou": {}, "jf": {}}
    for row in rows:
        seeds = measured[row]
        per_metric["miou"][row] = [statistics.fmean(v["miou"]) for v in seeds.values()]
        per_metric["jf"][row] = [v["jf"] for v in seeds.values()]
    table = {}
    for row in rows:
        entry = {"probe_noise": max(max(v["miou"]) - min(v["miou"]) for v in measured[row].values())}
        for metric, values in per_metric.items():
            mean, sd = summary(values[row])
            floors = [statistics.fmean(values[f]) for f in FLOORS]
            entry[metric] = {"values": values[row], "mean": mean, "sd": sd,
                             "range": range_fraction(mean, floors, statistics.fmean(values[SUPERVISED]))}
            if row not in FLOORS + (TRUE_LABELS,):  # raw colour is measured once: the same at every seed
                entry[metric]["p_above"] = {f: welch(values[row], values[f] if f != RAW_COLOUR
                                                     else values[f] * len(values[row]))["p_greater"] for f in FLOORS}
        table[row] = entry

    seconds = time.time() - began
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_json({"seeds": args.seeds, "probe_seeds": args.probe_seeds, "rows": rows, "table": table,
               "seconds": seconds}, out / "content.json")
    render(out)


def number(value) -> float:
    """A stored number; NaN for null (the JSON of a missing spread or range)."""
    return math.nan if value is None else value


def render(out: Path) -> None:
    """content.md and content.png from the measurements in out/content.json (printed as well)."""
    record = load_json(out / "content.json", "benchmark record")
    table, rows = record["table"], record["rows"]

    def cell(metric, row):
        item = table[row][metric]
        text = f"{item['mean']:.1f}" + (f" +- {item['sd']:.1f}" if math.isfinite(number(item["sd"])) else "")
        share = number(item["range"])
        if row == TRUE_LABELS:
            text += " (reference)"
        elif row not in FLOORS:
            text += f" ({range_share_text(share)})"
        return text

    def above(metric, row):
        if row in FLOORS:
            return "floor"
        if row == TRUE_LABELS:
            return "the labels through the protocol"
        if len(table[row][metric]["values"]) < 2:
            return "n = 1: no test"
        ps = {f: number(p) for f, p in table[row][metric]["p_above"].items()}
        return ", ".join(f"{f}: p={p:.3f}" + (" *" if p < ALPHA else "") for f, p in ps.items())

    lines = [f"Content instruments, tiny preset, training seeds {record['seeds']} (n = {len(record['seeds'])}), "
             f"{record['probe_seeds']} probe seeds each; in brackets: the fraction of the floor-to-ceiling range; "
             f"p: one-sided Welch test above the floor (* below {ALPHA}).", "",
             "| encoder | probe mIoU (%) | probe noise (max-min over probe seeds) | above the floors (mIoU) | "
             "J&F (%) | above the floors (J&F) |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row} | {cell('miou', row)} | {table[row]['probe_noise']:.2f} | {above('miou', row)} | "
                     f"{cell('jf', row)} | {above('jf', row)} |")
    span = {m: table[SUPERVISED][m]["mean"] - max(table[f][m]["mean"] for f in FLOORS) for m in ("miou", "jf")}
    lines += ["", f"ceiling minus the best floor: probe mIoU {span['miou']:.1f} points, J&F {span['jf']:.1f} points; "
              f"wall time {record['seconds']:.0f} s"]
    if TRUE_LABELS in table:  # records written before the reference was measured lack it
        labels = {m: table[TRUE_LABELS][m]["mean"] - max(table[f][m]["mean"] for f in FLOORS) for m in ("miou", "jf")}
        lines += [f"true labels (one-hot, pooled to the features' grid) minus the best floor: probe mIoU "
                  f"{labels['miou']:.1f} points, J&F {labels['jf']:.1f} points (what the grid and the instrument "
                  f"leave to an encoder that reports the labels)"]
    text = "\n".join(lines) + "\n"
    print(text)
    with atomic_write(out / "content.md", "w") as handle:
        handle.write(text)
    plot(table, rows, out / "content.png")


def plot(table: dict, rows: list[str], path: Path) -> None:
    """Two panels (probe mIoU, J&F): a bar per encoder (mean, sd as error bar, the seeds as dots), the floors
    and the ceiling as horizontal lines, the true labels' reference as its own bar."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.8), layout="constrained")
    for ax, (metric, title) in zip(fig.subplots(1, 2), (("miou", "linear-probe mIoU (%)"), ("jf", "J&F (%)"))):
        means = [table[r][metric]["mean"] for r in rows]
        sds = [table[r][metric]["sd"] if math.isfinite(number(table[r][metric]["sd"])) else 0 for r in rows]
        colours = ["0.6" if r in FLOORS else "tab:green" if r == SUPERVISED else "tab:olive" if r == TRUE_LABELS
                   else "tab:blue" for r in rows]
        ax.bar(range(len(rows)), means, yerr=sds, color=colours, capsize=3)
        for i, r in enumerate(rows):
            values = table[r][metric]["values"]
            ax.plot([i] * len(values), values, "k.", ms=4)
            ax.text(i, means[i] + sds[i] + 1, f"{means[i]:.1f}", ha="center", fontsize=8)
        for r, style in ((RAW_COLOUR, ":"), (UNTRAINED, "--"), (SUPERVISED, "-")):
            ax.axhline(table[r][metric]["mean"], color="0.3", ls=style, lw=0.8)
        ax.set_xticks(range(len(rows)), rows, rotation=20, ha="right", fontsize=8)
        ax.set_title(title + " (grey: floors, green: ceiling, olive: true labels)", fontsize=9)
        ax.set_ylim(0, 100)
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
