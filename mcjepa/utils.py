"""Small shared helpers: atomic file writes, seeding, and the repository's folders."""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary file next to `path`; rename it onto `path` only if the block succeeds.

    A crash or an exception inside the block leaves `path` untouched (old content or absent),
    never half-written. An OSError without a file name (ENOSPC from a write) is re-raised naming `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno and not err.filename:
            raise OSError(err.errno, f"cannot write ({err.strerror}); left unchanged", str(path)) from err
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """`torch.save` through `atomic_write`."""
    with atomic_write(path, "wb") as handle:
        torch.save(obj, handle)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def project_root() -> Path:
    """The repository root (the folder holding pyproject.toml above this package), else the working dir."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def resolve_dir(path: str | Path | None, default: str) -> Path:
    """`path` if given (relative paths are taken from the repository root), else root/default; created."""
    folder = Path(path) if path else project_root() / default
    if not folder.is_absolute():
        folder = project_root() / folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder
