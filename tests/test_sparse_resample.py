"""Sparse ground truth is resampled by its valid mask (RAFT's sparse resize): the issue's worked case, a
checkerboard-valid u = 10 field scaled by 1.5, gives u = 15 wherever valid, checked against a per-pixel loop."""

import torch

from mcjepa.data.augment import FlowAugment, resize_sparse_flow
from mcjepa.data.offline_sources import resize_flow_with_validity


def checkerboard(height=8, width=8, u=10.0):
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    valid = (ys + xs) % 2 == 0
    flow = torch.zeros(1, 2, height, width)
    flow[:, 0] = torch.where(valid, u, 0.0)  # invalid pixels hold 0, as read_kitti_flow_png returns them
    return flow, valid[None]


def slow_scatter(valid, scale, size):
    """Per-pixel loop: where each valid source pixel centre lands (align_corners=False), rounded half-even."""
    landed = set()
    for y in range(valid.shape[-2]):
        for x in range(valid.shape[-1]):
            if valid[0, y, x]:
                qx, qy = round((x + 0.5) * scale - 0.5), round((y + 0.5) * scale - 0.5)
                if 0 <= qx < size[1] and 0 <= qy < size[0]:
                    landed.add((qy, qx))
    return landed


def test_checkerboard_u10_scaled_by_1_5_is_15_wherever_valid():
    flow, valid = checkerboard()
    out, out_valid = resize_sparse_flow(flow, valid, (12, 12))
    landed = slow_scatter(valid, 1.5, (12, 12))
    assert {tuple(p) for p in out_valid[0].nonzero().tolist()} == landed and len(landed) == 32
    assert (out[0, 0][out_valid[0]] == 15.0).all() and (out[0, 1] == 0).all()
    assert (out[0, 0][~out_valid[0]] == 0).all()
    # the bilinear resampling this replaces blends the invalid zeros in: 15 at only 2 of those 32 pixels
    blended = torch.nn.functional.interpolate(flow, size=(12, 12), mode="bilinear", align_corners=False) * 1.5
    assert (blended[0, 0][out_valid[0]] == 15.0).sum() == 2


def test_sparse_resize_edges_identity_and_all_invalid():
    flow, valid = checkerboard(5, 7)
    same, same_valid = resize_sparse_flow(flow, valid, (5, 7))
    assert torch.equal(same, flow) and torch.equal(same_valid, valid)
    none, none_valid = resize_sparse_flow(flow, torch.zeros_like(valid), (3, 3))
    assert not none_valid.any() and (none == 0).all()
    one, one_valid = resize_sparse_flow(flow, valid, (1, 1))  # everything lands on one pixel: averaged
    assert one_valid.all() and one[0, 0, 0, 0] == 10.0 / 7


def test_flow_augment_scales_sparse_gt_by_its_mask():
    flow, valid = checkerboard(16, 16)
    batch = {"frame1": torch.rand(1, 3, 16, 16), "frame2": torch.rand(1, 3, 16, 16), "flow": flow, "valid": valid}
    for hflip, sign in ((0.0, 1.0), (1.0, -1.0)):
        aug = FlowAugment(crop_size=(12, 12), hflip_p=hflip, scale_range=(1.5, 1.5), jitter_p=0.0)
        out, params = aug(batch, seed=0, return_params=True)
        assert params["scale"].item() == 1.5
        assert out["valid"].sum() == 32  # the 12x12 crop sees 8x8 source pixels, half of them valid
        assert (out["flow"][0, 0][out["valid"][0]] == sign * 15.0).all()
        assert (out["flow"][0, 0][~out["valid"][0]] == 0).all()


def test_offline_area_resize_also_keeps_invalid_zeros_out():
    flow, valid = checkerboard(8, 8)
    out, out_valid = resize_flow_with_validity(flow[0], valid[0], (12, 12))
    assert out_valid.any() and torch.allclose(out[0][out_valid], torch.tensor(15.0))


def test_inspector_epe_view_resamples_sparse_gt_by_its_mask():
    from test_viz import FakeFlowModel, make_pairs

    from mcjepa.viz.flow_inspector import FlowInspector

    pairs = make_pairs()
    pair = dict(pairs[0])
    height, width = pair["flow"].shape[-2:]
    flow, valid = checkerboard(height, width)
    pair["flow"], pair["valid"] = flow[0], valid[0]
    inspector = FlowInspector([pair], FakeFlowModel())
    out = inspector.compute_panels(0, level=0, view="EPE error map")
    size = out["level_size"]
    expected_flow, expected_valid = resize_sparse_flow(flow, valid, size)
    error = (torch.from_numpy(out["flow"]) - expected_flow[0]).norm(dim=0)
    epe = torch.from_numpy(out["view"])
    assert torch.equal(torch.isnan(epe), ~expected_valid[0]) and expected_valid.any()
    torch.testing.assert_close(epe[expected_valid[0]], error[expected_valid[0]].to(epe.dtype))
