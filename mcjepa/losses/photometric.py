"""Image reconstruction loss: L1 + L2 + SSIM + census between frame 1 and frame 2 warped by the forward flow."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .census import census_loss
from .masked import masked_mean


def box_filter3(x: torch.Tensor) -> torch.Tensor:
    """3x3 mean of each channel, valid padding: (B, C, H, W) -> (B, C, H-2, W-2).

    A depthwise convolution: ~10x faster than F.avg_pool2d(x, 3, 1) on the CPU (measured, forward).
    """
    channels = x.shape[1]
    kernel = x.new_full((channels, 1, 3, 3), 1.0 / 9.0)
    return F.conv2d(x, kernel, groups=channels)


def ssim_dissimilarity(x: torch.Tensor, y: torch.Tensor, c1: float = 0.01**2, c2: float = 0.03**2) -> torch.Tensor:
    """(1 - SSIM(x, y)) / 2 clamped to [0, 1], with a 3x3 box window (ARFlow/UFlow), same-size output.

        SSIM = (2 mu_x mu_y + c1)(2 s_xy + c2) / ((mu_x^2 + mu_y^2 + c1)(s_x^2 + s_y^2 + c2))
    x, y: (B, C, H, W) in [0, 1]; returns (B, C, H, W). Borders use reflection padding.
    """
    x, y = F.pad(x, [1] * 4, mode="reflect"), F.pad(y, [1] * 4, mode="reflect")
    mu_x, mu_y = box_filter3(x), box_filter3(y)
    var_x = box_filter3(x * x) - mu_x**2
    var_y = box_filter3(y * y) - mu_y**2
    cov_xy = box_filter3(x * y) - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ((1 - ssim) / 2).clamp(0, 1)


def reconstruction_loss(image: torch.Tensor, reconstruction: torch.Tensor, mask: torch.Tensor | None = None,
                        w_l1: float = 0.15, w_l2: float = 0.0, w_ssim: float = 0.85, w_census: float = 0.0,
                        census_radius: int = 3) -> torch.Tensor:
    """d(I1, f(I2)) on visible pixels:

        L_rec = w_l1 * <|I - R|> + w_l2 * <(I - R)^2> + w_ssim * <(1 - SSIM(I, R)) / 2> + w_census * L_census

    (L_census: `census.census_loss`, patch radius `census_radius`; it carries no gradient into `image`)
    where <.> is the mean over channels and over pixels with mask = 1.
    image, reconstruction: (B, 3, H, W); mask: (B, 1, H, W) in {0, 1} (non-occluded and inside the image).
    """
    diff = image - reconstruction
    loss = image.new_zeros(())
    if w_l1:
        loss = loss + w_l1 * masked_mean(diff.abs(), mask)
    if w_l2:
        loss = loss + w_l2 * masked_mean(diff.pow(2), mask)
    if w_ssim:
        loss = loss + w_ssim * masked_mean(ssim_dissimilarity(image, reconstruction), mask)
    if w_census:
        loss = loss + w_census * census_loss(image, reconstruction, mask, census_radius)
    return loss
