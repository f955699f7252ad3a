"""One trainer for M-JEPA (flow only), VICReg (content only) and MC-JEPA (both, shared encoder).

Every step's randomness is a function of (seed, step): batch indices come from a per-epoch permutation,
crops and augmentations run on a forked RNG seeded by `step_seed(seed, step)`, and the global RNG (drop path)
is saved in the checkpoint. So `--resume` continues bit-identically on the CPU, and a run can be stopped at
any time and continued from its last checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from ..config import Config, to_dict, validate
from ..data.augment import FlowAugment, VICRegAugConfig, VICRegViews, step_seed
from ..data.registry import collate_images, collate_pairs, flow_dataset, flow_mix, image_dataset
from ..eval.flow_metrics import evaluate_flow_dataset
from ..eval.runners import flow_fn
from ..losses.total import feature_std, flow_loss, ssl_loss
from ..models.mcjepa import MCJEPA
from ..utils import atomic_write, seed_everything
from .checkpoint import RESUME_KEYS, read_checkpoint, save_checkpoint, set_rng_state
from .distributed import gather_batch, init_distributed, is_main
from .metrics_log import MetricsLog, truncate_metrics
from .schedule import build_optimizer


class TrainingDiverged(RuntimeError):
    """Raised when a loss term is NaN/Inf, the features blow up (`train.max_feature_norm`) or collapse
    (`train.min_feature_std`); the last good checkpoint is kept."""

    def __init__(self, step: int, message: str):
        super().__init__(f"step {step}: {message}")
        self.step = step


class StepBatches:
    """Index lists for steps [start, end): the global batch of step s is a slice of the permutation of
    epoch s // steps_per_pass (seeded by seed + epoch); each rank takes its own sub-slice."""

    def __init__(self, length: int, batch_size: int, seed: int, start: int, end: int, rank: int = 0, world: int = 1):
        self.length, self.batch, self.seed = length, batch_size, seed
        self.start, self.end, self.rank, self.world = start, end, rank, world
        self.per_pass = length // (batch_size * world)
        if self.per_pass == 0:
            raise ValueError(f"dataset of {length} samples is smaller than one global batch ({batch_size * world})")

    def indices(self, step: int) -> list[int]:
        epoch, position = divmod(step, self.per_pass)
        order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed + epoch))
        first = position * self.batch * self.world + self.rank * self.batch
        return order[first:first + self.batch].tolist()

    def __iter__(self):
        return (self.indices(step) for step in range(self.start, self.end))

    def __len__(self) -> int:
        return self.end - self.start


class Objective(nn.Module):
    """The per-step loss as one module, so that DistributedDataParallel sees a single forward."""

    def __init__(self, model: MCJEPA, cfg: Config):
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, frames: dict | None, views: tuple | None, occlusion: bool = True) -> tuple[torch.Tensor, dict]:
        loss = torch.zeros((), device=next(self.model.parameters()).device)
        terms: dict[str, torch.Tensor] = {}
        if frames is not None:
            out = self.model.forward_flow(frames["frame1"], frames["frame2"])
            flow_total, flow_terms = flow_loss(out, frames["frame1"], frames["frame2"], self.cfg.loss, occlusion)
            loss = loss + flow_total
            terms.update(flow_terms)
            terms.update(feature_std(out.features1))
            terms["feat_norm/max"] = max(f.detach().float().norm(dim=1).mean() for f in out.features1)
        if views is not None:
            embedding1, _ = self.model.embed(views[0])
            embedding2, _ = self.model.embed(views[1])
            ssl_total, ssl_terms = ssl_loss(gather_batch(embedding1), gather_batch(embedding2), self.cfg.loss)
            weight = self.cfg.loss.balance if self.cfg.train.method == "mc-jepa" else 1.0
            loss = loss + weight * ssl_total
            terms.update(ssl_terms)
        terms["loss/total"] = loss.detach()
        return loss, terms


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    last: dict
    checkpoint: Path
    seconds: float
    model: MCJEPA  # the trained model (unwrapped from DDP), in train mode


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; a CUDA device without a GPU is a ValueError naming train.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"train.device={name!r} but this machine has {torch.cuda.device_count()} usable CUDA "
                         f"GPU(s): use train.device=auto or cpu")
    return device


def _loader(dataset: Dataset, batches: StepBatches, workers: int) -> DataLoader:
    return DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=list,
                      persistent_workers=False, pin_memory=torch.cuda.is_available())


