"""Results cached by the config hash of the run they were measured on.

A result file is a JSON dict (`report.save_json`, with its checksum) holding at least the `config_hash` of its
run. `cached_result` gives it back while it was measured on the same config with the same protocol (every field
of `expected` equal: the config hash, the file format, the evaluation datasets...) and covers what is asked
(every list of `includes` contained in the stored one: e.g. the tasks evaluated); otherwise None, and the caller
measures again and stores the new result with `store_result`. The ablation points (`ablations.run_point`) and
the claims' method evaluations (`claims.method_result`) are such files.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .report import load_json, save_json

__all__ = ["cached_result", "store_result"]


def cached_result(path: str | os.PathLike, expected: Mapping[str, Any],
                  includes: Mapping[str, Iterable] | None = None, what: str = "result file") -> dict | None:
    """The stored result at `path` if it matches (module docstring), else None.

    A missing file, another config hash or protocol, or fewer items than `includes` asks for give None; so does
    a file that is torn or was altered after it was written (`report.load_json` refuses it), with a warning
    naming it: it is measured again and overwritten."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        stored = load_json(path, what)
    except ValueError as err:
        warnings.warn(f"{err}: measuring it again", stacklevel=2)
        return None
    if not isinstance(stored, dict) or any(stored.get(key) != value for key, value in expected.items()):
        return None
    if any(not set(items) <= set(stored.get(key) or ()) for key, items in (includes or {}).items()):
        return None
    return stored


def store_result(result: Mapping[str, Any], path: str | os.PathLike, what: str = "result file") -> dict:
    """Write `result` (`report.save_json`: atomic, NaN -> null, with its checksum) and return it as read back,
    i.e. as `cached_result` will return it."""
    save_json(result, path)
    return load_json(path, what)
