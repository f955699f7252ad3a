"""Exact, vectorised rendering of a layered scene (`synthetic_scene.Layer`) and its ground truth.

Frame at time t: every pixel x (integer coordinates, x = column, y = row) is mapped to each layer's canonical
coordinates u_L = T_L(t)^{-1} x; the layer covers x iff the analytic shape test holds at u_L (exact, no
anti-aliasing: binary masks); the colour is the layer texture sampled bilinearly at u_L (`F.grid_sample`,
align_corners=True); layers are composed back to front so the topmost covering layer wins. The visible layer
index is the instance id (0 = background).

Ground truth for a pair (t, s), analytic (float64, cast to float32 at the end):
    flow_{t->s}(x) = T_L(s) T_L(t)^{-1} x - x, L = visible layer at x in frame t
                   = v_L (s - t) + (k R(a) - I)(x - c_L(t)),  k = exp(sigma_L (s - t)), a = omega_L (s - t)
    occlusion_{t->s}(x) = y outside [0, W-1] x [0, H-1] (corner-aligned, like `warp.inside_image_mask`)
                          or some layer above L covers y at time s,   y = x + flow_{t->s}(x).
The cover test at y is the same analytic shape test (at a non-integer point), so the ground truth is exact;
a pure integer translation gives an exactly integer flow.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mcjepa.data.synthetic_scene import Layer

_TRIANGLE_NORMALS = tuple((math.cos(a), math.sin(a)) for a in (math.pi / 2, math.pi * 7 / 6, math.pi * 11 / 6))


def inside_shape(shape: str, radius: float, ux: torch.Tensor, uy: torch.Tensor) -> torch.Tensor:
    """Analytic binary shape test at canonical coordinates (ux, uy) (any shape, float). Boundaries inclusive.

    disc |u| <= r; square |u|_inf <= r; triangle: equilateral, circumradius 1.25 r, one vertex pointing up
    (-y), i.e. u . n_k <= 0.625 r for its three edge normals; ring 0.55 r <= |u| <= r; cross: union of two
    bars |u_x| <= r, |u_y| <= 0.35 r and transposed; plane: everywhere.
    """
    if shape == "plane":
        return torch.ones_like(ux, dtype=torch.bool)
    if shape == "disc":
        return ux * ux + uy * uy <= radius * radius
    if shape == "square":
        return (ux.abs() <= radius) & (uy.abs() <= radius)
    if shape == "triangle":
        inside = torch.ones_like(ux, dtype=torch.bool)
        for nx, ny in _TRIANGLE_NORMALS:
            inside &= ux * nx + uy * ny <= 0.625 * radius
        return inside
    if shape == "ring":
        squared = ux * ux + uy * uy
        return (squared <= radius * radius) & (squared >= (0.55 * radius) ** 2)
    if shape == "cross":
        ax, ay, arm = ux.abs(), uy.abs(), 0.35 * radius
        return ((ax <= radius) & (ay <= arm)) | ((ay <= radius) & (ax <= arm))
    raise ValueError(f"inside_shape: unknown shape {shape!r}")


def _pose(layer: Layer, times: torch.Tensor):
    """Centre (cx, cy), angle and log-scale of `layer` at `times` (float64, any shape; results broadcast alike)."""
    cx = layer.center[0] + layer.velocity[0] * times
    cy = layer.center[1] + layer.velocity[1] * times
    angle = layer.angle + layer.angular_velocity * times
    log_scale = layer.log_scale + layer.log_scale_velocity * times
    return cx, cy, angle, log_scale


def canonical_coords(layer: Layer, times: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """u = T(t)^{-1} p = exp(-s(t)) R(-theta(t)) (p - c(t)) for points p = (x, y); `times` (float64)
    broadcasts against x and y (e.g. times (P, 1, 1) with x, y (H, W), or all three (N,))."""
    cx, cy, angle, log_scale = _pose(layer, times)
    dx, dy = x - cx, y - cy
    inv_scale, cos, sin = torch.exp(-log_scale), torch.cos(angle), torch.sin(angle)
    return inv_scale * (cos * dx + sin * dy), inv_scale * (cos * dy - sin * dx)


def _pixel_coords(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer pixel coordinates x (column), y (row), each (H, W) float64."""
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                          indexing="ij")
    return x, y


