"""VICReg expander: Linear-BN-ReLU blocks, last Linear without bias (as the official VICReg)."""

from __future__ import annotations

import torch.nn as nn


def expander(in_dim: int, widths: tuple[int, ...]) -> nn.Sequential:
    """(B, in_dim) -> (B, widths[-1]); e.g. 768-8192-8192-8192 in the paper."""
    layers, dim = [], in_dim
    for width in widths[:-1]:
        layers += [nn.Linear(dim, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
        dim = width
    layers.append(nn.Linear(dim, widths[-1], bias=False))
    return nn.Sequential(*layers)
