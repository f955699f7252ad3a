"""Interactive inspectors for notebooks, testable without a browser.

Each inspector holds its data and a cache of predictions, and exposes
- `compute_panels(**state) -> dict` : the arrays shown for a control state (pure given the predictions),
- `render(**state) -> Figure`       : a matplotlib Figure drawn from those arrays (no pyplot),
- `widget()`                        : ipywidgets controls wired by a `LiveImage`; each change renders the figure
                                      to PNG into an Image widget (works in any frontend and under papermill).

Conventions: images (3, H, W) in [0, 1]; flows (2, H, W) pixels; predictions are cached per sample index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from mcjepa.data.augment import resize_sparse_flow
from mcjepa.models.warp import inside_image_mask, resize_flow, warp
from mcjepa.viz.flow_colors import error_map, flow_to_rgb, max_flow_radius, robust_flow_radius, to_numpy
from mcjepa.viz.data_overview import draw_panel
from mcjepa.viz.display import figure_png
from mcjepa.viz.flow import ZERO_FLOW, add_flow_legend
from mcjepa.viz.images import hide_ticks, to_image
from mcjepa.viz.segmentation import IGNORE_COLOR, add_class_legend, colorize_labels, overlay_mask

__all__ = ["FlowInspector", "SegmentationInspector", "DataTour", "LiveImage", "figure_point"]


def figure_point(fig: Figure, px: float, py: float) -> tuple[int, float, float] | None:
    """Which axes of `fig` (as last saved with `figure_png(..., tight=False)`) is under the PNG pixel (px, py)
    (origin top left, as a browser reports it), and the data coordinates there: (axes index, x, y) or None.
    Only axes showing an image count (panels, not colour bars or legends)."""
    width, height = fig.canvas.get_width_height()
    display = (float(px), float(height) - float(py))  # matplotlib's display origin is bottom left
    for index, ax in enumerate(fig.axes):
        if not ax.images or not ax.get_visible():
            continue
        if ax.get_window_extent().contains(*display):
            x, y = ax.transData.inverted().transform(display)
            return index, float(x), float(y)
    return None


class LiveImage:
    """An ipywidgets.Image showing `render(**values of controls)` as PNG, re-rendered on every change.

    An Image whose value is replaced, rather than an Output widget capturing display calls: output capture
    needs the frontend (or nbclient) to route messages back, and under papermill that wait never ends.
    The PNG keeps the figure's size (no tight bounding box), so the picture does not jump between states.
    `held()` batches several control changes into one render; `last_figure` is the figure shown (for clicks).
    """

    def __init__(self, render: Callable[..., Figure], controls: Mapping, dpi: int = 90):
        import ipywidgets as W

        self.render, self.controls, self.dpi = render, dict(controls), dpi
        self.image = W.Image(format="png")
        self.last_figure: Figure | None = None
        self.renders = 0
        self._holding = False
        for control in self.controls.values():
            control.observe(self.update, names="value")
        self.update()

    def state(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def update(self, _change=None) -> None:
        if self._holding:
            return
        fig = self.render(**self.state())
        self.image.value = figure_png(fig, self.dpi, tight=False)
        self.last_figure = fig
        self.renders += 1

    @contextmanager
    def held(self, render_after: bool = True):
        """Change several controls with one render at the end (or none: `render_after=False`, when the change
        that follows renders anyway)."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        if render_after:
            self.update()


def _click_events(image, handler: Callable[[dict], None]):
    """Call `handler(event)` on a click on `image` (ipyevents: event["dataX"], ["dataY"] are the PNG's pixel
    coordinates whatever the displayed size). Returns the ipyevents.Event (keep a reference)."""
    from ipyevents import Event

    events = Event(source=image, watched_events=["click"], prevent_default_action=True)
    events.on_dom_event(handler)
    return events


def _resize_image(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, h, w), antialiased bilinear (identity when the size already matches)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W) bool -> (h, w) bool by nearest neighbour."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask.bool()
    return F.interpolate(mask.float()[None, None], size=size, mode="nearest")[0, 0] > 0.5


