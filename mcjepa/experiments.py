"""What the notebooks call: validated parameters, training runs cached by their config, result files.

A run's folder is `runs_dir/<method>-<hash of its full config>`: a notebook asking for a finished run gets
it back without training, one asking for an interrupted run resumes it, and a sweep re-run reuses every
finished point. Results (JSON) and figures (PNG) go to `figures_dir`, by default the repository's figures/.

Inside a Jupyter kernel (a notebook run by papermill) the notebook shows the training bar, but the terminal
that started papermill shows only "Executing: n%": `ensure_run` then also writes a status line per run
(`run_status`) every 30 s to the kernel's own stderr (`terminal_fd`), which reaches that terminal and not
the notebook.
"""

from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import fcntl
import json
import math
import multiprocessing
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .config import Config, apply_overrides, config_hash, for_method, from_dict, preset
from .data.registry import VIDEO_PREFIX
from .data.video import frame_source
from .models.checkpoint import checkpoint_path, read_checkpoint
from .models.mcjepa import MCJEPA
from .train.distributed import is_main
from .train.trainer import TrainingDiverged, train
from .report import load_json, save_json
from .utils import resolve_dir

SCALES = ("tiny", "paper")


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return scale


def check_non_negative(**values: float) -> None:
    """Reject negative or non-finite notebook parameters by name."""
    for name, value in values.items():
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise ValueError(f"parameter {name} must be a non-negative number, got {value!r}")