def layer_box(layer: Layer, times: torch.Tensor, height: int, width: int):
    """Pixel box (y0, y1, x0, x1) (half-open, clipped) that holds the object at all `times` (P,), or None.

    Every shape lies within |u| <= sqrt(2) r (the square's corners), so its image lies within
    |x - c(t)| <= sqrt(2) r exp(s(t)); one pixel of margin.
    """
    cx, cy, _, log_scale = _pose(layer, times)
    reach = math.sqrt(2.0) * layer.radius * torch.exp(log_scale) + 1.0
    x0, x1 = max(0, math.floor((cx - reach).min())), min(width, math.ceil((cx + reach).max()) + 1)
    y0, y1 = max(0, math.floor((cy - reach).min())), min(height, math.ceil((cy + reach).max()) + 1)
    return (y0, y1, x0, x1) if x0 < x1 and y0 < y1 else None


def _sample_texture(layer: Layer, ux: torch.Tensor, uy: torch.Tensor) -> torch.Tensor:
    """Bilinear texture at canonical coords (P, h, w) float64 -> (P, 3, h, w) float32 (align_corners=True)."""
    texture = layer.texture
    tex_h, tex_w = texture.shape[-2:]
    grid = torch.stack([(ux + layer.texture_center[0]) * (2.0 / max(tex_w - 1, 1)) - 1.0,
                        (uy + layer.texture_center[1]) * (2.0 / max(tex_h - 1, 1)) - 1.0], dim=-1)
    return F.grid_sample(texture.unsqueeze(0).expand(ux.shape[0], -1, -1, -1), grid.to(torch.float32),
                         mode="bilinear", padding_mode=layer.padding_mode, align_corners=True)


def render_frames(layers: list[Layer], times: torch.Tensor, height: int, width: int):
    """Render the scene at `times` (P,) (fractional times allowed).

    Objects are only evaluated inside their `layer_box` (exactly equivalent: they cover nothing outside it).
    Returns frames (P, 3, H, W) float32 in [0, 1] and visible (P, H, W) int64 = index of the topmost layer.
    """
    if not layers or layers[0].shape != "plane":
        raise ValueError("render_frames: layers[0] must be a background layer with shape 'plane'")
    times = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    num = times.numel()
    x, y = _pixel_coords(height, width)
    frames = _sample_texture(layers[0], *canonical_coords(layers[0], times.view(-1, 1, 1), x, y))
    visible = torch.zeros(num, height, width, dtype=torch.int64)
    for index, layer in enumerate(layers[1:], start=1):
        box = layer_box(layer, times, height, width)
        if box is None:
            continue
        y0, y1, x0, x1 = box
        ux, uy = canonical_coords(layer, times.view(-1, 1, 1), x[y0:y1, x0:x1], y[y0:y1, x0:x1])
        inside = inside_shape(layer.shape, layer.radius, ux, uy)
        frames[:, :, y0:y1, x0:x1] = torch.where(inside.unsqueeze(1), _sample_texture(layer, ux, uy),
                                                 frames[:, :, y0:y1, x0:x1])
        visible[:, y0:y1, x0:x1] = torch.where(inside, index, visible[:, y0:y1, x0:x1])
    return frames, visible