# ----------------------------------------------------------------------------------------------------------
# Flow
# ----------------------------------------------------------------------------------------------------------


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

    VIEWS = ("flow", "occlusion", "warped image", "photometric error", "EPE error map")

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
        pred = self.prediction(pair_index)
        levels = pred.get(f"flows_{direction}", [])
        if level == -1:
            flow = pred[f"flow_{direction}"]
        elif 0 <= level < len(levels):
            flow = levels[level]
        else:
            raise ValueError(f"FlowInspector: level {level} not in -1..{len(levels) - 1}")
        flow = flow.detach().float().cpu()
        size = tuple(flow.shape[-2:])
        frame1, frame2 = pair["frame1"][None].float(), pair["frame2"][None].float()
        reference, target = (frame1, frame2) if direction == "fw" else (frame2, frame1)
        reference, target = _resize_image(reference, size), _resize_image(target, size)
        warped = warp(target, flow)
        full_h, full_w = pair["frame1"].shape[-2:]
        x = full_w // 2 if x is None else int(np.clip(x, 0, full_w - 1))
        y = full_h // 2 if y is None else int(np.clip(y, 0, full_h - 1))
        x_l = int(round(x * (size[1] - 1) / max(full_w - 1, 1)))
        y_l = int(round(y * (size[0] - 1) / max(full_h - 1, 1)))
        u, v = (float(c) for c in flow[0, :, y_l, x_l])
        gt = pair.get("flow") if direction == "fw" else None
        max_flow, scale_note = self.flow_scale(flow, resize_flow(gt[None].float(), size) if gt is not None else None)
        out = {"reference": to_image(reference[0]), "target": to_image(target[0]), "warped": to_image(warped[0]),
               "flow": flow[0].numpy(), "point": (x_l, y_l), "target_point": (x_l + u, y_l + v),
               "max_flow": max_flow, "flow_scale": scale_note, "cost_volume": None, "cost_volume_title": None,
               "level_size": size}
        level_name = "full res" if level == -1 else f"level {level}"
        if view == "flow":
            out["view"], out["view_kind"] = flow_to_rgb(flow[0], max_flow=max(max_flow, ZERO_FLOW)), "rgb"
            out["title"] = f"flow {direction} ({level_name})"
        elif view == "warped image":
            out["view"], out["view_kind"] = out["warped"], "rgb"
            out["title"] = f"warp(frame{2 if direction == 'fw' else 1}, flow_{direction})"
        elif view == "photometric error":
            err = (warped - reference).abs().mean(1)[0]
            inside = inside_image_mask(flow)[0, 0] > 0
            out["view"], out["view_kind"] = torch.where(inside, err, torch.nan).numpy(), "scalar"
            out["title"] = f"|warped - frame{1 if direction == 'fw' else 2}| (mean {float(err[inside].mean()):.3f})"
        elif view == "occlusion":
            occ = pred.get(f"occlusion_{direction}")
            if occ is not None:
                mask = _resize_mask(occ.detach().cpu().reshape(occ.shape[-2:]) > 0.5, size)
                out["title"] = f"predicted occlusion {direction} ({float(mask.float().mean()):.1%})"
            elif direction == "fw" and pair.get("occlusion") is not None:
                mask = _resize_mask(pair["occlusion"], size)
                out["title"] = f"GT occlusion ({float(mask.float().mean()):.1%})"
            else:
                mask = None
            if mask is None:
                out["view"], out["view_kind"], out["title"] = None, "message", "no occlusion available"
            else:
                out["view"], out["view_kind"] = mask.numpy(), "mask"
        else:  # EPE error map
            if gt is None:
                out["view"], out["view_kind"] = None, "message"
                out["title"] = "no ground truth" + (" for bw" if direction == "bw" else "")
            else:
                valid = pair.get("valid")
                if valid is None or valid.all():  # dense GT: bilinear
                    gt_l, valid = resize_flow(gt[None].float(), size)[0], torch.ones(size, dtype=torch.bool)
                else:  # sparse GT: resampled by its mask, never blended with the invalid zeros
                    gt_l, valid = (t[0] for t in resize_sparse_flow(gt[None].float(), valid[None].bool(), size))
                epe = error_map(flow[0], gt_l)
                epe = np.where(valid.numpy(), epe, np.nan)
                out["view"], out["view_kind"] = epe, "scalar"
                out["title"] = f"EPE ({level_name}, mean {float(np.nanmean(epe)):.2f} px)"
        has_costs = pred.get("cost_volume_fn") is not None or pred.get("cost_volume_bw_fn") is not None
        if has_costs and len(levels) > 0:
            cost_fn = pred.get("cost_volume_fn" if direction == "fw" else "cost_volume_bw_fn")
            cv_level = len(levels) - 1 if level == -1 else level
            out["cost_volume_level"] = cv_level
            if cost_fn is None:
                out["cost_volume_title"] = f"no {direction} cost volume"
            else:
                cv_size = tuple(levels[cv_level].shape[-2:])
                cy = int(round(y * (cv_size[0] - 1) / max(full_h - 1, 1)))
                cx = int(round(x * (cv_size[1] - 1) / max(full_w - 1, 1)))
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
        pred = self.prediction(pair_index)
        flow = pred["flow_fw"] if level == -1 else pred["flows_fw"][level]
        h_l, w_l = flow.shape[-2:]
        full_h, full_w = self.pairs[pair_index]["frame1"].shape[-2:]
        x = int(round(np.clip(x_l, 0, w_l - 1) * (full_w - 1) / max(w_l - 1, 1)))
        y = int(round(np.clip(y_l, 0, h_l - 1) * (full_h - 1) / max(h_l - 1, 1)))
        return x, y

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
        self._click_events = _click_events(self.live.image, on_image_click)
        direction = W.HBox([W.Label("direction", layout=W.Layout(width="auto", margin="0 4px 0 8px")),
                            controls["direction"]], layout=W.Layout(align_items="center"))
        hint = W.HTML("<small>click a pixel of the first three panels to pick it</small>")
        return W.VBox([W.HBox([controls["pair_index"], controls["level"], direction]),
                       W.HBox([controls["view"], controls["x"], controls["y"]]), hint, self.live.image])


