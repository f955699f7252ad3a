"""One trainer for M-JEPA (flow only), VICReg (content only) and MC-JEPA (both, shared encoder).

Every step's randomness is a function of (seed, step): batch indices come from a per-epoch permutation,
crops and augmentations run on a forked RNG seeded by `step_seed(seed, step)`, and the global RNG (drop path)
is saved in the checkpoint. So `--resume` continues bit-identically on the CPU, and a run can be stopped at
any time and continued from its last checkpoint.

Under torchrun (or a submitit job) the batch sizes of the config are global: each of the N ranks takes 1/N
of every step's batch (`StepBatches`), draws its crops and augmentations from seeds of (seed, step * N + rank)
(with N = 1 the single-process stream), and rank 0 logs the terms averaged over the ranks and writes the
checkpoints. No learning rate is rescaled: the config's lr belongs to its global batch, whatever N is.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..config import Config, DataConfig, from_dict, identity, to_dict, validate
from ..data.augment import ColourViews, FlowAugment, VICRegAugConfig, VICRegViews, step_seed
from ..data.registry import (collate_images, collate_labelled, collate_pairs, flow_dataset, flow_mix, image_dataset,
                             labelled_stills, parse_mix)
from ..eval.flow_metrics import evaluate_flow_dataset
from ..eval.runners import flow_fn
from ..eval.segmentation import IGNORE_INDEX, class_weights
from ..losses.occlusion import occlusion_mask
from ..losses.total import feature_std, flow_loss, ssl_loss
from ..models.checkpoint import load_init_weights, read_checkpoint
from ..models.mcjepa import MCJEPA
from ..utils import atomic_write, seed_everything
from .checkpoint import RESUME_KEYS, save_checkpoint, set_rng_state
from .distributed import (barrier, check_replicas, gather_batch, init_distributed, is_main, local_rank, mean_over_ranks,
                          per_rank)
from .metrics_log import MetricsLog, truncate_metrics
from .schedule import build_optimizer, load_optimizer_state


class TrainingDiverged(RuntimeError):
    """Raised when a loss term is NaN/Inf, the features blow up (`train.max_feature_norm`) or collapse
    (`train.min_feature_std`); the last good checkpoint is kept."""

    def __init__(self, step: int, message: str):
        super().__init__(f"step {step}: {message}")
        self.step, self.message = step, message

    def __reduce__(self):  # pickled by (step, message), so a stop crosses process pools (mcjepa.experiments)
        return type(self), (self.step, self.message)


class StepBatches:
    """Index lists for steps [start, end): the global batch of step s (`batch_size * world` samples) is a
    slice of the permutation of epoch s // steps_per_pass (seeded by seed + epoch); rank r takes its r-th
    sub-slice of `batch_size` samples, so the ranks' batches together are the global batch of one process."""

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

    def forward(self, frames: dict | None, views: tuple | None, occlusion: bool = True,
                labelled: tuple | None = None) -> tuple[torch.Tensor, dict]:
        """frames: {"frame1", "frame2"} (B,3,H,W) for the flow losses; views: two (B,3,h,w) VICReg views;
        labelled: (images (B,3,H,W), class maps (B,H,W) int64, 255 = ignore) for the supervised ceiling."""
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
        if labelled is not None:
            images, labels = labelled
            weight = class_weights(list(labels), self.model.cfg.segmentation_classes,
                                   self.cfg.loss.supervised_class_weights)
            supervised = F.cross_entropy(self.model.segment(images), labels, ignore_index=IGNORE_INDEX,
                                         weight=weight.to(labels.device) if weight is not None else None)
            loss = loss + supervised
            terms["supervised/ce"] = supervised.detach()
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


