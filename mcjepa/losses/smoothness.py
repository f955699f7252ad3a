"""Edge-aware flow smoothness (UFlow/ARFlow)."""

from __future__ import annotations

import torch


def _dx(t: torch.Tensor) -> torch.Tensor:
    return t[..., :, 1:] - t[..., :, :-1]


def _dy(t: torch.Tensor) -> torch.Tensor:
    return t[..., 1:, :] - t[..., :-1, :]


def smoothness_loss(flow: torch.Tensor, image: torch.Tensor, alpha: float = 10.0, order: int = 1) -> torch.Tensor:
    """Edge-aware smoothness of `flow` (B, 2, H, W) guided by `image` (B, 3, H, W):

        order 1: L = 1/2 [ < w_x |d_x f| > + < w_y |d_y f| > ]
        order 2: L = 1/2 [ < w_x |d_xx f| > + < w_y |d_yy f| > ]
        w_x = exp(-alpha * mean_c |d_x I|)   (order 1: at the differenced pair; order 2: the image gradient
                                              between the centre and the next position, as ARFlow)

    where <.> is the mean over all entries. Callers pass the flow divided by min(H, W) (ARFlow), so that
    the weight does not depend on the resolution.
    """
    if order not in (1, 2):
        raise ValueError(f"smoothness order must be 1 or 2, got {order}")
    weight_x = torch.exp(-alpha * _dx(image).abs().mean(dim=1, keepdim=True))
    weight_y = torch.exp(-alpha * _dy(image).abs().mean(dim=1, keepdim=True))
    if order == 1:
        grad_x, grad_y = _dx(flow), _dy(flow)
    else:
        grad_x, grad_y = _dx(_dx(flow)), _dy(_dy(flow))
        weight_x, weight_y = weight_x[..., :, 1:], weight_y[..., 1:, :]
    return ((weight_x * grad_x.abs()).mean() + (weight_y * grad_y.abs()).mean()) / 2
