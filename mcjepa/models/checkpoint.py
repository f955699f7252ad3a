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
    """(model in eval mode, config) from a checkpoint file or a run folder holding checkpoint.pt.
    Raises FileNotFoundError naming a missing run/checkpoint, ValueError for a file that is not a checkpoint."""
    state = read_checkpoint(checkpoint_path(path))
    cfg = from_dict(state["config"])
    model = MCJEPA(cfg.model)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg


INIT_PARTS = ("encoder", "flow_head", "upsampler")  # what `train.init` carries over: the shared encoder and the
# whole flow path (the flow head and, with model.flow.upsample = "convex", its learned upsampler)


def checkpoint_path(path: str | Path) -> Path:
    """A run folder -> its checkpoint.pt; a file -> itself. Raises FileNotFoundError naming what is missing."""
    path = Path(path)
    if path.is_dir():
        if not (path / "checkpoint.pt").is_file():
            raise FileNotFoundError(f"{path} is not a run folder: it holds no checkpoint.pt (give a run folder "
                                    f"written by `python -m mcjepa train` or its checkpoint.pt)")
        return path / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"run or checkpoint {path} does not exist")
    return path


def load_init_weights(model: MCJEPA, path: str | Path, parts: tuple[str, ...] = INIT_PARTS) -> list[str]:
    """Copy the `parts` (submodule names of MCJEPA) of the run or checkpoint at `path` into `model`, in place;
    the rest of `model` (the expander) keeps its own weights. Returns the names of the tensors loaded.
    Raises FileNotFoundError / ValueError naming the checkpoint, and ValueError when its architecture differs
    (a tensor missing or of another shape: the model configs must match)."""
    path = checkpoint_path(path)
    saved = read_checkpoint(path)["model"]
    own = model.state_dict()
    chosen = [name for name in own if name.split(".", 1)[0] in parts]
    missing = [name for name in chosen if name not in saved]
    wrong = [f"{name} {tuple(saved[name].shape)} vs {tuple(own[name].shape)}" for name in chosen
             if name in saved and saved[name].shape != own[name].shape]
    if missing or wrong:
        raise ValueError(f"{path}: its model does not match this run's model.* config (missing {missing[:3]}, "
                         f"other shapes {wrong[:3]}); fine-tune with the initial run's model settings")
    model.load_state_dict({name: saved[name] for name in chosen}, strict=False)
    return chosen
