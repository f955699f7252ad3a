"""Linear-probe semantic segmentation on a frozen encoder, and mIoU.

Protocol (paper, "Evaluation protocols"): features of the frozen encoder, a linear classifier (a 1x1
convolution) trained with cross-entropy (ignore_index 255) on logits bilinearly upsampled to the label
size, mIoU on the validation set.

Our implementation choices (each a `LinearProbeConfig` field; the paper's optimiser/schedule are not known):
- features are extracted once per dataset with `torch.no_grad()` and cached IN MEMORY (fine for the small
  sets of this kit; a VOC-scale run at stride 32 with 768 channels needs ~ N * 768 * h * w * 4 bytes);
- channels are standardised with the train set's per-channel mean/std (a fixed affine map, so the probe
  stays linear) unless `standardize=False`;
- AdamW, lr 1e-2, weight decay 1e-4, cosine decay to 0, batch 8 images, 20 epochs (cheap: features cached).

mIoU: IoU_c = TP_c / (TP_c + FP_c + FN_c) from the confusion matrix summed over the whole val set (not per
image). A class with TP + FP + FN = 0 (absent from both prediction and GT) has an undefined IoU: it is
EXCLUDED from the mean (NaN in `per_class_iou`); a class predicted but absent from GT counts with IoU 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange

FeatureFn = Callable[[torch.Tensor], torch.Tensor]
IGNORE_INDEX = 255


def confusion_matrix(
    pred: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """cm[g, p] = number of pixels with label g predicted as p (int64, (K, K)), ignore pixels skipped.

    Args:
        pred, label: integer tensors of the same shape (any, e.g. (B,H,W)).
    Raises:
        ValueError if shapes differ or a non-ignored label / a prediction lies outside [0, K).
    """
    pred, label = torch.as_tensor(pred), torch.as_tensor(label)
    if pred.shape != label.shape:
        raise ValueError(f"confusion_matrix: pred {tuple(pred.shape)} and label {tuple(label.shape)} differ")
    keep = label != ignore_index
    p, g = pred[keep].long(), label[keep].long()
    if g.numel() and (g.min() < 0 or g.max() >= num_classes):
        raise ValueError(f"confusion_matrix: labels outside [0, {num_classes}) other than ignore {ignore_index}")
    if p.numel() and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"confusion_matrix: predictions outside [0, {num_classes})")
    counts = torch.bincount(g * num_classes + p, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes).cpu()


def miou_from_confusion(cm: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(mIoU, per-class IoU (K,) float64) from a (K, K) confusion matrix (rows = GT, cols = prediction).

    IoU_c = cm[c,c] / (sum_p cm[c,p] + sum_g cm[g,c] - cm[c,c]); classes with zero union are NaN and
    excluded from the mean; mIoU is NaN if every class is absent.
    """
    cm = torch.as_tensor(cm).double()
    tp = torch.diagonal(cm)
    union = cm.sum(dim=1) + cm.sum(dim=0) - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, math.nan))
    present = ~torch.isnan(iou)
    miou = iou[present].mean().item() if present.any() else math.nan
    return miou, iou


def pixel_accuracy(cm: torch.Tensor) -> float:
    """Fraction of non-ignored pixels predicted correctly: trace / sum."""
    cm = torch.as_tensor(cm).double()
    total = cm.sum().item()
    return torch.diagonal(cm).sum().item() / total if total > 0 else math.nan


@dataclass
class LinearProbeConfig:
    """Linear probe training; all values are our defaults (the paper's are not known to us)."""

    epochs: int = 20
    lr: float = 1e-2
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # "adamw" or "sgd" (momentum 0.9)
    batch_size: int = 8  # images per step
    cosine_schedule: bool = True  # lr cosine-decayed to 0 over all steps
    standardize: bool = True  # per-channel train mean/std before the 1x1 conv
    class_weights: str = "none"  # "none" | "balanced": cross-entropy weights 1 / (K * frequency of the class
    # among the train pixels), so that a probe cannot score well by predicting the majority class everywhere
    extract_batch_size: int = 8  # images per feature_fn call
    ignore_index: int = IGNORE_INDEX
    seed: int = 0
    progress: bool = True
    device: str = "cpu"


