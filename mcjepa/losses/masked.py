"""Masked averaging shared by the losses."""

from __future__ import annotations

import torch


def masked_mean(error: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of `error` (B, C, H, W) over channels and over positions where `mask` (B, 1, H, W) is 1.

    mean_c over channels, then sum_p(mask * e) / sum_p(mask); with no mask, the plain mean.
    """
    if mask is None:
        return error.mean()
    per_position = error.mean(dim=1, keepdim=True)
    return (per_position * mask).sum() / mask.sum().clamp_min(1.0)
