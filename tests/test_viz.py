"""Tests of mcjepa.viz: flow colours, figure builders, and the inspectors' render logic (no browser)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mcjepa.models.warp import resize_flow, warp
from mcjepa.viz.flow_colors import error_map, flow_color_wheel, flow_to_rgb
from mcjepa.viz.bars import plot_grouped_bars
from mcjepa.viz.curves import plot_loss_curves, plot_validation_curves
from mcjepa.report import figure_png, save_figure
from mcjepa.viz.flow import plot_flow_comparison
from mcjepa.viz.segmentation import colorize_labels, label_palette, plot_segmentation, plot_video_segmentation
from mcjepa.viz.data_overview import DataTour
from mcjepa.viz.flow_inspector import FlowInspector
from mcjepa.viz.live import figure_point
from mcjepa.viz.segmentation_inspector import SegmentationInspector

H, W = 24, 32


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def texture(seed=0, batch=1):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 3, 5, 6, generator=g)
    return F.interpolate(low, size=(H, W), mode="bicubic", align_corners=True).clamp(0, 1)


def smooth_flow(scale=1.0):
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    return torch.stack([2 + torch.cos(yy / 5), -1 + torch.sin(xx / 6)]) * scale


# -- flow colours --------------------------------------------------------------------------------------------


def test_flow_to_rgb_directions_zero_and_negative_components():
    flow = torch.zeros(2, 1, 3)
    flow[0, 0, 0] = 1.0   # +u (right)
    flow[0, 0, 1] = -1.0  # -u (left): must NOT look like zero flow (flow_vis clip bug)
    rgb = flow_to_rgb(flow, max_flow=1.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 3, 3)
    assert tuple(rgb[0, 2]) == (255, 255, 255)  # zero flow is white
    right, left = rgb[0, 0].astype(int), rgb[0, 1].astype(int)
    assert right[0] == 255 and right[1] < 60  # Middlebury: +u is red
    assert left[0] < 60 and left[2] > 150  # -u is blue-cyan
    assert np.abs(right - left).sum() > 300


def test_flow_to_rgb_shared_scale_batch_and_non_finite():
    big = smooth_flow(2.0)
    small = big / 2
    pair = torch.stack([big, small])
    rgb = flow_to_rgb(pair)  # shared max over the batch
    assert rgb.shape == (2, H, W, 3)
    sat_big = (255 - rgb[0].astype(int)).sum()
    sat_small = (255 - rgb[1].astype(int)).sum()
    assert sat_small < 0.8 * sat_big  # half the motion looks paler on a shared scale
    # separate calls with their own max would look identical: the shared scale matters
    assert np.array_equal(flow_to_rgb(big), flow_to_rgb(small))
    same = flow_to_rgb(big.numpy(), max_flow=float(big.norm(dim=0).max()))
    assert np.abs(rgb[0].astype(int) - same).max() <= 1  # float32 vs float64 radius: floor may differ by 1
    nan_flow = big.clone()
    nan_flow[:, 0, 0] = float("nan")
    out = flow_to_rgb(nan_flow, max_flow=3.0)
    assert tuple(out[0, 0]) == (255, 255, 255)
    with pytest.raises(ValueError, match="flow must be"):
        flow_to_rgb(torch.zeros(3, 4, 4))


def test_flow_color_wheel_centre_and_outside_white():
    wheel = flow_color_wheel(33)
    assert wheel.shape == (33, 33, 3) and wheel.dtype == np.uint8
    assert tuple(wheel[16, 16]) == (255, 255, 255) and tuple(wheel[0, 0]) == (255, 255, 255)
    assert wheel[16, 31, 0] == 255 and wheel[16, 31, 1] < 60  # right edge (+u) is red


def test_error_map_matches_loop():
    g = torch.Generator().manual_seed(0)
    pred, gt = torch.randn(2, 4, 5, generator=g), torch.randn(2, 4, 5, generator=g)
    ref = np.zeros((4, 5))
    for y in range(4):
        for x in range(5):
            ref[y, x] = math.hypot(pred[0, y, x] - gt[0, y, x], pred[1, y, x] - gt[1, y, x])
    np.testing.assert_allclose(error_map(pred, gt), ref, rtol=1e-5)
    with pytest.raises(ValueError):
        error_map(pred, gt[:, :3])


# -- figures -------------------------------------------------------------------------------------------------


def test_plot_loss_curves_groups_log_scale_and_smoothing():
    records = []
    for step in range(0, 50, 5):
        row = {"step": step, "loss/total": 2.0 / (1 + step), "loss/rec": 1.0 / (1 + step), "lr": 1e-3,
               "feat_std/level0": 0.5, "feat_std/level1": 0.6}
        if step % 10 == 0:
            row["epe/val"] = 3.0  # only on some rows
        records.append(row)
    fig = plot_loss_curves(records, smooth=0.0)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["losses", "feature std", "lr", "other"]
    assert fig.axes[0].get_yscale() == "log" and fig.axes[1].get_yscale() == "linear"
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[3].lines[0].get_xdata()) == 5
    fig = plot_loss_curves([{"step": 0, "loss/total": 1.0}, {"step": 1, "loss/total": 0.0}], smooth=0.5,
                           log_scale=False)
    assert len(fig.axes) == 1
    smoothed = fig.axes[0].lines[1].get_ydata()  # raw then smoothed
    np.testing.assert_allclose(smoothed, [1.0, 0.25 / 0.75])  # hand-computed bias-corrected EMA
    with pytest.raises(ValueError):
        plot_loss_curves([])


def test_plot_validation_curves_core_seconds_own_colours_log_axis_and_references():
    curves = {f"run {i}": [{"step": 50, "val/epe": 2.0 - 0.01 * i}, {"step": 100, "loss": 1.0},
                           {"step": 150, "val/epe": float("nan")}, {"step": 200, "val/epe": 1.0}] for i in range(12)}
    curves["no validation"] = [{"step": 50, "loss": 1.0}]
    timing = {f"run {i}": 0.5 * (i + 1) for i in range(12)}
    fig = plot_validation_curves(curves, {"DIS": 0.9, "zero flow": 2.1}, seconds_per_step=timing, log_x=True)
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_label().startswith("run ")]
    assert len(lines) == 12  # the curve without the key is left out
    for i, line in enumerate(lines):  # x = step x the run's seconds per step; the NaN and key-less rows dropped
        assert np.allclose(line.get_xdata(), [50 * timing[f"run {i}"], 200 * timing[f"run {i}"]])
        assert np.allclose(line.get_ydata(), [2.0 - 0.01 * i, 1.0])
    assert len({line.get_color() for line in lines}) == 12  # beyond tab10's 10 colours, still one colour each
    legend = ax.get_legend()
    assert legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # beside the axes, not over the curves
    assert ax.get_xscale() == "log" and "core-seconds" in ax.get_xlabel()
    references = {line.get_label(): line.get_ydata()[0] for line in ax.get_lines() if "(" in line.get_label()}
    assert references == {"DIS (0.90)": 0.9, "zero flow (2.10)": 2.1}
    linear = plot_validation_curves({"run 0": curves["run 0"]}, {}).axes[0]
    assert linear.get_xscale() == "linear" and linear.get_xlabel() == "training step"  # no timing: steps
    with pytest.raises(ValueError, match="val/epe"):
        plot_validation_curves({"no validation": curves["no validation"]}, {})


def test_plot_flow_comparison_layout_titles_and_shared_scale():
    frames = texture(0, batch=2)
    gt = torch.stack([smooth_flow(), smooth_flow(-1.0)])
    preds = {"a": gt + 0.5, "b": gt * 0.5}
    fig = plot_flow_comparison(frames, frames, preds, gt, occlusion=torch.zeros(2, H, W, dtype=torch.bool))
    assert len(image_axes(fig)) == 2 * (2 + 2 + 1 + 1) + 2  # panels per row + wheel legend per row
    titles = [ax.get_title() for ax in fig.axes]
    epe_a = float(np.mean([math.hypot(0.5, 0.5)]))  # constant offset (0.5, 0.5)
    assert f"a\nEPE {epe_a:.2f} px" in titles
    epe_b0 = float((gt[0] * 0.5).norm(dim=0).mean())
    assert f"b\nEPE {epe_b0:.2f} px" in titles
    # pred "b" (row 0) is drawn on the GT's scale, not its own
    radius = float(gt[0].norm(dim=0).max())
    shown = fig.axes[3].images[0].get_array()
    assert np.array_equal(np.asarray(shown), flow_to_rgb(gt[0] * 0.5, max_flow=radius))
    fig = plot_flow_comparison(frames[0], None, {"only": gt[0]}, epe={"only": 1.234})
    assert "only\nEPE 1.23 px" in [ax.get_title() for ax in fig.axes]
    # pixels without GT: black on the GT panel and out of the EPE (as in plot_flow_rows: one builder)
    valid = torch.ones(H, W, dtype=torch.bool)
    valid[:, :5] = False
    far = gt[0].clone()
    far[:, :, :5] += 100.0
    fig = plot_flow_comparison(frames[0], None, {"far": far}, gt[0], valid=valid)
    titles = [ax.get_title() for ax in fig.axes]
    assert "far\nEPE 0.00 px" in titles and "ground truth\n(black: no GT)" in titles
    gt_panel = np.asarray(fig.axes[2].images[0].get_array())
    assert (gt_panel[:, :5] == 0).all() and (gt_panel[:, 5:] > 0).any()
    with pytest.raises(ValueError, match="error_of"):
        plot_flow_comparison(frames[0], None, {"a": gt[0]}, gt[0], error_of="zzz")


def test_plot_segmentation_palette_and_legend():
    gt = torch.zeros(H, W, dtype=torch.long)
    gt[5:15, 5:15] = 2
    gt[0] = 255
    pred = gt.clone()
    pred[5:15, 5:10] = 1
    fig = plot_segmentation(texture()[0], pred, gt, ["bg", "cat", "dog"])
    axes = image_axes(fig)
    assert len(axes) == 3
    palette = label_palette()
    shown_pred = np.asarray(axes[1].images[0].get_array())
    assert tuple(shown_pred[6, 6]) == tuple(palette[1]) and tuple(shown_pred[6, 12]) == tuple(palette[2])
    assert tuple(colorize_labels(gt)[0, 0]) == (200, 200, 200)
    legend = [t.get_text() for t in axes[-1].get_legend().get_texts()]
    assert legend == ["ignore", "bg", "cat", "dog"]
    # hand-computed mIoU over classes present: bg 1, cat 0, dog 50/100
    assert "mIoU 0.50" in axes[1].get_title()


def test_plot_video_segmentation_clips_frame_ids():
    frames = texture(batch=30).expand(30, 3, H, W)
    masks = torch.zeros(30, H, W, dtype=torch.long)
    masks[:, 4:10, 4:10] = 1
    fig = plot_video_segmentation(frames, {"gt": masks, "pred": masks}, frame_ids=(0, 9, 24, 49, 99))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["frame 1", "frame 10", "frame 25", "frame 30"]
    assert len(image_axes(fig)) == 8
    overlay = np.asarray(fig.axes[0].images[0].get_array())
    assert np.allclose(overlay[0, 0], frames[0, :, 0, 0].numpy(), atol=1e-6)  # background untouched
    assert not np.allclose(overlay[6, 6], frames[0, :, 6, 6].numpy(), atol=1e-2)  # object tinted


def test_save_figure_atomic_creates_dirs_small_png(tmp_path):
    fig = plot_grouped_bars({"x": {"a": 1.0, "b": 2.0}}, "y")
    path = save_figure(fig, tmp_path / "deep" / "dir" / "fig.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 200_000
    assert sorted(p.name for p in path.parent.iterdir()) == ["fig.png"]  # no temp file left
    with pytest.raises(ValueError):
        save_figure(fig, tmp_path / "deep" / "dir" / "fig.notaformat")
    assert sorted(p.name for p in path.parent.iterdir()) == ["fig.png"]


# -- widgets -------------------------------------------------------------------------------------------------


def make_pairs():
    pairs = []
    for i in range(2):
        frame1 = texture(i)
        flow = smooth_flow()[None]
        frame2 = warp(frame1, -flow, padding_mode="border")
        occ = torch.zeros(H, W, dtype=torch.bool)
        occ[2:6, 20:28] = True
        pairs.append({"frame1": frame1[0], "frame2": frame2[0], "flow": flow[0], "valid": torch.ones(H, W, dtype=bool),
                      "occlusion": occ, "name": f"pair{i}"})
    return pairs


class FakeFlowModel:
    """predict_fn stand-in: flows = `gain` x GT of pair 0 at 3 pyramid levels; records its calls. With
    `with_cost_bw`, a backward cost volume (arange reversed: peak at the top-left corner) too."""

    def __init__(self, with_cost=True, with_occ=True, with_cost_bw=False, gain=0.8):
        self.calls, self.cost_calls = 0, []
        self.with_cost, self.with_occ, self.with_cost_bw, self.gain = with_cost, with_occ, with_cost_bw, gain

    def __call__(self, frame1, frame2):
        self.calls += 1
        full = smooth_flow()[None] * self.gain
        levels = [resize_flow(full, (H // s, W // s)) for s in (4, 2, 1)]
        out = {"flows_fw": levels, "flows_bw": [-lv for lv in levels], "flow_fw": full, "flow_bw": -full}
        if self.with_occ:
            occ = torch.zeros(1, 1, H, W)
            occ[..., :, :4] = 1
            out["occlusion_fw"] = occ
        if self.with_cost:
            def cost(level, y, x):
                self.cost_calls.append((level, y, x))
                return np.arange(81, dtype=np.float32).reshape(9, 9)
            out["cost_volume_fn"] = cost
        if self.with_cost_bw:
            out["cost_volume_bw_fn"] = lambda level, y, x: np.arange(81, dtype=np.float32)[::-1].reshape(9, 9)
        return out


def test_flow_inspector_every_state_and_caching():
    model = FakeFlowModel()
    inspector = FlowInspector(make_pairs(), model)
    for pair_index in range(2):
        for level in (-1, 0, 1, 2):
            for direction in ("fw", "bw"):
                for view in FlowInspector.VIEWS:
                    p = inspector.compute_panels(pair_index, level, direction, view, x=10, y=7)
                    assert p["view_kind"] in ("rgb", "scalar", "mask", "message")
                    expected = (H, W) if level == -1 else (H // (4, 2, 1)[level], W // (4, 2, 1)[level])
                    assert p["flow"].shape == (2, *expected)
                    if p["view_kind"] != "message":
                        assert p["view"].shape[:2] == expected
    assert model.calls == 2  # one prediction per pair, cached
    for view in FlowInspector.VIEWS:
        fig = inspector.render(0, -1, "fw", view, x=10, y=7)
        assert len([ax for ax in fig.axes[:4] if ax.images or ax.texts]) == 4  # ref, target, view, cost volume
    no_cost = FlowInspector(make_pairs(), FakeFlowModel(with_cost=False))
    assert no_cost.compute_panels(0)["cost_volume"] is None
    assert len(image_axes(no_cost.render(0, -1, "fw", "flow"))) == 4  # ref, target, flow, wheel legend
    with pytest.raises(ValueError):
        inspector.compute_panels(0, level=7)


def test_flow_inspector_warped_and_errors_match_independent_computation():
    pairs = make_pairs()
    inspector = FlowInspector(pairs, FakeFlowModel())
    flow = smooth_flow()[None] * 0.8
    p = inspector.compute_panels(0, -1, "fw", "warped image")
    expected = warp(pairs[0]["frame2"][None], flow)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(p["view"], np.clip(expected, 0, 1), atol=1e-6)
    p = inspector.compute_panels(0, -1, "bw", "warped image")
    expected = warp(pairs[0]["frame1"][None], -flow)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(p["view"], np.clip(expected, 0, 1), atol=1e-6)
    p = inspector.compute_panels(0, -1, "fw", "photometric error")
    err = (warp(pairs[0]["frame2"][None], flow) - pairs[0]["frame1"][None]).abs().mean(1)[0].numpy()
    finite = np.isfinite(p["view"])
    assert finite.mean() > 0.8
    np.testing.assert_allclose(p["view"][finite], err[finite], atol=1e-6)
    p = inspector.compute_panels(0, -1, "fw", "EPE error map")
    np.testing.assert_allclose(p["view"], (0.2 * smooth_flow()).norm(dim=0).numpy(), rtol=1e-5)
    assert inspector.compute_panels(0, -1, "bw", "EPE error map")["view_kind"] == "message"
    # the shared colour scale is the GT's max radius
    assert p["max_flow"] == pytest.approx(float(smooth_flow().norm(dim=0).max()), rel=1e-5)


def test_flow_inspector_occlusion_sources_and_cost_volume_coordinates():
    pairs = make_pairs()
    model = FakeFlowModel()
    inspector = FlowInspector(pairs, model)
    p = inspector.compute_panels(0, -1, "fw", "occlusion")
    assert p["view_kind"] == "mask" and p["view"][:, :4].all() and not p["view"][:, 4:].any()
    assert "predicted" in p["title"]
    gt_only = FlowInspector(pairs, FakeFlowModel(with_occ=False))
    p = gt_only.compute_panels(0, -1, "fw", "occlusion")
    assert "GT" in p["title"] and np.array_equal(p["view"], pairs[0]["occlusion"].numpy())
    assert gt_only.compute_panels(0, -1, "bw", "occlusion")["view_kind"] == "message"
    p = inspector.compute_panels(0, 0, "fw", "flow", x=W - 1, y=H - 1)  # level 0 is (H/4, W/4)
    assert model.cost_calls[-1] == (0, H // 4 - 1, W // 4 - 1) and p["point"] == (W // 4 - 1, H // 4 - 1)
    inspector.compute_panels(0, -1, "fw", "flow", x=0, y=0)
    assert model.cost_calls[-1] == (2, 0, 0)  # full res reads the finest level
    fig = inspector.render(0, 1, "fw", "flow", x=5, y=5)
    assert "argmax offset (4, 4)" in fig.axes[3].get_title()  # arange(81) peaks at the bottom-right corner


def make_seg_samples():
    label = torch.zeros(H, W, dtype=torch.long)
    label[4:12, 4:12] = 1
    label[14:20, 18:28] = 2
    label[0] = 255
    frames = texture(batch=5)
    masks = torch.zeros(5, H, W, dtype=torch.long)
    for t in range(5):
        masks[t, 5:10, 5 + t:10 + t] = 1
    return [{"image": texture()[0], "label": label, "name": "still"},
            {"frames": frames, "masks": masks, "name": "video"}]


def seg_predict(sample):
    if "frames" in sample:
        return sample["masks"]
    pred = sample["label"].clone()
    pred[4:12, 4:8] = 2  # half of class 1 predicted as 2
    return pred[None]


def test_segmentation_inspector_class_picker_and_frames():
    samples = make_seg_samples()
    inspector = SegmentationInspector(samples, seg_predict, ["bg", "cat", "dog"])
    all_classes = inspector.compute_panels(0, -1)
    assert all_classes["pred_highlight"] is None and all_classes["pred"].shape == (H, W)
    cat, dog = inspector.compute_panels(0, 1), inspector.compute_panels(0, 2)
    assert cat["pred_highlight"].sum() == 32 and cat["gt_highlight"].sum() == 64
    assert cat["iou"] == pytest.approx(32 / 64)
    assert dog["iou"] == pytest.approx(60 / 92)
    assert not np.array_equal(cat["pred_highlight"], dog["pred_highlight"])
    fig_cat, fig_dog = inspector.render(0, 1), inspector.render(0, 2)
    shown_cat = np.asarray(image_axes(fig_cat)[1].images[0].get_array())
    shown_dog = np.asarray(image_axes(fig_dog)[1].images[0].get_array())
    assert not np.allclose(shown_cat, shown_dog)
    assert "IoU 0.50" in image_axes(fig_cat)[1].get_title()
    assert len(image_axes(inspector.render(0, -1))) == 3
    video = SegmentationInspector(samples, seg_predict)
    f2 = video.compute_panels(1, 1, frame=2)
    assert f2["frame"] == 2 and f2["pred_highlight"][5:10, 7:12].all() and f2["iou"] == 1.0
    assert video.compute_panels(1, -1, frame=99)["frame"] == 4
    assert [name for name, _ in video.class_options(1)] == ["all", "background", "object 1"]


def test_data_tour_panels_follow_sample_keys():
    pairs = make_pairs()
    seg = make_seg_samples()
    tour = DataTour({"pairs": pairs, "images": seg[:1], "videos": seg[1:]})
    titles = [t for t, _, _ in tour.compute_panels("pairs", 0)["panels"]]
    assert titles[:2] == ["frame1", "frame2"] and titles[2].startswith("flow") and len(titles) == 5
    assert [t for t, _, _ in tour.compute_panels("images", 0)["panels"]] == ["image", "label"]
    video_titles = [t for t, _, _ in tour.compute_panels("videos", 0)["panels"]]
    assert video_titles == [f"frames[{t}] + masks" for t in (0, 1, 3, 4)]
    assert len(image_axes(tour.render("pairs", 1))) == 5
    with pytest.raises(ValueError, match="unknown dataset"):
        tour.compute_panels("nope")


def test_widgets_construct_and_rerender_on_change():
    import ipywidgets

    inspector = FlowInspector(make_pairs(), FakeFlowModel())
    seg = SegmentationInspector(make_seg_samples(), seg_predict)
    tour = DataTour({"pairs": make_pairs()})
    calls = []
    for obj in (inspector, seg, tour):
        original = obj.render
        obj.render = lambda _orig=original, **state: calls.append(state) or _orig(**state)
        box = obj.widget()
        assert isinstance(box, ipywidgets.VBox)
    before = len(calls)
    slider = box.children[0].children[1]  # DataTour's index slider
    slider.value = 1
    assert len(calls) == before + 1 and calls[-1]["index"] == 1


# -- inspector fixes (issue 12) ------------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    import io

    from PIL import Image

    return Image.open(io.BytesIO(data)).size


def test_flow_cost_volume_follows_the_direction():
    inspector = FlowInspector(make_pairs(), FakeFlowModel(with_cost_bw=True))
    fw, bw = inspector.compute_panels(0, 1, "fw", "flow"), inspector.compute_panels(0, 1, "bw", "flow")
    assert (
        fw["cost_volume_title"] == "cost volume fw (level 1)" and bw["cost_volume_title"] == "cost volume bw (level 1)"
    )
    assert not np.array_equal(fw["cost_volume"], bw["cost_volume"])
    assert "argmax offset (-4, -4)" in inspector.render(0, 1, "bw", "flow").axes[3].get_title()
    fw_only = FlowInspector(make_pairs(), FakeFlowModel())  # no backward costs: said so, same layout
    p = fw_only.compute_panels(0, 1, "bw", "flow")
    assert p["cost_volume"] is None and p["cost_volume_title"] == "no bw cost volume"
    fig_fw, fig_bw = fw_only.render(0, 1, "fw", "flow"), fw_only.render(0, 1, "bw", "flow")
    assert [t.get_text() for t in fig_bw.axes[3].texts] == ["no bw cost volume"]
    assert png_size(figure_png(fig_fw, tight=False)) == png_size(figure_png(fig_bw, tight=False))


def test_flow_colour_scale_small_and_zero_flow():
    pairs = make_pairs()
    gt_max = float(smooth_flow().norm(dim=0).max())
    weak = FlowInspector(pairs, FakeFlowModel(gain=0.05)).compute_panels(0, -1, "fw", "flow")
    own = float(np.percentile(np.linalg.norm(0.05 * smooth_flow().numpy(), axis=0), 99))
    assert weak["max_flow"] == pytest.approx(own, rel=1e-4) and weak["max_flow"] < 0.1 * gt_max
    assert "99th pct" in weak["flow_scale"]
    assert weak["view"].min() < 128  # coloured, not white (it would be at the GT's scale: 5 % saturation)
    on_gt_scale = flow_to_rgb(0.05 * smooth_flow(), max_flow=gt_max)
    assert on_gt_scale.min() > 200
    # no GT (bw) and zero flow: no "|f| = 1e-06 px" at the rim
    zero = FlowInspector(pairs, FakeFlowModel(gain=0.0))
    p = zero.compute_panels(0, -1, "bw", "flow")
    assert p["flow_scale"] == "zero flow" and (p["view"] == 255).all()
    legend_text = " ".join(t.get_text() for t in zero.render(0, -1, "bw", "flow").axes[-1].texts)
    assert "zero flow" in legend_text and "1e-06" not in legend_text
    # a flow as strong as the GT keeps the GT's scale (comparable across pairs)
    assert FlowInspector(pairs, FakeFlowModel(gain=0.8)).compute_panels(0)["flow_scale"] == "GT max"


def test_flow_click_on_a_panel_picks_that_pixel():
    inspector = FlowInspector(make_pairs(), FakeFlowModel())
    for level, (x_l, y_l), expected in ((-1, (25, 3), (25, 3)), (1, (4, 9), (round(4 * 31 / 15), round(9 * 23 / 11)))):
        fig = inspector.render(0, level, "fw", "flow", x=10, y=7)
        png = figure_png(fig, tight=False)
        height = png_size(png)[1]
        for panel in (0, 1, 2):
            dx, dy = fig.axes[panel].transData.transform((x_l, y_l))
            hit = figure_point(fig, dx, height - dy)  # browser pixel coordinates: origin top left
            assert hit[0] == panel and hit[1] == pytest.approx(x_l, abs=0.02) and hit[2] == pytest.approx(y_l, abs=0.02)
            assert inspector.click_to_pixel(0, level, hit) == expected
        dx, dy = fig.axes[3].transData.transform((0, 0))  # the cost volume panel is not an image of the pair
        assert inspector.click_to_pixel(0, level, figure_point(fig, dx, height - dy)) is None
        assert inspector.click_to_pixel(0, level, figure_point(fig, 1, 1)) is None  # the margin


def test_flow_widget_click_sliders_and_pair_size():
    import ipywidgets

    small, large = make_pairs()
    large = {k: (F.interpolate(v[None].float(), size=(40, 60))[0] if torch.is_tensor(v) and v.dim() == 3 else v)
             for k, v in large.items() if k not in ("valid", "occlusion")}
    inspector = FlowInspector([small, large], FakeFlowModel(with_cost=False))
    box = inspector.widget()
    c, live = inspector.controls, inspector.live
    assert (c["x"].max, c["y"].max, c["x"].value, c["y"].value) == (W - 1, H - 1, W // 2, H // 2)
    renders = live.renders
    c["pair_index"].value = 1
    assert (c["x"].max, c["y"].max, c["x"].value, c["y"].value) == (59, 39, 30, 20)  # the pair's size, centred
    assert live.renders == renders + 1  # one redraw for the pair change and the re-centred point
    c["pair_index"].value = 0
    assert (c["x"].max, c["y"].max, c["x"].value, c["y"].value) == (W - 1, H - 1, W // 2, H // 2)
    # a click at PNG pixel coordinates (as ipyevents reports dataX/dataY) moves the point, one redraw
    fig = live.last_figure
    dx, dy = fig.axes[0].transData.transform((5, 17))
    before, renders = live.image.value, live.renders
    inspector.on_image_click({"type": "click", "dataX": dx, "dataY": fig.canvas.get_width_height()[1] - dy})
    assert (c["x"].value, c["y"].value) == (5, 17) and live.renders == renders + 1 and live.image.value != before
    inspector.on_image_click({"type": "click", "dataX": 0, "dataY": 0})  # the margin: nothing happens
    assert (c["x"].value, c["y"].value) == (5, 17) and live.renders == renders + 1
    # the direction label sits in one row with its buttons
    row = box.children[0].children[2]
    assert isinstance(row, ipywidgets.HBox) and row.children[0].value == "direction"
    assert row.children[1] is c["direction"] and not c["direction"].description


def test_segmentation_iou_absent_names_and_stable_size():
    samples = make_seg_samples()
    inspector = SegmentationInspector(samples, seg_predict, ["bg", "cat", "dog", "bird"])
    bird = inspector.compute_panels(0, 3)  # in neither map
    assert math.isnan(bird["iou"]) and bird["iou_text"] == "IoU n/a: absent in both"
    assert "IoU n/a: absent in both" in image_axes(inspector.render(0, 3))[1].get_title()
    assert "nan" not in image_axes(inspector.render(0, 3))[1].get_title()
    assert inspector.compute_panels(0, 1)["iou_text"] == "IoU 0.50"
    sizes = {png_size(figure_png(inspector.render(0, c), tight=False)) for c in (-1, 1, 3)}
    assert len(sizes) == 1  # picking a class does not resize the picture
    video = SegmentationInspector(samples[1:], seg_predict)
    assert video.class_name(0, sequence=True) == "background" and video.class_name(2, sequence=True) == "object 2"
    assert len({png_size(figure_png(video.render(0, c, 2), tight=False)) for c in (-1, 0, 1)}) == 1


def test_segmentation_widget_frame_slider_only_for_sequences():
    samples = make_seg_samples()
    stills = SegmentationInspector(samples[:1], seg_predict, ["bg", "cat", "dog"])
    stills.widget()
    assert "frame" not in stills.controls  # no frame slider on still images
    mixed = SegmentationInspector(samples, seg_predict)
    mixed.widget()
    c = mixed.controls
    assert c["frame"].layout.visibility == "hidden"  # sample 0 is a still
    renders = mixed.live.renders
    c["index"].value = 1
    assert c["frame"].layout.visibility == "visible" and c["frame"].max == 4 and mixed.live.renders == renders + 1
    assert [name for name, _ in c["class_id"].options] == ["all", "background", "object 1"]
    c["class_id"].value = 1
    c["frame"].value = 3
    assert mixed.live.renders == renders + 3