def _layer_flow(layer: Layer, t: torch.Tensor, step: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """Flow of `layer` from time t to t + step at pixels (x, y): v step + (k R(a) - I)(p - c(t)), float64."""
    cx, cy, _, _ = _pose(layer, t)
    scale = torch.exp(layer.log_scale_velocity * step)
    cos, sin = scale * torch.cos(layer.angular_velocity * step), scale * torch.sin(layer.angular_velocity * step)
    dx, dy = x - cx, y - cy
    return (layer.velocity[0] * step + (cos - 1.0) * dx - sin * dy,
            layer.velocity[1] * step + sin * dx + (cos - 1.0) * dy)


def pair_ground_truth(layers: list[Layer], visible_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor):
    """Exact flow t->s and occlusion for P pairs (module docstring).

    Args:
        visible_t: (P, H, W) int64 visible layer index in frame t (from `render_frames`).
        t, s: (P,) source and target times.
    Returns flow (P, 2, H, W) float32 and occlusion (P, H, W) bool.
    """
    num, height, width = visible_t.shape
    t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
    s = torch.as_tensor(s, dtype=torch.float64).reshape(-1)
    if t.numel() != num or s.numel() != num:
        raise ValueError(f"pair_ground_truth: {t.numel()} / {s.numel()} times for {num} visibility maps")
    x, y = _pixel_coords(height, width)
    t3, step3 = t.view(-1, 1, 1), (s - t).view(-1, 1, 1)
    flow_x, flow_y = _layer_flow(layers[0], t3, step3, x, y)
    for index, layer in enumerate(layers[1:], start=1):  # visible pixels of a layer lie in its box at time t
        box = layer_box(layer, t, height, width)
        if box is None:
            continue
        y0, y1, x0, x1 = box
        here = visible_t[:, y0:y1, x0:x1] == index
        layer_fx, layer_fy = _layer_flow(layer, t3, step3, x[y0:y1, x0:x1], y[y0:y1, x0:x1])
        flow_x[:, y0:y1, x0:x1] = torch.where(here, layer_fx, flow_x[:, y0:y1, x0:x1])
        flow_y[:, y0:y1, x0:x1] = torch.where(here, layer_fy, flow_y[:, y0:y1, x0:x1])
    target_x, target_y = x + flow_x, y + flow_y
    occlusion = (target_x < 0) | (target_x > width - 1) | (target_y < 0) | (target_y > height - 1)
    # Covered in frame s by a layer above the visible one: test only targets inside that layer's box.
    for index, layer in enumerate(layers[1:], start=1):
        box = layer_box(layer, s, height, width)
        if box is None:
            continue
        y0, y1, x0, x1 = box
        candidate = ((visible_t < index) & (target_x >= x0) & (target_x <= x1 - 1)
                     & (target_y >= y0) & (target_y <= y1 - 1))
        where = candidate.nonzero(as_tuple=True)
        if where[0].numel() == 0:
            continue
        ux, uy = canonical_coords(layer, s[where[0]], target_x[where], target_y[where])
        occlusion[where] |= inside_shape(layer.shape, layer.radius, ux, uy)
    flow = torch.stack([flow_x, flow_y], dim=1).to(torch.float32)
    return flow, occlusion


def render_layers(layers: list[Layer], num_frames: int, height: int, width: int) -> dict:
    """Render frames 0..T-1 of a scene with consecutive-pair ground truth (keys as `synthetic.render_sequence`)."""
    if num_frames < 1:
        raise ValueError(f"render_layers: num_frames must be >= 1, got {num_frames}")
    frames, visible = render_frames(layers, torch.arange(num_frames), height, width)
    pairs = num_frames - 1
    if pairs > 0:
        forward = torch.arange(pairs)
        flows, occlusions = pair_ground_truth(layers, torch.cat([visible[:-1], visible[1:]]),
                                              torch.cat([forward, forward + 1]), torch.cat([forward + 1, forward]))
    else:
        flows = torch.zeros(0, 2, height, width)
        occlusions = torch.zeros(0, height, width, dtype=torch.bool)
    class_of_layer = torch.tensor([layer.class_id for layer in layers], dtype=torch.int64)
    return {
        "frames": frames,
        "flows_fw": flows[:pairs].contiguous(),
        "flows_bw": flows[pairs:].contiguous(),
        "occlusions_fw": occlusions[:pairs].contiguous(),
        "occlusions_bw": occlusions[pairs:].contiguous(),
        "instances": visible,
        "classes": class_of_layer[visible],
    }
