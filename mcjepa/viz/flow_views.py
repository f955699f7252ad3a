"""The views of the flow inspector (mcjepa.viz.flow_inspector), one small function each, and the pixel mapping
between full resolution and a pyramid level.

A view takes the `Shown` state (one pair, one level, one direction) and returns (array, kind, title): kind "rgb"
((h, w, 3) float in [0, 1] or uint8), "scalar" ((h, w) float, NaN where undefined), "mask" ((h, w) bool) or
"message" (array None; the title says why there is nothing to show). `VIEWS` maps the view names, in the
order of the inspector's dropdown, to these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mcjepa.data.augment import resize_sparse_flow
from mcjepa.models.warp import inside_image_mask, resize_flow
from mcjepa.viz.flow import ZERO_FLOW
from mcjepa.viz.flow_colors import error_map, flow_to_rgb
from mcjepa.viz.images import to_image

__all__ = ["Shown", "VIEWS", "rescale_point", "resize_image", "resize_mask"]


def rescale_point(x: float, y: float, size_from: tuple[int, int], size_to: tuple[int, int]) -> tuple[float, float]:
    """A pixel (x, y) of an image of `size_from` = (h, w) in the pixels of the same image at `size_to`,
    corner-aligned (pixel 0 -> 0, last -> last; a side of 1 pixel maps everything to 0). Not rounded."""
    (h0, w0), (h1, w1) = size_from, size_to
    return x * (w1 - 1) / max(w0 - 1, 1), y * (h1 - 1) / max(h0 - 1, 1)


def resize_image(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, h, w), antialiased bilinear (identity when the size already matches)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W) bool -> (h, w) bool by nearest neighbour."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask.bool()
    return F.interpolate(mask.float()[None, None], size=size, mode="nearest")[0, 0] > 0.5


@dataclass(frozen=True)
class Shown:
    """What the views draw from. fw: reference = frame 1, target = frame 2; bw swaps them.

    pair: the sample dict (frames (3, H, W), optional "flow" (2, H, W), "valid", "occlusion" (H, W) bool);
    pred: its prediction dict (FlowInspector's predict_fn); direction "fw"/"bw"; level_name "full res"/"level l";
    flow (1, 2, h, w) in level pixels; reference, warped (1, 3, h, w) = the reference and warp(target, flow);
    gt (2, H, W) full-resolution ground truth of the shown direction or None (GT is forward only);
    max_flow: the colour wheel's rim radius in px.
    """

    pair: Mapping
    pred: Mapping
    direction: str
    level_name: str
    flow: torch.Tensor
    reference: torch.Tensor
    warped: torch.Tensor
    gt: torch.Tensor | None
    max_flow: float

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.flow.shape[-2:])


def flow_view(s: Shown):
    """The flow in colours, rim = `s.max_flow` (at least ZERO_FLOW, so that zero flow is white)."""
    return flow_to_rgb(s.flow[0], max_flow=max(s.max_flow, ZERO_FLOW)), "rgb", f"flow {s.direction} ({s.level_name})"


def occlusion_view(s: Shown):
    """The predicted occlusion mask of the direction (> 0.5), else the GT occlusion (fw only), else a message."""
    occ = s.pred.get(f"occlusion_{s.direction}")
    if occ is not None:
        mask = resize_mask(occ.detach().cpu().reshape(occ.shape[-2:]) > 0.5, s.size)
        return mask.numpy(), "mask", f"predicted occlusion {s.direction} ({float(mask.float().mean()):.1%})"
    if s.direction == "fw" and s.pair.get("occlusion") is not None:
        mask = resize_mask(s.pair["occlusion"], s.size)
        return mask.numpy(), "mask", f"GT occlusion ({float(mask.float().mean()):.1%})"
    return None, "message", "no occlusion available"


def warped_view(s: Shown):
    """The target warped back by the flow (ideally the reference)."""
    return to_image(s.warped[0]), "rgb", f"warp(frame{2 if s.direction == 'fw' else 1}, flow_{s.direction})"


def photometric_view(s: Shown):
    """|warped - reference| averaged over the colour channels, NaN where the flow leaves the image."""
    err = (s.warped - s.reference).abs().mean(1)[0]
    inside = inside_image_mask(s.flow)[0, 0] > 0
    title = f"|warped - frame{1 if s.direction == 'fw' else 2}| (mean {float(err[inside].mean()):.3f})"
    return torch.where(inside, err, torch.nan).numpy(), "scalar", title


def epe_view(s: Shown):
    """Per-pixel endpoint error (px) against the GT resized to the level, NaN where there is no GT."""
    if s.gt is None:
        return None, "message", "no ground truth" + (" for bw" if s.direction == "bw" else "")
    valid = s.pair.get("valid")
    if valid is None or valid.all():  # dense GT: bilinear
        gt_l, valid = resize_flow(s.gt[None].float(), s.size)[0], torch.ones(s.size, dtype=torch.bool)
    else:  # sparse GT: resampled by its mask, never blended with the invalid zeros
        gt_l, valid = (t[0] for t in resize_sparse_flow(s.gt[None].float(), valid[None].bool(), s.size))
    epe = np.where(valid.numpy(), error_map(s.flow[0], gt_l), np.nan)
    return epe, "scalar", f"EPE ({s.level_name}, mean {float(np.nanmean(epe)):.2f} px)"


VIEWS: dict[str, Callable[[Shown], tuple]] = {
    "flow": flow_view,
    "occlusion": occlusion_view,
    "warped image": warped_view,
    "photometric error": photometric_view,
    "EPE error map": epe_view,
}
