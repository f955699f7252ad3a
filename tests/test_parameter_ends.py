"""Label propagation and the linear probe at the ends of their parameters' ranges: a first-frame-only context
(n_last_frames = 0), topk = 1, radius = 0, bound_th = 0, a probe of 0 epochs or batches of 1 work; values
outside are refused with an error naming the parameter."""

import math

import pytest
import torch

from mcjepa.eval.davis import db_eval_boundary, evaluate_davis, label_propagation, propagate_step
from mcjepa.eval.segmentation import LinearProbeConfig, linear_probe_segmentation
from tests.test_davis_eval import _moving_objects_video, _onehot_feature_fn, slow_step
from tests.test_segmentation_eval import _ToySeg


def _identity(frames):
    return frames


def test_first_frame_only_context_propagates_from_frame_0_each_time():
    frames, masks = _moving_objects_video(t=5)
    pred = label_propagation(_onehot_feature_fn(4), frames, masks[0], n_last_frames=0, radius=4, topk=5,
                             normalize_channels=False)
    assert torch.equal(pred, masks)  # objects move <= 4 px from frame 0: each stays within the window
    # hand reference: every frame is propagated from frame 0 alone (no queue), whatever came before
    feats = torch.nn.functional.normalize(_onehot_feature_fn(4)(frames), dim=1)
    seg0 = torch.nn.functional.one_hot(masks[0], 4).permute(2, 0, 1).float()
    for t in range(1, 5):
        soft = slow_step(feats[:1], seg0[None], feats[t], 4, 5, 0.1)
        assert torch.equal(pred[t], soft.argmax(0))


def test_radius_0_keeps_each_cell_on_its_own_position():
    frames, masks = _moving_objects_video(t=4)
    pred = label_propagation(_identity, frames, masks[0], n_last_frames=0, radius=0, topk=5)
    assert all(torch.equal(pred[t], masks[0]) for t in range(4))  # one source per cell: the same cell of frame 0


def test_topk_1_takes_the_single_best_source():
    g = torch.Generator().manual_seed(3)
    ctx_f = torch.nn.functional.normalize(torch.randn(2, 4, 3, 4, generator=g), dim=1)
    tgt_f = torch.nn.functional.normalize(torch.randn(4, 3, 4, generator=g), dim=1)
    ctx_s = torch.softmax(torch.randn(2, 3, 3, 4, generator=g), dim=1)
    got = propagate_step(ctx_f, ctx_s, tgt_f, radius=1, topk=1, temperature=0.1)
    assert torch.allclose(got.double(), slow_step(ctx_f, ctx_s, tgt_f, 1, 1, 0.1), atol=1e-6)
    frames, masks = _moving_objects_video(t=4)
    assert torch.equal(label_propagation(_onehot_feature_fn(4), frames, masks[0], radius=3, topk=1), masks)


@pytest.mark.parametrize("name, value", [("n_last_frames", -1), ("radius", -1), ("radius", 1.5), ("topk", 0),
                                         ("temperature", 0.0), ("temperature", math.inf), ("temperature", -0.1),
                                         ("feature_batch_size", 0)])
def test_propagation_parameters_outside_their_range_are_refused(name, value):
    frames, masks = _moving_objects_video(t=3)
    with pytest.raises(ValueError, match=f"{name} must be"):
        label_propagation(_identity, frames, masks[0], **{name: value})
    with pytest.raises(ValueError, match=f"{name} must be"):
        evaluate_davis(_identity, [{"frames": frames, "masks": masks}], progress=False, **{name: value})


def test_max_sequences_and_bound_th_ends():
    frames, masks = _moving_objects_video(t=4)
    data = [{"frames": frames, "masks": masks, "name": "toy"}]
    assert evaluate_davis(_onehot_feature_fn(4), data, progress=False, radius=3, max_sequences=1)["JF_mean"] == 1.0
    with pytest.raises(ValueError, match="max_sequences must be"):
        evaluate_davis(_onehot_feature_fn(4), data, progress=False, max_sequences=0)
    square = torch.zeros(10, 10, dtype=torch.bool)
    square[3:7, 3:7] = True
    shifted = torch.roll(square, 1, dims=1)
    assert db_eval_boundary(square, square, bound_th=0) == 1.0
    assert db_eval_boundary(shifted, square, bound_th=0) < 1.0  # 0: boundaries must coincide
    assert db_eval_boundary(shifted, square, bound_th=1) == 1.0  # one pixel away is within 1 px
    for bad in (-0.01, math.nan):
        with pytest.raises(ValueError, match="bound_th must be"):
            db_eval_boundary(square, square, bound_th=bad)


def _probe(**settings):
    k = 3
    train, val = _ToySeg(4, k, seed=0), _ToySeg(2, k, seed=1)

    def feature_fn(images):
        cells = torch.round(images[:, 0, 2::4, 2::4] * (k - 1)).long()
        return torch.nn.functional.one_hot(cells, 4).permute(0, 3, 1, 2).float()

    cfg = LinearProbeConfig(progress=False, **settings)
    return linear_probe_segmentation(feature_fn, train, val, num_classes=settings.pop("num_classes", k), cfg=cfg)


def test_probe_ends_work():
    untrained = _probe(epochs=0)
    assert untrained["history"] == [] and 0 <= untrained["miou"] <= 1
    head = untrained["head"]
    assert float(head.bias.detach().abs().max()) == 0.0  # the initial head, as initialised
    one = _probe(epochs=2, batch_size=1, extract_batch_size=1, lr=0.0, weight_decay=0.0)
    assert len(one["history"]) == 2
    assert torch.equal(one["head"].weight, untrained["head"].weight)  # lr 0: the head does not move


@pytest.mark.parametrize("name, value", [("epochs", -1), ("batch_size", 0), ("extract_batch_size", 0),
                                         ("lr", -1e-3), ("lr", math.nan), ("weight_decay", -1.0), ("epochs", 2.5)])
def test_probe_settings_outside_their_range_are_refused(name, value):
    with pytest.raises(ValueError, match=f"{name} must be"):
        _probe(**{name: value})
