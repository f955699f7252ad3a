"""mcjepa.ablations: point validation, naming and caching (seeds, overrides), divergence records, collection,
the reduction over seeds and the Markdown tables (figures: test_ablation_figures.py).

No real training: `ensure_run` and `evaluate_run` are replaced by fakes that write a hand-made run folder
(metrics.jsonl + a minimal checkpoint), and the collection/plot tests read hand-written point files.
"""

import json
import math

import pytest
import torch

from mcjepa import ablations
from mcjepa.ablations import (
    ABLATIONS, INSTABILITY, by_value, check_value, collect, feature_std_series, point_config, point_name,
    point_path, points_markdown, recipe_hash, run_point, stability_summary, summarize, sweep_markdown, vc_markdown,
)
from mcjepa.config import config_hash
from mcjepa.experiments import Setting, run_config, run_dir
from mcjepa.train.trainer import TrainingDiverged
from mcjepa.report import load_json

SMALL = Setting("tiny", epochs=2, steps_per_epoch=3, seed=0)


def small(tmp_path, **changes):
    """SMALL with its runs and points under tmp_path, no progress bars."""
    return SMALL.replace(runs_dir=tmp_path / "runs", figures_dir=tmp_path / "fig", progress=False, **changes)


# ------------------------------------------------------------------------------------------- validation
def test_point_config_sets_only_the_ablated_key():
    for ablation, spec in ABLATIONS.items():
        key = spec.key
        cfg = point_config(ablation, 0.5, SMALL)
        section, leaf = key.split(".")
        assert getattr(getattr(cfg, section), leaf) == 0.5
        base = run_config("tiny", "mc-jepa", {key: 0.5}, epochs=2, steps_per_epoch=3, seed=0)
        assert config_hash(cfg) == config_hash(base)
        assert cfg.train.method == "mc-jepa"


def test_base_value_shares_the_base_run_and_recipe():
    tiny = run_config("tiny", "mc-jepa", {}, epochs=2, steps_per_epoch=3, seed=0)
    cfg = point_config("cycle", tiny.loss.cycle, SMALL)
    assert config_hash(cfg) == config_hash(tiny) == recipe_hash(SMALL) == recipe_hash(SMALL.replace(seed=2))
    assert config_hash(point_config("cycle", 0.0, SMALL)) != config_hash(tiny)
    seed1 = point_config("cycle", 0.0, SMALL.replace(seed=1))
    assert seed1.train.seed == 1 and config_hash(seed1) != config_hash(point_config("cycle", 0.0, SMALL))
    guarded = point_config("vc", 0.0, SMALL, overrides=INSTABILITY)
    assert guarded.train.min_feature_std == INSTABILITY["train.min_feature_std"] > 0
    assert recipe_hash(SMALL, overrides=INSTABILITY) != recipe_hash(SMALL)
    with pytest.raises(ValueError, match="loss.vc"):
        point_config("vc", 0.0, SMALL, overrides={"loss.vc": 1.0})
    assert point_config("cycle", 1, SMALL).loss.cycle == 1.0  # papermill may pass an int


def test_every_entry_names_a_config_key_and_a_notebook_declaring_its_parameter():
    from mcjepa.config import flat_keys, tiny
    from mcjepa.reproduce import notebook_parameters, notebook_path

    panels = sorted(spec.fig5_panel for spec in ABLATIONS.values() if spec.fig5_panel)
    assert panels == list(range(1, len(panels) + 1))  # Fig. 5-1, 5-2, ... each once
    for name, spec in ABLATIONS.items():
        assert spec.key in flat_keys(tiny()) and spec.xscale in ("linear", "symlog") and spec.paper, name
        declared = notebook_parameters(notebook_path(spec.notebook))
        assert {spec.parameter, "seed", "runs_dir", "figures_dir"} <= set(declared), (name, sorted(declared))
        assert spec.instability == ("instability" in declared), name
        assert None in spec.full_values or any(v == 0.1 for v in spec.full_values) or spec.epoch, name


