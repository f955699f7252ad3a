"""Per-step metrics as JSON lines (one dict per logged step), readable back for plots.

Verified on read: every line must be a JSON object with an integer "step". A torn last line (a run killed or a
disk that filled up mid-write) is dropped with a warning naming the file and line; a bad line elsewhere is a
ValueError naming them. Writes append one whole line or nothing (a failed write is truncated away).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

from ..utils import atomic_write


def _parse(path: Path) -> tuple[list[dict], bool]:
    """(rows, torn): the rows of `path`, and whether an unparsable last line was dropped."""
    lines = path.read_bytes().split(b"\n")
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    rows, torn = [], False
    for index, (number, line) in enumerate(numbered):
        try:
            row = json.loads(line.decode("utf-8"))
            if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                raise ValueError("not an object with an integer 'step'")
        except (ValueError, UnicodeDecodeError) as err:
            if index == len(numbered) - 1:
                warnings.warn(f"{path}:{number}: torn last line dropped ({len(line)} bytes; an interrupted write?)",
                              stacklevel=3)
                torn = True
                break
            raise ValueError(f"{path}:{number}: not a JSON line ({err})") from err
        rows.append(row)
    return rows, torn


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a run's metrics.jsonl (a folder means folder/metrics.jsonl); see the module docstring.

    Raises FileNotFoundError, or ValueError naming the file and line for a corrupt line before the last."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"metrics file {path} does not exist")
    return _parse(path)[0]


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop rows logged after `last_step` (they belong to a run interrupted after its last checkpoint) and a
    torn last line (warned), rewriting the file atomically."""
    if not path.is_file():
        return
    rows, _ = _parse(path)
    rows = [r for r in rows if r["step"] <= last_step]
    with atomic_write(path, "w") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)


class MetricsLog:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, row: dict) -> None:
        """Append one line; if the write fails (disk full) the partial line is cut off and OSError names the file."""
        clean = {k: (float(v) if not isinstance(v, (str, int)) else v) for k, v in row.items()}
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in clean.items()}
        data = memoryview((json.dumps(clean) + "\n").encode())
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            try:
                while data:
                    data = data[os.write(fd, data):]
            except OSError as err:
                os.ftruncate(fd, size)
                raise OSError(err.errno, f"cannot append to the metrics file ({err.strerror}); it is left at its "
                                         f"last complete line", str(self.path)) from err
        finally:
            os.close(fd)
