"""Render-once copies of the generated (embedded) training data.

The synthetic renderer costs ~6 ms per still and ~15-22 ms per pair on one CPU core once a process has loaded
its textures (the first items pay ~1-2 s for that): ~0.25 s of every tiny MC-JEPA step (4 pairs + 32 stills),
against ~10 us for a cached item; and every run of a reproduction reads the same items.
So a training set is rendered once, stored as float32 tensors (bit-identical to rendering on the fly) under
`cache_root()`, and memory-mapped by every process that trains on it: the page cache holds one copy for all.

The file name is a hash of everything that defines the items (dataset class, length, seed, split, scene
settings, fields), so a changed setting gets its own file. Creation is guarded by a file lock: parallel runs
wait for the first one to finish rendering instead of rendering twice. Delete the folder to reclaim the space.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..utils import atomic_torch_save

CACHE_FORMAT = 1


def cache_root() -> Path:
    """`$MCJEPA_CACHE`, else `~/.cache/mcjepa` (created)."""
    root = Path(os.environ.get("MCJEPA_CACHE") or Path.home() / ".cache" / "mcjepa")
    root.mkdir(parents=True, exist_ok=True)
    return root


def dataset_key(dataset, fields: tuple[str, ...]) -> str:
    """A stable name for the items of a generated dataset (its class, length, seed, split and scene config)."""
    identity = {"class": type(dataset).__name__, "length": len(dataset), "seed": dataset.seed,
                "split": dataset.split, "scene": dataclasses.asdict(dataset.cfg), "fields": list(fields),
                "format": CACHE_FORMAT}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return f"{type(dataset).__name__}-{dataset.split}-{len(dataset)}-{digest}"


class RenderedOnce(Dataset):
    """`fields` of every item of `dataset` (a deterministic generated dataset), rendered once into
    `cache_root()/<dataset_key>.pt` and memory-mapped; items are {field: tensor} dicts, as the original's.

    Raises ValueError if an item lacks a field or the fields' shapes differ between items.
    """

    def __init__(self, dataset, fields: tuple[str, ...], progress: bool = True):
        self.fields = tuple(fields)
        self.path = cache_root() / f"{dataset_key(dataset, self.fields)}.pt"
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel run renders first; this one then just loads
            if not self.path.is_file():
                atomic_torch_save(self._render(dataset, progress), self.path)
        self.data = torch.load(self.path, mmap=True, weights_only=True)
        self.length = len(self.data[self.fields[0]])

    def _render(self, dataset, progress: bool) -> dict[str, torch.Tensor]:
        items = range(len(dataset))
        if progress:
            from tqdm.auto import tqdm

            items = tqdm(items, desc=f"rendering {self.path.name} once", mininterval=5)
        columns: dict[str, list[torch.Tensor]] = {f: [] for f in self.fields}
        for index in items:
            item = dataset[index]
            for field in self.fields:
                if field not in item:
                    raise ValueError(f"{type(dataset).__name__} item {index} has no field {field!r}")
                columns[field].append(item[field])
        try:
            return {field: torch.stack(values) for field, values in columns.items()}
        except RuntimeError as err:
            raise ValueError(f"{type(dataset).__name__}: items of different shapes cannot be cached ({err})") from err

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {field: self.data[field][index] for field in self.fields}
