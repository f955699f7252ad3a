"""Flow colouring with the Middlebury colour wheel (flow_vis), on a shared scale.

We call `flow_vis.flow_uv_to_colors(u / r_max, v / r_max)` ourselves instead of `flow_vis.flow_to_color`,
which normalises each image by its own max radius (colours not comparable across panels) and, with
`clip_flow`, clips with `np.clip(flow, 0, clip)` so negative components become 0 (anchors 1.10).
Hue = direction (u right, v down), saturation = magnitude / r_max; vectors longer than r_max are dimmed
by flow_vis (x 0.75). Non-finite vectors are drawn as zero flow (white).
"""

from __future__ import annotations

import flow_vis
import numpy as np
import torch

__all__ = ["to_numpy", "max_flow_radius", "robust_flow_radius", "flow_to_rgb", "flow_color_wheel", "error_map"]


def to_numpy(x) -> np.ndarray:
    """Tensor (any device, detached) or array-like -> float/int numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _as_batched_flow(flow) -> tuple[np.ndarray, bool]:
    arr = to_numpy(flow).astype(np.float64)
    if arr.ndim == 3 and arr.shape[0] == 2:
        return arr[None], False
    if arr.ndim == 4 and arr.shape[1] == 2:
        return arr, True
    raise ValueError(f"flow must be (2, H, W) or (B, 2, H, W), got shape {arr.shape}")


def max_flow_radius(*flows, eps: float = 1e-6) -> float:
    """Largest finite |(u, v)| over all given flows ((2,H,W) or (B,2,H,W)); `eps` if all are zero."""
    radius = eps
    for flow in flows:
        if flow is None:
            continue
        arr, _ = _as_batched_flow(flow)
        mag = np.sqrt((arr ** 2).sum(axis=1))
        mag = mag[np.isfinite(mag)]
        if mag.size:
            radius = max(radius, float(mag.max()))
    return radius


def robust_flow_radius(flow, percentile: float = 99.0) -> float:
    """The `percentile`-th percentile of the finite |(u, v)| of one flow ((2,H,W) or (B,2,H,W)); 0.0 if none is
    finite. A colour scale that a few outlier vectors do not wash out."""
    if not 0 < percentile <= 100:
        raise ValueError(f"robust_flow_radius: percentile must be in (0, 100], got {percentile}")
    arr, _ = _as_batched_flow(flow)
    mag = np.sqrt((arr ** 2).sum(axis=1))
    mag = mag[np.isfinite(mag)]
    return float(np.percentile(mag, percentile)) if mag.size else 0.0


def flow_to_rgb(flow, max_flow: float | None = None) -> np.ndarray:
    """Colour a flow: (2, H, W) -> (H, W, 3) uint8, or (B, 2, H, W) -> (B, H, W, 3) uint8.

    Args:
        flow: tensor or ndarray, channel 0 = u, channel 1 = v, pixels.
        max_flow: radius mapped to full saturation. None = the max radius over the whole input (all batch
            elements share it). Pass the same value to several calls to compare flows in one figure.
    """
    arr, batched = _as_batched_flow(flow)
    radius = max_flow_radius(arr) if max_flow is None else float(max_flow)
    if not radius > 0:
        raise ValueError(f"flow_to_rgb: max_flow must be > 0, got {max_flow}")
    arr = np.where(np.isfinite(arr), arr, 0.0) / radius
    # a vector AT the max radius must not be dimmed as "out of range" because of float32 rounding
    rad = np.sqrt((arr ** 2).sum(axis=1, keepdims=True))
    arr = np.where((rad > 1.0) & (rad <= 1.0 + 1e-5), arr / np.maximum(rad, 1e-12), arr)
    images = np.stack([flow_vis.flow_uv_to_colors(a[0], a[1]) for a in arr])
    return images if batched else images[0]


def flow_color_wheel(size: int = 64) -> np.ndarray:
    """Legend (size, size, 3) uint8: pixel at offset (u, v) from the centre (v down) has the colour of flow
    (u, v) / R, R = the inscribed circle's radius (= the shared `max_flow`); outside the circle is white."""
    coords = (np.arange(size) - (size - 1) / 2) / ((size - 1) / 2)
    u, v = np.meshgrid(coords, coords)
    wheel = flow_vis.flow_uv_to_colors(u, v)
    wheel[u ** 2 + v ** 2 > 1.0] = 255
    return wheel


def error_map(pred, gt) -> np.ndarray:
    """Per-pixel endpoint error |pred - gt|_2: (2, H, W) x2 -> (H, W) float32 (also (B,2,H,W) -> (B,H,W))."""
    p, g = to_numpy(pred).astype(np.float32), to_numpy(gt).astype(np.float32)
    if p.shape != g.shape or p.ndim not in (3, 4) or p.shape[-3] != 2:
        raise ValueError(f"error_map: pred {p.shape} and gt {g.shape} must both be (2, H, W) or (B, 2, H, W)")
    return np.sqrt(((p - g) ** 2).sum(axis=-3))
