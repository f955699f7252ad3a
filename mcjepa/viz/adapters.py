"""Adapters from a trained MC-JEPA to the `predict_fn`s of the inspectors (mcjepa/viz/flow_inspector.py,
segmentation_inspector.py).

    flow_predict_fn(model)                   -> FlowInspector predict_fn:  (frame1, frame2 (1,3,H,W)) -> dict
    probe_predict_fn(model, probe)           -> SegmentationInspector predict_fn for stills:    sample -> (H,W)
    propagation_predict_fn(model)            -> SegmentationInspector predict_fn for sequences: sample -> (T,H,W)

They live in mcjepa.eval.runners with the evaluators' adapters (one home, below both eval and viz), which
also says how frames of any size are padded to the model stride and the outputs cropped back.
"""

from __future__ import annotations

from ..eval.runners import flow_predict_fn, probe_logits, probe_predict_fn, propagation_predict_fn

__all__ = ["flow_predict_fn", "probe_predict_fn", "propagation_predict_fn", "probe_logits"]
