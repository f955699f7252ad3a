"""Optical-flow evaluation: EPE, Fl, n-px accuracies, padding/scaling, dataset loop, benchmark writers.

Definitions (per valid pixel p, prediction f, ground truth g, all in pixels):
    EPE(p)     = ||f(p) - g(p)||_2
    outlier(p) = EPE(p) > 3  AND  EPE(p) > 0.05 * ||g(p)||_2          (KITTI devkit rule)
    acc_k(p)   = EPE(p) < k,  k in {1, 3, 5}
Both inequalities of the outlier rule are strict: an EPE of exactly 3 px, or exactly 5 % of |g|, is not
an outlier. The relative test is written multiplicatively, so it needs no |g| epsilon: it equals the
devkit's EPE / |g| > 0.05 for |g| > 0 and, for g = 0, reduces to EPE > 3 (mmflow adds 1e-6 to |g| and
ARFlow uses max(|g|, 1e-10); both agree with ours except within ~1e-6 px of the threshold).
All arithmetic is float64 so that hand-made threshold cases are exact.
A non-finite prediction (NaN or +-Inf in u or v) at a valid pixel has EPE = +inf: it is an outlier, fails every
n-px accuracy, and makes the mean EPE inf (`evaluate_flow_dataset` warns, naming the sample). Non-finite ground
truth is not scored (treated as invalid).

Regions: "all" = valid pixels; with an occlusion mask (True = occluded) also "noc" = valid & ~occluded
and "occ" = valid & occluded. Keys of the returned dicts: `epe`, `fl` (percent), `px1`, `px3`, `px5`
(fractions in [0, 1]) and `n` (pixel count) for "all"; the same with suffix `_noc` / `_occ`.

Aggregation over a dataset (`FlowMetricAccumulator`): Fl and the n-px accuracies are POOLED over every
valid pixel of every image (KITTI devkit / RAFT / mmflow). "epe" is the MEAN OF PER-IMAGE MEAN EPEs
(RAFT's KITTI convention; identical to the pooled value when every image has the same number of valid
pixels, e.g. dense Sintel GT); the pooled EPE is also returned as `epe_pooled`.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..data.formats import write_flo, write_kitti_flow_png

FlowFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

OUTLIER_ABS_PX = 3.0
OUTLIER_REL = 0.05
ACCURACY_THRESHOLDS = (1, 3, 5)
REGIONS = ("all", "noc", "occ")


def _key(metric: str, region: str) -> str:
    return metric if region == "all" else f"{metric}_{region}"


def _as_batch(x: torch.Tensor, ndim: int, what: str) -> torch.Tensor:
    """Add a batch axis to a per-sample tensor; check the rank."""
    if x.dim() == ndim - 1:
        return x.unsqueeze(0)
    if x.dim() != ndim:
        raise ValueError(f"{what}: expected {ndim - 1} or {ndim} dims, got shape {tuple(x.shape)}")
    return x


def _prepare(pred, gt, valid, occlusion):
    """Batch and check shapes. Returns pred, gt (B,2,H,W) float64, valid, occlusion (B,H,W) bool / None."""
    pred = _as_batch(torch.as_tensor(pred), 4, "pred flow").double()
    gt = _as_batch(torch.as_tensor(gt), 4, "gt flow").double()
    if pred.shape != gt.shape or pred.shape[1] != 2:
        raise ValueError(f"flow shapes must match and be (B,2,H,W): pred {tuple(pred.shape)}, gt {tuple(gt.shape)}")
    b, _, h, w = gt.shape
    if valid is None:
        valid = torch.ones(b, h, w, dtype=torch.bool)
    valid = _as_batch(torch.as_tensor(valid), 3, "valid mask").bool()
    if valid.shape != (b, h, w):
        raise ValueError(f"valid mask shape {tuple(valid.shape)} does not match flow (B,H,W) = {(b, h, w)}")
    # Non-finite ground truth cannot be scored: treat it as invalid.
    valid = valid & torch.isfinite(gt).all(dim=1)
    if occlusion is not None:
        occlusion = _as_batch(torch.as_tensor(occlusion), 3, "occlusion mask").bool()
        if occlusion.shape != (b, h, w):
            raise ValueError(f"occlusion mask shape {tuple(occlusion.shape)} does not match flow {(b, h, w)}")
    return pred, gt, valid, occlusion


def flow_error_sums(pred, gt, valid=None, occlusion=None) -> dict[str, torch.Tensor]:
    """Per-image sufficient statistics, each a float64 tensor (B,).

    Keys: for each region r (suffix per `_key`): `n` (pixel count), `epe_sum`, `outliers`,
    `px1_count`, `px3_count`, `px5_count`. Regions "noc"/"occ" only when `occlusion` is given.
    """
    pred, gt, valid, occlusion = _prepare(pred, gt, valid, occlusion)
    epe = torch.linalg.vector_norm(pred - gt, dim=1)  # (B,H,W)
    epe = torch.where(torch.isfinite(pred).all(dim=1), epe, torch.full_like(epe, math.inf))
    mag = torch.linalg.vector_norm(gt, dim=1)
    outlier = (epe > OUTLIER_ABS_PX) & (epe > OUTLIER_REL * mag)
    regions = {"all": valid}
    if occlusion is not None:
        regions["noc"] = valid & ~occlusion
        regions["occ"] = valid & occlusion
    out: dict[str, torch.Tensor] = {}
    for region, mask in regions.items():
        m = mask.double()
        out[_key("n", region)] = m.sum(dim=(1, 2))
        out[_key("epe_sum", region)] = torch.where(mask, epe, 0.0).sum(dim=(1, 2))  # not epe * m: inf * 0 = NaN
        out[_key("outliers", region)] = (outlier.double() * m).sum(dim=(1, 2))
        for k in ACCURACY_THRESHOLDS:
            out[_key(f"px{k}_count", region)] = ((epe < k).double() * m).sum(dim=(1, 2))
    return out


def _metrics_from_sums(sums: dict[str, float], regions) -> dict[str, float]:
    """Ratios from pooled sums; NaN where a region has no pixels."""
    res: dict[str, float] = {}
    for region in regions:
        n = float(sums[_key("n", region)])
        div = (lambda x: float(x) / n) if n > 0 else (lambda x: math.nan)
        res[_key("epe", region)] = div(sums[_key("epe_sum", region)])
        res[_key("fl", region)] = 100.0 * div(sums[_key("outliers", region)])
        for k in ACCURACY_THRESHOLDS:
            res[_key(f"px{k}", region)] = div(sums[_key(f"px{k}_count", region)])
        res[_key("n", region)] = int(n)
    return res


def flow_metrics(pred, gt, valid=None, occlusion=None) -> dict[str, float]:
    """Metrics of one prediction (2,H,W) or a batch (B,2,H,W), pooled over all valid pixels of the batch.

    Args:
        pred, gt: (B,2,H,W) or (2,H,W) flows in pixels.
        valid: (B,H,W)/(H,W) bool, True where GT exists (default: all; non-finite GT is always invalid).
        occlusion: optional (B,H,W)/(H,W) bool, True = occluded; adds the `_noc` / `_occ` keys.
    Returns:
        dict with `epe`, `fl` (%), `px1`, `px3`, `px5` (fractions), `n` (+ `_noc`, `_occ` variants).
        A region without pixels gives NaN metrics and n = 0.
    """
    sums = {k: v.sum().item() for k, v in flow_error_sums(pred, gt, valid, occlusion).items()}
    regions = REGIONS if occlusion is not None else ("all",)
    return _metrics_from_sums(sums, regions)


class FlowMetricAccumulator:
    """Accumulates flow errors over a dataset.

    `compute()` returns the pooled `fl`, `px1/3/5`, `epe_pooled` (all valid pixels of all images) and
    `epe` = mean over images of the per-image mean EPE (images with no pixel in a region are skipped for
    that region), plus `n` (pooled pixel counts) and `n_images`. Regions noc/occ appear only if every
    update gave an occlusion mask.
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.per_image_epe: dict[str, list[float]] = {r: [] for r in REGIONS}
        self.n_images = 0
        self._has_occlusion: bool | None = None

    def update(self, pred, gt, valid=None, occlusion=None) -> dict[str, float]:
        """Add a prediction (2,H,W) or batch (B,2,H,W); returns this call's pooled metrics."""
        has_occ = occlusion is not None
        if self._has_occlusion is None:
            self._has_occlusion = has_occ
        elif self._has_occlusion != has_occ:
            warnings.warn("occlusion mask given for some samples only: noc/occ metrics dropped")
            self._has_occlusion = False
        per_image = flow_error_sums(pred, gt, valid, occlusion)
        for k, v in per_image.items():
            self.sums[k] = self.sums.get(k, 0.0) + v.sum().item()
        for region in REGIONS:
            n_key = _key("n", region)
            if n_key not in per_image:
                continue
            n = per_image[n_key]
            means = per_image[_key("epe_sum", region)][n > 0] / n[n > 0]
            self.per_image_epe[region].extend(means.tolist())
        self.n_images += int(per_image["n"].numel())
        pooled = {k: v.sum().item() for k, v in per_image.items()}
        return _metrics_from_sums(pooled, REGIONS if has_occ else ("all",))

    def compute(self) -> dict[str, float]:
        if self.n_images == 0:
            raise ValueError("FlowMetricAccumulator.compute(): no image was added")
        regions = REGIONS if self._has_occlusion else ("all",)
        res = _metrics_from_sums(self.sums, regions)
        for region in regions:
            res[_key("epe_pooled", region)] = res[_key("epe", region)]
            vals = self.per_image_epe[region]
            res[_key("epe", region)] = sum(vals) / len(vals) if vals else math.nan
        res["n_images"] = self.n_images
        return res