@pytest.mark.parametrize("ablation, value, match", [
    ("cycle", -0.1, "non-negative"), ("balance", float("nan"), "non-negative"), ("vc", -1, "non-negative"),
    ("flow_start", 2.5, "beyond"), ("flow_start", -1.0, "non-negative"), ("cycle", None, "value"),
    ("cycle", "0.1", "non-negative"), ("gamma", 0.1, "unknown ablation"),
])
def test_bad_values_are_clear_errors(ablation, value, match):
    with pytest.raises(ValueError, match=match):
        point_config(ablation, value, SMALL)


def test_flow_start_limits_use_the_resolved_epochs():
    assert check_value("flow_start", 1.5, epochs=2) == 1.5
    with pytest.warns(UserWarning, match="never trained"):
        check_value("flow_start", 2, epochs=2)
    preset_epochs = run_config("tiny", "mc-jepa").train.epochs
    with pytest.raises(ValueError, match="beyond"):
        point_config("flow_start", preset_epochs + 1, Setting("tiny"))  # epochs=None: the preset's value
    with pytest.raises(ValueError, match="scale"):
        Setting("huge")


def test_point_names_are_exact_and_distinct(tmp_path):
    assert [point_name(v) for v in (0, 0.1, 1, 1e-5)] == ["0.0_seed0", "0.1_seed0", "1.0_seed0", "1e-05_seed0"]
    assert point_name(0.1) != point_name(0.1000001) and point_name(0.1, 2) == "0.1_seed2"
    assert float(point_name(0.30000000000000004).split("_")[0]) == 0.30000000000000004
    assert point_path("vc", 0, 1, tmp_path) == tmp_path / "ablations" / "vc" / "0.0_seed1.json"
    assert point_name(0.0, 0, {"train.min_feature_std": 0.05}) == "0.0_seed0_train.min_feature_std=0.05"
    with pytest.raises(ValueError, match="seed"):
        point_name(0.1, 1.5)


# ------------------------------------------------------------------------------------------- stability
def test_stability_summary_hand_computed():
    rows = [
        {"step": 5, "feat_std/0": 0.9, "feat_std/1": 0.5, "feat_norm/max": 3.0},
        {"step": 10, "feat_std/0": 0.2, "feat_std/1": None, "feat_norm/max": 7.0},
        {"step": 15, "feat_std/0": 0.4, "feat_std/1": 0.6, "loss/total": 1.0},
        {"step": 10, "feat_std/0": 0.3, "feat_std/1": 0.7, "feat_norm/max": 5.0},  # a restarted run re-logged 10
    ]
    s = stability_summary(rows)
    assert s["feat_std_final"] == {"0": 0.4, "1": 0.6}
    assert s["feat_std_min"] == {"0": 0.3, "1": 0.5}  # the overwritten 0.2 of step 10 does not count
    assert s["feat_std_min_all"] == 0.3
    assert s["feat_norm_max"] == 5.0
    assert s["last_logged_step"] == 15
    empty = stability_summary([])
    assert empty["feat_std_min_all"] is None and empty["feat_std_final"] == {} and empty["last_logged_step"] is None
    assert feature_std_series(rows) == {"0": [[5.0, 0.9], [10.0, 0.3], [15.0, 0.4]],
                                        "1": [[5.0, 0.5], [10.0, 0.7], [15.0, 0.6]]}


