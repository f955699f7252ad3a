"""Adapters from a trained MC-JEPA to the callables the evaluators, figures and inspectors take.

    feature_fn(model, levels)        images (B,3,H,W) -> frozen dense features (B,C,h,w) (probes, DAVIS)
    pooled_fn(model)                 images (B,3,H,W) -> pooled representation (B,D) (k-NN / linear eval)
    flow_fn(model)                   frame1, frame2 (B,3,H,W) -> forward flow (B,2,H,W)
    any_size_flow_fn(model)          the same for frames of any size (padded to the stride, cropped back)
    flow_predict_fn(model)           FlowInspector predict_fn: (frame1, frame2 (1,3,H,W)) -> dict
    probe_predict_fn(model, probe)   SegmentationInspector predict_fn for stills:    sample -> (H,W)
    propagation_predict_fn(model)    SegmentationInspector predict_fn for sequences: sample -> (T,H,W)

Frames of any size are replicate-padded at the bottom/right to a multiple of `model.stride` (`pad_to_stride`),
and every output is cropped back: full-resolution maps to (H, W), level l (stride s_l) to
(ceil(H / s_l), ceil(W / s_l)). For sizes that are not multiples of the stride, a level grid therefore covers
slightly more than the image (less than one level pixel), which the inspector ignores when it resizes the
frames to the level size.

The evaluation datasets by name live in mcjepa.data.registry; `flow_eval_dataset`, `segmentation_datasets`
and `video_dataset` are importable from here too, as the notebooks do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..config import LossConfig
from ..losses.occlusion import occlusion_mask
from ..models.mcjepa import MCJEPA
from .davis import label_propagation
from .flow_metrics import InputPadder

__all__ = ["pad_to_stride", "feature_fn", "pooled_fn", "flow_fn", "any_size_flow_fn", "flow_predict_fn",
           "probe_predict_fn", "propagation_predict_fn", "probe_logits"]


def pad_to_stride(images: torch.Tensor, stride: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad (B,3,H,W) at the bottom/right to multiples of `stride`; returns the original (H, W).

    Bottom/right padding keeps feature cell (0, 0) aligned with pixel (0, 0), so maps are cropped from the
    top-left corner."""
    padder = InputPadder(images.shape, stride=stride, mode="bottom_right")
    return padder.pad_tensor(images), (padder.height, padder.width)