class InputPadder:
    """Replicate-pad images so that H and W are multiples of `stride`; crop flows back.

    mode "center" splits the padding evenly (extra pixel bottom/right), "bottom_right" pads only the
    bottom and the right (the choice matters little; KITTI codebases often use the latter).
    """

    def __init__(self, shape, stride: int = 64, mode: str = "center") -> None:
        if stride < 1:
            raise ValueError(f"InputPadder: stride must be >= 1, got {stride}")
        if mode not in ("center", "bottom_right"):
            raise ValueError(f"InputPadder: unknown mode {mode!r} (use 'center' or 'bottom_right')")
        self.height, self.width = int(shape[-2]), int(shape[-1])
        pad_h = (-self.height) % stride
        pad_w = (-self.width) % stride
        if mode == "center":
            self.pad = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)  # l, r, t, b
        else:
            self.pad = (0, pad_w, 0, pad_h)

    def pad_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(B,C,H,W) -> (B,C,H+pad_h,W+pad_w), edge values replicated."""
        if tuple(x.shape[-2:]) != (self.height, self.width):
            raise ValueError(f"InputPadder: expected (..., {self.height}, {self.width}), got {tuple(x.shape)}")
        if not any(self.pad):
            return x
        return F.pad(x, self.pad, mode="replicate")

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        """(..., H+pad_h, W+pad_w) -> (..., H, W): the original window."""
        left, _, top, _ = self.pad
        return x[..., top : top + self.height, left : left + self.width]


@torch.no_grad()
def predict_flow_native(
    flow_fn: FlowFn,
    frame1: torch.Tensor,
    frame2: torch.Tensor,
    stride: int = 64,
    scale: float = 1.0,
    pad_mode: str = "center",
) -> torch.Tensor:
    """Run `flow_fn` and return the flow at the frames' native resolution, in native pixels.

    scale = 1: replicate-pad to a multiple of `stride`, predict, crop. scale != 1: resize the frames to
    (h, w) = (round(H*scale), round(W*scale)) (bilinear, antialiased when shrinking), pad, predict, crop,
    resize the flow bilinearly to (H, W) and multiply u by W/w and v by H/h (flow is in pixels of the
    grid it was predicted on).

    Args:
        flow_fn: frame1 (B,3,h,w), frame2 (B,3,h,w) -> flow (B,2,h,w).
        frame1, frame2: (B,3,H,W) or (3,H,W).
    Returns:
        (B,2,H,W) (or (2,H,W) for unbatched input).
    """
    unbatched = frame1.dim() == 3
    f1 = _as_batch(frame1, 4, "frame1")
    f2 = _as_batch(frame2, 4, "frame2")
    if f1.shape != f2.shape:
        raise ValueError(f"frame shapes differ: {tuple(f1.shape)} vs {tuple(f2.shape)}")
    height, width = f1.shape[-2:]
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    if (h, w) != (height, width):
        f1 = F.interpolate(f1, size=(h, w), mode="bilinear", align_corners=False, antialias=scale < 1)
        f2 = F.interpolate(f2, size=(h, w), mode="bilinear", align_corners=False, antialias=scale < 1)
    padder = InputPadder(f1.shape, stride=stride, mode=pad_mode)
    flow = flow_fn(padder.pad_tensor(f1), padder.pad_tensor(f2))
    expected = (
        f1.shape[0],
        2,
        f1.shape[-2] + padder.pad[2] + padder.pad[3],
        f1.shape[-1] + padder.pad[0] + padder.pad[1],
    )
    if tuple(flow.shape) != expected:
        raise ValueError(f"flow_fn returned shape {tuple(flow.shape)}, expected {expected}")
    flow = padder.unpad(flow).float()
    if (h, w) != (height, width):
        flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
        factor = torch.tensor([width / w, height / h], dtype=flow.dtype, device=flow.device)
        flow = flow * factor.view(1, 2, 1, 1)
    return flow[0] if unbatched else flow


def _progress(iterable, progress: bool, desc: str, total=None):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total)


def evaluate_flow_dataset(
    flow_fn: FlowFn,
    dataset,
    stride: int = 64,
    scale: float = 1.0,
    max_samples: int | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Evaluate `flow_fn` on a dataset of flow-pair sample dicts (one sample at a time, native size).

    Samples without "flow" are skipped with one warning (counted in `n_skipped`); `valid` defaults to all
    True; `occlusion` is used when present. A non-finite predicted flow is scored as outliers with infinite
    EPE (module docstring) and warned about, naming the sample. Returns `FlowMetricAccumulator.compute()` +
    `n_skipped`. Raises ValueError naming the sample for a NaN/Inf input frame, and if no sample has ground
    truth.
    """
    n = len(dataset) if max_samples is None else min(len(dataset), max_samples)
    acc = FlowMetricAccumulator()
    skipped = 0
    for i in _progress(range(n), progress, "flow eval"):
        sample = dataset[i]
        if "flow" not in sample:
            if skipped == 0:
                warnings.warn(
                    f"evaluate_flow_dataset: sample {i} ({sample.get('name', '?')}) has no 'flow'; "
                    "skipping samples without GT"
                )
            skipped += 1
            continue
        name = f"sample {i} ({sample.get('name', '?')})"
        for key in ("frame1", "frame2"):
            bad = int((~torch.isfinite(torch.as_tensor(sample[key]))).sum())
            if bad:
                raise ValueError(f"evaluate_flow_dataset: {name}: {key} has {bad} NaN/Inf values; input images "
                                 f"must be finite")
        pred = predict_flow_native(flow_fn, sample["frame1"], sample["frame2"], stride=stride, scale=scale)
        bad = int((~torch.isfinite(pred)).any(dim=-3).sum())
        if bad:
            warnings.warn(f"evaluate_flow_dataset: {name}: {bad} pixels of the predicted flow are NaN/Inf; they "
                          f"count as outliers with infinite EPE")
        acc.update(pred.cpu(), sample["flow"], sample.get("valid"), sample.get("occlusion"))
    if acc.n_images == 0:
        raise ValueError(f"evaluate_flow_dataset: none of the {n} samples has ground-truth 'flow'")
    res = acc.compute()
    res["n_skipped"] = skipped
    return res


