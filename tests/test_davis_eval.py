"""DAVIS J/F against slow references and hand cases; label propagation on one-hot toys and vs a slow step."""

import math

import numpy as np
import pytest
import torch

from mcjepa.eval.davis import (
    db_eval_boundary,
    db_eval_iou,
    disk,
    evaluate_davis,
    evaluate_davis_sequence,
    label_propagation,
    propagate_step,
    seg2bmap,
)


# ------------------------------------------------------------------------------------------------- J
def test_iou_hand_cases_and_void():
    gt = np.zeros((4, 4), bool)
    gt[:2, :2] = True  # 4 px
    pred = np.zeros((4, 4), bool)
    pred[:2, 1:3] = True  # 4 px, overlap 2
    assert db_eval_iou(pred, gt) == pytest.approx(2 / 6)
    void = np.zeros((4, 4), bool)
    void[:, 2] = True  # removes the 2 pred-only pixels in column 2
    assert db_eval_iou(pred, gt, void) == pytest.approx(2 / 4)
    empty = np.zeros((4, 4), bool)
    assert db_eval_iou(empty, empty) == 1.0  # union 0 -> 1
    assert db_eval_iou(pred, empty) == 0.0
    # batched over frames
    assert np.allclose(db_eval_iou(np.stack([pred, empty]), np.stack([gt, empty])), [2 / 6, 1.0])


# ------------------------------------------------------------------------------------------------- F
def slow_bmap(seg):
    h, w = seg.shape
    b = np.zeros_like(seg, dtype=bool)
    for y in range(h):
        for x in range(w):
            if y == h - 1 and x == w - 1:
                continue
            neigh = []
            if x + 1 < w:
                neigh.append(seg[y, x + 1])
            if y + 1 < h:
                neigh.append(seg[y + 1, x])
            if x + 1 < w and y + 1 < h:
                neigh.append(seg[y + 1, x + 1])
            b[y, x] = any(bool(n) != bool(seg[y, x]) for n in neigh)
    return b


def test_seg2bmap_matches_loop():
    rng = np.random.default_rng(0)
    seg = rng.random((9, 12)) > 0.6
    seg[-1, :] = rng.random(12) > 0.5
    seg[-1, -1] = True  # the bottom-right pixel is never a boundary, even when foreground
    assert np.array_equal(seg2bmap(seg), slow_bmap(seg))
    # a filled 3x3 square in 6x6: its boundary is the square's outline plus the pixels just above/left
    sq = np.zeros((6, 6), bool)
    sq[2:5, 2:5] = True
    assert seg2bmap(sq).sum() == slow_bmap(sq).sum() > 0


def test_disk_matches_skimage():
    from skimage.morphology import disk as sk_disk

    for r in (0, 1, 2, 3, 8):
        assert np.array_equal(disk(r), sk_disk(r).astype(bool))


def slow_f(pred, gt, radius):
    """Boundary F with matching by explicit Euclidean distance <= radius (no dilation)."""
    bp = list(zip(*np.nonzero(slow_bmap(pred))))
    bg = list(zip(*np.nonzero(slow_bmap(gt))))
    if not bp and not bg:
        return 1.0
    if not bp or not bg:
        return 0.0

    def matched(a, b):
        return sum(any((y - v) ** 2 + (x - u) ** 2 <= radius * radius for v, u in b) for y, x in a)

    p, r = matched(bp, bg) / len(bp), matched(bg, bp) / len(bg)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


@pytest.mark.parametrize("shift", [0, 1, 2, 3, 5])
def test_boundary_square_shift(shift):
    # 100x100: radius = ceil(0.008 * 141.42) = 2 px
    h = w = 100
    assert math.ceil(0.008 * math.hypot(h, w)) == 2
    gt = np.zeros((h, w), bool)
    gt[30:60, 30:60] = True
    pred = np.zeros((h, w), bool)
    pred[30:60, 30 + shift : 60 + shift] = True
    f = db_eval_boundary(pred, gt)
    assert f == pytest.approx(slow_f(pred, gt, 2))
    if shift <= 2:
        assert f == 1.0  # every boundary pixel lies within the tolerance
    else:
        assert 0.3 < f < 1.0  # left/right edges no longer match, top/bottom still do


