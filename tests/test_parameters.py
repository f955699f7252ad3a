"""Range checks of every config field, the notebooks' run parameters and the CLI: bad values are errors naming
the parameter and what is valid; edge values (0, 1, the largest) are accepted where they are valid."""

import math

import pytest

from mcjepa import experiments
from mcjepa.__main__ import main as cli
from mcjepa.config import apply_overrides, flat_keys, paper, tiny, to_dict, validate
from mcjepa.data.manifests import main as data_cli
from mcjepa.report import load_json

BAD = [  # (dotted key, value, words the message must contain)
    ("train.lr_encoder", -1.0, ">= 0"), ("train.lr_flow", -1e-9, ">= 0"), ("train.grad_clip", -1.0, "> 0"),
    ("train.grad_clip", 0.0, "> 0"), ("train.weight_decay", -0.1, ">= 0"), ("train.min_lr_ratio", 1.5, "[0, 1]"),
    ("train.batch_size", 0, ">= 1"), ("train.batch_size", -4, ">= 1"), ("train.image_batch_size", 1, ">= 2"),
    ("train.checkpoint_every", 0, ">= 1"), ("train.log_every", 0, ">= 1"), ("train.epochs", True, "integer"),
    ("train.epochs", 2.5, "int"), ("train.epochs", 0, ">= 1"), ("train.steps_per_epoch", -1, ">= 1"),
    ("train.amp", "fp8", "'bf16' or 'none'"), ("train.device", "gpu", "'cuda:N'"), ("train.num_workers", -1, ">= 0"),
    ("train.seed", -1, ">= 0"), ("train.max_feature_norm", 0.0, "> 0"), ("train.warmup_epochs", -1.0, ">= 0"),
    ("train.lr_encoder", math.nan, "finite"), ("train.lr_flow", math.inf, "finite"),
    ("data.image_size", (0, 0), "integers >= 1"), ("data.crop", (64,), "2 integers"),
    ("data.embedded_pairs", 0, ">= 1"), ("data.embedded_size", (64, 64.5), "integers"),
    ("model.encoder.depths", (1, 1), "4 integers"), ("model.encoder.dims", (8, 8, 8, 0), "4 integers >= 1"),
    ("model.encoder.drop_path", 1.0, "[0, 1)"), ("model.expander", (), "must not be empty"),
    ("model.expander", (256, -1), "integers >= 1"), ("model.flow.radius", -1, ">= 1"), ("model.flow.radius", 0, ">= 1"),
    ("model.flow.widths", (), "must not be empty"), ("model.flow.flow_clip", 0.0, "> 0"),
    ("model.flow.strides", (), "decreasing"), ("loss.level_weights", (1.0, -1.0, 1.0), "numbers >= 0"),
    ("loss.smooth_order", 3, "1 or 2"), ("loss.use_occlusion", 1, "True or False"),
] + [(f"loss.{name}", -0.5, ">= 0") for name in ("rec_l1", "rec_l2", "rec_ssim", "smooth_alpha", "vicreg_sim",
                                                  "vicreg_std", "vicreg_cov", "vc_variance", "vc_covariance",
                                                  "reconstruction", "regression", "balance", "cycle")]


