"""The paper's tables with our rows as a figure and as files (Markdown, JSON, PNG).

The rows and their text come from `mcjepa.eval.tables` (the paper's numbers as data); this module only draws
them: a matplotlib table, our rows highlighted, built without pyplot like every figure of the kit.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from ..eval.tables import CAVEAT, DEFAULT_LABEL, table_cells, table_markdown
from ..report import save_json
from ..utils import atomic_write

HEADER_COLOUR, OURS_COLOUR = "#dddddd", "#fff2b3"


def table_figure(header: list[str], body: list[list[str]], highlight: list[bool], title: str) -> Figure:
    """A table as a Figure: column widths follow the longest text of each column (long row labels are not cut
    off), header grey, rows with `highlight` yellow."""
    chars = [max(len(str(text)) for text in [name] + [cells[i] for cells in body]) + 2
             for i, name in enumerate(header)]
    fig = Figure(figsize=(max(8.0, 0.075 * sum(chars)), 0.24 * (len(body) + 1) + 0.4))
    ax = fig.add_subplot()
    ax.axis("off")
    table = ax.table(cellText=body, colLabels=header, cellLoc="center", bbox=[0, 0, 1, 1],
                     colWidths=[c / sum(chars) for c in chars])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (r, _), cell in table.get_celld().items():
        if r == 0:
            cell.set_facecolor(HEADER_COLOUR)
        elif highlight[r - 1]:
            cell.set_facecolor(OURS_COLOUR)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def results_table(ours: dict, kind: str = "flow", label: str = DEFAULT_LABEL) -> tuple[str, Figure]:
    """(Markdown, Figure) of the paper's table of `kind` with our rows (`eval.tables.table_markdown` for the
    arguments, units and errors); our rows are bold in Markdown and highlighted in the figure."""
    header, body, rows = table_cells(ours, kind, label)
    fig = table_figure(header, body, [r["_ours"] for r in rows],
                       f"{kind}: paper (reported) vs ours (highlighted; not paper scale)")
    return table_markdown(ours, kind, label), fig


def save_results_table(ours: dict, path_stem, kind: str = "flow", label: str = DEFAULT_LABEL) -> dict[str, Path]:
    """Write `<stem>.md`, `<stem>.json` (paper rows, our rows, caveat) and `<stem>.png` (120 dpi), atomically;
    returns {"md", "json", "png": path}."""
    stem = Path(path_stem)
    markdown, fig = results_table(ours, kind, label)
    _, _, rows = table_cells(ours, kind, label)
    payload = {"kind": kind, "caveat": CAVEAT,
               "paper": [{k: v for k, v in r.items() if k != "_ours"} for r in rows if not r["_ours"]],
               "ours": [{k: v for k, v in r.items() if k != "_ours"} for r in rows if r["_ours"]]}
    paths = {ext: stem.with_name(stem.name + f".{ext}") for ext in ("md", "json", "png")}
    with atomic_write(paths["md"], "w") as handle:
        handle.write(markdown)
    save_json(payload, paths["json"])
    with atomic_write(paths["png"], "wb") as handle:
        fig.savefig(handle, format="png", dpi=120, bbox_inches="tight")
    return paths
