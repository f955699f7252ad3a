"""Atomic, complete checkpoints: model, optimiser, scheduler, RNG states, step and config."""

from __future__ import annotations

import errno
import random
from pathlib import Path

import numpy as np
import torch

from ..config import Config, from_dict, to_dict
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
    """Write everything needed to resume bit-identically, atomically (temp file + rename).

    A failed write (disk full: torch reports it as a RuntimeError) raises OSError naming `path`; the temporary
    file is removed and the previous checkpoint, if any, is intact."""
    try:
        atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "rng": rng_state(), "step": step,
                           "config": to_dict(cfg)}, path)
    except (OSError, RuntimeError) as err:
        number = getattr(err, "errno", None) or errno.EIO
        raise OSError(number, f"cannot write the step-{step} checkpoint ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}); disk full? no partial file is "
                              f"left, the previous checkpoint (if any) is intact", str(path)) from err


RESUME_KEYS = ("model", "optimizer", "scheduler", "rng", "step", "config")


def read_checkpoint(path: str | Path, require: tuple[str, ...] = ("model", "step", "config")) -> dict:
    """Load and verify a checkpoint: a readable torch file (a truncated or corrupted one fails to unpickle),
    a dict holding the `require`d keys (RESUME_KEYS to resume), an integer step >= 0.
    Raises FileNotFoundError, or ValueError naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file: say which one
        raise ValueError(f"checkpoint {path} cannot be read: truncated or corrupted? ({type(err).__name__}: "
                         f"{err})") from err
    missing = sorted(set(require) - set(state)) if isinstance(state, dict) else list(require)
    if missing:
        raise ValueError(f"checkpoint {path} lacks {missing}: not a complete mcjepa checkpoint")
    if not isinstance(state["step"], int) or state["step"] < 0:
        raise ValueError(f"checkpoint {path}: step {state['step']!r} is not an integer >= 0")
    return state


def load_model(path: str | Path, device: str = "cpu"):
    """(model in eval mode, config) from a checkpoint file or a run folder holding checkpoint.pt."""
    from ..models.mcjepa import MCJEPA

    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    state = read_checkpoint(path)
    cfg = from_dict(state["config"])
    model = MCJEPA(cfg.model)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg
