"""Per-step metrics as JSON lines (one dict per logged step), readable back for plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..utils import atomic_write


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"metrics file {path} does not exist")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not a JSON line ({err})") from err
    return rows


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop rows logged after `last_step` (they belong to a run interrupted after its last checkpoint)."""
    if not path.is_file():
        return
    rows = [r for r in read_metrics(path) if r["step"] <= last_step]
    with atomic_write(path, "w") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)


class MetricsLog:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, row: dict) -> None:
        clean = {k: (float(v) if not isinstance(v, (str, int)) else v) for k, v in row.items()}
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in clean.items()}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(clean) + "\n")
