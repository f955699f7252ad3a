"""models.depthwise: the hand-written CPU backward of ConvNeXt's depthwise convolution against autograd through
F.conv2d (float64), on maps larger and smaller than the kernel, and the module against nn.Conv2d."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mcjepa.models.convnext import ConvNeXtBlock
from mcjepa.models.depthwise import DepthwiseConv2d, DepthwiseConvFunction


def reference(x, weight, bias):
    return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2, groups=x.shape[1])


@pytest.mark.parametrize("shape,kernel", [((2, 3, 9, 11), 7), ((3, 4, 2, 2), 7), ((1, 2, 1, 5), 7),
                                          ((2, 3, 3, 8), 7), ((2, 2, 6, 4), 3), ((1, 3, 4, 4), 5)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_output_and_gradients_match_autograd(shape, kernel, with_bias):
    g = torch.Generator().manual_seed(sum(shape) + kernel)
    x = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(shape[1], 1, kernel, kernel, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(shape[1], generator=g, dtype=torch.float64, requires_grad=True) if with_bias else None
    inputs = (x, weight) + ((bias,) if with_bias else ())
    out, want = DepthwiseConvFunction.apply(x, weight, bias), reference(x, weight, bias)
    torch.testing.assert_close(out, want, rtol=0, atol=1e-12)
    grad_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
    got = torch.autograd.grad(out, inputs, grad_out)
    expected = torch.autograd.grad(want, inputs, grad_out)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert got[1].abs().sum() > 0


def test_taps_that_only_meet_padding_get_exactly_zero_gradient():
    """A 2x2 map under a 7x7 kernel: only the central 3x3 taps ever multiply a pixel."""
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    weight = torch.randn(3, 1, 7, 7, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(DepthwiseConvFunction.apply(x, weight, None).square().sum(), weight)
    live = torch.zeros(7, 7, dtype=torch.bool)
    live[2:5, 2:5] = True
    assert (grad[:, :, ~live] == 0).all() and (grad[:, :, live] != 0).all()


def test_module_is_an_nn_conv2d_with_the_same_state_dict():
    torch.manual_seed(0)
    module = DepthwiseConv2d(4, kernel_size=7)
    plain = nn.Conv2d(4, 4, 7, padding=3, groups=4)
    plain.load_state_dict(module.state_dict())  # same keys and shapes: old checkpoints load
    x = torch.randn(2, 4, 5, 6, requires_grad=True)
    torch.testing.assert_close(module(x), plain(x))
    with torch.no_grad():
        torch.testing.assert_close(module(x), plain(x))
    module(x).sum().backward()
    grads = x.grad.clone(), module.weight.grad.clone(), module.bias.grad.clone()
    x.grad = None
    plain(x).sum().backward()
    for a, b in zip(grads, (x.grad, plain.weight.grad, plain.bias.grad)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_even_kernel_is_refused():
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        DepthwiseConv2d(4, kernel_size=4)


def test_convnext_block_runs_it_and_trains_under_cpu_bf16_autocast():
    block = ConvNeXtBlock(8, layer_scale_init=1.0)
    assert isinstance(block.dwconv, DepthwiseConv2d)
    x = torch.randn(2, 8, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(x)
    out.float().square().mean().backward()
    assert block.dwconv.weight.grad.dtype == torch.float32 and block.dwconv.weight.grad.abs().sum() > 0
