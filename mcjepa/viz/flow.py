"""Flow figures (paper Fig. 3 style): frames, predicted and true flow on one colour scale per row, EPE maps.

Inputs in the kit's conventions: images (3, H, W) in [0, 1], flows (2, H, W) in pixels (u right, v down),
masks (H, W) bool; a leading batch dimension gives one row per sample. Colours: `mcjepa.viz.flow_colors`
(hue = direction, saturation = |f| / the row's radius, wheel legend at the end of each row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from mcjepa.eval.flow_metrics import flow_metrics
from mcjepa.viz.flow_colors import error_map, flow_color_wheel, flow_to_rgb, max_flow_radius, to_numpy
from mcjepa.viz.images import hide_ticks, to_image

__all__ = ["ZERO_FLOW", "add_flow_legend", "plot_flow_comparison", "plot_flow_rows", "plot_flow_overlay"]

ZERO_FLOW = 1e-3  # px: a flow whose largest vector is shorter than this is drawn and labelled as zero flow


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


def _batched(x, ndim_single: int):
    """`x` as a numpy array with a leading batch dimension (added when it has `ndim_single` dims); None stays."""
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
    columns += (["ground truth"] if gt is not None else []) + (
        [f"EPE map ({error_of})"] if gt is not None and error_of else [])
    height, width = f1.shape[-2:]
    panel_w = 2.6
    fig = Figure(figsize=(panel_w * (len(columns) + 0.45), panel_w * height / width * batch + 0.5 * batch),
                 layout="constrained")
    grid = fig.subplots(batch, len(columns) + 1, squeeze=False,
                        gridspec_kw={"width_ratios": [1.0] * len(columns) + [0.45]})
    axes, legend_axes = grid[:, :-1], grid[:, -1]
    for b in range(batch):
        row = axes[b]
        radius = max_flow or (max_flow_radius(gt[b]) if gt is not None
                              else max_flow_radius(*(p[b] for p in preds.values())))
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
            hide_ticks(ax)
    return fig


def plot_flow_rows(rows: Sequence[Mapping], flow_names: Sequence[str] | None = None) -> Figure:
    """Paper Fig. 3 style: one row per sample (rows may have different image sizes), columns
    [image, each predicted flow, ground truth (if any row has it), colour wheel].

    Args:
        rows: dicts {"name": str, "frame1": (3,H,W), "flows": {column name: (2,H,W)}, optional "gt" (2,H,W),
            "valid" (H,W) bool}.
        flow_names: prediction columns in order (default: the keys of the first row's "flows").
    Each row has its own colour radius, max |GT| over valid pixels (max over the predictions if no GT), shared
    by all its flow panels; prediction titles give the EPE over valid pixels (mcjepa.eval.flow_metrics).
    """
    if not rows:
        raise ValueError("plot_flow_rows: no rows")
    names = list(flow_names) if flow_names is not None else list(rows[0]["flows"])
    for row in rows:
        missing = set(names) - set(row["flows"])
        if missing:
            raise ValueError(f"plot_flow_rows: row {row.get('name', '?')!r} lacks flows {sorted(missing)}")
    has_gt = any(row.get("gt") is not None for row in rows)
    ncols = 1 + len(names) + has_gt
    aspect = max(to_numpy(r["frame1"]).shape[-2] / to_numpy(r["frame1"]).shape[-1] for r in rows)
    fig = Figure(figsize=(2.7 * ncols + 1.0, (2.7 * aspect + 0.55) * len(rows)), layout="constrained")
    grid = fig.subplots(len(rows), ncols + 1, squeeze=False,
                        gridspec_kw={"width_ratios": [1.0] * ncols + [0.4]})
    for r, row in enumerate(rows):
        axes = grid[r]
        gt = row.get("gt")
        valid = row.get("valid")
        mask = None if gt is None else (np.ones(to_numpy(gt).shape[-2:], bool) if valid is None
                                        else to_numpy(valid).astype(bool))
        if gt is not None:
            radius = max_flow_radius(np.where(mask[None], to_numpy(gt), 0.0))
        else:
            radius = max_flow_radius(*(row["flows"][n] for n in names))
        axes[0].imshow(to_image(row["frame1"]))
        axes[0].set_title(str(row.get("name", f"row {r}")), fontsize=9)
        for c, name in enumerate(names, start=1):
            flow = row["flows"][name]
            axes[c].imshow(flow_to_rgb(flow, max_flow=radius))
            title = name
            if gt is not None:
                title += f"\nEPE {flow_metrics(flow, gt, valid)['epe']:.2f} px"
            axes[c].set_title(title, fontsize=9)
        if has_gt:
            ax = axes[ncols - 1]
            if gt is not None:
                rgb = flow_to_rgb(gt, max_flow=radius)
                rgb[~mask] = 0  # no ground truth: black
                ax.imshow(rgb)
                ax.set_title("ground truth" + ("" if mask.all() else "\n(black: no GT)"), fontsize=9)
            else:
                ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", transform=ax.transAxes)
        for ax in axes[:-1]:
            hide_ticks(ax)
        add_flow_legend(axes[-1], radius)
    return fig



def plot_flow_overlay(rows: Sequence[Mapping], max_flow: float | None = None, alpha: float = 0.55,
                      arrow_every: int = 8) -> Figure:
    """Frames with their flow drawn on them: one row per frame, one column per flow.

    Args:
        rows: dicts {"name": str, "frame1": (3,H,W) in [0,1], "flows": {column name: (2,H,W) in pixels}}.
        max_flow: the colour scale shared by every panel (default: the largest |f| over all flows).
        alpha: weight of the flow colour over the frame; arrow_every: one arrow per this many pixels, from the
            pixel in frame 1 towards where it goes, magnified so that a flow of `max_flow` spans `arrow_every` px
            (the magnification is in each title; true length where flows are longer than that).
    Raises ValueError for no rows, alpha outside [0, 1] or arrow_every < 1.
    """
    if not rows or not 0 <= alpha <= 1 or arrow_every < 1:
        raise ValueError(f"plot_flow_overlay: need rows, alpha in [0, 1] and arrow_every >= 1, got {len(rows)} "
                         f"rows, alpha={alpha}, arrow_every={arrow_every}")
    names = list(rows[0]["flows"])
    radius = max_flow if max_flow is not None else max_flow_radius(*(r["flows"][n] for r in rows for n in names))
    magnify = max(1.0, arrow_every / max(radius, ZERO_FLOW))
    height, width = to_numpy(rows[0]["frame1"]).shape[-2:]
    fig = Figure(figsize=(3.2 * len(names) + 1.0, (3.2 * height / width + 0.5) * len(rows)), layout="constrained")
    grid = fig.subplots(len(rows), len(names) + 1, squeeze=False,
                        gridspec_kw={"width_ratios": [1.0] * len(names) + [0.35]})
    for r, row in enumerate(rows):
        image = to_image(row["frame1"])
        for c, name in enumerate(names):
            flow = to_numpy(row["flows"][name])
            ax = grid[r, c]
            ax.imshow((1 - alpha) * image + alpha * flow_to_rgb(flow, max_flow=max(radius, ZERO_FLOW)) / 255.0)
            ys, xs = np.mgrid[arrow_every // 2:flow.shape[-2]:arrow_every, arrow_every // 2:flow.shape[-1]:arrow_every]
            ax.quiver(xs, ys, flow[0, ys, xs], flow[1, ys, xs], color="black", angles="xy", scale_units="xy",
                      scale=1.0 / magnify, width=0.004)
            ax.set_title(f"{row.get('name', r)}: {name}" + (f" (arrows x{magnify:.3g})" if magnify > 1 else ""),
                         fontsize=9)
            hide_ticks(ax)
        add_flow_legend(grid[r, -1], radius)
    return fig
