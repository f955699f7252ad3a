"""The hand-written kernels of the flow loss and head, each beside its alternatives, timed in one run:

    python benchmarks/bench_kernels.py [--threads 1] [--rounds 7]

- census (soft Hamming distance of the census loss, `losses.census.SoftHamming`) at the tiny step's size
  (both directions: 8 grey maps of 96x128, radius 3): the shipped loop over half the shifts (each opposite pair
  of shifts computed once), the loop over every shift it replaced, and the direct unfold formula with autograd;
- convex upsampling of the finest flow (`models.upsample.ConvexUpsampler`, x4 from the tiny stride-4 level):
  the shipped product per flow component against the one broadcast product over (B, 2, 9, f, f, h, w) it
  replaced;
- the cost volume's backward at the tiny flow head's levels (both directions, radius 3): the flattened-row loop
  (shipped) against the row-by-row loop it replaced (bit-identical gradients);
- the depthwise 7x7 convolutions of the tiny encoder (`models.depthwise.DepthwiseConv2d`: every ConvNeXt block
  of one step, on the frames at 96x128 and the views at 64x64): the hand-written backward against
  nn.Conv2d's autograd (oneDNN) it replaced;
- the flow head's convolutions at the tiny preset's pyramid, in the default (contiguous) memory layout and
  in channels_last.

`before_kernels()` swaps the replaced versions (every-shift census, broadcast convex upsampling, the row-by-row
cost-volume backward, nn.Conv2d's depthwise backward, the per-parameter AdamW loop instead of the fused one)
into the kit, so that `bench_train.py --kernels-before` times the whole training step with them in the same
run.

Every variant runs forward + backward on the same inputs; the variants take turns within each round (so a busy
neighbour slows all of them alike), and the table gives the median over rounds in milliseconds, with the
largest difference of each variant's result from the first variant's (the same computation must give the same
numbers).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing the kit

from einops import rearrange  # noqa: E402

from mcjepa.config import tiny  # noqa: E402
from mcjepa.losses import census  # noqa: E402
from mcjepa.losses.census import SoftHamming, _soft_sign  # noqa: E402
from mcjepa.models import cost_volume  # noqa: E402
from mcjepa.models.depthwise import DepthwiseConv2d  # noqa: E402
from mcjepa.models.flow_head import FlowHead  # noqa: E402
from mcjepa.models.mcjepa import MCJEPA  # noqa: E402
from mcjepa.models.upsample import ConvexUpsampler  # noqa: E402
from mcjepa.train import schedule  # noqa: E402


class EveryShiftHamming(torch.autograd.Function):
    """The census distance as shipped before: one pass per shift of the patch ((2r+1)^2 - 1 passes), the same
    hand-written backward; the baseline of the half-shift loop."""

    @staticmethod
    def forward(ctx, grey, grey_rec, radius):
        ctx.save_for_backward(grey, grey_rec)
        ctx.radius = radius
        height, width = grey.shape[-2:]
        pad, pad_rec = F.pad(grey, [radius] * 4), F.pad(grey_rec, [radius] * 4)
        distance = torch.zeros_like(grey)
        for dy, dx in _every_shift(radius):
            window = (..., slice(radius + dy, radius + dy + height), slice(radius + dx, radius + dx + width))
            error_sq = (_soft_sign(pad[window] - grey) - _soft_sign(pad_rec[window] - grey_rec)).square_()
            distance += error_sq / (0.1 + error_sq)
        return distance

    @staticmethod
    def backward(ctx, grad_distance):
        grey, grey_rec = ctx.saved_tensors
        radius = ctx.radius
        height, width = grey.shape[-2:]
        pad, pad_rec = F.pad(grey, [radius] * 4), F.pad(grey_rec, [radius] * 4)
        grad_pad = torch.zeros_like(pad_rec)
        grad_centre = torch.zeros_like(grey_rec)
        for dy, dx in _every_shift(radius):
            window = (..., slice(radius + dy, radius + dy + height), slice(radius + dx, radius + dx + width))
            d_rec = pad_rec[window] - grey_rec
            denom_rec = 0.81 + d_rec * d_rec
            error = _soft_sign(pad[window] - grey) - d_rec * torch.rsqrt(denom_rec)
            grad_d = grad_distance * (-0.2 * error / (0.1 + error * error).square()) * (
                0.81 * torch.rsqrt(denom_rec) / denom_rec)
            grad_pad[window] += grad_d
            grad_centre -= grad_d
        return None, grad_pad[..., radius:radius + height, radius:radius + width] + grad_centre, None


def _every_shift(radius: int):
    span = range(-radius, radius + 1)
    return [(dy, dx) for dy in span for dx in span if (dy, dx) != (0, 0)]


def unfold_hamming(grey, grey_rec, radius):
    """The same distance from unfolded patches ((2r+1)^2 x the image in memory), autograd's backward."""
    size = 2 * radius + 1

    def signs(g):
        patches = F.unfold(g, size, padding=radius).view(g.shape[0], size * size, *g.shape[-2:])
        return _soft_sign(patches - g)

    error_sq = (signs(grey) - signs(grey_rec)).square()
    return (error_sq / (0.1 + error_sq)).sum(dim=1, keepdim=True)


