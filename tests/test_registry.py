"""mcjepa.data.registry's evaluation half: every table reads from one place and is consistent."""

import pytest

from mcjepa.ablations import EVAL_DATASETS as ABLATION_DATASETS
from mcjepa.config import tiny
from mcjepa.data.registry import (EVAL_DATASETS, EVAL_TASKS, SCALE_DATASETS, class_names, eval_roots,
                                  flow_eval_dataset, segmentation_datasets, video_dataset)
from mcjepa.eval.tables import FLOW_COLUMNS, SEGMENTATION_COLUMNS


def test_scales_evaluate_on_registered_datasets_and_ablations_on_the_first():
    for scale, per_task in SCALE_DATASETS.items():
        assert set(per_task) == set(EVAL_TASKS)
        for task, names in per_task.items():
            assert names and set(names) <= set(EVAL_DATASETS[task]), (scale, task)
            assert ABLATION_DATASETS[scale][task] == names[0]


def test_entries_name_real_columns_and_class_lists():
    for task, per in EVAL_DATASETS.items():
        columns = FLOW_COLUMNS if task == "flow" else SEGMENTATION_COLUMNS
        for name, spec in per.items():
            assert {spec.paper_column, spec.stands_in_for} - {None} <= set(columns), (task, name)
            assert bool(spec.classes) == (task == "segmentation"), (task, name)
    assert len(class_names("pascal_voc")) == 21 and len(class_names("ade20k")) == 150


def test_builders_roots_and_errors():
    cfg = tiny()
    assert len(flow_eval_dataset("embedded", None, cfg)) == 32
    train, val, classes = segmentation_datasets("embedded", None, cfg)
    assert (len(train), len(val), classes) == (384, 128, len(class_names("embedded")))
    assert len(video_dataset("embedded", None, cfg)) == 6
    with pytest.raises(ValueError, match="data verify sintel ROOT"):
        flow_eval_dataset("sintel_final", None, cfg)
    with pytest.raises(ValueError, match="unknown video dataset 'davis2016'"):
        video_dataset("davis2016", None, cfg)
    assert eval_roots({"sintel": "/s"}) == {"sintel": "/s", "sintel_clean": "/s", "sintel_final": "/s"}
