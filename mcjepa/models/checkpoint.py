"""Reading checkpoints and the model they hold: what evaluation, figures and notebooks need of a run.

Writing them (with the optimiser, scheduler and RNG states for a bit-identical resume) is the trainer's
business: mcjepa/train/checkpoint.py.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import from_dict
from ..utils import verify_checksum
from .mcjepa import MCJEPA


def read_checkpoint(path: str | Path, require: tuple[str, ...] = ("model", "step", "config")) -> dict:
    """Load and verify a checkpoint: its bytes as written (the sha256 recorded beside it at save time,
    `utils.verify_checksum`; a checkpoint without one loads with a warning), a readable torch file (a truncated
    or corrupted one fails to unpickle), a dict holding the `require`d keys (RESUME_KEYS to resume), an integer
    step >= 0. Raises FileNotFoundError, or ValueError naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    verify_checksum(path, "checkpoint")
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
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    state = read_checkpoint(path)
    cfg = from_dict(state["config"])
    model = MCJEPA(cfg.model)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg
