"""ensure_runs: independent runs trained in parallel worker processes, duplicates once, cached runs reused;
the train-only motion range of the embedded data leaves the held-out pairs unchanged."""

import json
import os
import pickle

import pytest
import torch

from mcjepa.config import apply_overrides, tiny
from mcjepa.data.registry import embedded_scene, flow_dataset
from mcjepa.ablations import ABLATIONS, point_config, sweep_values
from mcjepa.config import config_hash
from mcjepa.experiments import Setting, ensure_runs, is_finished, run_dir, run_status
from mcjepa.reproduce import (
    FULL_SEEDS,
    INSTABILITY_SEEDS,
    SWEEP_NOTEBOOKS,
    check_profile,
    notebook_jobs,
    profile_runs,
)
from tests.test_trainer import micro_config


def test_two_runs_in_two_workers_duplicates_once_and_cache_reused(tmp_path, capsys):
    a, b = micro_config("m-jepa"), micro_config("m-jepa", **{"loss.cycle": 0.5})
    results = ensure_runs([a, b, micro_config("m-jepa")], tmp_path, workers=2, report_every=0.5)
    assert set(results) == {run_dir(a, tmp_path).name, run_dir(b, tmp_path).name}
    for cfg in (a, b):
        folder = run_dir(cfg, tmp_path)
        assert is_finished(folder, cfg)
        assert json.loads((folder / "done.json").read_text())["steps"] == cfg.total_steps
        assert run_status(folder, cfg).startswith(f"{folder.name}: step {cfg.total_steps}/{cfg.total_steps}")
    assert "2 at a time" in capsys.readouterr().out
    stamp = (run_dir(a, tmp_path) / "done.json").stat().st_mtime_ns
    again = ensure_runs([a], tmp_path, workers=2)
    assert again == {run_dir(a, tmp_path).name: run_dir(a, tmp_path)}
    assert (run_dir(a, tmp_path) / "done.json").stat().st_mtime_ns == stamp  # not retrained


def test_profiles_cover_the_main_runs_and_every_sweep_point_with_seeds():
    tiny_runs = profile_runs("tiny")
    assert [c.train.method for c in tiny_runs] == ["mc-jepa", "m-jepa", "vicreg", "supervised"]
    assert all(c.train.seed == 0 and c.total_steps == tiny().total_steps for c in tiny_runs)
    full = profile_runs("full")
    methods = [c.train.method for c in full]
    assert methods.count("m-jepa") == methods.count("vicreg") == methods.count("supervised") == len(FULL_SEEDS)
    sweeps = {name: len(spec.full_values) for name, spec in ABLATIONS.items()}
    points = sum(sweeps.values())  # and the vc sweep again in the instability setting, at 5 seeds (Fisher)
    assert len(INSTABILITY_SEEDS) == 5
    instability = sweeps["vc"] * len(INSTABILITY_SEEDS)
    assert len(full) == 4 * len(FULL_SEEDS) + points * len(FULL_SEEDS) + instability
    # every preset value is in its sweep, so the base point of each sweep is notebook 03's MC-JEPA run
    unique = {config_hash(c) for c in full}
    assert len(unique) == 4 * len(FULL_SEEDS) + (points - len(ABLATIONS)) * len(FULL_SEEDS) + instability
    guarded = [c for c in full if c.train.min_feature_std > 0]
    assert len(guarded) == instability and all(c.loss.regression == 1.0 for c in guarded)
    assert sorted({c.train.seed for c in guarded}) == list(INSTABILITY_SEEDS)
    # the claims' runs come first: the main runs, then vc (claim iii), its instability setting, cycle (claim iv)
    assert [c.train.method for c in full[:12]] == ["mc-jepa", "m-jepa", "vicreg", "supervised"] * 3
    assert config_hash(full[12]) == config_hash(point_config("vc", 0.0, Setting("tiny", seed=0)))
    cycle = 12 + sweeps["vc"] * len(FULL_SEEDS) + instability
    assert full[cycle].loss.cycle == 0.0 and full[cycle - 1].train.min_feature_std > 0
    assert all(c.total_steps == tiny().total_steps for c in full)


