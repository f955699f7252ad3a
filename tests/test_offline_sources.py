"""Offline real data: Middlebury Motorcycle (scikit-image) and OpenCV sample videos (opencv-doc)."""

import numpy as np
import pytest
import torch

from mcjepa.data import offline_sources as O
from mcjepa.models.warp import warp


def test_motorcycle_full_resolution_flow_is_minus_disparity():
    left, right, disparity = O.motorcycle_arrays()
    sample = O.MotorcycleStereo(scale=1.0)[0]
    finite = np.isfinite(disparity)
    assert sample["valid"].numpy().tolist() == finite.tolist()
    np.testing.assert_array_equal(sample["flow"][0].numpy()[finite], -disparity[finite])
    assert (sample["flow"][1] == 0).all()
    # a slow reference: nearest-pixel photometric check in a Python loop over a few rows
    grey_l, grey_r = left.astype(float).mean(-1), right.astype(float).mean(-1)
    errors = {-1: [], 1: []}
    for row in range(100, 400, 50):
        for col in range(100, 700, 7):
            if finite[row, col]:
                for sign in (-1, 1):
                    target = int(round(col + sign * disparity[row, col]))
                    if 0 <= target < grey_r.shape[1]:
                        errors[sign].append(abs(grey_l[row, col] - grey_r[row, target]))
    assert np.mean(errors[-1]) < 0.5 * np.mean(errors[1])


def test_motorcycle_quarter_scale_warps_right_onto_left():
    sample = O.MotorcycleStereo(scale=0.25)[0]
    assert sample["frame1"].shape == (3, 125, 185) and sample["flow"].shape == (2, 125, 185)
    valid = sample["valid"]
    # strict validity (all 4x4 source pixels known): measured 0.73 of pixels; full resolution 0.927
    assert 0.6 < valid.float().mean() < 0.9
    frame1, frame2, flow = sample["frame1"][None], sample["frame2"][None], sample["flow"][None]
    inside = valid.clone()
    inside[:, :16] = False  # left border: disparity up to 15 px at this scale
    error_gt = (warp(frame2, flow) - frame1).abs().mean(1)[0][inside].mean()
    error_zero = (frame2 - frame1).abs().mean(1)[0][inside].mean()
    error_flipped = (warp(frame2, -flow) - frame1).abs().mean(1)[0][inside].mean()
    assert error_gt < 0.5 * error_zero and error_gt < 0.5 * error_flipped
    # flow scales with the resolution: mean |u| at 1/4 ~ mean |u| at full / 4
    full = O.MotorcycleStereo(scale=1.0)[0]
    ratio = sample["flow"][0][valid].abs().mean() / full["flow"][0][full["valid"]].abs().mean()
    assert abs(ratio - 185 / 741) < 0.02


def test_resize_flow_with_validity_against_loop():
    flow = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6)
    valid = torch.ones(4, 6, dtype=torch.bool)
    valid[0, 0] = False
    small, small_valid = O.resize_flow_with_validity(flow, valid, (2, 3))
    for i in range(2):
        for j in range(3):
            block = valid[2 * i:2 * i + 2, 2 * j:2 * j + 2]
            assert bool(small_valid[i, j]) == bool(block.all())
            if block.all():
                mean = flow[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean((1, 2))
                torch.testing.assert_close(small[:, i, j], mean * 0.5)


def test_opencv_doc_missing_root_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install opencv-doc"):
        O.OpenCVDocVideos(root=tmp_path / "absent")


def test_opencv_doc_videos_pairs():
    if not O.OPENCV_DOC_DATA.is_dir():
        pytest.skip(f"{O.OPENCV_DOC_DATA} absent: apt-get install opencv-doc to run this test")
    dataset = O.OpenCVDocVideos(size=(48, 64), max_frames=3, videos=("vtest.avi",))
    assert len(dataset) == 2 + 2  # 2 pairs from 3 vtest.avi frames + basketball + rubberwhale
    sample = dataset[1]
    assert sample["name"] == "vtest.avi/000001" and "flow" not in sample
    assert sample["frame1"].shape == (3, 48, 64) and 0 <= sample["frame1"].min() <= sample["frame1"].max() <= 1
    assert not torch.equal(dataset[0]["frame1"], dataset[0]["frame2"])  # real motion between frames
    assert torch.equal(dataset[0]["frame2"], dataset[1]["frame1"])  # consecutive pairs share a frame
    assert dataset[2]["name"] == "basketball1-basketball2"


def test_opencv_doc_drops_static_pairs_and_cuts():
    if not O.OPENCV_DOC_DATA.is_dir():
        pytest.skip(f"{O.OPENCV_DOC_DATA} absent: apt-get install opencv-doc to run this test")
    kept = O.OpenCVDocVideos(size=(24, 32), max_frames=4, videos=("Megamind.avi",), image_pairs=())
    names = [kept[i]["name"] for i in range(len(kept))]
    assert names == ["Megamind.avi/000002"]  # pair 0 is static, pair 1 crosses a cut
    for i in range(len(kept)):
        assert (kept[i]["frame2"] - kept[i]["frame1"]).abs().mean() >= 1e-3
    everything = O.OpenCVDocVideos(size=(24, 32), max_frames=4, videos=("Megamind.avi",), image_pairs=(),
                                   min_change=0.0, max_change=None)
    assert len(everything) == 3
