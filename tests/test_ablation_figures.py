"""mcjepa.viz.ablation: Fig. 5 with mean ± std over seeds, the sweep figure, feature-std curves from point files,
the VC table figure and the claims panels. Points are hand-written JSON (tests/test_ablations.write_point)."""

import numpy as np
import pytest

from mcjepa.viz.ablation import (lowest_std_curve, plot_claims, plot_feature_std, plot_fig5, plot_sweep,
                                 plot_vc_stability, plot_vc_table)
from tests.test_ablations import write_point


def _errorbars(ax):
    """{label: (x, y, half-width of the error bar)} of the errorbar containers on `ax`."""
    out = {}
    for container in ax.containers:
        line, _, bars = container.lines
        x, y = line.get_xdata(), line.get_ydata()
        half = [abs(seg[1][1] - seg[0][1]) / 2 for seg in bars[0].get_segments()] if bars else [0.0] * len(x)
        out[container.get_label()] = (np.asarray(x, float).tolist(), np.asarray(y, float).tolist(), half)
    return out


def test_fig5_panels_draw_means_and_stds_over_seeds(tmp_path):
    for seed, epes in enumerate(((4.0, 3.0, 3.5), (5.0, 3.2, 3.5))):
        for value, epe, miou in zip((0.01, 0.1, 1.0), epes, (0.20, 0.25, 0.10)):
            write_point(tmp_path, "balance", value, epe, miou + 0.02 * seed, seed=seed)
    write_point(tmp_path, "cycle", 0.0, 6.0, 0.3, diverged=True)
    write_point(tmp_path, "cycle", 0.1, 5.0, 0.3)
    fig = plot_fig5(tmp_path)
    top, bottom = fig.axes[:3], fig.axes[3:]
    assert [ax.get_title() for ax in top] == ["5-1: flow start epoch", "5-2: cycle-consistency coefficient",
                                              "5-3: balance coefficient $\\lambda$"]
    assert [ax.get_xlabel() for ax in bottom] == ["flow start epoch", "cycle-consistency coefficient",
                                                  "balance coefficient $\\lambda$"]
    flow_start, cycle, balance = top
    assert "no points yet" in " ".join(t.get_text() for t in flow_start.texts) and not flow_start.get_lines()
    x, y, half = _errorbars(balance)["mean ± std over seeds"]
    assert x == [0.01, 0.1, 1.0] and y == pytest.approx([4.5, 3.1, 3.5])
    assert half == pytest.approx([np.std([4.0, 5.0], ddof=1), np.std([3.0, 3.2], ddof=1), 0.0])
    assert balance.get_ylabel() == "flow EPE (px)" and bottom[2].get_ylabel() == "linear-probe mIoU (%)"
    _, miou, _ = _errorbars(bottom[2])["mean ± std over seeds"]
    assert miou == pytest.approx([21.0, 26.0, 11.0])  # percent
    seeds = [line for line in balance.get_lines() if line.get_label() == "each seed"]
    assert len(seeds) == 1 and len(seeds[0].get_xdata()) == 6  # every seed drawn as a dot
    assert balance.get_xscale() == "symlog" and flow_start.get_xscale() == "linear"
    crosses = [line for line in cycle.get_lines() if line.get_marker() == "x"]
    assert len(crosses) == 1 and crosses[0].get_xdata().tolist() == [0.0]
    assert _errorbars(cycle)["one seed"][1] == [6.0, 5.0]
    assert "tiny scale" in fig._suptitle.get_text() and "1/2 seed(s)" in fig._suptitle.get_text()
    fig.savefig(tmp_path / "fig5.png")


def test_plot_sweep_single_point_and_empty(tmp_path):
    write_point(tmp_path, "flow_start", 1.0, 4.0, 0.2)
    fig = plot_sweep("flow_start", tmp_path)
    assert "1 run" in fig.axes[0].get_title() and len(fig.axes) == 2
    assert _errorbars(fig.axes[0])["one seed"][:2] == ([1.0], [4.0])
    assert _errorbars(fig.axes[1])["one seed"][:2] == ([1.0], [20.0])
    empty = plot_sweep("vc", tmp_path)
    assert "no points yet" in empty.axes[0].texts[0].get_text()
    fig.savefig(tmp_path / "sweep.png")


