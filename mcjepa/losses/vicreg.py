"""VICReg and the variance-covariance regulariser that MC-JEPA puts on every feature level."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of a square (d, d) matrix as a flat (d*d - d,) vector."""
    d = matrix.shape[0]
    return matrix.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()


def variance_loss(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """v(Z) = mean_j max(0, gamma - sqrt(Var(Z_j) + eps)) for Z (N, d); unbiased variance."""
    return F.relu(gamma - torch.sqrt(z.var(dim=0) + eps)).mean()


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """c(Z) = (1/d) sum_{i != j} Cov(Z)_ij^2 for Z (N, d), Cov normalised by N - 1."""
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = (z.T @ z) / (n - 1)
    return off_diagonal(cov).pow(2).sum() / d


def feature_map_positions(features: torch.Tensor, max_positions: int | None = None) -> torch.Tensor:
    """(B, C, h, w) -> (N, C) with N = B*h*w, evenly strided down to at most `max_positions` rows."""
    z = rearrange(features, "b c h w -> (b h w) c")
    if max_positions and z.shape[0] > max_positions:
        z = z[:: -(-z.shape[0] // max_positions)]
    return z


def variance_covariance_loss(features: torch.Tensor, w_variance: float = 1.0, w_covariance: float = 0.04,
                             max_positions: int | None = None) -> torch.Tensor:
    """VC regulariser of one feature level (B, C, h, w): every position is a sample.

        L_vc = w_variance * v(Z) + w_covariance * c(Z),  Z = features as (B*h*w, C)
    """
    z = feature_map_positions(features.float(), max_positions)
    return w_variance * variance_loss(z) + w_covariance * covariance_loss(z)


def vicreg_loss(x: torch.Tensor, y: torch.Tensor, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                cov_coeff: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The official VICReg loss of two expanded views x, y (N, D):

        inv = mean (x - y)^2
        var = v(x) / 2 + v(y) / 2                     (hinge on std, gamma 1, eps 1e-4)
        cov = c(x) + c(y)                             (summed over the two branches, not halved)
        L   = sim_coeff * inv + std_coeff * var + cov_coeff * cov

    Under DDP, gather x and y across ranks before calling (the invariance is the same either way).
    """
    x, y = x.float(), y.float()
    invariance = F.mse_loss(x, y)
    variance = variance_loss(x) / 2 + variance_loss(y) / 2
    covariance = covariance_loss(x) + covariance_loss(y)
    loss = sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance
    return loss, {"invariance": invariance.detach(), "variance": variance.detach(), "covariance": covariance.detach()}
