"""The one warp of the kit: backward warping of a tensor by a flow field, through kornia.

Convention (ARFlow/RAFT/PWC): a pixel x of the output samples the input at x + flow(x), bilinearly, with
corner-aligned coordinates (`align_corners=True`), so that a zero flow is an exact identity and an integer
flow is an exact shift. kornia's `remap` resolves `align_corners=None` to False, which breaks identity warps:
we always pass True.

Precision: under bf16 autocast (the paper preset on GPUs) flows and features arrive in bfloat16, whose 8-bit
mantissa rounds an absolute coordinate like 831.3 to a multiple of 4. Every absolute coordinate, sampling grid
and flow rescaling here is computed in float32 whatever the inputs' dtypes (which may differ), and the result
is returned in the dtype of the tensor sampled or resized.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.geometry import create_meshgrid
from kornia.geometry.transform import remap


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Absolute pixel coordinates (1, 2, H, W): channel 0 = x (column), channel 1 = y (row)."""
    grid = create_meshgrid(height, width, normalized_coordinates=False, device=device, dtype=dtype)
    return grid.permute(0, 3, 1, 2)


def warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Sample `x` at `grid + flow`.

    Args:
        x: (B, C, H, W) tensor to warp (an image or features of the *target* frame).
        flow: (B, 2, H, W) displacement in pixels of this resolution, (u, v) = (x, y).
        padding_mode: "zeros" or "border" for samples falling outside the image.
    Returns:
        (B, C, H, W) in x's dtype: out[b, :, y, x] = x[b, :, y + v, x + u] (bilinear; x and flow may have
        different dtypes, coordinates and sampling are in float32 at least).
    """
    if x.shape[-2:] != flow.shape[-2:] or flow.shape[1] != 2 or flow.shape[0] != x.shape[0]:
        raise ValueError(f"warp: x {tuple(x.shape)} and flow {tuple(flow.shape)} must be (B,C,H,W) and (B,2,H,W)")
    coords = _absolute(flow)
    dtype = torch.promote_types(_wide(x.dtype), coords.dtype)  # grid_sample needs one dtype; autocast keeps it
    out = remap(x.to(dtype), coords[:, 0].to(dtype), coords[:, 1].to(dtype), mode="bilinear",
                padding_mode=padding_mode, align_corners=True)
    return out.to(x.dtype)


def _wide(dtype: torch.dtype) -> torch.dtype:
    """float32 for half-precision dtypes (bfloat16, float16), float64 stays float64."""
    return torch.promote_types(dtype, torch.float32)


def _absolute(flow: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W): pixel coordinates + flow, in float32 (float64 for a float64 flow) whatever flow's dtype."""
    height, width = flow.shape[-2:]
    dtype = _wide(flow.dtype)
    return pixel_grid(height, width, device=flow.device, dtype=dtype) + flow.to(dtype)


def inside_image_mask(flow: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) in flow's dtype: 1 where x + flow(x) lands inside the image (corner-aligned bounds), else 0
    (decided in float32)."""
    height, width = flow.shape[-2:]
    coords = _absolute(flow)
    inside_x = (coords[:, 0] >= 0) & (coords[:, 0] <= width - 1)
    inside_y = (coords[:, 1] >= 0) & (coords[:, 1] <= height - 1)
    return (inside_x & inside_y).unsqueeze(1).to(flow.dtype)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize a flow (B, 2, h, w) to `size` = (H, W), rescaling u by W/w and v by H/h (in float32;
    returned in flow's dtype)."""
    height, width = size
    dtype = _wide(flow.dtype)
    scale = torch.tensor([width / flow.shape[-1], height / flow.shape[-2]], device=flow.device, dtype=dtype)
    resized = F.interpolate(flow.to(dtype), size=size, mode="bilinear", align_corners=True) * scale.view(1, 2, 1, 1)
    return resized.to(flow.dtype)


def upsample_flow2(flow: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Upsample a flow by 2 (or to `size`), multiplying its values by the scale (PWC-Net step 1)."""
    if size is None:
        size = (flow.shape[-2] * 2, flow.shape[-1] * 2)
    return resize_flow(flow, size)
