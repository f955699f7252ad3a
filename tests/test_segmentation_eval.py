"""Confusion matrix / mIoU against slow loops and hand cases; the linear probe on a noisy one-hot toy."""

import math

import pytest
import torch

from mcjepa.eval.segmentation import (
    LinearProbeConfig,
    confusion_matrix,
    linear_probe_segmentation,
    miou_from_confusion,
    pixel_accuracy,
)


def slow_confusion(pred, label, k, ignore=255):
    cm = [[0] * k for _ in range(k)]
    for p, g in zip(pred.flatten().tolist(), label.flatten().tolist()):
        if g != ignore:
            cm[g][p] += 1
    return torch.tensor(cm)


def test_confusion_matches_slow_loop():
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 5, (3, 7, 9), generator=g)
    label[torch.rand(3, 7, 9, generator=g) < 0.2] = 255
    pred = torch.randint(0, 5, (3, 7, 9), generator=g)
    cm = confusion_matrix(pred, label, 5)
    assert torch.equal(cm, slow_confusion(pred, label, 5))
    assert cm.sum() == (label != 255).sum()


def test_miou_hand_computed_with_ignore_and_absent_class():
    # classes 0..3; class 3 absent from GT and prediction -> excluded; class 2 predicted only -> IoU 0
    label = torch.tensor([[0, 0, 1, 1], [0, 255, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 3, 1, 0]])  # the 3 sits on an ignore pixel: not counted
    cm = confusion_matrix(pred, label, 4)
    miou, iou = miou_from_confusion(cm)
    # class 0: TP 1 (0,0); GT count 3; pred count 2 (0,0),(1,3) -> union 3+2-1 = 4 -> 1/4
    # class 1: TP 3; GT 4; pred 3 ((0,1),(0,2),(0,3),(1,2) = 4) -> union 4+4-3 = 5 -> 3/5
    # class 2: TP 0; GT 0; pred 1 -> 0
    assert iou[0].item() == pytest.approx(0.25)
    assert iou[1].item() == pytest.approx(0.6)
    assert iou[2].item() == 0.0
    assert math.isnan(iou[3].item())
    assert miou == pytest.approx((0.25 + 0.6 + 0.0) / 3)
    assert pixel_accuracy(cm) == pytest.approx(4 / 7)


def test_miou_slow_reference_random():
    g = torch.Generator().manual_seed(1)
    label = torch.randint(0, 6, (50,), generator=g)
    pred = torch.where(torch.rand(50, generator=g) < 0.6, label, torch.randint(0, 6, (50,), generator=g))
    miou, iou = miou_from_confusion(confusion_matrix(pred, label, 6))
    ious = []
    for c in range(6):
        inter = sum(1 for p, t in zip(pred.tolist(), label.tolist()) if p == c and t == c)
        union = sum(1 for p, t in zip(pred.tolist(), label.tolist()) if p == c or t == c)
        if union:
            ious.append(inter / union)
            assert iou[c].item() == pytest.approx(inter / union)
    assert miou == pytest.approx(sum(ious) / len(ious))


def test_confusion_rejects_out_of_range():
    with pytest.raises(ValueError):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 7]), 3)
    with pytest.raises(ValueError):
        confusion_matrix(torch.tensor([0, 5]), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError):
        confusion_matrix(torch.tensor([0]), torch.tensor([0, 1]), 3)


class _ToySeg(torch.utils.data.Dataset):
    """Blocky random label maps (8x8 blocks, 5% ignore); the image's channel 0 encodes the clean label."""

    def __init__(self, n, k, seed, size=(32, 32)):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            coarse = torch.randint(0, k, (size[0] // 8, size[1] // 8), generator=g)
            clean = coarse.repeat_interleave(8, 0).repeat_interleave(8, 1)
            label = clean.clone()
            label[torch.rand(size, generator=g) < 0.05] = 255
            image = torch.rand(3, *size, generator=g)
            image[0] = clean.float() / (k - 1)
            self.items.append({"image": image, "label": label, "name": str(i)})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@pytest.mark.parametrize("optimizer,lr", [("adamw", 5e-2), ("sgd", 0.5)])
def test_linear_probe_learns_noisy_onehot_toy(optimizer, lr):
    k = 4
    train, val = _ToySeg(12, k, seed=0), _ToySeg(6, k, seed=1)
    g = torch.Generator().manual_seed(5)
    calls = []

    def feature_fn(images):
        # frozen "encoder": stride-4 noisy one-hot (8 channels) of the label of each 4x4 cell
        calls.append(images.shape[0])
        cells = torch.round(images[:, 0, 2::4, 2::4] * (k - 1)).long()
        onehot = torch.nn.functional.one_hot(cells, 8).permute(0, 3, 1, 2).float()
        return onehot * 2.0 + 0.5 * torch.randn(onehot.shape, generator=g)

    cfg = LinearProbeConfig(epochs=15, lr=lr, optimizer=optimizer, batch_size=4, progress=False)
    res = linear_probe_segmentation(feature_fn, train, val, num_classes=k, cfg=cfg)
    assert sum(calls) == 18  # features extracted once per image (cached), never during training
    assert res["miou"] > 0.85
    assert res["pixel_acc"] > 0.9
    assert res["history"][-1]["loss"] < res["history"][0]["loss"]
    assert len(res["per_class_iou"]) == k
    # cross-check the reported mIoU with a slow recomputation from the returned confusion matrix
    cm = res["confusion"]
    ious = [cm[c, c].item() / (cm[c].sum() + cm[:, c].sum() - cm[c, c]).item() for c in range(k)]
    assert res["miou"] == pytest.approx(sum(ious) / k)


def test_linear_probe_chance_on_uninformative_features():
    # the test above can fail: pure-noise features give a poor probe
    k = 4
    train, val = _ToySeg(8, k, seed=0), _ToySeg(4, k, seed=1)
    g = torch.Generator().manual_seed(6)
    cfg = LinearProbeConfig(epochs=5, lr=5e-2, batch_size=4, progress=False)
    res = linear_probe_segmentation(lambda x: torch.randn(x.shape[0], 8, 8, 8, generator=g), train, val, k, cfg)
    assert res["miou"] < 0.5
