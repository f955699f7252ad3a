"""Flow figures (paper Fig. 3 style): frames, predicted and true flow on one colour scale per row, EPE maps.

One builder (`_flow_grid`) draws Fig. 3 for both entry points: `plot_flow_rows` (a dict per row, rows of any
size; notebooks 12, 15) and `plot_flow_comparison` (a batch of same-size samples; notebooks 00, 01). The titles'
EPE comes from mcjepa.eval.flow_metrics; on the GT panel, pixels without GT are black and occluded ones darkened.

Inputs in the kit's conventions: images (3, H, W) in [0, 1], flows (2, H, W) in pixels (u right, v down),
masks (H, W) bool; a leading batch dimension gives one row per sample. Colours: `mcjepa.viz.flow_colors`
(hue = direction, saturation = |f| / the row's radius, wheel legend at the end of each row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from mcjepa.eval.flow_metrics import flow_metrics
from mcjepa.viz.flow_colors import error_map, flow_color_wheel, flow_to_rgb, max_flow_radius, to_numpy
from mcjepa.viz.images import hide_ticks, to_image

__all__ = ["ZERO_FLOW", "COMPARISON_LAYOUT", "ROWS_LAYOUT", "FlowGridLayout", "add_flow_legend", "plot_flow_comparison",
           "plot_flow_rows", "plot_flow_overlay"]

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


@dataclass(frozen=True)
class FlowGridLayout:
    """Sizes of a Fig. 3 grid, in inches: `panel` the width of an image panel (its height follows the frames'
    aspect), `legend` the colour-wheel column's width as a fraction of a panel (gridspec ratio), `legend_in` the
    figure width added for that column, `title_in` the height added per row for the titles."""

    panel: float
    legend: float
    legend_in: float
    title_in: float


COMPARISON_LAYOUT = FlowGridLayout(panel=2.6, legend=0.45, legend_in=2.6 * 0.45, title_in=0.5)  # notebooks 00, 01
ROWS_LAYOUT = FlowGridLayout(panel=2.7, legend=0.4, legend_in=1.0, title_in=0.55)  # Fig. 3 (notebooks 12, 15)
OCCLUDED_SHADE = 0.35  # occluded GT pixels are drawn at this fraction of their colour; pixels without GT black


def _batched(x, ndim_single: int):
    """`x` as a numpy array with a leading batch dimension (added when it has `ndim_single` dims); None stays."""
    if x is None:
        return None
    arr = to_numpy(x)
    return arr[None] if arr.ndim == ndim_single else arr


def plot_flow_comparison(frame1, frame2=None, pred_flows: Mapping[str, object] | None = None, gt_flow=None,
                         occlusion=None, epe: Mapping[str, object] | None = None, valid=None,
                         error_of: str | None = None, max_flow: float | None = None) -> Figure:
    """Qualitative flow figure (paper Fig. 3 style) of a batch: one row per sample, columns
    [frame 1, frame 2 (if given), each prediction, GT (if given), EPE map of `error_of` (default: the first
    prediction; if GT given)]. The rows of `plot_flow_rows`, in COMPARISON_LAYOUT.

    Args:
        frame1, frame2: (3, H, W) or (B, 3, H, W) in [0, 1].
        pred_flows: {name: (2, H, W) or (B, 2, H, W)} predictions (pixels).
        gt_flow: (2, H, W) / (B, 2, H, W); valid: (H, W) / (B, H, W) bool where GT exists (black elsewhere).
        occlusion: (H, W) / (B, H, W) bool, darkened on the GT panel.
        epe: {name: float or per-sample sequence} shown in titles; if None and GT is given, EPE is the mean
            endpoint error over valid pixels (mcjepa.eval.flow_metrics).
        max_flow: shared colour radius; default per row = max |GT| over valid pixels (or max over the predictions
            if no GT), so all flow panels of a row share one scale (colour wheel legend at the end of each row).
    Raises ValueError when `error_of` is not a prediction's name.
    """
    preds = {k: _batched(v, 3) for k, v in dict(pred_flows or {}).items()}
    error_of = error_of if error_of is not None else (next(iter(preds)) if preds else None)
    if error_of is not None and error_of not in preds:
        raise ValueError(f"plot_flow_comparison: error_of={error_of!r} not among {list(preds)}")
    f1, f2, gt = _batched(frame1, 3), _batched(frame2, 3), _batched(gt_flow, 3)
    occ, val = _batched(occlusion, 2), _batched(valid, 2)
    rows = []
    for b in range(f1.shape[0]):
        row = {"name": "frame 1", "frame1": f1[b], "flows": {name: pred[b] for name, pred in preds.items()},
               "epe": {name: _sample_value(value, b) for name, value in (epe or {}).items()}}
        for key, arr in (("frame2", f2), ("gt", gt), ("occlusion", occ), ("valid", val)):
            if arr is not None:
                row[key] = arr[b]
        rows.append(row)
    return _flow_grid(rows, list(preds), error_of if gt is not None else None, max_flow, COMPARISON_LAYOUT)


def _sample_value(value, b: int) -> float:
    """Sample b's value of a float or a per-sample sequence."""
    return float(value[b] if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str) else value)


