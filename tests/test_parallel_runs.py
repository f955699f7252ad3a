"""ensure_runs: independent runs trained in parallel worker processes, duplicates once, cached runs reused;
the train-only motion range of the embedded data leaves the held-out pairs unchanged."""

import json

from mcjepa.config import tiny
from mcjepa.data.registry import embedded_scene, flow_dataset
from mcjepa.experiments import ensure_runs, is_finished, run_dir, run_status
from mcjepa.notebooks import SWEEP_SCHEDULE, SWEEPS, _profile_parameters, profile_runs
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


def test_profile_runs_cover_the_main_runs_and_every_sweep_point_at_the_sweep_length():
    configs = profile_runs("tiny")
    methods = [c.train.method for c in configs]
    assert methods.count("m-jepa") == 1 and methods.count("vicreg") == 1
    assert len(configs) == 3 + sum(len(values) for _, values in SWEEPS.values())
    sweep_steps = SWEEP_SCHEDULE["epochs"] * SWEEP_SCHEDULE["steps_per_epoch"]
    assert [c.total_steps for c in configs[3:]] == [sweep_steps] * (len(configs) - 3)
    assert configs[0].total_steps == tiny().total_steps
    # the notebooks get the same schedule: sweeps and the plots notebook, not the main runs
    assert _profile_parameters("tiny", None, "04_ablation_cycle") == SWEEP_SCHEDULE
    assert _profile_parameters("tiny", None, "08_ablation_plots") == SWEEP_SCHEDULE
    assert _profile_parameters("tiny", None, "03_train_mc_jepa") == {}


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