# ----------------------------------------------------------------------------------------------------------
# Segmentation
# ----------------------------------------------------------------------------------------------------------


class SegmentationInspector:
    """Image | prediction | GT for still images or video sequences, with a class picker.

    Args:
        samples: sequence of still-image dicts {"image" (3, H, W), "label" (H, W)} or sequence dicts
            {"frames" (T, 3, H, W), "masks" (T, H, W)}.
        predict_fn: sample dict -> int labels (H, W) (or (1, H, W)) for images, (T, H, W) for sequences;
            cached per index.
        class_names: names per class id; None = "class k" (or "object k" for sequences); id 0 of a sequence is
            "background" (DAVIS masks: 0 = background, k >= 1 = object k).
    State: index, class_id (-1 = all classes; else that class is highlighted on the image, others hidden, and
    its IoU shown), frame (sequences only; clipped to T - 1).
    """

    def __init__(self, samples: Sequence[Mapping], predict_fn: Callable[[Mapping], torch.Tensor],
                 class_names: Sequence[str] | None = None, ignore_index: int = 255):
        if len(samples) == 0:
            raise ValueError("SegmentationInspector: no samples")
        self.samples = samples
        self.predict_fn = predict_fn
        self.class_names = list(class_names) if class_names is not None else None
        self.ignore_index = ignore_index
        self.cache: dict[int, np.ndarray] = {}

    def prediction(self, index: int) -> np.ndarray:
        if index not in self.cache:
            with torch.no_grad():
                pred = to_numpy(self.predict_fn(self.samples[index])).astype(np.int64)
            sample = self.samples[index]
            if "frames" not in sample and pred.ndim == 3 and pred.shape[0] == 1:
                pred = pred[0]
            self.cache[index] = pred
        return self.cache[index]

    def class_name(self, class_id: int, sequence: bool = False) -> str:
        if self.class_names is not None and 0 <= class_id < len(self.class_names):
            return self.class_names[class_id]
        if sequence and class_id == 0:
            return "background"
        return f"{'object' if sequence else 'class'} {class_id}"

    def compute_panels(self, index: int = 0, class_id: int = -1, frame: int = 0) -> dict:
        """{"image" (H, W, 3), "pred" (H, W) int, "gt" (H, W) int or None, "pred_highlight"/"gt_highlight"
        (H, W) bool or None, "iou" float or None (nan when the class is in neither map), "iou_text" ("IoU 0.50",
        "IoU n/a: absent in both" or None without a class or GT), "frame" int, "title" str}."""
        sample = self.samples[index]
        pred = self.prediction(index)
        if "frames" in sample:
            length = sample["frames"].shape[0]
            frame = int(np.clip(frame, 0, length - 1))
            image, pred = sample["frames"][frame], pred[frame]
            gt = sample.get("masks")
            gt = to_numpy(gt[frame]).astype(np.int64) if gt is not None else None
        else:
            frame = 0
            image = sample["image"]
            gt = to_numpy(sample["label"]).astype(np.int64) if sample.get("label") is not None else None
        out = {"image": to_image(image), "pred": pred, "gt": gt, "frame": frame, "pred_highlight": None,
               "gt_highlight": None, "iou": None, "iou_text": None,
               "title": str(sample.get("name", f"sample {index}"))}
        if class_id >= 0:
            out["pred_highlight"] = pred == class_id
            if gt is not None:
                gt_mask = gt == class_id
                keep = gt != self.ignore_index
                union = ((out["pred_highlight"] | gt_mask) & keep).sum()
                inter = (out["pred_highlight"] & gt_mask & keep).sum()
                out["gt_highlight"] = gt_mask
                out["iou"] = float(inter / union) if union > 0 else float("nan")
                out["iou_text"] = f"IoU {out['iou']:.2f}" if union > 0 else "IoU n/a: absent in both"
        return out

    def render(self, index: int = 0, class_id: int = -1, frame: int = 0) -> Figure:
        p = self.compute_panels(index, class_id, frame)
        sequence = "frames" in self.samples[index]
        panels = [("image" + (f" (frame {p['frame']})" if sequence else ""), p["image"])]
        if class_id < 0:
            panels.append(("prediction", overlay_mask(p["image"], p["pred"], ignore_index=self.ignore_index)
                           if sequence else colorize_labels(p["pred"], self.ignore_index)))
            if p["gt"] is not None:
                panels.append(("ground truth", overlay_mask(p["image"], p["gt"], ignore_index=self.ignore_index)
                               if sequence else colorize_labels(p["gt"], self.ignore_index)))
        else:
            name = self.class_name(class_id, sequence)
            highlight = np.array([255, 40, 40], dtype=np.float32) / 255.0

            def spotlight(mask):
                img = p["image"] * 0.35
                img[mask] = 0.4 * p["image"][mask] + 0.6 * highlight
                return img

            iou = f", {p['iou_text']}" if p["iou_text"] is not None else ""
            panels.append((f"prediction: {name}{iou}", spotlight(p["pred_highlight"])))
            if p["gt"] is not None:
                gt_img = spotlight(p["gt_highlight"])
                gt_img[p["gt"] == self.ignore_index] = IGNORE_COLOR / 255.0
                panels.append((f"ground truth: {name}", gt_img))
        # the same size with or without a picked class (the picture must not jump): stills keep a legend column
        fig = Figure(figsize=(3.2 * len(panels) + 1.4 * (not sequence), 3.3), layout="constrained")
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (title, arr) in zip(axes, panels):
            ax.imshow(arr, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            hide_ticks(ax)
        if not sequence and class_id < 0:
            present = set(np.unique(p["pred"]).tolist())
            if p["gt"] is not None:
                present |= set(np.unique(p["gt"]).tolist())
            show_ignore = self.ignore_index in present
            present.discard(self.ignore_index)
            add_class_legend(axes[-1], sorted(present), self.class_names, show_ignore)
        elif not sequence:
            _highlight_legend(axes[-1], self.class_name(class_id))
        fig.suptitle(p["title"], fontsize=10)
        return fig

    def class_options(self, index: int = 0) -> list[tuple[str, int]]:
        sample = self.samples[index]
        sequence = "frames" in sample
        if self.class_names is not None:
            ids = range(len(self.class_names))
        else:
            present = set(np.unique(self.prediction(index)).tolist())
            gt = sample.get("masks" if sequence else "label")
            if gt is not None:
                present |= set(np.unique(to_numpy(gt)).tolist())
            ids = sorted(c for c in present if c != self.ignore_index)
        return [("all", -1)] + [(self.class_name(c, sequence), c) for c in ids]

    def widget(self):
        """Controls + the live picture; the frame slider exists only when some sample is a sequence, and is
        hidden (space kept) on still samples. Sets `self.controls` and `self.live`."""
        import ipywidgets as W

        lengths = [s["frames"].shape[0] if "frames" in s else 1 for s in self.samples]
        controls = {
            "index": W.IntSlider(value=0, min=0, max=len(self.samples) - 1, description="sample"),
            "class_id": W.Dropdown(options=self.class_options(0), value=-1, description="class",
                                   layout=W.Layout(width="240px")),
        }
        if max(lengths) > 1:
            controls["frame"] = W.IntSlider(value=0, min=0, max=max(lengths[0] - 1, 1), description="frame",
                                            layout=W.Layout(visibility="visible" if lengths[0] > 1 else "hidden"))
        live: dict = {}

        def on_index(change) -> None:  # before the LiveImage's observer, which then renders once
            with live["image"].held(render_after=False):
                if self.class_names is None:  # the ids present depend on the sample
                    controls["class_id"].options = self.class_options(change["new"])
                    controls["class_id"].value = -1
                if "frame" in controls:
                    length = lengths[change["new"]]
                    controls["frame"].max = max(length - 1, 1)
                    controls["frame"].layout.visibility = "visible" if length > 1 else "hidden"

        controls["index"].observe(on_index, names="value")
        live["image"] = self.live = LiveImage(self.render, controls)
        self.controls = controls
        return W.VBox([W.HBox(list(controls.values())), self.live.image])


def _highlight_legend(ax, name: str) -> None:
    """The legend of a picked class (the colour `SegmentationInspector.render` highlights it with)."""
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(facecolor=(1.0, 40 / 255, 40 / 255), edgecolor="k", linewidth=0.3, label=name)],
              loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)


