"""Result numbers as grouped bars: methods side by side per metric or dataset (EPE, accuracy, mIoU, J&F)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_grouped_bars"]


def plot_grouped_bars(table: Mapping[str, Mapping[str, float]], ylabel: str, title: str | None = None,
                      fmt: str = "{:.2f}") -> Figure:
    """Bars grouped on the x axis: `table` = {group: {series: value}} (e.g. {"EPE": {"M-JEPA": 1.2,
    "zero flow": 3.4}}); every series has one colour; values written on the bars; None/NaN bars are skipped."""
    if not table:
        raise ValueError("plot_grouped_bars: empty table")
    groups = list(table)
    series: list[str] = []
    for values in table.values():
        series += [s for s in values if s not in series]
    width = 0.8 / len(series)
    fig = Figure(figsize=(max(3.4, 1.2 + 0.8 * len(groups) * len(series)), 3.2), layout="constrained")
    ax = fig.subplots()
    for index, name in enumerate(series):
        xs, ys = [], []
        for g, group in enumerate(groups):
            value = table[group].get(name)
            if value is not None and np.isfinite(value):
                xs.append(g + (index - (len(series) - 1) / 2) * width)
                ys.append(float(value))
        bars = ax.bar(xs, ys, width=width * 0.95, color=f"C{index}", label=name)
        ax.bar_label(bars, labels=[fmt.format(y) for y in ys], fontsize=8, padding=2)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.15)
    ax.grid(True, axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
