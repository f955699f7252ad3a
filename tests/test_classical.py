"""OpenCV baselines: they recover a known translation, report per-pair time, and fail clearly."""

import pytest
import torch

from mcjepa.eval.classical import CLASSICAL_FLOW, Timed, classical_flow_fn, evaluate_timed

pytest.importorskip("cv2", reason="the eval extra (opencv-python-headless) is not installed")


def textured_pair(shift_x: int, shift_y: int):
    """A smooth random texture and the same texture moved by (shift_x, shift_y) px: GT flow frame1->frame2."""
    gen = torch.Generator().manual_seed(0)
    big = torch.nn.functional.interpolate(torch.rand(1, 3, 24, 32, generator=gen), size=(120, 160), mode="bicubic")
    big = big.clamp(0, 1)
    frame1 = big[..., 10:106, 10:138]
    frame2 = big[..., 10 - shift_y:106 - shift_y, 10 - shift_x:138 - shift_x]
    flow = torch.zeros(2, 96, 128)
    flow[0], flow[1] = shift_x, shift_y
    return frame1[0], frame2[0], flow


@pytest.mark.parametrize("name", list(CLASSICAL_FLOW))
def test_recovers_a_translation(name):
    frame1, frame2, flow = textured_pair(3, -2)
    pred = classical_flow_fn(name)(frame1[None], frame2[None])[0]
    assert pred.shape == (2, 96, 128)
    interior = (pred - flow)[:, 16:-16, 16:-16]
    assert interior.norm(dim=0).mean().item() < 0.5  # zero flow would be sqrt(13) = 3.6 px


def test_evaluate_timed_reports_seconds_per_pair():
    frame1, frame2, flow = textured_pair(2, 1)
    dataset = [{"frame1": frame1, "frame2": frame2, "flow": flow}] * 3
    result = evaluate_timed(classical_flow_fn("dis"), dataset, stride=1)
    assert result["epe"] < 1.0 and result["n_images"] == 3
    assert 0 < result["seconds_per_pair"] < 5


def test_timed_counts_calls():
    timed = Timed(lambda a, b: a[:, :2] * 0)
    for _ in range(4):
        timed(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
    assert timed.calls == 4 and timed.per_pair == pytest.approx(timed.seconds / 4)


def test_unknown_method_names_the_valid_ones():
    with pytest.raises(ValueError, match="farneback"):
        classical_flow_fn("lucas-kanade")