def _check_finite(terms: dict[str, torch.Tensor], step: int, cfg: Config) -> None:
    for name, value in terms.items():
        if not torch.isfinite(value).all():
            raise TrainingDiverged(step, f"loss term {name!r} is {value.item()} (NaN/Inf); training stopped, "
                                         f"the last good checkpoint is kept")
    norm = terms.get("feat_norm/max")
    if norm is not None and norm.item() > cfg.train.max_feature_norm:
        raise TrainingDiverged(step, f"mean feature norm {norm.item():.3g} exceeds train.max_feature_norm="
                                     f"{cfg.train.max_feature_norm}: the features are exploding; training stopped")
    floor = cfg.train.min_feature_std
    stds = {k: v.item() for k, v in terms.items() if k.startswith("feat_std/")}
    if floor > 0 and stds and min(stds.values()) < floor:
        level, value = min(stds.items(), key=lambda item: item[1])
        raise TrainingDiverged(step, f"feature std of flow level {level.split('/')[1]} is {value:.3g}, below "
                                     f"train.min_feature_std={floor}: the features are collapsing to a constant; "
                                     f"training stopped, the last good checkpoint is kept")


def flow_enabled(cfg: Config, step: int) -> bool:
    """M-JEPA always; MC-JEPA from `flow_start_epoch` on (SSL only before, as in the paper)."""
    if cfg.train.method == "vicreg":
        return False
    if cfg.train.method == "m-jepa":
        return True
    return step / cfg.train.steps_per_epoch >= cfg.train.flow_start_epoch


def streams_for_step(cfg: Config, step: int) -> tuple[bool, bool]:
    """(use the video batch, use the image batch) at `step`, per method, flow start and sampling mode."""
    use_flow = flow_enabled(cfg, step)
    use_ssl = cfg.train.method in ("vicreg", "mc-jepa")
    if use_flow and use_ssl and cfg.train.sampling == "alternate":
        return step % 2 == 0, step % 2 == 1
    return use_flow, use_ssl


