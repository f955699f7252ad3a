"""Non-finite predicted flow counts as outliers with infinite EPE (warned, naming the sample); a NaN/Inf input
frame is rejected by the evaluation loop with the sample's name. Hand-computed cases."""

import math

import pytest
import torch

from mcjepa.eval.flow_metrics import evaluate_flow_dataset, flow_metrics


def test_nan_and_inf_predictions_are_outliers_with_infinite_epe():
    gt = torch.zeros(2, 1, 4)
    pred = torch.zeros(2, 1, 4)
    pred[0, 0, 1] = math.nan
    pred[1, 0, 2] = math.inf
    pred[0, 0, 3] = 10.0  # an ordinary outlier: EPE 10 > 3 and > 5 % of |g| = 0
    occlusion = torch.tensor([[False, True, False, False]])
    m = flow_metrics(pred, gt, occlusion=occlusion)
    # 4 valid pixels: EPEs 0, inf, inf, 10 -> Fl = 3/4; px1 = 1/4 (only the exact pixel)
    assert m["fl"] == 75.0 and m["px1"] == 0.25 and m["px5"] == 0.25 and m["epe"] == math.inf
    # regions: the NaN pixel is occluded -> occ Fl 100 %; noc: EPEs 0, inf, 10 -> Fl 2/3, no NaN from inf * 0
    assert m["fl_occ"] == 100.0 and m["epe_occ"] == math.inf
    assert m["fl_noc"] == pytest.approx(200 / 3) and m["epe_noc"] == math.inf
    # a non-finite prediction at an invalid pixel is not scored
    valid = torch.tensor([[True, False, False, True]])
    m = flow_metrics(pred, gt, valid)
    assert m["n"] == 2 and m["epe"] == 5.0 and m["fl"] == 50.0


class _Pairs:
    def __init__(self, frames_nan=False):
        self.frames_nan = frames_nan

    def __len__(self):
        return 2

    def __getitem__(self, i):
        frame = torch.rand(3, 8, 8)
        if self.frames_nan and i == 1:
            frame[0, 3, 3] = math.nan
        return {"frame1": frame, "frame2": frame.clone(), "flow": torch.zeros(2, 8, 8), "name": f"pair{i}"}


def test_evaluation_loop_warns_about_non_finite_predictions_naming_the_sample():
    def flow_fn(f1, f2):
        flow = torch.zeros(f1.shape[0], 2, *f1.shape[-2:])
        flow[:, :, 0, 0] = math.nan  # one pixel of every prediction
        return flow

    with pytest.warns(UserWarning) as record:
        result = evaluate_flow_dataset(flow_fn, _Pairs(), stride=8, progress=False)
    messages = [str(w.message) for w in record]
    for i in (0, 1):
        assert any(f"sample {i} (pair{i}): 1 pixels of the predicted flow are NaN/Inf" in m for m in messages)
    assert result["fl"] == pytest.approx(100 * 2 / 128) and result["epe"] == math.inf


def test_evaluation_loop_rejects_a_nan_input_frame_naming_the_sample():
    def flow_fn(f1, f2):
        return torch.zeros(f1.shape[0], 2, *f1.shape[-2:])

    with pytest.raises(ValueError, match=r"sample 1 \(pair1\): frame1 has 1 NaN/Inf values"):
        evaluate_flow_dataset(flow_fn, _Pairs(frames_nan=True), stride=8, progress=False)
