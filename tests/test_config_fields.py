"""What each config field declares beside its default (`config.knob`): its valid range, and whether adding it keeps
every run's hash (hash-neutral). Both used to live in separate tables that a new field had to be added to by hand."""

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mcjepa.config import (HASH_NEUTRAL, NON_NEGATIVE, RULES, Config, apply_overrides, choice, declared_fields,
                           identity, knob, tiny, validate)

HASHED = Path(__file__).parent / "data" / "hashed_fields.txt"


def _leaves(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        out |= _leaves(value, f"{prefix}{key}.") if isinstance(value, dict) and key != "roots" else {prefix + key}
    return out


def test_a_field_without_a_rule_is_named_on_declaration():
    @dataclass
    class Inner:
        ok: float = knob(1.0, NON_NEGATIVE)
        flag: bool = True  # bools need no rule: their type says what is valid
        forgotten: float = 0.5

    @dataclass
    class Outer:
        inner: Inner = field(default_factory=Inner)

    with pytest.raises(TypeError, match=r"config field inner\.forgotten declares no valid range"):
        declared_fields(Outer())


def test_every_rule_accepts_its_default_and_names_the_field_when_broken():
    defaults = Config()
    for key, (check, words) in RULES.items():
        value = defaults
        for part in key.split("."):
            value = getattr(value, part)
        assert check(value), f"{key}: default {value!r} is not {words}"
    assert len(RULES) >= 70  # every loss coefficient, every choice, every count
    for key, bad, words in (("loss.cycle", -0.1, ">= 0"), ("train.sampling", "both", "'combined' or 'alternate'"),
                            ("model.flow.feature_norm", "l1", "'none', 'l2' or 'center'"),
                            ("loss.smooth_order", 3, "1 or 2"), ("data.flow_jitter_p", 1.5, "in [0, 1]")):
        with pytest.raises(ValueError, match=re.escape(f"{key} must be {words}, got {bad!r}")):
            validate(apply_overrides(tiny(), {key: bad}))
    assert choice("a", "b", "c")[1] == "'a', 'b' or 'c'" and choice("x")[1] == "'x'"


def test_hash_neutral_fields_are_declared_beside_them_and_leave_the_identity_at_their_default():
    assert HASH_NEUTRAL["data.embedded_textures"] == "class" and HASH_NEUTRAL["train.init"] == ""
    keys = _leaves(identity(Config()))
    assert not keys & set(HASH_NEUTRAL)
    moved = apply_overrides(Config(), {"data.embedded_textures": "scene"})
    assert "data.embedded_textures" in _leaves(identity(moved))


def test_the_fields_a_run_hash_covers_are_the_recorded_ones():
    """A field added without `neutral=True` changes the hash of every cached run and every stored evaluation; this
    names it instead of leaving 'stored evaluation is stale' to be puzzled out."""
    recorded = {line for line in HASHED.read_text().splitlines() if line and not line.startswith("#")}
    covered = _leaves(identity(Config()))
    new, gone = sorted(covered - recorded), sorted(recorded - covered)
    assert not new, (f"new config field(s) {new} change the hash of every run: if the default reproduces the "
                     f"behaviour from before the field existed, declare it knob(default, rule, neutral=True) in "
                     f"mcjepa/config.py; if every run should change, add the name(s) to {HASHED}")
    assert not gone, f"field(s) {gone} left the run identity: remove them from {HASHED} (every run hash changed)"