@torch.no_grad()
def extract_features(feature_fn: FeatureFn, dataset, batch_size: int = 8, progress: bool = True, device="cpu"):
    """Run the frozen `feature_fn` once over a still-image dataset.

    Returns (features: list of (C,h,w) float32 CPU tensors, labels: list of (H,W) int64 tensors).
    Images of equal size are batched; a sample without "label" raises ValueError.
    """
    from tqdm.auto import tqdm

    feats, labels = [], []
    indices = list(range(len(dataset)))
    bar = tqdm(total=len(indices), desc="features", disable=not progress)
    i = 0
    while i < len(indices):
        batch = []
        while i < len(indices) and len(batch) < batch_size:
            s = dataset[indices[i]]
            if "label" not in s:
                raise ValueError(f"segmentation dataset sample {indices[i]} ({s.get('name', '?')}) has no 'label'")
            if batch and s["image"].shape != batch[0]["image"].shape:
                break
            batch.append(s)
            i += 1
        images = torch.stack([s["image"] for s in batch]).to(device)
        out = feature_fn(images)
        if out.dim() != 4 or out.shape[0] != len(batch):
            raise ValueError(f"feature_fn must return (B,C,h,w); got {tuple(out.shape)} for batch {len(batch)}")
        feats.extend(out.float().cpu().unbind(0))
        labels.extend(torch.as_tensor(s["label"]).long() for s in batch)
        bar.update(len(batch))
    bar.close()
    return feats, labels


