"""The data at a glance: the panels of a `mcjepa.viz.widgets.DataTour`, one row per dataset."""

from __future__ import annotations

from collections.abc import Mapping

from matplotlib.figure import Figure

from mcjepa.viz.images import hide_ticks

__all__ = ["draw_panel", "plot_data_overview"]


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
    """One row per dataset of a `mcjepa.viz.widgets.DataTour`: the panels of `tour.compute_panels(name, index)`
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