def test_boundary_empty_cases_and_pixel_threshold():
    empty = np.zeros((20, 20), bool)
    sq = np.zeros((20, 20), bool)
    sq[5:10, 5:10] = True
    assert db_eval_boundary(empty, empty) == 1.0
    assert db_eval_boundary(empty, sq) == 0.0  # P = 1, R = 0
    assert db_eval_boundary(sq, empty) == 0.0  # P = 0, R = 1
    shifted = np.roll(sq, 3, axis=1)
    assert db_eval_boundary(shifted, sq, bound_th=3) == 1.0  # bound_th >= 1 is in pixels
    assert db_eval_boundary(shifted, sq, bound_th=2) == pytest.approx(slow_f(shifted, sq, 2))
    assert db_eval_boundary(shifted, sq, bound_th=2) < 1.0


# ------------------------------------------------------------------------------------ sequence scoring
def test_sequence_excludes_first_last_and_scores_objects_separately():
    t, h, w = 5, 8, 8
    gt = torch.zeros(t, h, w, dtype=torch.long)
    gt[:, 1:4, 1:4] = 1
    gt[:, 5:7, 4:8] = 2
    gt[:, 0, 0] = 255  # void -> background
    pred = gt.clone()
    pred[pred == 255] = 0
    pred[0] = 0  # first and last frames are wrong but excluded
    pred[-1] = 2
    pred[2, 5:7, 4:6] = 0  # object 2 half missing in frame 2
    res = evaluate_davis_sequence(pred, gt)
    assert res["object_ids"] == [1, 2]
    assert res["J_mean"][0] == 1.0 and res["F_mean"][0] == 1.0
    assert res["J_frames"].shape == (2, 3)
    assert res["J_mean"][1] == pytest.approx((1 + 0.5 + 1) / 3)
    f_obj2 = [db_eval_boundary(pred[i].numpy() == 2, gt[i].numpy() == 2) for i in (1, 2, 3)]
    assert res["F_mean"][1] == pytest.approx(sum(f_obj2) / 3)
    assert res["J_recall"][1] == pytest.approx(2 / 3)  # 0.5 is not > 0.5
    with pytest.raises(ValueError):
        evaluate_davis_sequence(pred[:2], gt[:2])


# ----------------------------------------------------------------------------------------- propagation
def slow_step(ctx_f, ctx_s, tgt_f, radius, topk, temperature):
    n, c, h, w = ctx_f.shape
    k = ctx_s.shape[1]
    out = torch.zeros(k, h, w, dtype=torch.float64)
    for y in range(h):
        for x in range(w):
            cands = []
            for i in range(n):
                for v in range(h):
                    for u in range(w):
                        if abs(v - y) <= radius and abs(u - x) <= radius:
                            sim = float((ctx_f[i, :, v, u] * tgt_f[:, y, x]).sum())
                            cands.append((sim, ctx_s[i, :, v, u].double()))
            kth = sorted((s for s, _ in cands), reverse=True)[min(topk, len(cands)) - 1]
            wsum, acc = 0.0, torch.zeros(k, dtype=torch.float64)
            for s, lab in cands:
                if s >= kth:
                    wgt = math.exp(s / temperature)
                    wsum += wgt
                    acc += wgt * lab
            out[:, y, x] = acc / wsum
    return out


def test_propagate_step_matches_slow_reference():
    g = torch.Generator().manual_seed(0)
    ctx_f = torch.nn.functional.normalize(torch.randn(2, 3, 4, 5, generator=g), dim=1)
    tgt_f = torch.nn.functional.normalize(torch.randn(3, 4, 5, generator=g), dim=1)
    ctx_s = torch.softmax(torch.randn(2, 3, 4, 5, generator=g), dim=1)
    for radius, topk in ((1, 3), (2, 5), (0, 5)):
        got = propagate_step(ctx_f, ctx_s, tgt_f, radius=radius, topk=topk, temperature=0.1, chunk_elements=37)
        ref = slow_step(ctx_f, ctx_s, tgt_f, radius, topk, 0.1)
        assert torch.allclose(got.double(), ref, atol=1e-5), (radius, topk)