def plot_flow_rows(rows: Sequence[Mapping], flow_names: Sequence[str] | None = None) -> Figure:
    """Paper Fig. 3 style: one row per sample (rows may have different image sizes), columns
    [image, each predicted flow, ground truth (if any row has it), colour wheel], in ROWS_LAYOUT.

    Args:
        rows: dicts {"name": str, "frame1": (3,H,W), "flows": {column name: (2,H,W)}, optional "gt" (2,H,W),
            "valid" (H,W) bool}.
        flow_names: prediction columns in order (default: the keys of the first row's "flows").
    Each row has its own colour radius, max |GT| over valid pixels (max over the predictions if no GT), shared
    by all its flow panels; prediction titles give the EPE over valid pixels (mcjepa.eval.flow_metrics); GT
    pixels without ground truth are black. Raises ValueError for no rows or a row lacking one of `flow_names`.
    """
    if not rows:
        raise ValueError("plot_flow_rows: no rows")
    names = list(flow_names) if flow_names is not None else list(rows[0]["flows"])
    for row in rows:
        missing = set(names) - set(row["flows"])
        if missing:
            raise ValueError(f"plot_flow_rows: row {row.get('name', '?')!r} lacks flows {sorted(missing)}")
    return _flow_grid(rows, names, None, None, ROWS_LAYOUT)


