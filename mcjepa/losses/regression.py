"""The two feature-space losses of M-JEPA: feature regression (the JEPA prediction) and cycle consistency."""

from __future__ import annotations

import torch

from ..models.warp import warp
from .masked import masked_mean


def feature_regression_loss(features1: torch.Tensor, features2: torch.Tensor, flow_fw: torch.Tensor,
                            mask: torch.Tensor | None = None) -> torch.Tensor:
    """The flow is the predictor: frame 2's features, brought to frame 1 by the flow, must match frame 1's.

        L_reg = < || X1 - warp(X2, f_12) ||^2 / C >_visible

    (the paper writes || X2 - f(X1) ||^2 with forward warping; with backward warping the same statement
    reads as above). features: (B, C, h, w); flow_fw (B, 2, h, w) in level pixels; mask (B, 1, h, w).
    """
    return masked_mean((features1 - warp(features2, flow_fw)).pow(2), mask)


def cycle_consistency_loss(features1: torch.Tensor, flow_fw: torch.Tensor, flow_bw: torch.Tensor,
                           mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mapping features forward then backward must return them:

        X1 -> X1_at_2 = warp(X1, f_21)  (frame 1's features placed in frame 2)
           -> warp(X1_at_2, f_12)       (and brought back to frame 1)
        L_cycle = < || X1 - warp(warp(X1, f_21), f_12) ||^2 / C >_visible

    Zero when f_21 inverts f_12 exactly (e.g. opposite constant translations, away from borders).
    """
    return masked_mean((features1 - warp(warp(features1, flow_bw), flow_fw)).pow(2), mask)
