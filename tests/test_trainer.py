"""The trainer: bit-identical resume, the NaN/instability stop, the CLI, and DDP with 2 gloo processes."""

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from mcjepa.__main__ import main as cli
from mcjepa.ablations import INSTABILITY
from mcjepa.config import HASH_NEUTRAL, apply_overrides, tiny
from mcjepa.models.checkpoint import load_model, read_checkpoint
from mcjepa.models.mcjepa import MCJEPA
from mcjepa.train.checkpoint import save_checkpoint
from mcjepa.train.metrics_log import read_metrics
from mcjepa.train.schedule import build_optimizer
from mcjepa.train.trainer import StepBatches, TrainingDiverged, resume_state, streams_for_step, train
from mcjepa.utils import checksum_path


def micro_config(method="mc-jepa", **overrides):
    """A few-second config: tiny model, 2 pairs / 4 stills per step, 48x64 images."""
    cfg = tiny()
    apply_overrides(cfg, {"train.method": method, "train.epochs": 1, "train.steps_per_epoch": 6,
                          "train.batch_size": 2, "train.image_batch_size": 4, "train.checkpoint_every": 3,
                          "train.log_every": 1, "data.embedded_pairs": 32, "data.embedded_size": (64, 64),
                          "data.crop": (64, 64), "data.image_base": (64, 64), "data.image_size": (32, 32),
                          "model.flow.strides": (16, 8, 4), **overrides})
    return cfg


