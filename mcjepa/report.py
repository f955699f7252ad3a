"""How results leave the kit: numbers as text, Markdown tables, result files (JSON) and figures.

The one home for presentation, below eval/, viz/ and the notebook layer (it imports nothing of the kit but
`utils`). Figures are `matplotlib.figure.Figure`s made without pyplot (no global registry, no backend,
nothing to close); `show` and `save_figure` are how they reach the reader.

Result files carry their own checksum: `save_json` writes the sha256 of the file's content under the key
`CHECKSUM_KEY`, and `load_json` recomputes it, so a result whose bytes were altered after writing (a flipped
digit still parses as JSON) is refused with an error naming the file, as checkpoints are (`utils.verify_checksum`).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .utils import atomic_write

__all__ = ["CHECKSUM_KEY", "is_number", "fmt", "mean_std_text", "markdown_table", "dict_table", "json_safe",
           "save_json", "load_json", "figure_png", "show", "show_markdown", "save_figure", "save_and_show"]

CHECKSUM_KEY = "_sha256"  # top-level key of a result file written by `save_json`: sha256 of the rest


# -- numbers -------------------------------------------------------------------------------------------------
def is_number(value) -> bool:
    """A finite int or float (not a bool, not None, not NaN or inf)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fmt(value, factor: float = 1.0, digits: int = 2) -> str:
    """`value * factor` with `digits` decimals; "-" for None, NaN or inf; other values as `str`."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if is_number(value):
        return f"{value * factor:.{digits}f}"
    return str(value)


def mean_std_text(summary: Mapping, factor: float = 1.0, digits: int = 2) -> str:
    """'1.23 ± 0.04 (n=3)' from {"mean", "std", "n"}; '1.23 (n=1)' without a spread; '-' without values."""
    if not summary.get("n"):
        return "-"
    text = fmt(summary["mean"], factor, digits)
    if summary.get("std") is not None:
        text += f" ± {fmt(summary['std'], factor, digits)}"
    return f"{text} (n={summary['n']})"


# -- tables --------------------------------------------------------------------------------------------------
def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], bold: Iterable[bool] = (),
                   empty: str | None = None) -> str:
    """A Markdown table from a header and rows of cells (already text, or anything `str` shows).

    `bold[i]` sets row i in bold (e.g. our rows among the paper's); `empty` is the first cell of the one row
    shown when there are no rows (None: header only). Raises ValueError when a row's length differs from the
    header's. Returns the table without a trailing newline."""
    bold = list(bold)
    lines = [_row(header), "|" + "---|" * len(header)]
    for i, cells in enumerate(rows):
        cells = [str(c) for c in cells]
        if len(cells) != len(header):
            raise ValueError(f"markdown_table: row {i} has {len(cells)} cells, the header {len(header)}: {cells}")
        if i < len(bold) and bold[i]:
            cells = [f"**{c}**" for c in cells]
        lines.append(_row(cells))
    if len(lines) == 2 and empty is not None:
        lines.append(_row([empty] + [""] * (len(header) - 1)))
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def dict_table(table: Mapping[str, Mapping[str, object]], digits: int = 3) -> str:
    """A Markdown table from {row: {column: value}}: columns in order of first appearance, floats with
    `digits` decimals, missing or non-finite values "-". Raises ValueError for an empty table."""
    if not table:
        raise ValueError("dict_table: empty table")
    columns: list[str] = []
    for values in table.values():
        columns += [c for c in values if c not in columns]

    def cell(value) -> str:
        return fmt(value, digits=digits) if isinstance(value, float) or value is None else str(value)

    return markdown_table([""] + columns, ([row] + [cell(values.get(c)) for c in columns]
                                           for row, values in table.items()))


# -- result files --------------------------------------------------------------------------------------------
def json_safe(value: Any) -> Any:
    """`value` as plain JSON data: NaN and inf become None, keys become str, tuples become lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _canonical(data: Any) -> str:
    return json.dumps(data, indent=1, sort_keys=True, allow_nan=False)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_json(data: Any, path: str | os.PathLike) -> Path:
    """Write `data` (made `json_safe`) as JSON, atomically, with sorted keys; creates folders.

    A dict gets `CHECKSUM_KEY`: the sha256 of its canonical text, which `load_json` checks. Raises
    ValueError when a dict already holds that key. Returns the path written."""
    path, data = Path(path), json_safe(data)
    if isinstance(data, dict):
        if CHECKSUM_KEY in data:
            raise ValueError(f"save_json({path}): the key {CHECKSUM_KEY!r} is reserved for the file's checksum")
        data = {**data, CHECKSUM_KEY: _digest(_canonical(data))}
    with atomic_write(path, "w") as handle:
        handle.write(_canonical(data) + "\n")
    return path


_UNVERIFIED: set[str] = set()


def load_json(path: str | os.PathLike, what: str = "result file") -> Any:
    """Read a JSON file; a dict written by `save_json` comes back without `CHECKSUM_KEY`, after checking it.

    Raises FileNotFoundError for a missing file and ValueError naming the file when it is not valid JSON
    (torn or corrupted) or its content differs from what was written (the checksum does not match). A dict
    without a checksum (written before the kit recorded them, or by hand) loads with one warning per file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{what} {path}: not a valid JSON file, torn or corrupted? ({err})") from err
    if not isinstance(data, dict):
        return data
    recorded = data.pop(CHECKSUM_KEY, None)
    if recorded is None:
        if str(path) not in _UNVERIFIED:
            _UNVERIFIED.add(str(path))
            warnings.warn(f"{what} {path} has no {CHECKSUM_KEY!r} key (written before the kit recorded "
                          f"checksums, or by hand): loaded without verifying its content", stacklevel=2)
        return data
    actual = _digest(_canonical(data))
    if actual != recorded:
        raise ValueError(f"{what} {path} was altered or corrupted after it was written: the sha256 of its content "
                         f"({actual[:16]}...) differs from its {CHECKSUM_KEY!r} ({str(recorded)[:16]}...); "
                         f"restore it, or delete it to recompute it")
    return data


# -- figures and display -------------------------------------------------------------------------------------
def figure_png(fig: Figure, dpi: int = 90, tight: bool = True) -> bytes:
    """PNG bytes of a Figure. `tight=False` keeps the figure's size (figsize x dpi pixels), so that a widget's
    picture does not change size between states and PNG pixels map back to data coordinates."""
    buffer = io.BytesIO()
    if tight:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    else:
        fig.set_dpi(dpi)  # the figure's transforms are then those of the PNG (see viz's figure_point)
        fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def show(fig: Figure) -> None:
    """Display a Figure inline as a PNG (works without a pyplot backend)."""
    from IPython.display import Image, display  # deferred: IPython comes with the notebooks extra

    display(Image(data=figure_png(fig, dpi=100)))


def show_markdown(text: str) -> None:
    """Display `text` as Markdown in a notebook."""
    from IPython.display import Markdown, display

    display(Markdown(text))


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write `fig` atomically (temp file in the same folder, then rename); creates parent folders.
    The format follows the suffix (png by default when there is none). Returns the path written."""
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    fmt_name = path.suffix.lstrip(".").lower()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format=fmt_name, dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    return path


def save_and_show(fig: Figure, path: str | os.PathLike) -> Path:
    """`save_figure` (100 dpi) then `show`: how a notebook keeps a figure and shows it. Returns the path."""
    path = save_figure(fig, path)
    show(fig)
    return path
