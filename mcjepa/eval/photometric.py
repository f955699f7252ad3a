"""How well a flow explains footage without ground truth: the training losses' data terms on held-out pairs.

For a pair (I1, I2) and a forward flow f, I2 is warped back onto I1 (R = warp(I2, f), `mcjepa.models.warp`)
and compared over the pixels whose target lands inside the image (`inside_image_mask`); when several flows
are compared (`photometric_errors`), over the pixels inside for all of them, so that a flow pointing out of the
frame cannot drop its hardest pixels from its own score:

    photometric = < |I1 - R| >          mean absolute error over channels and visible pixels, intensities in [0, 1]
    census      = L_census(I1, R)       the census loss the tiny preset trains with (`mcjepa.losses.census`)

Both are lower for a better flow; zero flow (`zero_flow`) is the baseline a flow must beat.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch

from ..losses.census import census_loss
from ..losses.photometric import reconstruction_loss
from ..models.warp import inside_image_mask, warp

FlowFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def zero_flow(frame1: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
    """The no-motion baseline: (B,3,H,W) x2 -> zeros (B,2,H,W)."""
    return frame1.new_zeros(frame1.shape[0], 2, *frame1.shape[-2:])


@torch.no_grad()
def pair_errors(frame1: torch.Tensor, frame2: torch.Tensor, flow: torch.Tensor, census_radius: int = 3,
                mask: torch.Tensor | None = None) -> dict[str, float]:
    """{"photometric", "census"} (module docstring) of one flow (1,2,H,W) for frames (1,3,H,W) in [0, 1], over
    `mask` (1,1,H,W) (default: the flow's own `inside_image_mask`)."""
    frame1, frame2, flow = frame1.float(), frame2.float(), flow.float()
    reconstruction = warp(frame2, flow)
    mask = inside_image_mask(flow) if mask is None else mask.float()
    photometric = reconstruction_loss(frame1, reconstruction, mask, w_l1=1.0, w_l2=0.0, w_ssim=0.0)
    census = census_loss(frame1, reconstruction, mask, census_radius)
    return {"photometric": float(photometric), "census": float(census)}


def photometric_errors(flow_fns: Mapping[str, FlowFn], pairs: Iterable[Mapping], census_radius: int = 3
                       ) -> dict[str, dict]:
    """For each named flow function (frame1, frame2 (1,3,H,W) -> flow (1,2,H,W)): the mean "photometric" and
    "census" errors over `pairs` (dicts with "frame1", "frame2" (3,H,W) in [0, 1]) and the per-pair values
    ("per_pair": [{"name", "photometric", "census"}]). Every flow of a pair is scored on the same pixels: those
    that land inside the image under all of them. Raises ValueError when `pairs` is empty."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("photometric_errors: no pairs")
    rows: dict[str, list[dict]] = {label: [] for label in flow_fns}
    for index, pair in enumerate(pairs):
        frame1, frame2 = pair["frame1"][None], pair["frame2"][None]
        flows = {label: flow_fn(frame1, frame2).float() for label, flow_fn in flow_fns.items()}
        shared = torch.stack([inside_image_mask(flow) for flow in flows.values()]).amin(dim=0)
        for label, flow in flows.items():
            errors = pair_errors(frame1, frame2, flow, census_radius, shared)
            rows[label].append({"name": str(pair.get("name", index)), **errors})
    return {label: {**{key: sum(r[key] for r in per) / len(per) for key in ("photometric", "census")},
                    "per_pair": per} for label, per in rows.items()}