def test_feature_std_figures_read_the_point_series():
    point = {"feat_std_series": {"0": [[5, 0.1], [10, 0.02], [15, 0.5 / 15]], "1": [[5, 0.3], [10, 0.3], [15, 0.3]]},
             "flow_levels_strides": [32, 16], "diverged_step": 15, "run_dir": "runs/mc-jepa-x"}
    fig = plot_feature_std(point, floor=0.05)
    ax = fig.axes[0]
    data = {line.get_label(): tuple(np.asarray(xy, float).tolist() for xy in line.get_data())
            for line in ax.get_lines()}
    assert data["level 0 (stride 32)"] == ([5.0, 10.0, 15.0], pytest.approx([0.1, 0.02, 0.5 / 15]))
    assert data["level 1 (stride 16)"][1] == [0.3, 0.3, 0.3]
    assert ax.get_yscale() == "log" and "stopped (step 15)" in data and "collapse guard (0.05)" in data
    assert data["VC target $\\gamma$ = 1"][1] == [1.0, 1.0]
    empty = plot_feature_std({})
    assert "no feature std" in empty.axes[0].texts[0].get_text()

    steps, lowest = lowest_std_curve(point)
    assert steps.tolist() == [5.0, 10.0, 15.0] and lowest.tolist() == pytest.approx([0.1, 0.02, 0.5 / 15])
    other = {"value": 0.1, "seed": 0, "feat_std_series": {"0": [[5, 0.6], [10, 0.5]]}}
    stab = plot_vc_stability([{**point, "value": 0.0, "seed": 0, "diverged": True}, other,
                              {**other, "seed": 1}, {"value": 1.0, "feat_std_series": {}}])
    lines = [line for line in stab.axes[0].get_lines() if line.get_linestyle() in ("--", "-")
             and line.get_label() != "VC target $\\gamma$ = 1"]
    assert [line.get_linestyle() for line in lines] == ["--", "-", "-"]  # vc = 0 dashed, one line per seed
    labels = [line.get_label() for line in lines]
    assert labels[:2] == ["vc = 0", "vc = 0.1"] and labels[2].startswith("_")  # one legend entry per value
    low, high = stab.axes[0].get_ylim()
    assert low <= 0.02 / 1.5 + 1e-12 and high >= 1.0  # the common log range keeps the VC target in view


def test_vc_table_figure_highlights_ours(tmp_path):
    fig = plot_vc_table([write_point(tmp_path, "vc", 0.0, 4.56, 0.123)])
    table = fig.axes[0].tables[0]
    cells = table.get_celld()
    assert "vc = 0: pooled" in cells[1, 0].get_text().get_text() and cells[1, 0].get_facecolor()[:3] != (1.0, 1.0, 1.0)
    assert "paper" in cells[2, 0].get_text().get_text()


def test_claims_panels_show_seeds_and_verdict():
    rows = [{"claim": "(i) flow", "measure": "flow EPE (px), embedded", "a": "MC-JEPA", "b": "M-JEPA", "factor": 1.0,
             "a_summary": {"mean": 1.5, "std": 0.1, "n": 3, "values": [1.4, 1.5, 1.6]},
             "b_summary": {"mean": 1.2, "std": 0.1, "n": 3, "values": [1.1, 1.2, 1.3]},
             "p": 0.99, "verdict": "contradicted"},
            {"claim": "(ii) content", "measure": "mIoU (%)", "a": "MC-JEPA", "b": "VICReg", "factor": 100.0,
             "a_summary": {"mean": 0.16, "std": None, "n": 1, "values": [0.16]},
             "b_summary": {"mean": None, "std": None, "n": 0, "values": []}, "p": float("nan"),
             "verdict": "no verdict (n = 1 and 0; 2 per group needed)"}]
    fig = plot_claims(rows)
    first, second = fig.axes[:2]
    assert "contradicted, p = 0.990" in first.get_title() and first.title.get_color() == "#c0392b"
    dots = [line for line in first.get_lines() if line.get_marker() == "o"]
    assert [d.get_ydata().tolist() for d in dots] == [[1.4, 1.5, 1.6], [1.1, 1.2, 1.3]]
    assert "no verdict" in second.get_title() and "p =" not in second.get_title()
    assert [line.get_ydata().tolist() for line in second.get_lines() if line.get_marker() == "o"][0] == [16.0]
    assert all(not ax.axison for ax in fig.axes[2:])


def test_fig5_draws_the_content_references_across_the_miou_panels_only(tmp_path):
    for value, epe, miou in zip((0.01, 0.1, 1.0), (1.4, 1.39, 1.6), (0.46, 0.47, 0.48)):
        write_point(tmp_path, "balance", value, epe, miou)
    references = {"miou": {"raw colour": 0.244, "untrained": 0.436, "supervised": 0.772}}
    fig = plot_fig5(tmp_path, references=references)
    top, bottom = fig.axes[:3], fig.axes[3:]
    for ax in top:  # flow EPE: no content references
        assert not {line.get_label() for line in ax.get_lines()} & set(references["miou"])
    balance = bottom[2]
    drawn = {line.get_label(): line.get_ydata() for line in balance.get_lines()
             if line.get_label() in references["miou"]}
    assert set(drawn) == set(references["miou"])
    for name, value in references["miou"].items():
        assert list(drawn[name]) == pytest.approx([100 * value, 100 * value])  # a horizontal line, in percent
    low, high = balance.get_ylim()
    assert low < 24.4 and high > 77.2  # the floors and the ceiling are inside the panel
    without = plot_fig5(tmp_path).axes[5]
    assert without.get_ylim()[1] < 77.2  # without references the panel spans the points alone
    fig.savefig(tmp_path / "fig5_references.png")
