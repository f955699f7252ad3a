"""Adapters model -> inspector predict_fn (mcjepa/eval/runners.py), on a tiny untrained model."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mcjepa.config import LossConfig, tiny
from mcjepa.data.synthetic import CLASS_NAMES, SceneConfig, SyntheticSequences, SyntheticStills
from mcjepa.eval.runners import feature_fn, flow_predict_fn, probe_predict_fn, propagation_predict_fn
from mcjepa.eval.segmentation import LinearProbeConfig, confusion_matrix, linear_probe_segmentation
from mcjepa.losses.occlusion import occlusion_mask, range_map_occlusion
from mcjepa.models.flow_head import normalize_features
from mcjepa.models.mcjepa import MCJEPA
from mcjepa.viz.flow_inspector import FlowInspector
from mcjepa.viz.segmentation_inspector import SegmentationInspector


@pytest.fixture(scope="module")
def model():
    """The tiny model with a 4-level flow pyramid (strides 32..4) and random (non-zero) flow outputs, so that
    flows and occlusions are not trivial."""
    torch.manual_seed(0)
    cfg = tiny().model
    cfg.flow.strides = (32, 16, 8, 4)
    net = MCJEPA(cfg).eval()
    with torch.no_grad():
        for estimator in net.flow_head.estimators:
            estimator.to_flow.weight.normal_(0.0, 1e-3)  # flows of ~0.5 px: partly fw-bw consistent
    return net


def frames(height, width, seed=0):
    gen = torch.Generator().manual_seed(seed)
    base = F.avg_pool2d(torch.rand(1, 3, height + 4, width + 4, generator=gen), 5, stride=1)
    return base, torch.roll(base, shifts=(1, 2), dims=(-2, -1))


def test_flow_predict_fn_keys_shapes_and_cropping(model):
    frame1, frame2 = frames(40, 70)  # not multiples of the stride 32 -> padded
    pred = flow_predict_fn(model)(frame1, frame2)
    assert set(pred) == {"flows_fw", "flows_bw", "flow_fw", "flow_bw", "occlusion_fw", "occlusion_bw",
                         "cost_volume_fn", "cost_volume_bw_fn"}
    expected = [(math.ceil(40 / s), math.ceil(70 / s)) for s in model.cfg.flow.strides]
    assert [tuple(f.shape) for f in pred["flows_fw"]] == [(1, 2, *hw) for hw in expected]
    assert [tuple(f.shape) for f in pred["flows_bw"]] == [(1, 2, *hw) for hw in expected]
    assert pred["flow_fw"].shape == pred["flow_bw"].shape == (1, 2, 40, 70)
    assert pred["occlusion_fw"].shape == (1, 1, 40, 70)
    # independent path: replicate-pad by hand, run the model, crop
    pad = lambda x: F.pad(x, [0, 96 - 70, 0, 64 - 40], mode="replicate")  # noqa: E731
    with torch.no_grad():
        out = model.forward_flow(pad(frame1), pad(frame2))
    torch.testing.assert_close(pred["flow_fw"], out.flow_fw[..., :40, :70])
    torch.testing.assert_close(pred["flows_bw"][2], out.flows_bw[2][..., :5, :9])
    # the occlusion is the training's mask on the cropped full-resolution flows, both directions: by default the
    # paper's UnFlow check (capped at half the image), else the run's loss settings
    fw, bw = out.flow_fw[..., :40, :70], out.flow_bw[..., :40, :70]
    torch.testing.assert_close(pred["occlusion_fw"], occlusion_mask(fw, bw, "fb", 0.01, 0.5, max_fraction=0.5))
    torch.testing.assert_close(pred["occlusion_bw"], occlusion_mask(bw, fw, "fb", 0.01, 0.5, max_fraction=0.5))
    assert 0 < pred["occlusion_fw"].mean() < 1  # a mask with both values: the comparison means something
    looser = flow_predict_fn(model, LossConfig(occlusion_alpha1=0.5, occlusion_alpha2=50.0))(frame1, frame2)
    assert looser["occlusion_fw"].sum() < pred["occlusion_fw"].sum()
    ranged = flow_predict_fn(model, LossConfig(occlusion_method="range", occlusion_max_fraction=1.0))
    torch.testing.assert_close(ranged(frame1, frame2)["occlusion_fw"], range_map_occlusion(bw, 0.2))


def test_cost_volume_fn_matches_a_loop_correlation(model):
    frame1, frame2 = frames(64, 96, seed=1)
    pred = flow_predict_fn(model)(frame1, frame2)
    radius = model.cfg.flow.radius
    with torch.no_grad():
        x1 = model.flow_features(frame1)[0][0]  # coarsest level: no warp before the correlation
        x2 = model.flow_features(frame2)[0][0]
        # the model normalises both maps jointly first (model.flow.feature_norm; "center": UFlow's joint moments)
        x1, x2 = (f[0] for f in normalize_features(x1[None], x2[None], model.cfg.flow.feature_norm))
    height, width = x1.shape[-2:]
    for y, x in ((0, 0), (1, 2), (height - 1, width - 1)):
        # fw correlates frame 1 with frame 2 around (y, x); bw (frame 2 against frame 1) swaps them
        for key, (a, b) in (("cost_volume_fn", (x1, x2)), ("cost_volume_bw_fn", (x2, x1))):
            reference = np.zeros((2 * radius + 1, 2 * radius + 1), np.float32)
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    if 0 <= y + dy < height and 0 <= x + dx < width:
                        value = float((a[:, y, x] * b[:, y + dy, x + dx]).mean())
                        reference[dy + radius, dx + radius] = value if value > 0 else 0.1 * value  # leaky ReLU
            np.testing.assert_allclose(pred[key](0, y, x), reference, rtol=1e-4, atol=1e-6)
    assert not np.allclose(pred["cost_volume_fn"](0, 1, 2), pred["cost_volume_bw_fn"](0, 1, 2))
    with pytest.raises(ValueError):
        pred["cost_volume_fn"](0, height, 0)


def test_flow_inspector_runs_on_the_adapter(model):
    frame1, frame2 = frames(40, 70)
    pair = {"frame1": frame1[0], "frame2": frame2[0], "flow": torch.zeros(2, 40, 70), "name": "shifted"}
    inspector = FlowInspector([pair], flow_predict_fn(model))
    assert inspector.num_levels() == 4
    panels = inspector.compute_panels(view="occlusion")
    assert panels["view_kind"] == "mask" and panels["title"].startswith("predicted occlusion fw")
    expected = inspector.cache[0]["occlusion_fw"][0, 0].numpy() > 0.5
    np.testing.assert_array_equal(panels["view"], expected)
    panels = inspector.compute_panels(level=1, direction="bw", view="flow", x=69, y=39)
    assert panels["cost_volume"].shape == (7, 7) and panels["level_size"] == (3, 5)
    assert panels["cost_volume_title"] == "cost volume bw (level 1)"
    assert len(inspector.render(level=2, view="photometric error").axes) >= 4


def test_probe_predict_fn_reproduces_the_probe_confusion(model):
    scene = SceneConfig(height=48, width=64)
    train, val = SyntheticStills(6, seed=0, cfg=scene, split="val"), SyntheticStills(3, seed=0, cfg=scene, split="test")
    features = feature_fn(model, "last")
    probe = linear_probe_segmentation(features, train, val, len(CLASS_NAMES),
                                      LinearProbeConfig(epochs=2, progress=False))
    # the returned standardisation is the train features' per-channel mean/std (computed here directly)
    stacked = torch.cat([features(train[i]["image"][None]) for i in range(len(train))])
    flat = stacked.permute(1, 0, 2, 3).flatten(1).double()
    torch.testing.assert_close(probe["feature_mean"], flat.mean(1).float(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(probe["feature_std"], flat.std(1).float(), rtol=1e-4, atol=1e-5)
    predict = probe_predict_fn(model, probe)
    preds = [predict(val[i]) for i in range(len(val))]
    assert all(p.shape == (48, 64) and p.dtype == torch.int64 for p in preds)
    cm = sum(confusion_matrix(p, val[i]["label"], len(CLASS_NAMES)) for i, p in enumerate(preds))
    torch.testing.assert_close(cm, probe["confusion"])
    with pytest.raises(ValueError):
        probe_predict_fn(model, {"miou": 0.5})
    inspector = SegmentationInspector(val, predict, class_names=CLASS_NAMES)
    assert inspector.compute_panels(0, class_id=1)["iou"] is not None


def test_propagation_predict_fn_starts_from_the_first_mask(model):
    sequence = SyntheticSequences(1, num_frames=4, cfg=SceneConfig(height=48, width=64), split="test")[0]
    masks = propagation_predict_fn(model, n_last_frames=2)(sequence)
    assert masks.shape == (4, 48, 64) and masks.dtype == torch.int64
    torch.testing.assert_close(masks[0], sequence["masks"][0])
    assert set(masks.unique().tolist()) <= set(sequence["masks"][0].unique().tolist()) | {0}
    panels = SegmentationInspector([sequence], propagation_predict_fn(model)).compute_panels(0, frame=3)
    assert panels["pred"].shape == (48, 64) and panels["frame"] == 3
