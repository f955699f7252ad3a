"""The segmentation inspector: image | prediction | GT for still images or video sequences, with a class picker
(notebook 14), testable without a browser (protocol: mcjepa.viz.live).

Conventions: images (3, H, W) in [0, 1]; labels (H, W) int; predictions are cached per sample index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from mcjepa.viz.flow_colors import to_numpy
from mcjepa.viz.images import hide_ticks, to_image
from mcjepa.viz.live import LiveImage
from mcjepa.viz.segmentation import IGNORE_COLOR, add_class_legend, colorize_labels, overlay_mask

__all__ = ["HIGHLIGHT", "SegmentationInspector"]

HIGHLIGHT = (1.0, 40 / 255, 40 / 255)  # RGB in [0, 1]: a picked class on the image and in its legend


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
            highlight = np.array(HIGHLIGHT, dtype=np.float32)

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
    """The legend of a picked class (drawn in HIGHLIGHT, as `SegmentationInspector.render` draws it)."""
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(facecolor=HIGHLIGHT, edgecolor="k", linewidth=0.3, label=name)],
              loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
