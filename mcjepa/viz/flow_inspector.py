"""The flow inspector: browse flow predictions per pair, pyramid level, direction and view, and the cost volume
at a pixel (notebooks 14 and 15), testable without a browser (protocol: mcjepa.viz.live).

Conventions: images (3, H, W) in [0, 1]; flows (2, H, W) pixels; predictions are cached per pair index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from mcjepa.models.warp import resize_flow, warp
from mcjepa.viz import flow_views
from mcjepa.viz.flow import ZERO_FLOW, add_flow_legend
from mcjepa.viz.flow_colors import max_flow_radius, robust_flow_radius, to_numpy
from mcjepa.viz.flow_views import Shown, rescale_point, resize_image
from mcjepa.viz.images import hide_ticks, to_image
from mcjepa.viz.live import LiveImage, click_events, figure_point

__all__ = ["FlowInspector"]


class FlowInspector:
    """Browse flow predictions per pair, pyramid level, direction and view, and the cost volume at a pixel.

    Args:
        pairs: sequence of flow-pair sample dicts {"frame1", "frame2" (3, H, W), optional "flow" (2, H, W),
            "valid", "occlusion" (H, W) bool, "name"}.
        predict_fn: (frame1 (1, 3, H, W), frame2) -> {"flows_fw": [(1, 2, h_l, w_l)] coarse -> fine in level
            pixels, "flows_bw": same, "flow_fw" (1, 2, H, W), "flow_bw", optional "occlusion_fw"/"occlusion_bw"
            (1, 1, H, W), optional "cost_volume_fn": (level, y, x) -> (2r+1, 2r+1) array (level coordinates) of
            the forward pass, optional "cost_volume_bw_fn": the same for the backward pass}.
            Called once per pair (cached in `self.cache`).

    State: pair_index; level (-1 = full resolution, 0..L-1 = pyramid level, coarse -> fine); direction "fw"/"bw";
    view in VIEWS; (x, y) a pixel in full-resolution coordinates (mapped to the level, corner-aligned).
    fw: reference = frame1, target = frame2, warped = warp(frame2, f_fw) ~ frame1; bw swaps the frames.
    The cost volume is read at the shown level (the finest pyramid level when level = -1), in the shown direction.
    Flow colours: the ground truth's max radius (fw, when given), unless the shown flow is small against it
    (99th percentile of |f| < SMALL_FLOW x that radius) or there is no GT: then the shown flow's own 99th
    percentile, so that a weak model's flow is not drawn white.
    """

    SMALL_FLOW = 0.5

    VIEWS = tuple(flow_views.VIEWS)  # ("flow", "occlusion", "warped image", "photometric error", "EPE error map")

    def __init__(self, pairs: Sequence[Mapping], predict_fn: Callable[[torch.Tensor, torch.Tensor], dict]):
        if len(pairs) == 0:
            raise ValueError("FlowInspector: no pairs")
        self.pairs = pairs
        self.predict_fn = predict_fn
        self.cache: dict[int, dict] = {}

    def prediction(self, pair_index: int) -> dict:
        if pair_index not in self.cache:
            pair = self.pairs[pair_index]
            with torch.no_grad():
                self.cache[pair_index] = self.predict_fn(pair["frame1"][None].float(), pair["frame2"][None].float())
        return self.cache[pair_index]

    def num_levels(self, pair_index: int = 0) -> int:
        return len(self.prediction(pair_index).get("flows_fw", []))

    def level_flow(self, pair_index: int, level: int, direction: str = "fw") -> torch.Tensor:
        """The predicted flow (1, 2, h, w) at `level` (-1 = full resolution) in level pixels, on the CPU.
        Raises ValueError for a level outside -1..L-1."""
        pred = self.prediction(pair_index)
        levels = pred.get(f"flows_{direction}", [])
        if level == -1:
            flow = pred[f"flow_{direction}"]
        elif 0 <= level < len(levels):
            flow = levels[level]
        else:
            raise ValueError(f"FlowInspector: level {level} not in -1..{len(levels) - 1}")
        return flow.detach().float().cpu()

    def compute_panels(self, pair_index: int = 0, level: int = -1, direction: str = "fw", view: str = "flow",
                       x: int | None = None, y: int | None = None) -> dict:
        """Arrays for one state: {"reference", "target", "warped" (h, w, 3) float; "flow" (2, h, w);
        "view" array; "view_kind" in {"rgb", "scalar", "mask", "message"}; "title"; "point" (x_l, y_l);
        "target_point" (x_l + u, y_l + v); "cost_volume" (2r+1, 2r+1) or None; "max_flow"}."""
        if direction not in ("fw", "bw"):
            raise ValueError(f"FlowInspector: direction must be 'fw' or 'bw', got {direction!r}")
        if view not in self.VIEWS:
            raise ValueError(f"FlowInspector: view must be one of {self.VIEWS}, got {view!r}")
        pair = self.pairs[pair_index]
        flow = self.level_flow(pair_index, level, direction)
        size = tuple(flow.shape[-2:])
        frame1, frame2 = pair["frame1"][None].float(), pair["frame2"][None].float()
        reference, target = (frame1, frame2) if direction == "fw" else (frame2, frame1)
        reference, target = resize_image(reference, size), resize_image(target, size)
        warped = warp(target, flow)
        full_h, full_w = pair["frame1"].shape[-2:]
        x = full_w // 2 if x is None else int(np.clip(x, 0, full_w - 1))
        y = full_h // 2 if y is None else int(np.clip(y, 0, full_h - 1))
        x_l, y_l = (int(round(c)) for c in rescale_point(x, y, (full_h, full_w), size))
        u, v = (float(c) for c in flow[0, :, y_l, x_l])
        gt = pair.get("flow") if direction == "fw" else None
        max_flow, scale_note = self.flow_scale(flow, resize_flow(gt[None].float(), size) if gt is not None else None)
        shown = Shown(pair, self.prediction(pair_index), direction, "full res" if level == -1 else f"level {level}",
                      flow, reference, warped, gt, max_flow)
        view_array, view_kind, title = flow_views.VIEWS[view](shown)
        out = {"reference": to_image(reference[0]), "target": to_image(target[0]), "warped": to_image(warped[0]),
               "flow": flow[0].numpy(), "point": (x_l, y_l), "target_point": (x_l + u, y_l + v),
               "max_flow": max_flow, "flow_scale": scale_note, "level_size": size,
               "view": view_array, "view_kind": view_kind, "title": title}
        return {**out, **self.cost_volume(pair_index, level, direction, x, y)}

    def cost_volume(self, pair_index: int, level: int, direction: str, x: int, y: int) -> dict:
        """{"cost_volume": (2r+1, 2r+1) float32 or None, "cost_volume_title": str or None, and, when the prediction
        has cost volumes and levels, "cost_volume_level"}: the volume of `direction` at the full-resolution pixel
        (x, y) mapped to the shown level (the finest pyramid level when `level` = -1)."""
        pred = self.prediction(pair_index)
        levels = pred.get(f"flows_{direction}", [])
        out = {"cost_volume": None, "cost_volume_title": None}
        has_costs = pred.get("cost_volume_fn") is not None or pred.get("cost_volume_bw_fn") is not None
        if not has_costs or len(levels) == 0:
            return out
        cost_fn = pred.get("cost_volume_fn" if direction == "fw" else "cost_volume_bw_fn")
        out["cost_volume_level"] = cv_level = len(levels) - 1 if level == -1 else level
        if cost_fn is None:
            out["cost_volume_title"] = f"no {direction} cost volume"
            return out
        full_size = tuple(self.pairs[pair_index]["frame1"].shape[-2:])
        cx, cy = (int(round(c)) for c in rescale_point(x, y, full_size, tuple(levels[cv_level].shape[-2:])))
        out["cost_volume"] = to_numpy(cost_fn(cv_level, cy, cx)).astype(np.float32)
        out["cost_volume_title"] = f"cost volume {direction} (level {cv_level})"
        return out

    @classmethod
    def flow_scale(cls, flow: torch.Tensor, gt: torch.Tensor | None) -> tuple[float, str]:
        """(radius at the colour wheel's rim, what it is) for the shown flow (1, 2, h, w) and the GT at the same
        size (or None). Zero flow gives (its max radius < ZERO_FLOW, "zero flow")."""
        largest = max_flow_radius(flow, eps=0.0)
        if largest < ZERO_FLOW:
            return largest, "zero flow"
        own = max(robust_flow_radius(flow, 99.0), ZERO_FLOW)
        if gt is not None:
            gt_radius = max_flow_radius(gt, eps=0.0)
            if gt_radius >= ZERO_FLOW and own >= cls.SMALL_FLOW * gt_radius:
                return gt_radius, "GT max"
            return own, "this flow's 99th pct, GT max " + f"{gt_radius:.3g} px"
        return own, "this flow's 99th pct"

    def click_to_pixel(self, pair_index: int, level: int, hit: tuple[int, float, float] | None
                       ) -> tuple[int, int] | None:
        """Full-resolution (x, y) picked by a click `hit` = `figure_point(...)` on the figure of a state with this
        pair and level: a click on the reference, the target or the view panel (axes 0-2, drawn in level pixels)
        picks that pixel; elsewhere (cost volume, legend, margins) None."""
        if hit is None or hit[0] not in (0, 1, 2):
            return None
        _, x_l, y_l = hit
        h_l, w_l = self.level_flow(pair_index, level).shape[-2:]
        full_size = tuple(self.pairs[pair_index]["frame1"].shape[-2:])
        x, y = rescale_point(np.clip(x_l, 0, w_l - 1), np.clip(y_l, 0, h_l - 1), (h_l, w_l), full_size)
        return int(round(x)), int(round(y))

    def render(self, pair_index: int = 0, level: int = -1, direction: str = "fw", view: str = "flow",
               x: int | None = None, y: int | None = None) -> Figure:
        """Figure with panels [reference (pixel marked), target (p + f marked), view, cost volume if any]."""
        p = self.compute_panels(pair_index, level, direction, view, x, y)
        ncols = 3 + (p["cost_volume_title"] is not None)
        fig = Figure(figsize=(3.3 * ncols + 0.8, 3.3), layout="constrained")
        axes = fig.subplots(1, ncols + 1, gridspec_kw={"width_ratios": [1.0] * ncols + [0.3]})
        ref_name, tgt_name = ("frame 1", "frame 2") if direction == "fw" else ("frame 2", "frame 1")
        (x_l, y_l), (tx, ty) = p["point"], p["target_point"]
        u, v = p["flow"][:, y_l, x_l]
        name = self.pairs[pair_index].get("name", f"pair {pair_index}")
        axes[0].imshow(p["reference"])
        axes[0].plot([x_l], [y_l], "o", ms=7, mfc="none", mec="w", mew=2)
        axes[0].plot([x_l], [y_l], "+", ms=7, color="k")
        axes[0].set_title(f"{name}: {ref_name}\n({x_l}, {y_l}) -> f = ({u:.2f}, {v:.2f})", fontsize=9)
        axes[1].imshow(p["target"])
        axes[1].plot([tx], [ty], "o", ms=7, mfc="none", mec="w", mew=2)
        axes[1].plot([x_l], [y_l], "+", ms=6, color="k", alpha=0.6)
        axes[1].set_title(f"{tgt_name}: p + f = ({tx:.1f}, {ty:.1f})", fontsize=9)
        ax = axes[2]
        kind = p["view_kind"]
        if kind == "rgb":
            ax.imshow(p["view"])
        elif kind == "mask":
            ax.imshow(p["view"], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        elif kind == "scalar":
            finite = p["view"][np.isfinite(p["view"])]
            vmax = max(float(np.percentile(finite, 99)), 1e-6) if finite.size else 1.0
            image = ax.imshow(p["view"], cmap="magma", vmin=0, vmax=vmax)
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
        else:
            ax.text(0.5, 0.5, p["title"], ha="center", va="center", transform=ax.transAxes)
        if kind != "message":
            ax.plot([x_l], [y_l], "+", ms=8, color="c")
        ax.set_title(p["title"], fontsize=9)
        if p["cost_volume"] is not None:
            cv = p["cost_volume"]
            r = (cv.shape[0] - 1) // 2
            ax = axes[3]
            image = ax.imshow(cv, cmap="viridis", extent=(-r - 0.5, r + 0.5, r + 0.5, -r - 0.5))
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
            dy, dx = np.unravel_index(int(np.argmax(cv)), cv.shape)
            ax.plot([dx - r], [dy - r], "x", color="r", ms=8)
            ax.set_title(f"{p['cost_volume_title']}\nargmax offset ({dx - r}, {dy - r})", fontsize=9)
            ax.set_xlabel("dx")
            ax.set_ylabel("dy")
        elif p["cost_volume_title"] is not None:
            axes[3].text(0.5, 0.5, p["cost_volume_title"], ha="center", va="center", transform=axes[3].transAxes)
            axes[3].set_axis_off()
        if kind == "rgb" and view == "flow":
            add_flow_legend(axes[-1], p["max_flow"], p["flow_scale"])
        else:
            axes[-1].set_axis_off()
        for ax in axes[:3]:
            hide_ticks(ax)
        return fig

    def widget(self):
        """Controls + the live picture. The x/y sliders follow the pair's size (centre on a pair change); a click
        on the reference, target or view panel picks that pixel (ipyevents). Sets `self.controls`, `self.live`
        (the LiveImage) and `self.on_image_click(event)` (the click handler, callable without a browser)."""
        import ipywidgets as W

        height, width = self.pairs[0]["frame1"].shape[-2:]
        levels = self.num_levels(0)
        narrow = W.Layout(width="260px")
        controls = {
            "pair_index": W.IntSlider(value=0, min=0, max=len(self.pairs) - 1, description="pair", layout=narrow),
            "level": W.Dropdown(options=[("full res", -1)] + [(f"level {i}", i) for i in range(levels)], value=-1,
                                description="level", layout=W.Layout(width="200px")),
            "direction": W.ToggleButtons(options=["fw", "bw"], value="fw", style={"button_width": "48px"},
                                         tooltips=["frame 1 -> frame 2", "frame 2 -> frame 1"]),
            "view": W.Dropdown(options=list(self.VIEWS), value="flow", description="view",
                               layout=W.Layout(width="260px")),
            "x": W.IntSlider(value=width // 2, min=0, max=width - 1, description="x", layout=narrow),
            "y": W.IntSlider(value=height // 2, min=0, max=height - 1, description="y", layout=narrow),
        }
        live: dict = {}

        def on_pair(change) -> None:  # registered before the LiveImage's observer, which then renders once
            h, w = self.pairs[change["new"]]["frame1"].shape[-2:]
            with live["image"].held(render_after=False):
                controls["x"].max, controls["y"].max = w - 1, h - 1
                controls["x"].value, controls["y"].value = w // 2, h // 2

        controls["pair_index"].observe(on_pair, names="value")
        live["image"] = self.live = LiveImage(self.render, controls)

        def on_image_click(event: Mapping) -> None:
            if event.get("type", "click") != "click" or self.live.last_figure is None:
                return
            state = self.live.state()
            hit = figure_point(self.live.last_figure, event["dataX"], event["dataY"])
            picked = self.click_to_pixel(state["pair_index"], state["level"], hit)
            if picked is not None and picked != (state["x"], state["y"]):
                with self.live.held():
                    controls["x"].value, controls["y"].value = picked

        self.controls, self.on_image_click = controls, on_image_click
        self._click_events = click_events(self.live.image, on_image_click)
        direction = W.HBox([W.Label("direction", layout=W.Layout(width="auto", margin="0 4px 0 8px")),
                            controls["direction"]], layout=W.Layout(align_items="center"))
        hint = W.HTML("<small>click a pixel of the first three panels to pick it</small>")
        return W.VBox([W.HBox([controls["pair_index"], controls["level"], direction]),
                       W.HBox([controls["view"], controls["x"], controls["y"]]), hint, self.live.image])