def parameters(run_dir):
    model, _ = load_model(run_dir)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_is_bit_identical(tmp_path):
    cfg = micro_config()
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "resumed", progress=False, stop_at=3)
    assert read_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["step"] == 3
    train(cfg, tmp_path / "resumed", resume=True, progress=False)
    straight, resumed = parameters(tmp_path / "straight"), parameters(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
    # the metrics file continues the same curve
    a = [r["loss/total"] for r in read_metrics(tmp_path / "straight")]
    b = [r["loss/total"] for r in read_metrics(tmp_path / "resumed")]
    assert a == b and len(a) == 6


def test_training_changes_parameters_and_refuses_to_overwrite(tmp_path):
    cfg = micro_config("m-jepa")
    train(cfg, tmp_path / "run", progress=False, stop_at=2)
    with pytest.raises(FileExistsError, match="resume"):
        train(cfg, tmp_path / "run", progress=False)
    other = micro_config("m-jepa", **{"loss.cycle": 0.5})
    with pytest.raises(ValueError, match="different config"):
        train(other, tmp_path / "run", resume=True, progress=False)


def test_nan_in_a_loss_term_stops_with_its_name_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    import mcjepa.losses.total as total

    calls = {"n": 0}
    original = total.reconstruction_loss

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        value = original(*args, **kwargs)
        return value * float("nan") if calls["n"] > 2 * 4 else value  # two calls per step: NaN at step 4

    monkeypatch.setattr(total, "reconstruction_loss", poisoned)
    cfg = micro_config("m-jepa")
    with pytest.raises(TrainingDiverged, match=r"step 4: loss term 'flow/rec'"):
        train(cfg, tmp_path / "run", progress=False)
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 3
    assert max(r["step"] for r in read_metrics(tmp_path / "run")) == 4  # rows up to the last finished step


def test_exploding_features_stop_the_run(tmp_path):
    cfg = micro_config("m-jepa", **{"train.max_feature_norm": 1e-3})
    with pytest.raises(TrainingDiverged, match="feature norm"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_collapsing_features_stop_the_run_and_a_healthy_run_passes(tmp_path):
    floor = INSTABILITY["train.min_feature_std"]  # the floor of the instability setting
    healthy = train(micro_config("m-jepa", **{"train.min_feature_std": floor}), tmp_path / "ok", progress=False)
    lowest = min(v for r in read_metrics(tmp_path / "ok") for k, v in r.items() if k.startswith("feat_std/"))
    assert healthy.steps == 6 and lowest > floor
    # a floor above every logged std is a collapse at the first step: the message names the level and its std
    cfg = micro_config("m-jepa", **{"train.min_feature_std": 10 * lowest + 1.0})
    with pytest.raises(TrainingDiverged, match=r"step 0: feature std of flow level \d is .* below "
                                               r"train.min_feature_std=.*collapsing"):
        train(cfg, tmp_path / "collapsed", progress=False)
    assert not (tmp_path / "collapsed" / "checkpoint.pt").exists()


def test_schedule_of_streams():
    cfg = micro_config("mc-jepa", **{"train.flow_start_epoch": 0.5})
    assert [streams_for_step(cfg, s) for s in (0, 2, 3, 5)] == [(False, True), (False, True), (True, True),
                                                                 (True, True)]
    apply_overrides(cfg, {"train.sampling": "alternate"})
    assert [streams_for_step(cfg, s) for s in (3, 4)] == [(False, True), (True, False)]
    assert streams_for_step(micro_config("vicreg"), 5) == (False, True)
    assert streams_for_step(micro_config("m-jepa"), 0) == (True, False)


def test_step_batches_cover_an_epoch_without_repeats_and_split_ranks():
    batches = StepBatches(length=12, batch_size=2, seed=0, start=0, end=6)
    seen = [i for step in batches for i in step]
    assert sorted(seen) == list(range(12))
    rank0 = StepBatches(12, 2, 0, 0, 3, rank=0, world=2)
    rank1 = StepBatches(12, 2, 0, 0, 3, rank=1, world=2)
    both = [i for a, b in zip(rank0, rank1) for i in a + b]
    assert sorted(both) == list(range(12))
    assert StepBatches(12, 2, 0, 4, 6).indices(4) == batches.indices(4)


def test_cli_train_unknown_key_lists_valid_keys(tmp_path, capsys):
    code = cli(["train", "--preset", "tiny", "--set", "loss.cycel=0.2", "--out", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown config key 'loss.cycel'" in err and "loss.cycle" in err


def test_cli_train_and_resume(tmp_path, capsys):
    args = ["train", "--preset", "tiny", "--method", "vicreg", "--out", str(tmp_path / "v"), "--no-progress"]
    sets = ["--set", "train.epochs=1", "--set", "train.steps_per_epoch=2", "--set", "train.image_batch_size=4",
            "--set", "data.embedded_pairs=16", "--set", "data.image_size=(32,32)"]
    assert cli(args + sets) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == 2 and "ssl/total" in out["last"]
    assert cli(args + sets + ["--resume"]) == 0  # already finished: resumes at the end, trains nothing


def _ddp_worker(rank, world, port, out_dir, result_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    cfg = micro_config("mc-jepa", **{"train.steps_per_epoch": 3})
    result = train(cfg, out_dir, progress=False)
    parameters = {name: p.detach() for name, p in result.model.named_parameters()}
    torch.save(parameters, os.path.join(result_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_gloo_processes(tmp_path):
    port = _free_port()
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path / "run"), str(tmp_path)), nprocs=2, join=True)
    state = read_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 3
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys() and len(rank0) > 10
    for name in rank0:  # the ranks saw different batches: their weights are equal only if DDP synced the grads
        assert torch.equal(rank0[name], rank1[name]) and torch.equal(rank0[name], state["model"][name]), name
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2, 3]  # rank 0 logs once per step


def test_a_checkpoint_from_before_a_hash_neutral_knob_still_resumes(tmp_path):
    """Checkpoints written before a HASH_NEUTRAL knob existed lack its key: resume compares config identities."""
    cfg = micro_config("m-jepa")
    model = MCJEPA(cfg.model)
    optimizer, scheduler = build_optimizer(model, cfg)
    save_checkpoint(tmp_path / "checkpoint.pt", model, optimizer, scheduler, 3, cfg)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    for key in HASH_NEUTRAL:
        section, name = key.split(".")
        del state["config"][section][name]
    torch.save(state, tmp_path / "checkpoint.pt")
    checksum_path(tmp_path / "checkpoint.pt").unlink()  # such old checkpoints had no checksum either
    with pytest.warns(UserWarning, match="has no checksum"):
        assert resume_state(tmp_path / "checkpoint.pt", cfg, model, optimizer, scheduler)[0] == 3
    other = micro_config("m-jepa", **{"data.flow_hflip_p": 0.0})
    with pytest.raises(ValueError, match=r"different config \(sections \['data'\]\)"):
        resume_state(tmp_path / "checkpoint.pt", other, model, optimizer, scheduler)


def test_the_convex_upsampler_trains_at_the_flow_learning_rate():
    from mcjepa.train.schedule import param_groups

    cfg = apply_overrides(tiny(), {"model.flow.upsample": "convex", "train.lr_flow": 1e-4, "train.lr_encoder": 3e-4})
    model = MCJEPA(cfg.model)
    names = {id(p): n for n, p in model.named_parameters()}
    for group in param_groups(model, cfg):
        parts = {names[id(p)].split(".", 1)[0] for p in group["params"]}
        assert ("upsampler" in parts) <= (group["lr"] == 1e-4), (group["name"], parts)
    assert any("upsampler" in {names[id(p)].split(".", 1)[0] for p in g["params"]} for g in param_groups(model, cfg))


def test_resumed_optimiser_keeps_the_fused_kernel():
    """A state saved by the per-parameter AdamW (checkpoints before the fused one) must not switch it off."""
    from mcjepa.train.schedule import build_optimizer, load_optimizer_state, param_groups

    cfg = tiny()
    model = torch.nn.Linear(3, 2)
    old = torch.optim.AdamW(param_groups(model, cfg))  # fused=None: the per-parameter loop on the CPU
    model(torch.randn(4, 3)).sum().backward()
    old.step()
    optimizer, _ = build_optimizer(model, cfg)
    assert all(group["fused"] for group in optimizer.param_groups)
    load_optimizer_state(optimizer, old.state_dict())
    assert all(group["fused"] for group in optimizer.param_groups)
    assert torch.equal(optimizer.state[model.weight]["exp_avg"], old.state[model.weight]["exp_avg"])
