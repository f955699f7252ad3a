"""The presentation home: number text, Markdown tables, result files with their checksum."""

import json
import math

import pytest

from mcjepa.report import CHECKSUM_KEY, dict_table, fmt, is_number, load_json, markdown_table, mean_std_text, save_json


def test_numbers_as_text():
    assert [is_number(v) for v in (1, 2.5, True, None, math.nan, math.inf, "3")] == [True, True] + [False] * 5
    assert fmt(0.4567, 100, 1) == "45.7" and fmt(1.0) == "1.00" and fmt(math.nan) == "-" and fmt(None) == "-"
    assert fmt(-math.inf) == "-" and fmt("vicreg") == "vicreg"
    assert mean_std_text({"mean": 0.5, "std": 0.01, "n": 3}, 100, 1) == "50.0 ± 1.0 (n=3)"
    assert mean_std_text({"mean": 1.234, "std": None, "n": 1}) == "1.23 (n=1)" and mean_std_text({"n": 0}) == "-"


def test_markdown_table_cells_bold_rows_and_empty():
    text = markdown_table(["a", "b"], [[1, "x"], ["", 2.5]], bold=[True])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| **1** | **x** |", "| | 2.5 |"]
    assert markdown_table(["a", "b", "c"], [], empty="(none)").splitlines()[2] == "| (none) | | |"
    with pytest.raises(ValueError, match="row 0 has 1 cells, the header 2"):
        markdown_table(["a", "b"], [[1]])


def test_dict_table_rows_columns_and_missing_values():
    text = dict_table({"M-JEPA": {"epe": 1.23456, "n": 32}, "zero flow": {"epe": float("nan"), "fl": 50.0}}, 2)
    assert text.splitlines() == ["| | epe | n | fl |", "|---|---|---|---|", "| M-JEPA | 1.23 | 32 | - |",
                                 "| zero flow | - | - | 50.00 |"]
    with pytest.raises(ValueError, match="empty table"):
        dict_table({})


def test_result_file_round_trip_nan_and_checksum(tmp_path):
    data = {"b": 1, "a": float("nan"), "c": [1.5, math.inf, (2, 3)], "d": {4: 0.1 + 0.2}}
    path = save_json(data, tmp_path / "deep" / "r.json")
    assert load_json(path) == {"a": None, "b": 1, "c": [1.5, None, [2, 3]], "d": {"4": 0.1 + 0.2}}
    raw = json.loads(path.read_text())
    assert len(raw[CHECKSUM_KEY]) == 64 and list(raw) == sorted(raw)
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temp file left
    assert load_json(save_json([1, math.nan], tmp_path / "list.json")) == [1, None]  # lists carry no checksum
    with pytest.raises(ValueError, match="reserved"):
        save_json({CHECKSUM_KEY: "x"}, tmp_path / "bad.json")


def test_an_altered_digit_is_refused_naming_the_file(tmp_path):
    path = save_json({"miou": 0.4567, "seed": 0}, tmp_path / "r.json")
    text = path.read_text()
    path.write_text(text.replace("0.4567", "0.4587"))  # still valid JSON, one digit off
    with pytest.raises(ValueError, match=f"stored evaluation {path} was altered"):
        load_json(path, "stored evaluation")
    path.write_text(text[:-10])
    with pytest.raises(ValueError, match=f"{path}: not a valid JSON file"):
        load_json(path)


def test_a_file_without_checksum_loads_with_one_warning(tmp_path):
    path = tmp_path / "old.json"
    path.write_text('{"x": 1}')
    with pytest.warns(UserWarning, match="without verifying"):
        assert load_json(path) == {"x": 1}
