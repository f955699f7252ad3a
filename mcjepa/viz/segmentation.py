"""Segmentation figures: class maps on the VOC palette, instance masks over video frames (paper Fig. 4
style), per-frame DAVIS scores.

Labels are (H, W) ints (0 = background) with `ignore_index` (255, drawn light grey); images (3, H, W) in
[0, 1]; videos (T, 3, H, W) with masks (T, H, W).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from mcjepa.viz.flow_colors import to_numpy
from mcjepa.viz.images import hide_ticks, to_image

__all__ = ["IGNORE_COLOR", "label_palette", "colorize_labels", "overlay_mask", "add_class_legend",
           "plot_segmentation", "plot_video_segmentation", "plot_per_frame_scores"]

IGNORE_COLOR = np.array([200, 200, 200], dtype=np.uint8)


def label_palette(num: int = 256) -> np.ndarray:
    """Fixed categorical palette (num, 3) uint8: the Pascal VOC bit-interleaving colour map (0 = black)."""
    palette = np.zeros((num, 3), dtype=np.uint8)
    for index in range(num):
        c, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette[index] = (r, g, b)
    return palette


def colorize_labels(labels, ignore_index: int | None = 255) -> np.ndarray:
    """(H, W) int labels -> (H, W, 3) uint8 with `label_palette`; `ignore_index` drawn light grey."""
    lab = to_numpy(labels).astype(np.int64)
    rgb = label_palette()[np.clip(lab, 0, 255)]
    if ignore_index is not None:
        rgb[lab == ignore_index] = IGNORE_COLOR
    return rgb


def overlay_mask(image, labels, alpha: float = 0.55, ignore_index: int | None = 255) -> np.ndarray:
    """Blend coloured labels (> 0, != ignore) over an image and draw their boundaries opaque: (H, W, 3) float."""
    img = to_image(image)
    lab = to_numpy(labels).astype(np.int64)
    colours = colorize_labels(lab, ignore_index).astype(np.float32) / 255.0
    fg = (lab > 0) & (lab != (ignore_index if ignore_index is not None else -1))
    out = img.copy()
    out[fg] = (1 - alpha) * img[fg] + alpha * colours[fg]
    edge = np.zeros_like(fg)
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[1:] |= lab[:-1] != lab[1:]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    edge[:, 1:] |= lab[:, :-1] != lab[:, 1:]
    edge &= fg
    out[edge] = colours[edge]
    return out


def add_class_legend(ax, classes: Sequence[int], class_names: Sequence[str] | None, show_ignore: bool) -> None:
    """Legend right of `ax`: a palette swatch per class id (named by `class_names` where it has one), and the
    ignore colour first when `show_ignore`."""
    palette = label_palette()
    handles = ([Patch(facecolor=IGNORE_COLOR / 255.0, edgecolor="k", linewidth=0.3, label="ignore")]
               if show_ignore else [])
    for c in classes:
        name = class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c)
        handles.append(Patch(facecolor=palette[c] / 255.0, edgecolor="k", linewidth=0.3, label=name))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
                  ncol=1 + len(handles) // 16)


def plot_segmentation(image, pred=None, gt=None, class_names: Sequence[str] | None = None,
                      ignore_index: int = 255, title: str | None = None) -> Figure:
    """Image | prediction | ground truth, labels coloured with the fixed VOC palette (ignore = light grey),
    legend of the classes present. Title of the prediction panel gives pixel accuracy and the mean IoU over
    the classes present in GT or prediction (ignoring `ignore_index`) when GT is given."""
    panels = [("image", to_image(image))]
    classes: set[int] = set()
    lab_pred = to_numpy(pred).astype(np.int64) if pred is not None else None
    lab_gt = to_numpy(gt).astype(np.int64) if gt is not None else None
    pred_title = "prediction"
    if lab_pred is not None:
        classes |= set(np.unique(lab_pred).tolist())
        if lab_gt is not None:
            keep = lab_gt != ignore_index
            acc = float((lab_pred[keep] == lab_gt[keep]).mean()) if keep.any() else float("nan")
            present = sorted((set(np.unique(lab_gt[keep]).tolist()) | set(np.unique(lab_pred[keep]).tolist())))
            ious = [((lab_pred[keep] == c) & (lab_gt[keep] == c)).sum()
                    / max(((lab_pred[keep] == c) | (lab_gt[keep] == c)).sum(), 1) for c in present]
            pred_title += f"\nacc {acc:.2f}  mIoU {float(np.mean(ious)) if ious else float('nan'):.2f}"
        panels.append((pred_title, colorize_labels(lab_pred, ignore_index)))
    if lab_gt is not None:
        classes |= set(np.unique(lab_gt).tolist())
        panels.append(("ground truth", colorize_labels(lab_gt, ignore_index)))
    show_ignore = ignore_index in classes
    classes.discard(ignore_index)
    fig = Figure(figsize=(3.2 * len(panels) + 1.6, 3.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, arr) in zip(axes, panels):
        ax.imshow(arr, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        hide_ticks(ax)
    add_class_legend(axes[-1], sorted(classes), class_names, show_ignore)
    if title:
        fig.suptitle(title)
    return fig


def plot_video_segmentation(frames, masks, frame_ids: Sequence[int] = (0, 9, 24, 49), alpha: float = 0.55,
                            ignore_index: int = 255, title: str | None = None) -> Figure:
    """Video object segmentation overlays (paper Fig. 4 style): columns = frames `frame_ids` (0-based, clipped
    to the sequence length, duplicates dropped; titled 1-based), rows = one per mask set.

    Args:
        frames: (T, 3, H, W) in [0, 1].
        masks: (T, H, W) int instance ids (0 = background, 255 = void), or {row name: (T, H, W)} for several
            rows (e.g. {"ground truth": gt, "MC-JEPA": pred}).
    """
    video = to_numpy(frames)
    if video.ndim != 4:
        raise ValueError(f"plot_video_segmentation: frames must be (T, 3, H, W), got {video.shape}")
    rows = dict(masks) if isinstance(masks, Mapping) else {"": masks}
    length = video.shape[0]
    ids: list[int] = []
    for i in frame_ids:
        i = min(max(int(i), 0), length - 1)
        if i not in ids:
            ids.append(i)
    height, width = video.shape[-2:]
    fig = Figure(figsize=(2.8 * len(ids), 2.8 * height / width * len(rows) + 0.4), layout="constrained")
    axes = fig.subplots(len(rows), len(ids), squeeze=False)
    for r, (name, seq) in enumerate(rows.items()):
        seq = to_numpy(seq)
        for c, t in enumerate(ids):
            ax = axes[r, c]
            ax.imshow(overlay_mask(video[t], seq[t], alpha=alpha, ignore_index=ignore_index))
            hide_ticks(ax)
            if r == 0:
                ax.set_title(f"frame {t + 1}", fontsize=9)
            if c == 0 and name:
                ax.set_ylabel(name, fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def plot_per_frame_scores(scores: Mapping[str, Mapping[str, Sequence[float]]], first_frame: int = 2,
                          title: str | None = None) -> Figure:
    """Per-frame curves against the 1-based frame number starting at `first_frame` (DAVIS scores skip frame 1):
    `scores` = {object label: {metric: values}} (e.g. {"object 1": {"J": [...], "F": [...]}}); one colour per
    object, one line style per metric (solid, dashed, dotted, ...)."""
    if not scores:
        raise ValueError("plot_per_frame_scores: no scores")
    styles = ("-", "--", ":", "-.")
    fig = Figure(figsize=(6.0, 3.0), layout="constrained")
    ax = fig.subplots()
    metrics: list[str] = []
    for index, (label, series) in enumerate(scores.items()):
        for name, values in series.items():
            metrics += [name] if name not in metrics else []
            values = np.asarray(values, dtype=np.float64)
            ax.plot(np.arange(first_frame, first_frame + values.size), values, color=f"C{index % 10}",
                    linestyle=styles[metrics.index(name) % len(styles)], linewidth=1.3, label=f"{name} {label}")
    ax.set_xlabel("frame")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=len(metrics))
    if title:
        ax.set_title(title, fontsize=10)
    return fig

