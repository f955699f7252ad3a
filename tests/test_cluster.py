"""A profile's runs as submitit jobs (mcjepa.cluster): a 2-run mini profile through submitit's local executor
with 2 tasks per run (DDP over the env:// rendezvous of submitit's JobEnvironment), a preempted job requeued
by submitit that resumes to the weights of an uninterrupted run, the sbatch script of the Slurm path (a fake
`sbatch` on PATH records it), the options' validation and the CLI's dispatch."""

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import torch

submitit = pytest.importorskip("submitit")

from mcjepa import reproduce  # noqa: E402
from mcjepa.cluster import ClusterOptions, TrainJob, ensure_runs_on_cluster, load_options, submit_runs  # noqa: E402
from mcjepa.config import config_hash  # noqa: E402
from mcjepa.experiments import is_finished, run_dir  # noqa: E402
from mcjepa.models.checkpoint import read_checkpoint  # noqa: E402
from mcjepa.train.metrics_log import read_metrics  # noqa: E402
from mcjepa.train.trainer import train  # noqa: E402
from test_trainer import micro_config, parameters  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def job_env(monkeypatch):
    """What the local executor's tasks inherit: this checkout on the path, one thread per task."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_mini_profile_as_local_submitit_jobs_with_two_tasks_each(tmp_path, job_env, capsys):
    a = micro_config("m-jepa", **{"train.steps_per_epoch": 4})
    b = micro_config("m-jepa", **{"train.steps_per_epoch": 4, "loss.cycle": 0.5})
    options = ClusterOptions(gpus_per_node=0, tasks_per_node=2, cpus_per_task=1, timeout_min=10,
                             log_folder=str(tmp_path / "logs"))
    results = ensure_runs_on_cluster([a, b, a], options, "local", runs_dir=tmp_path / "runs", report_every=5)
    assert set(results) == {run_dir(c, tmp_path / "runs").name for c in (a, b)}  # the duplicate once
    for cfg in (a, b):
        folder = run_dir(cfg, tmp_path / "runs")
        assert results[folder.name] == folder and is_finished(folder, cfg)
        assert [r["step"] for r in read_metrics(folder)] == [1, 2, 3, 4]  # rank 0 alone logs
    out = capsys.readouterr().out
    assert "submitted 2 run(s) (0 cached) to local: 1 node(s) x 2 task(s) = 2 process(es) each" in out
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*_0_log.out"))
    assert logs.count("global_rank=0(2)): m-jepa-") == 2  # each job's rank 0 saw a world of 2 tasks
    errors = "".join(p.read_text() for p in (tmp_path / "logs").glob("*_0_log.err"))
    assert errors.count("2 processes on cpu, global batch per step: 2 frame pairs (1 per rank)") == 2
    again = ensure_runs_on_cluster([a, b], options, "local", runs_dir=tmp_path / "runs")
    assert all(isinstance(v, Path) for v in again.values())
    assert "submitted 0 run(s) (2 cached)" in capsys.readouterr().out


def _task_pid(controller: int, timeout: float = 60) -> int:
    """The pid of the task that submitit's local controller started (its only child)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        children = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise TimeoutError(f"submitit's controller {controller} started no task in {timeout} s")


def test_a_preempted_job_is_requeued_and_resumes_to_the_uninterrupted_weights(tmp_path, job_env):
    cfg = micro_config("m-jepa", **{"train.steps_per_epoch": 8, "train.checkpoint_every": 2})
    train(cfg, tmp_path / "straight", progress=False)
    options = ClusterOptions(gpus_per_node=0, cpus_per_task=1, timeout_min=10, log_folder=str(tmp_path / "logs"))
    _, _, jobs = submit_runs([cfg], options, "local", runs_dir=tmp_path / "runs")
    (job,) = jobs.values()
    folder = run_dir(cfg, tmp_path / "runs")
    try:
        task = _task_pid(job._process.pid)
        deadline = time.time() + 300
        while not (folder / "checkpoint.pt").exists() and job._process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        os.kill(task, signal.SIGUSR2)  # what Slurm sends before preempting or timing out a job (--signal)
        outcome = job.result()  # submitit's controller restarts the requeued task; it resumes and finishes
    finally:
        if job._process.poll() is None:
            job.cancel()
            job._process.wait(30)
    assert outcome == {"finished": str(folder)}
    log = job.stdout()
    assert "this job is timed-out" in log or "this job is preempted" in log, log[-2000:]
    assert "Requeued job" in log and f"resuming m-jepa run {folder}" in log, log[-2000:]
    resumed_from = read_metrics(folder)
    assert [r["step"] for r in resumed_from] == list(range(1, 9))
    a, b = parameters(tmp_path / "straight"), parameters(folder)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_checkpoint(folder / "checkpoint.pt")["step"] == 8


