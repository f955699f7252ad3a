"""Figure builders of mcjepa/viz (flow rows, bars, curves, data overview, per-frame scores), the Markdown
table, and the loss-curve grouping of the trainer's metric names."""

import numpy as np
import pytest
import torch

from mcjepa.viz.bars import plot_grouped_bars
from mcjepa.viz.curves import group_loss_keys, plot_dimension_std, plot_loss_curves
from mcjepa.viz.data_overview import DataTour, plot_data_overview
from mcjepa.viz.flow import plot_flow_rows
from mcjepa.viz.segmentation import plot_per_frame_scores


def test_plot_flow_rows_mixed_sizes_epe_titles_and_invalid_pixels():
    gt_a = torch.zeros(2, 12, 16)
    gt_a[0] = 2.0
    gt_b = torch.ones(2, 10, 18)
    valid_b = torch.ones(10, 18, dtype=torch.bool)
    valid_b[:, :4] = False
    pred_b = gt_b + torch.tensor([0.3, 0.4]).view(2, 1, 1)  # EPE 0.5 on valid pixels ...
    pred_b[:, :, :4] += 100.0  # ... and huge where there is no GT: must not count
    rows = [{"name": "a", "frame1": torch.rand(3, 12, 16), "flows": {"m1": gt_a, "m2": gt_a * 0}, "gt": gt_a},
            {"name": "b", "frame1": torch.rand(3, 10, 18), "flows": {"m1": pred_b, "m2": gt_b}, "gt": gt_b,
             "valid": valid_b}]
    fig = plot_flow_rows(rows)
    titles = [ax.get_title() for ax in fig.axes]
    assert "m1\nEPE 0.00 px" in titles and "m2\nEPE 2.00 px" in titles  # |(2, 0) - 0| = 2
    assert "m1\nEPE 0.50 px" in titles and "ground truth\n(black: no GT)" in titles
    gt_panel = fig.axes[5 + 3].images[0].get_array()  # 5 axes a row: image, m1, m2, GT, legend
    assert gt_panel.shape == (10, 18, 3) and (np.asarray(gt_panel)[:, :4] == 0).all()
    with pytest.raises(ValueError):
        plot_flow_rows(rows, flow_names=["m1", "missing"])


def test_plot_grouped_bars_heights_and_missing_values():
    fig = plot_grouped_bars({"EPE": {"model": 1.5, "zero": 3.0}, "Fl": {"model": 10.0, "zero": float("nan")}}, "px")
    heights = sorted(p.get_height() for p in fig.axes[0].patches)
    assert heights == [1.5, 3.0, 10.0]


def test_plot_dimension_std_sorts_the_per_dimension_std():
    gen = torch.Generator().manual_seed(0)
    embeddings = torch.randn(50, 6, generator=gen) * torch.tensor([0.1, 2.0, 0.5, 1.0, 0.0, 3.0])
    fig = plot_dimension_std({"pooled": {"trained": embeddings, "given": torch.tensor([0.2, 0.9])}})
    lines = fig.axes[0].lines
    arr = embeddings.double().numpy()
    expected = []
    for j in range(arr.shape[1]):  # unbiased std of each column, by hand
        mean = sum(arr[:, j]) / arr.shape[0]
        expected.append((sum((v - mean) ** 2 for v in arr[:, j]) / (arr.shape[0] - 1)) ** 0.5)
    np.testing.assert_allclose(lines[0].get_ydata(), sorted(expected, reverse=True), rtol=1e-6)
    np.testing.assert_allclose(lines[1].get_ydata(), [0.9, 0.2], rtol=1e-6)
    assert lines[2].get_ydata()[0] == 1.0  # the gamma line


def test_plot_data_overview_one_row_per_dataset():
    pairs = [{"frame1": torch.rand(3, 8, 8), "frame2": torch.rand(3, 8, 8), "flow": torch.randn(2, 8, 8),
              "valid": torch.ones(8, 8, dtype=torch.bool)}]
    stills = [{"image": torch.rand(3, 8, 8), "label": torch.zeros(8, 8, dtype=torch.long)}]
    fig = plot_data_overview(DataTour({"pairs": pairs, "stills": stills}), {"pairs": 0, "stills": 0}, max_columns=3)
    assert len(fig.axes) == 2 * 3
    assert [ax.get_ylabel() for ax in fig.axes[::3]] == ["pairs", "stills"]
    assert [len(ax.images) for ax in fig.axes] == [1, 1, 1, 1, 1, 0]  # rows cut at 3 panels; stills have 2


def test_plot_per_frame_scores_frame_axis_colours_and_styles():
    fig = plot_per_frame_scores({"object 1": {"J": [0.5, 0.6, 0.7], "F": [0.4, 0.5, 0.6]},
                                 "object 2": {"J": [0.1, 0.2, 0.3], "F": [0.0, 0.1, 0.2]}}, first_frame=2)
    lines = fig.axes[0].lines
    np.testing.assert_array_equal(lines[0].get_xdata(), [2, 3, 4])
    assert [line.get_label() for line in lines] == ["J object 1", "F object 1", "J object 2", "F object 2"]
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()
    assert lines[0].get_linestyle() == lines[2].get_linestyle() != lines[1].get_linestyle()


def test_trainer_metric_names_are_grouped_by_branch():
    names = ["step", "epoch", "flow/rec", "flow/smooth", "flow/total", "flow/occluded_fraction", "feat_std/0",
             "feat_norm/max", "ssl/invariance", "ssl/total", "loss/total", "grad_norm", "lr/encoder", "seconds",
             "val/epe", "val/occ_fraction", "val/occ_recall"]
    groups = group_loss_keys(names)
    assert groups == {"losses": ["loss/total"], "flow losses": ["flow/rec", "flow/smooth", "flow/total"],
                      "content losses": ["ssl/invariance", "ssl/total"], "feature std": ["feat_std/0"],
                      "validation": ["val/epe"],
                      "occlusion": ["flow/occluded_fraction", "val/occ_fraction", "val/occ_recall"],
                      "lr": ["lr/encoder"], "other": ["feat_norm/max", "grad_norm"]}
    rows = [{"step": s, "flow/rec": 1.0 / s, "ssl/total": 2.0 / s, "val/epe": 3.0} for s in (1, 2, 4)]
    fig = plot_loss_curves(rows)
    assert [ax.get_title() for ax in fig.axes] == ["flow losses", "content losses", "validation"]
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "log", "linear"]
