"""local_cost_volume against a naive loop, its channel order on a hand case, and its gradient."""

import numpy as np
import pytest
import torch

from mcjepa.models.cost_volume import local_cost_volume


def naive_cost_volume(f1: np.ndarray, f2: np.ndarray, radius: int) -> np.ndarray:
    """Loops over b, y, x, dy, dx with explicit zero padding; channel = (dy + r) * (2r + 1) + (dx + r)."""
    batch, channels, height, width = f1.shape
    size = 2 * radius + 1
    out = np.zeros((batch, size * size, height, width))
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                for dy in range(-radius, radius + 1):
                    for dx in range(-radius, radius + 1):
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < height and 0 <= xx < width:
                            value = sum(f1[b, c, y, x] * f2[b, c, yy, xx] for c in range(channels)) / channels
                        else:
                            value = 0.0
                        out[b, (dy + radius) * size + (dx + radius), y, x] = value
    return out


@pytest.mark.parametrize("radius", [1, 3])
def test_matches_naive_loop(radius):
    torch.manual_seed(radius)
    f1, f2 = torch.randn(2, 3, 5, 6), torch.randn(2, 3, 5, 6)
    cost = local_cost_volume(f1, f2, radius)
    assert cost.shape == (2, (2 * radius + 1) ** 2, 5, 6)
    expected = naive_cost_volume(f1.double().numpy(), f2.double().numpy(), radius)
    np.testing.assert_allclose(cost.double().numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("dx,dy", [(2, -1), (-3, 1), (0, 3)])
def test_channel_order_dy_outer_dx_inner(dx, dy):
    """A one-hot feature at (y0, x0) in frame 1 and at (y0 + dy, x0 + dx) in frame 2 peaks at channel
    (dy + r)(2r + 1) + (dx + r) of position (y0, x0), with value 1 / C."""
    radius, channels, y0, x0 = 3, 4, 4, 5
    f1, f2 = torch.zeros(1, channels, 9, 11), torch.zeros(1, channels, 9, 11)
    f1[0, 1, y0, x0] = 1.0
    f2[0, 1, y0 + dy, x0 + dx] = 1.0
    cost = local_cost_volume(f1, f2, radius)
    expected_channel = (dy + radius) * (2 * radius + 1) + (dx + radius)
    assert cost[0, :, y0, x0].argmax().item() == expected_channel
    assert cost[0, expected_channel, y0, x0].item() == pytest.approx(1.0 / channels)
    assert cost.abs().sum().item() == pytest.approx(1.0 / channels)  # nothing anywhere else


def test_unequal_shapes_raise():
    with pytest.raises(ValueError, match="equal shapes"):
        local_cost_volume(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5), 1)


@pytest.mark.parametrize("radius", [1, 2])
def test_gradcheck_float64(radius):
    """Both inputs' gradients (the op has a hand-written backward), window partly outside the image."""
    torch.manual_seed(radius)
    f1 = torch.randn(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    f2 = torch.randn(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: local_cost_volume(a, b, radius), (f1, f2), eps=1e-6, atol=1e-5)


def row_by_row_backward(features1, features2, grad, radius):
    """The backward as first written: one addcmul per shift over (B, C, H, W) windows of the padded map."""
    height, width = features1.shape[-2:]
    padded = torch.nn.functional.pad(features2, [radius] * 4)
    grad = grad / features1.shape[1]
    grad1, grad_padded = torch.zeros_like(features1), torch.zeros_like(padded)
    size = 2 * radius + 1
    for k in range(size * size):
        dy, dx = divmod(k, size)
        g = grad[:, k:k + 1]
        grad1.addcmul_(g, padded[:, :, dy:dy + height, dx:dx + width])
        grad_padded[:, :, dy:dy + height, dx:dx + width].addcmul_(g, features1)
    return grad1, grad_padded[:, :, radius:radius + height, radius:radius + width]


@pytest.mark.parametrize("shape,radius", [((2, 5, 6, 8), 3), ((1, 3, 2, 3), 3), ((3, 4, 7, 5), 2)])
def test_flattened_backward_equals_the_row_by_row_loop_bit_for_bit(shape, radius):
    g = torch.Generator().manual_seed(sum(shape))
    f1 = torch.randn(shape, generator=g).requires_grad_()
    f2 = torch.randn(shape, generator=g).requires_grad_()
    cost = local_cost_volume(f1, f2, radius)
    grad = torch.randn(cost.shape, generator=g)
    got = torch.autograd.grad(cost, (f1, f2), grad)
    want = row_by_row_backward(f1.detach(), f2.detach(), grad, radius)
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert got[1].abs().sum() > 0
