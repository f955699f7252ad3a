"""Throughput of one MC-JEPA training step (the trainer's `Objective`: forward_flow + flow_loss + embed x 2 +
ssl_loss, backward, the trainer's AdamW step) on random data, per preset:

    python benchmarks/bench_train.py --preset tiny            # CPU, < 1 min
    python benchmarks/bench_train.py --preset paper           # CPU: 2 pairs at 128x256 + 4 views at 64x64
    python benchmarks/bench_train.py --preset both --device cuda   # GPU: the presets' full batch and sizes

Reported per preset: model FLOPs per step (torch.utils.flop_counter.FlopCounterMode over forward + backward: it
counts matmuls and convolutions only, the usual MFU convention; grouped-conv backward corrected, see
`conv_backward_flops`; the cost volume's multiply-adds are elementwise
and are shown separately, analytically), steps/s and images/s (images = 2 frames per pair + 2 views per still)
over timed steps after warm-up (the median of `--rounds` rounds; the rows of a preset, `--set` and
`--kernels-before`, take turns within each round), peak memory (CPU: peak RSS (VmHWM) of the process, reset just
before the timed steps via /proc/self/clear_refs; CUDA: torch.cuda.max_memory_allocated), achieved FLOP/s and MFU
against `--peak-tflops` (default: this machine's measured matmul peak, fp32 or bf16 as the step runs).
Data loading and augmentation are not included: this is the model step alone.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing the kit

from mcjepa.config import Config, apply_overrides, preset  # noqa: E402
from mcjepa.models.mcjepa import MCJEPA  # noqa: E402
from mcjepa.train.schedule import build_optimizer  # noqa: E402
from mcjepa.train.trainer import Objective  # noqa: E402

from bench_kernels import before_kernels  # noqa: E402  (beside this script)

aten = torch.ops.aten


def conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """FLOPs of aten.convolution_backward with grouped convolutions counted right: each requested gradient (input,
    weight) costs as much as the forward, 2 * N * spatial * prod(w_shape) with w_shape = (C_out, C_in / groups, k..)
    (spatial = output positions, or input positions for a transposed conv). torch 2.13's own formula ignores
    `groups`, so ConvNeXt's depthwise 7x7 backward was counted `groups` times too large (33x the forward instead of
    2x for 32 groups; fixed upstream in pytorch/pytorch#183405)."""
    spatial = x_shape[2:] if transposed else grad_out_shape[2:]
    forward = 2 * grad_out_shape[0] * math.prod(spatial) * math.prod(w_shape)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def flop_counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping={aten.convolution_backward: conv_backward_flops})


# CPU workloads: small enough for 1-2 cores (the paper preset's full batch would take minutes per step)
CPU_WORKLOAD = {"tiny": None, "paper": dict(pairs=1, crop=(128, 256), images=4, view=(64, 64))}
# (warm-up, timed) steps when not given: a paper-preset step takes ~15 s on one CPU core
CPU_STEPS = {"tiny": (2, 5), "paper": (1, 2)}


@dataclass
class Workload:
    pairs: int
    crop: tuple[int, int]
    images: int
    view: tuple[int, int]

    @property
    def images_per_step(self) -> int:
        return 2 * self.pairs + 2 * self.images


def workload_for(cfg: Config, name: str, device: torch.device, pairs: int | None = None,
                 images: int | None = None) -> Workload:
    """The preset's own batch and sizes, except the paper preset on the CPU (CPU_WORKLOAD); pairs/images override."""
    small = CPU_WORKLOAD.get(name) if device.type == "cpu" else None
    work = Workload(**small) if small else Workload(cfg.train.batch_size, tuple(cfg.data.crop),
                                                    cfg.train.image_batch_size, tuple(cfg.data.image_size))
    work.pairs, work.images = pairs or work.pairs, images or work.images
    return work


def random_batch(work: Workload, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    frames = {k: torch.rand(work.pairs, 3, *work.crop, generator=g).to(device) for k in ("frame1", "frame2")}
    views = tuple(torch.rand(work.images, 3, *work.view, generator=g).to(device) for _ in range(2))
    return frames, views


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, amp: str):
    if device.type == "cuda" and amp == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def measure_peak_tflops(device: torch.device, dtype: torch.dtype = torch.float32, seconds: float = 1.0) -> float:
    """Best TFLOP/s of a square matmul loop (n = 1024 on CPU, 8192 on CUDA) over ~`seconds`."""
    n = 8192 if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    torch.matmul(a, b)
    sync(device)
    best, spent = 0.0, 0.0
    while spent < seconds:
        start = time.perf_counter()
        for _ in range(5):
            torch.matmul(a, b)
        sync(device)
        elapsed = time.perf_counter() - start
        spent += elapsed
        best = max(best, 5 * 2 * n**3 / elapsed / 1e12)
    return best


