"""Time `local_cost_volume` (forward, backward) at PWC-like sizes (radius 4, B=4, C 32..128), and the
flow head (forward + backward) at the tiny preset's pyramid sizes.

    python benchmarks/bench_cost_volume.py [--device cpu|cuda] [--threads 1] [--reps 5]

Times are medians over `reps` runs after one warm-up, in milliseconds. Backward = `.sum().backward()` of the
forward output (the forward is not included in the backward time).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing the kit

from mcjepa.config import tiny  # noqa: E402
from mcjepa.models.cost_volume import local_cost_volume  # noqa: E402
from mcjepa.models.flow_head import FlowHead  # noqa: E402

# (B, C, H, W) from anchors.md section 3 ("Measured here", radius 4)
ANCHOR_SIZES = [(4, 32, 32, 64), (4, 64, 32, 64), (4, 128, 16, 32), (4, 64, 64, 128)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn, device: torch.device, reps: int) -> float:
    """Median wall time of fn() in ms over `reps` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def bench_cost_volume(size: tuple[int, int, int, int], radius: int, device: torch.device, reps: int) -> dict:
    """{'fwd_ms', 'bwd_ms'} of local_cost_volume on random (B, C, H, W) features."""
    f1 = torch.randn(size, device=device, requires_grad=True)
    f2 = torch.randn(size, device=device, requires_grad=True)
    forward_ms = time_ms(lambda: local_cost_volume(f1, f2, radius), device, reps)

    def forward_backward():
        local_cost_volume(f1, f2, radius).sum().backward()

    both_ms = time_ms(forward_backward, device, reps)
    return {"fwd_ms": forward_ms, "bwd_ms": max(both_ms - forward_ms, 0.0)}


def bench_flow_head(pairs: int, crop: tuple[int, int], device: torch.device, reps: int) -> dict:
    """Flow head of the tiny preset on random pyramids of a batch of 2 * pairs (both directions), fwd and fwd+bwd."""
    cfg = tiny().model
    strides = cfg.flow.strides
    channels_by_stride = dict(zip((2, 4, 8, 16, 32), (cfg.encoder.stem_dim,) + tuple(cfg.encoder.dims)))
    channels = tuple(channels_by_stride[s] for s in strides)
    head = FlowHead(cfg.flow, channels).to(device)
    batch = 2 * pairs
    shapes = [(batch, c, crop[0] // s, crop[1] // s) for c, s in zip(channels, strides)]
    f1 = [torch.randn(shape, device=device, requires_grad=True) for shape in shapes]
    f2 = [torch.randn(shape, device=device, requires_grad=True) for shape in shapes]
    forward_ms = time_ms(lambda: head(f1, f2), device, reps)

    def forward_backward():
        sum(flow.square().mean() for flow in head(f1, f2)).backward()

    both_ms = time_ms(forward_backward, device, reps)
    return {"shapes": shapes, "fwd_ms": forward_ms, "fwd_bwd_ms": both_ms}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: shared machine)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--radius", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    print(f"local_cost_volume, radius {args.radius} ({(2 * args.radius + 1) ** 2} channels), {device}, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}, median of {args.reps}")
    print(f"{'B, C, H x W':>18} | {'fwd ms':>8} | {'bwd ms':>8}")
    print("-" * 42)
    for size in ANCHOR_SIZES:
        r = bench_cost_volume(size, args.radius, device, args.reps)
        b, c, h, w = size
        print(f"{f'{b}, {c}, {h}x{w}':>18} | {r['fwd_ms']:8.1f} | {r['bwd_ms']:8.1f}")

    cfg = tiny()
    pairs, crop = cfg.train.batch_size, cfg.data.crop
    r = bench_flow_head(pairs, crop, device, args.reps)
    print(f"\nflow head, tiny preset ({pairs} pairs at {crop[0]}x{crop[1]} -> batch {2 * pairs}, radius "
          f"{cfg.model.flow.radius}, levels {[tuple(s[1:]) for s in r['shapes']]})")
    print(f"  forward {r['fwd_ms']:.1f} ms, forward + backward {r['fwd_bwd_ms']:.1f} ms")


if __name__ == "__main__":
    main()
