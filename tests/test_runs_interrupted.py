"""Interrupted runs: kill -9 and resume is bit-identical (drop_path 0 and the paper's 0.1), a torn metrics line
is named and dropped, a full disk fails with a clear message and leaves no half-written file, checkpoints are
verified on read."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from mcjepa.__main__ import main as cli
from mcjepa.config import paper, to_dict
from mcjepa.models.checkpoint import read_checkpoint
from mcjepa.train.metrics_log import MetricsLog, read_metrics
from mcjepa.train.trainer import train
from mcjepa.utils import checksum_path
from test_trainer import micro_config, parameters

REPO = Path(__file__).resolve().parents[1]
PAPER_DROP_PATH = paper().model.encoder.drop_path
SHORT = {"train.steps_per_epoch": 4, "train.checkpoint_every": 2}


def _cli_args(out: Path, drop_path: float) -> list[str]:
    cfg = micro_config(**SHORT, **{"model.encoder.drop_path": drop_path})
    sets = {"train.epochs": 1, "train.batch_size": 2, "train.image_batch_size": 4, "train.log_every": 1,
            "data.embedded_pairs": 32, "data.embedded_size": (64, 64), "data.crop": (64, 64),
            "data.image_base": (64, 64), "data.image_size": (32, 32), "model.flow.strides": (16, 8, 4),
            "model.encoder.drop_path": drop_path, **SHORT}
    args = ["train", "--preset", "tiny", "--method", cfg.train.method, "--out", str(out), "--no-progress"]
    for key, value in sets.items():
        args += ["--set", f"{key}={value!r}"]
    return args


def _subprocess(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "mcjepa", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _assert_same_run(straight: Path, other: Path) -> None:
    a, b = parameters(straight), parameters(other)
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f"{len(different)} of {len(a)} tensors differ, e.g. {different[:3]}"
    assert [r["loss/total"] for r in read_metrics(straight)] == [r["loss/total"] for r in read_metrics(other)]


@pytest.mark.parametrize("drop_path", [0.0, PAPER_DROP_PATH])
def test_kill_9_then_resume_is_bit_identical(tmp_path, drop_path):
    assert PAPER_DROP_PATH == 0.1  # the paper preset's value is the one covered here
    cfg = micro_config(**SHORT, **{"model.encoder.drop_path": drop_path})
    train(cfg, tmp_path / "straight", progress=False)

    killed = tmp_path / "killed"
    process = _subprocess(_cli_args(killed, drop_path))
    deadline = time.time() + 300
    while not (killed / "checkpoint.pt").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed mid-run"
    assert read_checkpoint(killed / "checkpoint.pt")["step"] == 2
    with open(killed / "metrics.jsonl", "ab") as handle:  # what a write cut by kill -9 / a full disk leaves
        handle.write(b'{"step": 3, "loss/tot')

    with pytest.warns(UserWarning, match=f"{killed / 'metrics.jsonl'}:[34]: torn last line dropped"):
        train(cfg, killed, resume=True, progress=False)  # in-process: restores the RNG after building the loaders
    _assert_same_run(tmp_path / "straight", killed)


def test_torn_line_in_the_middle_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')
    with pytest.raises(ValueError, match=f"{path}:2: not a JSON line"):
        read_metrics(path)
    path.write_text('{"step": 1}\n{"step": 2, "lo')
    with pytest.warns(UserWarning, match=f"{path}:2: torn last line"):
        assert read_metrics(path) == [{"step": 1}]


@pytest.fixture
def small_disk():
    """A 256 KiB tmpfs (needs mount rights: root or CAP_SYS_ADMIN; skipped with the reason otherwise)."""
    folder = Path(tempfile.mkdtemp())
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)
    folder.rmdir()


def test_full_disk_fails_clearly_and_leaves_no_half_written_file(small_disk, capsys):
    out = small_disk / "run"
    cfg = micro_config("vicreg", **{"train.steps_per_epoch": 1})
    with pytest.raises(OSError, match="disk full") as info:
        train(cfg, out, progress=False)  # a tiny model's checkpoint is ~10x the disk
    assert info.value.filename == str(out / "checkpoint.pt")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.jsonl"]  # no temporary left
    assert json.loads((out / "config.json").read_text()) == json.loads(json.dumps(to_dict(cfg)))
    assert [r["step"] for r in read_metrics(out)] == [1]

    log = MetricsLog(out / "metrics.jsonl")  # fill the rest of the disk, then a line that does not fit
    with pytest.raises(OSError):
        (small_disk / "filler").write_bytes(bytes(1 << 20))
    with pytest.raises(OSError, match="cannot append to the metrics file") as info:
        log.write({"step": 2, "x" * 8192: 1.0})
    assert info.value.filename == str(out / "metrics.jsonl")
    assert [r["step"] for r in read_metrics(out)] == [1]  # the partial line was cut off

    (small_disk / "filler").unlink()
    assert cli(["eval-flow", str(out / "config.json")]) == 2  # not a checkpoint: named, one line
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint") and str(out / "config.json") in err and err.count("\n") == 1


def test_corrupted_or_incomplete_checkpoint_is_named(tmp_path, capsys):
    cfg = micro_config("vicreg", **{"train.steps_per_epoch": 2, "train.checkpoint_every": 1})
    train(cfg, tmp_path / "run", progress=False, stop_at=1)
    path = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupted") as info:
        train(cfg, tmp_path / "run", resume=True, progress=False)
    assert str(path) in str(info.value)
    del state["optimizer"]
    torch.save(state, path)
    checksum_path(path).unlink()  # an incomplete checkpoint of an older run, without a checksum
    with pytest.raises(ValueError, match=r"lacks \['optimizer'\]"):
        train(cfg, tmp_path / "run", resume=True, progress=False)
    assert cli(["train", "--method", "vicreg", "--out", str(tmp_path / "run"), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "error:" in err