def census_variants(batch: int, size: tuple[int, int], radius: int):
    """(name, fn) pairs; fn() returns (distance, gradient of the reconstruction) for fixed random inputs."""
    g = torch.Generator().manual_seed(0)
    grey = 255 * torch.rand(batch, 1, *size, generator=g)
    grey_rec = (grey + 20 * torch.randn(grey.shape, generator=g)).requires_grad_()
    weight = torch.rand(grey.shape, generator=g)

    def run(distance_fn):
        def fn():
            distance = distance_fn(grey, grey_rec, radius)
            (grad,) = torch.autograd.grad((distance * weight).sum(), grey_rec)
            return distance.detach(), grad
        return fn

    return [("half the shifts (shipped)", run(SoftHamming.apply)),
            ("every shift (before)", run(EveryShiftHamming.apply)),
            ("unfold + autograd", run(unfold_hamming))]


def broadcast_convex_forward(self, features, flow):
    """`ConvexUpsampler.forward` as shipped before: one broadcast product over (B, 2, 9, f, f, h, w)."""
    f = self.factor
    logits = 0.25 * self.mask(torch.cat([features, flow], dim=1))
    weights = rearrange(logits, "b (k fy fx) h w -> b 1 k fy fx h w", k=9, fy=f, fx=f).softmax(dim=2)
    neighbours = rearrange(F.unfold(f * flow, 3, padding=1), "b (c k) (h w) -> b c k 1 1 h w", c=2, k=9,
                           h=flow.shape[-2])
    return rearrange((weights * neighbours).sum(dim=2), "b c fy fx h w -> b c (h fy) (w fx)")


@staticmethod
def row_by_row_correlation_backward(ctx, grad):
    """`_LocalCorrelation.backward` as shipped before: one addcmul per shift over (B, C, H, W) windows."""
    features1, padded = ctx.saved_tensors
    radius = ctx.radius
    height, width = features1.shape[-2:]
    grad = grad / features1.shape[1]
    grad1, grad_padded = torch.zeros_like(features1), torch.zeros_like(padded)
    for k, (dy, dx) in enumerate(cost_volume._shifts(radius)):
        g = grad[:, k:k + 1]
        grad1.addcmul_(g, padded[:, :, dy:dy + height, dx:dx + width])
        grad_padded[:, :, dy:dy + height, dx:dx + width].addcmul_(g, features1)
    return grad1, grad_padded[:, :, radius:radius + height, radius:radius + width], None


class RowByRowCorrelation(cost_volume._LocalCorrelation):
    backward = row_by_row_correlation_backward