def test_notebook_jobs_per_profile(tmp_path):
    from mcjepa.reproduce import CLAIMS_NOTEBOOK, NOTEBOOKS, USER_NOTEBOOKS, claims_out_of_date

    tiny_jobs = notebook_jobs("tiny")
    # 00-03 and 08-14; 08 (the claims) only while the stored evaluations match today's recipe
    assert not any(name in SWEEP_NOTEBOOKS for name, _ in tiny_jobs)
    skipped = set(SWEEP_NOTEBOOKS) | set(USER_NOTEBOOKS) | ({CLAIMS_NOTEBOOK} if claims_out_of_date() else set())
    assert [name for name, _ in tiny_jobs] == [name for name, _ in NOTEBOOKS if name not in skipped]
    assert all(parameters == {} for _, parameters in tiny_jobs)
    full = notebook_jobs("full")
    cycle = [p for name, p in full if name == "04_ablation_cycle"]
    assert len(cycle) == len(ABLATIONS["cycle"].full_values) * len(FULL_SEEDS)
    assert {"coef": 0.3, "seed": 2} in cycle
    vc = [p for name, p in full if name == "07_ablation_vc"]
    assert {"vc": 0.0, "seed": 1, "instability": True} in vc and {"vc": 0.0, "seed": 1} in vc
    assert {"vc": 0.0, "seed": 4, "instability": True} in vc and {"vc": 0.0, "seed": 4} not in vc
    smoke = dict(notebook_jobs("smoke", tmp_path))
    assert smoke["04_ablation_cycle"]["runs_dir"] == str(tmp_path / "runs") and smoke["01_train_m_jepa"]["epochs"] == 1
    with pytest.raises(ValueError, match="unknown profile"):
        check_profile("huge")
    roots = {"kitti2015": "/data/kitti"}
    paper = notebook_jobs("full", scale="paper", data_roots=roots)
    from mcjepa.reproduce import output_name

    assert output_name("04_ablation_cycle", paper[4][1]) == "04_ablation_cycle_coef=0.0_seed=0.ipynb"
    assert all(p["scale"] == "paper" and p["data_roots"] == roots for _, p in paper) and len(paper) == len(full)
    assert {c.model.encoder.dims for c in profile_runs("full", "paper", roots)} == {(96, 192, 384, 768)}


def test_train_motion_range_changes_training_pairs_only():
    fast_cfg, slow_cfg = tiny().data, tiny().data
    fast_cfg.embedded_train_max_translation, slow_cfg.embedded_train_max_translation = 16.0, 0.0
    assert embedded_scene(fast_cfg, "train").max_translation == 16.0
    assert embedded_scene(slow_cfg, "train").max_translation == 8.0  # 0: as the held-out pairs
    assert embedded_scene(fast_cfg, "test").max_translation == embedded_scene(slow_cfg, "test").max_translation == 8.0
    fast, slow = flow_dataset("embedded", fast_cfg)[0], flow_dataset("embedded", slow_cfg)[0]
    assert fast["flow"].abs().max() > slow["flow"].abs().max()
    held_out = flow_dataset("embedded", fast_cfg, split="val")[0]["flow"]
    assert held_out.equal(flow_dataset("embedded", slow_cfg, split="val")[0]["flow"])


def test_train_background_motion_scales_the_training_backgrounds_only():
    moving, default = tiny().data, tiny().data
    moving.embedded_train_background_motion = 1.0
    assert embedded_scene(default, "train").background_motion_fraction == 0.4  # the generator's own default
    assert embedded_scene(moving, "train").background_motion_fraction == 1.0
    assert embedded_scene(moving, "val") == embedded_scene(default, "val")

    def background_speed(cfg, split):  # median |flow| of a pair: the background covers most of every image
        return torch.stack([flow_dataset("embedded", cfg, split=split)[i]["flow"].norm(dim=0).median()
                            for i in range(6)])

    # the same random draws scaled by 1.0 instead of 0.4: the background moves about 2.5x as far
    ratio = background_speed(moving, "train") / background_speed(default, "train")
    assert 2.0 < ratio.median() < 3.0
    assert background_speed(moving, "val").equal(background_speed(default, "val"))
    with pytest.raises(ValueError, match="embedded_train_background_motion"):
        apply_overrides(tiny(), ["data.embedded_train_background_motion=1.5"])


