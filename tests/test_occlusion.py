"""Occlusion estimators: the range map against a slow splatting loop and hand-computed shifts, the cap on the
masked fraction, the mask against the synthetic ground truth, and the trainer's schedule and guard."""

import math

import pytest
import torch

from mcjepa.config import tiny
from mcjepa.losses.occlusion import cap_fraction, occlusion_mask, range_map, range_map_occlusion
from mcjepa.train.trainer import TrainingDiverged, _check_finite, occlusion_enabled


def constant_flow(u, v, height, width):
    flow = torch.empty(1, 2, height, width)
    flow[:, 0], flow[:, 1] = u, v
    return flow


def range_map_loop(flow_bw: torch.Tensor) -> torch.Tensor:
    """Independent reference: every source pixel adds bilinear weights to its 4 target neighbours, one by one."""
    batch, _, height, width = flow_bw.shape
    out = torch.zeros(batch, 1, height, width, dtype=torch.float64)
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                tx, ty = x + flow_bw[b, 0, y, x].item(), y + flow_bw[b, 1, y, x].item()
                for ix in (math.floor(tx), math.floor(tx) + 1):
                    for iy in (math.floor(ty), math.floor(ty) + 1):
                        weight = (1 - abs(tx - ix)) * (1 - abs(ty - iy))
                        if 0 <= ix < width and 0 <= iy < height:
                            out[b, 0, iy, ix] += weight
    return out


def test_range_map_matches_a_splatting_loop():
    flow = torch.randn(2, 2, 7, 9, generator=torch.Generator().manual_seed(0)) * 2.5
    assert torch.allclose(range_map(flow).double(), range_map_loop(flow), atol=1e-5)


def test_range_map_of_zero_and_integer_shifts_by_hand():
    assert torch.equal(range_map(torch.zeros(1, 2, 5, 6)), torch.ones(1, 1, 5, 6))
    # frame 2 pixel x lands on x - 2 in frame 1: the two rightmost columns of frame 1 receive nothing
    occluded = range_map_occlusion(constant_flow(-2.0, 0.0, 4, 8))
    assert torch.all(occluded[..., :6] == 0) and torch.all(occluded[..., 6:] == 1)
    # half a pixel: column 0 gets 0.5 (> 0.2: visible), every other column 0.5 + 0.5; none occluded
    half = range_map(constant_flow(0.5, 0.0, 3, 5))
    assert torch.allclose(half[..., 1:], torch.ones(1, 1, 3, 4))
    assert torch.allclose(half[..., 0], torch.full((1, 1, 3), 0.5))


def test_range_map_marks_few_pixels_where_the_forward_backward_check_marks_all():
    """Inconsistent flows (the state of an untrained network) must not mask the whole image with the range map."""
    gen = torch.Generator().manual_seed(1)
    flow_fw, flow_bw = torch.randn(1, 2, 24, 32, generator=gen) * 3, torch.randn(1, 2, 24, 32, generator=gen) * 0.3
    assert occlusion_mask(flow_fw, flow_bw, "fb").mean() > 0.9
    assert occlusion_mask(flow_fw, flow_bw, "range").mean() < 0.1


def test_cap_fraction_keeps_the_highest_scores():
    score = torch.arange(20.0).view(1, 1, 4, 5)
    occluded = torch.ones(1, 1, 4, 5)
    capped = cap_fraction(occluded, score, 0.25)
    assert capped.sum() == 5 and torch.all(capped.view(-1)[15:] == 1)
    assert torch.equal(cap_fraction(occluded, score, 1.0), occluded)
    assert cap_fraction(occluded, score, 0.0).sum() == 0
    few = torch.zeros(1, 1, 4, 5)
    few.view(-1)[3] = 1  # under the cap: unchanged
    assert torch.equal(cap_fraction(few, score, 0.5), few)


def test_fb_mask_is_capped_per_image():
    flow_fw = constant_flow(4.0, 0.0, 8, 16).repeat(2, 1, 1, 1)
    flow_bw = constant_flow(-2.0, 0.0, 8, 16).repeat(2, 1, 1, 1)
    assert occlusion_mask(flow_fw, flow_bw, "fb").mean() == 1
    capped = occlusion_mask(flow_fw, flow_bw, "fb", max_fraction=0.5)
    assert torch.equal(capped.flatten(1).sum(dim=1), torch.tensor([64.0, 64.0]))


def test_true_flows_give_a_mask_close_to_the_true_occlusion():
    """On the embedded pairs with their exact flows both estimators find most true occlusions."""
    from mcjepa.data.synthetic import SyntheticFlowPairs

    pairs = SyntheticFlowPairs(8, seed=3, split="val")
    for method, min_recall in (("fb", 0.5), ("range", 0.5)):
        hits = masked = truth_total = 0
        for i in range(len(pairs)):
            p = pairs[i]
            mask = occlusion_mask(p["flow"][None], p["flow_bw"][None], method).squeeze().bool()
            truth = torch.as_tensor(p["occlusion"]).bool()
            hits += (mask & truth).sum().item()
            masked += mask.sum().item()
            truth_total += truth.sum().item()
        assert hits / truth_total > min_recall, method
        assert masked < 3 * truth_total, method  # never the degenerate whole-image mask


def test_unknown_occlusion_method_is_refused():
    with pytest.raises(ValueError, match="'fb' or 'range'"):
        occlusion_mask(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), "brox")


def test_occlusion_starts_relative_to_the_flow_start():
    cfg = tiny()
    cfg.train.method, cfg.train.flow_start_epoch, cfg.loss.occlusion_start_epoch = "mc-jepa", 6.0, 1.0
    per_epoch = cfg.train.steps_per_epoch
    assert not occlusion_enabled(cfg, int(6.5 * per_epoch)) and occlusion_enabled(cfg, 7 * per_epoch)
    cfg.train.method = "m-jepa"  # no late flow start: counted from step 0
    assert not occlusion_enabled(cfg, per_epoch - 1) and occlusion_enabled(cfg, per_epoch)


def test_guard_stops_when_the_mask_covers_the_image():
    cfg = tiny()
    cfg.train.max_occluded_fraction = 0.95
    _check_finite({"flow/occluded_fraction": torch.tensor(0.9)}, 3, cfg)
    with pytest.raises(TrainingDiverged, match="step 7: the occlusion mask covers 100.0% .*max_occluded_fraction"):
        _check_finite({"flow/occluded_fraction": torch.tensor(1.0)}, 7, cfg)


def test_a_non_finite_flow_lands_nowhere_instead_of_crashing():
    """A diverging run's NaN flow must reach the trainer's NaN guard, not crash the range map's scatter."""
    flow = torch.zeros(1, 2, 4, 6)
    flow[0, :, 1, 2] = float("nan")
    flow[0, 0, 2, 3] = float("inf")
    counts = range_map(flow)
    assert torch.isfinite(counts).all() and counts.sum() == 4 * 6 - 2
    assert occlusion_mask(flow, flow, "range").shape == (1, 1, 4, 6)
