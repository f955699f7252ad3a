"""Forward-backward occlusion check (UnFlow)."""

from __future__ import annotations

import torch

from ..models.warp import warp


def forward_backward_occlusion(flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha1: float = 0.01,
                               alpha2: float = 0.5) -> torch.Tensor:
    """Occlusion mask of frame 1 (B, 1, H, W), 1 = occluded, from flows (B, 2, H, W) in pixels:

        b(x) = f_bw(x + f_fw(x))   (backward flow warped to frame 1)
        occluded  <=>  |f_fw + b|^2 > alpha1 (|f_fw|^2 + |b|^2) + alpha2

    Pixels whose forward flow leaves the image sample zero backward flow and are usually flagged. Decided in
    float32 (in bfloat16 |f|^2 of a 50 px flow has a spacing of 16 px^2, far above alpha2); the mask is
    returned in flow_fw's dtype.
    """
    dtype, wide = flow_fw.dtype, torch.promote_types(flow_fw.dtype, torch.float32)
    flow_fw, flow_bw = flow_fw.to(wide), flow_bw.to(wide)
    flow_bw_warped = warp(flow_bw, flow_fw)
    mismatch = (flow_fw + flow_bw_warped).pow(2).sum(dim=1, keepdim=True)
    bound = alpha1 * (flow_fw.pow(2).sum(dim=1, keepdim=True) + flow_bw_warped.pow(2).sum(dim=1, keepdim=True))
    return (mismatch > bound + alpha2).to(dtype)
