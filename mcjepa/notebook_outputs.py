"""The outputs nbval checks: `python -m mcjepa.notebook_outputs [NAME ...]` refreshes them.

A code cell whose source has the line `# NBVAL_CHECK_OUTPUT` is compared by `make test` (nbval, `--nbval-lax`:
only such cells) with the output stored in the notebook, after the sanitizers of `notebooks/nbval_sanitize.cfg`
(paths, timings). `make test` runs the notebooks at SMOKE settings, so the stored outputs are the smoke ones:
this command executes each notebook's cells up to its last checked cell at smoke settings (papermill, runs and
figures in a temporary folder; the notebooks it reads from first, `PREREQUISITES`) and stores the checked cells'
outputs (text only), clearing every other output.
Mark only cells whose output is deterministic and independent of training results: parameter checks, dataset
sizes, config summaries, exact-GT sanity numbers, the figures written.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

from .ablations import ABLATIONS
from .reproduce import CLAIMS_NOTEBOOK, NOTEBOOKS, kernel_config, notebook_path, smoke_parameters

MARKER = "# NBVAL_CHECK_OUTPUT"
TEXT_MIMES = ("text/plain", "text/markdown")
# Notebooks whose outputs a notebook reads, executed first (whole, at smoke settings, in the same folders) when
# its outputs are refreshed, as `make test` runs them first (tests/conftest.py: 04-08 are one unit of work):
# notebook 08 reads the points of every ablation notebook (`ablations.ABLATIONS`)
PREREQUISITES = {CLAIMS_NOTEBOOK: tuple(spec.notebook for spec in ABLATIONS.values())}

__all__ = ["MARKER", "PREREQUISITES", "checked_cells", "stored_outputs_problems", "refresh"]


def checked_cells(nb) -> list[int]:
    """Indices of the code cells marked for output checking."""
    return [i for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and any(line.strip() == MARKER for line in cell.source.splitlines())]


def _text_only(outputs: list) -> list:
    """Streams, and display/execute results reduced to their text mimes (no images, no widget state)."""
    kept = []
    for out in outputs:
        if out.get("output_type") == "stream":
            kept.append(out)
        elif out.get("output_type") in ("display_data", "execute_result"):
            data = {k: v for k, v in out.get("data", {}).items() if k in TEXT_MIMES}
            if data:
                out = copy.deepcopy(out)
                out["data"], out["metadata"] = data, {}
                kept.append(out)
    return kept


def stored_outputs_problems(nb) -> list[str]:
    """What breaks the rule "only checked cells store outputs, and only text" (empty when the notebook keeps it)."""
    checked, problems = set(checked_cells(nb)), []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.outputs and i not in checked:
            problems.append(f"cell {i} stores outputs but is not marked {MARKER}")
        if i in checked and not cell.outputs:
            problems.append(f"cell {i} is marked {MARKER} but stores no output")
        if cell.outputs and cell.execution_count is None:
            problems.append(f"cell {i} stores outputs without an execution count (nbval: 'unrun reference cell')")
        for out in cell.outputs:
            extra = set(out.get("data", {})) - set(TEXT_MIMES)
            if extra or out.get("output_type") == "error":
                problems.append(f"cell {i} stores a non-text output ({out.get('output_type')}, {sorted(extra)})")
    return problems


def refresh(name: str) -> int:
    """Store the smoke outputs of notebook `name`'s checked cells (clearing the others); returns how many."""
    import nbformat
    import papermill

    path = notebook_path(name)
    nb = nbformat.read(path, as_version=4)
    checked = checked_cells(nb)
    if not checked and not any(cell.get("outputs") for cell in nb.cells):
        return 0  # nothing to store or clear: the file is left as it is
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    if checked:
        truncated = copy.deepcopy(nb)
        truncated.cells = truncated.cells[: checked[-1] + 1]
        with tempfile.TemporaryDirectory() as tmp:
            for first in PREREQUISITES.get(name, ()):
                papermill.execute_notebook(str(notebook_path(first)), str(Path(tmp) / f"{first}.out.ipynb"),
                                           cwd=str(path.parent), progress_bar=False, config=kernel_config(),
                                           parameters=smoke_parameters(first, Path(tmp)))
            source, target = Path(tmp) / f"{name}.ipynb", Path(tmp) / f"{name}.out.ipynb"
            nbformat.write(truncated, source)
            executed = papermill.execute_notebook(
                str(source), str(target), cwd=str(path.parent), progress_bar=False, config=kernel_config(),
                parameters=smoke_parameters(name, Path(tmp)))
            by_id = {cell.get("id"): cell for cell in executed.cells}
            for count, i in enumerate(checked, start=1):
                nb.cells[i].outputs = _text_only(by_id[nb.cells[i].get("id")].outputs)
                nb.cells[i].execution_count = count  # nbval refuses "unrun" reference cells that have outputs
    nbformat.write(nb, path)
    return len(checked)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcjepa.notebook_outputs", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks (e.g. 00_data_tour); default: every notebook")
    args = parser.parse_args(argv)
    known = [name for name, _ in NOTEBOOKS]
    for name in args.names:
        if name not in known:
            parser.error(f"unknown notebook {name!r}; have {known}")
    for name in args.names or known:
        print(f"{name}: {refresh(name)} checked cells", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