# ------------------------------------------------------------------------------------------- run_point
class FakeRuns:
    """Stands in for ensure_run / evaluate_run: writes a hand-made run folder, counts calls."""

    def __init__(self, monkeypatch, diverge_at=None, checkpoint=True, epe=2.0, miou=0.5):
        self.trained, self.evaluated = [], []
        self.diverge_at, self.checkpoint, self.epe, self.miou = diverge_at, checkpoint, epe, miou
        monkeypatch.setattr(ablations, "ensure_run", self.ensure_run)
        monkeypatch.setattr(ablations, "evaluate_run", self.evaluate_run)

    def ensure_run(self, cfg, runs_dir=None, progress=True, eval_every=None):
        folder = run_dir(cfg, runs_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.trained.append(folder)
        last = self.diverge_at if self.diverge_at is not None else cfg.total_steps
        rows = [{"step": s, "feat_std/0": 1.0 / s, "feat_std/1": 0.5, "loss/total": 1.0} for s in range(1, last + 1)]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        if self.checkpoint:
            torch.save({"model": {}, "step": max(1, last - 1), "config": {}}, folder / "checkpoint.pt")
        if self.diverge_at is not None:
            raise TrainingDiverged(self.diverge_at, "loss term 'flow/vc' is nan (NaN/Inf); training stopped")
        return folder

    def evaluate_run(self, run, tasks=("flow", "segmentation"), progress=True, **kwargs):
        self.evaluated.append((run, tuple(tasks)))
        self.kwargs = kwargs
        out = {"flow": {"epe": self.epe, "fl": 10.0},
               "segmentation": {"miou": self.miou, "per_class_iou": [math.nan, 0.5]}}
        if "davis" in tasks:
            out["davis"] = {"JF_mean": 0.4, "J_mean": 0.3, "F_mean": 0.5, "n_objects": 3}
        return out


def test_run_point_writes_a_complete_point_and_caches_it(tmp_path, monkeypatch):
    fake = FakeRuns(monkeypatch)
    setting = small(tmp_path)
    point = run_point("cycle", 0.2, setting)
    path = tmp_path / "fig" / "ablations" / "cycle" / "0.2_seed0.json"
    assert path.is_file() and load_json(path) == point
    cfg = point_config("cycle", 0.2, SMALL)
    assert point["config_hash"] == config_hash(cfg) and point["run_dir"] == run_dir(cfg, tmp_path / "runs").name
    assert point["recipe_hash"] == recipe_hash(SMALL) and point["overrides"] == {}
    assert point["feat_std_series"]["1"] == [[float(s), 0.5] for s in range(1, cfg.total_steps + 1)]
    assert (point["epe"], point["fl"], point["miou"], point["jf"]) == (2.0, 10.0, 0.5, None)
    assert point["segmentation"]["per_class_iou"] == [None, 0.5]  # NaN stored as null
    assert point["diverged"] is False and point["evaluated_step"] == cfg.total_steps - 1
    assert point["feat_std_min"] == {"0": 1.0 / cfg.total_steps, "1": 0.5}
    assert point["epochs"] == 2 and point["steps_per_epoch"] == 3 and point["key"] == "loss.cycle"
    assert fake.kwargs == {"flow_dataset": "embedded", "seg_dataset": "embedded", "video": "embedded", "roots": {}}

    again = run_point("cycle", 0.2, setting)
    assert again == point and len(fake.trained) == 1 and len(fake.evaluated) == 1  # cached: no new work
    run_point("cycle", 0.2, setting, davis=True)  # more tasks than stored: evaluated again
    assert fake.evaluated[-1][1] == ("flow", "segmentation", "davis") and len(fake.evaluated) == 2
    assert json.loads(path.read_text())["jf"] == 0.4
    run_point("cycle", 0.2, setting, davis=True,
              eval_datasets={"flow": "motorcycle"})  # same run, other evaluation data: evaluated again
    assert len(fake.evaluated) == 3 and len(fake.trained) == 3 and fake.kwargs["flow_dataset"] == "motorcycle"
    assert json.loads(path.read_text())["eval_datasets"]["flow"] == "motorcycle"
    run_point("cycle", 0.2, setting.replace(data_roots={"sintel": "/s"}))
    assert fake.kwargs["roots"] == {"sintel": "/s", "sintel_clean": "/s", "sintel_final": "/s"}
    fake.evaluated = fake.evaluated[:2]
    other = setting.replace(epochs=1)
    run_point("cycle", 0.2, other)
    assert len(fake.evaluated) == 3  # another config under the same point name: not reused
    run_point("cycle", 0.2, other, force=True)
    assert len(fake.evaluated) == 4

    other_seed = run_point("cycle", 0.2, setting.replace(seed=1))  # another seed: its own run and file, one recipe
    assert other_seed["recipe_hash"] == point["recipe_hash"] and other_seed["seed"] == 1
    assert (tmp_path / "fig" / "ablations" / "cycle" / "0.2_seed1.json").is_file()
    assert fake.trained[-1] == run_dir(point_config("cycle", 0.2, SMALL.replace(seed=1)), tmp_path / "runs")


def test_an_altered_point_is_evaluated_again(tmp_path, monkeypatch):
    fake = FakeRuns(monkeypatch)
    point = run_point("cycle", 0.2, small(tmp_path))
    path = point_path("cycle", 0.2, 0, tmp_path / "fig")
    path.write_text(path.read_text().replace('"epe": 2.0', '"epe": 1.0'))  # still JSON, checksum off
    with pytest.warns(UserWarning, match="0.2_seed0.json was altered.*measuring it again"):
        again = run_point("cycle", 0.2, small(tmp_path))
    assert again == {**point, "created": again["created"]} and len(fake.evaluated) == 2
    assert load_json(path)["epe"] == 2.0  # rewritten with its checksum


def test_divergence_is_recorded_not_raised(tmp_path, monkeypatch):
    fake = FakeRuns(monkeypatch, diverge_at=4)
    point = run_point("vc", 0.0, small(tmp_path))
    assert point["diverged"] is True and point["diverged_step"] == 4 and "nan" in point["diverged_message"]
    assert point["evaluated_step"] == 3 and point["epe"] == 2.0  # the last good checkpoint was evaluated
    assert point["feat_std_final"]["0"] == pytest.approx(0.25)
    assert len(fake.evaluated) == 1

    FakeRuns(monkeypatch, diverge_at=2, checkpoint=False)
    early = run_point("vc", 0.0, SMALL.replace(seed=1, runs_dir=tmp_path / "r2", figures_dir=tmp_path / "f2",
                                               progress=False))
    assert early["diverged"] and early["evaluated_step"] is None and early["epe"] is None and early["miou"] is None


# ------------------------------------------------------------------------------------------- collection
def write_point(folder, ablation, value, epe, miou, recipe="r1", diverged=False, scale="tiny", seed=0, **extra):
    point = {"format": 2, "ablation": ablation, "value": value, "seed": seed, "epe": epe, "miou": miou, "jf": None,
             "recipe_hash": recipe, "diverged": diverged, "diverged_step": 7 if diverged else None, "scale": scale,
             "feat_std_min_all": 0.01 if diverged else 0.5, "run_dir": str(folder / f"run-{ablation}-{value}"),
             **extra}
    path = point_path(ablation, value, seed, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(point))
    return point


def test_collect_sorts_by_value_filters_recipe_and_rejects_garbage(tmp_path):
    for value, epe in ((1.0, 3.0), (0.0, 5.0), (0.1, 4.0)):
        write_point(tmp_path, "cycle", value, epe, 0.3)
    write_point(tmp_path, "cycle", 0.5, 1.0, 0.9, recipe="r2")
    write_point(tmp_path, "cycle", 0.1, 4.5, 0.3, seed=1)
    old = write_point(tmp_path, "cycle", 0.3, 4.5, 0.3, seed=2, format=1)  # an older point format
    assert [(p["value"], p["seed"]) for p in collect("cycle", tmp_path)] == [(0.0, 0), (0.1, 0), (0.1, 1), (0.3, 2),
                                                                             (0.5, 0), (1.0, 0)]
    assert [p["epe"] for p in collect("cycle", tmp_path, recipe="r1")] == [5.0, 4.0, 4.5, 3.0]
    assert old not in collect("cycle", tmp_path, recipe="r1")
    assert collect("balance", tmp_path) == []
    with pytest.raises(ValueError, match="unknown ablation"):
        collect("nope", tmp_path)
    (tmp_path / "ablations" / "cycle" / "2.0_seed0.json").write_text("{not json")
    with pytest.raises(ValueError, match="2.0_seed0.json"):
        collect("cycle", tmp_path)


def test_summaries_over_seeds_hand_computed(tmp_path):
    assert summarize([1.0, 2.0, 4.0, None, float("nan")]) == {
        "mean": pytest.approx(7 / 3), "std": pytest.approx(math.sqrt(7 / 3)), "n": 3, "values": [1.0, 2.0, 4.0]}
    assert summarize([2.5]) == {"mean": 2.5, "std": None, "n": 1, "values": [2.5]}
    assert summarize([None])["mean"] is None
    points = [write_point(tmp_path, "cycle", v, e, m, seed=s, diverged=d)
              for v, e, m, s, d in ((0.1, 1.0, 0.2, 0, False), (0.1, 2.0, 0.4, 1, False), (0.1, 4.0, None, 2, True),
                                    (0.0, 3.0, 0.5, 0, False))]
    rows = by_value(points)
    assert [r["value"] for r in rows] == [0.0, 0.1]
    assert rows[1]["seeds"] == [0, 1, 2] and rows[1]["diverged"] == 1
    assert rows[1]["epe"]["mean"] == pytest.approx(7 / 3) and rows[1]["miou"]["n"] == 2
    table = sweep_markdown(points).splitlines()
    assert table[2] == "| 0 | 3.00 (n=1) | 50.0 (n=1) | - | 0.500 (n=1) | 0 of 1 |"
    assert table[3].startswith(f"| 0.1 | 2.33 ± {math.sqrt(7 / 3):.2f} (n=3) | 30.0 ± 14.1 (n=2) | - |")
    assert table[3].endswith("| 1 of 3 |")


def test_points_markdown_formats_percent_and_missing(tmp_path):
    md = points_markdown([write_point(tmp_path, "cycle", 0.1, 2.345, 0.5, seed=2, fl=12.34, jf=0.25)])
    row = md.splitlines()[2]
    assert row.startswith("| 0.1 | 2 | 2.35 | 12.3 | 50.0 | 25.0 | 0.500 | no |")
    assert "no points yet" in points_markdown([])


def test_vc_markdown_puts_ours_beside_the_paper(tmp_path):
    points = [write_point(tmp_path, "vc", 0.0, 4.56, 0.123, diverged=True),
              write_point(tmp_path, "vc", 0.0, 4.66, 0.133, seed=1),
              write_point(tmp_path, "vc", 1.0, 3.21, 0.456)]
    lines = vc_markdown(points).splitlines()
    no_vc = next(line for line in lines if "vc = 0: pooled" in line)
    assert "**4.61 ± 0.07 (n=2)**" in no_vc and "**12.8 ± 0.7 (n=2)**" in no_vc and "**1 of 2**" in no_vc
    with_vc = next(line for line in lines if "vc = 1: every" in line)
    assert "**3.21 (n=1)**" in with_vc and "**45.6 (n=1)**" in with_vc and "**0 of 1**" in with_vc
    paper = next(line for line in lines if "paper: no VC" in line)
    assert "3.41" in paper and "47.3" in paper and "37.8" in paper and "unstable" in paper
    assert "no vc points yet" in vc_markdown([])


def test_describe_sweep_and_trends_table(tmp_path):
    points = [write_point(tmp_path, "balance", v, e, m)
              for v, e, m in ((0.01, 4.0, 0.2), (0.1, 3.0, 0.25), (1.0, 3.5, 0.1))]
    points.append(write_point(tmp_path, "balance", 0.1, 2.0, 0.35, seed=1))
    text = ablations.describe_sweep(points)
    assert text == ("lowest EPE 2.50 px at 0.1; highest mIoU 30.00 % at 0.1 "
                    "(4 runs, 1/2 seed(s) per value: 0.01, 0.1, 1)")
    bad = ablations.describe_sweep([write_point(tmp_path, "vc", 0.0, None, None, diverged=True)])
    assert bad == "diverged at 0 (1 of 1) (1 run, 1 seed(s) per value: 0)"
    assert ablations.describe_sweep([]) == "no points yet"
    table = ablations.trends_markdown(tmp_path, recipe="r1")
    balance_row = next(line for line in table.splitlines() if "loss.balance" in line)
    assert "up to about 0.1" in balance_row and "lowest EPE 2.50 px at 0.1" in balance_row
    assert "3.41" in next(line for line in table.splitlines() if "loss.vc" in line)
    assert "no points yet" in next(line for line in table.splitlines() if "loss.cycle" in line)