# ----------------------------------------------------------------------------------------------------
# Benchmark submissions. The file writers live in mcjepa.data.formats (write_flo, write_kitti_flow_png).

def kitti_frame_index(name: str) -> int:
    """'000123_10', '000123', 'testing/image_2/000123_10.png' -> 123 (basename: digits, optional _10/_11)."""
    base = Path(str(name)).name
    base = re.sub(r"\.(png|jpg|jpeg)$", "", base, flags=re.IGNORECASE)
    match = re.fullmatch(r"(\d+)(?:_1[01])?", base)
    if match is None:
        raise ValueError(f"cannot read a KITTI frame index from sample name {name!r} (want e.g. '000123_10')")
    return int(match.group(1))


def sintel_path_parts(sample: dict, pass_name: str | None = None) -> tuple[str, str, int]:
    """(pass, scene, frame number) of a Sintel sample.

    Uses keys "pass", "scene", "frame" if the sample has them; otherwise parses "name" as
    '[.../]<pass>/<scene>/frame_0001[.png]' or '<scene>/frame_0001' (pass then from `pass_name`).
    The frame number is the one of frame1 (Sintel numbers frames from 1).
    """
    name = str(sample.get("name", ""))
    parts = [p for p in re.split(r"[/\\]", name) if p]
    frame = sample.get("frame")
    if frame is None and parts:
        m = re.search(r"(\d+)", re.sub(r"\.(png|flo)$", "", parts[-1]))
        frame = int(m.group(1)) if m else None
    scene = sample.get("scene") or (parts[-2] if len(parts) >= 2 else None)
    pss = sample.get("pass") or pass_name
    if pss is None:
        pss = next((p for p in parts[:-2] if p in ("clean", "final")), None)
    if frame is None or scene is None or pss is None:
        raise ValueError(
            f"cannot derive <pass>/<scene>/frame_%04d from Sintel sample name {name!r} "
            "(want '<pass>/<scene>/frame_0001' or keys pass/scene/frame, or give pass_name)"
        )
    return str(pss), str(scene), int(frame)


