"""The flow levers of the tiny recipe, each a run: held-out EPE against core-seconds of training, beside DIS.

    python benchmarks/bench_flow_levers.py [--runs-dir runs] [--no-train] [--out figures/flow_levers]

Every lever is a tiny run (`LEVERS`: method and overrides of `config.tiny()`), trained into the run cache if
missing (two at a time, the held-out EPE logged every 50 steps; hours of CPU for all of them) and reused
otherwise. Printed and written to `--out` (levers.md, levers.json, levers.png):
- per lever: the last held-out EPE (the 16 validation pairs the trainer logs), the test EPE on the 32 held-out
  embedded pairs and on Motorcycle @1/4, the masked fraction at the end against the true occluded fraction, the
  seconds of one training step (1 thread, measured here, in this run: the levers timed in turn, 5 rounds, the
  median) and the steps trained;
- the same validation pairs under DIS (OpenCV, medium preset) and zero flow, as horizontal lines.
The x axis of the figure is core-seconds: steps x the measured seconds per step of the lever's config.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing the kit

from mcjepa.eval.classical import classical_flow_fn  # noqa: E402
from mcjepa.eval.flow_metrics import evaluate_flow_dataset  # noqa: E402
from mcjepa.data.registry import flow_eval_dataset
from mcjepa.eval.runners import flow_fn  # noqa: E402
from mcjepa.experiments import ensure_runs, is_finished, run_config, run_dir  # noqa: E402
from mcjepa.models.checkpoint import load_model  # noqa: E402
from mcjepa.models.mcjepa import MCJEPA  # noqa: E402
from mcjepa.report import save_json  # noqa: E402
from mcjepa.train.metrics_log import read_metrics  # noqa: E402
from mcjepa.train.trainer import Objective, held_out_pairs  # noqa: E402
from mcjepa.viz.curves import plot_validation_curves  # noqa: E402

PREVIOUS = {"loss.occlusion_method": "fb", "loss.occlusion_start_epoch": 5.0, "loss.occlusion_max_fraction": 1.0,
            "train.max_occluded_fraction": 1.0, "model.flow.upsample": "bilinear", "loss.smooth_level": "image",
            "loss.smooth_alpha": 10.0, "loss.occlusion_range_threshold": 0.2}
RANGE = {**PREVIOUS, "loss.occlusion_method": "range", "loss.occlusion_start_epoch": 0.0,
         "loss.occlusion_max_fraction": 0.5, "train.max_occluded_fraction": 0.99}
CONVEX = {**RANGE, "model.flow.upsample": "convex"}
SMOOTH = {**CONVEX, "loss.smooth_level": "flow", "loss.smooth_alpha": 150.0}
HALF = {"loss.occlusion_range_threshold": 0.5}
# the training pairs' background moves as far as their objects (up to 16 px, the real pair's 10-15 px), not 0.4x
BACKGROUND = {"data.embedded_train_background_motion": 1.0}
# label -> (method, overrides of tiny()); the recipe (tiny() itself) is SMOOTH with the range threshold at 0.8
LEVERS = {
    "M-JEPA, previous recipe (fb check from epoch 5)": ("m-jepa", PREVIOUS),
    "M-JEPA, range map from step 0 (threshold 0.2)": ("m-jepa", RANGE),
    "M-JEPA, + convex upsampling": ("m-jepa", CONVEX),
    "M-JEPA, + smoothness at the flow level, edge weight 150": ("m-jepa", SMOOTH),
    "M-JEPA, the same, 4x the steps": ("m-jepa", {**SMOOTH, "train.epochs": 40}),
    "M-JEPA, range threshold 0.5": ("m-jepa", HALF),
    "M-JEPA, range threshold 0.5, 2x the steps": ("m-jepa", {**HALF, "train.epochs": 20}),
    "M-JEPA, recipe (range threshold 0.8)": ("m-jepa", {}),
    "M-JEPA, recipe, 2x the steps": ("m-jepa", {"train.epochs": 20}),
    "M-JEPA, recipe, 4x the steps": ("m-jepa", {"train.epochs": 40}),
    "MC-JEPA, range threshold 0.5": ("mc-jepa", HALF),
    "MC-JEPA, range threshold 0.5, 2x the steps": ("mc-jepa", {**HALF, "train.epochs": 20}),
    "MC-JEPA, recipe (range threshold 0.8)": ("mc-jepa", {}),
    "MC-JEPA, recipe, 2x the steps": ("mc-jepa", {"train.epochs": 20}),
    "MC-JEPA, recipe, 4x the steps": ("mc-jepa", {"train.epochs": 40}),
    "MC-JEPA, recipe, 8x the steps": ("mc-jepa", {"train.epochs": 80}),
    "M-JEPA, recipe, 16x the steps": ("m-jepa", {"train.epochs": 160}),
    **{f"{name}, background moving like the objects{length}": (method, {**BACKGROUND, **epochs})
       for name, method in (("M-JEPA", "m-jepa"), ("MC-JEPA", "mc-jepa"))
       for length, epochs in (("", {}), (", 2x the steps", {"train.epochs": 20}),
                              (", 4x the steps", {"train.epochs": 40}))},
}


def step_timer(method: str, overrides: dict):
    """A function that times `steps` training steps of this config (forward, losses, backward, AdamW) on random
    frames, 1 thread, and returns the seconds per step."""
    cfg = run_config("tiny", method, overrides)
    model = MCJEPA(cfg.model)
    objective, optimizer = Objective(model, cfg), torch.optim.AdamW(model.parameters(), 1e-4)
    gen = torch.Generator().manual_seed(0)
    frames = {k: torch.rand(cfg.train.batch_size, 3, *cfg.data.crop, generator=gen) for k in ("frame1", "frame2")}
    views = (tuple(torch.rand(cfg.train.image_batch_size, 3, *cfg.data.image_size, generator=gen) for _ in range(2))
             if method == "mc-jepa" else None)

    def step():
        loss, _ = objective(frames, views, True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def timed(steps: int = 2) -> float:
        began = time.perf_counter()
        for _ in range(steps):
            step()
        return (time.perf_counter() - began) / steps

    step()  # warm-up
    return timed


def seconds_per_step(levers: dict[str, tuple[str, dict]], rounds: int = 5) -> dict[str, float]:
    """{label: median seconds per step}: the levers timed in turn, `rounds` times over, so that a slower or
    faster moment of a shared machine does not land on one lever (timed one after the other, the first lever
    measured up to 20 % slow)."""
    timers = {label: step_timer(*spec) for label, spec in levers.items()}
    samples: dict[str, list[float]] = {label: [] for label in levers}
    for _ in range(rounds):
        for label, timer in timers.items():
            samples[label].append(timer())
    return {label: statistics.median(values) for label, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", default="runs", help="the run cache")
    parser.add_argument("--no-train", action="store_true", help="draw only the levers already trained")
    parser.add_argument("--out", type=Path, default=Path("figures/flow_levers"))
    args = parser.parse_args(argv)
    configs = {label: run_config("tiny", method, overrides) for label, (method, overrides) in LEVERS.items()}
    if not args.no_train:
        ensure_runs(list(configs.values()), args.runs_dir, workers=2, eval_every=50)
    torch.set_num_threads(1)
    pairs = held_out_pairs(configs[next(iter(configs))])
    references = {name: evaluate_flow_dataset(classical_flow_fn("dis") if name == "DIS medium (OpenCV)" else
                                              (lambda a, b: a.new_zeros(a.shape[0], 2, *a.shape[-2:])), pairs,
                                              stride=1, progress=False)["epe"]
                  for name in ("DIS medium (OpenCV)", "zero flow")}
    test_sets = {name: flow_eval_dataset(name, None, configs[next(iter(configs))]) for name in ("embedded",
                                                                                                 "motorcycle")}
    trained = {label: cfg for label, cfg in configs.items() if is_finished(run_dir(cfg, args.runs_dir), cfg)}
    for label in configs.keys() - trained.keys():
        print(f"{label}: not trained ({run_dir(configs[label], args.runs_dir).name}), left out")
    timing = seconds_per_step({label: LEVERS[label] for label in trained})
    table, curves = {}, {}
    for label, cfg in trained.items():
        folder = run_dir(cfg, args.runs_dir)
        rows = read_metrics(folder / "metrics.jsonl")
        model = load_model(folder)[0]
        last = [r for r in rows if "val/epe" in r][-1]
        table[label] = {"run": folder.name, "steps": cfg.total_steps, "s/step": timing[label],
                        "val EPE": last["val/epe"],
                        **{f"{name} EPE": evaluate_flow_dataset(flow_fn(model), data, stride=model.stride,
                                                                progress=False)["epe"]
                           for name, data in test_sets.items()},
                        "masked %": 100 * last.get("val/occ_fraction", float("nan")),
                        "occluded %": 100 * last.get("val/occ_true_fraction", float("nan"))}
        curves[label] = rows
    args.out.mkdir(parents=True, exist_ok=True)
    fig = plot_validation_curves(curves, references, seconds_per_step=timing,
                                 title="tiny flow levers: held-out EPE (16 validation pairs)", log_x=True)
    fig.savefig(args.out / "levers.png", dpi=120)
    columns = ["steps", "s/step", "val EPE", "embedded EPE", "motorcycle EPE", "masked %", "occluded %"]
    lines = ["| lever | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {name} (validation pairs) | - | - | {value:.2f} | - | - | - | - |"
              for name, value in references.items()]
    for label, row in table.items():
        cells = [f"{row[c]:.3f}" if c == "s/step" else f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c])
                 for c in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    (args.out / "levers.md").write_text(text + "\n")
    save_json({"references": references, "levers": table}, args.out / "levers.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
