"""The paper's reported numbers as data, and tables that put our numbers beside them.

Source: the paper's reported results, restated in docs/method.md (MC-JEPA, Bardes, Ponce, LeCun 2023, as reported by two
independent write-ups; "-" in the paper = None here). Our rows are ALWAYS labelled as ours with their
scale/data (e.g. "ours (tiny, embedded data)") and highlighted in the figure: this kit's numbers come from
small models on small data and are not comparable to the paper-scale numbers.
pandas is not a dependency: plain Python rows -> Markdown here; the same table as a figure and files in
`mcjepa.viz.paper_table`.
"""

from __future__ import annotations

import math
import warnings

from ..report import fmt, markdown_table

# ------------------------------------------------------------------------------------------- paper data
FLOW_COLUMNS = {  # key -> header
    "sintel_clean_train": "Sintel clean train EPE",
    "sintel_clean_test": "Sintel clean test EPE",
    "sintel_final_train": "Sintel final train EPE",
    "sintel_final_test": "Sintel final test EPE",
    "kitti2015_train_epe": "KITTI-15 train EPE",
    "kitti2015_test_fl": "KITTI-15 test Fl-all %",
}

SEGMENTATION_COLUMNS = {
    "voc_linear": "VOC mIoU linear",
    "voc_finetune": "VOC mIoU fine-tuned",
    "cityscapes_linear": "Cityscapes mIoU linear",
    "cityscapes_finetune": "Cityscapes mIoU fine-tuned",
    "ade20k_linear": "ADE20k mIoU linear",
    "ade20k_finetune": "ADE20k mIoU fine-tuned",
    "davis_jf": "DAVIS-17 J&F",
}

ABLATION_COLUMNS = {
    "kitti2015_train_epe": "KITTI-15 train EPE",
    "voc_linear": "VOC mIoU linear",
    "davis_jf": "DAVIS-17 J&F",
}


def _flow_row(method, backbone, sc, sct, sf, sft, k, kt):
    return {"method": method, "backbone": backbone, "sintel_clean_train": sc, "sintel_clean_test": sct,
            "sintel_final_train": sf, "sintel_final_test": sft, "kitti2015_train_epe": k, "kitti2015_test_fl": kt}


PAPER_FLOW = [
    _flow_row("UFlow", "PWC", 2.50, 5.21, 3.39, 6.50, 2.71, 11.13),
    _flow_row("ARFlow", "PWC", 2.79, 4.78, 3.73, 5.89, 2.85, 11.80),
    _flow_row("UPFlow", "PWC", 2.33, 4.68, 2.67, 5.32, 2.45, 9.38),
    _flow_row("SMURF", "RAFT", 1.71, 3.15, 2.58, 4.18, 2.00, 6.83),
    _flow_row("M-JEPA", "ConvNeXt-T", 2.98, None, 3.82, None, 3.01, None),
    _flow_row("MC-JEPA", "ConvNeXt-T", 2.81, 5.01, 3.51, 6.12, 2.67, 11.33),
]


def _seg_row(method, backbone, voc, voc_ft, cs, cs_ft, ade, ade_ft, davis):
    return {"method": method, "backbone": backbone, "voc_linear": voc, "voc_finetune": voc_ft,
            "cityscapes_linear": cs, "cityscapes_finetune": cs_ft, "ade20k_linear": ade,
            "ade20k_finetune": ade_ft, "davis_jf": davis}


PAPER_SEGMENTATION = [
    _seg_row("VICReg", "ConvNeXt-T", 60.1, 77.8, 59.8, 76.3, 28.6, 41.1, 58.1),
    _seg_row("VICRegL", "ConvNeXt-T", 66.8, 79.7, 64.9, 78.3, 30.6, 44.1, 66.7),
    _seg_row("MoCo v3", "ViT-S", 57.1, 75.9, 56.5, 74.0, 23.7, 39.8, None),
    _seg_row("DINO", "ViT-S", 65.2, 79.5, 64.8, 78.1, 30.5, 43.5, 69.9),
    _seg_row("MC-JEPA", "ConvNeXt-T", 67.1, 79.9, 65.5, 78.4, 30.8, 44.2, 70.5),
]

PAPER_DAVIS_MC_JEPA = {"J_mean": 67.0, "F_mean": 74.0, "JF_mean": 70.5}

PAPER_ABLATIONS = [
    {
        "setting": "flow head on a frozen VICReg encoder",
        "kitti2015_train_epe": 13.52,
        "voc_linear": 60.1,
        "davis_jf": None,
    },
    {"setting": "batch alternation", "kitti2015_train_epe": 2.78, "voc_linear": 67.1, "davis_jf": None},
    {"setting": "combined loss every step (final)", "kitti2015_train_epe": 2.67, "voc_linear": 67.1, "davis_jf": None},
    {
        "setting": "PWC-Net pyramid instead of ConvNeXt-T",
        "kitti2015_train_epe": None,
        "voc_linear": 14.8,
        "davis_jf": 10.1,
    },
    {"setting": "no VC regularisation", "kitti2015_train_epe": 3.41, "voc_linear": 47.3, "davis_jf": 37.8},
    {
        "setting": "VC on every layer + 1-epoch warm-up (final)",
        "kitti2015_train_epe": 2.67,
        "voc_linear": 67.1,
        "davis_jf": 70.5,
    },
]

