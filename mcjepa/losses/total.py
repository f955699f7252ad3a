"""The weighted objectives: L_flow (M-JEPA), L_ssl (VICReg) and MC-JEPA's L_flow + balance * L_ssl."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import LossConfig
from ..models.mcjepa import FlowOutput
from ..models.warp import resize_flow, warp
from .occlusion import occlusion_mask
from .photometric import reconstruction_loss
from .regression import cycle_consistency_loss, feature_regression_loss
from .smoothness import smoothness_loss
from .vicreg import variance_covariance_loss, vicreg_loss


def _visible(flow_a: torch.Tensor, flow_b: torch.Tensor, cfg: LossConfig, occlusion: bool) -> torch.Tensor | None:
    """Non-occluded mask (B, 1, h, w) of the source frame of `flow_a`, from detached flows; None = all."""
    if not (cfg.use_occlusion and occlusion):
        return None
    with torch.no_grad():
        return 1.0 - occlusion_mask(flow_a.detach(), flow_b.detach(), cfg.occlusion_method, cfg.occlusion_alpha1,
                                    cfg.occlusion_alpha2, cfg.occlusion_range_threshold, cfg.occlusion_max_fraction)


def reconstruction_both_ways(frame1: torch.Tensor, frame2: torch.Tensor, flow_fw: torch.Tensor,
                             flow_bw: torch.Tensor, cfg: LossConfig,
                             occlusion: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """L_rec(I1, warp(I2, f_fw)) + L_rec(I2, warp(I1, f_bw)) for frames (B, 3, H, W) and flows (B, 2, H, W)
    in pixels of that size, each direction masked by its forward-backward visibility. Returns the loss and
    frame 1's visibility mask (B, 1, H, W) (None without occlusion masking)."""
    visible1 = _visible(flow_fw, flow_bw, cfg, occlusion)
    visible2 = _visible(flow_bw, flow_fw, cfg, occlusion)
    weights = dict(w_l1=cfg.rec_l1, w_l2=cfg.rec_l2, w_ssim=cfg.rec_ssim, w_census=cfg.rec_census,
                   census_radius=min(cfg.census_radius, (min(frame1.shape[-2:]) - 1) // 2))
    loss = (reconstruction_loss(frame1, warp(frame2, flow_fw, "border"), visible1, **weights) +
            reconstruction_loss(frame2, warp(frame1, flow_bw, "border"), visible2, **weights))
    return loss, visible1


def coarse_reconstruction(out: FlowOutput, frame1: torch.Tensor, frame2: torch.Tensor, cfg: LossConfig,
                          occlusion: bool) -> torch.Tensor:
    """sum_l w_l L_rec at level l (ARFlow's multi-scale photometric loss): each coarser level's flow
    (B, 2, h_l, w_l) is upsampled by the finest level's stride ratio, as the finest flow is to the image, and
    compared with the frames area-downsampled to that size. w_l = `cfg.rec_coarse_weights`, coarse to fine."""
    total = frame1.new_zeros(())
    factor = frame1.shape[-1] // out.flows_fw[-1].shape[-1]  # the finest level's stride
    for weight, flow_fw, flow_bw in zip(cfg.rec_coarse_weights, out.flows_fw[:-1], out.flows_bw[:-1]):
        if not weight:
            continue
        size = (flow_fw.shape[-2] * factor, flow_fw.shape[-1] * factor)
        images = [F.interpolate(f, size=size, mode="area") for f in (frame1, frame2)]
        loss, _ = reconstruction_both_ways(*images, resize_flow(flow_fw, size), resize_flow(flow_bw, size), cfg,
                                           occlusion)
        total = total + weight * loss
    return total


def smoothness_both_ways(out: FlowOutput, frame1: torch.Tensor, frame2: torch.Tensor,
                         cfg: LossConfig) -> torch.Tensor:
    """L_smooth(f_fw / s, I1) + L_smooth(f_bw / s, I2), s = min(h, w) of the flow read (ARFlow's normalisation).

    `cfg.smooth_level` "image": the flows upsampled to the frames (B, 2, H, W); "flow": the finest flow level
    (B, 2, h, w) against the frames area-resized to (h, w), as UFlow (its default: level 2, stride 4)."""
    if cfg.smooth_level == "flow":
        flows = out.flows_fw[-1], out.flows_bw[-1]
        images = [F.interpolate(f, size=flows[0].shape[-2:], mode="area") for f in (frame1, frame2)]
    else:
        flows, images = (out.flow_fw, out.flow_bw), (frame1, frame2)
    scale = min(flows[0].shape[-2:])
    return sum(smoothness_loss(flow / scale, image, cfg.smooth_alpha, cfg.smooth_order)
               for flow, image in zip(flows, images))


def flow_loss(out: FlowOutput, frame1: torch.Tensor, frame2: torch.Tensor,
              cfg: LossConfig, occlusion: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_flow = w_rec (L_rec + sum_l c_l L_rec^l) + w_smooth L_smooth + sum_l a_l (w_reg L_reg^l + w_cycle L_cycle^l
                                                                    + w_vc L_vc^l),

    every term summed over both directions (1->2 and 2->1); a_l are `cfg.level_weights` (coarse to fine), c_l
    `cfg.rec_coarse_weights` (`coarse_reconstruction`; empty = none).
    frame1, frame2: (B, 3, H, W). `occlusion=False` disables the forward-backward masks (used before
    `cfg.occlusion_start_epoch`). Returns the total and the detached terms for logging.
    """
    levels = len(out.flows_fw)
    level_weights = cfg.level_weights or (1.0,) * levels
    reg = cyc = vc = frame1.new_zeros(())
    for a, x1, x2, f12, f21 in zip(level_weights, out.features1, out.features2, out.flows_fw, out.flows_bw):
        visible1, visible2 = _visible(f12, f21, cfg, occlusion), _visible(f21, f12, cfg, occlusion)
        if not cfg.feature_losses_train_flow:
            f12, f21 = f12.detach(), f21.detach()
        if cfg.regression:
            reg = reg + a * (feature_regression_loss(x1, x2, f12, visible1) +
                             feature_regression_loss(x2, x1, f21, visible2))
        if cfg.cycle:
            cyc = cyc + a * (cycle_consistency_loss(x1, f12, f21, visible1) +
                             cycle_consistency_loss(x2, f21, f12, visible2))
        if cfg.vc:
            vc = vc + a * sum(variance_covariance_loss(x, cfg.vc_variance, cfg.vc_covariance, cfg.vc_max_positions)
                              for x in (x1, x2))

    rec, visible1 = reconstruction_both_ways(frame1, frame2, out.flow_fw, out.flow_bw, cfg, occlusion)
    if cfg.rec_coarse_weights:
        rec = rec + coarse_reconstruction(out, frame1, frame2, cfg, occlusion)
    smooth = smoothness_both_ways(out, frame1, frame2, cfg)

    total = (cfg.reconstruction * rec + cfg.smoothness * smooth + cfg.regression * reg + cfg.cycle * cyc +
             cfg.vc * vc)
    terms = {"flow/rec": rec, "flow/smooth": smooth, "flow/reg": reg, "flow/cycle": cyc, "flow/vc": vc,
             "flow/total": total}
    if visible1 is not None:
        terms["flow/occluded_fraction"] = 1.0 - visible1.mean()
    return total, {k: v.detach() for k, v in terms.items()}


def ssl_loss(embedding1: torch.Tensor, embedding2: torch.Tensor,
             cfg: LossConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """VICReg on the expander outputs (N, D) of two views; returns the loss and its terms."""
    loss, parts = vicreg_loss(embedding1, embedding2, cfg.vicreg_sim, cfg.vicreg_std, cfg.vicreg_cov)
    terms = {f"ssl/{k}": v for k, v in parts.items()}
    terms["ssl/total"] = loss.detach()
    return loss, terms


def feature_std(levels: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean over channels of the per-channel std over positions, per level: the collapse signal."""
    return {f"feat_std/{i}": f.detach().float().transpose(0, 1).flatten(1).std(dim=1).mean()
            for i, f in enumerate(levels)}
