"""mcjepa.eval.compare: datasets per scale, the untrained baseline run, evaluation routing, paper-table rows,
our tables and bar charts. `evaluate_run` is replaced by a fake where real evaluation is not the point."""

import math
import warnings

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
import torch

from mcjepa.eval import compare
from mcjepa.eval import suite
from mcjepa.eval.compare import (
    FLOW_METRICS, PAPER_COLUMNS, STAND_INS, bar_values, class_names, eval_datasets, evaluate_runs, paper_table_rows,
    plot_per_class_iou, results_markdown, untrained_run, zero_flow_results,
)
from mcjepa.eval.tables import FLOW_COLUMNS, SEGMENTATION_COLUMNS
from mcjepa.viz.paper_table import results_table
from mcjepa.experiments import run_config
from mcjepa.models.checkpoint import load_model


def test_eval_datasets_defaults_and_overrides():
    assert eval_datasets("flow", "tiny") == ("embedded", "motorcycle")
    assert eval_datasets("segmentation", "paper") == ("pascal_voc", "cityscapes", "ade20k")
    assert eval_datasets("davis", "paper", ["davis2017"]) == ("davis2017",)
    assert eval_datasets("flow", "paper", "kitti2015") == ("kitti2015",)
    with pytest.raises(ValueError, match="scale"):
        eval_datasets("flow", "huge")
    with pytest.raises(ValueError, match="unknown evaluation task"):
        eval_datasets("depth", "tiny")


def test_column_maps_name_real_paper_columns():
    for task in ("flow", "segmentation", "davis"):
        allowed = FLOW_COLUMNS if task == "flow" else SEGMENTATION_COLUMNS
        assert set(PAPER_COLUMNS[task].values()) <= set(allowed)
        assert set(STAND_INS[task].values()) <= set(allowed)


def test_untrained_run_is_a_loadable_seeded_checkpoint(tmp_path):
    cfg = run_config("tiny", "mc-jepa", {}, epochs=1, steps_per_epoch=2, seed=3)
    state = torch.get_rng_state()
    folder = untrained_run(cfg, tmp_path)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    assert folder.name.startswith("untrained-") and (folder / "config.json").is_file()
    model, loaded = load_model(folder)
    assert loaded.train.seed == 3
    torch.manual_seed(3)
    from mcjepa.models.mcjepa import MCJEPA

    reference = MCJEPA(cfg.model).state_dict()
    assert all(torch.equal(reference[k], v) for k, v in model.state_dict().items())
    stamp = (folder / "checkpoint.pt").stat().st_mtime_ns
    assert untrained_run(cfg, tmp_path) == folder and (folder / "checkpoint.pt").stat().st_mtime_ns == stamp
    other = run_config("tiny", "mc-jepa", {}, epochs=1, steps_per_epoch=2, seed=4)
    assert untrained_run(other, tmp_path) != folder


def test_evaluate_runs_routes_datasets_and_drops_missing_tasks(monkeypatch):
    calls = []

    def fake_evaluate_run(run, tasks, roots=None, progress=True, **kwargs):
        calls.append((run, tasks, roots, kwargs))
        if run == "vicreg-run" and tasks == ("flow",):
            return {}
        return {tasks[0]: {"value": f"{run}/{sorted(kwargs.items())}"}}

    monkeypatch.setattr(suite, "evaluate_run", fake_evaluate_run)
    out = evaluate_runs({"VICReg": "vicreg-run", "MC-JEPA": "mc-run"}, "flow", ["embedded", "motorcycle"],
                        roots={"kitti2015": "/k"}, progress=False)
    assert list(out) == ["MC-JEPA"] and list(out["MC-JEPA"]) == ["embedded", "motorcycle"]
    assert calls[-1] == ("mc-run", ("flow",), {"kitti2015": "/k"}, {"flow_dataset": "motorcycle"})
    evaluate_runs({"a": "r"}, "flow", ["sintel_final"], roots={"sintel": "/s"}, progress=False)
    assert calls[-1][2] == {"sintel": "/s", "sintel_clean": "/s", "sintel_final": "/s"}  # training root reused
    assert compare.eval_roots({"sintel": "/s", "sintel_clean": "/c"})["sintel_clean"] == "/c"  # explicit wins
    evaluate_runs({"a": "r"}, "segmentation", ["pascal_voc"], progress=False)
    assert calls[-1][3] == {"seg_dataset": "pascal_voc"}
    evaluate_runs({"a": "r"}, "davis", ["embedded"], davis_kwargs={"topk": 3}, progress=False)
    assert calls[-1][3] == {"video": "embedded", "davis_kwargs": {"topk": 3}}


