"""Reproduce the paper's tables and figures by running the kit's notebooks: `python -m mcjepa.reproduce ...`.

    run --profile tiny        `make demo`: the three main runs (seed 0) trained in parallel, then every notebook
                              but the per-point sweeps 04-07 (Fig. 5 and the claims table of 08 are drawn from the
                              stored points); executed notebooks in outputs/notebooks/, figures in figures/
    run --profile full        `make reproduce`: every method and every sweep point (`ablations.ABLATIONS`) with seeds
                              0, 1, 2, trained in parallel, evaluated, then every notebook; cached and resumable
                              (an interrupted profile only does what is left). --trained-only evaluates the
                              sweep points that are trained and trains none
    run ... --launcher slurm  the runs as submitit jobs on Slurm (one per run, one task per GPU; options or
                              --cluster-config YAML: mcjepa.cluster.ClusterOptions), waited for, then evaluated
                              and the notebooks run here as with the default --launcher local
    prepare --profile smoke --out DIR
                              parameter-injected copies (not executed) for nbval: a few training steps each,
                              figures and runs written under DIR so the committed figures stay untouched
    list                      the notebooks and what each reproduces

A sweep point is one papermill run of an ablation notebook with one parameter value and one seed. Training
runs are cached by config (mcjepa.experiments), evaluations by config hash (point and result files), so
re-running only does new work.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import sys
import time
from concurrent import futures
from pathlib import Path
from typing import Iterator

import torch

from .ablations import ABLATIONS, INSTABILITY, point_config, sweep_values, training_order
from .claims import METHODS, REFERENCES, method_result, reference_result, reference_seeds, stale_evaluations
from .cluster import LAUNCHERS, ClusterOptions, ensure_runs_on_cluster, load_options
from .config import Config
from .experiments import Setting, ensure_runs, is_finished, run_config, run_dir, stopped
from .train.trainer import TrainingDiverged
from .utils import project_root, resolve_dir


def _sweep_what(name: str) -> str:
    spec = ABLATIONS[name]
    what = f"one point of the {spec.label} sweep (parameters {spec.parameter}, seed)"
    return f"Fig. 5-{spec.fig5_panel}: {what}" if spec.fig5_panel else what[0].upper() + what[1:]


# The notebooks in order; the ablation notebooks (one point of a sweep each) come from the table
# `mcjepa.ablations.ABLATIONS`.
NOTEBOOKS = tuple(sorted((
    ("00_data_tour", "the data: embedded sequences/stills with exact GT, and the offline real sources"),
    ("01_train_m_jepa", "M-JEPA training (flow only): loss curves, predicted vs true flow, EPE"),
    ("02_train_vicreg", "VICReg training (content only): loss curves, feature statistics"),
    ("03_train_mc_jepa", "MC-JEPA training (flow + content, shared encoder)"),
    *((spec.notebook, _sweep_what(name)) for name, spec in ABLATIONS.items()),
    ("08_ablation_plots", "Fig. 5 (mean +/- std over seeds), the VC table and the claims table with verdicts"),
    ("09_eval_flow", "Flow table (Table 1 in kind): EPE/Fl on embedded + Motorcycle (KITTI/Sintel at paper scale)"),
    ("10_eval_segmentation", "Segmentation table: frozen linear probe mIoU"),
    ("11_eval_davis", "DAVIS 2017 label propagation J&F (embedded sequences at tiny scale)"),
    ("12_fig_flow", "Fig. 3 in kind: image, MC-JEPA flow, M-JEPA flow, ground truth"),
    ("13_fig_video_segmentation", "Fig. 4 in kind: propagated masks at frames 1, 10, 25, 50"),
    ("14_inspectors", "Interactive flow and segmentation inspectors (ipywidgets)"),
    ("15_your_video", "Your own video: flow before/after fine-tuning on it, held-out photometric/census error"),
)))
# Not part of the paper's reproduction: run by hand with papermill (parameters video, run, steps), skipped by
# the tiny and full profiles, executed by the smoke profile (nbval) with `SMOKE_EXTRA`.
USER_NOTEBOOKS = ("15_your_video",)
SWEEP_NOTEBOOKS = {spec.notebook: (name, spec.parameter) for name, spec in ABLATIONS.items()}
FULL_SEEDS = (0, 1, 2)
# The instability setting of claim (iii) is a count of guard stops, read by Fisher's exact test: with 3 runs per
# group its smallest one-sided p is 0.05 (3/3 against 0/3), with 5 it is 0.004 (5/5 against 0/5).
INSTABILITY_SEEDS = (0, 1, 2, 3, 4)
SMOKE = {"epochs": 1, "steps_per_epoch": 4}  # a few steps: the notebooks' code paths, not their results
SMOKE_EXTRA = {"15_your_video": {"steps": 4, "max_frames": 48}}  # a short fine-tune on the clip's first frames
EVAL_EVERY = 50  # the notebooks' default `eval_every`: runs trained ahead log the same validation curve


def notebook_path(name: str) -> Path:
    path = project_root() / "notebooks" / f"{name}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"notebook {path} is missing")
    return path


def notebook_parameters(path: Path) -> dict:
    """Default values of the cell tagged `parameters` (papermill's own inspection)."""
    import papermill  # deferred: papermill and its kernel machinery are only needed to execute notebooks

    return {name: info for name, info in papermill.inspect_notebook(str(path)).items()}


def kernel_config():
    """The traitlets config of the kernels the kit starts: CurveZMQ encryption between papermill and the kernel
    where both sides support it (`KernelManager.transport_encryption = "auto"`).

    ipykernel >= 7.4 warns "Kernel is running over TCP without encryption" at every start unless the manager
    gave it Curve keys, and jupyter_client's default policy ("disabled") gives none; "auto" gives them when the
    kernelspec declares `supported_encryption: curve` (ipykernel's does) and pyzmq has Curve. An older
    jupyter_client without the setting gets an empty config (its kernels do not warn)."""
    import zmq  # deferred, like papermill: the kernel machinery
    from jupyter_client import KernelManager
    from traitlets.config import Config

    if "transport_encryption" not in KernelManager.class_trait_names() or not zmq.has("curve"):
        return Config()
    return Config({"KernelManager": {"transport_encryption": "auto"}})


def execute_checked(path: str, target: str, parameters: dict | None = None, **options):
    """`papermill.execute_notebook`, but an unknown parameter is an error (papermill only warns and runs the
    notebook's default), and the kernel connection is encrypted where possible (`kernel_config`). Parameters
    every profile injects (`SMOKE`, runs_dir, figures_dir) are dropped where the notebook does not declare
    them. Raises ValueError naming the parameter and the valid ones."""
    import papermill  # deferred: see notebook_parameters

    declared = notebook_parameters(Path(path))
    shared = set(SMOKE) | {"runs_dir", "figures_dir", "scale", "data_roots"}
    parameters = {k: v for k, v in (parameters or {}).items() if k in declared or k not in shared}
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(f"{path}: unknown notebook parameter(s) {unknown}; valid: {sorted(declared)}")
    options.setdefault("config", kernel_config())
    return papermill.execute_notebook(path, target, parameters=parameters, **options)


def check_profile(profile: str) -> str:
    if profile not in ("tiny", "full", "smoke"):
        raise ValueError(f"unknown profile {profile!r}; use tiny, full or smoke")
    return profile


def sweep_points(profile: str, scale: str = "tiny") -> list[tuple[str, float, int, bool]]:
    """(ablation, value, seed, instability) of every sweep point a profile runs, in the full profile's training
    order (`mcjepa.ablations.training_order`: the claims' sweeps first), seeds innermost: `FULL_SEEDS`, and
    `INSTABILITY_SEEDS` in the instability setting."""
    if check_profile(profile) != "full":
        return []
    return [(name, value, seed, instability) for name, instability in training_order()
            for value in sweep_values(name, scale)
            for seed in (INSTABILITY_SEEDS if instability else FULL_SEEDS)]


def _point_config(ablation: str, value: float, seed: int, instability: bool, scale: str = "tiny",
                  data_roots: dict | None = None) -> Config:
    return point_config(ablation, value, Setting(scale, seed=seed, data_roots=data_roots or {}),
                        overrides=INSTABILITY if instability else None)


def profile_runs(profile: str = "tiny", scale: str = "tiny", data_roots: dict | None = None) -> list[Config]:
    """The training runs of a profile, claims first: M-JEPA, VICReg and MC-JEPA (notebooks 01-03, reused by
    08-14) and, at tiny scale, the supervised ceiling of the content tables (notebooks 10 and 11) at each seed,
    then one MC-JEPA run per sweep point (`sweep_points`; the base values are the
    MC-JEPA runs themselves)."""
    seeds = {"tiny": (0,), "full": FULL_SEEDS}.get(check_profile(profile))
    if seeds is None:
        raise ValueError(f"runs are trained ahead for the tiny and full profiles, got {profile!r}")
    methods = ("mc-jepa", "m-jepa", "vicreg") + (("supervised",) if scale == "tiny" else ())
    configs = [run_config(scale, method, {}, seed=seed, data_roots=data_roots) for seed in seeds
               for method in methods]
    return configs + [_point_config(*point, scale, data_roots) for point in sweep_points(profile, scale)]


def smoke_parameters(name: str, out: Path) -> dict:
    """The papermill parameters of notebook `name` at smoke settings (`make test`): `SMOKE` and the notebook's
    `SMOKE_EXTRA`, runs and figures under `out`, so that the committed figures stay untouched."""
    return {**SMOKE, "runs_dir": str(out / "runs"), "figures_dir": str(out / "figures"), **SMOKE_EXTRA.get(name, {})}


def _job(name: str, parameters: dict, profile: str, out: Path | None) -> tuple[str, dict]:
    """A smoke job writes its runs and figures under `out` (`smoke_parameters`)."""
    if profile == "smoke":
        parameters = {**smoke_parameters(name, out), **parameters}
    return name, parameters


def notebook_jobs(profile: str, out: Path | None = None, trained_only: bool = False, scale: str = "tiny",
                  data_roots: dict | None = None) -> list[tuple[str, dict]]:
    """(notebook name, papermill parameters) of every notebook execution of a profile, in order. The full
    profile runs each sweep notebook once per (value, seed); `trained_only` drops the points whose run is not
    trained (`profile_runs`' configs are the same, so the check is exact). At paper scale every notebook gets
    `scale` and `data_roots`. The tiny profile (`make demo`, seed 0 only) draws notebook 08 from the full
    profile's stored evaluations, and leaves it out while those were measured with another recipe
    (`claims_out_of_date`): it would redraw the committed claims with n = 1."""
    jobs, common = [], ({"scale": scale, "data_roots": dict(data_roots or {})} if scale != "tiny" else {})
    stale_claims = profile == "tiny" and bool(claims_out_of_date(scale))
    for name, _ in NOTEBOOKS:
        if (name in SWEEP_NOTEBOOKS and profile == "tiny") or (name in USER_NOTEBOOKS and profile != "smoke"):
            continue
        if name == CLAIMS_NOTEBOOK and stale_claims:
            continue
        if name in SWEEP_NOTEBOOKS and profile == "full":
            ablation, parameter = SWEEP_NOTEBOOKS[name]
            for _, value, seed, instability in (p for p in sweep_points(profile, scale) if p[0] == ablation):
                if trained_only and not _trained(_point_config(ablation, value, seed, instability, scale, data_roots)):
                    continue
                extra = {"instability": True} if instability else {}
                jobs.append(_job(name, {**common, parameter: value, "seed": seed, **extra}, profile, out))
        else:
            jobs.append(_job(name, dict(common), profile, out))
    return jobs


CLAIMS_NOTEBOOK = "08_ablation_plots"


def claims_out_of_date(scale: str = "tiny") -> list[str]:
    """The full profile's method runs whose stored evaluation does not match today's recipe (empty: the claims
    table in figures/ is current)."""
    return stale_evaluations(FULL_SEEDS, Setting(scale))


def _trained(cfg: Config) -> bool:
    """Finished, or stopped by a guard (its point records the stop)."""
    folder = run_dir(cfg, resolve_dir(None, "runs"))
    return is_finished(folder, cfg) or stopped(folder) is not None


def _evaluate_method(method: str, seed: int, scale: str, data_roots: dict | None) -> str:
    torch.set_num_threads(1)
    found = method_result(method, Setting(scale, seed=seed, data_roots=data_roots or {}, progress=False), train=False)
    return f"{method} seed {seed}" + ("" if found else ": not trained, left out")


def _evaluate_reference(name: str, seed: int, scale: str, data_roots: dict | None) -> str:
    torch.set_num_threads(1)
    setting = Setting(scale, seed=seed, data_roots=data_roots or {}, progress=False)
    found = reference_result(name, setting, compute=True)
    return f"{name} seed {seed}" + ("" if found else ": not available, left out")


def evaluate_methods(seeds, workers: int, scale: str = "tiny", data_roots: dict | None = None) -> None:
    """The claims' stored evaluations of every trained method run (`mcjepa.claims.method_result`) and of the
    content references at the same seeds (`mcjepa.claims.reference_result`), `workers` at a time in their own
    processes."""
    jobs = [(_evaluate_method, method, seed) for seed in seeds for method in METHODS]
    jobs += [(_evaluate_reference, name, seed) for name in REFERENCES for seed in reference_seeds(name, seeds)]
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(max(1, workers), mp_context=context) as pool:
        submitted = [pool.submit(fn, name, seed, scale, data_roots) for fn, name, seed in jobs]
        for done in futures.as_completed(submitted):
            print(f"evaluated {done.result()}", flush=True)


def output_name(name: str, parameters: dict) -> str:
    """File name of an executed notebook: its name and the point's parameters (not the paths, scale and roots
    every job shares: a root path would put a '/' in the name)."""
    shared = ("runs_dir", "figures_dir", "scale", "data_roots", *SMOKE)
    return name + "".join(f"_{k}={v}" for k, v in parameters.items() if k not in shared) + ".ipynb"


def _execute(name: str, parameters: dict, output_dir: Path) -> Path:
    target = output_dir / output_name(name, parameters)
    execute_checked(str(notebook_path(name)), str(target), parameters=parameters,
                    cwd=str(notebook_path(name).parent), progress_bar=False)
    return target


def train_profile(profile: str, workers: int, scale: str = "tiny", data_roots: dict | None = None,
                  launcher: str = "local", cluster: ClusterOptions | None = None) -> None:
    """Train every missing run of a profile: `workers` local processes (`launcher="local"`) or one submitit job
    per run (`LAUNCHERS`: "slurm", "submitit-local"; resources from `cluster`). A guard's stop is a result
    (the notebooks record it); any other failure is a RuntimeError naming the runs."""
    configs = profile_runs(profile, scale, data_roots)
    if launcher == "local":
        results = ensure_runs(configs, workers=workers, eval_every=EVAL_EVERY)
    elif launcher in LAUNCHERS:
        results = ensure_runs_on_cluster(configs, cluster or ClusterOptions(), LAUNCHERS[launcher],
                                         eval_every=EVAL_EVERY)
    else:
        raise ValueError(f"unknown launcher {launcher!r}; use local or one of {sorted(LAUNCHERS)}")
    failed = {name: error for name, error in results.items()
              if isinstance(error, Exception) and not isinstance(error, TrainingDiverged)}
    if failed:
        raise RuntimeError("training failed: " + "; ".join(f"{n}: {e!r}" for n, e in sorted(failed.items())))


def run_all(profile: str = "tiny", only: list[str] | None = None, output_dir: Path | None = None,
            workers: int = 1, trained_only: bool = False, scale: str = "tiny",
            data_roots: dict | None = None, launcher: str = "local",
            cluster: ClusterOptions | None = None) -> list[Path]:
    """Execute every notebook job of `profile` with papermill, `workers` at a time; returns the executed notebooks.

    Tiny and full profiles first train `profile_runs` (`train_profile`: in parallel local processes, or as
    submitit jobs with `launcher` "slurm" / "submitit-local"; progress printed; skipped with `trained_only` or
    `only`), and the full profile evaluates the method runs of the claims (when
    notebook 08 is among those run), so that the notebooks find them cached. The notebooks run `workers` at a
    time, each kernel on cpu_count // workers threads; the sweep notebooks (04-07) before 08, which collects
    them."""
    check_profile(profile)
    output_dir = output_dir or project_root() / "outputs" / "notebooks"
    output_dir.mkdir(parents=True, exist_ok=True)
    began = time.time()
    if profile in ("tiny", "full") and not only and not trained_only:
        train_profile(profile, workers, scale, data_roots, launcher, cluster)
    if profile == "full" and (not only or "08_ablation_plots" in only):  # the claims read these evaluations
        evaluate_methods(FULL_SEEDS, workers, scale, data_roots)
    jobs = [(name, p) for name, p in notebook_jobs(profile, output_dir, trained_only, scale, data_roots)
            if not only or name in only]
    if profile == "tiny" and (not only or CLAIMS_NOTEBOOK in only) and (stale := claims_out_of_date(scale)):
        print(f"skipping {CLAIMS_NOTEBOOK}: the stored claims and Fig. 5 were measured with another recipe or "
              f"evaluation protocol than today's {scale} preset ({len(stale)} method runs out of date: "
              f"{', '.join(stale[:3])}, ...); `make reproduce` re-measures them", flush=True)
    executed = execute_jobs(jobs, output_dir, workers)
    print(f"done in {time.time() - began:.0f} s; executed notebooks in {output_dir}")
    return executed


@contextlib.contextmanager
def environment(**variables: str) -> Iterator[None]:
    """`os.environ` with `variables` set inside the block (for the processes started there), as it was after."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute_jobs(jobs: list[tuple[str, dict]], output_dir: Path, workers: int = 1) -> list[Path]:
    """Execute (notebook, parameters) jobs with papermill into `output_dir`, `workers` at a time, the sweep
    notebooks first (08 collects their points); each kernel runs torch on cpu_count // workers threads
    (OMP_NUM_THREADS while they start, restored after). Returns the executed notebooks in the order they ended."""
    began, executed = time.time(), []
    stages = [[j for j in jobs if j[0] in SWEEP_NOTEBOOKS], [j for j in jobs if j[0] not in SWEEP_NOTEBOOKS]]
    threads = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    with environment(OMP_NUM_THREADS=threads), futures.ThreadPoolExecutor(max(1, workers)) as pool:
        for stage in stages:  # each notebook runs in its own kernel process
            pending = {pool.submit(_execute, name, parameters, output_dir): name for name, parameters in stage}
            for done in futures.as_completed(pending):
                executed.append(done.result())
                print(f"[{time.time() - began:7.1f}s] {executed[-1].stem} done", flush=True)
    return executed


def prepare(profile: str, out: Path) -> list[Path]:
    """Parameter-injected, unexecuted copies of every notebook (sweep notebooks at their default point)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, _ in NOTEBOOKS:
        _, parameters = _job(name, {}, profile, out)
        target = out / f"{name}.ipynb"
        execute_checked(str(notebook_path(name)), str(target), parameters=parameters, prepare_only=True)
        written.append(target)
    return written


def list_figures(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.png"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcjepa.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--profile", default="tiny", choices=["tiny", "full", "smoke"])
    run.add_argument("--only", nargs="*", help="notebook names (without .ipynb) to run")
    run.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                     help="training runs / notebooks at a time (default: one per core)")
    run.add_argument("--trained-only", action="store_true",
                     help="train no sweep point: evaluate and draw the points whose runs are trained (notebooks "
                          "01-03 still train a missing seed-0 run)")
    run.add_argument("--scale", default="tiny", choices=["tiny", "paper"],
                     help="paper: the paper preset on the real datasets (GPUs), every notebook at scale='paper'")
    run.add_argument("--data-roots", type=Path, help="paper scale: a JSON file {dataset name: root folder}")
    run.add_argument("--launcher", default="local", choices=["local", *LAUNCHERS],
                     help="local: --workers processes here (default); slurm: one submitit job per run; "
                          "submitit-local: the same jobs on this machine (submitit's local executor)")
    jobs = run.add_argument_group("submitit jobs (--launcher slurm / submitit-local; README, 'Scaling out')")
    jobs.add_argument("--cluster-config", type=Path, help="a YAML mapping of the options below (flags override)")
    jobs.add_argument("--partition")
    jobs.add_argument("--account")
    jobs.add_argument("--qos")
    jobs.add_argument("--nodes", type=int, help="nodes per run (default 1)")
    jobs.add_argument("--gpus-per-node", type=int, help="GPUs per node, one task each (default 1)")
    jobs.add_argument("--tasks-per-node", type=int, help="default: one per GPU (1 without GPUs)")
    jobs.add_argument("--cpus-per-task", type=int, help="default 8")
    jobs.add_argument("--mem-gb", type=int)
    jobs.add_argument("--timeout-min", type=int, help="wall time of one job in minutes (default 1440); a "
                                                      "timed-out or preempted job is requeued and resumes")
    jobs.add_argument("--log-folder", help="submitit's pickles and logs (default: runs/submitit)")
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
    if args.data_roots and args.scale != "paper":
        parser.error("--data-roots is for --scale paper (the tiny scale trains and evaluates on the embedded data)")
    roots = json.loads(args.data_roots.read_text()) if args.data_roots else None
    names = ("partition", "account", "qos", "nodes", "gpus_per_node", "tasks_per_node", "cpus_per_task", "mem_gb",
             "timeout_min", "log_folder")
    flags = {name: getattr(args, name) for name in names}
    cluster = None
    if args.launcher == "local":
        if args.cluster_config or any(v is not None for v in flags.values()):
            parser.error("--cluster-config and the job options are for --launcher slurm / submitit-local")
    else:
        cluster = load_options(args.cluster_config, flags)
    run_all(args.profile, args.only, workers=args.workers, trained_only=args.trained_only, scale=args.scale,
            data_roots=roots, launcher=args.launcher, cluster=cluster)
    figures = list_figures(project_root() / "figures")
    print(f"\nThe {args.profile} reproduction took {time.time() - began:.0f} s. Figures ({len(figures)}) in "
          f"{project_root() / 'figures'}:")
    for path in figures:
        print(f"  {path.relative_to(project_root())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