def check_probe(cfg: LinearProbeConfig, num_classes: int) -> None:
    """Refuse a probe setting outside its range, naming it: num_classes >= 1, epochs >= 0 (0: the initial
    head, evaluated untrained), batch_size and extract_batch_size >= 1 (whole numbers), finite lr and
    weight_decay >= 0. Raises ValueError."""
    for name, value, low in (("num_classes", num_classes, 1), ("epochs", cfg.epochs, 0),
                             ("batch_size", cfg.batch_size, 1), ("extract_batch_size", cfg.extract_batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"linear probe: {name} must be a whole number >= {low}, got {value!r}")
    for name, value in (("lr", cfg.lr), ("weight_decay", cfg.weight_decay)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
            raise ValueError(f"linear probe: {name} must be a finite number >= 0, got {value!r}")


def class_weights(labels: list[torch.Tensor], num_classes: int, mode: str = "none",
                  ignore_index: int = IGNORE_INDEX) -> torch.Tensor | None:
    """Cross-entropy weights (K,) from the train labels: None for "none"; for "balanced" w_c = N / (K' n_c)
    over the K' classes present (n_c pixels of class c, N = sum n_c; absent classes weigh 0), so that every
    present class contributes equally. Raises ValueError for another mode."""
    if mode == "none":
        return None
    if mode != "balanced":
        raise ValueError(f"LinearProbeConfig.class_weights must be 'none' or 'balanced', got {mode!r}")
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for label in labels:
        kept = label[label != ignore_index].long()
        counts += torch.bincount(kept, minlength=num_classes)[:num_classes].double()
    present = counts > 0
    weights = torch.zeros(num_classes, dtype=torch.float64)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.float()


def _channel_stats(feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean/std (C,) over every position of every cached feature map."""
    flat = torch.cat([rearrange(f, "c h w -> (h w) c") for f in feats]).double()
    return flat.mean(0).float(), flat.std(0).clamp_min(1e-6).float()


def _batches(order: list[int], batch_size: int, feats) -> list[list[int]]:
    """Minibatches of indices; a batch is split where feature shapes change (so each can be stacked)."""
    out = []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        group = [chunk[0]]
        for j in chunk[1:]:
            if feats[j].shape == feats[group[0]].shape:
                group.append(j)
            else:
                out.append(group)
                group = [j]
        out.append(group)
    return out


def _logits(head, feats, labels, idx, mean, std, device):
    """Upsampled logits list per label size: returns [(logits (b,K,H,W), labels (b,H,W))]."""
    x = torch.stack([feats[j] for j in idx]).to(device)
    x = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    y = (
        torch.stack([labels[j] for j in idx]).to(device)
        if all(labels[j].shape == labels[idx[0]].shape for j in idx)
        else None
    )
    logits = head(x)
    if y is not None:
        return [(F.interpolate(logits, size=y.shape[-2:], mode="bilinear", align_corners=False), y)]
    return [
        (
            F.interpolate(logits[k : k + 1], size=labels[j].shape[-2:], mode="bilinear", align_corners=False),
            labels[j][None].to(device),
        )
        for k, j in enumerate(idx)
    ]


def linear_probe_segmentation(
    feature_fn: FeatureFn, train_dataset, val_dataset, num_classes: int, cfg: LinearProbeConfig | None = None
) -> dict:
    """Train a linear 1x1-conv head on frozen features of `train_dataset`; evaluate mIoU on `val_dataset`.

    Args:
        feature_fn: images (B,3,H,W) -> features (B,C,h,w); called under no_grad, never trained.
        train_dataset, val_dataset: samples {"image" (3,H,W) (or any (C,H,W) `feature_fn` reads, e.g. the one-hot
            labels of `references.OneHotLabels`), "label" (H,W) int64 (255 = ignore)}.
        num_classes: K (labels in [0, K) or ignore).
    Returns:
        dict(miou, per_class_iou (list, NaN = absent), pixel_acc, confusion (K,K) tensor,
             history: list of {"epoch", "loss", "lr"}, config: asdict(cfg), head: the trained Conv2d,
             feature_mean, feature_std: (C,) the standardisation the head expects, i.e. logits =
             head((features - mean) / std) (zeros/ones when not cfg.standardize)).
    """
    from tqdm.auto import tqdm

    cfg = cfg or LinearProbeConfig()
    check_probe(cfg, num_classes)
    device = torch.device(cfg.device)
    train_feats, train_labels = extract_features(
        feature_fn, train_dataset, cfg.extract_batch_size, cfg.progress, device
    )
    val_feats, val_labels = extract_features(feature_fn, val_dataset, cfg.extract_batch_size, cfg.progress, device)
    if not train_feats or not val_feats:
        raise ValueError("linear_probe_segmentation: empty train or val dataset")
    channels = train_feats[0].shape[0]
    if cfg.standardize:
        mean, std = _channel_stats(train_feats)
    else:
        mean, std = torch.zeros(channels), torch.ones(channels)
    mean, std = mean.to(device), std.to(device)

    gen = torch.Generator().manual_seed(cfg.seed)
    head = torch.nn.Conv2d(channels, num_classes, kernel_size=1).to(device)
    with torch.no_grad():
        head.weight.normal_(0.0, 0.01, generator=gen)
        head.bias.zero_()
    if cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "sgd":
        opt = torch.optim.SGD(head.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"LinearProbeConfig.optimizer must be 'adamw' or 'sgd', got {cfg.optimizer!r}")
    steps_per_epoch = len(_batches(list(range(len(train_feats))), cfg.batch_size, train_feats))
    total_steps = max(1, cfg.epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        (lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)))
        if cfg.cosine_schedule
        else (lambda s: 1.0),
    )

    weight = class_weights(train_labels, num_classes, cfg.class_weights, cfg.ignore_index)
    weight = weight.to(device) if weight is not None else None
    history = []
    for epoch in tqdm(range(cfg.epochs), desc="linear probe", disable=not cfg.progress):
        order = torch.randperm(len(train_feats), generator=gen).tolist()
        loss_sum, n_steps = 0.0, 0
        for idx in _batches(order, cfg.batch_size, train_feats):
            pairs = _logits(head, train_feats, train_labels, idx, mean, std, device)
            n_pix = sum(int((y != cfg.ignore_index).sum()) for _, y in pairs)
            if n_pix == 0:
                continue
            loss = (
                sum(F.cross_entropy(lg, y, weight=weight, ignore_index=cfg.ignore_index, reduction="sum")
                    for lg, y in pairs) / n_pix
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item()
            n_steps += 1
        history.append({"epoch": epoch, "loss": loss_sum / max(n_steps, 1), "lr": opt.param_groups[0]["lr"]})

    cm = torch.zeros(num_classes, num_classes, dtype=torch.long)
    with torch.no_grad():
        for idx in _batches(list(range(len(val_feats))), cfg.batch_size, val_feats):
            for logits, y in _logits(head, val_feats, val_labels, idx, mean, std, device):
                cm += confusion_matrix(logits.argmax(1), y, num_classes, cfg.ignore_index)
    miou, per_class = miou_from_confusion(cm)
    return {
        "miou": miou,
        "per_class_iou": per_class.tolist(),
        "pixel_acc": pixel_accuracy(cm),
        "confusion": cm,
        "history": history,
        "config": asdict(cfg),
        "head": head.cpu(),
        "feature_mean": mean.cpu(),
        "feature_std": std.cpu(),
    }
