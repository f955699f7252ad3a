"""The tiny M-JEPA recipe must learn flow: EPE on held-out generated pairs well below zero flow.

This is the end-to-end check of the whole flow branch (encoder, cost volume, warping, losses, trainer, data);
it takes minutes: `make test` starts it first (marked slow), on one thread of one xdist worker, beside the rest of
the suite on the other core (`cpu_share`: both cores when run alone).
"""

import pytest

from mcjepa.config import apply_overrides, tiny
from mcjepa.eval.flow_metrics import evaluate_flow_dataset
from mcjepa.data.registry import flow_eval_dataset
from mcjepa.eval.runners import flow_fn
from mcjepa.eval.suite import zero_flow_metrics
from mcjepa.train.trainer import train


@pytest.mark.slow
def test_tiny_m_jepa_beats_zero_flow(tmp_path, cpu_share):
    cfg = apply_overrides(tiny(), {"train.method": "m-jepa"})
    result = train(cfg, tmp_path / "run", progress=False)
    model = result.model.eval()
    pairs = flow_eval_dataset("embedded", None, cfg)
    trained = evaluate_flow_dataset(flow_fn(model), pairs, stride=model.stride, progress=False)["epe"]
    zero = zero_flow_metrics(pairs)["epe"]
    print(f"held-out EPE: trained {trained:.3f} px, zero flow {zero:.3f} px")
    # measured with this recipe: 1.37 vs 2.07 px after its 600 steps (make demo's run, README's results section;
    # 0.93 after 2400); the earlier L1+SSIM recipe reached 1.46 (0.71 x zero flow) after 400 steps of 8 pairs
    assert trained < 0.7 * zero
