"""The deterministic summaries the notebooks print for nbval (`# NBVAL_CHECK_OUTPUT` cells): a run's config
(`describe_run`), an ablation point's settings and the points found (`describe_point`, `describe_points`), and
the ground truth of the pairs a figure shows (`describe_pairs`). Each must follow the config or the data it
describes, so that a changed recipe changes the notebooks' checked output."""

import torch

from mcjepa.ablations import describe_point, describe_points
from mcjepa.data.registry import describe_pairs
from mcjepa.experiments import describe_run, parameter_counts, run_config
from mcjepa.models.mcjepa import MCJEPA


def smoke(method, overrides=None):
    return run_config("tiny", method, overrides, epochs=1, steps_per_epoch=4)


def test_describe_run_states_the_schedule_data_model_and_losses_of_each_method():
    m_jepa, vicreg, mc_jepa = (describe_run(smoke(m)).splitlines() for m in ("m-jepa", "vicreg", "mc-jepa"))
    assert m_jepa[0] == "m-jepa: 1 epoch(s) x 4 steps = 4 steps, seed 0"
    assert m_jepa[1] == "flow: 4 frame pairs per step, 96x128 crops of embedded (2048 generated pairs, max 16 px/frame)"
    assert m_jepa[3] == "flow loss: census 1, smoothness 50 (order 1, flow level), regression 0.1, cycle 0.1, vc 0.1"
    assert m_jepa[4] == "occlusion: range (threshold 0.8) from epoch 0 of the flow"
    assert not any(line.startswith(("flow", "occlusion")) for line in vicreg)  # VICReg trains no flow
    assert vicreg[-1] == "optimizer: lr 0.0003 encoder, weight decay 0.0001, warmup 0.25 epoch(s), grad clip 1"
    assert "flow: 4 frame pairs per step, from epoch 1, 96x128" in mc_jepa[1]
    assert mc_jepa[2] == "content: 32 stills per step of embedded, views of 64x64 from 96x128"
    assert "balance 0.1" in mc_jepa[-2]


def test_describe_run_follows_the_config():
    base = describe_run(smoke("mc-jepa"))
    for key, value, text in (("loss.cycle", 0.2, "cycle 0.2"), ("train.batch_size", 6, "6 frame pairs"),
                             ("loss.balance", 1.0, "balance 1"), ("train.seed", 3, "seed 3"),
                             ("model.encoder.depths", (1, 1, 1, 1), "parameters")):
        changed = describe_run(smoke("mc-jepa", {key: value}))
        assert changed != base and text in changed, key
    assert describe_run(smoke("mc-jepa", {"loss.use_occlusion": False})).splitlines()[-3] == "occlusion: off"


def test_parameter_counts_are_the_models():
    cfg = smoke("m-jepa")
    counts = parameter_counts(cfg)
    model = MCJEPA(cfg.model)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["encoder"] == sum(p.numel() for p in model.encoder.parameters())
    assert set(counts) == {"encoder", "flow_head", "expander", "upsampler", "total"}
    assert "upsampler" not in parameter_counts(smoke("m-jepa", {"model.flow.upsample": "bilinear"}))
    assert f"model: {counts['total']:,} parameters (encoder {counts['encoder']:,}," in describe_run(cfg)


POINT = {"ablation": "vc", "key": "loss.vc", "value": 0.1, "seed": 2, "scale": "tiny", "epochs": 1,
         "steps_per_epoch": 4, "overrides": {}, "tasks": ["flow", "segmentation", "davis"],
         "eval_datasets": {"flow": "embedded", "segmentation": "embedded", "davis": "embedded"}, "epe": 1.5}


def test_describe_point_states_the_settings_not_the_results():
    assert describe_point(POINT) == ("vc: loss.vc = 0.1, seed 2, tiny scale, 1 epoch(s) x 4 steps; evaluated: flow on "
                                     "embedded, segmentation on embedded, davis on embedded")
    guarded = describe_point({**POINT, "value": 0.0, "overrides": {"train.min_feature_std": 0.05}, "epe": 9.9})
    assert guarded.startswith("vc: loss.vc = 0, seed 2, tiny scale, 1 epoch(s) x 4 steps, train.min_feature_std = "
                              "0.05; evaluated")
    assert "1.5" not in describe_point(POINT) and "9.9" not in guarded


def test_describe_points_counts_each_ablation():
    text = describe_points({"cycle": [], "vc": [POINT, {**POINT, "value": 0.0, "seed": 0}]})
    assert text.splitlines() == ["cycle (loss.cycle): 0 point(s)", "vc (loss.vc): 2 point(s): 0.1 (seed 2), 0 (seed 0)"]


def test_describe_pairs_reads_the_ground_truth_on_valid_pixels():
    flow = torch.zeros(2, 4, 6)
    flow[0, 0, 0], flow[1, 1, 1] = 3.0, -4.0  # |flow| 3 and 4 at two pixels
    valid = torch.ones(4, 6, dtype=torch.bool)
    valid[1, 1] = False  # the 4 px motion is not valid
    pair = {"name": "a", "frame1": torch.zeros(3, 4, 6), "flow": flow, "valid": valid}
    assert describe_pairs([pair]) == "a: 4x6, |flow| max 3.00 px, mean 0.13 px, 95.8% valid"
    everything = {**pair, "name": "b", "valid": None}
    assert describe_pairs([pair, everything]).splitlines()[1] == ("b: 4x6, |flow| max 4.00 px, mean 0.29 px, "
                                                                  "100.0% valid")