@pytest.mark.parametrize("key, value, words", BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_config_value_is_named_with_its_valid_range(key, value, words):
    cfg = tiny()
    with pytest.raises(ValueError) as info:
        apply_overrides(cfg, {key: value})
    assert key in str(info.value) and words in str(info.value), str(info.value)
    validate(cfg)  # a rejected override leaves the config as it was


EDGES = [("train.lr_encoder", 0.0), ("train.grad_clip", math.inf), ("train.batch_size", 1),
         ("train.image_batch_size", 2), ("train.checkpoint_every", 1), ("train.log_every", 1), ("train.epochs", 1),
         ("train.min_lr_ratio", 1.0), ("train.min_lr_ratio", 0.0), ("train.num_workers", 0), ("train.amp", "none"),
         ("train.device", "cuda:1"), ("model.flow.radius", 1), ("model.encoder.drop_path", 0.0),
         ("model.encoder.drop_path", 0.999), ("loss.cycle", 0.0), ("data.image_size", (1, 1)),
         ("data.crop", (2**16, 2**16)), ("train.epochs", 2**62), ("model.expander", (1,)), ("train.seed", 0)]


def _get(data: dict, key: str):
    for part in key.split("."):
        data = data[part]
    return data


@pytest.mark.parametrize("key, value", EDGES, ids=[f"{k}={v!r}" for k, v in EDGES])
def test_edge_values_are_accepted(key, value):
    cfg = apply_overrides(tiny(), {key: value})
    validate(cfg)
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    assert node == value and type(node) is type(value)
    before, after = to_dict(tiny()), to_dict(cfg)
    changed = [k for k in flat_keys(tiny()) if _get(before, k) != _get(after, k)]
    assert changed == ([] if _get(before, key) == value else [key])  # that field and no other


@pytest.mark.parametrize("key", flat_keys(tiny()))
def test_every_field_is_type_checked(key):
    validate(tiny())
    validate(paper())
    cfg = tiny()
    *path, leaf = key.split(".")
    node = cfg
    for part in path:
        node = getattr(node, part)
    setattr(node, leaf, [object()])  # no field accepts a list holding an object
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        validate(cfg)


def test_train_device_cuda_without_a_gpu_is_a_clear_error(tmp_path, monkeypatch):
    import torch

    from mcjepa.train.trainer import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ValueError, match=r"train.device='cuda' but this machine has 0 usable CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu" and resolve_device("cpu").type == "cpu"


@pytest.mark.parametrize("name, value", [("epochs", 2.5), ("steps_per_epoch", 3.9), ("epochs", True),
                                         ("seed", -1), ("epochs", math.nan), ("steps_per_epoch", "3")])
def test_notebook_run_parameters_are_not_truncated(name, value):
    with pytest.raises(ValueError, match=f"parameter {name}"):
        experiments.run_config("tiny", "mc-jepa", **{name: value})


def test_notebook_run_parameters_edges():
    cfg = experiments.run_config("tiny", "m-jepa", epochs=1, steps_per_epoch=3.0, seed=0)
    assert (cfg.train.epochs, cfg.train.steps_per_epoch, cfg.train.seed) == (1, 3, 0)
    with pytest.raises(ValueError, match="train.epochs must be >= 1"):
        experiments.run_config("tiny", "m-jepa", epochs=0)


def test_misspelled_notebook_parameter_is_rejected(tmp_path):
    from mcjepa.reproduce import execute_checked, notebook_path

    path = str(notebook_path("04_ablation_cycle"))
    with pytest.raises(ValueError, match=r"unknown notebook parameter\(s\) \['cofe'\]; valid: .*'coef'"):
        execute_checked(path, str(tmp_path / "out.ipynb"), {"cofe": 0.2}, prepare_only=True)
    assert not (tmp_path / "out.ipynb").exists()
    # the profile's shared parameters are dropped where a notebook does not declare them (00 has no epochs)
    execute_checked(str(notebook_path("00_data_tour")), str(tmp_path / "tour.ipynb"),
                    {"epochs": 1, "runs_dir": str(tmp_path)}, prepare_only=True)
    execute_checked(path, str(tmp_path / "ok.ipynb"), {"coef": 0.2, "epochs": 1}, prepare_only=True)
    assert "coef = 0.2" in (tmp_path / "ok.ipynb").read_text()


CLI_BAD = [
    (["eval-flow", "ckpt", "--scale", "inf"], "--scale: must be a finite float > 0.0, got 'inf'"),
    (["eval-flow", "ckpt", "--scale", "nan"], "--scale: must be a finite float > 0.0, got 'nan'"),
    (["eval-flow", "ckpt", "--scale", "0"], "--scale: must be a finite float > 0.0, got '0'"),
    (["eval-flow", "ckpt", "--max-samples", "-1"], "--max-samples: must be a finite int >= 1, got '-1'"),
    (["eval-flow", "ckpt", "--max-samples", "0"], "--max-samples: must be a finite int >= 1, got '0'"),
    (["train", "--out", "x", "--eval-every", "-1"], "--eval-every: must be a finite int >= 0, got '-1'"),
]


@pytest.mark.parametrize("args, message", CLI_BAD, ids=[" ".join(a[-2:]) for a, _ in CLI_BAD])
def test_cli_rejects_bad_numbers_naming_the_option(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli(args)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_cli_errors_are_one_line_naming_the_thing(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert cli(["train", "--out", str(afile), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {afile}: the run folder (--out) is a file, not a folder\n"
    assert cli(["train", "--set", "train.batch_size=0", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == "error: train.batch_size must be >= 1, got 0\n"
    assert cli(["eval-flow", str(tmp_path / "missing.pt")]) == 2
    assert str(tmp_path / "missing.pt") in capsys.readouterr().err
    assert data_cli(["verify", "sintel", str(tmp_path), "--sample", "-1"]) == 2
    assert "--sample: must be an integer >= 0, got -1" in capsys.readouterr().err


def test_torn_json_results_are_named_and_a_torn_done_marker_resumes(tmp_path):
    (tmp_path / "a.json").write_text('{"x": 1}')
    (tmp_path / "b.json").write_text('{"x": ')
    assert load_json(tmp_path / "a.json") == {"x": 1}
    with pytest.raises(ValueError, match=f"{tmp_path / 'b.json'}: not a valid JSON file"):
        load_json(tmp_path / "b.json")
    cfg = tiny()
    (tmp_path / "done.json").write_text('{"steps": ')
    with pytest.warns(UserWarning, match="done.json: not a valid JSON file"):
        assert not experiments.is_finished(tmp_path, cfg)
    (tmp_path / "done.json").write_text(f'{{"steps": {cfg.total_steps}}}')
    assert experiments.is_finished(tmp_path, cfg)


VALID_OTHER = {"data.embedded_textures": "scene", "loss.supervised_class_weights": "none",
               "data.supervised_colour": "views"}
TOGETHER_WITH = {"model.segmentation_classes": {"train.method": "supervised"}}  # valid only with its method


def test_hash_neutral_knobs_keep_the_run_hash_and_other_values_change_it():
    from mcjepa.config import HASH_NEUTRAL, identity, tiny
    from mcjepa.config import config_hash

    base = tiny()
    assert HASH_NEUTRAL, "the table is exercised below"
    for key, neutral in HASH_NEUTRAL.items():
        section, name = key.split(".")
        assert getattr(getattr(base, section), name) == neutral  # the default reproduces the old behaviour
        assert name not in identity(base)[section]
        other = VALID_OTHER.get(key, {float: 0.25, int: 3, str: "paper", tuple: (0.1, 0.1, 0.1, 0.0)}[type(neutral)])
        changed = apply_overrides(tiny(), {key: other, **TOGETHER_WITH.get(key, {})})
        assert identity(changed)[section][name] == other and config_hash(changed) != config_hash(base)
    other = apply_overrides(tiny(), {"loss.cycle": 0.2})
    assert config_hash(other) != config_hash(base)
