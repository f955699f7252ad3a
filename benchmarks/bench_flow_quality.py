"""Flow quality of the tiny models beside the classical methods a user would pick instead, in one run.

    python benchmarks/bench_flow_quality.py [--runs-dir runs] [--no-train] [--json out.json]

Rows: zero flow, OpenCV Farneback, OpenCV DIS (medium preset), tiny M-JEPA and tiny MC-JEPA (the runs of
notebooks 01 and 03 at their default parameters, taken from the run cache; trained first, two at a time, if
missing, unless --no-train). Columns: per evaluation set (the 32 held-out embedded pairs at 96x128; the real
Middlebury Motorcycle stereo pair at 1/4 scale, u = -disparity) the EPE (px), Fl (%: EPE > 3 px and > 5 % of
|GT|) and the seconds per pair of the flow computation alone (one CPU thread for every method).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing the kit

from mcjepa.eval.classical import CLASSICAL_FLOW, classical_flow_fn, evaluate_timed  # noqa: E402
from mcjepa.data.registry import flow_eval_dataset
from mcjepa.eval.runners import flow_fn  # noqa: E402
from mcjepa.experiments import ensure_runs, is_finished, run_config, run_dir  # noqa: E402
from mcjepa.models.checkpoint import load_model  # noqa: E402
from mcjepa.report import save_json  # noqa: E402

DATASETS = ("embedded", "motorcycle")
MODELS = {"tiny M-JEPA": "m-jepa", "tiny MC-JEPA": "mc-jepa"}


def zero_flow(frame1: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
    return frame1.new_zeros(frame1.shape[0], 2, *frame1.shape[-2:])


def measure(runs_dir: str, train: bool) -> dict:
    """{method: {dataset: {epe, fl, seconds_per_pair}}} for every row of the table."""
    configs = {label: run_config("tiny", method, {}, seed=0) for label, method in MODELS.items()}
    missing = [label for label, cfg in configs.items() if not is_finished(run_dir(cfg, runs_dir), cfg)]
    if missing and not train:
        raise SystemExit(f"no finished run for {missing} in {runs_dir}: run `make demo` or drop --no-train")
    if missing:
        ensure_runs([configs[label] for label in missing], runs_dir, workers=2, eval_every=50)
    torch.set_num_threads(1)
    datasets = {name: flow_eval_dataset(name, None, configs["tiny M-JEPA"]) for name in DATASETS}
    methods = {"zero flow": (zero_flow, 1)}
    methods.update({label: (classical_flow_fn(m), 1) for m, label in CLASSICAL_FLOW.items()})
    for label, cfg in configs.items():
        model = load_model(run_dir(cfg, runs_dir))[0]
        methods[label] = (flow_fn(model), model.stride)
    table = {}
    for label, (fn, stride) in methods.items():
        table[label] = {}
        for name, dataset in datasets.items():
            result = evaluate_timed(fn, dataset, stride)
            table[label][name] = {k: result[k] for k in ("epe", "fl", "seconds_per_pair")}
    return table


def markdown(table: dict) -> str:
    header = "| method | " + " | ".join(f"{d} EPE (px) | {d} Fl (%) | {d} s/pair" for d in DATASETS) + " |"
    lines = [header, "|---" * (1 + 3 * len(DATASETS)) + "|"]
    for label, per in table.items():
        cells = [f"{per[d]['epe']:.2f} | {per[d]['fl']:.1f} | {per[d]['seconds_per_pair']:.4f}" for d in DATASETS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", default="runs", help="the run cache (relative to the repository root)")
    parser.add_argument("--no-train", action="store_true", help="fail instead of training missing runs")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = parser.parse_args(argv)
    table = measure(args.runs_dir, train=not args.no_train)
    print(markdown(table))
    if args.json:
        save_json(table, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
