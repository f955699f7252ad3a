"""mcjepa.session.Session: the notebooks' set-up and outputs (files written where and how, names refused)."""

import json
import math

import pytest
from matplotlib.figure import Figure

from mcjepa import session as session_module
from mcjepa.config import preset
from mcjepa.experiments import Setting, run_dir
from mcjepa.report import load_json
from mcjepa.session import Session, check_name
from mcjepa.viz.bars import plot_grouped_bars

PNG = b"\x89PNG\r\n\x1a\n"


def session(tmp_path, **kwargs):
    return Session("99_test", figures_dir=tmp_path / "figures", runs_dir=tmp_path / "runs", **kwargs)


def test_outputs_go_to_the_notebook_folder_and_are_listed(tmp_path, capsys):
    nb = session(tmp_path)
    assert nb.folder == tmp_path / "figures" / "99_test" and nb.folder.is_dir()
    assert nb.figure("bars", plot_grouped_bars({"x": {"a": 1.0}}, "y")) is None
    assert "Image" in capsys.readouterr().out  # shown (outside a kernel, IPython prints the object)
    path = nb.json("numbers", {"b": 1, "a": float("nan"), "c": [1.5, math.inf]})
    assert path == nb.folder / "numbers.json"
    assert load_json(path) == {"a": None, "b": 1, "c": [1.5, None]}
    assert (nb.folder / "bars.png").read_bytes()[:8] == PNG
    nb.json("numbers", {"b": 2})  # rewritten: listed once
    assert nb.written == ["bars.png", "numbers.json"]
    assert sorted(p.name for p in nb.folder.iterdir()) == ["bars.png", "numbers.json"]  # no temp file left


class BrokenFigure(Figure):
    def savefig(self, fname, **kwargs):
        fname.write(b"half a png")
        raise RuntimeError("disk full")


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    nb = session(tmp_path)
    nb.figure("bars", plot_grouped_bars({"x": {"a": 1.0}}, "y"))
    before = (nb.folder / "bars.png").read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        nb.figure("bars", BrokenFigure())
    assert (nb.folder / "bars.png").read_bytes() == before
    assert sorted(p.name for p in nb.folder.iterdir()) == ["bars.png"]


@pytest.mark.parametrize("name", ["", "../up", "a/b", ".hidden", "-x", "a..b", "sp ace", None])
def test_bad_names_are_refused_before_anything_is_written(tmp_path, name):
    nb = session(tmp_path)
    with pytest.raises(ValueError, match="not a plain file name"):
        nb.json(name, {})
    with pytest.raises(ValueError, match="not a plain file name"):
        Session(name, figures_dir=tmp_path / "other")
    assert list(nb.folder.iterdir()) == [] and not (tmp_path / "other").exists()


def test_a_suffix_in_the_name_is_refused(tmp_path):
    nb = session(tmp_path)
    with pytest.raises(ValueError, match="already ends with '.png'"):
        nb.figure("bars.png", plot_grouped_bars({"x": {"a": 1.0}}, "y"))
    with pytest.raises(ValueError, match="already ends with '.json'"):
        nb.json("numbers.JSON", {})
    assert check_name("point_coef=0.1") == "point_coef=0.1"


def test_parameters_are_checked_by_name(tmp_path):
    with pytest.raises(ValueError, match="scale must be one of"):
        session(tmp_path, scale="huge")
    with pytest.raises(ValueError, match="parameter epochs must be a non-negative number, got -1"):
        session(tmp_path, epochs=-1)
    with pytest.raises(ValueError, match="parameter num_pairs must be a non-negative number"):
        session(tmp_path).check(num_pairs=float("nan"))


def test_config_carries_the_session_settings(tmp_path):
    nb = session(tmp_path, epochs=2, steps_per_epoch=3, seed=5, data_roots={"sintel": "/data/sintel"})
    cfg = nb.config("vicreg", {"loss.vicreg_cov": 4.0})
    assert (cfg.train.method, cfg.train.epochs, cfg.train.steps_per_epoch, cfg.train.seed) == ("vicreg", 2, 3, 5)
    assert cfg.loss.vicreg_cov == 4.0 and cfg.data.roots == {"sintel": "/data/sintel"}
    assert session(tmp_path).config("m-jepa").train.epochs == preset("tiny").train.epochs  # None: the preset's


def test_run_reuses_a_finished_run_in_runs_dir(tmp_path, capsys):
    nb = session(tmp_path, epochs=1, steps_per_epoch=2)
    cfg = nb.config("m-jepa")
    folder = run_dir(cfg, tmp_path / "runs")
    folder.mkdir(parents=True)
    (folder / "done.json").write_text(json.dumps({"steps": cfg.total_steps}))
    assert nb.run(cfg) == folder  # no training: the finished run is found where runs_dir says
    assert "reusing finished run" in capsys.readouterr().out


def test_table_and_markdown_display(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(session_module, "show_markdown", shown.append)
    nb = session(tmp_path)
    nb.table({"M-JEPA": {"epe": 1.23456, "fl": None}, "VICReg": {"miou": 0.5}})
    nb.markdown("**bold**")
    assert shown == ["| | epe | fl | miou |\n|---|---|---|---|\n| M-JEPA | 1.235 | - | - |\n| VICReg | - | - | 0.500 |",
                     "**bold**"]  # columns in order of first appearance, 3 digits, missing values "-"
    assert nb.written == []  # displaying writes nothing


def test_the_session_wraps_one_setting(tmp_path):
    setting = Setting("tiny", seed=3, epochs=2, steps_per_epoch=3, eval_every=5, data_roots={"sintel": "/s"},
                      runs_dir=tmp_path / "runs", figures_dir=tmp_path / "figures", progress=False)
    nb = Session("99_test", setting)
    assert nb.setting is setting and nb.folder == tmp_path / "figures" / "99_test"
    assert session(tmp_path, seed=3, epochs=2, steps_per_epoch=3, eval_every=5, data_roots={"sintel": "/s"},
                   progress=False).setting == setting  # the same setting from the notebooks' keyword arguments
    assert nb.config("m-jepa").train.seed == 3 and setting.replace(seed=4).config("m-jepa").train.seed == 4
    assert setting.runs == tmp_path / "runs" and Setting().runs.name == "runs" and Setting().figures.name == "figures"
    with pytest.raises(TypeError, match="not both"):
        Session("99_test", setting, seed=1)
    with pytest.raises(ValueError, match="parameter eval_every must be a non-negative number"):
        setting.replace(eval_every=-5)
    with pytest.raises(ValueError, match="parameter epochs must be a whole number"):
        Setting(epochs=2.5).config("m-jepa")
    assert not (tmp_path / "elsewhere").exists() and Setting(runs_dir=tmp_path / "elsewhere").runs.name == "elsewhere"