def test_slurm_jobs_get_an_sbatch_script_with_the_options(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {"sbatch": f'cp "$1" {tmp_path}/submitted.sh\necho "Submitted batch job 4242"\n',
                       "srun": "exit 0\n"}.items():  # submitit looks for srun to accept a Slurm cluster
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cfg = micro_config("m-jepa")
    options = ClusterOptions(partition="gpu", account="proj42", nodes=2, gpus_per_node=4, cpus_per_task=10,
                             mem_gb=64, timeout_min=90, log_folder=str(tmp_path / "logs"))
    _, todo, jobs = submit_runs([cfg], options, "slurm", runs_dir=tmp_path / "runs")
    name = run_dir(cfg, tmp_path / "runs").name
    assert list(todo) == [name] and jobs[name].job_id == "4242"
    script = (tmp_path / "submitted.sh").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=proj42", "#SBATCH --nodes=2",
                 "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4", "#SBATCH --cpus-per-task=10",
                 "#SBATCH --mem=64GB", "#SBATCH --time=90", "#SBATCH --signal=USR2@90",
                 f"#SBATCH --job-name=mcjepa-{name}"):
        assert line + "\n" in script, f"{line!r} missing from\n{script}"
    assert "srun" in script and "submitit.core._submit" in script
    assert subprocess.run(["bash", "-n", str(tmp_path / "submitted.sh")]).returncode == 0  # valid shell
    # the pickled job: the run's config, and a checkpoint hook that requeues the same job
    delayed = submitit.helpers.DelayedSubmission.load(jobs[name].paths.submitted_pickle)
    assert isinstance(delayed.function, TrainJob) and config_hash(delayed.function.cfg) == config_hash(cfg)
    requeued = delayed.function.checkpoint()
    assert isinstance(requeued, submitit.helpers.DelayedSubmission) and requeued.function == delayed.function


def test_cluster_options_from_yaml_and_flags_are_checked(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text("partition: gpu\nnodes: 2\ngpus_per_node: 8\n")
    options = load_options(path, {"nodes": 4, "account": None})
    assert (options.partition, options.nodes, options.gpus_per_node, options.tasks) == ("gpu", 4, 8, 8)
    path.write_text("partiton: gpu\n")
    with pytest.raises(ValueError, match=r"cluster.yaml: unknown option\(s\) \['partiton'\]; valid: \['partition'"):
        load_options(path)
    with pytest.raises(ValueError, match=r"cluster options: nodes must be a whole number >= 1, got 0"):
        load_options(None, {"nodes": 0})


def test_the_cli_dispatches_the_launcher(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(reproduce, "ensure_runs_on_cluster",
                        lambda configs, options, cluster, **kwargs: calls.append((len(configs), options, cluster))
                        or {})
    monkeypatch.setattr(reproduce, "notebook_jobs", lambda *args, **kwargs: [])
    monkeypatch.setattr(reproduce, "project_root", lambda: tmp_path)
    assert reproduce.main(["run", "--profile", "tiny", "--launcher", "slurm", "--partition", "gpu",
                           "--gpus-per-node", "4"]) == 0
    (count, options, cluster), = calls
    # the tiny profile: three methods and the supervised ceiling
    assert count == 4 and cluster == "slurm" and (options.partition, options.gpus_per_node) == ("gpu", 4)
    with pytest.raises(SystemExit):
        reproduce.main(["run", "--profile", "tiny", "--partition", "gpu"])  # job options need a job launcher
    assert "are for --launcher slurm" in capsys.readouterr().err
    json.dumps(options.__dict__)  # plain values: printable in the job's log