# ----------------------------------------------------------------------------------------------------------
# Data tour
# ----------------------------------------------------------------------------------------------------------


class DataTour:
    """Look at any dataset of the kit: a dataset dropdown, an index slider, and one panel per displayable key
    (frame1/frame2/image, up to 4 frames of a sequence, flow (own max radius), valid/occlusion masks,
    label, masks overlaid on their frames). Other keys are listed in the title with their shapes."""

    MAX_FRAMES = 4

    def __init__(self, datasets: Mapping[str, Sequence[Mapping]]):
        if not datasets:
            raise ValueError("DataTour: no datasets")
        self.datasets = dict(datasets)

    def compute_panels(self, dataset: str | None = None, index: int = 0) -> dict:
        """{"panels": [(title, array, kind)], kind in {"rgb", "mask"}, "summary": str}."""
        name = dataset if dataset is not None else next(iter(self.datasets))
        if name not in self.datasets:
            raise ValueError(f"DataTour: unknown dataset {name!r} (have {list(self.datasets)})")
        data = self.datasets[name]
        index = int(np.clip(index, 0, len(data) - 1))
        sample = data[index]
        panels: list[tuple[str, np.ndarray, str]] = []
        shown: set[str] = set()
        for key in ("frame1", "frame2", "image"):
            if key in sample:
                panels.append((key, to_image(sample[key]), "rgb"))
                shown.add(key)
        if "frames" in sample:
            length = sample["frames"].shape[0]
            picks = sorted(set(np.linspace(0, length - 1, min(self.MAX_FRAMES, length)).round().astype(int).tolist()))
            masks = sample.get("masks")
            for t in picks:
                if masks is not None:
                    panels.append((f"frames[{t}] + masks", overlay_mask(sample["frames"][t], masks[t]), "rgb"))
                else:
                    panels.append((f"frames[{t}]", to_image(sample["frames"][t]), "rgb"))
            shown |= {"frames", "masks"} if masks is not None else {"frames"}
        if "flow" in sample:
            flow = sample["flow"]
            radius = max_flow_radius(flow)
            panels.append((f"flow (max |f| {radius:.1f} px)", flow_to_rgb(flow, max_flow=radius), "rgb"))
            shown.add("flow")
        for key in ("valid", "occlusion"):
            if key in sample:
                mask = to_numpy(sample[key]).astype(bool)
                panels.append((f"{key} ({mask.mean():.1%} True)", mask, "mask"))
                shown.add(key)
        if "label" in sample:
            panels.append(("label", colorize_labels(sample["label"]), "rgb"))
            shown.add("label")
        if "masks" in sample and "masks" not in shown:
            panels.append(("masks[0]", colorize_labels(sample["masks"][0]), "rgb"))
            shown.add("masks")
        rest = [f"{k} {tuple(v.shape)}" for k, v in sample.items() if k not in shown and hasattr(v, "shape")]
        summary = f"{name}[{index}] {sample.get('name', '')}" + (f"  |  {', '.join(rest)}" if rest else "")
        return {"panels": panels, "summary": summary, "index": index, "dataset": name}

    def render(self, dataset: str | None = None, index: int = 0) -> Figure:
        p = self.compute_panels(dataset, index)
        ncols = min(4, max(1, len(p["panels"])))
        nrows = max(1, -(-len(p["panels"]) // ncols))
        fig = Figure(figsize=(3.0 * ncols, 2.7 * nrows + 0.3), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, panel in zip(axes, p["panels"]):
            draw_panel(ax, *panel)
        for ax in axes[len(p["panels"]):]:
            ax.set_axis_off()
        fig.suptitle(p["summary"], fontsize=10)
        return fig

    def widget(self):
        import ipywidgets as W

        names = list(self.datasets)
        dataset = W.Dropdown(options=names, value=names[0], description="dataset")
        index = W.IntSlider(value=0, min=0, max=max(len(self.datasets[names[0]]) - 1, 0), description="index")

        def on_dataset(change):  # before the LiveImage's observer, which then renders once
            with self.live.held(render_after=False):
                index.value = 0
                index.max = max(len(self.datasets[change["new"]]) - 1, 0)

        dataset.observe(on_dataset, names="value")
        self.live = LiveImage(self.render, {"dataset": dataset, "index": index})
        return W.VBox([W.HBox([dataset, index]), self.live.image])