def train(cfg: Config, out_dir: str | Path, resume: bool = False, progress: bool = True,
          stop_at: int | None = None, eval_every: int | None = None) -> TrainResult:
    """Train `cfg.train.method` for `cfg.total_steps` steps (or stop after `stop_at`), writing to `out_dir`:
    config.json, metrics.jsonl (one row per `log_every` steps) and checkpoint.pt (every `checkpoint_every`
    steps and at the end, atomically). `resume=True` continues from out_dir/checkpoint.pt.
    `eval_every` > 0 logs the flow EPE on held-out pairs that have ground truth (the embedded data)."""
    validate(cfg)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(20, "the run folder (--out) is a file, not a folder", str(out_dir))
    device = resolve_device(cfg.train.device)
    rank, world = init_distributed(device.type)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    seed_everything(cfg.train.seed + rank)

    model = MCJEPA(cfg.model).to(device)
    optimizer, scheduler = build_optimizer(model, cfg)
    start, rng = 0, None
    checkpoint_path = out_dir / "checkpoint.pt"
    if resume:
        state = read_checkpoint(checkpoint_path, require=RESUME_KEYS)
        saved = state["config"]
        if saved != to_dict(cfg):
            changed = [k for k in saved if saved[k] != to_dict(cfg)[k]]
            raise ValueError(f"{checkpoint_path}: the checkpoint was trained with a different config "
                             f"(sections {changed}); resume with the same config or use a new --out")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng, start = state["rng"], state["step"]  # restored after the data iterators draw their seeds
    elif checkpoint_path.exists():
        raise FileExistsError(f"{checkpoint_path} exists: pass resume=True (--resume) or choose a new out dir")

    if world > 1 and device.type == "cuda":
        # the expander's BatchNorm sees the global batch, as in VICReg (SyncBatchNorm is CUDA-only; on CPU
        # DDP each rank normalises its own batch)
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    objective: nn.Module = Objective(model, cfg)
    if world > 1:
        objective = nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)

    total = cfg.total_steps if stop_at is None else min(stop_at, cfg.total_steps)
    needs_flow = cfg.train.method in ("m-jepa", "mc-jepa")
    needs_images = cfg.train.method in ("vicreg", "mc-jepa")
    data = cfg.data
    flow_iter = image_iter = None
    if needs_flow:
        pairs = flow_mix(data, frames_only=True)
        flow_iter = iter(_loader(pairs, StepBatches(len(pairs), cfg.train.batch_size, data.seed, start, total,
                                                    rank, world), cfg.train.num_workers))
    if needs_images:
        stills = image_dataset(data, images_only=True)
        image_iter = iter(_loader(stills, StepBatches(len(stills), cfg.train.image_batch_size, data.seed + 7919,
                                                      start, total, rank, world), cfg.train.num_workers))
    flow_augment = FlowAugment(crop_size=None, hflip_p=0.5, jitter_p=0.8, jitter=(0.2, 0.2, 0.2, 0.05))
    aug_cfg = VICRegAugConfig.tiny() if min(data.image_size) < 128 else VICRegAugConfig()
    views_fn = VICRegViews(data.image_size, aug_cfg)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and cfg.train.amp == "bf16"
                else torch.autocast("cpu", enabled=False))
    val_pairs = None
    if eval_every and needs_flow and is_main():
        held_out = flow_dataset(parse_first(data.flow_datasets), data, split="val")
        val_pairs = [held_out[i] for i in range(min(len(held_out), VALIDATION_PAIRS))]  # rendered/read once

    log = MetricsLog(out_dir / "metrics.jsonl") if is_main() else None
    if is_main():
        out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            truncate_metrics(out_dir / "metrics.jsonl", start)
        else:  # a fresh run in a folder left by a run that died before its first checkpoint
            (out_dir / "metrics.jsonl").unlink(missing_ok=True)
        with atomic_write(out_dir / "config.json", "w") as handle:
            json.dump(to_dict(cfg), handle, indent=2)

    if rng is not None:  # building the loaders above drew from the global RNG: restore the saved state now
        set_rng_state(rng)
    bar = None
    if progress and is_main():
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc=f"train {cfg.train.method}", dynamic_ncols=True)
    began, last = time.time(), {}
    model.train()
    for step in range(start, total):
        generator = torch.Generator().manual_seed(step_seed(cfg.train.seed, step))
        video = next(flow_iter) if flow_iter is not None else None
        stills = next(image_iter) if image_iter is not None else None
        use_flow, use_ssl = streams_for_step(cfg, step)
        frames = views = None
        if use_flow:
            batch = collate_pairs(video, data.crop, generator)
            batch = flow_augment({"frame1": batch["frame1"], "frame2": batch["frame2"]},
                                 seed=step_seed(cfg.train.seed + 1, step))
            frames = {k: batch[k].to(device, non_blocking=True) for k in ("frame1", "frame2")}
        if use_ssl:
            base = collate_images(stills, data.image_base, generator).to(device, non_blocking=True)
            views = views_fn(base, seed=step_seed(cfg.train.seed + 2, step))
        with autocast:
            occlusion = step / cfg.train.steps_per_epoch >= cfg.loss.occlusion_start_epoch
            loss, terms = objective(frames, views, occlusion)
        _check_finite(terms, step, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        if not torch.isfinite(grad_norm):
            raise TrainingDiverged(step, f"gradient norm is {grad_norm.item()}; training stopped, the last good "
                                         f"checkpoint is kept")
        optimizer.step()
        scheduler.step()
        done = step + 1

        if is_main():
            if done % cfg.train.log_every == 0 or done == total:
                last = {"step": done, "epoch": done / cfg.train.steps_per_epoch, **{k: v.item() for k, v in terms.items()},
                        "grad_norm": grad_norm.item(), "lr/encoder": scheduler.get_last_lr()[0],
                        "seconds": time.time() - began}
                if val_pairs is not None and (done % eval_every == 0 or done == total):
                    last["val/epe"] = validation_epe(model, val_pairs)
                log.write(last)
            if done % cfg.train.checkpoint_every == 0 or done == total:
                save_checkpoint(checkpoint_path, model, optimizer, scheduler, done, cfg)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{terms['loss/total'].item():.3f}")
    if bar is not None:
        bar.close()
    return TrainResult(out_dir=out_dir, steps=total, last=last, checkpoint=checkpoint_path,
                       seconds=time.time() - began, model=model)


def parse_first(entries: tuple[str, ...]) -> str:
    return entries[0].partition("*")[0]


VALIDATION_PAIRS = 16  # held-out pairs behind the logged val/epe


@torch.no_grad()
def validation_epe(model: MCJEPA, pairs: Dataset, max_samples: int = VALIDATION_PAIRS) -> float:
    """Mean EPE on held-out pairs with ground truth (eval mode, restored afterwards)."""
    was_training = model.training
    model.eval()
    result = evaluate_flow_dataset(flow_fn(model), pairs, stride=model.stride, max_samples=max_samples, progress=False)
    model.train(was_training)
    return float(result["epe"])

