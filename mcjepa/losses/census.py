"""Census (ternary) photometric loss, the data term of unsupervised flow since UnFlow (Meister et al., 2018)
and the one ARFlow, UFlow and SMURF train with (docs/method.md, "Photometric loss").

A pixel is described by the softened signs of its differences to the (2r+1)^2 pixels of its patch:

    t_k(x) = d_k / sqrt(0.81 + d_k^2),      d_k(x) = g(x + k) - g(x),   g = 255 * grey(I)
    D(x)   = sum_k  (t_k - t'_k)^2 / (0.1 + (t_k - t'_k)^2)     (soft Hamming distance, image vs reconstruction)
    L      = < (D + 0.01)^0.4 >                                   (robust penalty, mean over visible pixels)

(UFlow's form: 7x7 patch, sum over the patch, robust exponent 0.4.) Because it compares only local orderings, it
is invariant to additive and multiplicative brightness changes and keeps a useful gradient in low-contrast
textures, where L1 and SSIM flatten out. Pixels closer than r to the border, whose patches leave the image, are
excluded from the mean, as in UFlow.

Speed: D is computed by a loop over half of the (2r+1)^2 shifts (each pair of opposite shifts gives the same
terms, moved: `SoftHamming`) on (B, 1, H, W) maps that stay in cache, with a hand-written backward. For 8 maps
of 96x128 at r = 3 on one core, forward + backward: 29 ms, against 44 ms for the loop over every shift it
replaced and 151 ms for an unfold-based version, whose patch tensor is 49x the image (benchmarks/bench_kernels.py;
tests/test_census.py keeps the unfold version as the reference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .masked import masked_mean

GREY = (0.2989, 0.5870, 0.1140)  # ITU-R 601 luma, as UnFlow/ARFlow/UFlow


def grey255(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 1, H, W) luma in [0, 255]."""
    return 255.0 * torch.einsum("bchw,c->bhw", image, image.new_tensor(GREY)).unsqueeze(1)


def _soft_sign(d: torch.Tensor) -> torch.Tensor:
    return d * torch.rsqrt(0.81 + d * d)


def _half_shifts(radius: int):
    """One shift k of each pair (k, -k) of the patch, the centre excluded: (2r+1)^2 // 2 shifts."""
    span = range(-radius, radius + 1)
    return [(dy, dx) for dy in span for dx in span if (dy, dx) > (0, 0)]


class SoftHamming(torch.autograd.Function):
    """D(x) of the module docstring for grey maps g, g' (B, 1, H, W) -> (B, 1, H, W); zero padding outside.

    The gradient flows into g' (the reconstruction) only; g (the image) is treated as a constant.

    Each term is computed once for a pair of opposite shifts: with c_k(z) = e_k(z)^2 / (0.1 + e_k(z)^2),
    d_{-k}(z + k) = -d_k(z) and the soft sign is odd, so c_{-k}(z + k) = c_k(z) and

        D(x) = sum_{k in half}  c_k(x) + c_k(x - k).

    c_k is evaluated on the image grown by r on each side (z = x - k may lie outside it), from maps padded by 2r.
    """

    @staticmethod
    def forward(ctx, grey: torch.Tensor, grey_rec: torch.Tensor, radius: int) -> torch.Tensor:
        ctx.save_for_backward(grey, grey_rec)
        ctx.radius = r = radius
        height, width = grey.shape[-2:]
        pad, pad_rec = F.pad(grey, [2 * r] * 4), F.pad(grey_rec, [2 * r] * 4)
        grown = (..., slice(r, r + height + 2 * r), slice(r, r + width + 2 * r))  # z on the grown grid
        distance = torch.zeros_like(grey)
        for dy, dx in _half_shifts(r):
            moved = (..., slice(r + dy, r + dy + height + 2 * r), slice(r + dx, r + dx + width + 2 * r))  # z + k
            error_sq = (_soft_sign(pad[moved] - pad[grown]) - _soft_sign(pad_rec[moved] - pad_rec[grown])).square_()
            term = error_sq / (0.1 + error_sq)  # c_k(z), z + r = grid index
            distance += term[..., r:r + height, r:r + width]  # c_k(x)
            distance += term[..., r - dy:r - dy + height, r - dx:r - dx + width]  # c_k(x - k)
        return distance

    @staticmethod
    def backward(ctx, grad_distance: torch.Tensor):
        grey, grey_rec = ctx.saved_tensors
        r = ctx.radius
        height, width = grey.shape[-2:]
        pad, pad_rec = F.pad(grey, [2 * r] * 4), F.pad(grey_rec, [2 * r] * 4)
        grad_padded = F.pad(grad_distance, [2 * r] * 4)  # dL/dD, zero outside the image
        grown = (..., slice(r, r + height + 2 * r), slice(r, r + width + 2 * r))
        grad_rec = torch.zeros_like(pad_rec)  # dL/dg' on the grid padded by 2r
        for dy, dx in _half_shifts(r):
            moved = (..., slice(r + dy, r + dy + height + 2 * r), slice(r + dx, r + dx + width + 2 * r))
            d_rec = pad_rec[moved] - pad_rec[grown]
            denom_rec = 0.81 + d_rec * d_rec
            error = _soft_sign(pad[moved] - pad[grown]) - d_rec * torch.rsqrt(denom_rec)
            # dL/dc_k(z) = dL/dD(z) + dL/dD(z + k); dc/dt' = -0.2 e / (0.1 + e^2)^2; dt'/dd' = 0.81 / (0.81 + d'^2)^1.5
            grad_d = (grad_padded[grown] + grad_padded[moved]) * (-0.2 * error / (0.1 + error * error).square()) * (
                0.81 * torch.rsqrt(denom_rec) / denom_rec)
            grad_rec[moved] += grad_d  # d' = g'(z + k) - g'(z)
            grad_rec[grown] -= grad_d
        return None, grad_rec[..., 2 * r:2 * r + height, 2 * r:2 * r + width], None


def census_loss(image: torch.Tensor, reconstruction: torch.Tensor, mask: torch.Tensor | None = None,
                radius: int = 3) -> torch.Tensor:
    """L_census between `image` and its `reconstruction` (both (B, 3, H, W) in [0, 1]) over pixels with
    `mask` (B, 1, H, W) = 1 and at least `radius` px from the border. Returns a scalar; the gradient reaches
    `reconstruction` only.

    Raises ValueError if `radius` < 1 or the image is not larger than the patch.
    """
    if radius < 1:
        raise ValueError(f"census radius must be >= 1, got {radius}")
    height, width = image.shape[-2:]
    if min(height, width) <= 2 * radius:
        raise ValueError(f"census loss: image {height}x{width} is too small for radius {radius}")
    distance = SoftHamming.apply(grey255(image).detach(), grey255(reconstruction), radius)
    penalty = (distance + 0.01).pow(0.4)
    interior = torch.zeros_like(penalty)
    interior[..., radius:height - radius, radius:width - radius] = 1.0
    return masked_mean(penalty, interior if mask is None else interior * mask)
