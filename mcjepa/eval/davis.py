"""Video object segmentation by label propagation with frozen features (DINO-style) + DAVIS 2017 J&F.

Propagation (DINO `eval_video_segmentation.py` defaults: n_last_frames 7, radius 12, top-k 5, T = 0.1).
For target frame t with L2-normalised features q (C, h*w) and a context of n frames (the first frame with
its ground-truth one-hot labels, plus a queue of the last `n_last_frames` frames with their SOFT predicted
labels), features k (n*h*w, C), labels S (K, n*h*w):
    A[s, j]   = q_j . k_s  if |row(s) - row(j)| <= radius and |col(s) - col(j)| <= radius  else -inf
    keep[s,j] = A[s, j] >= (top-k-th value of A[:, j])          (ties with the k-th value kept, as DINO)
    W[s, j]   = keep * exp(A[s, j] / T) / sum_s keep * exp(A[s, j] / T)
    seg_t     = S @ W                                          (K, h*w), pushed to the queue as is.
Output: seg_t bilinearly upsampled to (H, W), optionally each channel min-max normalised (DINO's
`norm_mask`, on by default), argmax, mapped back to the object ids.
Our choices (documented, DINO differs slightly): the first-frame one-hot is brought to the feature grid by
area averaging (DINO: nearest resize, so ours is soft at object borders); void (255) in the first mask is
background; the output goes straight to (H, W) (DINO upsamples by the patch size, then resizes nearest).
The affinity is computed in chunks of target positions (memory n*h*w*chunk).

Metrics (davis2017-evaluation): J = |P n G| / |P u G| (void pixels excluded when given; union 0 -> 1);
F = 2PR/(P+R) of boundary maps (`seg2bmap`) matched within a disk of radius ceil(bound_th * ||(H, W)||)
(bound_th >= 1 is taken as pixels); both boundaries empty -> P = R = 1; only one empty -> (P, R) = (1, 0)
or (0, 1); P + R = 0 -> F = 0. Semi-supervised protocol: the first and the last frames are excluded, GT
void (255) is background, every object id of the first GT frame is scored separately; per object
M = mean over frames, recall = fraction of frames > 0.5, decay = mean of the first quarter of frames minus
mean of the last quarter; J_mean, F_mean = mean over all objects of all sequences, JF_mean = their mean.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from scipy import ndimage

FeatureFn = Callable[[torch.Tensor], torch.Tensor]
VOID = 255


# ------------------------------------------------------------------------------------------- propagation
def neighbourhood_mask(height: int, width: int, radius: int, targets: torch.Tensor | None = None) -> torch.Tensor:
    """(h*w, m) bool: source position s may feed target position j (Chebyshev distance <= radius).

    `targets` are flat target indices (m,) (default all h*w). radius < 0 disables the restriction.
    """
    rows = torch.arange(height).repeat_interleave(width)
    cols = torch.arange(width).repeat(height)
    targets = torch.arange(height * width) if targets is None else targets
    if radius < 0:
        return torch.ones(height * width, targets.numel(), dtype=torch.bool)
    dr = (rows[:, None] - rows[targets][None, :]).abs()
    dc = (cols[:, None] - cols[targets][None, :]).abs()
    return (dr <= radius) & (dc <= radius)


def propagate_step(
    context_feats: torch.Tensor,
    context_segs: torch.Tensor,
    target_feat: torch.Tensor,
    radius: int = 12,
    topk: int = 5,
    temperature: float = 0.1,
    chunk_elements: int = 1 << 24,
) -> torch.Tensor:
    """One propagation step (module docstring equations).

    Ranges (`check_propagation`): radius >= 0 (0: each target cell sees the same cell of each context frame),
    topk >= 1 (1: the best source only, ties kept), temperature > 0.

    Args:
        context_feats: (n, C, h, w) L2-normalised features of the context frames.
        context_segs: (n, K, h, w) their (soft) labels.
        target_feat: (C, h, w) L2-normalised features of the target frame.
    Returns:
        (K, h, w) soft labels of the target (each position sums to the context labels' sum, 1 for one-hots).
    """
    check_propagation(radius=radius, topk=topk, temperature=temperature)
    n, c, h, w = context_feats.shape
    keys = rearrange(context_feats, "n c h w -> (n h w) c")
    labels = rearrange(context_segs, "n k h w -> k (n h w)")
    query = rearrange(target_feat, "c h w -> c (h w)")
    out = torch.empty(labels.shape[0], h * w, dtype=labels.dtype)
    chunk = max(1, chunk_elements // max(1, n * h * w))
    for start in range(0, h * w, chunk):
        idx = torch.arange(start, min(start + chunk, h * w))
        aff = keys @ query[:, idx]  # (n*h*w, m)
        allowed = neighbourhood_mask(h, w, radius, idx).repeat(n, 1)
        aff = aff.masked_fill(~allowed, -math.inf)
        k = min(topk, aff.shape[0])
        kth = torch.topk(aff, k, dim=0).values[-1:]  # (1, m)
        keep = allowed & (aff >= kth)
        top = aff.max(dim=0, keepdim=True).values
        weights = torch.where(keep, torch.exp((aff - top) / temperature), torch.zeros_like(aff))
        weights = weights / weights.sum(dim=0, keepdim=True)
        out[:, idx] = labels @ weights
    return rearrange(out, "k (h w) -> k h w", h=h, w=w)


def check_propagation(n_last_frames: int = 0, radius: int = 0, topk: int = 1, temperature: float = 1.0,
                      feature_batch_size: int = 1) -> None:
    """Refuse a label-propagation parameter outside its range, naming it: n_last_frames >= 0 (0: the first
    frame alone is the context), radius >= 0, topk >= 1, feature_batch_size >= 1 (whole numbers), and a
    finite temperature > 0. Raises ValueError."""
    for name, value, low in (("n_last_frames", n_last_frames, 0), ("radius", radius, 0), ("topk", topk, 1),
                             ("feature_batch_size", feature_batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"label propagation: {name} must be a whole number >= {low}, got {value!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"label propagation: temperature must be a finite number > 0, got {temperature!r}")


@torch.no_grad()
def _frame_features(feature_fn: FeatureFn, frames: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(T,3,H,W) -> (T,C,h,w) L2-normalised over C."""
    feats = torch.cat(
        [feature_fn(frames[i : i + batch_size]).float().cpu() for i in range(0, frames.shape[0], batch_size)]
    )
    if feats.dim() != 4 or feats.shape[0] != frames.shape[0]:
        raise ValueError(f"feature_fn must return (B,C,h,w); got {tuple(feats.shape)} for {frames.shape[0]} frames")
    return F.normalize(feats, dim=1)


def _norm_channels(seg: torch.Tensor) -> torch.Tensor:
    """DINO `norm_mask`: each channel with max > 0 is rescaled to [0, 1] by its min and max. (K,H,W)."""
    flat = rearrange(seg, "k h w -> k (h w)")
    lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
    scaled = (flat - lo[:, None]) / (hi - lo).clamp_min(1e-12)[:, None]
    flat = torch.where((hi > 0)[:, None], scaled, flat)
    return rearrange(flat, "k (h w) -> k h w", h=seg.shape[1])


@torch.no_grad()
def label_propagation(
    feature_fn: FeatureFn,
    frames: torch.Tensor,
    first_mask: torch.Tensor,
    n_last_frames: int = 7,
    radius: int = 12,
    topk: int = 5,
    temperature: float = 0.1,
    normalize_channels: bool = True,
    feature_batch_size: int = 8,
) -> torch.Tensor:
    """Propagate the first frame's instance mask through the video.

    Args:
        feature_fn: frames (B,3,H,W) -> features (B,C,h,w) (frozen).
        frames: (T,3,H,W); first_mask: (H,W) int64 ids (0 = background, 255 = void -> background).
        n_last_frames, radius, topk, temperature, feature_batch_size: ranges in `check_propagation`.
    Returns:
        (T,H,W) int64 masks; frame 0 is `first_mask` with void set to 0.
    Raises ValueError for a parameter outside its range or a first_mask of another size.
    """
    check_propagation(n_last_frames, radius, topk, temperature, feature_batch_size)
    t_len, _, height, width = frames.shape
    first = torch.as_tensor(first_mask).long().clone()
    if first.shape != (height, width):
        raise ValueError(f"first_mask {tuple(first.shape)} does not match frames (H,W) = {(height, width)}")
    first[first == VOID] = 0
    ids = torch.unique(torch.cat([first.flatten(), torch.zeros(1, dtype=torch.long)]))  # sorted, includes 0
    feats = _frame_features(feature_fn, frames, feature_batch_size)
    h, w = feats.shape[-2:]
    onehot = (first[None] == ids[:, None, None]).float()  # (K,H,W)
    seg0 = F.adaptive_avg_pool2d(onehot[None], (h, w))[0]
    masks = torch.zeros(t_len, height, width, dtype=torch.long)
    masks[0] = first
    queue: list[tuple[torch.Tensor, torch.Tensor]] = []
    for t in range(1, t_len):
        ctx_f = torch.stack([feats[0]] + [f for f, _ in queue])
        ctx_s = torch.stack([seg0] + [s for _, s in queue])
        seg = propagate_step(ctx_f, ctx_s, feats[t], radius, topk, temperature)
        if n_last_frames > 0:  # 0: the first frame alone is the context
            if len(queue) == n_last_frames:
                queue.pop(0)
            queue.append((feats[t], seg))
        up = F.interpolate(seg[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        if normalize_channels:
            up = _norm_channels(up)
        masks[t] = ids[up.argmax(dim=0)]
    return masks


# ----------------------------------------------------------------------------------------------- metrics
def _np_bool(x) -> np.ndarray:
    return (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(bool)


def db_eval_iou(pred_bin, gt_bin, void=None):
    """J: |P n G| / |P u G| over non-void pixels, 1 where the union is empty.

    Args: (..., H, W) binary arrays/tensors (void optional, True = ignored). Returns float or (...,) array.
    """
    p, g = _np_bool(pred_bin), _np_bool(gt_bin)
    if p.shape != g.shape:
        raise ValueError(f"db_eval_iou: pred {p.shape} and gt {g.shape} differ")
    if void is not None:
        keep = ~np.broadcast_to(_np_bool(void), p.shape)
        p, g = p & keep, g & keep
    inter = (p & g).sum(axis=(-2, -1))
    union = (p | g).sum(axis=(-2, -1))
    j = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return float(j) if j.ndim == 0 else j


def seg2bmap(seg) -> np.ndarray:
    """Boundary map (H,W) bool of a binary mask: a pixel is on the boundary if it differs from its right,
    bottom or bottom-right neighbour; the last row compares only to the right, the last column only to
    the bottom, the bottom-right pixel is never a boundary (the image border itself is not an edge).
    """
    s = _np_bool(seg)
    right = np.zeros_like(s)
    right[:, :-1] = s[:, 1:]
    down = np.zeros_like(s)
    down[:-1, :] = s[1:, :]
    diag = np.zeros_like(s)
    diag[:-1, :-1] = s[1:, 1:]
    b = (s ^ right) | (s ^ down) | (s ^ diag)
    b[-1, :] = s[-1, :] ^ right[-1, :]
    b[:, -1] = s[:, -1] ^ down[:, -1]
    b[-1, -1] = False
    return b


def disk(radius: int) -> np.ndarray:
    """(2r+1, 2r+1) bool disk: offsets (dy, dx) with dy^2 + dx^2 <= r^2."""
    r = int(radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return yy * yy + xx * xx <= r * r


def db_eval_boundary(pred_bin, gt_bin, bound_th: float = 0.008, void=None) -> float:
    """F: boundary F-measure of one (H,W) binary prediction vs GT (module docstring). Void -> background.
    bound_th: a fraction of the image diagonal in [0, 1), or pixels when >= 1 (0: boundaries must coincide);
    ValueError when negative or not finite."""
    if isinstance(bound_th, bool) or not isinstance(bound_th, (int, float)) or not (
            math.isfinite(bound_th) and bound_th >= 0):
        raise ValueError(f"db_eval_boundary: bound_th must be a finite number >= 0, got {bound_th!r}")
    p, g = _np_bool(pred_bin), _np_bool(gt_bin)
    if p.shape != g.shape or p.ndim != 2:
        raise ValueError(f"db_eval_boundary: want two (H,W) masks, got {p.shape} and {g.shape}")
    if void is not None:
        v = _np_bool(void)
        p, g = p & ~v, g & ~v
    radius = bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*p.shape))
    bp, bg = seg2bmap(p), seg2bmap(g)
    se = disk(radius)
    bp_dil = ndimage.binary_dilation(bp, structure=se)
    bg_dil = ndimage.binary_dilation(bg, structure=se)
    n_p, n_g = int(bp.sum()), int(bg.sum())
    if n_p == 0 and n_g == 0:
        precision = recall = 1.0
    elif n_p == 0:
        precision, recall = 1.0, 0.0
    elif n_g == 0:
        precision, recall = 0.0, 1.0
    else:
        precision = (bp & bg_dil).sum() / n_p
        recall = (bg & bp_dil).sum() / n_g
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def _statistics(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, recall = fraction > 0.5, decay = mean(first quarter) - mean(last quarter)) of a per-frame series.

    Quarters: the series of n frames is cut at round(linspace(0, n-1, 5)) (bin edges included on both
    sides), as in davis2017-evaluation.
    """
    v = np.asarray(values, dtype=np.float64)
    edges = np.round(np.linspace(0, len(v) - 1, 5) + 1e-10).astype(int)
    first, last = v[edges[0] : edges[1] + 1], v[edges[3] : edges[4] + 1]
    return float(np.nanmean(v)), float(np.nanmean(v > 0.5)), float(np.nanmean(first) - np.nanmean(last))


def evaluate_davis_sequence(pred_masks, gt_masks, bound_th: float = 0.008) -> dict:
    """Per-object J and F of one sequence (semi-supervised protocol, first and last frames excluded).

    Args:
        pred_masks, gt_masks: (T,H,W) integer id maps (GT 255 = void -> background), T >= 3.
    Returns:
        dict(object_ids, J_mean, J_recall, J_decay, F_mean, F_recall, F_decay: lists over objects,
             J_frames, F_frames: (n_objects, T-2) arrays).
    """
    pred = torch.as_tensor(pred_masks).long().cpu().numpy()
    gt = torch.as_tensor(gt_masks).long().cpu().numpy().copy()
    if pred.shape != gt.shape or gt.ndim != 3:
        raise ValueError(f"evaluate_davis_sequence: pred {pred.shape} and gt {gt.shape} must both be (T,H,W)")
    if gt.shape[0] < 3:
        raise ValueError(f"evaluate_davis_sequence: need >= 3 frames (first and last are excluded), got {gt.shape[0]}")
    gt[gt == VOID] = 0
    object_ids = [int(i) for i in np.unique(gt[0]) if i != 0]
    res = {"object_ids": object_ids, "J_frames": [], "F_frames": []}
    for key in ("J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"):
        res[key] = []
    for oid in object_ids:
        p, g = pred[1:-1] == oid, gt[1:-1] == oid
        j = db_eval_iou(p, g)
        f = np.array([db_eval_boundary(p[t], g[t], bound_th) for t in range(p.shape[0])])
        res["J_frames"].append(j)
        res["F_frames"].append(f)
        for name, series in (("J", j), ("F", f)):
            m, r, d = _statistics(series)
            res[f"{name}_mean"].append(m)
            res[f"{name}_recall"].append(r)
            res[f"{name}_decay"].append(d)
    res["J_frames"] = np.array(res["J_frames"])
    res["F_frames"] = np.array(res["F_frames"])
    return res


_CHECKED = ("n_last_frames", "radius", "topk", "temperature", "feature_batch_size")


def evaluate_davis(
    feature_fn: FeatureFn, dataset, progress: bool = True, return_masks: bool = False, max_sequences=None, **prop_kwargs
) -> dict:
    """Propagate and score every sequence of a DAVIS-style dataset ({"frames", "masks", "name"}).

    Returns dict(J_mean, F_mean, JF_mean (means over all objects of all sequences), n_objects,
    per_sequence: {name: evaluate_davis_sequence(...)}, and masks: {name: (T,H,W)} if return_masks).
    """
    from tqdm.auto import tqdm

    if max_sequences is not None and (isinstance(max_sequences, bool) or not isinstance(max_sequences, int)
                                      or max_sequences < 1):
        raise ValueError(f"evaluate_davis: max_sequences must be None (all) or a whole number >= 1, "
                         f"got {max_sequences!r}")
    check_propagation(**{k: v for k, v in prop_kwargs.items() if k in _CHECKED})
    n = len(dataset) if max_sequences is None else min(len(dataset), max_sequences)
    per_sequence, all_j, all_f, masks_out = {}, [], [], {}
    for i in tqdm(range(n), desc="DAVIS", disable=not progress):
        sample = dataset[i]
        name = str(sample.get("name", i))
        pred = label_propagation(feature_fn, sample["frames"], sample["masks"][0], **prop_kwargs)
        seq = evaluate_davis_sequence(pred, sample["masks"])
        per_sequence[name] = seq
        all_j += seq["J_mean"]
        all_f += seq["F_mean"]
        if return_masks:
            masks_out[name] = pred
    if not all_j:
        raise ValueError("evaluate_davis: no object found in the first GT frame of any sequence")
    j, f = float(np.mean(all_j)), float(np.mean(all_f))
    out = {"J_mean": j, "F_mean": f, "JF_mean": (j + f) / 2, "n_objects": len(all_j), "per_sequence": per_sequence}
    if return_masks:
        out["masks"] = masks_out
    return out
