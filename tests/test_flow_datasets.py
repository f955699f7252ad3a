"""Flow dataset loaders on fixture trees written in the official layouts."""

import numpy as np
import pytest
import torch

from mcjepa.data import flow_datasets as D
import fixtures_data as fx


def as_hwc(tensor):
    return tensor.permute(1, 2, 0).numpy()


def check_pair_keys(sample, with_flow=True, with_occlusion=False):
    assert sample["frame1"].shape == (3, fx.H, fx.W) and sample["frame1"].dtype == torch.float32
    assert 0 <= sample["frame1"].min() and sample["frame1"].max() <= 1
    assert ("flow" in sample) == with_flow and ("valid" in sample) == with_flow
    assert ("occlusion" in sample) == with_occlusion
    if with_flow:
        assert sample["flow"].shape == (2, fx.H, fx.W) and sample["valid"].dtype == torch.bool


def test_flyingchairs_splits_and_values(tmp_path):
    truth = fx.make_flyingchairs(tmp_path, labels=(1, 2, 1))
    train, val = D.FlyingChairs(tmp_path, "train"), D.FlyingChairs(tmp_path, "val")
    assert [s.name for s in train.samples] == ["00001", "00003"] and len(val) == 1
    sample = val[0]
    check_pair_keys(sample)
    assert sample["name"] == "00002"
    np.testing.assert_array_equal(as_hwc(sample["flow"]), truth["00002"]["flow"])
    np.testing.assert_array_equal(np.rint(as_hwc(sample["frame2"]) * 255).astype(np.uint8), truth["00002"]["images"][1])
    assert sample["valid"].all()


def test_flyingchairs_missing_split_file_is_explained(tmp_path):
    fx.make_flyingchairs(tmp_path, split_file=False)
    with pytest.raises(FileNotFoundError, match="FlyingChairs_train_val.txt"):
        D.FlyingChairs(tmp_path, "train")
    assert len(D.FlyingChairs(tmp_path, "all")) == 3
    (tmp_path / "FlyingChairs_train_val.txt").write_text("1\n2\n")
    with pytest.raises(ValueError, match="2 labels for 3"):
        D.FlyingChairs(tmp_path, "val")


def test_empty_root_names_the_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        D.Sintel(tmp_path)


def test_flyingthings_directions(tmp_path):
    truth = fx.make_flyingthings(tmp_path, frames=(6, 7, 8))
    forward = D.FlyingThings3D(tmp_path, direction="forward")
    backward = D.FlyingThings3D(tmp_path, direction="backward")
    both = D.FlyingThings3D(tmp_path, direction="both")
    assert len(forward) == 2 and len(backward) == 2 and len(both) == 4
    sample = forward[1]  # frame 7 -> 8 with into_future flow of frame 7
    check_pair_keys(sample)
    np.testing.assert_array_equal(as_hwc(sample["flow"]), truth["future"][7])
    np.testing.assert_array_equal(np.rint(as_hwc(sample["frame1"]) * 255), truth["frames"][7])
    np.testing.assert_array_equal(np.rint(as_hwc(sample["frame2"]) * 255), truth["frames"][8])
    back = backward[0]  # frame 7 -> 6 with into_past flow of frame 7
    np.testing.assert_array_equal(as_hwc(back["flow"]), truth["past"][7])
    np.testing.assert_array_equal(np.rint(as_hwc(back["frame2"]) * 255), truth["frames"][6])
    assert back["name"].endswith("0007_into_past")


def test_flyingthings_corrupt_pfm_names_path(tmp_path):
    fx.make_flyingthings(tmp_path)
    dataset = D.FlyingThings3D(tmp_path)
    dataset.samples[0].flow.write_bytes(b"PF\n32 24\n-1.0\n" + b"\0" * 10)
    with pytest.raises(ValueError, match=str(dataset.samples[0].flow)):
        dataset[0]


def test_sintel_training_test_and_occlusion(tmp_path):
    truth = fx.make_sintel(tmp_path, scenes=("alley_1", "market_2"), n_frames=3)
    train = D.Sintel(tmp_path, "training", "clean")
    assert len(train) == 4 and train.samples[2].name == "market_2/frame_0001"
    sample = train[2]
    check_pair_keys(sample, with_occlusion=True)
    gt = truth[("market_2", 1)]
    np.testing.assert_array_equal(as_hwc(sample["flow"]), gt["flow"])
    np.testing.assert_array_equal(sample["occlusion"].numpy(), gt["occlusion"])
    assert sample["valid"].all()
    np.testing.assert_array_equal(np.rint(as_hwc(sample["frame1"]) * 255), truth[("training", "clean", "market_2", 1)])
    masked = D.Sintel(tmp_path, "training", "final", use_invalid_mask=True)[2]
    np.testing.assert_array_equal(masked["valid"].numpy(), ~gt["invalid"])
    test = D.Sintel(tmp_path, "test", "clean")
    check_pair_keys(test[0], with_flow=False)
    assert len(D.Sintel(tmp_path, scenes=["alley_1"])) == 2


@pytest.mark.parametrize("cls, image_dir", [(D.KITTI2015, "image_2"), (D.KITTI2012, "colored_0")])
def test_kitti_occ_noc_and_testing(tmp_path, cls, image_dir):
    truth = fx.make_kitti(tmp_path, image_dir=image_dir, n=2)
    for occ in ("occ", "noc"):
        dataset = cls(tmp_path, "training", occ=occ)
        assert len(dataset) == 2
        sample = dataset[1]
        check_pair_keys(sample)
        flow, valid = truth["000001"][occ]
        np.testing.assert_array_equal(sample["valid"].numpy(), valid)
        np.testing.assert_array_equal(as_hwc(sample["flow"])[valid], flow[valid])
    assert "flow" not in cls(tmp_path, "testing")[0]


def test_kitti_multiview_skips_frames_9_to_12(tmp_path):
    fx.make_kitti_multiview(tmp_path, scenes=2)
    dataset = D.KITTIMultiview(tmp_path, splits=("training",))
    # per scene, pairs (n, n+1) for n in 0..19 minus those touching 9..12: n = 8..12 removed -> 15 pairs
    expected = [n for n in range(20) if not any(9 <= m <= 12 for m in (n, n + 1))]
    assert len(expected) == 15 and len(dataset) == 2 * 15
    assert [int(s.name[-2:]) for s in dataset.samples[:15]] == expected
    assert len(D.KITTIMultiview(tmp_path)) == 4 * 15
    assert dataset[0]["frame1"].shape == (3, 8, 8) and "flow" not in dataset[0]


def test_kitti_raw_pairs_by_drive_and_date(tmp_path):
    fx.make_kitti_raw(tmp_path)
    assert len(D.KITTIRaw(tmp_path)) == 2 + 1 + 1
    only = D.KITTIRaw(tmp_path, dates=["2011_09_28"])
    assert len(only) == 1 and only.samples[0].name == "2011_09_28_drive_0001_sync/image_02/0000000000"
    assert "flow" not in only[0]


def test_hd1k_pairs_within_sequences(tmp_path):
    truth = fx.make_hd1k(tmp_path)
    dataset = D.HD1K(tmp_path)
    assert [s.name for s in dataset.samples] == ["000000_0000", "000000_0001", "000001_0000"]
    sample = dataset[1]
    flow, valid = truth["000000_0001"]
    np.testing.assert_array_equal(sample["valid"].numpy(), valid)
    np.testing.assert_array_equal(as_hwc(sample["flow"]), flow)
    unsupervised = D.HD1K(tmp_path, require_flow=False)
    assert len(unsupervised) == 3 and "flow" not in unsupervised[0]