def cost_volume_variants(pairs: int, crop: tuple[int, int]):
    """The tiny flow head's cost volumes (its levels' channels and strides, both directions, its radius)."""
    cfg = tiny().model
    torch.manual_seed(0)
    model = MCJEPA(cfg)
    g = torch.Generator().manual_seed(4)
    inputs = []
    for stride, level in zip(cfg.flow.strides, model.flow_levels):
        shape = (2 * pairs, model.encoder.channels[level], crop[0] // stride, crop[1] // stride)
        inputs.append((torch.randn(shape, generator=g).requires_grad_(), torch.randn(shape, generator=g)
                       .requires_grad_(), torch.randn(2 * pairs, (2 * cfg.flow.radius + 1) ** 2, *shape[-2:],
                                                      generator=g)))

    def run(function):
        def fn():
            grads = []
            for f1, f2, weight in inputs:
                grads += torch.autograd.grad((function.apply(f1, f2, cfg.flow.radius) * weight).sum(), (f1, f2))
            return tuple(grads)
        return fn

    return [("flattened rows (shipped)", run(cost_volume._LocalCorrelation)),
            ("row by row (before)", run(RowByRowCorrelation))]


@contextlib.contextmanager
def before_kernels():
    """The kit with the kernels these replaced: the every-shift census loop, the broadcast convex upsampling,
    the row-by-row cost-volume backward, nn.Conv2d's autograd for the depthwise convolutions, and (for
    optimisers built inside) the per-parameter AdamW loop."""
    shipped = (census.SoftHamming, ConvexUpsampler.forward, cost_volume._LocalCorrelation.backward,
               DepthwiseConv2d.forward, schedule.FUSED_ADAMW)
    census.SoftHamming, ConvexUpsampler.forward = EveryShiftHamming, broadcast_convex_forward
    cost_volume._LocalCorrelation.backward = row_by_row_correlation_backward
    DepthwiseConv2d.forward, schedule.FUSED_ADAMW = nn.Conv2d.forward, False
    try:
        yield
    finally:
        (census.SoftHamming, ConvexUpsampler.forward, cost_volume._LocalCorrelation.backward,
         DepthwiseConv2d.forward, schedule.FUSED_ADAMW) = shipped


def depthwise_variants(pairs: int, crop: tuple[int, int], images: int, view: tuple[int, int]):
    """Every depthwise convolution of the tiny encoder in one training step: each ConvNeXt block's on the
    2 * pairs frames at `crop` and on the 2 * images views at `view` (random inputs, the weights at initialisation)."""
    torch.manual_seed(0)
    encoder = MCJEPA(tiny().model).encoder
    g = torch.Generator().manual_seed(3)
    calls = []
    for batch, size in ((2 * pairs, crop), (2 * images, view)):
        for stage, stride in zip(encoder.stages, encoder.strides[1:]):
            for block in stage:
                x = torch.randn(batch, block.dwconv.in_channels, size[0] // stride, size[1] // stride, generator=g)
                calls.append((block.dwconv, x.requires_grad_()))

    def run(forward):
        def fn():
            outs, grads = [], []
            for conv, x in calls:
                out = forward(conv, x)
                grads += torch.autograd.grad(out.square().mean(), (x, conv.weight))
                outs.append(out.detach().flatten())
            return torch.cat(outs), torch.cat([grad.flatten() for grad in grads])
        return fn

    return [("hand-written backward (shipped)", run(DepthwiseConv2d.forward)),
            ("nn.Conv2d autograd (before)", run(nn.Conv2d.forward))]


def convex_variants(pairs: int, crop: tuple[int, int]):
    """The tiny preset's convex upsampler (x4 from the stride-4 level, both directions) on random inputs."""
    torch.manual_seed(0)
    upsampler = MCJEPA(tiny().model).upsampler  # built as the tiny model builds it
    if upsampler is None:
        raise ValueError("the tiny preset does not upsample its flow with ConvexUpsampler")
    channels, factor = upsampler.mask[0].in_channels - 2, upsampler.factor
    torch.nn.init.normal_(upsampler.mask[-1].weight, std=0.1)  # trained-like, not the uniform start
    g = torch.Generator().manual_seed(2)
    size = (crop[0] // factor, crop[1] // factor)
    features = torch.randn(2 * pairs, channels, *size, generator=g)
    flow = torch.randn(2 * pairs, 2, *size, generator=g).requires_grad_()

    def run(forward):
        def fn():
            up = forward(upsampler, features, flow)
            (grad,) = torch.autograd.grad(up.square().mean(), flow)
            return up.detach(), grad
        return fn

    return [("per flow component (shipped)", run(ConvexUpsampler.forward)),
            ("one broadcast product (before)", run(broadcast_convex_forward))]


def flow_head_variants(pairs: int, crop: tuple[int, int]):
    """The tiny flow head on random pyramids (both directions: batch 2 * pairs), contiguous vs channels_last."""
    cfg = tiny().model
    channels_by_stride = dict(zip((2, 4, 8, 16, 32), (cfg.encoder.stem_dim,) + tuple(cfg.encoder.dims)))
    channels = tuple(channels_by_stride[s] for s in cfg.flow.strides)
    torch.manual_seed(0)
    head = FlowHead(cfg.flow, channels)
    shapes = [(2 * pairs, c, crop[0] // s, crop[1] // s) for c, s in zip(channels, cfg.flow.strides)]
    g = torch.Generator().manual_seed(1)
    pyramids = [[torch.randn(shape, generator=g) for shape in shapes] for _ in range(2)]

    def run(layout):
        model = FlowHead(cfg.flow, channels)
        model.load_state_dict(head.state_dict())
        model = model.to(memory_format=layout)
        f1, f2 = ([x.contiguous(memory_format=layout).requires_grad_() for x in p] for p in pyramids)

        def fn():
            flows = model(f1, f2)
            loss = sum(flow.square().mean() for flow in flows)
            grads = torch.autograd.grad(loss, f1[-1:])
            return flows[-1].detach().contiguous(), grads[0].contiguous()
        return fn

    return [("contiguous (shipped)", run(torch.contiguous_format)), ("channels_last", run(torch.channels_last))]


def time_variants(variants, rounds: int) -> list[tuple[str, float, float]]:
    """(name, median ms, max |difference| from the first variant's outputs) over `rounds` interleaved rounds."""
    outputs = [fn() for _, fn in variants]  # warm-up, and the outputs compared
    times = {name: [] for name, _ in variants}
    for _ in range(rounds):
        for name, fn in variants:
            start = time.perf_counter()
            fn()
            times[name].append(1e3 * (time.perf_counter() - start))
    rows = []
    for (name, _), out in zip(variants, outputs):
        diff = max(float((a - b).abs().max()) for a, b in zip(out, outputs[0]))
        rows.append((name, statistics.median(times[name]), diff))
    return rows


def print_table(title: str, rows: list[tuple[str, float, float]]) -> None:
    base = rows[0][1]
    print(f"\n{title}\n| variant | ms (fwd + bwd) | vs the first | max abs difference |\n|---|---|---|---|")
    for name, ms, diff in rows:
        print(f"| {name} | {ms:.1f} | {ms / base:.2f}x | {diff:.2g} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = tiny()
    pairs, crop = cfg.train.batch_size, tuple(cfg.data.crop)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {args.rounds} rounds")
    print_table(f"census distance, {2 * pairs} grey maps of {crop[0]}x{crop[1]}, radius {cfg.loss.census_radius}",
                time_variants(census_variants(2 * pairs, crop, cfg.loss.census_radius), args.rounds))
    print_table(f"convex upsampling of the tiny finest flow to the image, {pairs} pairs both ways",
                time_variants(convex_variants(pairs, crop), args.rounds))
    print_table(f"cost volume of the tiny flow head, {pairs} pairs both ways, radius {cfg.model.flow.radius}",
                time_variants(cost_volume_variants(pairs, crop), args.rounds))
    print_table(f"depthwise 7x7 convolutions of the tiny encoder, {2 * pairs} frames at {crop[0]}x{crop[1]} and "
                f"{2 * cfg.train.image_batch_size} views at {cfg.data.image_size[0]}x{cfg.data.image_size[1]}",
                time_variants(depthwise_variants(pairs, crop, cfg.train.image_batch_size,
                                                 tuple(cfg.data.image_size)), args.rounds))
    print_table(f"flow head of the tiny preset, {pairs} pairs both ways at {crop[0]}x{crop[1]}",
                time_variants(flow_head_variants(pairs, crop), args.rounds))


if __name__ == "__main__":
    main()
