"""The data at a glance: `DataTour` (one dataset and index at a time, live in a notebook) and
`plot_data_overview` (its panels, one row per dataset), both drawn with `draw_panel`.

Conventions: images (3, H, W) in [0, 1]; flows (2, H, W) pixels; masks (H, W) bool; labels (H, W) int.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from mcjepa.viz.flow_colors import flow_to_rgb, max_flow_radius, to_numpy
from mcjepa.viz.images import hide_ticks, to_image
from mcjepa.viz.live import LiveImage
from mcjepa.viz.segmentation import colorize_labels, overlay_mask

__all__ = ["DataTour", "draw_panel", "plot_data_overview"]


def draw_panel(ax, title: str, arr, kind: str, fontsize: float = 9) -> None:
    """One panel of `DataTour.compute_panels`: `kind` "rgb" ((H, W, 3) image) or "mask" ((H, W) bool, grey),
    drawn pixel by pixel (nearest), titled, without ticks."""
    if kind == "mask":
        ax.imshow(arr, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(arr, interpolation="nearest")
    ax.set_title(title, fontsize=fontsize)
    hide_ticks(ax)


def plot_data_overview(tour, picks: Mapping[str, int], max_columns: int = 6) -> Figure:
    """One row per dataset of a `DataTour`: the panels of `tour.compute_panels(name, index)`
    for each {name: index} of `picks` (at most `max_columns` per row), the row labelled with the dataset."""
    if not picks:
        raise ValueError("plot_data_overview: no datasets picked")
    contents = {name: tour.compute_panels(name, index) for name, index in picks.items()}
    ncols = min(max_columns, max(len(c["panels"]) for c in contents.values()))
    fig = Figure(figsize=(2.5 * ncols, 2.35 * len(contents)), layout="constrained")
    grid = fig.subplots(len(contents), ncols, squeeze=False)
    for r, (name, content) in enumerate(contents.items()):
        for c, ax in enumerate(grid[r]):
            if c >= len(content["panels"][:ncols]):
                ax.set_axis_off()
                continue
            draw_panel(ax, *content["panels"][c], fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    return fig


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