def test_sweep_values_follow_the_preset_of_each_scale():
    assert sweep_values("flow_start", "tiny") == (0.0, 1.0, 3.0, 6.0, 9.0)  # fractions of the 10-epoch run
    assert sweep_values("flow_start", "paper") == (0.0, 10.0, 30.0, 60.0, 90.0)  # the paper's 10 of 100 included
    assert sweep_values("vc", "tiny") == (0.0, 0.1) and sweep_values("vc", "paper") == (0.0, 1.0)
    assert 0.1 in sweep_values("cycle", "paper") and 0.1 in sweep_values("balance", "tiny")


def test_a_stopped_run_is_recorded_and_not_trained_again(tmp_path, monkeypatch):
    from mcjepa import experiments
    from mcjepa.experiments import ensure_run, stopped
    from mcjepa.train.trainer import TrainingDiverged

    calls = []

    def collapsing(cfg, folder, **kwargs):
        calls.append(folder)
        folder.mkdir(parents=True, exist_ok=True)
        raise TrainingDiverged(7, "feature std of flow level 1 is 0.04, below train.min_feature_std=0.05")

    monkeypatch.setattr(experiments, "train", collapsing)
    cfg = micro_config("m-jepa")
    for _ in range(2):
        with pytest.raises(TrainingDiverged, match=r"step 7: feature std of flow level 1 is 0.04"):
            ensure_run(cfg, tmp_path)
    assert len(calls) == 1  # the second call read diverged.json instead of training again
    error = stopped(run_dir(cfg, tmp_path))
    assert error.step == 7 and str(error).startswith("step 7: feature std")
    assert stopped(tmp_path) is None
    # A pool of workers gets the recorded stop back without starting a worker (the monkeypatch above does not
    # reach spawned workers, so a started one would train for real), and the stop survives pickling, which is
    # how a stop raised inside a worker crosses back (it used to break the whole pool).
    results = ensure_runs([cfg], tmp_path, workers=2)
    assert isinstance(results[run_dir(cfg, tmp_path).name], TrainingDiverged) and len(calls) == 1
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is TrainingDiverged and again.step == 7 and str(again) == str(error)


def test_full_profile_stops_when_a_run_fails_but_not_when_a_guard_stops_it(tmp_path, monkeypatch):
    from mcjepa import reproduce
    from mcjepa.train.trainer import TrainingDiverged

    outcomes = {"a": tmp_path, "b": TrainingDiverged(3, "loss is NaN")}
    monkeypatch.setattr(reproduce, "ensure_runs", lambda *args, **kwargs: dict(outcomes))
    monkeypatch.setattr(reproduce, "notebook_jobs", lambda *args, **kwargs: [])
    assert reproduce.run_all("tiny", output_dir=tmp_path / "out") == []  # a guard's stop is a result
    outcomes["c"] = ValueError("worker crashed")
    with pytest.raises(RuntimeError, match=r"training failed: c: ValueError\('worker crashed'\)"):
        reproduce.run_all("tiny", output_dir=tmp_path / "out")


def test_notebook_kernels_get_their_thread_share_and_the_process_keeps_its_own(tmp_path, monkeypatch):
    from mcjepa import reproduce

    seen = []
    monkeypatch.setattr(reproduce, "_execute",
                        lambda name, parameters, out: seen.append(os.environ.get("OMP_NUM_THREADS")) or out / name)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    done = reproduce.execute_jobs([("09_eval_flow", {}), ("04_ablation_cycle", {})], tmp_path, workers=2)
    assert done == [tmp_path / "04_ablation_cycle", tmp_path / "09_eval_flow"]  # the sweep notebooks first
    assert seen == ["2", "2"] and os.environ["OMP_NUM_THREADS"] == "7"  # restored after
    monkeypatch.delenv("OMP_NUM_THREADS")
    reproduce.execute_jobs([("09_eval_flow", {})], tmp_path, workers=4)
    assert seen[-1] == "1" and "OMP_NUM_THREADS" not in os.environ