def cost_volume_flops(cfg: Config, model: MCJEPA, work: Workload) -> float:
    """Analytic multiply-adds of the cost volumes (fwd + ~2x bwd) that FlopCounterMode does not see: per level,
    2 * (2r+1)^2 * C_l * h_l * w_l * (2 * pairs) for the forward."""
    size = (2 * cfg.model.flow.radius + 1) ** 2
    total = 0.0
    for stride, level in zip(cfg.model.flow.strides, model.flow_levels):
        channels = model.encoder.channels[level]
        total += 2 * size * channels * (work.crop[0] // stride) * (work.crop[1] // stride) * 2 * work.pairs
    return 3 * total


class PeakMemory:
    """Peak memory in bytes over a block: CUDA max_memory_allocated, or the process's peak RSS (VmHWM) reset at
    the start through /proc/self/clear_refs (Linux); psutil RSS after the block as a fallback."""

    def __init__(self, device: torch.device):
        self.device, self.peak, self.before = device, 0, 0

    @staticmethod
    def _status(field: str) -> int | None:
        try:
            status = Path("/proc/self/status").read_text()
            return 1024 * int(re.search(field + r":\s+(\d+) kB", status).group(1))
        except (OSError, AttributeError):
            return None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.before = torch.cuda.memory_allocated(self.device)
        else:
            self.before = self._status("VmRSS") or 0
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self.peak = self._status("VmHWM")
            if self.peak is None:
                import psutil

                self.peak = psutil.Process().memory_info().rss
        return False


def prepare_preset(name: str, device: torch.device, amp: str, pairs: int | None = None, images: int | None = None,
                   overrides: list[str] | None = None, kernels_before: bool = False) -> dict:
    """One preset (with dotted `overrides`; with `kernels_before`, the kernels and optimiser that the current ones
    replaced, `bench_kernels.before_kernels`): the model, the trainer's `Objective` and optimiser on a random
    batch, FLOPs per step (untimed), and `step`, one training step (forward, backward, optimiser step)."""
    cfg = apply_overrides(preset(name), overrides or [])
    work = workload_for(cfg, name, device, pairs, images)
    kernels = before_kernels if kernels_before else contextlib.nullcontext
    torch.manual_seed(0)
    model = MCJEPA(cfg.model).to(device).train()
    objective = Objective(model, cfg)
    with kernels():
        optimizer, _ = build_optimizer(model, cfg)  # the trainer's AdamW (fused unless kernels_before)
    frames, views = random_batch(work, device)

    def step():
        with kernels(), autocast(device, amp):
            loss, _ = objective(frames, views, True)
        optimizer.zero_grad(set_to_none=True)
        with kernels():
            loss.backward()
        optimizer.step()

    with kernels(), flop_counter() as counter:  # forward + backward, untimed
        with autocast(device, amp):
            loss, _ = objective(frames, views, True)
        loss.backward()
    optimizer.zero_grad(set_to_none=True)
    # per-module split from a forward-only count: FlopCounterMode's module tracker misattributes backward ops
    with kernels(), torch.no_grad(), flop_counter() as forward_counter, autocast(device, amp):
        objective(frames, views, True)
    by_module = forward_counter.get_flop_counts()
    parts = {
        part: sum(by_module.get(f"Objective.model.{part}", {}).values())
        for part in ("encoder", "flow_head", "expander")
    }
    parts = {part: v / max(forward_counter.get_total_flops(), 1) for part, v in parts.items()}
    return {
        "preset": name + ("*" if overrides else "") + ("<" if kernels_before else ""),
        "work": work,
        "params": sum(p.numel() for p in model.parameters()),
        "flops": counter.get_total_flops(),
        "forward_flops": forward_counter.get_total_flops(),
        "flops_by_part": parts,
        "cv_flops": cost_volume_flops(cfg, model, work),
        "step": step,
    }


def time_rows(rows: list[dict], device: torch.device, warmup: int, steps: int, rounds: int) -> list[dict]:
    """Time the rows' steps in turns: each round runs `steps` steps of every row in order, so that a busy
    neighbour slows all of them alike; s/step is the median over the rounds, peak memory the largest."""
    for row in rows:
        for _ in range(warmup):
            row["step"]()
    sync(device)
    seconds = {id(row): [] for row in rows}
    for _ in range(rounds):
        for row in rows:
            with PeakMemory(device) as memory:
                start = time.perf_counter()
                for _ in range(steps):
                    row["step"]()
                sync(device)
                seconds[id(row)].append((time.perf_counter() - start) / steps)
            row["peak_bytes"] = max(row.get("peak_bytes", 0), memory.peak)
            row["base_bytes"] = memory.before
    for row in rows:
        step_s = statistics.median(seconds[id(row)])
        work = row["work"]
        row.update(step_s=step_s, steps_per_s=1 / step_s, images_per_s=work.images_per_step / step_s,
                   flops_per_s=row["flops"] / step_s)
    return rows


def print_table(rows: list[dict], peak_tflops: float, peak_note: str) -> None:
    header = (f"{'preset':>6} | {'pairs@crop + views@size':>26} | {'params':>7} | {'GFLOP/step':>10} | "
              f"{'+CV GFLOP':>9} | {'s/step':>7} | {'steps/s':>7} | {'img/s':>7} | {'peak mem (+step)':>17} | "
              f"{'GFLOP/s':>8} | {'MFU':>6}")
    print(header)
    print("-" * len(header))
    for r in rows:
        w = r["work"]
        shape = f"{w.pairs}@{w.crop[0]}x{w.crop[1]} + {w.images}@{w.view[0]}x{w.view[1]}"
        mfu = r["flops_per_s"] / (peak_tflops * 1e12)
        print(
            f"{r['preset']:>6} | {shape:>26} | {r['params'] / 1e6:6.1f}M | {r['flops'] / 1e9:10.2f} | "
            f"{r['cv_flops'] / 1e9:9.2f} | {r['step_s']:7.3f} | {r['steps_per_s']:7.2f} | {r['images_per_s']:7.1f} | "
            f"{r['peak_bytes'] / 2**30:6.2f}Gi (+{(r['peak_bytes'] - r['base_bytes']) / 2**30:5.2f}Gi) | "
            f"{r['flops_per_s'] / 1e9:8.2f} | {100 * mfu:5.1f}%"
        )
    for r in rows:
        shares = ", ".join(f"{part} {100 * v:.0f}%" for part, v in r["flops_by_part"].items())
        print(
            f"{r['preset']}: forward {r['forward_flops'] / 1e9:.2f} GFLOP "
            f"(backward = {r['flops'] / r['forward_flops'] - 1:.2f}x "
            f"forward), forward FLOPs by module: {shares}"
        )
    print("peak mem: CPU peak RSS of the process over the timed steps (+: above the RSS before them), CUDA "
          "max_memory_allocated (+: above the allocation before them).")
    print(f"MFU against a peak of {peak_tflops:.3f} TFLOP/s ({peak_note}). GFLOP/step: FlopCounterMode, forward + "
          f"backward (matmul/conv); +CV: cost-volume multiply-adds, analytic, not in GFLOP/step nor in MFU.")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=["tiny", "paper", "both"], default="tiny")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 5; paper on CPU: 2)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 2; paper on CPU: 1)")
    parser.add_argument("--pairs", type=int, default=None, help="frame pairs per step (default: the preset's)")
    parser.add_argument("--images", type=int, default=None, help="still images per step (default: the preset's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="also measure each preset with these config overrides, in the same run (a second row, "
                             "e.g. the previous recipe's loss.occlusion_method=fb beside the current one)")
    parser.add_argument("--kernels-before", action="store_true",
                        help="also measure each preset (and each --set row) with the kernels and optimiser the "
                             "current ones replaced (the every-shift census loop, the broadcast convex upsampling, "
                             "nn.Conv2d's depthwise backward, per-parameter AdamW: bench_kernels.before_kernels), in "
                             "the same run, taking turns (rows marked <)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of timed steps; the rows take turns within each round (median over rounds)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: shared machine)")
    parser.add_argument("--amp", choices=["none", "bf16"], default=None,
                        help="bf16 autocast on CUDA (default: bf16 on CUDA, none on CPU)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="peak for MFU; default: measured matmul peak of this machine in the step's dtype")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = args.amp or ("bf16" if device.type == "cuda" else "none")
    names = ["tiny", "paper"] if args.preset == "both" else [args.preset]

    if args.peak_tflops is None:
        dtype = torch.bfloat16 if amp == "bf16" and device.type == "cuda" else torch.float32
        peak = measure_peak_tflops(device, dtype)
        note = f"measured {str(dtype).replace('torch.', '')} matmul peak, {device}, {torch.get_num_threads()} thread(s)"
    else:
        peak, note = args.peak_tflops, "given"
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU thread(s), amp {amp}; "
          f"peak matmul {peak:.3f} TFLOP/s ({note})")
    rows = []
    for name in names:
        warmup, steps = CPU_STEPS[name] if device.type == "cpu" else (3, 10)
        warmup, steps = args.warmup if args.warmup is not None else warmup, args.steps or steps
        variants = [(overrides, before) for overrides in ([None, args.set] if args.set else [None])
                    for before in ([False, True] if args.kernels_before else [False])]
        print(f"{name}: {len(variants)} row(s), {warmup} warm-up + {args.rounds} rounds of {steps} timed steps "
              f"each, in turns ...", flush=True)
        prepared = [prepare_preset(name, device, amp, args.pairs, args.images, overrides, before)
                    for overrides, before in variants]
        rows += time_rows(prepared, device, warmup, steps, args.rounds)
    print_table(rows, peak, note)
    if args.set:
        print(f"* with {' '.join(args.set)}")
    if args.kernels_before:
        print("< with the kernels and optimiser the current ones replaced (every-shift census, broadcast convex "
              "upsampling, row-by-row cost-volume backward, nn.Conv2d's depthwise backward, per-parameter AdamW)")
    for name in names:
        by_preset = {row["preset"]: row["step_s"] for row in rows}
        others = [(other, s) for other, s in by_preset.items() if other.startswith(name) and other != name]
        if others:
            ratios = ", ".join(f"{other} / {name} = {s / by_preset[name]:.2f}x" for other, s in others)
            print(f"{name}: s/step {ratios}")
    return rows


if __name__ == "__main__":
    main()