def _onehot_feature_fn(num_ids):
    """Frozen 'encoder' at stride 1: one-hot of the segment id encoded in channel 0 of the frame."""

    def fn(frames):
        ids = torch.round(frames[:, 0] * 10).long()
        return torch.nn.functional.one_hot(ids, num_ids).permute(0, 3, 1, 2).float()

    return fn


def _moving_objects_video(t=6, h=20, w=24):
    masks = torch.zeros(t, h, w, dtype=torch.long)
    for i in range(t):
        masks[i, 3:9, 2 + i : 8 + i] = 1  # moves right one pixel per frame
        masks[i, 12 + i // 2 : 17 + i // 2, 14:20] = 2  # moves down every other frame
        masks[i, 0:2, 20:24] = 3
    frames = torch.rand(t, 3, h, w)
    frames[:, 0] = masks.float() / 10
    return frames, masks


def test_propagation_reproduces_onehot_segments_exactly():
    frames, masks = _moving_objects_video()
    pred = label_propagation(_onehot_feature_fn(4), frames, masks[0], n_last_frames=3, radius=3, topk=5)
    assert pred.dtype == torch.long and pred.shape == masks.shape
    assert torch.equal(pred, masks)
    res = evaluate_davis(
        _onehot_feature_fn(4), [{"frames": frames, "masks": masks, "name": "toy"}], progress=False, radius=3
    )
    assert res["J_mean"] == 1.0 and res["F_mean"] == 1.0 and res["JF_mean"] == 1.0 and res["n_objects"] == 3


def test_window_restriction_matters():
    # two objects with IDENTICAL features ("foreground") far apart: only the local window tells them apart
    t, h, w = 4, 12, 30
    masks = torch.zeros(t, h, w, dtype=torch.long)
    masks[:, 3:9, 2:8] = 1
    masks[:, 3:9, 22:28] = 2
    frames = torch.rand(t, 3, h, w)
    frames[:, 0] = (masks > 0).float() / 10  # feature id 1 for both objects
    fn = _onehot_feature_fn(2)
    local = label_propagation(fn, frames, masks[0], radius=2, topk=5)
    assert torch.equal(local, masks)
    global_ = label_propagation(fn, frames, masks[0], radius=w, topk=5)  # a window covering the whole frame
    assert not torch.equal(global_[1:], masks[1:])
    assert (global_[1:][masks[1:] > 0] == masks[1:][masks[1:] > 0]).float().mean() < 0.75


def test_per_object_statistics_decay_bins():
    from mcjepa.eval.davis import _statistics

    # 9 frames: quarter bins are frames [0..2] and [6..8] (edges 0, 2, 4, 6, 8, both ends included)
    v = [1, 1, 0, 0.5, 0.5, 0.5, 0, 0, 0.3]
    mean, recall, decay = _statistics(v)
    assert mean == pytest.approx(sum(v) / 9)
    assert recall == pytest.approx(2 / 9)  # 0.5 is not > 0.5
    assert decay == pytest.approx(2 / 3 - 0.1)
    # 10 frames: edges round(0, 2.25, 4.5, 6.75, 9) = 0, 2, 5, 7, 9 (4.5 rounds up)
    v10 = [0.9, 0.6, 0.3, 0, 0, 0, 0, 0.2, 0.4, 0.6]
    assert _statistics(v10)[2] == pytest.approx(0.6 - 0.4)


def test_propagation_stride2_features_full_height_bands():
    # stride-2 feature grid; bands aligned to even columns keep every feature cell pure, and the bilinear
    # upsampling of one-hot labels across a 1-D boundary is exact, so the masks must come back exactly
    t, h, w = 5, 16, 32
    masks = torch.zeros(t, h, w, dtype=torch.long)
    for i in range(t):
        masks[i, :, 4 + 2 * i : 10 + 2 * i] = 1
        masks[i, :, 20:26] = 2
    frames = torch.rand(t, 3, h, w)
    frames[:, 0] = masks.float() / 10

    def fn(x):
        return torch.nn.functional.avg_pool2d(_onehot_feature_fn(3)(x), 2)

    pred = label_propagation(fn, frames, masks[0], radius=2)
    assert torch.equal(pred, masks)