def feature_fn(model: MCJEPA, levels: str | tuple[int, ...] = "last") -> Callable[[torch.Tensor], torch.Tensor]:
    """Frozen dense features for probes and label propagation: images (B,3,H,W) -> (B, C, h, w).

    levels: "last" = the stride-32 stage (the paper's frozen-feature protocol); "concat" = the stride-8, 16
    and 32 stages resized to the stride-8 grid and concatenated; or explicit pyramid indices (finest = 0).
    Inputs of any size are padded to the model stride, and the features cropped back accordingly.
    """
    stage32 = len(model.encoder.stages)
    chosen = {"last": (stage32,), "concat": (stage32 - 2, stage32 - 1, stage32)}.get(levels, levels)

    @torch.no_grad()
    def features(images: torch.Tensor) -> torch.Tensor:
        device = next(model.parameters()).device
        padded, (height, width) = pad_to_stride(images.to(device), model.stride)
        pyramid = model.encoder(padded)
        finest = min(chosen)
        stride = model.encoder.strides[finest]
        size = (-(-height // stride), -(-width // stride))
        grid = pyramid[finest].shape[-2:]
        maps = [F.interpolate(pyramid[i], size=grid, mode="bilinear", align_corners=False) if i != finest
                else pyramid[i] for i in chosen]
        return torch.cat(maps, dim=1)[..., :size[0], :size[1]].cpu()

    return features


def pooled_fn(model: MCJEPA) -> Callable[[torch.Tensor], torch.Tensor]:
    """images (B,3,H,W) -> the pooled representation (B, D) (before the expander, as for linear eval)."""

    @torch.no_grad()
    def pooled(images: torch.Tensor) -> torch.Tensor:
        device = next(model.parameters()).device
        padded, _ = pad_to_stride(images.to(device), model.stride)
        return model.encoder.pool(model.encoder(padded)).cpu()

    return pooled


def flow_fn(model: MCJEPA) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """frame1, frame2 (B,3,H,W) (multiples of model.stride) -> forward flow (B,2,H,W) on the CPU."""

    def predict(frame1: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
        device = next(model.parameters()).device
        return model.predict_flow(frame1.to(device), frame2.to(device)).cpu()

    return predict


def any_size_flow_fn(model: MCJEPA) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """frame1, frame2 (B,3,H,W) in [0,1], any H, W -> forward flow (B,2,H,W) in pixels, on the CPU: both frames
    replicate-padded at the bottom/right to multiples of `model.stride` (`pad_to_stride`), the flow of the
    padded pair cropped back to (H, W). Runs on the model's device. Raises ValueError for frames of
    different shapes."""

    @torch.no_grad()
    def predict(frame1: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
        padded1, padded2, size = _padded_pair(model, frame1, frame2, "any_size_flow_fn")
        return _crop(model.predict_flow(padded1, padded2), size).cpu()

    return predict


def _padded_pair(model: MCJEPA, frame1: torch.Tensor, frame2: torch.Tensor,
                 caller: str) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Both frames (B,3,H,W) on the model's device, replicate-padded to multiples of its stride, and (H, W).
    Raises ValueError naming `caller` for frames of different or wrong shapes."""
    if frame1.shape != frame2.shape or frame1.dim() != 4 or frame1.shape[1] != 3:
        raise ValueError(f"{caller}: frames must both be (B,3,H,W), got {tuple(frame1.shape)} and "
                         f"{tuple(frame2.shape)}")
    device = next(model.parameters()).device
    padded1, size = pad_to_stride(frame1.float().to(device), model.stride)
    padded2, _ = pad_to_stride(frame2.float().to(device), model.stride)
    return padded1, padded2, size


def _crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return x[..., : size[0], : size[1]]


def flow_predict_fn(model: MCJEPA, loss: LossConfig | None = None
                    ) -> Callable[[torch.Tensor, torch.Tensor], dict]:
    """FlowInspector's predict_fn for `model` (used in its current train/eval mode; call `.eval()` first).

    Returns predict(frame1, frame2) with frames (1,3,H,W) in [0,1] -> dict:
        flows_fw, flows_bw: lists coarse -> fine of (1,2,h_l,w_l), in pixels of level l (FlowOutput);
        flow_fw, flow_bw:   (1,2,H,W) finest flow upsampled to the image, in pixels;
        occlusion_fw:       (1,1,H,W) float, 1 = occluded: the mask the training uses, `occlusion_mask` with
                            `loss`'s occlusion settings (pass the run's cfg.loss; None: LossConfig()'s defaults,
                            UnFlow's forward-backward check capped at half the image);
        occlusion_bw:       the same with the directions swapped (occlusion of frame 2);
        cost_volume_fn:     (level, y, x) -> (2r+1, 2r+1) float32 array: the forward cost volume
                            FlowOutput.costs_fw[level][0, :, y, x], rows = dy, columns = dx, after the flow head's
                            leaky ReLU. At every level but the coarsest it correlates frame 1 with frame 2 ALREADY
                            WARPED by the upsampled coarser flow, so its offsets are residuals to that flow.
        cost_volume_bw_fn:  the same for the backward pass (frame 2 against frame 1): the forward cost volumes
                            of the swapped pair (both directions share the flow head), computed on first use.
    """
    strides = tuple(model.cfg.flow.strides)
    loss = loss or LossConfig()

    def occlusion(flow_a: torch.Tensor, flow_b: torch.Tensor) -> torch.Tensor:
        return occlusion_mask(flow_a, flow_b, loss.occlusion_method, loss.occlusion_alpha1, loss.occlusion_alpha2,
                              loss.occlusion_range_threshold, loss.occlusion_max_fraction)

    @torch.no_grad()
    def predict(frame1: torch.Tensor, frame2: torch.Tensor) -> dict:
        padded1, padded2, size = _padded_pair(model, frame1, frame2, "flow_predict_fn")
        out = model.forward_flow(padded1, padded2, return_costs=True)
        level_sizes = [(-(-size[0] // s), -(-size[1] // s)) for s in strides]
        flows_fw = [_crop(f, hw).cpu() for f, hw in zip(out.flows_fw, level_sizes)]
        flows_bw = [_crop(f, hw).cpu() for f, hw in zip(out.flows_bw, level_sizes)]
        costs = {"fw": [_crop(c, hw).cpu() for c, hw in zip(out.costs_fw, level_sizes)]}
        flow_fw, flow_bw = _crop(out.flow_fw, size).cpu(), _crop(out.flow_bw, size).cpu()
        side = 2 * model.cfg.flow.radius + 1

        def direction_costs(direction: str) -> list[torch.Tensor]:
            if direction not in costs:  # the backward pass's costs = the forward costs of the swapped pair
                swapped = model.forward_flow(padded2, padded1, return_costs=True)
                costs[direction] = [_crop(c, hw).cpu() for c, hw in zip(swapped.costs_fw, level_sizes)]
            return costs[direction]

        def make_cost_fn(direction: str) -> Callable[[int, int, int], np.ndarray]:
            def cost_volume_fn(level: int, y: int, x: int) -> np.ndarray:
                levels = direction_costs(direction)
                if not 0 <= level < len(levels):
                    raise ValueError(f"cost_volume_fn: level {level} not in 0..{len(levels) - 1}")
                height, width = levels[level].shape[-2:]
                if not (0 <= y < height and 0 <= x < width):
                    raise ValueError(f"cost_volume_fn: ({y}, {x}) outside level {level} of size {(height, width)}")
                return levels[level][0, :, y, x].reshape(side, side).numpy().astype(np.float32)

            return torch.no_grad()(cost_volume_fn)

        return {"flows_fw": flows_fw, "flows_bw": flows_bw, "flow_fw": flow_fw, "flow_bw": flow_bw,
                "occlusion_fw": occlusion(flow_fw, flow_bw), "occlusion_bw": occlusion(flow_bw, flow_fw),
                "cost_volume_fn": make_cost_fn("fw"), "cost_volume_bw_fn": make_cost_fn("bw")}

    return predict


def probe_logits(features: torch.Tensor, probe: Mapping, size: tuple[int, int]) -> torch.Tensor:
    """Logits (B,K,H,W) of a trained linear probe (`linear_probe_segmentation`'s result: "head", and the
    standardisation "feature_mean"/"feature_std" (C,)) on frozen features (B,C,h,w), bilinearly upsampled to
    `size` exactly as in the probe's training and evaluation."""
    mean = probe["feature_mean"].view(1, -1, 1, 1)
    std = probe["feature_std"].view(1, -1, 1, 1)
    head = probe["head"]
    weight = next(head.parameters())
    logits = head(((features.float() - mean) / std).to(weight.device, weight.dtype))
    return torch.nn.functional.interpolate(logits, size=size, mode="bilinear", align_corners=False).cpu()


def probe_predict_fn(model: MCJEPA, probe: Mapping, levels: str | tuple[int, ...] = "last"
                     ) -> Callable[[Mapping], torch.Tensor]:
    """SegmentationInspector's predict_fn for stills: sample {"image" (3,H,W)} -> (H,W) int64 class map, the
    argmax of the linear probe `probe` (trained with `linear_probe_segmentation` on `feature_fn(model, levels)`,
    the same `levels`) on the model's frozen features."""
    if "head" not in probe or "feature_mean" not in probe:
        raise ValueError("probe_predict_fn: `probe` must be the dict returned by linear_probe_segmentation "
                         "(keys 'head', 'feature_mean', 'feature_std')")
    features = feature_fn(model, levels)

    @torch.no_grad()
    def predict(sample: Mapping) -> torch.Tensor:
        image = sample["image"]
        logits = probe_logits(features(image[None].float()), probe, tuple(image.shape[-2:]))
        return logits.argmax(dim=1)[0]

    return predict


def propagation_predict_fn(model: MCJEPA, levels: str | tuple[int, ...] = "concat", **propagation_kwargs
                           ) -> Callable[[Mapping], torch.Tensor]:
    """SegmentationInspector's predict_fn for videos: sample {"frames" (T,3,H,W), "masks" (T,H,W) with the GT of
    frame 0} -> (T,H,W) int64 instance ids propagated from the first mask by
    `mcjepa.eval.davis.label_propagation` with `feature_fn(model, levels)` (keyword arguments passed on)."""
    features = feature_fn(model, levels)

    def predict(sample: Mapping) -> torch.Tensor:
        first = torch.as_tensor(sample["masks"][0]).long()
        return label_propagation(features, sample["frames"].float(), first, **propagation_kwargs)

    return predict

