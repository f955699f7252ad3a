"""Local cost volume (PWC-Net correlation) in pure PyTorch."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def local_cost_volume(features1: torch.Tensor, features2: torch.Tensor, radius: int) -> torch.Tensor:
    """Correlation of each position of `features1` with a (2r+1)^2 window of `features2`.

        cost[b, (dy + r) * (2r+1) + (dx + r), y, x] = (1/C) * sum_c f1[b,c,y,x] * f2[b,c,y+dy,x+dx]

    with zeros outside the image. Channel order is row-major over (dy, dx), dy outer (as PWC-Net/ARFlow).
    A plain loop over the (2r+1)^2 shifts is the fastest pure-PyTorch form on the CPU (measured in
    ../shared/anchors.md section 3; unfold-based versions were 4-8x slower) and uses no extra memory.

    Args: features1, features2: (B, C, H, W). Returns: (B, (2r+1)^2, H, W).
    """
    if features1.shape != features2.shape:
        raise ValueError(f"cost volume needs equal shapes, got {tuple(features1.shape)} and {tuple(features2.shape)}")
    height, width = features1.shape[-2:]
    padded = F.pad(features2, [radius] * 4)
    size = 2 * radius + 1
    costs = [(features1 * padded[:, :, dy:dy + height, dx:dx + width]).mean(dim=1)
             for dy in range(size) for dx in range(size)]
    return torch.stack(costs, dim=1)
