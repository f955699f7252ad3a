"""Showing and keeping results in a notebook: a figure inline or as PNG bytes, a figure file, a Markdown table.

The figure builders of this package return a `matplotlib.figure.Figure` made WITHOUT pyplot (no global
figure registry, no backend, nothing to close, never `plt.show`); these functions are how such a figure
reaches the reader.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mcjepa.utils import atomic_write

__all__ = ["figure_png", "show", "save_figure", "markdown_table"]


def figure_png(fig: Figure, dpi: int = 90, tight: bool = True) -> bytes:
    """PNG bytes of a Figure. `tight=False` keeps the figure's size (figsize x dpi pixels), so that a widget's
    picture does not change size between states and PNG pixels map back to data coordinates."""
    buffer = io.BytesIO()
    if tight:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    else:
        fig.set_dpi(dpi)  # the figure's transforms are then those of the PNG (see widgets.figure_point)
        fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def show(fig: Figure) -> None:
    """Display a Figure inline as a PNG (works without a pyplot backend)."""
    from IPython.display import Image, display

    display(Image(data=figure_png(fig, dpi=100)))


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


def markdown_table(table: Mapping[str, Mapping[str, object]], digits: int = 3) -> str:
    """A Markdown table from {row: {column: value}} (columns in order of first appearance; floats rounded to
    `digits` decimals, missing or non-finite values shown as "-"); display it with IPython's Markdown."""
    if not table:
        raise ValueError("markdown_table: empty table")
    columns: list[str] = []
    for values in table.values():
        columns += [c for c in values if c not in columns]

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            return "-"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {row} | " + " | ".join(cell(values.get(c)) for c in columns) + " |" for row, values in table.items()]
    return "\n".join(lines)
