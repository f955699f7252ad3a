"""The notebooks store outputs only for the cells nbval checks (`# NBVAL_CHECK_OUTPUT`), text only, and the
sanitizer file `make test` passes to nbval exists and parses."""

import configparser

import nbformat
import pytest

from mcjepa.notebook_outputs import MARKER, _text_only, checked_cells, stored_outputs_problems
from mcjepa.reproduce import NOTEBOOKS, notebook_path
from mcjepa.utils import project_root

NAMES = [name for name, _ in NOTEBOOKS]


@pytest.mark.parametrize("name", NAMES)
def test_only_checked_cells_store_text_outputs(name):
    nb = nbformat.read(notebook_path(name), as_version=4)
    assert stored_outputs_problems(nb) == []


# Notebooks without a checked cell, and why; every other notebook has at least one
UNCHECKED: dict[str, str] = {}  # notebook -> why it has no checked cell (none today: every notebook has one)


def test_checked_outputs_exist_where_promised():
    checked = {name: len(checked_cells(nbformat.read(notebook_path(name), as_version=4))) for name in NAMES}
    assert {name for name, n in checked.items() if n == 0} == set(UNCHECKED)
    # the data tour: scene, parameter error, exact-GT numbers, the real pair, files; the training notebooks: the
    # run's config, the data or zero-flow baseline, files; 09 and 12: datasets / zero flow / pairs shown, files
    assert checked["00_data_tour"] >= 5 and checked["14_inspectors"] >= 1
    assert all(checked[name] >= 3 for name in ("01_train_m_jepa", "02_train_vicreg", "03_train_mc_jepa",
                                               "09_eval_flow"))
    assert checked["08_ablation_plots"] >= 2 and checked["12_fig_flow"] >= 2


def test_marker_detection_and_problems():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"{MARKER}\nprint(1)"),
                nbformat.v4.new_code_cell(f"x = 1  {MARKER}"),  # not on its own line: nbval ignores it too
                nbformat.v4.new_code_cell("print(2)")]
    assert checked_cells(nb) == [0]
    assert stored_outputs_problems(nb) == ["cell 0 is marked # NBVAL_CHECK_OUTPUT but stores no output"]
    image = nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "<Figure>"})
    stream = nbformat.v4.new_output("stream", name="stdout", text="1\n")
    nb.cells[0].outputs = [stream, image]
    nb.cells[0].execution_count = 1
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    assert stored_outputs_problems(nb) == [
        "cell 0 stores a non-text output (display_data, ['image/png'])",
        "cell 2 stores outputs but is not marked # NBVAL_CHECK_OUTPUT",
        "cell 2 stores outputs without an execution count (nbval: 'unrun reference cell')"]
    kept = _text_only([stream, image])
    assert [o["output_type"] for o in kept] == ["stream", "display_data"] and set(kept[1]["data"]) == {"text/plain"}


def test_sanitizer_file_parses_and_replaces_paths_and_timings():
    import re

    config = configparser.ConfigParser()
    config.read(project_root() / "notebooks" / "nbval_sanitize.cfg")
    rules = [(config[s]["regex"], config[s]["replace"]) for s in config.sections()]
    assert len(rules) >= 3
    text = "saved to /home/ci/repo/build/notebook_smoke/figures/x.json in 12.5 s, 01:23 left; 7.7 px, 4.6%"
    for regex, replace in rules:
        text = re.sub(regex, replace, text)
    assert text == "saved to SMOKE_DIR/figures/x.json in TIME, TIME left; 7.7 px, 4.6%"
