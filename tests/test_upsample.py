"""Convex upsampling against a per-pixel loop, its zero-initialised start (the 3x3 box average) and its place in
the model (full-size flow, gradients reach the mask head)."""

import pytest
import torch
import torch.nn.functional as F

from mcjepa.config import apply_overrides, tiny
from mcjepa.models.mcjepa import MCJEPA
from mcjepa.models.upsample import ConvexUpsampler


def convex_loop(flow: torch.Tensor, logits: torch.Tensor, factor: int) -> torch.Tensor:
    """Reference: for every fine pixel, softmax over its 9 logits (channel = k * f^2 + fy * f + fx) and the
    weighted sum of the 3x3 coarse neighbours (zero outside), times the factor."""
    batch, _, height, width = flow.shape
    padded = F.pad(flow, [1, 1, 1, 1])
    out = torch.zeros(batch, 2, height * factor, width * factor, dtype=torch.float64)
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                for fy in range(factor):
                    for fx in range(factor):
                        w = torch.stack([logits[b, k * factor * factor + fy * factor + fx, y, x] for k in range(9)])
                        w = torch.softmax(w.double(), dim=0)
                        value = sum(w[k] * padded[b, :, y + k // 3, x + k % 3].double() for k in range(9))
                        out[b, :, y * factor + fy, x * factor + fx] = factor * value
    return out


def test_convex_upsampling_matches_a_per_pixel_loop():
    gen = torch.Generator().manual_seed(0)
    up = ConvexUpsampler(channels=5, factor=2)
    for p in up.parameters():
        p.data = torch.randn(p.shape, generator=gen) * 0.5
    features, flow = torch.randn(2, 5, 3, 4, generator=gen), torch.randn(2, 2, 3, 4, generator=gen)
    logits = 0.25 * up.mask(torch.cat([features, flow], dim=1))
    assert torch.allclose(up(features, flow).double(), convex_loop(flow, logits.detach(), 2), atol=1e-5)


def test_zero_initialised_mask_is_the_box_average():
    up = ConvexUpsampler(channels=3, factor=4)
    flow = torch.randn(1, 2, 5, 6)
    box = 4 * F.avg_pool2d(F.pad(flow, [1, 1, 1, 1]), 3, stride=1, divisor_override=9)
    expected = box.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    assert torch.allclose(up(torch.randn(1, 3, 5, 6), flow), expected, atol=1e-6)


def test_model_with_convex_upsampling_gives_image_size_flow_and_trains_the_mask():
    cfg = apply_overrides(tiny(), {"model.flow.upsample": "convex"}).model
    model = MCJEPA(cfg)
    with torch.no_grad():  # an untrained head outputs zero flow, which gives the mask no gradient
        model.flow_head.estimators[0].to_flow.weight.normal_(0, 0.1)
    frames = torch.rand(2, 3, 32, 64), torch.rand(2, 3, 32, 64)
    out = model.forward_flow(*frames)
    assert out.flow_fw.shape == (2, 2, 32, 64) and out.flows_fw[-1].shape == (2, 2, 8, 16)
    (out.flow_fw * torch.randn_like(out.flow_fw)).sum().backward()
    assert model.upsampler.mask[-1].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="'bilinear' or 'convex'"):
        apply_overrides(tiny(), {"model.flow.upsample": "nearest"})
