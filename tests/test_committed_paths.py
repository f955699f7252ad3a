"""The committed results under figures/ name runs, never the machine that made them: no string in any JSON
under figures/ may be an absolute filesystem path (a clone elsewhere, or `make demo` on another machine, would
otherwise see them as changes)."""

import json
import re

import pytest

from mcjepa.utils import project_root

FIGURES = project_root() / "figures"
# "/a/b", "C:\\x" or "~/x": a path that only means something on one machine ("/" alone, "1/2" or "px/s" do not)
_ABSOLUTE = re.compile(r"^(/[^/\s]+/|[A-Za-z]:[\\/]|~/)")


def _strings(value, where="$"):
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key, f"{where} key")
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{where}[{i}]")


@pytest.mark.parametrize("text, absolute", [("/data/final/runs/mc-jepa-d370", True), ("/var/x/y", True),
                                            ("C:\\runs\\x", True), ("~/runs/x", True), ("mc-jepa-d370", False),
                                            ("runs/mc-jepa-d370", False), ("/", False), ("px/s", False),
                                            ("L1 + SSIM / census", False)])
def test_the_absolute_path_pattern(text, absolute):
    assert bool(_ABSOLUTE.match(text)) is absolute


def test_no_committed_json_holds_an_absolute_path():
    files = sorted(FIGURES.rglob("*.json"))
    assert len(files) > 50, f"expected the committed results under {FIGURES}"
    found = [f"{path.relative_to(FIGURES.parent)} {where}: {text!r}" for path in files
             for where, text in _strings(json.loads(path.read_text())) if _ABSOLUTE.match(text)]
    assert not found, "absolute machine paths in committed results:\n" + "\n".join(found[:20])
