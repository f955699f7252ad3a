"""The reference rows of every content table: two floors and a ceiling, measured in the same run as the methods.

- raw colour (no network): the image itself, average-pooled to the strides the encoder's features have, as
  the features of the same probe / label propagation. What colour alone places.
- untrained: the same architecture at initialisation (`compare.untrained_run`). What the architecture alone
  places.
- supervised: the same tiny encoder trained with the class maps of the embedded stills
  (`train.method="supervised"`, same steps and image batch as VICReg). What the encoder can learn here.

A method's result is also read as the fraction of the floor-to-ceiling range it covers,
(value - best floor) / (ceiling - best floor): 0 at the best floor, 1 at the ceiling, negative below a floor.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

RAW_COLOUR = "raw colour"
UNTRAINED = "untrained"
SUPERVISED = "supervised"
FLOORS = (RAW_COLOUR, UNTRAINED)
FEATURE_STRIDES = {"last": (32,), "concat": (8, 16, 32)}  # the strides of `runners.feature_fn`'s level choices


def raw_colour_fn(levels: str = "concat") -> Callable[[torch.Tensor], torch.Tensor]:
    """The no-network floor: images (B,3,H,W) -> (B, 3 * S, h, w), the RGB average-pooled (ceil mode) at each
    stride of `levels` ("last": 32; "concat": 8, 16 and 32), resized bilinearly to the finest of them and
    concatenated; the same grid as `runners.feature_fn(model, levels)` gives. Raises ValueError for another
    `levels`."""
    if levels not in FEATURE_STRIDES:
        raise ValueError(f"raw colour features: levels must be one of {sorted(FEATURE_STRIDES)}, got {levels!r}")
    strides = FEATURE_STRIDES[levels]

    @torch.no_grad()
    def features(images: torch.Tensor) -> torch.Tensor:
        maps = [F.avg_pool2d(images.float(), stride, ceil_mode=True) for stride in strides]
        grid = maps[0].shape[-2:]
        return torch.cat([m if m.shape[-2:] == grid else
                          F.interpolate(m, size=grid, mode="bilinear", align_corners=False) for m in maps], dim=1)

    return features


def range_fraction(value: float, floors: list[float] | tuple[float, ...], ceiling: float) -> float:
    """(value - max(floors)) / (ceiling - max(floors)); NaN when a number is missing or the ceiling does not
    lie above the best floor (the range is empty: the instrument cannot tell)."""
    numbers = [value, ceiling, *floors]
    if not floors or any(v is None or not math.isfinite(v) for v in numbers):
        return math.nan
    best = max(floors)
    return (value - best) / (ceiling - best) if ceiling > best else math.nan
