"""Atomic, complete checkpoints: model, optimiser, scheduler, RNG states, step and config."""

from __future__ import annotations

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
    """Write everything needed to resume bit-identically, atomically (temp file + rename)."""
    atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict(), "rng": rng_state(), "step": step,
                       "config": to_dict(cfg)}, path)


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file: say which one
        raise ValueError(f"checkpoint {path} cannot be read ({err})") from err
    missing = {"model", "step", "config"} - set(state)
    if missing:
        raise ValueError(f"checkpoint {path} lacks {sorted(missing)}: not an mcjepa checkpoint")
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
