"""Occlusion estimators of unsupervised flow: the forward-backward check (UnFlow) and the range map (Wang et
al., 2018), with an optional bound on the occluded fraction.

Both return a mask of frame 1 (B, 1, H, W), 1 = occluded, from flows (B, 2, H, W) in pixels of that size.
"""

from __future__ import annotations

import torch
from einops import rearrange

from ..models.warp import pixel_grid, warp


def forward_backward_score(flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha1: float = 0.01,
                           alpha2: float = 0.5) -> torch.Tensor:
    """The forward-backward mismatch over its bound (B, 1, H, W); > 0 = occluded:

        b(x) = f_bw(x + f_fw(x))   (backward flow warped to frame 1)
        score = |f_fw + b|^2 - alpha1 (|f_fw|^2 + |b|^2) - alpha2          (px^2)

    Computed in float32 at least (in bfloat16 |f|^2 of a 50 px flow has a spacing of 16 px^2, far above alpha2).
    """
    wide = torch.promote_types(flow_fw.dtype, torch.float32)
    flow_fw, flow_bw = flow_fw.to(wide), flow_bw.to(wide)
    flow_bw_warped = warp(flow_bw, flow_fw)
    mismatch = (flow_fw + flow_bw_warped).pow(2).sum(dim=1, keepdim=True)
    bound = alpha1 * (flow_fw.pow(2).sum(dim=1, keepdim=True) + flow_bw_warped.pow(2).sum(dim=1, keepdim=True))
    return mismatch - bound - alpha2


def forward_backward_occlusion(flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha1: float = 0.01,
                               alpha2: float = 0.5) -> torch.Tensor:
    """UnFlow's check: occluded <=> |f_fw + b|^2 > alpha1 (|f_fw|^2 + |b|^2) + alpha2 (`forward_backward_score`).

    Pixels whose forward flow leaves the image sample zero backward flow and are usually flagged. While the flow
    is poor, the two directions disagree almost everywhere and the check flags most pixels."""
    return (forward_backward_score(flow_fw, flow_bw, alpha1, alpha2) > 0).to(flow_fw.dtype)


def range_map(flow_bw: torch.Tensor) -> torch.Tensor:
    """How much of frame 2 lands on each pixel of frame 1 (B, 1, H, W): every pixel y of frame 2 splats a unit
    mass bilinearly at y + f_bw(y) (forward warping of ones; Wang et al., 2018). Mass landing outside the image
    is dropped. A pixel of frame 1 that nothing lands on is not visible in frame 2."""
    batch, _, height, width = flow_bw.shape
    target = (pixel_grid(height, width, device=flow_bw.device, dtype=torch.float32) + flow_bw.float())
    finite = torch.isfinite(target).all(dim=1).flatten(1)  # a NaN/Inf flow lands nowhere (the trainer's NaN
    target = torch.nan_to_num(target, nan=-2.0, posinf=-2.0, neginf=-2.0)  # guard then stops the run)
    x, y = target[:, 0].flatten(1), target[:, 1].flatten(1)  # (B, HW)
    x0, y0 = x.floor(), y.floor()
    counts = flow_bw.new_zeros(batch, height * width, dtype=torch.float32)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - (x - xi).abs()) * (1 - (y - yi).abs())
            inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1) & finite
            index = (yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)).long()
            counts.scatter_add_(1, index, weight * inside)
    return rearrange(counts, "b (h w) -> b 1 h w", h=height).to(flow_bw.dtype)


def range_map_occlusion(flow_bw: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """Occluded <=> range_map(f_bw) < threshold (ARFlow's hard form, threshold 0.2).

    Unlike the forward-backward check, a smooth or zero flow lands about one unit of mass on every pixel, so the
    smooth flows of a network early in training mark few pixels (a noisy, non-smooth backward flow can still
    mark many: hence the cap of `occlusion_mask`)."""
    return (range_map(flow_bw) < threshold).to(flow_bw.dtype)


def cap_fraction(occluded: torch.Tensor, score: torch.Tensor, max_fraction: float) -> torch.Tensor:
    """Keep at most `max_fraction` of each image's pixels occluded: the ones with the highest `score`.

    occluded, score: (B, 1, H, W). `max_fraction` >= 1 returns `occluded` unchanged; otherwise at most
    `int(max_fraction * H * W)` pixels stay occluded (among equal scores at the cut, `topk` picks which). Our
    guard against the degenerate state in which the mask covers the whole image and the photometric loss
    vanishes."""
    if max_fraction >= 1:
        return occluded
    pixels = occluded[0].numel()
    keep = int(max_fraction * pixels)
    if keep == 0:
        return torch.zeros_like(occluded)
    candidates = score.masked_fill(occluded == 0, float("-inf")).flatten(1)
    top = torch.zeros_like(candidates).scatter_(1, candidates.topk(keep, dim=1).indices, 1.0)
    return occluded * top.view_as(occluded).to(occluded.dtype)


def occlusion_mask(flow_fw: torch.Tensor, flow_bw: torch.Tensor, method: str = "fb", alpha1: float = 0.01,
                   alpha2: float = 0.5, range_threshold: float = 0.2, max_fraction: float = 1.0) -> torch.Tensor:
    """Occlusion mask of frame 1 (B, 1, H, W), 1 = occluded, by `method`: "fb" (`forward_backward_occlusion`) or
    "range" (`range_map_occlusion` of f_bw); at most `max_fraction` of each image (`cap_fraction`).

    Raises ValueError for another method."""
    if method == "fb":
        score = forward_backward_score(flow_fw, flow_bw, alpha1, alpha2)
        occluded = (score > 0).to(flow_fw.dtype)
    elif method == "range":
        score = -range_map(flow_bw).float()
        occluded = (score > -range_threshold).to(flow_fw.dtype)
    else:
        raise ValueError(f"occlusion method must be 'fb' or 'range', got {method!r}")
    return cap_fraction(occluded, score, max_fraction)
