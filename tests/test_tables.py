"""Paper numbers as data (checked against the write-up in docs/method.md) and our-vs-paper tables."""

from pathlib import Path

import pytest

from mcjepa.eval.tables import (
    PAPER_ABLATIONS,
    PAPER_DAVIS_MC_JEPA,
    PAPER_FLOW,
    PAPER_SEGMENTATION,
)
from mcjepa.report import load_json
from mcjepa.viz.paper_table import results_table, save_results_table

PAPER_MD = Path(__file__).resolve().parents[1] / "docs" / "method.md"


def _md_rows(text, first_header):
    """Rows of the Markdown table whose header starts with `first_header`, as lists of cell strings."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(f"| {first_header}"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def _num(s):
    return None if s == "-" else float(s)


def test_paper_numbers_match_the_method_write_up():
    text = PAPER_MD.read_text()
    flow = _md_rows(text, "method | backbone | Sintel clean")
    assert len(flow) == len(PAPER_FLOW)
    for cells, row in zip(flow, PAPER_FLOW):
        assert cells[0] == row["method"] and cells[1] == row["backbone"]
        vals = [_num(v.strip()) for c in cells[2:] for v in c.split("/")]
        keys = ["sintel_clean_train", "sintel_clean_test", "sintel_final_train", "sintel_final_test",
                "kitti2015_train_epe", "kitti2015_test_fl"]
        assert vals == [row[k] for k in keys], row["method"]
    seg = _md_rows(text, "method | backbone | Pascal VOC")
    assert len(seg) == len(PAPER_SEGMENTATION)
    for cells, row in zip(seg, PAPER_SEGMENTATION):
        vals = [_num(v.strip()) for c in cells[2:] for v in c.split("/")]
        keys = ["voc_linear", "voc_finetune", "cityscapes_linear", "cityscapes_finetune", "ade20k_linear",
                "ade20k_finetune", "davis_jf"]
        assert vals == [row[k] for k in keys], row["method"]
    assert "13.52 / 60.1" in text and "3.41 / 47.3" in text


def test_hand_checked_values():
    mc = next(r for r in PAPER_FLOW if r["method"] == "MC-JEPA")
    assert (mc["kitti2015_train_epe"], mc["kitti2015_test_fl"]) == (2.67, 11.33)
    assert PAPER_DAVIS_MC_JEPA["JF_mean"] == pytest.approx((67.0 + 74.0) / 2)
    assert next(r for r in PAPER_SEGMENTATION if r["method"] == "MC-JEPA")["davis_jf"] == 70.5
    assert next(r for r in PAPER_ABLATIONS if r["setting"] == "no VC regularisation")["davis_jf"] == 37.8


def test_results_table_labels_ours_and_formats():
    md, fig = results_table({"kitti2015_train_epe": 9.876, "sintel_clean_train": float("nan")}, kind="flow")
    lines = md.splitlines()
    ours = [l for l in lines if "ours (tiny, embedded data)" in l]
    assert len(ours) == 1 and "**9.88**" in ours[0] and "**-**" in ours[0]
    assert sum(1 for l in lines if l.startswith("| ") and "MC-JEPA" in l) == 1
    assert "not comparable" in md
    assert len(fig.axes) == 1
    md2, _ = results_table(
        {"voc linear run": {"voc_linear": 12.3}, "ours (32px)": {"davis_jf": 5.0}}, kind="segmentation"
    )
    assert "ours: voc linear run" in md2 and "**ours (32px)**" in md2 and "**12.3**" in md2
    with pytest.warns(UserWarning, match="PERCENT"):
        results_table({"voc_linear": 0.45}, kind="segmentation")
    with pytest.raises(ValueError, match="unknown metric"):
        results_table({"epe": 1.0}, kind="flow")
    with pytest.raises(ValueError):
        results_table({}, kind="bogus")


def test_save_results_table(tmp_path):
    paths = save_results_table(
        {"voc_linear": 20.5, "davis_jf": float("nan")}, tmp_path / "sub" / "seg", kind="segmentation"
    )
    assert sorted(p.name for p in paths.values()) == ["seg.json", "seg.md", "seg.png"]
    data = load_json(paths["json"])
    assert data["ours"][0]["voc_linear"] == 20.5 and data["ours"][0]["davis_jf"] is None
    assert data["ours"][0]["method"].startswith("ours")
    assert len(data["paper"]) == len(PAPER_SEGMENTATION)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "**20.5**" in paths["md"].read_text()
    assert not [p for p in (tmp_path / "sub").iterdir() if p.name.endswith(".tmp")]
