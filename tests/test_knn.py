"""k-NN votes against a slow loop; targets from label maps; both probes on a separable toy."""

import math

import pytest
import torch

from mcjepa.eval.knn import (
    LinearClassifierConfig,
    knn_accuracy,
    knn_predict,
    linear_classifier_accuracy,
    sample_target,
)


def slow_knn_scores(train, ytrain, test, num_classes, k, temp):
    out = torch.zeros(test.shape[0], num_classes, dtype=torch.float64)
    for i in range(test.shape[0]):
        q = test[i] / test[i].norm()
        sims = [(float(q @ (train[j] / train[j].norm())), int(ytrain[j])) for j in range(train.shape[0])]
        sims.sort(key=lambda s: -s[0])
        for s, y in sims[:k]:
            out[i, y] += math.exp(s / temp)
    return out


def test_knn_scores_match_slow_loop():
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(30, 6, generator=g), torch.randn(7, 6, generator=g)
    y = torch.randint(0, 4, (30,), generator=g)
    got = knn_predict(train, y, test, 4, k=5, temperature=0.5, chunk=3)
    assert torch.allclose(got.double(), slow_knn_scores(train, y, test, 4, 5, 0.5), rtol=1e-5)


def test_sample_target_rules():
    assert sample_target({"target": 3}) == 3
    label = torch.tensor([[0, 0, 0, 2], [2, 5, 5, 255], [255, 255, 255, 255]])
    assert sample_target({"label": label}) == 2  # tie 2 vs 5 (2 px each) -> smallest id; 0 and 255 ignored
    label[0, 0] = 5
    assert sample_target({"label": label}) == 5
    assert sample_target({"label": torch.tensor([[0, 255]])}) == 0  # background only
    with pytest.raises(ValueError):
        sample_target({"image": torch.zeros(3, 2, 2)})


class _Toy(torch.utils.data.Dataset):
    """Images whose pooled 'feature' is a noisy class prototype; the class is given by a label map."""

    def __init__(self, n, seed, protos):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            c = i % protos.shape[0]
            label = torch.zeros(6, 6, dtype=torch.long)
            label[1:5, 1:5] = c + 1  # class c + 1 in the foreground, background 0
            image = torch.zeros(3, 6, 6)
            image[0, 0, : protos.shape[1]] = protos[c] + 0.3 * torch.randn(protos.shape[1], generator=g)
            self.items.append({"image": image, "label": label, "name": str(i)})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_knn_and_linear_probe_on_separable_toy():
    g = torch.Generator().manual_seed(1)
    protos = torch.randn(5, 6, generator=g) * 2
    train, val = _Toy(40, 2, protos), _Toy(20, 3, protos)

    def pooled_fn(images):
        return images[:, 0, 0, :6]

    knn = knn_accuracy(pooled_fn, train, val, num_classes=6, k=5, progress=False)
    assert knn["top1"] > 0.9 and knn["top5"] == 1.0
    lin = linear_classifier_accuracy(
        pooled_fn, train, val, 6, LinearClassifierConfig(epochs=50, lr=5e-2), progress=False
    )
    assert lin["top1"] > 0.9
    assert lin["history"][-1]["loss"] < lin["history"][0]["loss"]
    # uninformative features -> near chance: the probes can fail
    noise = torch.Generator().manual_seed(9)
    bad = knn_accuracy(lambda x: torch.randn(x.shape[0], 6, generator=noise), train, val, 6, k=5, progress=False)
    assert bad["top1"] < 0.6
