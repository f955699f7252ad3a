"""The one warp of the kit: exact integer shifts, bilinear against a slow loop, an analytic affine flow,
identity, the inside-image mask, flow resizing, and shape errors."""

import math

import pytest
import torch

from mcjepa.models.warp import inside_image_mask, pixel_grid, resize_flow, upsample_flow2, warp


def constant_flow(u: float, v: float, height: int, width: int, batch: int = 1, dtype=torch.float32) -> torch.Tensor:
    flow = torch.empty(batch, 2, height, width, dtype=dtype)
    flow[:, 0], flow[:, 1] = u, v
    return flow


def slow_bilinear(image: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Independent reference: bilinear sample of image (C, H, W) at (x, y), zero outside the pixel grid."""
    _, height, width = image.shape
    x0, y0 = math.floor(x), math.floor(y)
    value = torch.zeros(image.shape[0], dtype=torch.float64)
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < height and 0 <= xx < width:
                value += wy * wx * image[:, yy, xx].double()
    return value


def test_pixel_grid_is_x_then_y():
    grid = pixel_grid(3, 4)
    assert grid.shape == (1, 2, 3, 4)
    assert grid[0, 0, 2, 3] == 3 and grid[0, 1, 2, 3] == 2  # channel 0 = column, channel 1 = row


# "Exact" below means up to the rounding of kornia's pixel -> [-1, 1] -> pixel coordinate round trip: ~1 ulp of
# the coordinate, i.e. bilinear weights off by ~1e-7 in float32 (measured max 1.2e-7 on [0, 1] images) and
# ~1e-16 in float64. A wrong convention (align_corners=False, half-pixel offsets) gives errors of ~0.1-0.7.
EXACT32, EXACT64 = 1e-6, 1e-12


@pytest.mark.parametrize("dtype,tol", [(torch.float32, EXACT32), (torch.float64, EXACT64)])
def test_zero_flow_is_exact_identity(dtype, tol):
    torch.manual_seed(0)
    image = torch.rand(2, 3, 7, 9, dtype=dtype)
    out = warp(image, torch.zeros(2, 2, 7, 9, dtype=dtype))
    assert out.dtype == dtype
    assert (out - image).abs().max() <= tol


@pytest.mark.parametrize("u,v", [(2, 1), (-3, 2), (0, -1)])
def test_integer_flow_is_exact_shift_on_interior(u, v):
    torch.manual_seed(1)
    height, width = 8, 10
    image = torch.rand(1, 3, height, width) + 1.0  # in [1, 2]: a wrong neighbour or a zero is far off
    out = warp(image, constant_flow(u, v, height, width))
    for y in range(height):
        for x in range(width):
            if 0 <= y + v < height and 0 <= x + u < width:  # out[y, x] = image[y + v, x + u], exactly
                assert (out[0, :, y, x] - image[0, :, y + v, x + u]).abs().max() <= EXACT32, (y, x)
            else:  # zeros padding outside
                assert out[0, :, y, x].abs().max() <= EXACT32, (y, x)


def test_constant_fractional_flow_matches_slow_bilinear_loop():
    torch.manual_seed(2)
    height, width, u, v = 6, 7, 0.3, -0.6
    image = torch.rand(1, 2, height, width)
    out = warp(image, constant_flow(u, v, height, width))
    for y in range(height):
        for x in range(width):
            expected = slow_bilinear(image[0], x + u, y + v)
            # tolerance: float32 rounding of the kornia/grid_sample path (coordinates normalised and back)
            assert torch.allclose(out[0, :, y, x].double(), expected, atol=1e-5), (y, x)


def test_affine_flow_on_smooth_image_matches_analytic_transform():
    """Rotation by 20 deg + scale 0.9 about the centre: warp(g, flow)(p) must equal g(A (p - c) + c).

    Bilinear interpolation error of a C^2 function on a unit grid is <= (max|g_xx| + max|g_yy|) / 8; for the
    pattern below that is (0.0106 + 0.0081) / 8 = 0.0023, so the test uses 3e-3. A wrong sign convention
    (rotating the other way, swapping u/v) gives errors ~0.1-0.4.
    """
    height, width = 24, 32
    theta, scale = math.radians(20.0), 0.9

    def g(x, y):
        return 0.5 + 0.25 * torch.sin(0.2 * x + 0.1 * y) + 0.25 * torch.cos(0.15 * y - 0.05 * x)

    grid = pixel_grid(height, width, dtype=torch.float64)
    x, y = grid[:, 0], grid[:, 1]
    cx, cy = (width - 1) / 2, (height - 1) / 2
    ax = scale * (math.cos(theta) * (x - cx) - math.sin(theta) * (y - cy)) + cx
    ay = scale * (math.sin(theta) * (x - cx) + math.cos(theta) * (y - cy)) + cy
    flow = torch.stack([ax - x, ay - y], dim=1).float()
    image = g(x, y).unsqueeze(1).float()  # (1, 1, H, W)
    out = warp(image, flow)[:, 0].double()
    expected = g(ax, ay)
    interior = (ax >= 0) & (ax <= width - 1) & (ay >= 0) & (ay <= height - 1)
    assert interior.float().mean() > 0.6
    error = (out - expected).abs()[interior]
    assert error.max() < 3e-3, error.max()


def test_border_padding_repeats_the_edge():
    image = torch.arange(12.0).view(1, 1, 3, 4)
    out = warp(image, constant_flow(5, 0, 3, 4), padding_mode="border")
    assert torch.allclose(out[0, 0], image[0, 0, :, 3:4].expand(3, 4), atol=1e-5)


def test_inside_image_mask_hand_case():
    flow = torch.zeros(1, 2, 3, 4)
    flow[0, 0, :, 3] = 0.5     # last column pushed right of x = 3 -> outside
    flow[0, 0, 1, 0] = -1.0    # (y=1, x=0) -> x = -1 outside
    flow[0, 1, 0, 1] = -0.01   # (y=0, x=1) -> y < 0 outside
    flow[0, 1, 2, 2] = 0.0     # (y=2, x=2) on the last row stays inside (bound is inclusive)
    flow[0, 0, 0, 2] = 1.0     # (y=0, x=2) -> x = 3 = W - 1 exactly: inside
    expected = torch.tensor([[1, 0, 1, 0],
                             [0, 1, 1, 0],
                             [1, 1, 1, 0]], dtype=torch.float32)
    mask = inside_image_mask(flow)
    assert mask.shape == (1, 1, 3, 4)
    assert torch.equal(mask[0, 0], expected)


def test_resize_flow_rescales_each_axis_by_its_size_ratio():
    flow = constant_flow(2.0, 3.0, 4, 6)
    out = resize_flow(flow, (8, 18))  # H x2, W x3
    assert out.shape == (1, 2, 8, 18)
    assert torch.allclose(out[:, 0], torch.full((1, 8, 18), 6.0))  # u * 18/6
    assert torch.allclose(out[:, 1], torch.full((1, 8, 18), 6.0))  # v * 8/4
    down = resize_flow(constant_flow(4.0, -8.0, 8, 8), (2, 4))
    assert torch.allclose(down[:, 0], torch.full((1, 2, 4), 2.0)) and torch.allclose(
        down[:, 1], torch.full((1, 2, 4), -2.0)
    )


def test_upsample_flow2_doubles_size_and_values():
    torch.manual_seed(3)
    flow = torch.randn(2, 2, 3, 5)
    up = upsample_flow2(flow)
    assert up.shape == (2, 2, 6, 10)
    # corners are kept by align_corners=True interpolation, values doubled
    assert torch.allclose(up[..., 0, 0], 2 * flow[..., 0, 0]) and torch.allclose(up[..., -1, -1], 2 * flow[..., -1, -1])


@pytest.mark.parametrize("x_shape,flow_shape", [
    ((1, 3, 4, 5), (1, 2, 4, 6)),  # spatial mismatch
    ((1, 3, 4, 5), (1, 3, 4, 5)),  # flow with 3 channels
    ((2, 3, 4, 5), (1, 2, 4, 5)),  # batch mismatch
])
def test_warp_bad_shapes_raise(x_shape, flow_shape):
    with pytest.raises(ValueError, match="warp"):
        warp(torch.zeros(x_shape), torch.zeros(flow_shape))
