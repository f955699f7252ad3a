"""MC-JEPA: one ConvNeXt encoder, a PWC-style flow head (motion) and a VICReg expander (content)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..config import ModelConfig
from .convnext import ConvNeXtPyramid
from .expander import expander
from .flow_head import FlowHead
from .upsample import ConvexUpsampler
from .warp import resize_flow


SEGMENTATION_LEVELS = (1, 2, 3, 4)  # the four ConvNeXt stages (strides 4, 8, 16, 32) read by the supervised head


@dataclass
class FlowOutput:
    """Everything the flow losses and the inspectors need; lists are coarse to fine over the flow levels.

    features1/2: (B, C_l, h_l, w_l) pyramid of frame 1 / frame 2;  flows_fw/bw: (B, 2, h_l, w_l) in level
    pixels (fw: frame1 -> frame2);  flow_fw/bw: (B, 2, H, W) finest flow upsampled to the image, in pixels;
    costs_fw: cost volumes (B, (2r+1)^2, h_l, w_l) of the forward pass (only with return_costs).
    """

    features1: list[torch.Tensor]
    features2: list[torch.Tensor]
    flows_fw: list[torch.Tensor]
    flows_bw: list[torch.Tensor]
    flow_fw: torch.Tensor
    flow_bw: torch.Tensor
    costs_fw: list[torch.Tensor] | None = None


class MCJEPA(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ConvNeXtPyramid(cfg.encoder)
        by_stride = dict(zip(self.encoder.strides, range(len(self.encoder.strides))))
        self.flow_levels = [by_stride[s] for s in cfg.flow.strides]  # indices into the pyramid, coarse to fine
        self.flow_head = FlowHead(cfg.flow, tuple(self.encoder.channels[i] for i in self.flow_levels))
        self.expander = expander(cfg.encoder.dims[-1], cfg.expander)
        finest = self.flow_levels[-1]
        self.upsampler = (ConvexUpsampler(self.encoder.channels[finest], self.encoder.strides[finest])
                          if cfg.flow.upsample == "convex" else None)
        self.segmentation_levels = SEGMENTATION_LEVELS
        self.segmentation_head = (
            nn.Conv2d(sum(self.encoder.channels[i] for i in SEGMENTATION_LEVELS), cfg.segmentation_classes, 1)
            if cfg.segmentation_classes else None)

    @property
    def stride(self) -> int:
        """Input sizes must be multiples of this (the coarsest pyramid stride)."""
        return self.encoder.strides[-1]

    def flow_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B,3,H,W) -> the pyramid levels used by the flow head, coarse to fine."""
        levels = self.encoder(images)
        return [levels[i] for i in self.flow_levels]

    def forward_flow(self, frame1: torch.Tensor, frame2: torch.Tensor, return_costs: bool = False) -> FlowOutput:
        """Flow in both directions for frames (B,3,H,W); both directions run as one batch of 2B."""
        batch = frame1.shape[0]
        features = self.flow_features(torch.cat([frame1, frame2]))
        first = [rearrange(f, "(two b) c h w -> two b c h w", two=2) for f in features]
        source = [torch.cat([f[0], f[1]]) for f in first]  # [X1; X2]
        target = [torch.cat([f[1], f[0]]) for f in first]  # [X2; X1]
        result = self.flow_head(source, target, return_costs=return_costs)
        flows, costs = result if return_costs else (result, None)
        full = self.upsample(source[-1], flows[-1], tuple(frame1.shape[-2:]))
        return FlowOutput(
            features1=[f[0] for f in first], features2=[f[1] for f in first],
            flows_fw=[f[:batch] for f in flows], flows_bw=[f[batch:] for f in flows],
            flow_fw=full[:batch], flow_bw=full[batch:],
            costs_fw=[c[:batch] for c in costs] if costs is not None else None)

    def upsample(self, features: torch.Tensor, flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The finest flow (B, 2, h, w) to the image size (H, W), in px of (H, W): bilinear, or convex from the
        finest source features (B, C, h, w) (`model.flow.upsample`)."""
        if self.upsampler is None:
            return resize_flow(flow, size)
        up = self.upsampler(features, flow)
        if up.shape[-2:] != tuple(size):
            raise ValueError(f"convex upsampling gives {tuple(up.shape[-2:])}, not the image size {tuple(size)}: "
                             f"the input must be a multiple of the model stride {self.stride}")
        return up

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B,3,H,W) -> (expander output (B, D), pyramid levels finest first). Any size: the paper's 224x224 views
        are not multiples of the stride-64 level, which the pooled vector does not use."""
        levels = self.encoder(images, strict=False)
        return self.expander(self.encoder.pool(levels)), levels

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (B, K, H, W) of the supervised ceiling (`model.segmentation_classes` = K): the four stages
        resized bilinearly to the stride-4 grid, concatenated, a 1x1 conv, upsampled bilinearly to (H, W).
        Raises RuntimeError for a model built without the head."""
        if self.segmentation_head is None:
            raise RuntimeError("this model has no segmentation head: build it with model.segmentation_classes > 0 "
                               "(train.method='supervised')")
        levels = self.encoder(images, strict=False)
        grid = levels[self.segmentation_levels[0]].shape[-2:]
        features = torch.cat([F.interpolate(levels[i], size=grid, mode="bilinear", align_corners=False)
                              for i in self.segmentation_levels], dim=1)
        logits = self.segmentation_head(features)
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)

    @torch.no_grad()
    def predict_flow(self, frame1: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
        """Forward flow (B,2,H,W) for evaluation (inputs must be multiples of `stride`)."""
        return self.forward_flow(frame1, frame2).flow_fw
