"""One notebook's set-up and outputs: `nb = Session("01_train_m_jepa", scale=scale, figures_dir=figures_dir, ...)`.

A notebook is its markdown, its papermill `parameters` cell and calls on the Session it creates once:
- settings: the common parameters (scale, seed, schedule, data roots, folders, progress) as one
  `experiments.Setting`, `nb.setting`, checked at construction; the notebook's own parameters with `check`.
  What takes a setting (an ablation point, the claims) gets `nb.setting`;
- runs: `config(method, overrides)` is the preset with the notebook's settings, `run(cfg)` the cached
  training run (trained, resumed or reused: `mcjepa.experiments.ensure_run`), `model(run)` its model;
- outputs, all under figures_dir/<notebook>/ and written atomically: `figure` (PNG, then shown inline),
  `json` (NaN -> null), `paper_table` (the paper's table beside ours: .md, .json, .png, then shown);
  `markdown` and `table` only display. `written` lists the files this session wrote.

Layering: the notebooks' layer, above experiments, eval, train and viz; nothing in the package imports it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .config import Config
from .eval.compare import untrained_run
from .eval.references import RAW_COLOUR, SUPERVISED, TRUE_LABELS, UNTRAINED
from .eval.suite import RawColour, TrueLabels
from .experiments import Setting, check_non_negative
from .models.checkpoint import load_model
from .report import dict_table, save_and_show, save_json, show_markdown
from .viz.paper_table import save_results_table

__all__ = ["Session", "check_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=+-]*")


def check_name(name: str, what: str = "name") -> str:
    """`name` if it can be one file or folder name (letters, digits, `_ . = + -`, not starting with a dot or
    a dash: no path separator, no `..`); ValueError stating the rule otherwise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"{what} {name!r} is not a plain file name: use letters, digits and _ . = + - "
                         f"(no '/', no '..', not starting with '.' or '-')")
    return name


class Session:
    """The notebook `notebook`'s setting and output folder (figures_dir/<notebook>/, created).

    Args:
        notebook: the notebook's name without .ipynb, e.g. "11_eval_davis": its output folder.
        setting: the notebook's `experiments.Setting`, or its fields as keyword arguments, as the notebooks'
            parameters give them: scale, seed, epochs, steps_per_epoch, eval_every, data_roots, runs_dir,
            figures_dir (relative to the repository root; None: runs/, figures/), progress.

    Raises ValueError for a notebook name that is not a plain file name, or a bad setting (naming the field),
    before anything is created; TypeError when given both a setting and keyword arguments.
    """

    def __init__(self, notebook: str, setting: Setting | None = None, **settings: Any):
        self.notebook = check_name(notebook, "notebook name")
        if setting is not None and settings:
            raise TypeError(f"Session({notebook!r}): give a Setting or its fields {sorted(settings)}, not both")
        self.setting = setting if setting is not None else Setting(**settings)
        self.folder = self.setting.figures / self.notebook
        self.folder.mkdir(parents=True, exist_ok=True)
        self._written: set[str] = set()

    # -- parameters and runs ---------------------------------------------------------------------------------

    @staticmethod
    def check(**values: float) -> None:
        """Reject negative or non-finite notebook parameters, by name (`experiments.check_non_negative`)."""
        check_non_negative(**values)

    def config(self, method: str, overrides: Mapping[str, Any] | None = None) -> Config:
        """The `scale` preset for `method` ("m-jepa", "vicreg", "mc-jepa") with the setting's schedule, seed
        and data roots, and the dotted `overrides` (another config is another run): `Setting.config`."""
        return self.setting.config(method, overrides)

    def run(self, cfg: Config) -> Path:
        """The folder of the finished run of `cfg` under runs_dir: reused if there, resumed or trained if not."""
        return self.setting.run(cfg)

    def reference_runs(self, base: Config) -> dict:
        """The reference rows of a content table, {label: run}: the supervised ceiling (trained and cached like
        any run, from the session's preset and schedule; only where the training stills have class maps, i.e.
        the embedded data), the untrained encoder of `base`'s architecture, the raw-colour floor and the
        true labels (the protocol's reference) on `base`'s evaluation data (`mcjepa.eval.references`)."""
        rows = {}
        if base.data.image_dataset == "embedded":
            rows[SUPERVISED] = self.run(self.config("supervised"))
        rows[UNTRAINED] = untrained_run(base, self.setting.runs_dir)
        rows[RAW_COLOUR] = RawColour(base)
        rows[TRUE_LABELS] = TrueLabels(base)
        return rows

    @staticmethod
    def model(run: str | Path):
        """The trained `MCJEPA` of a run folder, on the CPU in eval mode."""
        return load_model(run)[0]

    # -- outputs ---------------------------------------------------------------------------------------------

    def path(self, name: str, suffix: str) -> Path:
        """folder/<name><suffix>; `name` must be a plain file name without that suffix."""
        check_name(name, "output name")
        if name.lower().endswith(suffix.lower()):
            raise ValueError(f"output name {name!r} already ends with {suffix!r}: give it without, the session "
                             f"adds it")
        return self.folder / f"{name}{suffix}"

    def figure(self, name: str, fig: Figure) -> None:
        """Save `fig` as folder/<name>.png (`report.save_and_show`: 100 dpi, atomic) and show it inline."""
        self._record(save_and_show(fig, self.path(name, ".png")))

    def json(self, name: str, data: Any) -> Path:
        """Write `data` as folder/<name>.json (`report.save_json`: atomic, sorted keys, NaN -> null, with its
        checksum); returns the path."""
        return self._record(save_json(data, self.path(name, ".json")))

    def paper_table(self, name: str, ours: Mapping, kind: str) -> None:
        """Write the paper's table with our rows (kind "flow" or "segmentation") as folder/<name>.md, .json and
        .png (`viz.paper_table.save_results_table`), and show the Markdown."""
        paths = save_results_table(dict(ours), self.folder / check_name(name, "output name"), kind=kind)
        for path in paths.values():
            self._record(path)
        self.markdown(paths["md"].read_text())

    @staticmethod
    def markdown(text: str) -> None:
        """Display `text` as Markdown."""
        show_markdown(text)

    def table(self, rows: Mapping[str, Mapping[str, object]], digits: int = 3) -> None:
        """Display {row: {column: value}} as a Markdown table (`report.dict_table`)."""
        self.markdown(dict_table(rows, digits))

    @property
    def written(self) -> list[str]:
        """Sorted names of the files this session wrote (each once, however often it was rewritten)."""
        return sorted(self._written)

    def _record(self, path: Path) -> Path:
        self._written.add(Path(path).name)
        return path
