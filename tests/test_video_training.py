"""Training and fine-tuning on your own video: `train --video PATH --init RUN`, `experiments.on_videos`,
`train.init` (the encoder and flow head of a run loaded before step 0), held-out photometric errors."""

import json

import pytest
import torch

from mcjepa.__main__ import main as cli
from mcjepa.config import config_hash, from_dict, to_dict
from mcjepa.data.registry import flow_mix
from mcjepa.data.synthetic_export import export_clip
from mcjepa.data.synthetic_scene import SceneConfig
from mcjepa.data.video import VideoPairs, iter_frames
from mcjepa.eval.photometric import pair_errors, photometric_errors, zero_flow
from mcjepa.experiments import on_videos
from mcjepa.flow_video import compare_on_pairs, default_video
from mcjepa.models.checkpoint import load_init_weights, load_model, read_checkpoint
from mcjepa.models.mcjepa import MCJEPA
from mcjepa.train.trainer import train
from mcjepa.viz.flow import plot_flow_overlay

from tests.test_trainer import micro_config

SMALL = ["--set", "train.epochs=1", "--set", "train.steps_per_epoch=3", "--set", "train.batch_size=2",
         "--set", "data.crop=(64,64)", "--set", "model.flow.strides=(16,8,4)", "--set", "train.log_every=1"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return export_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", num_frames=16,
                       cfg=SceneConfig(height=64, width=80))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A 2-step run on the embedded data: the run a fine-tune starts from."""
    folder = tmp_path_factory.mktemp("base") / "run"
    train(micro_config("m-jepa"), folder, progress=False, stop_at=2)
    return folder


def test_on_videos_makes_plain_config_entries(clip, base, tmp_path):
    cfg = on_videos(micro_config("m-jepa"), [clip, clip], init=base)
    assert cfg.data.flow_datasets == ("video:clip", "video:clip-1")
    assert cfg.data.roots["video:clip"] == str(clip.resolve()) == cfg.data.roots["video:clip-1"]
    assert cfg.train.init == str((base / "checkpoint.pt").resolve())
    assert from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg  # plain data: survives config.json
    without = on_videos(micro_config("m-jepa"), [clip])
    assert config_hash(cfg) != config_hash(without) != config_hash(micro_config("m-jepa"))
    pairs = flow_mix(cfg.data)
    assert len(pairs) == 2 * len(VideoPairs(clip, cfg.data.crop)) and pairs[0]["frame1"].shape == (3, 64, 80)


def test_init_loads_the_encoder_and_flow_head_before_step_0(clip, base, tmp_path):
    cfg = on_videos(micro_config("m-jepa"), [clip], init=base)
    started = train(cfg, tmp_path / "ft", progress=False, stop_at=0).model.state_dict()
    fresh = train(on_videos(micro_config("m-jepa"), [clip]), tmp_path / "fresh", progress=False,
                  stop_at=0).model.state_dict()
    saved = read_checkpoint(base / "checkpoint.pt")["model"]
    assert "upsampler.mask.0.weight" in saved  # the tiny recipe's convex upsampler is part of the flow path
    for name in ("encoder.stem1.0.weight", "flow_head.estimators.2.to_flow.weight", "upsampler.mask.0.weight"):
        assert torch.equal(started[name], saved[name]), name
        assert not torch.equal(fresh[name], saved[name]), name  # so the check above can fail
    assert torch.equal(started["expander.0.weight"], fresh["expander.0.weight"])  # not carried over


def test_cli_fine_tunes_on_a_video_and_resumes(clip, base, tmp_path, capsys):
    args = ["train", "--preset", "tiny", "--method", "m-jepa", "--video", str(clip), "--init", str(base),
            "--out", str(tmp_path / "ft"), "--no-progress", *SMALL]
    assert cli(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 3 and result["last"]["loss/total"] > 0
    state = read_checkpoint(tmp_path / "ft" / "checkpoint.pt")
    assert tuple(state["config"]["data"]["flow_datasets"]) == ("video:clip",)
    assert state["config"]["train"]["init"].endswith("checkpoint.pt")
    started = load_model(base)[0].state_dict()["encoder.stem1.0.weight"]
    assert not torch.equal(started, state["model"]["encoder.stem1.0.weight"])  # it trained from there
    assert cli(args + ["--resume"]) == 0  # finished: resumes at the end, trains nothing
    assert read_checkpoint(tmp_path / "ft" / "checkpoint.pt")["step"] == 3


@pytest.mark.parametrize("flag, message", [("--video", "does not exist"), ("--init", "does not exist"),
                                           ("--init-folder", "not a run folder"),
                                           ("--eval-every", "a video has not")])
def test_cli_bad_paths(clip, tmp_path, capsys, flag, message):
    extra = {"--video": ["--video", str(tmp_path / "missing.mp4")],
             "--init": ["--init", str(tmp_path / "missing_run")],
             "--init-folder": ["--init", str(tmp_path)],
             "--eval-every": ["--video", str(clip), "--eval-every", "5"]}[flag]
    assert cli(["train", "--preset", "tiny", "--method", "m-jepa", "--out", str(tmp_path / "x"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_init_from_another_architecture_is_a_clear_error(base):
    other = micro_config("m-jepa", **{"model.encoder.dims": (16, 32, 48, 64)})
    with pytest.raises(ValueError, match="does not match"):
        load_init_weights(MCJEPA(other.model), base)


def test_photometric_errors_prefer_the_true_shift():
    torch.manual_seed(0)
    image = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 10), size=(32, 40), mode="bicubic").clamp(0, 1)
    frame1, frame2 = image[..., :, :36], image[..., :, 3:39]  # frame2(x) = frame1(x + 3): flow u = -3
    true = torch.zeros(1, 2, 32, 36)
    true[:, 0] = -3.0
    exact = pair_errors(frame1, frame2, true)
    still = pair_errors(frame1, frame2, torch.zeros(1, 2, 32, 36))
    assert exact["photometric"] < 1e-6 and exact["census"] < 0.5 * still["census"]
    assert abs(still["photometric"] - float((frame1 - frame2).abs().mean())) < 1e-6  # zero flow, by hand
    pairs = [{"frame1": frame1[0], "frame2": frame2[0], "name": "p"}]
    table = photometric_errors({"zero": zero_flow, "true": lambda a, b: true}, pairs)
    assert table["true"]["photometric"] < table["zero"]["photometric"] and table["zero"]["per_pair"][0]["name"] == "p"


def test_compare_on_pairs_and_the_overlay_figure(clip, base, tmp_path):
    cfg = on_videos(micro_config("m-jepa"), [clip])
    pair = VideoPairs(clip, cfg.data.crop, split="val")[0]
    pairs = [{**pair, "frame1": pair["frame1"][..., :64], "frame2": pair["frame2"][..., :64]}]  # 64 x 64
    model = load_model(base)[0]
    rows, errors = compare_on_pairs({"base": model}, pairs)
    expected = model.predict_flow(pairs[0]["frame1"][None], pairs[0]["frame2"][None])[0]  # 64 x 64: no padding
    torch.testing.assert_close(rows[0]["flows"]["base"], expected)
    direct = pair_errors(pairs[0]["frame1"][None], pairs[0]["frame2"][None], expected[None])
    assert errors["base"]["census"] == pytest.approx(direct["census"]) and set(errors) == {"zero flow", "base"}
    fig = plot_flow_overlay(rows)
    assert len(fig.axes) == 2 and len(fig.axes[0].collections) == 1  # the panel's arrows, and the legend
    with pytest.raises(ValueError, match="alpha"):
        plot_flow_overlay(rows, alpha=2)


def test_default_video_is_vtest_or_a_generated_clip(tmp_path, monkeypatch):
    import mcjepa.flow_video as flow_video

    monkeypatch.setattr(flow_video, "OPENCV_DOC_DATA", tmp_path / "no_opencv_doc")
    path, what = default_video(tmp_path / "clips", num_frames=6)
    assert path == tmp_path / "clips" / "generated_clip_6.mp4" and "generated" in what
    assert len(list(iter_frames(path))) == 6
    (tmp_path / "no_opencv_doc").mkdir()
    (tmp_path / "no_opencv_doc" / "vtest.avi").touch()
    assert default_video(tmp_path / "clips") == (tmp_path / "no_opencv_doc" / "vtest.avi",
                                                 "OpenCV's sample video vtest.avi (from the opencv-doc package)")


def test_a_steady_pan_is_kept_and_only_the_cut_is_dropped():
    """A textured scene panning 3 px per frame changes every pair by more than the absolute cut bound (0.05);
    the bound is relative to the clip, so the pan is kept and only the jump to another scene is dropped."""
    from skimage import data as skdata

    from mcjepa.data.video import MAX_CHANGE, changing_pairs

    scene = torch.from_numpy(skdata.astronaut()).permute(2, 0, 1).float()[:, ::4, ::4] / 255  # (3, 128, 128)
    other = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1).float()[:, :192:2, :192:2] / 255  # (3, 96, 96)
    pan = [scene[:, :96, 3 * t:3 * t + 96] for t in range(8)]
    frames = torch.stack(pan[:4] + [other] + pan[4:])  # a cut into another scene and back
    change = (frames[1:] - frames[:-1]).abs().mean(dim=(1, 2, 3))
    assert (change[[0, 1, 2, 5, 6, 7]] > MAX_CHANGE).all()  # the pan alone would fail an absolute bound
    assert changing_pairs(frames).tolist() == [True, True, True, False, False, True, True, True]


def test_compared_flows_are_scored_on_the_same_pixels():
    """A flow that points out of the frame drops those pixels for every flow compared with it, not only its own."""
    torch.manual_seed(1)
    frame1, frame2 = torch.rand(1, 3, 16, 20), torch.rand(1, 3, 16, 20)
    away = torch.zeros(1, 2, 16, 20)
    away[:, 0, :, 10:] = 30.0  # the right half leaves the image
    table = photometric_errors({"zero": zero_flow, "away": lambda a, b: away},
                               [{"frame1": frame1[0], "frame2": frame2[0]}])
    left = (frame1 - frame2)[..., :10].abs().mean().item()  # zero flow on the left half only, by hand
    assert table["zero"]["photometric"] == pytest.approx(left, rel=1e-5)
    assert pair_errors(frame1, frame2, zero_flow(frame1, frame2))["photometric"] != pytest.approx(left, rel=1e-5)