def _check_finite(terms: dict[str, torch.Tensor], step: int, cfg: Config) -> None:
    for name, value in terms.items():
        if not torch.isfinite(value).all():
            raise TrainingDiverged(step, f"loss term {name!r} is {value.item()} (NaN/Inf); training stopped, "
                                         f"the last good checkpoint is kept")
    norm = terms.get("feat_norm/max")
    if norm is not None and norm.item() > cfg.train.max_feature_norm:
        raise TrainingDiverged(step, f"mean feature norm {norm.item():.3g} exceeds train.max_feature_norm="
                                     f"{cfg.train.max_feature_norm}: the features are exploding; training stopped")
    occluded = terms.get("flow/occluded_fraction")
    if occluded is not None and occluded.item() > cfg.train.max_occluded_fraction:
        raise TrainingDiverged(step, f"the occlusion mask covers {occluded.item():.1%} of the pixels, above "
                                     f"train.max_occluded_fraction={cfg.train.max_occluded_fraction}: the photometric "
                                     f"loss has almost no pixels left and the flow stops learning; bound the mask "
                                     f"(loss.occlusion_max_fraction), start it later (loss.occlusion_start_epoch) or "
                                     f"use loss.occlusion_method='range'; the last good checkpoint is kept")
    floor = cfg.train.min_feature_std
    stds = {k: v.item() for k, v in terms.items() if k.startswith("feat_std/")}
    if floor > 0 and stds and min(stds.values()) < floor:
        level, value = min(stds.items(), key=lambda item: item[1])
        raise TrainingDiverged(step, f"feature std of flow level {level.split('/')[1]} is {value:.3g}, below "
                                     f"train.min_feature_std={floor}: the features are collapsing to a constant; "
                                     f"training stopped, the last good checkpoint is kept")


def flow_enabled(cfg: Config, step: int) -> bool:
    """M-JEPA always; MC-JEPA from `flow_start_epoch` on (SSL only before, as in the paper); VICReg and the
    supervised ceiling never."""
    if cfg.train.method in ("vicreg", "supervised"):
        return False
    if cfg.train.method == "m-jepa":
        return True
    return step / cfg.train.steps_per_epoch >= cfg.train.flow_start_epoch


def occlusion_enabled(cfg: Config, step: int) -> bool:
    """Occlusion masking from `loss.occlusion_start_epoch` epochs after the flow starts (`flow_enabled`), so
    that the mask never meets a flow that has not trained yet, whatever `train.flow_start_epoch` is."""
    flow_start = cfg.train.flow_start_epoch if cfg.train.method == "mc-jepa" else 0.0
    return step / cfg.train.steps_per_epoch - flow_start >= cfg.loss.occlusion_start_epoch


def streams_for_step(cfg: Config, step: int) -> tuple[bool, bool]:
    """(use the video batch, use the image batch) at `step`, per method, flow start and sampling mode."""
    use_flow = flow_enabled(cfg, step)
    use_ssl = cfg.train.method in ("vicreg", "mc-jepa", "supervised")
    if use_flow and use_ssl and cfg.train.sampling == "alternate":
        return step % 2 == 0, step % 2 == 1
    return use_flow, use_ssl


def setup_device(cfg: Config) -> tuple[torch.device, int, int]:
    """(device, rank, world size): `train.device` resolved, the process group joined under torchrun, and the
    global RNGs seeded with train.seed + rank. On CUDA each rank takes the GPU of its LOCAL_RANK (modulo the
    visible GPUs: a submitit task may see only its own)."""
    device = resolve_device(cfg.train.device)
    rank, world = init_distributed(device.type)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank() % torch.cuda.device_count())
        torch.cuda.set_device(device)
    seed_everything(cfg.train.seed + rank)
    return device, rank, world