def check_integer(name: str, value: float) -> int:
    """`value` as an int if it is a whole number (3 or 3.0); 2.5 is an error naming `name`, not 2."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise ValueError(f"parameter {name} must be a whole number, got {value!r}")
    return int(value)


def run_config(scale: str, method: str, overrides: Mapping[str, Any] | None = None, epochs: int | None = None,
               steps_per_epoch: int | None = None, seed: int | None = None,
               data_roots: Mapping[str, str] | None = None) -> Config:
    """The preset of `scale` for `method` with dotted overrides; the keyword arguments are the notebooks'
    common parameters (None keeps the preset's value). At paper scale `data_roots` names the dataset
    folders ({"sintel": "/data/Sintel", ...})."""
    cfg = for_method(preset(check_scale(scale)), method)
    overrides = dict(overrides or {})
    check_non_negative(epochs=epochs, steps_per_epoch=steps_per_epoch, seed=seed)
    for key, value in (("train.epochs", epochs), ("train.steps_per_epoch", steps_per_epoch), ("train.seed", seed)):
        if value is not None:
            overrides[key] = check_integer(key.split(".")[1], value)
    if data_roots:
        overrides["data.roots"] = dict(data_roots)
    return apply_overrides(cfg, overrides)


@dataclass(frozen=True)
class Setting:
    """What the runs of a notebook, a sweep or the claims table share, as one value: the preset, the seed, the
    schedule, the data and the folders. `config` makes a run's config from it, `run` trains or reuses the run.

    scale:           "tiny" (embedded data, a CPU) or "paper" (the real datasets, GPUs)
    seed:            training seed; None: the preset's (0)
    epochs, steps_per_epoch: the schedule; None: the preset's
    eval_every:      held-out EPE logged every this many steps while training (not part of the config)
    data_roots:      {dataset name: root folder}, e.g. {"sintel": "/data/MPI-Sintel-complete"} (paper scale)
    runs_dir, figures_dir: the folders as given (relative to the repository root; None: runs/, figures/);
                     `runs` and `figures` resolve them (nothing is created)
    progress:        progress bars while training and evaluating

    Raises ValueError naming the field for an unknown scale or a negative or non-finite number (a fractional
    epoch count is refused by `config`, naming it too).
    """

    scale: str = "tiny"
    seed: int | None = None
    epochs: int | None = None
    steps_per_epoch: int | None = None
    eval_every: int | None = None
    data_roots: Mapping[str, str] = field(default_factory=dict)
    runs_dir: str | Path | None = None
    figures_dir: str | Path | None = None
    progress: bool = True

    def __post_init__(self):
        check_scale(self.scale)
        check_non_negative(epochs=self.epochs, steps_per_epoch=self.steps_per_epoch, seed=self.seed,
                           eval_every=self.eval_every)
        object.__setattr__(self, "data_roots", dict(self.data_roots or {}))

    def replace(self, **changes: Any) -> "Setting":
        """A copy with `changes` (field name -> value), checked as a new Setting."""
        return dataclasses.replace(self, **changes)

    @property
    def runs(self) -> Path:
        """runs_dir resolved (`utils.resolve_dir`)."""
        return resolve_dir(self.runs_dir, "runs")

    @property
    def figures(self) -> Path:
        """figures_dir resolved (`utils.resolve_dir`)."""
        return resolve_dir(self.figures_dir, "figures")

    def config(self, method: str, overrides: Mapping[str, Any] | None = None) -> Config:
        """The `scale` preset for `method` with the setting's schedule, seed and data roots and the dotted
        `overrides` (`run_config`)."""
        return run_config(self.scale, method, overrides, epochs=self.epochs, steps_per_epoch=self.steps_per_epoch,
                          seed=self.seed, data_roots=self.data_roots)

    def run(self, cfg: Config) -> Path:
        """The finished run of `cfg` under runs_dir: reused, resumed or trained (`ensure_run`)."""
        return ensure_run(cfg, runs_dir=self.runs_dir, progress=self.progress, eval_every=self.eval_every)


def on_videos(cfg: Config, videos: Sequence[str | Path] = (), init: str | Path | None = None) -> Config:
    """`cfg` (changed in place and returned) set to train on your own `videos` (video files or folders of
    frames: `data.flow_datasets` = ("video:<file stem>", ...), their absolute paths in `data.roots`) and/or to
    start from the encoder and flow head of the run `init` (`train.init` = its checkpoint's absolute path; the
    model config is the init run's, so that the weights fit). Both are plain config, so such a run is cached,
    named and resumed by its hash like any other. Raises FileNotFoundError / ValueError naming a missing or
    unsupported video or a folder that is not a run."""
    overrides: dict[str, Any] = {}
    if videos:
        names, roots = [], {}
        for video in videos:
            frame_source(video)  # fail now on a missing or unsupported path
            stem, name = Path(video).stem or "frames", None
            for n in range(len(videos) + 1):
                name = f"{VIDEO_PREFIX}{stem}" + (f"-{n}" if n else "")
                if name not in roots:
                    break
            names.append(name)
            roots[name] = str(Path(video).resolve())
        overrides.update({"data.flow_datasets": tuple(names), "data.roots": {**cfg.data.roots, **roots}})
    if init is not None:
        path = checkpoint_path(init).resolve()
        cfg.model = from_dict(read_checkpoint(path)["config"]).model
        overrides["train.init"] = str(path)
    return apply_overrides(cfg, overrides)


def parameter_counts(cfg: Config) -> dict[str, int]:
    """Trainable parameters of the model of `cfg` per part (encoder, flow_head, expander, upsampler when convex)
    and "total"; the parts a method does not train are counted too (they are in every checkpoint)."""
    model = MCJEPA(cfg.model)
    counts = {name: sum(p.numel() for p in part.parameters() if p.requires_grad)
              for name, part in model.named_children()}
    return {**{name: n for name, n in counts.items() if n}, "total": sum(counts.values())}


def describe_run(cfg: Config) -> str:
    """What a run of `cfg` trains, in a few lines: method, schedule, data and batches, model size, the loss
    weights and the learning rates. Deterministic (no training, no data read): the notebooks print it for nbval.

    Example (`run_config("tiny", "m-jepa", epochs=1, steps_per_epoch=4)`)::

        m-jepa: 1 epoch(s) x 4 steps = 4 steps, seed 0
        flow: 4 frame pairs per step, 96x128 crops of embedded (2048 generated pairs, max 16 px/frame)
        model: 483,618 parameters (encoder 232,912, flow_head 64,514, expander 157,184, upsampler 29,008)
        flow loss: census 1, smoothness 50 (order 1, flow level), regression 0.1, cycle 0.1, vc 0.1
        occlusion: range (threshold 0.8) from epoch 0 of the flow
        optimizer: lr 0.0003 encoder / 0.0003 flow, weight decay 0.0001, warmup 0.25 epoch(s), grad clip 1
    """
    t, d, loss = cfg.train, cfg.data, cfg.loss
    lines = [f"{t.method}: {t.epochs:g} epoch(s) x {t.steps_per_epoch} steps = {cfg.total_steps} steps, seed {t.seed}"
             + (f", starting from {Path(t.init).parent.name}" if t.init else "")]
    if t.method in ("m-jepa", "mc-jepa"):
        start = f", from epoch {t.flow_start_epoch:g}" if t.method == "mc-jepa" else ""
        embedded = (f" ({d.embedded_pairs} generated pairs, max "
                    f"{d.embedded_train_max_translation or d.embedded_max_translation:g} px/frame)"
                    if "embedded" in d.flow_datasets else "")
        lines.append(f"flow: {t.batch_size} frame pairs per step{start}, {d.crop[0]}x{d.crop[1]} crops of "
                     f"{', '.join(d.flow_datasets)}{embedded}")
    if t.method in ("vicreg", "mc-jepa"):
        lines.append(f"content: {t.image_batch_size} stills per step of {d.image_dataset}, views of "
                     f"{d.image_size[0]}x{d.image_size[1]} from {d.image_base[0]}x{d.image_base[1]}")
    counts = parameter_counts(cfg)
    lines.append(f"model: {counts['total']:,} parameters ("
                 + ", ".join(f"{name} {n:,}" for name, n in counts.items() if name != "total") + ")")
    if t.method in ("m-jepa", "mc-jepa"):
        rec = ", ".join(f"{name} {w:g}" for name, w in (("L1", loss.rec_l1), ("L2", loss.rec_l2),
                                                          ("SSIM", loss.rec_ssim), ("census", loss.rec_census)) if w)
        occlusion = (f"{loss.occlusion_method} (threshold {loss.occlusion_range_threshold:g})"
                     if loss.occlusion_method == "range" else loss.occlusion_method)
        occlusion = (f"{occlusion} from epoch {loss.occlusion_start_epoch:g} of the flow" if loss.use_occlusion
                     else "off")
        scaled = f" (x{loss.reconstruction:g})" if loss.reconstruction != 1 else ""
        lines.append(f"flow loss: {rec}{scaled}, smoothness {loss.smoothness:g} (order "
                     f"{loss.smooth_order}, {loss.smooth_level} level), regression {loss.regression:g}, cycle "
                     f"{loss.cycle:g}, vc {loss.vc:g}")
        lines.append(f"occlusion: {occlusion}")
    if t.method in ("vicreg", "mc-jepa"):
        lines.append(f"content loss: VICReg {loss.vicreg_sim:g} / {loss.vicreg_std:g} / {loss.vicreg_cov:g}"
                     + (f", balance {loss.balance:g}" if t.method == "mc-jepa" else ""))
    flow_lr = f" / {t.lr_flow:g} flow" if t.method != "vicreg" else ""
    lines.append(f"optimizer: lr {t.lr_encoder:g} encoder{flow_lr}, weight decay {t.weight_decay:g}, "
                 f"warmup {t.warmup_epochs:g} epoch(s), grad clip {t.grad_clip:g}")
    return "\n".join(lines)


def run_dir(cfg: Config, runs_dir: str | Path | None = None) -> Path:
    return resolve_dir(runs_dir, "runs") / f"{cfg.train.method}-{config_hash(cfg)}"


def is_finished(folder: Path, cfg: Config) -> bool:
    """done.json records cfg.total_steps; a corrupted done.json is warned about and the run resumed."""
    done = folder / "done.json"
    if not done.is_file():
        return False
    try:
        record = load_json(done)
    except ValueError as err:
        warnings.warn(f"{err}; resuming the run from its checkpoint instead", stacklevel=2)
        return False
    return isinstance(record, dict) and record.get("steps") == cfg.total_steps


def stopped(folder: Path) -> TrainingDiverged | None:
    """The stop recorded in `folder/diverged.json` by `ensure_run` (a run the NaN, explosion or collapse guard
    stopped), as the exception it raised; None for a run that was not stopped."""
    path = folder / "diverged.json"
    if not path.is_file():
        return None
    record = load_json(path)
    return TrainingDiverged(int(record["step"]), str(record["message"]))


def terminal_fd() -> int | None:
    """The file descriptor of the terminal behind a Jupyter kernel, or None outside one.

    ipykernel captures the kernel's stdout/stderr into the notebook (file descriptors 1 and 2 included); its
    `sys.stderr.fileno()` is a copy of the stderr the kernel was started with, which is the terminal of
    `papermill` / `jupyter` (and their log): what is written there does not go into the notebook."""
    stream = sys.stderr
    if not type(stream).__module__.startswith("ipykernel"):
        return None
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        return None


def terminal_line(text: str) -> None:
    """Write `text` as one line to the terminal behind a Jupyter kernel (`terminal_fd`); nothing outside one
    (there the training bar is already on the terminal)."""
    fd = terminal_fd()
    if fd is None:
        return
    start = "\r\x1b[K" if os.isatty(fd) else ""  # on a terminal: over papermill's "Executing" bar, not after it
    try:
        os.write(fd, f"{start}[mcjepa] {text}\n".encode(errors="replace"))
    except OSError:
        pass  # a closed or full log must not stop training


class _StatusLines:
    """While training: `run_status` of `folder` on the kernel's terminal every `every` seconds (a thread)."""

    def __init__(self, folder: Path, cfg: Config, every: float):
        self.folder, self.cfg, self.every = folder, cfg, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"status {folder.name}", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            terminal_line(run_status(self.folder, self.cfg))

    def __enter__(self):
        if terminal_fd() is not None and self.every > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def ensure_run(cfg: Config, runs_dir: str | Path | None = None, progress: bool = True,
               eval_every: int | None = None, report_every: float = 30.0) -> Path:
    """Train `cfg` unless a finished run with the same config exists; resume an interrupted one. A run stopped
    by a guard (TrainingDiverged) is recorded in `diverged.json` and raises the same error every later call,
    without training again. A file lock (`<run>.lock`) lets parallel notebooks ask for the same run: the first
    trains it, the others then reuse it. Inside a Jupyter kernel the terminal gets a line when training starts
    and ends and a status line every `report_every` seconds (`terminal_line`; 0: none)."""
    folder = run_dir(cfg, runs_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_finished(folder, cfg):
            print(f"reusing finished run {folder}")
            return folder
        if (error := stopped(folder)) is not None:
            raise error
        resume = (folder / "checkpoint.pt").is_file()
        terminal_line(f"{'resuming' if resume else 'training'} {folder.name}: {cfg.total_steps} steps, a status "
                      f"line every {report_every:g} s")
        try:
            with _StatusLines(folder, cfg, report_every):
                train_recorded(cfg, folder, progress, eval_every)
        except TrainingDiverged as err:
            terminal_line(f"{folder.name}: stopped: {err}")
            raise
        done = load_json(folder / "done.json")
        terminal_line(f"{folder.name}: finished {done['steps']} steps in {done['seconds'] / 60:.1f} min")
    return folder


def train_recorded(cfg: Config, folder: Path, progress: bool = True, eval_every: int | None = None) -> Path:
    """Train `cfg` into `folder`, resuming from its checkpoint.pt if there is one, and record the outcome
    (rank 0 of a multi-process run): done.json, or diverged.json before re-raising TrainingDiverged. Every
    rank of a torchrun/submitit run calls it; `ensure_run` calls it under the run's lock."""
    resume = (folder / "checkpoint.pt").is_file()
    if is_main():
        print(f"{'resuming' if resume else 'training'} {cfg.train.method} run {folder}", flush=True)
    try:
        result = train(cfg, folder, resume=resume, progress=progress, eval_every=eval_every)
    except TrainingDiverged as err:
        if is_main():
            save_json({"step": err.step, "message": err.message}, folder / "diverged.json")
        raise
    if is_main():
        save_json({"steps": result.steps, "seconds": result.seconds, "last": result.last}, folder / "done.json")
    return folder


def recorded_results(configs: list[Config], runs_dir: str | Path | None = None
                     ) -> tuple[dict[str, Path | Exception], dict[str, Config]]:
    """(the recorded outcome of every finished or guard-stopped run, {folder name: config} of those left to
    train), duplicates (same config hash) once."""
    unique = {run_dir(cfg, runs_dir).name: cfg for cfg in configs}
    results: dict[str, Path | Exception] = {}
    for name, cfg in unique.items():
        folder = run_dir(cfg, runs_dir)
        if is_finished(folder, cfg):
            results[name] = folder
        elif (error := stopped(folder)) is not None:  # a guard stopped it before: recorded, not retrained
            results[name] = error
    return results, {name: cfg for name, cfg in unique.items() if name not in results}


def _train_in_worker(cfg: Config, runs_dir: str, eval_every: int | None, threads: int) -> str:
    import torch

    torch.set_num_threads(threads)
    return str(ensure_run(cfg, runs_dir, progress=False, eval_every=eval_every))


def run_status(folder: Path, cfg: Config) -> str:
    """One line on a run in progress from its metrics.jsonl: step/total, loss, steps/s and the time left."""
    try:
        last = (folder / "metrics.jsonl").read_text().strip().splitlines()[-1]
        row = json.loads(last)
    except (OSError, IndexError, json.JSONDecodeError):
        return f"{folder.name}: starting"
    step, total, seconds = row["step"], cfg.total_steps, row.get("seconds") or 0.0
    rate = step / seconds if seconds else 0.0
    eta = f", {(total - step) / rate / 60:.1f} min left" if rate else ""
    return f"{folder.name}: step {step}/{total}, loss {row.get('loss/total', math.nan):.3f}, {rate:.1f} steps/s{eta}"


def ensure_runs(configs: list[Config], runs_dir: str | Path | None = None, workers: int = 1,
                eval_every: int | None = None, report_every: float = 30.0) -> dict[str, Path | Exception]:
    """`ensure_run` for every config (duplicates by config hash trained once), `workers` runs at a time, each in
    its own process with `torch` threads = cpu_count // workers (independent runs on separate cores beat one
    run on all of them: 5.0 vs 4.0 tiny steps/s on 2 cores, measured). Prints a status line per running run
    every `report_every` seconds. Returns {run folder name: folder, or the exception that stopped it (e.g. a
    diverged run, which the notebooks then record)}."""
    results, todo = recorded_results(configs, runs_dir)
    if not todo:
        return results
    workers = max(1, min(workers, len(todo)))
    threads = max(1, (multiprocessing.cpu_count() or 1) // workers)
    print(f"training {len(todo)} run(s) ({len(results)} cached), {workers} at a time, {threads} thread(s) each",
          flush=True)
    began = time.time()
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending = {pool.submit(_train_in_worker, cfg, str(resolve_dir(runs_dir, "runs")), eval_every, threads): name
                   for name, cfg in sorted(todo.items(), key=lambda item: -item[1].total_steps)}  # stable: given order
        while pending:
            done, _ = futures.wait(pending, timeout=report_every, return_when=futures.FIRST_COMPLETED)
            for future in done:
                name = pending.pop(future)
                error = future.exception()
                results[name] = error if error is not None else Path(future.result())
                print(f"[{time.time() - began:6.0f}s] {name}: " + (f"stopped: {error}" if error else "finished"),
                      flush=True)
            if not done:
                for name in pending.values():
                    folder = run_dir(todo[name], runs_dir)
                    if folder.is_dir():
                        print(f"[{time.time() - began:6.0f}s] {run_status(folder, todo[name])}", flush=True)
    return results
