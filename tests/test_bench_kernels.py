"""benchmarks/bench_kernels.py: the replaced kernels it times (and that bench_train --kernels-before swaps in)
compute what the shipped ones compute, and the swap is undone."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_kernels import (  # noqa: E402
    before_kernels,
    census_variants,
    convex_variants,
    cost_volume_variants,
    depthwise_variants,
)

from mcjepa.losses import census  # noqa: E402
from mcjepa.models import cost_volume  # noqa: E402
from mcjepa.models.depthwise import DepthwiseConv2d  # noqa: E402
from mcjepa.models.upsample import ConvexUpsampler  # noqa: E402
from mcjepa.train import schedule  # noqa: E402


def test_replaced_kernels_agree_with_the_shipped_ones():
    for variants in (census_variants(2, (12, 16), 2), convex_variants(1, (16, 24)),
                     cost_volume_variants(1, (32, 64)), depthwise_variants(1, (32, 64), 2, (32, 32))):
        outputs = [fn() for _, fn in variants]
        for out in outputs[1:]:
            for got, want in zip(out, outputs[0]):
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        assert outputs[0][1].abs().sum() > 0  # a gradient reaches the input


def test_before_kernels_swaps_and_restores():
    def current():
        return (census.SoftHamming, ConvexUpsampler.forward, cost_volume._LocalCorrelation.backward,
                DepthwiseConv2d.forward, schedule.FUSED_ADAMW)

    shipped = current()
    with before_kernels():
        assert all(now is not then for now, then in zip(current(), shipped))
    assert current() == shipped
