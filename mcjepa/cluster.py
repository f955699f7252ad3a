"""A profile's runs as submitit jobs: on Slurm (`reproduce run --launcher slurm`) or, to test the same path
without a cluster, with submitit's local executor (`--launcher submitit-local`).

One job per run, `nodes` x `tasks_per_node` tasks (one per GPU, as VICReg's and DINO's run_with_submitit.py).
Every task exports the env:// rendezvous from submitit's JobEnvironment (`TorchDistributedEnvironment`:
MASTER_ADDR = the job's first host, MASTER_PORT from the job id, RANK, WORLD_SIZE, LOCAL_RANK), trains its share
of the global batch (mcjepa.train.trainer) and rank 0 records the run (done.json / diverged.json) exactly as
the local launcher does. A job the scheduler preempts or times out is requeued by submitit through
`TrainJob.checkpoint` and resumes from the run's last checkpoint.pt (written every `train.checkpoint_every`
steps: the work since then is done again, bit-identically in one process).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

try:  # the optional extra `cluster` (pip install -e ".[cluster]"); the test extra installs it too
    import submitit
    import submitit.helpers
except ImportError:  # pragma: no cover - exercised where submitit is missing
    submitit = None

from .config import Config
from .experiments import recorded_results, run_dir, run_status, train_recorded
from .train.distributed import leave_process_group
from .train.trainer import TrainingDiverged
from .utils import ensure_dir

LAUNCHERS = {"slurm": "slurm", "submitit-local": "local"}  # --launcher -> submitit's executor name


@dataclass
class ClusterOptions:
    """Resources of each run's job. `tasks_per_node` None: one task per GPU (one task without GPUs)."""

    partition: str | None = None  # Slurm partition (None: the cluster's default)
    account: str | None = None  # Slurm account to charge
    qos: str | None = None  # Slurm quality of service
    nodes: int = 1  # nodes per run
    gpus_per_node: int = 1
    tasks_per_node: int | None = None
    cpus_per_task: int = 8
    mem_gb: int | None = None  # None: the partition's default
    timeout_min: int = 24 * 60  # wall-time limit of one job (a timed-out job is requeued and resumes)
    max_requeues: int = 3  # preemptions/time-outs after which a run is given up
    log_folder: str | None = None  # submitit's pickles and logs; None: <runs dir>/submitit

    @property
    def tasks(self) -> int:
        return self.tasks_per_node if self.tasks_per_node is not None else max(1, self.gpus_per_node)

    def check(self, where: str = "cluster options") -> "ClusterOptions":
        """Self, or ValueError naming `where`, the option and its valid range."""
        rules = {"nodes": 1, "gpus_per_node": 0, "cpus_per_task": 1, "timeout_min": 1, "max_requeues": 0}
        for name, low in rules.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{where}: {name} must be a whole number >= {low}, got {value!r}")
        if self.tasks_per_node is not None and (not isinstance(self.tasks_per_node, int) or self.tasks_per_node < 1):
            raise ValueError(f"{where}: tasks_per_node must be a whole number >= 1, got {self.tasks_per_node!r}")
        if self.mem_gb is not None and (not isinstance(self.mem_gb, int) or self.mem_gb < 1):
            raise ValueError(f"{where}: mem_gb must be a whole number >= 1 (or absent), got {self.mem_gb!r}")
        return self


