"""A small ConvNeXt that returns the feature pyramid of the flow head and a pooled vector for VICReg.

Levels, finest first (the paper splits ConvNeXt's stride-4 stem into two stride-2 convolutions and adds
levels so that the flow pyramid has 6 levels, strides 2..64; the construction below is our choice):
    stride 2  : stem conv 3x3/s2 + LN                      (stem_dim channels)
    stride 4  : stem conv 3x3/s2 + LN, stage 1 blocks      (dims[0])
    stride 8-32: LN + conv 2x2/s2, stage 2-4 blocks        (dims[1..3])
    stride 64 : LN + conv 2x2/s2 (no block: it keeps the encoder near ConvNeXt-T's size), if `extra_level`
Each returned level goes through its own channels-first LayerNorm (the pyramid variant of ConvNeXt used for
segmentation). The pooled vector is the LayerNorm'd global average of the stride-32 stage.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..config import EncoderConfig
from .depthwise import DepthwiseConv2d

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = rearrange(x, "b c h w -> b h w c")
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return rearrange(x, "b h w c -> b c h w")


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the whole residual branch of a sample with probability p (rescaled)."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - p)
    return x * keep / (1 - p)


class ConvNeXtBlock(nn.Module):
    """dwconv 7x7 -> LN -> Linear 4C -> GELU -> Linear C -> layer scale -> drop path, residual. (B,C,H,W)->same.

    The pointwise layers run channels-last as nn.Linear (as ConvNeXt does; it is faster than 1x1 convs).
    """

    def __init__(self, dim: int, drop_path: float = 0.0, layer_scale_init: float = 1e-6):
        super().__init__()
        self.dwconv = DepthwiseConv2d(dim, kernel_size=7)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(dim)) if layer_scale_init > 0 else None
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = rearrange(self.dwconv(x), "b c h w -> b h w c")
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = self.gamma * y
        return x + drop_path(rearrange(y, "b h w c -> b c h w"), self.drop_path, self.training)


class ConvNeXtPyramid(nn.Module):
    """images (B,3,H,W) in [0,1] -> list of features, finest (stride 2) first; `pool` -> (B, dims[-1])."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        dims, depths = cfg.dims, cfg.depths
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.stem1 = nn.Sequential(
            nn.Conv2d(3, cfg.stem_dim, 3, stride=2, padding=1), LayerNorm2d(cfg.stem_dim, eps=1e-6)
        )
        self.stem2 = nn.Sequential(
            nn.Conv2d(cfg.stem_dim, dims[0], 3, stride=2, padding=1), LayerNorm2d(dims[0], eps=1e-6)
        )
        rates = torch.linspace(0, cfg.drop_path, sum(depths)).tolist()
        self.downsamples, self.stages = nn.ModuleList(), nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            self.downsamples.append(nn.Identity() if i == 0 else nn.Sequential(
                LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dim, 2, stride=2)))
            start = sum(depths[:i])
            self.stages.append(nn.Sequential(*[ConvNeXtBlock(dim, rates[start + j], cfg.layer_scale_init)
                                               for j in range(depth)]))
        self.extra = None
        if cfg.extra_level:
            self.extra = nn.Sequential(LayerNorm2d(dims[-1], eps=1e-6), nn.Conv2d(dims[-1], dims[-1], 2, stride=2))
        self.channels = (cfg.stem_dim,) + tuple(dims) + ((dims[-1],) if cfg.extra_level else ())
        self.strides = tuple(2 ** (i + 1) for i in range(len(self.channels)))
        self.out_norms = nn.ModuleList([LayerNorm2d(c, eps=1e-6) for c in self.channels])
        self.pool_norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor, strict: bool = True) -> list[torch.Tensor]:
        """`strict` (the flow path) requires sizes divisible by the coarsest stride, so that every level is exactly
        half the previous one; the pooled content path does not need it (e.g. 224x224 views with a stride-64 level)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"encoder expects images (B,3,H,W), got {tuple(images.shape)}")
        coarsest = self.strides[-1]
        if strict and (images.shape[-2] % coarsest or images.shape[-1] % coarsest):
            raise ValueError(f"image size {tuple(images.shape[-2:])} must be divisible by the coarsest stride "
                             f"{coarsest}; pad it (mcjepa.eval.flow_metrics has a padder)")
        x = self.stem1((images - self.mean) / self.std)
        levels = [x]
        x = self.stem2(x)
        for downsample, stage in zip(self.downsamples, self.stages):
            x = stage(downsample(x))
            levels.append(x)
        if self.extra is not None:
            levels.append(self.extra(x))
        return [norm(level) for norm, level in zip(self.out_norms, levels)]

    def pool(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """(B, dims[-1]): LayerNorm of the global average of the stride-32 stage."""
        return self.pool_norm(levels[len(self.stages)].mean(dim=(-2, -1)))