PAPER_ABLATION_NOTES = [
    "PWC-Net pyramid instead of ConvNeXt-T: flow similar (no number reported).",
    "More flow datasets give better EPE; the segmentation gain depends little on which flow data is used.",
    "The balance coefficient lambda improves both metrics up to about 0.1; above it segmentation drops sharply.",
]

KINDS = {
    "flow": (("method", "backbone"), FLOW_COLUMNS, PAPER_FLOW, 2),
    "segmentation": (("method", "backbone"), SEGMENTATION_COLUMNS, PAPER_SEGMENTATION, 1),
    "ablation": (("setting",), ABLATION_COLUMNS, PAPER_ABLATIONS, 2),
}

DEFAULT_LABEL = "ours (tiny, embedded data)"
CAVEAT = ("Paper rows: numbers reported for MC-JEPA (arXiv 2307.12698) and baselines. Rows starting with 'ours' "
          "are this kit's numbers at its own (small) scale and data: not comparable to paper-scale numbers.")


# ---------------------------------------------------------------------------------------------- tables
def _ours_label(label: str) -> str:
    label = str(label).strip()
    return label if label.lower().startswith("ours") else f"ours: {label}"


def _our_rows(ours: dict, kind: str, label: str) -> list[dict]:
    """Normalise `ours` (one metrics dict, or {label: metrics dict}) into table rows; check the keys."""
    id_cols, columns, _, _ = KINDS[kind]
    items = ours.items() if ours and all(isinstance(v, dict) for v in ours.values()) else [(label, ours)]
    rows = []
    for row_label, metrics in items:
        unknown = set(metrics) - set(columns) - set(id_cols)
        if unknown:
            raise ValueError(
                f"results_table(kind={kind!r}): unknown metric keys {sorted(unknown)}; allowed {list(columns)}"
            )
        row = {c: None for c in columns}
        row.update({k: metrics[k] for k in columns if k in metrics})
        row[id_cols[0]] = _ours_label(row_label)
        if len(id_cols) > 1:
            row[id_cols[1]] = metrics.get(id_cols[1], "")
        row["_ours"] = True
        rows.append(row)
    if kind != "flow":
        scores = [r[k] for r in rows for k in columns if k != "kitti2015_train_epe" and isinstance(r[k], (int, float))]
        scores = [v for v in scores if not math.isnan(v)]
        if scores and all(0 < v <= 1 for v in scores):
            warnings.warn("results_table: our mIoU / J&F values are all in (0, 1]; the tables use PERCENT (x100)")
    return rows


def table_cells(ours: dict, kind: str, label: str = DEFAULT_LABEL) -> tuple[list[str], list[list[str]], list[dict]]:
    """(header, body cells as text, rows as data with "_ours") of the paper's table of `kind` with our rows
    (see `table_markdown` for `ours` and `label`)."""
    if kind not in KINDS:
        raise ValueError(f"results_table: kind must be one of {list(KINDS)}, got {kind!r}")
    id_cols, columns, paper_rows, digits = KINDS[kind]
    rows = [dict(r, _ours=False) for r in paper_rows] + _our_rows(ours or {}, kind, label)
    header = [c.capitalize() for c in id_cols] + list(columns.values())
    body = [[fmt(r[c], digits=digits) for c in id_cols] + [fmt(r[c], digits=digits) for c in columns] for r in rows]
    return header, body, rows


def table_markdown(ours: dict, kind: str = "flow", label: str = DEFAULT_LABEL) -> str:
    """The paper's table of `kind` with our rows (bold) under it, then `CAVEAT`, as Markdown.

    Args:
        ours: {metric key: value} for one row (keys from FLOW_COLUMNS / SEGMENTATION_COLUMNS /
            ABLATION_COLUMNS, plus optionally "backbone"), or {row label: that dict} for several rows.
        kind: "flow", "segmentation" or "ablation".
        Units as in the paper: EPE in px, Fl-all, mIoU and J&F in PERCENT (our eval functions return mIoU
            and J&F as fractions: multiply by 100; a warning fires if all values look like fractions).
        label: the label of a single row; any label not starting with "ours" is prefixed with "ours: ".
    Raises ValueError for an unknown kind or metric key. The figure of the same table: `viz.paper_table`.
    """
    header, body, rows = table_cells(ours, kind, label)
    return markdown_table(header, body, bold=[r["_ours"] for r in rows]) + f"\n\n{CAVEAT}\n"
