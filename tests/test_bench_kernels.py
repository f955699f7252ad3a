"""benchmarks/bench_kernels.py: the replaced kernels it times (and that bench_train --kernels-before swaps in)
compute what the shipped ones compute, and the swap is undone."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_kernels import before_kernels, census_variants, convex_variants  # noqa: E402

from mcjepa.losses import census  # noqa: E402
from mcjepa.models.upsample import ConvexUpsampler  # noqa: E402


def test_replaced_kernels_agree_with_the_shipped_ones():
    for variants in (census_variants(2, (12, 16), 2), convex_variants(1, (16, 24))):
        outputs = [fn() for _, fn in variants]
        for out in outputs[1:]:
            for got, want in zip(out, outputs[0]):
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        assert outputs[0][1].abs().sum() > 0  # a gradient reaches the input


def test_before_kernels_swaps_and_restores():
    shipped = census.SoftHamming, ConvexUpsampler.forward
    with before_kernels():
        assert census.SoftHamming is not shipped[0] and ConvexUpsampler.forward is not shipped[1]
    assert (census.SoftHamming, ConvexUpsampler.forward) == shipped
