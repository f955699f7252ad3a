"""Local cost volume (PWC-Net correlation) in pure PyTorch, with a hand-written backward."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def _shifts(radius: int):
    size = 2 * radius + 1
    return [(dy, dx) for dy in range(size) for dx in range(size)]


class _LocalCorrelation(torch.autograd.Function):
    """Autograd's own backward of the shift loop allocates a zero tensor of the padded size per shift
    (one slice-backward each); this backward accumulates into one padded buffer in place instead.

    The backward runs on flattened rows: with both maps padded to the row width Wp = W + 2r and flattened, the
    window of shift (dy, dx) is the contiguous slice that starts at dy * Wp + dx, so each accumulation is one
    long vectorised loop instead of B * C * H rows of W. The Wp - W extra columns of each row are discarded (the
    gradient there is never read, and features1 is zero there). Same products, same order: the gradients equal
    the row-by-row loop's bit for bit (tests/test_cost_volume.py); forward + backward of the tiny flow head's
    three levels 1.2x faster (`python benchmarks/bench_kernels.py`: 21 against 25 ms)."""

    @staticmethod
    def forward(ctx, features1: torch.Tensor, features2: torch.Tensor, radius: int) -> torch.Tensor:
        height, width = features1.shape[-2:]
        padded = F.pad(features2, [radius] * 4)
        ctx.save_for_backward(features1, padded)
        ctx.radius = radius
        return torch.stack([(features1 * padded[:, :, dy:dy + height, dx:dx + width]).mean(dim=1)
                            for dy, dx in _shifts(radius)], dim=1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        features1, padded = ctx.saved_tensors
        radius = ctx.radius
        batch, channels, height, width = features1.shape
        row = width + 2 * radius  # Wp
        length = height * row
        flat1 = F.pad(features1, [0, 2 * radius]).reshape(batch, channels, length)
        flat2 = F.pad(padded.reshape(batch, channels, -1), [0, 2 * radius])  # room for the last shift's slice
        grad = F.pad(grad / channels, [0, 2 * radius]).reshape(batch, -1, length)  # d mean_c / d x = 1 / C
        grad1 = torch.zeros_like(flat1)
        grad2 = torch.zeros_like(flat2)
        for k, (dy, dx) in enumerate(_shifts(radius)):
            g, start = grad[:, k:k + 1], dy * row + dx
            grad1.addcmul_(g, flat2[:, :, start:start + length])
            grad2[:, :, start:start + length].addcmul_(g, flat1)
        grad1 = grad1.view(batch, channels, height, row)[..., :width]
        grad2 = grad2[:, :, :padded[0, 0].numel()].view_as(padded)
        return grad1, grad2[:, :, radius:radius + height, radius:radius + width], None


def local_cost_volume(features1: torch.Tensor, features2: torch.Tensor, radius: int) -> torch.Tensor:
    """Correlation of each position of `features1` with a (2r+1)^2 window of `features2`.

        cost[b, (dy + r) * (2r+1) + (dx + r), y, x] = (1/C) * sum_c f1[b,c,y,x] * f2[b,c,y+dy,x+dx]

    with zeros outside the image. Channel order is row-major over (dy, dx), dy outer (as PWC-Net/ARFlow).
    A plain loop over the (2r+1)^2 shifts is the fastest simple pure-PyTorch form on the CPU (measured:
    unfold-based versions were 4-8x slower; a banded row-by-row matmul was only 1.2x faster forward+backward at
    the tiny preset's stride-4 level, 16x32x24x32, r=3) and needs no (HW)^2 memory.

    Computed (forward and backward) in float32 at least: under bf16 autocast the features arrive in bfloat16,
    whose backward would accumulate the (2r+1)^2 shifts' gradients with an 8-bit mantissa.

    Args: features1, features2: (B, C, H, W), of any floating dtypes. Returns: (B, (2r+1)^2, H, W) in the wider
    of the two dtypes.
    """
    if features1.shape != features2.shape:
        raise ValueError(f"cost volume needs equal shapes, got {tuple(features1.shape)} and {tuple(features2.shape)}")
    dtype = torch.promote_types(features1.dtype, features2.dtype)
    work = torch.promote_types(dtype, torch.float32)
    return _LocalCorrelation.apply(features1.to(work), features2.to(work), radius).to(dtype)