def _flow_grid(rows: Sequence[Mapping], names: Sequence[str], error_of: str | None, max_flow: float | None,
               layout: FlowGridLayout) -> Figure:
    """The one Fig. 3 builder: a row per dict of `rows` ({"name", "frame1" (3,H,W), "flows": {name: (2,H,W)},
    optional "frame2", "gt" (2,H,W), "valid", "occlusion" (H,W) bool, "epe": {name: float}}), columns
    [frame 1 titled with the row's name, frame 2 (if any row has it), the flows `names`, ground truth (if any
    row has it), EPE map of `error_of` (if given and any row has GT)], and the colour wheel of the row."""
    has_frame2 = any(row.get("frame2") is not None for row in rows)
    has_gt = any(row.get("gt") is not None for row in rows)
    error_of = error_of if has_gt else None
    ncols = 1 + has_frame2 + len(names) + has_gt + (error_of is not None)
    aspect = max(to_numpy(r["frame1"]).shape[-2] / to_numpy(r["frame1"]).shape[-1] for r in rows)
    width, height = layout.panel * ncols + layout.legend_in, (layout.panel * aspect + layout.title_in) * len(rows)
    fig = Figure(figsize=(width, height), layout="constrained")
    grid = fig.subplots(len(rows), ncols + 1, squeeze=False,
                        gridspec_kw={"width_ratios": [1.0] * ncols + [layout.legend]})
    for r, row in enumerate(rows):
        axes = list(grid[r])
        gt = None if row.get("gt") is None else to_numpy(row["gt"])
        valid = row.get("valid")
        mask = None if gt is None else (np.ones(gt.shape[-2:], bool) if valid is None else to_numpy(valid).astype(bool))
        radius = max_flow or (max_flow_radius(np.where(mask[None], gt, 0.0)) if gt is not None
                              else max_flow_radius(*(row["flows"][n] for n in names)))
        _image_panel(axes.pop(0), to_image(row["frame1"]), str(row.get("name", f"row {r}")))
        if has_frame2:
            frame2 = row.get("frame2")
            _image_panel(axes.pop(0), *((to_image(frame2), "frame 2") if frame2 is not None else (None, "")))
        for name in names:
            flow = row["flows"][name]
            _image_panel(axes.pop(0), flow_to_rgb(flow, max_flow=radius), _flow_title(name, flow, row, gt, valid))
        if has_gt:
            _gt_panel(axes.pop(0), gt, mask, row.get("occlusion"), radius)
        if error_of is not None:
            _epe_map_panel(fig, axes.pop(0), row["flows"][error_of], gt, mask, error_of)
        add_flow_legend(axes.pop(0), radius)
    return fig


def _flow_title(name: str, flow, row: Mapping, gt, valid) -> str:
    """`name` and, below it, the EPE in px: the row's given "epe"[name], else the mean over valid pixels against
    `gt` (mcjepa.eval.flow_metrics), else nothing (no GT)."""
    if name in row.get("epe", {}):
        return f"{name}\nEPE {row['epe'][name]:.2f} px"
    if gt is not None:
        return f"{name}\nEPE {flow_metrics(flow, gt, valid)['epe']:.2f} px"
    return name


def _image_panel(ax, image, title: str) -> None:
    """`image` ((H,W,3) RGB, float in [0,1] or uint8; None: an empty panel) titled, without ticks."""
    if image is not None:
        ax.imshow(image)
    ax.set_title(title, fontsize=9)
    hide_ticks(ax)


def _gt_panel(ax, gt, mask, occlusion, radius: float) -> None:
    """The GT flow (2,H,W) on the row's scale: black where `mask` (H,W) is False (no GT), OCCLUDED_SHADE of its
    colour where `occlusion` (H,W) is True; None: "no ground truth"."""
    if gt is None:
        ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", transform=ax.transAxes)
        hide_ticks(ax)
        return
    rgb = flow_to_rgb(gt, max_flow=radius)
    notes = []
    if occlusion is not None:
        shaded = rgb.astype(np.float32)
        shaded[to_numpy(occlusion).astype(bool)] *= OCCLUDED_SHADE
        rgb = shaded.astype(np.uint8)
        notes.append("occluded darkened")
    if not mask.all():
        rgb[~mask] = 0
        notes.append("black: no GT")
    _image_panel(ax, rgb, "ground truth" + (f"\n({', '.join(notes)})" if notes else ""))


def _epe_map_panel(fig: Figure, ax, flow, gt, mask, name: str) -> None:
    """Per-pixel EPE (px) of `flow` against `gt` (2,H,W), NaN where `mask` (H,W) is False, colour bar to its 99th
    percentile; gt None: "no ground truth"."""
    if gt is None:
        ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", transform=ax.transAxes)
    else:
        err = np.where(mask, error_map(flow, gt), np.nan)
        vmax = max(float(np.nanpercentile(err, 99)) if np.isfinite(err).any() else 1.0, 1e-3)
        image = ax.imshow(err, cmap="magma", vmin=0, vmax=vmax)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label="px")
    ax.set_title(f"EPE map ({name})", fontsize=9)
    hide_ticks(ax)


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
