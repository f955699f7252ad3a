"""Matplotlib figure builders for notebooks and reports.

Every builder returns a `matplotlib.figure.Figure` created WITHOUT pyplot (no global figure registry, no
backend needed, nothing to close, never `plt.show`); save it with `save_figure` or display it in Jupyter.
Inputs are tensors or arrays in the kit's conventions: images (3, H, W) in [0, 1], flows (2, H, W) pixels,
labels (H, W) int with `ignore_index`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from mcjepa.utils import atomic_write
from mcjepa.viz.flow_colors import error_map, flow_color_wheel, flow_to_rgb, max_flow_radius, to_numpy

__all__ = [
    "to_image", "label_palette", "colorize_labels", "overlay_mask", "group_loss_keys", "plot_loss_curves",
    "plot_flow_comparison", "plot_segmentation", "plot_video_segmentation", "plot_ablation", "save_figure",
    "add_flow_legend",
]

IGNORE_COLOR = np.array([200, 200, 200], dtype=np.uint8)


# -- small helpers -----------------------------------------------------------------------------------------


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


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def add_flow_legend(ax, max_flow: float, scale_note: str | None = None) -> None:
    """Draw the flow colour wheel in `ax` (a legend axis), labelled with the shared max radius in pixels (and
    `scale_note`, e.g. what that radius is). A radius below ZERO_FLOW px is labelled as zero flow, not as a rim
    radius (the colours are then all white)."""
    ax.imshow(flow_color_wheel(96))
    ax.set_axis_off()
    ax.set_title("flow colours", fontsize=8)
    if max_flow < ZERO_FLOW:
        text = f"zero flow\n(|f| < {ZERO_FLOW:g} px)"
    else:
        text = f"|f| = {max_flow:.3g} px\nat the rim" + (f"\n({scale_note})" if scale_note else "")
    ax.text(0.5, -0.04, text, transform=ax.transAxes, ha="center", va="top", fontsize=8)


ZERO_FLOW = 1e-3  # px: a flow whose largest vector is shorter than this is drawn and labelled as zero flow


# -- loss curves -------------------------------------------------------------------------------------------

_SKIP_KEYS = {"step", "epoch", "time", "wall_time", "timestamp", "seconds"}
_LOSS_GROUPS = ("losses", "flow losses", "content losses")


def group_loss_keys(keys: Sequence[str]) -> dict[str, list[str]]:
    """Group metric names for `plot_loss_curves`: "losses" (loss*), "flow losses" (the trainer's flow/* terms
    but flow/*fraction), "content losses" (ssl/*), "feature std" (feat_std*), "validation" (val/*), "lr" (lr*),
    "other" (the rest, e.g. grad_norm); empty groups are dropped, order kept. Wall-clock keys are skipped."""
    groups: dict[str, list[str]] = {"losses": [], "flow losses": [], "content losses": [], "feature std": [],
                                    "validation": [], "lr": [], "other": []}
    for key in keys:
        if key in _SKIP_KEYS:
            continue
        if key.startswith("loss"):
            groups["losses"].append(key)
        elif key.startswith("flow/") and not key.endswith("fraction"):
            groups["flow losses"].append(key)
        elif key.startswith("ssl/"):
            groups["content losses"].append(key)
        elif key.startswith("feat_std"):
            groups["feature std"].append(key)
        elif key.startswith("val/"):
            groups["validation"].append(key)
        elif key == "lr" or key.startswith("lr/") or key.startswith("lr_"):
            groups["lr"].append(key)
        else:
            groups["other"].append(key)
    return {name: ks for name, ks in groups.items() if ks}


def _ema(values: np.ndarray, smooth: float) -> np.ndarray:
    """Bias-corrected exponential moving average (TensorBoard-style), `smooth` in [0, 1)."""
    out, acc, weight = np.empty_like(values), 0.0, 0.0
    for i, v in enumerate(values):
        acc = smooth * acc + (1 - smooth) * v
        weight = smooth * weight + (1 - smooth)
        out[i] = acc / weight
    return out


def plot_loss_curves(records: Sequence[Mapping], keys: Sequence[str] | None = None, smooth: float = 0.0,
                     log_scale: bool = True, title: str | None = None) -> Figure:
    """Training curves from JSONL rows {"step": int, "loss/total": float, "feat_std/level0": ..., "lr": ...}.

    One subplot per group of `group_loss_keys` (losses, flow/content loss terms, feature std per level,
    validation, lr, other); a key missing from a row is simply skipped. `smooth` in [0, 1): EMA coefficient
    (raw curve drawn faintly behind). `log_scale`: log y-axis for the loss groups and lr when all values > 0.
    """
    if not records:
        raise ValueError("plot_loss_curves: no records")
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"plot_loss_curves: smooth must be in [0, 1), got {smooth}")
    if keys is None:
        seen: dict[str, None] = {}
        for row in records:
            for key, value in row.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    seen.setdefault(key, None)
        keys = list(seen)
    groups = group_loss_keys(keys)
    if not groups:
        raise ValueError(f"plot_loss_curves: no plottable keys among {list(keys)}")
    fig = Figure(figsize=(5.0 * len(groups), 3.6), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (name, group) in zip(axes, groups.items()):
        all_positive = True
        for index, key in enumerate(group):
            rows = [(r.get("step", i), r[key]) for i, r in enumerate(records)
                    if key in r and r[key] is not None and np.isfinite(r[key])]
            if not rows:
                continue
            steps, values = (np.asarray(c, dtype=np.float64) for c in zip(*rows))
            all_positive &= bool((values > 0).all())
            colour = f"C{index % 10}"
            if smooth > 0:
                ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
                values = _ema(values, smooth)
            ax.plot(steps, values, color=colour, linewidth=1.5, label=key)
        if log_scale and name in (*_LOSS_GROUPS, "lr") and all_positive:
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    return fig


# -- flow ----------------------------------------------------------------------------------------------------


def _batched(x, ndim_single: int):
    if x is None:
        return None
    arr = to_numpy(x)
    return arr[None] if arr.ndim == ndim_single else arr


def plot_flow_comparison(frame1, frame2=None, pred_flows: Mapping[str, object] | None = None, gt_flow=None,
                         occlusion=None, epe: Mapping[str, object] | None = None, valid=None,
                         error_of: str | None = None, max_flow: float | None = None) -> Figure:
    """Qualitative flow figure (paper Fig. 3 style): one row per sample, columns
    [frame 1, frame 2 (if given), each prediction, GT (if given), EPE map of `error_of` (default: the first
    prediction; if GT given)].

    Args:
        frame1, frame2: (3, H, W) or (B, 3, H, W) in [0, 1].
        pred_flows: {name: (2, H, W) or (B, 2, H, W)} predictions (pixels).
        gt_flow: (2, H, W) / (B, 2, H, W); valid: (H, W) / (B, H, W) bool where GT exists.
        occlusion: (H, W) / (B, H, W) bool, darkened on the GT panel.
        epe: {name: float or per-sample sequence} shown in titles; if None and GT is given, EPE is computed
            as the mean endpoint error over valid pixels (all pixels if `valid` is None).
        max_flow: shared colour radius; default per row = max |GT| (or max over the predictions if no GT),
            so all flow panels of a row share one scale (colour wheel legend at the end of each row).
    """
    pred_flows = dict(pred_flows or {})
    f1 = _batched(frame1, 3)
    f2 = _batched(frame2, 3)
    preds = {k: _batched(v, 3) for k, v in pred_flows.items()}
    gt = _batched(gt_flow, 3)
    occ = _batched(occlusion, 2)
    val = _batched(valid, 2)
    batch = f1.shape[0]
    error_of = error_of if error_of is not None else (next(iter(preds)) if preds else None)
    if error_of is not None and error_of not in preds:
        raise ValueError(f"plot_flow_comparison: error_of={error_of!r} not among {list(preds)}")
    columns = ["frame 1"] + (["frame 2"] if f2 is not None else []) + list(preds)
    columns += (["ground truth"] if gt is not None else []) + ([f"EPE map ({error_of})"] if gt is not None and error_of else [])
    height, width = f1.shape[-2:]
    panel_w = 2.6
    fig = Figure(figsize=(panel_w * (len(columns) + 0.45), panel_w * height / width * batch + 0.5 * batch),
                 layout="constrained")
    grid = fig.subplots(batch, len(columns) + 1, squeeze=False,
                        gridspec_kw={"width_ratios": [1.0] * len(columns) + [0.45]})
    axes, legend_axes = grid[:, :-1], grid[:, -1]
    for b in range(batch):
        row = axes[b]
        radius = max_flow or (max_flow_radius(gt[b]) if gt is not None else max_flow_radius(*(p[b] for p in preds.values())))
        col = 0
        row[col].imshow(to_image(f1[b]))
        row[col].set_title("frame 1", fontsize=9)
        col += 1
        if f2 is not None:
            row[col].imshow(to_image(f2[b]))
            row[col].set_title("frame 2", fontsize=9)
            col += 1
        mask = val[b].astype(bool) if val is not None else np.ones((height, width), bool)
        for name, pred in preds.items():
            row[col].imshow(flow_to_rgb(pred[b], max_flow=radius))
            label = name
            if epe is not None and name in epe:
                value = epe[name]
                value = value[b] if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str) else value
                label += f"\nEPE {float(value):.2f}"
            elif gt is not None:
                label += f"\nEPE {float(error_map(pred[b], gt[b])[mask].mean()):.2f}"
            row[col].set_title(label, fontsize=9)
            col += 1
        if gt is not None:
            rgb = flow_to_rgb(gt[b], max_flow=radius).astype(np.float32)
            dark = ~mask
            if occ is not None:
                dark = dark | occ[b].astype(bool)
            rgb[dark] *= 0.35
            row[col].imshow(rgb.astype(np.uint8))
            row[col].set_title("ground truth" + ("\n(occluded darkened)" if occ is not None else ""), fontsize=9)
            col += 1
            if error_of:
                err = error_map(preds[error_of][b], gt[b])
                err = np.where(mask, err, np.nan)
                vmax = max(float(np.nanpercentile(err, 99)) if np.isfinite(err).any() else 1.0, 1e-3)
                image = row[col].imshow(err, cmap="magma", vmin=0, vmax=vmax)
                fig.colorbar(image, ax=row[col], fraction=0.046, pad=0.02, label="px")
                row[col].set_title(f"EPE map ({error_of})", fontsize=9)
                col += 1
        add_flow_legend(legend_axes[b], radius)
        for ax in row:
            _off(ax)
    return fig


# -- segmentation --------------------------------------------------------------------------------------------


def _class_legend(fig, ax, classes: Sequence[int], class_names: Sequence[str] | None, show_ignore: bool) -> None:
    palette = label_palette()
    handles = [Patch(facecolor=IGNORE_COLOR / 255.0, edgecolor="k", linewidth=0.3, label="ignore")] if show_ignore else []
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
            ious = [((lab_pred[keep] == c) & (lab_gt[keep] == c)).sum() / max(((lab_pred[keep] == c) | (lab_gt[keep] == c)).sum(), 1)
                    for c in present]
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
        _off(ax)
    _class_legend(fig, axes[-1], sorted(classes), class_names, show_ignore)
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
            _off(ax)
            if r == 0:
                ax.set_title(f"frame {t + 1}", fontsize=9)
            if c == 0 and name:
                ax.set_ylabel(name, fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


# -- ablations -------------------------------------------------------------------------------------------------


def plot_ablation(xs: Sequence[float], series: Mapping[str, Sequence[float]], xlabel: str,
                  ylabels: Sequence[str] | Mapping[str, str] | None = None, title: str | None = None,
                  xscale: str = "linear") -> Figure:
    """Ablation curve with two y-axes (paper Fig. 5 style): the first series on the left axis (e.g. EPE),
    the others on the right axis (e.g. mIoU).

    Args:
        xs: ablated values; series: {name: values aligned with xs} (1 to a few series; None/NaN = missing).
        ylabels: (left label, right label) or {series name: label}; defaults to the series names.
        xscale: "linear", "log" or "symlog" (use symlog when xs contains 0 on a log-like grid).
    """
    if not series:
        raise ValueError("plot_ablation: no series")
    names = list(series)
    x = np.asarray(xs, dtype=np.float64)
    for name in names:
        if len(series[name]) != len(x):
            raise ValueError(f"plot_ablation: series {name!r} has {len(series[name])} values for {len(x)} xs")
    if isinstance(ylabels, Mapping):
        left_label = ylabels.get(names[0], names[0])
        right_label = ", ".join(ylabels.get(n, n) for n in names[1:])
    elif ylabels is not None:
        left_label, right_label = (list(ylabels) + [None, None])[:2]
        left_label = left_label or names[0]
        right_label = right_label or ", ".join(names[1:])
    else:
        left_label, right_label = names[0], ", ".join(names[1:])
    fig = Figure(figsize=(4.8, 3.4), layout="constrained")
    ax_left = fig.subplots()
    handles = []
    y0 = np.asarray([np.nan if v is None else v for v in series[names[0]]], dtype=np.float64)
    handles += ax_left.plot(x, y0, "o-", color="C0", label=names[0])
    ax_left.set_ylabel(left_label, color="C0")
    ax_left.tick_params(axis="y", colors="C0")
    ax_left.set_xlabel(xlabel)
    if xscale == "symlog":
        positive = np.abs(x[x != 0])
        ax_left.set_xscale("symlog", linthresh=float(positive.min()) if positive.size else 1.0)
    else:
        ax_left.set_xscale(xscale)
    ax_left.set_xticks(x, [f"{v:g}" for v in x])
    ax_left.minorticks_off()
    ax_left.grid(True, alpha=0.3)
    if len(names) > 1:
        ax_right = ax_left.twinx()
        for index, name in enumerate(names[1:], start=1):
            y = np.asarray([np.nan if v is None else v for v in series[name]], dtype=np.float64)
            handles += ax_right.plot(x, y, "s--", color=f"C{index}", label=name)
        ax_right.set_ylabel(right_label, color="C1" if len(names) == 2 else "k")
        if len(names) == 2:
            ax_right.tick_params(axis="y", colors="C1")
    ax_left.legend(handles=handles, fontsize=8, loc="best")
    if title:
        ax_left.set_title(title)
    return fig


# -- saving ----------------------------------------------------------------------------------------------------


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write `fig` atomically (temp file in the same folder, then rename); creates parent folders.
    The format follows the suffix (png by default when there is none). Returns the path written."""
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    fmt = path.suffix.lstrip(".").lower()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format=fmt, dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # mkstemp creates 0600 files; figures are meant to be shared
    return path
