"""Atomic, complete checkpoints: model, optimiser, scheduler, RNG states, step and config (reading them and
loading the model: mcjepa/models/checkpoint.py)."""

from __future__ import annotations

import errno
import random
from pathlib import Path

import numpy as np
import torch

from ..config import Config, to_dict
from ..utils import atomic_torch_save


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, model, optimizer, scheduler, step: int, cfg: Config) -> None:
    """Write everything needed to resume bit-identically, atomically (temp file + rename), and its sha256
    beside it (`<path>.sha256`, checked by `read_checkpoint`).

    A failed write (disk full: torch reports it as a RuntimeError) raises OSError naming `path`; the temporary
    file is removed and the previous checkpoint, if any, is intact."""
    try:
        atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "rng": rng_state(), "step": step,
                           "config": to_dict(cfg)}, path, checksum=True)
    except (OSError, RuntimeError) as err:
        number = getattr(err, "errno", None) or errno.EIO
        raise OSError(number, f"cannot write the step-{step} checkpoint ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}); disk full? no partial file is "
                              f"left, the previous checkpoint (if any) is intact", str(path)) from err


RESUME_KEYS = ("model", "optimizer", "scheduler", "rng", "step", "config")