def load_options(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> ClusterOptions:
    """Options from a YAML mapping (keys: the fields of `ClusterOptions`), then `overrides` (None values
    ignored). An unknown key is a ValueError naming the file and the valid keys."""
    values: dict[str, Any] = {}
    where = "cluster options"
    if path is not None:
        where = str(path)
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of cluster options, got {type(loaded).__name__}")
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    valid = [f.name for f in dataclasses.fields(ClusterOptions)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {unknown}; valid: {valid}")
    return ClusterOptions(**values).check(where)


@dataclass
class TrainJob:
    """What one submitit task runs: join the run's process group, train (or resume) it, record it."""

    cfg: Config
    runs_dir: str
    eval_every: int | None = None
    port: int | None = None  # MASTER_PORT; None: submitit's choice from the job id (on Slurm)

    def __call__(self) -> dict:
        """{"finished": run folder} or {"stopped": step, "message": ...} for a run a guard stopped."""
        environment = submitit.JobEnvironment()
        if self.port is not None:
            os.environ["MASTER_PORT"] = str(self.port)
        if environment.num_tasks > 1:  # GPUs by LOCAL_RANK (setup_device): CUDA_VISIBLE_DEVICES left as it is
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        folder = run_dir(self.cfg, self.runs_dir)
        if environment.global_rank == 0:
            print(f"{environment}: {folder.name}", flush=True)
        try:
            train_recorded(self.cfg, folder, progress=False, eval_every=self.eval_every)
        except TrainingDiverged as err:
            return {"stopped": err.step, "message": err.message}
        finally:
            leave_process_group()
        return {"finished": str(folder)}

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit's preemption/time-out hook: requeue the same job, which resumes from checkpoint.pt."""
        return submitit.helpers.DelayedSubmission(dataclasses.replace(self))


def free_port() -> int:
    """A TCP port free on this machine now (for jobs of the local executor, which run here)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def require_submitit() -> None:
    """ImportError saying how to install submitit when it is missing."""
    if submitit is None:
        raise ImportError("the slurm and submitit-local launchers need submitit: pip install -e \".[cluster]\"")


def make_executor(options: ClusterOptions, cluster: str, folder: str | Path):
    """submitit's AutoExecutor for `cluster` ("slurm" or "local") with the options' resources."""
    require_submitit()
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster, slurm_max_num_timeout=options.max_requeues)
    parameters = {"nodes": options.nodes, "tasks_per_node": options.tasks, "gpus_per_node": options.gpus_per_node,
                  "cpus_per_task": options.cpus_per_task, "timeout_min": options.timeout_min}
    if options.mem_gb is not None:
        parameters["mem_gb"] = options.mem_gb
    slurm = {"slurm_partition": options.partition, "slurm_account": options.account, "slurm_qos": options.qos}
    executor.update_parameters(**parameters, **{k: v for k, v in slurm.items() if v is not None})
    return executor


def submit_runs(configs: list[Config], options: ClusterOptions, cluster: str = "slurm",
                runs_dir: str | Path | None = None, eval_every: int | None = None
                ) -> tuple[dict[str, Path | Exception], dict[str, Config], dict]:
    """Submit one job per run that is neither finished nor stopped by a guard (duplicates once). Returns
    (the recorded outcomes, {run name: config} submitted, {run name: job})."""
    results, todo = recorded_results(configs, runs_dir)
    root = ensure_dir(runs_dir, "runs")  # submitit writes its logs under it
    executor = make_executor(options.check(), cluster, options.log_folder or root / "submitit")
    jobs = {}
    for name, cfg in todo.items():
        executor.update_parameters(name=f"mcjepa-{name}")
        port = free_port() if cluster == "local" else None
        jobs[name] = executor.submit(TrainJob(cfg, str(root), eval_every, port))
    world = options.nodes * options.tasks
    print(f"submitted {len(jobs)} run(s) ({len(results)} cached) to {cluster}: {options.nodes} node(s) x "
          f"{options.tasks} task(s) = {world} process(es) each, logs in {executor.folder}", flush=True)
    for name, job in jobs.items():
        print(f"  job {job.job_id}: {name}", flush=True)
    return results, todo, jobs


def wait_for_jobs(jobs: Mapping[str, Any], configs: Mapping[str, Config], runs_dir: str | Path | None,
                  report_every: float = 60.0) -> dict[str, Path | Exception]:
    """Wait for every job, printing each running run's status line every `report_every` s. Returns {run name:
    folder, TrainingDiverged for a guard's stop, or the exception of a failed job}."""
    results: dict[str, Path | Exception] = {}
    pending, began, last_report = dict(jobs), time.time(), time.time()
    try:
        _wait(pending, results, configs, runs_dir, report_every, began, last_report)
    except BaseException:  # interrupted: jobs of the local executor run here and would be orphans; a cluster's
        for job in pending.values():  # jobs go on (run the command again to wait for them)
            if submitit is not None and isinstance(job, submitit.LocalJob) and not job.done():
                job.cancel()
        raise
    return results


def _wait(pending: dict, results: dict, configs: Mapping[str, Config], runs_dir, report_every: float,
          began: float, last_report: float) -> None:
    while pending:
        for name, job in list(pending.items()):
            if not job.done():
                continue
            del pending[name]
            try:
                outcome = job.results()[0]  # rank 0's (every task returns the same)
                results[name] = (Path(outcome["finished"]) if "finished" in outcome
                                 else TrainingDiverged(outcome["stopped"], outcome["message"]))
            except Exception as err:  # submitit's FailedJobError / UncompletedJobError, with the job's traceback
                results[name] = err
            error = results[name] if isinstance(results[name], Exception) else None
            print(f"[{time.time() - began:6.0f}s] {name} (job {job.job_id}): "
                  + (f"stopped: {str(error).splitlines()[0]}" if error else "finished"), flush=True)
        if pending and time.time() - last_report >= report_every:
            last_report = time.time()
            for name, job in pending.items():
                print(f"[{time.time() - began:6.0f}s] job {job.job_id} {job.state}: "
                      f"{run_status(run_dir(configs[name], runs_dir), configs[name])}", flush=True)
        if pending:
            time.sleep(min(1.0, report_every))


def ensure_runs_on_cluster(configs: list[Config], options: ClusterOptions, cluster: str = "slurm",
                           runs_dir: str | Path | None = None, eval_every: int | None = None,
                           report_every: float = 60.0) -> dict[str, Path | Exception]:
    """`mcjepa.experiments.ensure_runs` with one submitit job per missing run: submit, wait, same results."""
    results, todo, jobs = submit_runs(configs, options, cluster, runs_dir, eval_every)
    results.update(wait_for_jobs(jobs, todo, runs_dir, report_every))
    return results
