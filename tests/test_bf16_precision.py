"""bf16 inputs (the paper preset trains under bf16 autocast on GPUs) at the paper's widths (832 px and more):
every absolute coordinate is computed in float32, so the warp, the inside-image mask, flow resizing, the
occlusion check and the cost volume agree with float32 computations on the same (bf16-representable) values.
In bfloat16 an absolute coordinate like 831 + 0.3 is rounded to a multiple of 4: a wrong pixel sampled."""


import pytest
import torch

from mcjepa.losses.occlusion import forward_backward_occlusion
from mcjepa.models.cost_volume import local_cost_volume
from mcjepa.models.warp import inside_image_mask, resize_flow, warp
from tests.test_warp import slow_bilinear  # the independent bilinear reference (float64 loop)

BF16 = torch.bfloat16
HEIGHT, WIDTHS = 8, (832, 1024)


def _striped(height, width, channels=3):
    """High-frequency image (period ~9 px along x): a coordinate off by 1-2 px changes it by O(1)."""
    x = torch.arange(width, dtype=torch.float64).view(1, 1, 1, width)
    y = torch.arange(height, dtype=torch.float64).view(1, 1, height, 1)
    c = torch.arange(channels, dtype=torch.float64).view(1, channels, 1, 1)
    return (torch.sin(0.7 * x + 0.3 * y + c) * 0.5 + 0.5).expand(1, channels, height, width).contiguous()


def _flow(height, width, seed=0):
    """Fractional flow (|u|, |v| < 3 px), exactly representable in bfloat16."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 2, height, width, generator=generator) * 6 - 3).to(BF16)


@pytest.mark.parametrize("width", WIDTHS)
def test_bf16_warp_samples_where_float32_does(width):
    image = _striped(HEIGHT, width).to(BF16)
    flow = _flow(HEIGHT, width)
    out = warp(image, flow)
    assert out.dtype == BF16
    reference = warp(image.float(), flow.float())  # same values, float32 throughout
    assert (out.float() - reference).abs().max() <= 2 ** -7  # bf16 rounding of values in [0, 1]
    # and against a slow loop at the right end of the row, where bf16 coordinates were multiples of 4
    for x in (width - 5, width - 3):
        u, v = flow[0, 0, 4, x].item(), flow[0, 1, 4, x].item()
        expected = slow_bilinear(image[0].double(), x + u, 4 + v)
        assert torch.allclose(out[0, :, 4, x].double(), expected, atol=2 ** -7), (x, u, v)


def test_a_bf16_coordinate_like_831_3_is_not_rounded():
    image = _striped(HEIGHT, 832)
    flow = torch.zeros(1, 2, HEIGHT, 832, dtype=BF16)
    flow[:, 0] = 0.30078125  # 0.3 in bfloat16
    out = warp(image.to(BF16), flow)[0, :, 4, 831 - 2]  # samples x = 829.3
    expected = slow_bilinear(image[0].to(BF16).double(), 829.30078125, 4.0)
    assert torch.allclose(out.double(), expected, atol=2 ** -7)
    assert torch.tensor(829.3, dtype=BF16).item() == 828.0  # what bf16 coordinates would have sampled


@pytest.mark.parametrize("x_dtype, flow_dtype", [(torch.float32, BF16), (BF16, torch.float32),
                                                 (torch.float16, BF16)])
def test_mixed_dtypes_are_accepted_and_keep_the_sampled_dtype(x_dtype, flow_dtype):
    image, flow = _striped(HEIGHT, 832), _flow(HEIGHT, 832)
    out = warp(image.to(x_dtype), flow.to(flow_dtype))
    assert out.dtype == x_dtype
    reference = warp(image.to(x_dtype).float(), flow.float())
    assert (out.float() - reference).abs().max() <= 2 ** -7


def test_warp_under_cpu_bf16_autocast_matches_float32():
    image, flow = _striped(HEIGHT, 832).float(), _flow(HEIGHT, 832)
    with torch.autocast("cpu", dtype=BF16):
        out = warp(image, flow)
    assert (out.float() - warp(image, flow.float())).abs().max() <= 2 ** -7


def test_inside_image_mask_near_the_right_edge_in_bf16():
    width = 1024
    flow = torch.zeros(1, 2, 2, width, dtype=BF16)
    flow[0, 0, :, 1020] = 2.75   # lands at 1022.75: inside (bf16 would round it to 1024: outside)
    flow[0, 0, :, 1021] = 2.25   # 1023.25: outside
    flow[0, 0, :, 0] = -0.25     # -0.25: outside
    mask = inside_image_mask(flow)
    assert mask.dtype == BF16
    expected = torch.ones(width)
    expected[1021] = expected[0] = 0
    assert torch.equal(mask[0, 0, 0].float(), expected) and torch.equal(mask[0, 0, 1].float(), expected)


def test_resize_flow_in_bf16_matches_float32():
    flow = _flow(26, 52) * 40  # up to 120 px, as at 1/32 of the paper's 832-px crops
    out = resize_flow(flow, (208, 416))
    assert out.dtype == BF16
    reference = resize_flow(flow.float(), (208, 416))
    assert torch.allclose(out.float(), reference, rtol=2 ** -8, atol=0)  # one bf16 rounding of the result


def test_occlusion_in_bf16_matches_float32():
    flow_fw = _flow(HEIGHT, 832, seed=1) * 16  # up to 48 px: |f|^2 ~ 2000, whose bf16 spacing is 8-16 px^2
    flow_bw = -flow_fw + _flow(HEIGHT, 832, seed=2) * 0.25
    mask = forward_backward_occlusion(flow_fw, flow_bw)
    assert mask.dtype == BF16
    reference = forward_backward_occlusion(flow_fw.float(), flow_bw.float())
    assert torch.equal(mask.float(), reference)


@pytest.mark.parametrize("width", (208, 832))  # the paper's stride-4 level of 832-px crops, and full width
def test_cost_volume_in_bf16_matches_float32_forward_and_backward(width):
    generator = torch.Generator().manual_seed(0)
    f1 = torch.randn(1, 16, 6, width, generator=generator).to(BF16).requires_grad_()
    f2 = torch.randn(1, 16, 6, width, generator=generator).to(BF16).requires_grad_()
    r1, r2 = f1.detach().float().requires_grad_(), f2.detach().float().requires_grad_()
    cost, reference = local_cost_volume(f1, f2, 3), local_cost_volume(r1, r2, 3)
    assert cost.dtype == BF16
    assert torch.allclose(cost.float(), reference, rtol=2 ** -7, atol=2 ** -7)
    weights = torch.randn(reference.shape, generator=generator)
    (cost.float() * weights).sum().backward()
    (reference * weights).sum().backward()
    assert torch.allclose(f1.grad.float(), r1.grad, rtol=2 ** -7, atol=2 ** -6)
    assert torch.allclose(f2.grad.float(), r2.grad, rtol=2 ** -7, atol=2 ** -6)
