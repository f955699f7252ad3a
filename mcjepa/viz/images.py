"""Arrays as the figure builders draw them: tensor or array images to (H, W, 3) floats, panels without ticks.

Images follow the kit's convention (3, H, W) in [0, 1]; (H, W, 3), (H, W) and uint8 are accepted too.
"""

from __future__ import annotations

import numpy as np

from mcjepa.viz.flow_colors import to_numpy

__all__ = ["to_image", "hide_ticks"]


def to_image(x) -> np.ndarray:
    """(3, H, W) or (H, W, 3) tensor/array in [0, 1] (or uint8) -> (H, W, 3) float array in [0, 1]."""
    arr = to_numpy(x)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3):
        raise ValueError(f"to_image: expected (3, H, W) or (H, W, 3), got shape {arr.shape}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    return np.clip(arr, 0.0, 1.0)


def hide_ticks(ax) -> None:
    """An image panel: no x/y ticks (the frame and an y label stay, unlike `ax.set_axis_off()`)."""
    ax.set_xticks([])
    ax.set_yticks([])
