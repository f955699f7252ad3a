"""Classical optical flow from OpenCV, the methods a user would pick instead of a learned model.

    farneback   polynomial-expansion flow (Farneback 2003), `cv2.calcOpticalFlowFarneback`
                (pyr_scale 0.5, 5 levels, window 15, 5 iterations, poly_n 7, poly_sigma 1.5)
    dis         Dense Inverse Search (Kroeger et al. 2016), `cv2.DISOpticalFlow_create`, MEDIUM preset

Both run on 8-bit greyscale frames, one pair at a time on one CPU thread (OpenCV's own threading is set to 1 so
that their timings compare with the kit's single-thread models). OpenCV comes with the evaluation extra:
`pip install -e ".[eval]"` (opencv-python-headless).
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from .flow_metrics import evaluate_flow_dataset

CLASSICAL_FLOW = {"farneback": "Farneback (OpenCV)", "dis": "DIS medium (OpenCV)"}  # name -> table label


def _cv2():
    try:
        import cv2
    except ImportError as err:
        raise ImportError("the classical flow baselines need OpenCV: pip install -e \".[eval]\" "
                          "(or pip install opencv-python-headless)") from err
    cv2.setNumThreads(1)
    return cv2


def _grey8(frame: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W) uint8 luma (ITU-R 601, as cv2.cvtColor)."""
    weights = frame.new_tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    return (frame * weights).sum(0).mul(255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def classical_flow_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A flow function like `mcjepa.eval.runners.flow_fn`: frames (B, 3, H, W) in [0, 1] -> flow (B, 2, H, W)
    in pixels (u right, v down), frame 1 -> frame 2. Any H, W (no stride). Raises ValueError for an unknown
    `name` (valid: CLASSICAL_FLOW) and ImportError without OpenCV."""
    if name not in CLASSICAL_FLOW:
        raise ValueError(f"unknown classical flow method {name!r}; valid: {list(CLASSICAL_FLOW)}")
    cv2 = _cv2()
    if name == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

        def one(a, b):
            return dis.calc(a, b, None)
    else:
        def one(a, b):
            return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 5, 15, 5, 7, 1.5, 0)

    def predict(frame1: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
        flows = [torch.from_numpy(one(_grey8(a), _grey8(b))).permute(2, 0, 1) for a, b in zip(frame1, frame2)]
        return torch.stack(flows).float()

    return predict


class Timed:
    """Wraps a flow function and accumulates its wall time: `seconds / calls` = seconds per pair (batch 1)."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, frame1: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
        began = time.perf_counter()
        flow = self.fn(frame1, frame2)
        self.seconds += time.perf_counter() - began
        self.calls += 1
        return flow

    @property
    def per_pair(self) -> float:
        return self.seconds / max(self.calls, 1)


def evaluate_timed(fn: Callable, dataset, stride: int) -> dict:
    """`evaluate_flow_dataset` metrics of `fn` on `dataset` plus "seconds_per_pair" (the flow function's wall
    time per pair, padding and metrics excluded)."""
    timed = Timed(fn)
    result = evaluate_flow_dataset(timed, dataset, stride=stride, progress=False)
    return {**result, "seconds_per_pair": timed.per_pair}


def classical_flow_results(datasets: Mapping[str, object], methods: Sequence[str] = tuple(CLASSICAL_FLOW)) -> dict:
    """{method label: {dataset name: metrics + seconds_per_pair}} of the OpenCV baselines on evaluation datasets
    given as {name: dataset} (e.g. from `mcjepa.data.registry.flow_eval_dataset`)."""
    return {
        CLASSICAL_FLOW[m]: {name: evaluate_timed(classical_flow_fn(m), ds, stride=1) for name, ds in datasets.items()}
        for m in methods
    }