def write_kitti_submission(
    flow_fn: FlowFn, dataset, out_dir, stride: int = 64, scale: float = 1.0, progress: bool = True
) -> list[Path]:
    """Predict every pair and write `out_dir/%06d_10.png` (KITTI 16-bit flow PNG, valid = 1 everywhere).

    The index comes from `kitti_frame_index(sample["name"])`. Returns the written paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in _progress(range(len(dataset)), progress, "KITTI submission"):
        sample = dataset[i]
        idx = kitti_frame_index(sample.get("name", ""))
        flow = predict_flow_native(flow_fn, sample["frame1"], sample["frame2"], stride=stride, scale=scale)
        flow_hw2 = flow.detach().cpu().permute(1, 2, 0).numpy()
        valid = torch.ones(flow_hw2.shape[:2], dtype=torch.bool).numpy()
        path = out_dir / f"{idx:06d}_10.png"
        write_kitti_flow_png(path, flow_hw2, valid)
        paths.append(path)
    return paths


def write_sintel_submission(
    flow_fn: FlowFn,
    dataset,
    out_dir,
    pass_name: str | None = None,
    stride: int = 64,
    scale: float = 1.0,
    progress: bool = True,
) -> list[Path]:
    """Predict every pair and write `out_dir/<pass>/<scene>/frame_%04d.flo` (see `sintel_path_parts`)."""
    out_dir = Path(out_dir)
    paths = []
    for i in _progress(range(len(dataset)), progress, "Sintel submission"):
        sample = dataset[i]
        pss, scene, frame = sintel_path_parts(sample, pass_name)
        flow = predict_flow_native(flow_fn, sample["frame1"], sample["frame2"], stride=stride, scale=scale)
        path = out_dir / pss / scene / f"frame_{frame:04d}.flo"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_flo(path, flow.detach().cpu().permute(1, 2, 0).numpy())
        paths.append(path)
    return paths
