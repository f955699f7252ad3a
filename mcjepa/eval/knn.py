"""Image-level probes on pooled frozen features: weighted k-NN (DINO style) and a linear classifier.

k-NN (DINO `eval_knn.py` rule): features L2-normalised; for a test feature q the k most cosine-similar
train features x_i (labels y_i) vote with weight exp(q.x_i / T); prediction = argmax_c sum_i w_i [y_i = c].
Defaults k = 20, T = 0.07 (DINO's).

Targets: a sample's "target" (int) if present; otherwise, for segmentation-style stills with a "label"
map, the MAJORITY class among pixels that are neither `background` (0) nor ignore (255) (ties -> the
smallest class id); an image with only background/ignore pixels gets target `background`. This turns
VOC-like data into a (noisy) image-classification task for quick content-feature checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

PooledFn = Callable[[torch.Tensor], torch.Tensor]


def sample_target(sample: dict, background: int = 0, ignore_index: int = 255) -> int:
    """Image-level class of a sample (see module docstring)."""
    if "target" in sample:
        return int(sample["target"])
    if "label" not in sample:
        raise ValueError(f"sample {sample.get('name', '?')!r} has neither 'target' nor 'label'")
    label = torch.as_tensor(sample["label"]).long().flatten()
    label = label[(label != background) & (label != ignore_index) & (label >= 0)]
    if label.numel() == 0:
        return background
    return int(torch.bincount(label).argmax())  # argmax returns the first (smallest id) maximum


@torch.no_grad()
def extract_pooled(
    pooled_fn: PooledFn, dataset, batch_size: int = 32, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N,D) float32, targets (N,) int64) over a dataset; equal-size images are batched."""
    from tqdm.auto import tqdm

    feats, targets, batch = [], [], []

    def flush():
        if batch:
            out = pooled_fn(torch.stack(batch))
            if out.dim() != 2 or out.shape[0] != len(batch):
                raise ValueError(f"pooled_fn must return (B,D); got {tuple(out.shape)} for batch {len(batch)}")
            feats.append(out.float().cpu())
            batch.clear()

    for i in tqdm(range(len(dataset)), desc="pooled features", disable=not progress):
        s = dataset[i]
        if batch and (s["image"].shape != batch[0].shape or len(batch) == batch_size):
            flush()
        batch.append(s["image"])
        targets.append(sample_target(s))
    flush()
    if not feats:
        raise ValueError("extract_pooled: empty dataset")
    return torch.cat(feats), torch.tensor(targets, dtype=torch.long)


def knn_predict(
    train_feats, train_targets, test_feats, num_classes: int, k: int = 20, temperature: float = 0.07, chunk: int = 256
) -> torch.Tensor:
    """Class scores (M, num_classes) of test features by temperature-weighted cosine k-NN votes."""
    train = F.normalize(train_feats.float(), dim=1)
    test = F.normalize(test_feats.float(), dim=1)
    k = min(k, train.shape[0])
    scores = []
    for start in range(0, test.shape[0], chunk):
        sim = test[start : start + chunk] @ train.T  # (m, N)
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = torch.exp(top_sim / temperature)
        votes = torch.zeros(sim.shape[0], num_classes)
        votes.scatter_add_(1, train_targets[top_idx], weights)
        scores.append(votes)
    return torch.cat(scores)


def _topk_accuracy(scores: torch.Tensor, targets: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    out = {}
    for k in ks:
        if k <= scores.shape[1]:
            top = scores.topk(k, dim=1).indices
            out[f"top{k}"] = (top == targets[:, None]).any(dim=1).float().mean().item()
    return out


def knn_accuracy(
    pooled_fn: PooledFn,
    train_dataset,
    val_dataset,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    progress: bool = True,
) -> dict:
    """dict(top1, top5 (if >= 5 classes), k, temperature) of the weighted k-NN classifier."""
    tr_f, tr_y = extract_pooled(pooled_fn, train_dataset, progress=progress)
    va_f, va_y = extract_pooled(pooled_fn, val_dataset, progress=progress)
    res = _topk_accuracy(knn_predict(tr_f, tr_y, va_f, num_classes, k, temperature), va_y)
    res.update(k=k, temperature=temperature)
    return res


@dataclass
class LinearClassifierConfig:
    """Logistic regression on standardised pooled features (our defaults): full-batch-ish AdamW."""

    epochs: int = 100
    lr: float = 1e-2
    weight_decay: float = 1e-4
    batch_size: int = 256
    seed: int = 0


def linear_classifier_accuracy(
    pooled_fn: PooledFn,
    train_dataset,
    val_dataset,
    num_classes: int,
    cfg: LinearClassifierConfig | None = None,
    progress: bool = True,
) -> dict:
    """Train a linear layer (cross-entropy, cosine lr) on frozen pooled features; dict(top1, top5, history)."""
    cfg = cfg or LinearClassifierConfig()
    tr_f, tr_y = extract_pooled(pooled_fn, train_dataset, progress=progress)
    va_f, va_y = extract_pooled(pooled_fn, val_dataset, progress=progress)
    mean = tr_f.mean(0)
    std = tr_f.std(0).clamp_min(1e-6) if tr_f.shape[0] > 1 else torch.ones(tr_f.shape[1])
    tr_f, va_f = (tr_f - mean) / std, (va_f - mean) / std
    gen = torch.Generator().manual_seed(cfg.seed)
    head = torch.nn.Linear(tr_f.shape[1], num_classes)
    with torch.no_grad():
        head.weight.normal_(0.0, 0.01, generator=gen)
        head.bias.zero_()
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(tr_f.shape[0] / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1)))
    )
    history = []
    for epoch in range(cfg.epochs):
        order = torch.randperm(tr_f.shape[0], generator=gen)
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            loss = F.cross_entropy(head(tr_f[idx]), tr_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        history.append({"epoch": epoch, "loss": total / len(order)})
    with torch.no_grad():
        res = _topk_accuracy(head(va_f), va_y)
    res["history"] = history
    return res
