"""Optimiser and learning-rate schedule: AdamW with two learning rates, linear warm-up then cosine."""

from __future__ import annotations

import math

import torch

from ..config import Config


def param_groups(model: torch.nn.Module, cfg: Config) -> list[dict]:
    """Encoder + expander at lr_encoder, flow head and its convex upsampler at lr_flow; no weight decay on 1-D
    params (norms, biases)."""
    groups: dict[tuple[str, bool], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "flow" if name.startswith(("flow_head.", "upsampler.")) else "encoder"
        groups.setdefault((part, param.ndim > 1), []).append(param)
    lr = {"encoder": cfg.train.lr_encoder, "flow": cfg.train.lr_flow}
    return [{"params": params, "lr": lr[part], "weight_decay": cfg.train.weight_decay if decay else 0.0,
             "name": f"{part}/{'decay' if decay else 'no_decay'}"} for (part, decay), params in sorted(groups.items())]


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Multiplier of the base lr: linear 0 -> 1 over `warmup_steps`, then cosine 1 -> min_ratio at the end."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# One fused kernel per parameter group instead of ~10 small ops per parameter: the same AdamW update (to float
# rounding): 0.379 -> 0.372 s for the tiny MC-JEPA step on one CPU thread (measured A/B, alternating rounds;
# `benchmarks/bench_train.py --kernels-before` times it with the other replaced kernels).
FUSED_ADAMW = True


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """`optimizer.load_state_dict(state)`, keeping the optimiser's own `fused` choice: a state saved by the
    per-parameter AdamW (checkpoints from before `FUSED_ADAMW`) would otherwise switch the fused kernel off."""
    fused = [group.get("fused") for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, choice in zip(optimizer.param_groups, fused):
        group["fused"] = choice


def build_optimizer(model: torch.nn.Module, cfg: Config):
    """AdamW over `param_groups` (fused: `FUSED_ADAMW`) and its warm-up + cosine `LambdaLR`."""
    optimizer = torch.optim.AdamW(param_groups(model, cfg), betas=(0.9, 0.999), fused=FUSED_ADAMW)
    warmup = int(cfg.train.warmup_epochs * cfg.train.steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, warmup, cfg.total_steps, cfg.train.min_lr_ratio))
    return optimizer, scheduler
