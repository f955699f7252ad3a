"""Content dataset loaders (ImageNet folder, VOC, Cityscapes, ADE20k, DAVIS 2017) on fixture trees."""

import numpy as np
import pytest
import torch

import fixtures_data as fx
from mcjepa.data import content_datasets as C


def test_imagefolder_targets_follow_sorted_wnids(tmp_path):
    fx.make_imagenet(tmp_path)
    train, val = C.ImageFolder(tmp_path, "train"), C.ImageFolder(tmp_path, "val")
    assert len(train) == 4 and len(val) == 2 and train.num_classes == 2
    sample = val[1]
    assert sample["target"] == 1 and sample["name"].startswith("n01443537/")
    assert sample["image"].shape == (3, 16, 16) and sample["image"].dtype == torch.float32


def test_imagefolder_flat_val_is_explained(tmp_path):
    fx.write_image(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG", fx.random_image(fx.rng_for(), 8, 8))
    with pytest.raises(FileNotFoundError, match="flat image folder"):
        C.ImageFolder(tmp_path, "val")


def test_voc_train_val_and_aug(tmp_path):
    truth = fx.make_voc(tmp_path)
    train = C.PascalVOC(tmp_path, "train")
    assert len(train) == 2 and train.num_classes == 21 and train.ignore_index == 255
    assert train.class_names[15] == "person"
    sample = train[1]
    assert sample["name"] == "2007_000039" and sample["label"].dtype == torch.int64
    np.testing.assert_array_equal(sample["label"].numpy(), truth["2007_000039"])
    assert (sample["label"][:2] == 255).all()
    aug = C.PascalVOC(tmp_path / "VOC2012", "train_aug")  # root may also be VOC2012 itself
    np.testing.assert_array_equal(aug[0]["label"].numpy(), truth["2008_000001"])


def test_voc_missing_aug_and_missing_label(tmp_path):
    fx.make_voc(tmp_path, aug=False)
    with pytest.raises(FileNotFoundError, match="SegmentationClassAug"):
        C.PascalVOC(tmp_path, "train_aug")
    val = C.PascalVOC(tmp_path, "val")
    label = tmp_path / "VOC2012" / "SegmentationClass" / "2007_000033.png"
    label.write_bytes(b"broken")
    with pytest.raises(ValueError, match=str(label)):
        val[0]


def test_cityscapes_train_ids_and_label_id_mapping(tmp_path):
    truth = fx.make_cityscapes(tmp_path, train_ids=False)
    dataset = C.Cityscapes(tmp_path, "train")
    assert len(dataset) == 2 and dataset.num_classes == 19
    label_ids = truth["aachen/aachen_000000_000019"]
    got = dataset[0]["label"].numpy()
    # independent, hand-written excerpt of the official table
    expected_of = {0: 255, 1: 255, 6: 255, 7: 0, 8: 1, 9: 255, 11: 2, 17: 5, 23: 10, 24: 11, 26: 13, 29: 255, 33: 18}
    for label_id, train_id in expected_of.items():
        assert (got[label_ids == label_id] == train_id).all()
    assert set(np.unique(got)) <= set(range(19)) | {255}
    assert len(np.unique(got)) == 20  # 19 classes + ignore, all present in a 24x32 random map of 34 ids


def test_cityscapes_prefers_label_train_ids(tmp_path):
    truth = fx.make_cityscapes(tmp_path, train_ids=True)
    got = C.Cityscapes(tmp_path, "val")[0]["label"].numpy()
    label_ids = truth["lindau/lindau_000000_000019"]
    # the fixture's trainIds files use a partial table (only 7, 8, 26 mapped): proves those files were read
    assert (got[label_ids == 11] == 255).all() and (got[label_ids == 26] == 13).all()


def test_ade20k_reduce_zero_label(tmp_path):
    truth = fx.make_ade20k(tmp_path)
    dataset = C.ADE20k(tmp_path, "training")
    assert len(dataset) == 2 and dataset.num_classes == 150 and len(dataset.class_names) == 150
    raw = truth["ADE_train_00000002"]
    got = dataset[1]["label"].numpy()
    assert (got[raw == 0] == 255).all() and (got[raw == 1] == 0).all() and (got[raw == 150] == 149).all()
    np.testing.assert_array_equal(got[raw > 0], raw[raw > 0] - 1)
    assert len(C.ADE20k(tmp_path / "ADEChallengeData2016", "validation")) == 1


def test_davis_sequences(tmp_path):
    truth = fx.make_davis(tmp_path)
    dataset = C.DAVIS2017(tmp_path, "val")
    assert len(dataset) == 2 and len(C.DAVIS2017(tmp_path, "train")) == 1
    sample = dataset[0]
    assert sample["name"] == "bike-packing"
    assert sample["frames"].shape == (3, 3, fx.H, fx.W) and sample["masks"].shape == (3, fx.H, fx.W)
    assert sample["masks"].dtype == torch.int64
    np.testing.assert_array_equal(sample["masks"].numpy(), np.stack(truth["bike-packing"]))
    partial = dataset[1]  # last annotation missing -> void
    np.testing.assert_array_equal(partial["masks"][:2].numpy(), np.stack(truth["dogs-jump"][:2]))
    assert (partial["masks"][2] == 255).all()


def test_davis_missing_first_annotation_and_sequence(tmp_path):
    fx.make_davis(tmp_path)
    first = tmp_path / "Annotations" / "480p" / "dogs-jump" / "00000.png"
    first.unlink()
    with pytest.raises(FileNotFoundError, match=str(first)):
        C.DAVIS2017(tmp_path)[1]
    (tmp_path / "ImageSets" / "2017" / "val.txt").write_text("bike-packing\nnot-there\n")
    with pytest.raises(FileNotFoundError, match="not-there"):
        C.DAVIS2017(tmp_path)
