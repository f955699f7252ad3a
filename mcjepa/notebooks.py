"""Run or prepare the kit's notebooks with papermill: `python -m mcjepa.notebooks run|prepare|list`.

    run --profile tiny        the whole tiny reproduction (every notebook, sweeps included), in order;
                              executed notebooks go to outputs/notebooks/, figures to figures/
    prepare --profile smoke --out DIR
                              parameter-injected copies (not executed) for nbval: a few training steps each,
                              figures and runs written under DIR so the committed figures stay untouched
    list                      the notebooks and what each reproduces

A sweep point is one papermill run of an ablation notebook with one parameter value; `SWEEPS` lists the
points of the tiny reproduction. Training runs are cached by config (mcjepa.experiments), so re-running
reuses every finished point.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .config import Config
from .experiments import ensure_runs, project_root, run_config

NOTEBOOKS = (
    ("00_data_tour", "the data: embedded sequences/stills with exact GT, and the offline real sources"),
    ("01_train_m_jepa", "M-JEPA training (flow only): loss curves, predicted vs true flow, EPE"),
    ("02_train_vicreg", "VICReg training (content only): loss curves, feature statistics"),
    ("03_train_mc_jepa", "MC-JEPA training (flow + content, shared encoder)"),
    ("04_ablation_cycle", "Fig. 5-2: one point of the cycle-consistency coefficient sweep (parameter coef)"),
    ("05_ablation_flow_start", "Fig. 5-1: one point of the flow start epoch sweep (parameter flow_start_epoch)"),
    ("06_ablation_balance", "Fig. 5-3: one point of the multi-task balance sweep (parameter balance)"),
    ("07_ablation_vc", "VC-regularisation ablation: training stability with/without it (parameter vc)"),
    ("08_ablation_plots", "Fig. 5: collects the sweep points into the three ablation curves + VC table"),
    ("09_eval_flow", "Flow table (Table 1 in kind): EPE/Fl on embedded + Motorcycle (KITTI/Sintel at paper scale)"),
    ("10_eval_segmentation", "Segmentation table: frozen linear probe mIoU"),
    ("11_eval_davis", "DAVIS 2017 label propagation J&F (embedded sequences at tiny scale)"),
    ("12_fig_flow", "Fig. 3 in kind: image, MC-JEPA flow, M-JEPA flow, ground truth"),
    ("13_fig_video_segmentation", "Fig. 4 in kind: propagated masks at frames 1, 10, 25, 50"),
    ("14_inspectors", "Interactive flow and segmentation inspectors (ipywidgets)"),
)

# Parameter values of the sweep points run by the tiny reproduction. The base value of each sweep is in its
# list, so the four sweeps share one base run (the tiny MC-JEPA recipe at SWEEP_SCHEDULE's length).
SWEEPS = {
    "04_ablation_cycle": ("coef", (0.0, 0.1, 1.0)),
    "05_ablation_flow_start": ("flow_start_epoch", (0.0, 1.0, 3.0)),
    "06_ablation_balance": ("balance", (0.01, 0.1, 1.0)),
    "07_ablation_vc": ("vc", (0.0, 0.1)),
}

SMOKE = {"epochs": 1, "steps_per_epoch": 4}  # a few steps: the notebooks' code paths, not their results
# In the tiny reproduction the sweep points (04-07, collected by 08) train shorter runs than the main ones (01-03)
# to keep `make demo` near 30 minutes on 2 cores; their base point is a run of the same length (the sweeps share
# one recipe hash), not notebook 03's run. Measured: at 200 and at 300 steps no point's flow has left the
# zero-flow EPE yet (MC-JEPA's flow starts learning later than M-JEPA's), so the demo's Fig. 5 flow curves are
# flat; a point run by hand (papermill -p coef 0.2) trains the preset's full length.
SWEEP_SCHEDULE = {"epochs": 10, "steps_per_epoch": 20}
SWEEP_NOTEBOOKS = (*SWEEPS, "08_ablation_plots")


def notebook_path(name: str) -> Path:
    path = project_root() / "notebooks" / f"{name}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"notebook {path} is missing")
    return path


def notebook_parameters(path: Path) -> dict:
    """Default values of the cell tagged `parameters` (papermill's own inspection)."""
    import papermill

    return {name: info for name, info in papermill.inspect_notebook(str(path)).items()}


def execute_checked(path: str, target: str, parameters: dict | None = None, **options):
    """`papermill.execute_notebook`, but an unknown parameter is an error (papermill only warns and runs the
    notebook's default). Parameters every profile injects (`SMOKE`, runs_dir, figures_dir) are dropped
    where the notebook does not declare them. Raises ValueError naming the parameter and the valid ones."""
    import papermill

    declared = notebook_parameters(Path(path))
    shared = set(SMOKE) | {"runs_dir", "figures_dir"}
    parameters = {k: v for k, v in (parameters or {}).items() if k in declared or k not in shared}
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(f"{path}: unknown notebook parameter(s) {unknown}; valid: {sorted(declared)}")
    return papermill.execute_notebook(path, target, parameters=parameters, **options)


def _points(name: str, profile: str) -> list[dict]:
    if name not in SWEEPS:
        return [{}]
    key, values = SWEEPS[name]
    return [{key: value} for value in (values if profile == "tiny" else values[:1])]


def _profile_parameters(profile: str, out: Path | None, name: str = "") -> dict:
    if profile == "tiny":
        return dict(SWEEP_SCHEDULE) if name in SWEEP_NOTEBOOKS else {}
    if profile == "smoke":
        return {**SMOKE, "runs_dir": str(out / "runs"), "figures_dir": str(out / "figures")}
    raise ValueError(f"unknown profile {profile!r}; use tiny or smoke")


EVAL_EVERY = 50  # the notebooks' default `eval_every`: runs trained ahead log the same validation curve


def profile_runs(profile: str = "tiny") -> list[Config]:
    """The training runs that the notebooks of a profile ask for (at the parameters `run_all` gives them): M-JEPA,
    VICReg, MC-JEPA (notebooks 01-03, reused by 09-14) and one MC-JEPA run per sweep point (04-07, at
    `SWEEP_SCHEDULE`)."""
    from .ablations import point_config

    if profile != "tiny":
        raise ValueError(f"runs are trained ahead for the tiny profile only, got {profile!r}")
    configs = [run_config("tiny", method, {}, seed=0) for method in ("m-jepa", "vicreg", "mc-jepa")]
    for name, (_, values) in SWEEPS.items():
        ablation = name.split("_ablation_", 1)[1]  # "04_ablation_cycle" -> "cycle" (mcjepa.ablations.ABLATIONS)
        configs += [point_config(ablation, value, "tiny", **SWEEP_SCHEDULE) for value in values]
    return configs


def run_all(profile: str = "tiny", only: list[str] | None = None, output_dir: Path | None = None,
            workers: int = 1) -> list[Path]:
    """Execute every notebook (every sweep point) with papermill; returns the executed notebooks.

    With `workers` > 1 (tiny profile, all notebooks) the training runs of `profile_runs` are first trained in
    parallel processes (`ensure_runs`, progress printed), so that the notebooks then find them cached."""
    output_dir = output_dir or project_root() / "outputs" / "notebooks"
    output_dir.mkdir(parents=True, exist_ok=True)
    executed, began = [], time.time()
    if profile == "tiny" and not only and workers > 1:
        ensure_runs(profile_runs(profile), workers=workers, eval_every=EVAL_EVERY)
    for name, what in NOTEBOOKS:
        if only and name not in only:
            continue
        for point in _points(name, profile):
            suffix = "".join(f"_{k}={v}" for k, v in point.items())
            target = output_dir / f"{name}{suffix}.ipynb"
            print(f"[{time.time() - began:7.1f}s] {name}{suffix}: {what}", flush=True)
            execute_checked(str(notebook_path(name)), str(target),
                            parameters={**_profile_parameters(profile, output_dir, name), **point},
                            cwd=str(notebook_path(name).parent), progress_bar=False)
            executed.append(target)
    print(f"done in {time.time() - began:.0f} s; executed notebooks in {output_dir}")
    return executed


def prepare(profile: str, out: Path) -> list[Path]:
    """Parameter-injected, unexecuted copies of every notebook (and the first point of each sweep)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, _ in NOTEBOOKS:
        for point in _points(name, profile):
            target = out / f"{name}.ipynb"
            execute_checked(str(notebook_path(name)), str(target),
                            parameters={**_profile_parameters(profile, out, name), **point}, prepare_only=True)
            written.append(target)
    return written


def list_figures(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.png"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcjepa.notebooks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--profile", default="tiny", choices=["tiny", "smoke"])
    run.add_argument("--only", nargs="*", help="notebook names (without .ipynb) to run")
    run.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                     help="training runs trained in parallel before the notebooks (default: one per core)")
    prep = sub.add_parser("prepare")
    prep.add_argument("--profile", default="smoke", choices=["tiny", "smoke"])
    prep.add_argument("--out", required=True, type=Path)
    sub.add_parser("list")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, what in NOTEBOOKS:
            print(f"{name:28s} {what}")
        return 0
    if args.command == "prepare":
        print(json.dumps([str(p) for p in prepare(args.profile, args.out)], indent=1))
        return 0
    began = time.time()
    run_all(args.profile, args.only, workers=args.workers)
    figures = list_figures(project_root() / "figures")
    print(f"\nThe tiny reproduction took {time.time() - began:.0f} s. Figures ({len(figures)}) in "
          f"{project_root() / 'figures'}:")
    for path in figures:
        print(f"  {path.relative_to(project_root())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
