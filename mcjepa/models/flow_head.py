"""PWC-Net style coarse-to-fine flow estimator over the encoder's pyramid.

At each level l (coarse to fine):
    f_up    = 2 * upsample(f^(l-1))                       (zero at the coarsest level)
    X2_warp = warp(X2^(l), f_up)
    cost    = local_cost_volume(norm(X1^(l)), norm(X2_warp), r)
    f^(l)   = clip(f_up + estimator([cost, proj(X1^(l)), f_up]), +-flow_clip)
Flows are in pixels of their own level.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import FlowHeadConfig
from .convnext import LayerNorm2d
from .cost_volume import local_cost_volume
from .warp import upsample_flow2, warp


def normalize_features(x1: torch.Tensor, x2: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature normalisation before the cost volume: "none", "l2" (unit channel norm) or "center"
    (subtract the joint mean and divide by the joint std of both maps, as UFlow does)."""
    if mode == "none":
        return x1, x2
    if mode == "l2":
        return F.normalize(x1, dim=1), F.normalize(x2, dim=1)
    both = torch.cat([x1, x2], dim=0)
    mean = both.mean(dim=(0, 2, 3), keepdim=True)
    std = (both - mean).pow(2).mean().add(1e-16).sqrt()
    return (x1 - mean) / std, (x2 - mean) / std


class FlowEstimator(nn.Module):
    """[cost volume, features, flow] (B, in_dim, h, w) -> residual flow (B, 2, h, w).

    3x3 convs with LayerNorm + LeakyReLU after every conv except the last (the paper: without the
    LayerNorm the training collapses).
    """

    def __init__(self, in_dim: int, widths: tuple[int, ...], layer_norm: bool = True):
        super().__init__()
        layers, dim = [], in_dim
        for width in widths:
            layers += [nn.Conv2d(dim, width, 3, padding=1)]
            layers += [LayerNorm2d(width, eps=1e-6)] if layer_norm else []
            layers += [nn.LeakyReLU(0.1)]
            dim = width
        self.body = nn.Sequential(*layers)
        self.to_flow = nn.Conv2d(dim, 2, 3, padding=1)
        nn.init.zeros_(self.to_flow.weight)  # start from zero residual flow: a stable coarse-to-fine start
        nn.init.zeros_(self.to_flow.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_flow(self.body(x))


class FlowHead(nn.Module):
    """features1, features2: lists (coarse to fine) of (B, C_l, h_l, w_l) -> flows, list of (B, 2, h_l, w_l)."""

    def __init__(self, cfg: FlowHeadConfig, channels: tuple[int, ...]):
        super().__init__()
        self.cfg = cfg
        cost_dim = (2 * cfg.radius + 1) ** 2
        widths = tuple(w * cfg.filter_factor for w in cfg.widths)
        if cfg.shared_estimator:
            self.projections = nn.ModuleList([nn.Conv2d(c, cfg.projection_dim, 1) for c in channels])
            shared = FlowEstimator(cost_dim + cfg.projection_dim + 2, widths, cfg.layer_norm)
            self.estimators = nn.ModuleList([shared] * len(channels))
        else:
            self.projections = nn.ModuleList([nn.Identity() for _ in channels])
            self.estimators = nn.ModuleList([FlowEstimator(cost_dim + c + 2, widths, cfg.layer_norm) for c in channels])

    def forward(self, features1: list[torch.Tensor], features2: list[torch.Tensor],
                return_costs: bool = False):
        flows, costs, flow = [], [], None
        for level, (x1, x2) in enumerate(zip(features1, features2)):
            if flow is None:
                flow = x1.new_zeros(x1.shape[0], 2, *x1.shape[-2:])
                x2_warped = x2
            else:
                flow = upsample_flow2(flow, x1.shape[-2:])
                x2_warped = warp(x2, flow)
            cost = F.leaky_relu(local_cost_volume(*normalize_features(x1, x2_warped, self.cfg.feature_norm),
                                                  self.cfg.radius), 0.1)
            residual = self.estimators[level](torch.cat([cost, self.projections[level](x1), flow], dim=1))
            flow = (flow + residual).clamp(-self.cfg.flow_clip, self.cfg.flow_clip)
            flows.append(flow)
            costs.append(cost)
        return (flows, costs) if return_costs else flows
