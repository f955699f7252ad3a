"""The live picture of the notebook inspectors (flow, segmentation, data tour), testable without a browser.

Each inspector holds its data and a cache of predictions, and exposes
- `compute_panels(**state) -> dict` : the arrays shown for a control state (pure given the predictions),
- `render(**state) -> Figure`       : a matplotlib Figure drawn from those arrays (no pyplot),
- `widget()`                        : ipywidgets controls wired by a `LiveImage`; each change renders the figure
                                      to PNG into an Image widget (works in any frontend and under papermill).
This module holds what they share: the `LiveImage`, the click events on it (ipyevents) and `figure_point`, which
maps a click on the PNG back to an axes and its data coordinates.

Conventions: images (3, H, W) in [0, 1]; flows (2, H, W) pixels; predictions are cached per sample index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import contextmanager

from matplotlib.figure import Figure

from mcjepa.report import figure_png

__all__ = ["LiveImage", "click_events", "figure_point"]


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


def click_events(image, handler: Callable[[dict], None]):
    """Call `handler(event)` on a click on `image` (ipyevents: event["dataX"], ["dataY"] are the PNG's pixel
    coordinates whatever the displayed size). Returns the ipyevents.Event (keep a reference)."""
    from ipyevents import Event

    events = Event(source=image, watched_events=["click"], prevent_default_action=True)
    events.on_dom_event(handler)
    return events
