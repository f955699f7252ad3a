"""A checkpoint whose bytes changed after it was written is refused on load, naming the file: its sha256 is
written beside it (`<checkpoint>.sha256`) at save time and checked by `read_checkpoint`. A checkpoint without
one (older runs) loads with one warning; a crash while a new checkpoint replaces the old leaves a file whose
digest is recorded."""

import hashlib
import os
import warnings

import pytest
import torch

from mcjepa import utils
from mcjepa.models.checkpoint import load_model, read_checkpoint
from mcjepa.models.mcjepa import MCJEPA
from mcjepa.train.checkpoint import save_checkpoint
from mcjepa.train.schedule import build_optimizer
from mcjepa.utils import checksum_path, verify_checksum
from tests.test_trainer import micro_config


def _saved(tmp_path, step=3, seed=0):
    cfg = micro_config("m-jepa")
    torch.manual_seed(seed)
    model = MCJEPA(cfg.model)
    optimizer, scheduler = build_optimizer(model, cfg)
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, optimizer, scheduler, step, cfg)
    return path, model


def _flip_middle_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_the_checksum_file_is_the_files_sha256_in_sha256sum_format(tmp_path):
    path, _ = _saved(tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert checksum_path(path).read_text() == f"{digest}  checkpoint.pt\n"


def test_an_untouched_checkpoint_loads_without_warnings(tmp_path):
    path, model = _saved(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state = read_checkpoint(path)
        loaded, _ = load_model(tmp_path)
    assert state["step"] == 3
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_one_flipped_byte_inside_a_tensor_is_refused_naming_the_file(tmp_path):
    path, model = _saved(tmp_path)
    _flip_middle_byte(path)
    with pytest.raises(ValueError, match="altered, truncated or corrupted after it was written") as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="altered"):
        load_model(tmp_path)
    # what the checksum catches: without it the flipped byte loads silently, as a changed weight
    checksum_path(path).unlink()
    with pytest.warns(UserWarning, match="has no checksum"):
        loaded, _ = load_model(tmp_path)
    changed = [name for name, value in model.state_dict().items()
               if not torch.equal(loaded.state_dict()[name], value)]
    # one tensor, which may have several names: the flow head shares its estimator across levels
    assert len({loaded.state_dict()[name].data_ptr() for name in changed}) == 1, changed


def test_a_checkpoint_without_checksum_loads_with_one_warning(tmp_path):
    path, _ = _saved(tmp_path)
    checksum_path(path).unlink()
    with pytest.warns(UserWarning) as record:
        read_checkpoint(path)
        read_checkpoint(path)
    assert len(record) == 1 and str(path) in str(record[0].message)


def test_a_damaged_checksum_file_is_named(tmp_path):
    path, _ = _saved(tmp_path)
    checksum_path(path).write_text("not a digest\n")
    with pytest.raises(ValueError, match="not a sha256 checksum file") as info:
        read_checkpoint(path)
    assert str(checksum_path(path)) in str(info.value)


def test_a_crash_while_replacing_leaves_a_verifiable_checkpoint(tmp_path, monkeypatch):
    path, _ = _saved(tmp_path, step=3)
    old = hashlib.sha256(path.read_bytes()).hexdigest()
    real_replace = os.replace

    def crash_on_the_checkpoint(src, dst):
        if str(dst) == str(path):
            raise OSError(5, "simulated crash")
        return real_replace(src, dst)

    monkeypatch.setattr(utils.os, "replace", crash_on_the_checkpoint)
    with pytest.raises(OSError):
        _saved(tmp_path, step=6, seed=1)
    monkeypatch.undo()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == old  # the old checkpoint, still accepted
    assert verify_checksum(path) and read_checkpoint(path)["step"] == 3
    assert len(checksum_path(path).read_text().splitlines()) == 2  # old and the new that never landed
    _saved(tmp_path, step=6, seed=1)
    assert read_checkpoint(path)["step"] == 6 and len(checksum_path(path).read_text().splitlines()) == 1