def resume_state(path: Path, cfg: Config, model: nn.Module, optimizer, scheduler) -> tuple[int, dict]:
    """Load model, optimiser and scheduler from the checkpoint at `path`; returns (its step, its RNG state).
    A checkpoint of another config (hash-neutral knobs aside, `config.identity`) is a ValueError."""
    state = read_checkpoint(path, require=RESUME_KEYS)
    saved, current = identity(from_dict(state["config"])), identity(cfg)
    if saved != current:
        changed = [k for k in current if saved.get(k) != current[k]]
        raise ValueError(f"{path}: the checkpoint was trained with a different config "
                         f"(sections {changed}); resume with the same config or use a new --out")
    model.load_state_dict(state["model"])
    load_optimizer_state(optimizer, state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state["step"], state["rng"]


def wrap_objective(model: MCJEPA, cfg: Config, device: torch.device, world: int) -> nn.Module:
    """The per-step loss module; under DDP with SyncBatchNorm on CUDA, so that the expander's BatchNorm sees
    the global batch as in VICReg (on CPU DDP each rank normalises its own batch)."""
    if world > 1 and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    objective: nn.Module = Objective(model, cfg)
    if world > 1:
        objective = nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
    return objective


def data_streams(cfg: Config, start: int, total: int, rank: int, world: int) -> tuple:
    """(iterator of frame-pair sample lists, iterator of still sample lists) for steps [start, total); None for
    a stream the method does not use. Each batch is a function of (seed, step, rank, world) only
    (`StepBatches`): rank `rank`'s share of the global `train.batch_size` / `train.image_batch_size`.
    A global batch that `world` does not divide is a ValueError naming the key."""
    data, train_cfg = cfg.data, cfg.train

    def stream(dataset: Dataset, batch_size: int, seed: int, name: str):
        share = per_rank(batch_size, world, name)
        batches = StepBatches(len(dataset), share, seed, start, total, rank, world)
        return iter(DataLoader(dataset, batch_sampler=batches, num_workers=train_cfg.num_workers, collate_fn=list,
                               persistent_workers=False, pin_memory=torch.cuda.is_available()))

    flow_iter = image_iter = None
    if train_cfg.method in ("m-jepa", "mc-jepa"):
        flow_iter = stream(flow_mix(data, frames_only=True), train_cfg.batch_size, data.seed, "train.batch_size")
    if train_cfg.method in ("vicreg", "mc-jepa", "supervised"):
        stills = labelled_stills(data) if train_cfg.method == "supervised" else image_dataset(data, images_only=True)
        image_iter = stream(stills, train_cfg.image_batch_size, data.seed + data.image_seed_offset,
                            "train.image_batch_size")
    return flow_iter, image_iter


def augmenters(data: DataConfig) -> tuple[FlowAugment, VICRegViews]:
    """The frame-pair augmentation and the VICReg views of a data config (`data.flow_*`, `data.view_augment`)."""
    flow_augment = FlowAugment(crop_size=None, hflip_p=data.flow_hflip_p, jitter_p=data.flow_jitter_p,
                               jitter=tuple(data.flow_jitter))
    preset = data.view_augment
    if preset == "auto":
        preset = "tiny" if min(data.image_size) < 128 else "paper"
    views = VICRegViews(data.image_size, VICRegAugConfig.tiny() if preset == "tiny" else VICRegAugConfig.paper())
    return flow_augment, views


def open_run_folder(out_dir: Path, cfg: Config, resume: bool, start: int) -> MetricsLog | None:
    """Create `out_dir`, write config.json and cut metrics.jsonl back to step `start` (a fresh run: remove it,
    left by a run that died before its first checkpoint); the metrics log of the main process, else None."""
    if not is_main():
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        truncate_metrics(out_dir / "metrics.jsonl", start)
    else:
        (out_dir / "metrics.jsonl").unlink(missing_ok=True)
    with atomic_write(out_dir / "config.json", "w") as handle:
        json.dump(to_dict(cfg), handle, indent=2)
    return MetricsLog(out_dir / "metrics.jsonl")


VALIDATION_PAIRS = 16  # held-out pairs behind the logged val/epe


def autocast(cfg: Config, device: torch.device):
    """bf16 autocast on CUDA with `train.amp="bf16"`, else a disabled CPU autocast (full precision)."""
    if device.type == "cuda" and cfg.train.amp == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def held_out_pairs(cfg: Config) -> list[dict]:
    """The first `VALIDATION_PAIRS` validation pairs of the first flow dataset (rendered or read once)."""
    held_out = flow_dataset(parse_mix(cfg.data.flow_datasets[0])[0], cfg.data, split="val")
    return [held_out[i] for i in range(min(len(held_out), VALIDATION_PAIRS))]


def announce(cfg: Config, device: torch.device, world: int) -> None:
    """One line on stderr (rank 0, several processes only): the processes and the global batch."""
    if world == 1 or not is_main():
        return
    batches = []
    if cfg.train.method in ("m-jepa", "mc-jepa"):
        batches.append(f"{cfg.train.batch_size} frame pairs ({cfg.train.batch_size // world} per rank)")
    if cfg.train.method in ("vicreg", "mc-jepa", "supervised"):
        batches.append(f"{cfg.train.image_batch_size} stills ({cfg.train.image_batch_size // world} per rank)")
    print(f"train {cfg.train.method}: {world} processes on {device.type}, global batch per step: "
          f"{' + '.join(batches)}; lr_encoder {cfg.train.lr_encoder:g}, lr_flow {cfg.train.lr_flow:g} "
          f"(not rescaled)", file=sys.stderr, flush=True)


def draw_index(step: int, rank: int, world: int) -> int:
    """The index of the per-step seeds (crops, augmentation) of `rank`: step * world + rank, distinct for every
    (step, rank) and equal to `step` in a single process (whose random stream is then unchanged)."""
    return step * world + rank


@torch.no_grad()
def validation_epe(model: MCJEPA, pairs: Dataset, max_samples: int = VALIDATION_PAIRS) -> float:
    """Mean EPE on held-out pairs with ground truth (eval mode, restored afterwards)."""
    was_training = model.training
    model.eval()
    result = evaluate_flow_dataset(flow_fn(model), pairs, stride=model.stride, max_samples=max_samples, progress=False)
    model.train(was_training)
    return float(result["epe"])


@torch.no_grad()
def validation_occlusion(model: MCJEPA, pairs: list[dict], cfg: Config) -> dict[str, float]:
    """The training's occlusion mask (`loss.occlusion_*`) on held-out pairs against their true forward
    occlusion: {"val/occ_fraction", "val/occ_true_fraction", "val/occ_precision", "val/occ_recall"} (fractions
    of pixels; precision/recall of the masked pixels). Empty when the pairs have no "occlusion" or their size
    is not a multiple of the model stride."""
    if not pairs or "occlusion" not in pairs[0] or any(s % model.stride for s in pairs[0]["frame1"].shape[-2:]):
        return {}
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    frame1, frame2 = (torch.stack([p[k] for p in pairs]).to(device) for k in ("frame1", "frame2"))
    out = model.forward_flow(frame1, frame2)
    model.train(was_training)
    loss = cfg.loss
    masked = occlusion_mask(out.flow_fw, out.flow_bw, loss.occlusion_method, loss.occlusion_alpha1,
                            loss.occlusion_alpha2, loss.occlusion_range_threshold,
                            loss.occlusion_max_fraction).squeeze(1).bool()
    truth = torch.stack([torch.as_tensor(p["occlusion"]) for p in pairs]).to(device).bool()
    hits = (masked & truth).sum().item()
    return {"val/occ_fraction": masked.float().mean().item(), "val/occ_true_fraction": truth.float().mean().item(),
            "val/occ_precision": hits / max(masked.sum().item(), 1),
            "val/occ_recall": hits / max(truth.sum().item(), 1)}


def train(cfg: Config, out_dir: str | Path, resume: bool = False, progress: bool = True,
          stop_at: int | None = None, eval_every: int | None = None) -> TrainResult:
    """Train `cfg.train.method` for `cfg.total_steps` steps (or stop after `stop_at`), writing to `out_dir`:
    config.json, metrics.jsonl (one row per `log_every` steps) and checkpoint.pt (every `checkpoint_every`
    steps and at the end, atomically). `resume=True` continues from out_dir/checkpoint.pt.
    `eval_every` > 0 logs the flow EPE on held-out pairs that have ground truth (the embedded data)."""
    validate(cfg)
    out_dir, checkpoint_path = Path(out_dir), Path(out_dir) / "checkpoint.pt"
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(20, "the run folder (--out) is a file, not a folder", str(out_dir))
    if not resume and checkpoint_path.exists():
        raise FileExistsError(f"{checkpoint_path} exists: pass resume=True (--resume) or choose a new out dir")
    device, rank, world = setup_device(cfg)
    model = MCJEPA(cfg.model).to(device)
    if cfg.train.init and not resume:  # fine-tuning: start from a trained encoder and flow head
        load_init_weights(model, cfg.train.init)
    optimizer, scheduler = build_optimizer(model, cfg)
    start, rng = resume_state(checkpoint_path, cfg, model, optimizer, scheduler) if resume else (0, None)
    objective = wrap_objective(model, cfg, device, world)
    total = cfg.total_steps if stop_at is None else min(stop_at, cfg.total_steps)
    flow_iter, image_iter = data_streams(cfg, start, total, rank, world)
    announce(cfg, device, world)
    flow_augment, views_fn = augmenters(cfg.data)
    colour_fn = ColourViews(views_fn.config) if cfg.data.supervised_colour == "views" else None
    val_pairs = held_out_pairs(cfg) if eval_every and flow_iter is not None and is_main() else None
    log = open_run_folder(out_dir, cfg, resume, start)
    if rng is not None:  # building the loaders above drew from the global RNG: restore the saved state now
        set_rng_state(rng)
    bar = (tqdm(total=total, initial=start, desc=f"train {cfg.train.method}", dynamic_ncols=True)
           if progress and is_main() else None)
    began, last, seed = time.time(), {}, cfg.train.seed
    model.train()
    for step in range(start, total):
        draw = draw_index(step, rank, world)
        generator = torch.Generator().manual_seed(step_seed(seed, draw))
        video = next(flow_iter) if flow_iter is not None else None
        stills = next(image_iter) if image_iter is not None else None
        use_flow, use_ssl = streams_for_step(cfg, step)
        frames = views = labelled = None
        if use_flow:
            batch = collate_pairs(video, cfg.data.crop, generator)
            batch = flow_augment({"frame1": batch["frame1"], "frame2": batch["frame2"]},
                                 seed=step_seed(seed + cfg.train.flow_augment_seed_offset, draw))
            frames = {k: batch[k].to(device, non_blocking=True) for k in ("frame1", "frame2")}
        if use_ssl and cfg.train.method == "supervised":
            images, labels = collate_labelled(stills, cfg.data.image_size, generator)
            if colour_fn is not None:
                images = colour_fn(images, seed=step_seed(seed + cfg.train.views_seed_offset, draw))
            labelled = (images.to(device, non_blocking=True), labels.to(device, non_blocking=True))
        elif use_ssl:
            base = collate_images(stills, cfg.data.image_base, generator).to(device, non_blocking=True)
            views = views_fn(base, seed=step_seed(seed + cfg.train.views_seed_offset, draw))
        with autocast(cfg, device):
            loss, terms = objective(frames, views, occlusion_enabled(cfg, step), labelled)
        terms = mean_over_ranks(terms)  # every rank then takes the same decision below
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
        if log is not None and (done % cfg.train.log_every == 0 or done == total):
            last = {"step": done, "epoch": done / cfg.train.steps_per_epoch, **{k: v.item() for k, v in terms.items()},
                    "grad_norm": grad_norm.item(), "lr/encoder": scheduler.get_last_lr()[0],
                    "seconds": time.time() - began}
            if val_pairs is not None and (done % eval_every == 0 or done == total):
                last["val/epe"] = validation_epe(model, val_pairs)
                last.update(validation_occlusion(model, val_pairs, cfg))
            log.write(last)
        if done % cfg.train.checkpoint_every == 0 or done == total:
            check_replicas(model)  # every rank: a collective
        if is_main() and (done % cfg.train.checkpoint_every == 0 or done == total):
            save_checkpoint(checkpoint_path, model, optimizer, scheduler, done, cfg)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{terms['loss/total'].item():.3f}")
    if bar is not None:
        bar.close()
    barrier()  # on return the last checkpoint is written, on every rank
    return TrainResult(out_dir=out_dir, steps=total, last=last, checkpoint=checkpoint_path,
                       seconds=time.time() - began, model=model)
