"""ConvNeXt's depthwise 7x7 convolution with a hand-written backward for the CPU, in pure PyTorch.

oneDNN's CPU backward of a depthwise convolution is 3-7x slower than its forward at the tiny preset's sizes
(`python benchmarks/bench_kernels.py`). Both gradients are convolutions that run at forward speed:

    dL/dx = conv(dL/dy, flip(w))                         (depthwise, the same 'same' padding)
    dL/dw[c, i, j] = sum_{b,y,x} x_pad[b, c, y + i, x + j] dL/dy[b, c, y, x]
                   = conv(x_pad as 1 x (B*C) channels, dL/dy as (B*C) kernels of size H x W), summed over b

On maps smaller than the kernel (the stride-32 stage of a 64x64 view is 2x2) only the central
(2H-1) x (2W-1) taps of the kernel ever meet a pixel: the others multiply padding. The forward uses just
those taps (the same sums), and their gradient is exactly zero.

The outputs and gradients equal `nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim)`'s up to float rounding
(tests/test_depthwise.py against autograd through `F.conv2d`). Two differences: the backward is not itself
differentiable (no double backward, `once_differentiable`), and under CPU bf16 autocast the forward runs in
bf16 while the gradients are computed in float32 from the saved float32 input and weight (the gradient of the
unrounded convolution, closer to float32's than autocast's own). On other devices, and without gradients, the
module is that `nn.Conv2d` unchanged (cuDNN's depthwise backward is fast).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def _live_taps(kernel: int, size: int) -> slice:
    """The kernel taps (along one axis) that meet a pixel of a 'same'-padded map of `size` pixels."""
    centre = kernel // 2
    reach = min(centre, size - 1)
    return slice(centre - reach, centre + reach + 1)


class DepthwiseConvFunction(torch.autograd.Function):
    """x (B, C, H, W), weight (C, 1, k, k), bias (C,) or None -> (B, C, H, W): stride 1, padding k // 2."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        height, width = x.shape[-2:]
        rows, cols = _live_taps(weight.shape[-2], height), _live_taps(weight.shape[-1], width)
        live = weight[:, :, rows, cols]
        padding = (live.shape[-2] // 2, live.shape[-1] // 2)
        ctx.save_for_backward(x, live)
        ctx.taps, ctx.kernel, ctx.padding, ctx.has_bias = (rows, cols), weight.shape, padding, bias is not None
        return F.conv2d(x, live, bias, padding=padding, groups=x.shape[1])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, live = ctx.saved_tensors
        batch, channels, height, width = x.shape
        grad_out = grad_out.to(x.dtype).contiguous()  # bf16 under autocast: the gradients in x's dtype
        grad_x = F.conv2d(grad_out, live.flip(-2, -1), padding=ctx.padding, groups=channels)
        ph, pw = ctx.padding
        x_pad = F.pad(x, (pw, pw, ph, ph)).reshape(1, batch * channels, height + 2 * ph, width + 2 * pw)
        per_sample = F.conv2d(x_pad, grad_out.reshape(batch * channels, 1, height, width), groups=batch * channels)
        grad_live = per_sample.reshape(batch, channels, *live.shape[-2:]).sum(0).unsqueeze(1)
        grad_weight = grad_live.new_zeros(ctx.kernel)
        grad_weight[:, :, ctx.taps[0], ctx.taps[1]] = grad_live
        grad_bias = grad_out.sum((0, 2, 3)) if ctx.has_bias else None
        return grad_x, grad_weight, grad_bias


class DepthwiseConv2d(nn.Conv2d):
    """nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim) (same parameters and state dict);
    (B, C, H, W) -> (B, C, H, W). On the CPU, with gradients, it runs `DepthwiseConvFunction`."""

    def __init__(self, dim: int, kernel_size: int = 7):
        if kernel_size % 2 != 1:
            raise ValueError(f"DepthwiseConv2d: kernel_size must be odd for 'same' padding, got {kernel_size}")
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or not torch.is_grad_enabled():
            return super().forward(x)
        return DepthwiseConvFunction.apply(x, self.weight, self.bias)
