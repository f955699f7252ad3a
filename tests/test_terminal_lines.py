"""Inside a Jupyter kernel (papermill) `ensure_run` reports training on the terminal behind the kernel: a
start line, a status line (step, loss, time left) every `report_every` seconds, an end line; outside a kernel
it writes nothing there (the training bar is on the terminal already)."""

import json
import os
import sys
import time
from types import SimpleNamespace

from mcjepa import experiments
from mcjepa.experiments import ensure_run, run_dir, terminal_fd
from tests.test_trainer import micro_config


class KernelStream:
    """Stands in for ipykernel's OutStream: its fileno() is the kernel's original stderr (here a file)."""

    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd

    def write(self, text):  # what goes to the notebook: nothing expected here
        raise AssertionError(f"wrote to the notebook: {text!r}")

    def flush(self):
        pass


KernelStream.__module__ = "ipykernel.iostream"


def test_status_lines_reach_the_kernels_terminal(tmp_path, monkeypatch):
    terminal = tmp_path / "terminal.log"
    fd = os.open(terminal, os.O_WRONLY | os.O_CREAT)
    monkeypatch.setattr(sys, "stderr", KernelStream(fd))
    cfg = micro_config("m-jepa")

    def training(cfg, folder, **kwargs):  # logs step 2 of 6, then waits for the status thread to report it
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.jsonl").write_text(json.dumps({"step": 2, "seconds": 4.0, "loss/total": 0.25}) + "\n")
        deadline = time.time() + 10
        while "step 2/" not in terminal.read_text() and time.time() < deadline:
            time.sleep(0.01)
        return SimpleNamespace(steps=cfg.total_steps, seconds=90.0, last={})

    monkeypatch.setattr(experiments, "train", training)
    try:
        assert terminal_fd() == fd
        ensure_run(cfg, tmp_path / "runs", report_every=0.05)
    finally:
        os.close(fd)
    name = run_dir(cfg, tmp_path / "runs").name
    lines = terminal.read_text().splitlines()
    assert lines[0] == f"[mcjepa] training {name}: {cfg.total_steps} steps, a status line every 0.05 s"
    # step 2 of 6 after 4 s: 0.5 steps/s, 4 steps left = 8 s = 0.13 min
    assert cfg.total_steps == 6 and f"[mcjepa] {name}: step 2/6, loss 0.250, 0.5 steps/s, 0.1 min left" in lines
    assert lines[-1] == f"[mcjepa] {name}: finished {cfg.total_steps} steps in 1.5 min"


def test_nothing_is_written_outside_a_kernel(tmp_path, capfd):
    assert terminal_fd() is None  # pytest's capture, like a terminal, is not a kernel stream
    experiments.terminal_line("not shown")
    assert "not shown" not in capfd.readouterr().err
