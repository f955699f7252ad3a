"""The reference rows of every content table: two floors and a ceiling, measured in the same run as the methods.

- raw colour (no network): the image itself, average-pooled to the strides the encoder's features have, as
  the features of the same probe / label propagation. What colour alone places.
- untrained: the same architecture at initialisation (`compare.untrained_run`). What the architecture alone
  places.
- supervised: the same tiny encoder trained with the class maps of the embedded stills
  (`train.method="supervised"`, same steps and image batch as VICReg). What the encoder can learn here.
- true labels (a reference for the protocol, not a ceiling of the encoder): "features" that are the one-hot
  maps of the evaluation's own labels (the class map of each still, the object ids of each frame),
  average-pooled to the finest stride of the protocol's features (`label_features`, `OneHotLabels`,
  `OneHotMasks`). What an encoder that reports the labels, averaged over each cell of that grid, scores
  through the same probe / propagation: how much the grid and the instrument lose on their own. It is not a
  strict upper bound: features that also encode where the labels lie inside a cell can score a little more
  (on the embedded data, the square root of the pooled one-hot: J&F 77.9 against 75.8; the 64 sub-cell
  one-hot maps of each cell: probe 84.5 against 83.8).

A method's result is also read as the fraction of the floor-to-ceiling range it covers,
(value - best floor) / (ceiling - best floor): 0 at the best floor, 1 at the ceiling, negative below a floor.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

RAW_COLOUR = "raw colour"
TRUE_LABELS = "true labels"
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


def range_share_text(share: float | None) -> str:
    """A `range_fraction` as a table shows it: "12 %" inside or above the range, "below the best floor" under it
    (a negative share says only which side of the floor a method lies on, its size is not a share of anything),
    "-" when there is none (a missing number or an empty range)."""
    if share is None or not math.isfinite(share):
        return "-"
    return f"{100 * share:.0f} %" if share >= 0 else "below the best floor"


def label_features(levels: str = "concat") -> Callable[[torch.Tensor], torch.Tensor]:
    """The true-labels reference's features: one-hot maps (B, K, H, W) (`OneHotLabels` / `OneHotMasks` put them where
    the images were) -> (B, K, h, w), average-pooled (ceil mode) to the finest stride of `levels`, the grid
    `raw_colour_fn(levels)` and `runners.feature_fn(model, levels)` give. Raises ValueError for another
    `levels`."""
    if levels not in FEATURE_STRIDES:
        raise ValueError(f"true-label features: levels must be one of {sorted(FEATURE_STRIDES)}, got {levels!r}")
    stride = min(FEATURE_STRIDES[levels])

    @torch.no_grad()
    def features(one_hot: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(one_hot.float(), stride, ceil_mode=True)

    return features


def _one_hot(ids: torch.Tensor, channels: int, void: int = 255) -> torch.Tensor:
    """(..., H, W) int ids -> (..., channels, H, W) float one-hot; void pixels are all zero."""
    ids = torch.as_tensor(ids).long()
    valid = ids != void
    out = F.one_hot(torch.where(valid, ids, 0), channels).movedim(-1, -3).float()
    return out * valid.unsqueeze(-3)


def _largest_id(ids: torch.Tensor, void: int = 255) -> int:
    valid = ids[ids != void]
    return int(valid.max()) if valid.numel() else 0


class OneHotLabels(torch.utils.data.Dataset):
    """A probe dataset ({"image", "label" (H, W), 255 = ignore}) whose "image" is the one-hot map of its own
    label, (num_classes, H, W) (ignored pixels all zero): the true-labels reference of `linear_probe_segmentation`.
    Raises ValueError (on access) for a label outside 0..num_classes - 1 other than 255."""

    def __init__(self, dataset, num_classes: int):
        self.dataset, self.num_classes = dataset, num_classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[index]
        label = torch.as_tensor(item["label"])
        valid = label[label != 255]
        if valid.numel() and (int(valid.max()) >= self.num_classes or int(valid.min()) < 0):
            raise ValueError(f"OneHotLabels: item {index} has a label outside 0..{self.num_classes - 1} "
                             f"(num_classes = {self.num_classes}; 255 = ignore)")
        return {**item, "image": _one_hot(label, self.num_classes)}


class OneHotMasks(torch.utils.data.Dataset):
    """A video dataset ({"frames" (T, 3, H, W), "masks" (T, H, W) object ids, 255 = void}) whose "frames" are
    the one-hot maps of its own masks, (T, 1 + largest id, H, W): the true-labels reference of label propagation
    (`davis.evaluate_davis`)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[index]
        masks = torch.as_tensor(item["masks"]).long()
        largest = _largest_id(masks)
        return {**item, "frames": _one_hot(masks, largest + 1)}