def test_zero_flow_results_match_an_independent_mean_magnitude():
    cfg = run_config("tiny", "m-jepa", {}, epochs=1, steps_per_epoch=2)
    res = zero_flow_results(cfg, ["motorcycle"])["motorcycle"]
    from mcjepa.data.offline_sources import MotorcycleStereo

    sample = MotorcycleStereo(scale=0.25)[0]
    magnitude = sample["flow"].double().norm(dim=0)[sample["valid"]]
    assert res["epe"] == pytest.approx(magnitude.mean().item(), rel=1e-9)
    assert res["px1"] == pytest.approx((magnitude < 1).double().mean().item())


RESULTS = {
    "M-JEPA": {"embedded": {"epe": 3.0, "fl": 20.0}, "motorcycle": {"epe": 9.5, "fl": 50.0}},
    "MC-JEPA": {"embedded": {"epe": 2.5, "fl": 15.0}, "motorcycle": {"epe": float("nan")}},
}


def test_paper_table_rows_tiny_stand_ins_and_paper_columns():
    rows = paper_table_rows(RESULTS, "flow", "tiny")
    assert rows == {
        "ours (tiny): M-JEPA [Sintel clean col. = embedded, KITTI-15 col. = motorcycle]": {
            "sintel_clean_train": 3.0,
            "kitti2015_train_epe": 9.5,
            "backbone": "ConvNeXt (tiny)",
        },
        "ours (tiny): MC-JEPA [Sintel clean col. = embedded]": {
            "sintel_clean_train": 2.5,
            "backbone": "ConvNeXt (tiny)",
        },
    }
    md, _ = results_table(rows, kind="flow")
    assert "**3.00**" in md and "**9.50**" in md and "**ConvNeXt (tiny)**" in md
    assert paper_table_rows({"zero": RESULTS["M-JEPA"]}, "flow", "tiny", {"zero": "-"})[
        "ours (tiny): zero [Sintel clean col. = embedded, KITTI-15 col. = motorcycle]"]["backbone"] == "-"
    seg = paper_table_rows({"VICReg": {"pascal_voc": {"miou": 0.412}, "embedded": {"miou": 0.9}}}, "segmentation",
                           "paper")
    assert seg == {"ours (paper): VICReg": {"voc_linear": pytest.approx(41.2), "backbone": "ConvNeXt (paper)"}}
    dav = paper_table_rows({"MC-JEPA": {"embedded": {"JF_mean": 0.5}}}, "davis", "tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # percent, so no "values look like fractions" warning
        md, _ = results_table(dav, kind="segmentation")
    assert "**50.0**" in md and "DAVIS-17 col. = embedded" in md
    assert paper_table_rows({"x": {"motorcycle": {"epe": 1.0}}}, "flow", "paper") == {}


def test_results_markdown_and_bar_values():
    md = results_markdown(RESULTS, FLOW_METRICS[:3])
    lines = md.splitlines()
    assert lines[0] == "| method | dataset | EPE (px) | Fl (%) | <1 px (%) |"
    assert lines[2] == "| M-JEPA | embedded | 3.00 | 20.0 | - |"
    assert lines[5] == "| MC-JEPA | motorcycle | - | - | - |"
    one_metric = bar_values(RESULTS, [("epe", "EPE", 1)])
    assert list(one_metric) == ["embedded", "motorcycle"]
    assert one_metric["motorcycle"]["M-JEPA"] == 9.5 and math.isnan(one_metric["motorcycle"]["MC-JEPA"])
    davis = bar_values(
        {"A": {"embedded": {"J_mean": 0.2, "F_mean": 0.4}}}, [("J_mean", "J", 100), ("F_mean", "F", 100)]
    )
    assert davis == {"J": {"A": pytest.approx(20.0)}, "F": {"A": pytest.approx(40.0)}}
    both = bar_values(RESULTS, [("epe", "EPE", 1), ("fl", "Fl", 1)])
    assert list(both)[:2] == ["embedded: EPE", "embedded: Fl"]


def test_per_class_iou_heatmap_uses_class_names():
    names = class_names("embedded")
    assert names[0] == "background" and len(names) == 6
    results = {"A": {"embedded": {"per_class_iou": [0.5, None, 0.25, 0, 1, 0.1]}},
               "B": {"embedded": {"per_class_iou": [0.1, 0.2, 0.3, 0.4, 0.5, float("nan")]}},
               "C": {"other": {"per_class_iou": [1.0]}}}
    fig = plot_per_class_iou(results, "embedded")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(names)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A", "B"]  # C has no result on this dataset
    grid = ax.images[0].get_array()
    assert grid.shape == (2, 6) and grid.mask[0, 1] and grid.mask[1, 5]
    assert grid[0].filled(-1).tolist() == pytest.approx([50, -1, 25, 0, 100, 10])
    texts = [t.get_text() for t in ax.texts]
    assert texts[:6] == ["50", "n/a", "25", "0", "100", "10"] and texts[-1] == "n/a"
    small = plot_per_class_iou(results, "embedded", max_classes=3)
    assert small.axes[0].images[0].get_array().shape == (2, 3)
    with pytest.raises(ValueError, match="no method"):
        plot_per_class_iou(results, "ade20k")
    with pytest.raises(ValueError, match="no class names"):
        class_names("imagenet")


def test_results_table_figure_fits_long_labels():
    """viz.paper_table.results_table sizes columns by their text (a long 'ours' label used to be cut off)."""
    label = "ours (tiny): MC-JEPA [Sintel clean col. = embedded, KITTI-15 col. = motorcycle]"
    _, fig = results_table({label: {"sintel_clean_train": 1.0}}, kind="flow")
    table = fig.axes[0].tables[0]
    cells = table.get_celld()
    n_rows = max(r for r, _ in cells)
    assert cells[(n_rows, 0)].get_text().get_text() == label
    method_width, number_width = cells[(0, 0)].get_width(), cells[(0, 6)].get_width()
    assert method_width > 2.5 * number_width  # the label column is as wide as its longest text needs
    assert sum(cells[(0, c)].get_width() for c in range(8)) == pytest.approx(1.0)
    canvas = FigureCanvasAgg(fig)  # the kit's figures are made without pyplot: draw on an Agg canvas
    canvas.draw()
    renderer = canvas.get_renderer()
    text_box = cells[(n_rows, 0)].get_text().get_window_extent(renderer)
    cell_box = cells[(n_rows, 0)].get_window_extent(renderer)
    assert text_box.x0 >= cell_box.x0 - 1 and text_box.x1 <= cell_box.x1 + 1  # the label fits its cell


def test_classical_baselines_store_no_wall_time(monkeypatch):
    """The notebooks commit these numbers: two calls give the same dict (no seconds_per_pair, which differs on
    every run); the metrics are those of classical_flow_results."""
    cfg = run_config("tiny", "m-jepa")
    pytest.importorskip("cv2")
    monkeypatch.setattr(compare, "flow_eval_dataset", lambda name, root, c: [
        {"frame1": torch.rand(3, 24, 32, generator=torch.Generator().manual_seed(i)),
         "frame2": torch.rand(3, 24, 32, generator=torch.Generator().manual_seed(i + 9)),
         "flow": torch.ones(2, 24, 32)} for i in range(2)])
    first = compare.classical_flow_baselines(cfg, ["embedded"])
    assert first == compare.classical_flow_baselines(cfg, ["embedded"])
    for per_dataset in first.values():
        assert "seconds_per_pair" not in per_dataset["embedded"] and math.isfinite(per_dataset["embedded"]["epe"])
