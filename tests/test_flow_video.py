"""`python -m mcjepa flow`: flow of a (here untrained) run on a generated clip: one .flo per pair, readable
videos, any input size (against the model run by hand on a padded input), clear errors."""

import json

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mcjepa.__main__ import main as cli
from mcjepa.config import apply_overrides, tiny
from mcjepa.data.formats import read_flo, write_image
from mcjepa.data.video import VideoPairs, changing_pairs, count_frames, cover_size, frame_source, iter_frames
from mcjepa.flow_video import flow_on_frames, parse_resize
from mcjepa.models.checkpoint import load_model
from mcjepa.models.mcjepa import MCJEPA
from mcjepa.train.checkpoint import save_checkpoint
from mcjepa.train.schedule import build_optimizer


def small_config():
    cfg = tiny()
    return apply_overrides(cfg, {"train.method": "m-jepa", "model.encoder.dims": (16, 16, 24, 32),
                                 "model.encoder.depths": (1, 1, 1, 1), "model.encoder.stem_dim": 8})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """An untrained model saved as a run folder by the trainer's own checkpoint writer; its weights are perturbed
    so that its flow is not zero (the flow head's output layer starts at zero)."""
    folder = tmp_path_factory.mktemp("run")
    cfg = small_config()
    torch.manual_seed(0)
    model = MCJEPA(cfg.model)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    optimizer, scheduler = build_optimizer(model, cfg)
    save_checkpoint(folder / "checkpoint.pt", model, optimizer, scheduler, 0, cfg)
    return folder


def translated_frames(count, height, width, shift=(1, 2), seed=0, cell=6):
    """`count` crops of one smooth random texture (features ~`cell` px), moved by shift = (dy, dx) px per frame:
    (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    big = (height + shift[0] * count + 8, width + shift[1] * count + 8)
    coarse = torch.from_numpy(rng.random((1, 3, big[0] // cell + 2, big[1] // cell + 2), dtype=np.float32))
    texture = F.interpolate(coarse, size=big, mode="bicubic", align_corners=False)[0].clamp(0, 1)
    texture = (texture.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return [texture[t * shift[0]:t * shift[0] + height, t * shift[1]:t * shift[1] + width] for t in range(count)]


def write_folder(folder, frames):
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        write_image(folder / f"frame_{index:03d}.png", frame)
    return folder


def write_mp4(path, frames, fps=5):
    with imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                            macro_block_size=1, quality=10) as writer:
        for frame in frames:
            writer.append_data(frame)
    return path


def read_video(path):
    with imageio.get_reader(path, format="FFMPEG") as reader:
        return [frame for frame in reader]


def test_folder_gives_one_flo_per_pair_and_two_readable_videos(run, tmp_path):
    folder = write_folder(tmp_path / "frames", translated_frames(5, 48, 64))
    summary = flow_on_frames(run, folder, tmp_path / "out", device="cpu", progress=False)
    flows = sorted((tmp_path / "out" / "flow").glob("*.flo"))
    assert [f.name for f in flows] == [f"{t:06d}.flo" for t in range(4)] and summary["pairs"] == 4
    assert all(read_flo(f).shape == (48, 64, 2) for f in flows)
    colour, side = read_video(tmp_path / "out" / "flow.mp4"), read_video(tmp_path / "out" / "side_by_side.mp4")
    assert len(colour) == len(side) == 4
    assert colour[0].shape == (48, 64, 3) and side[0].shape == (48, 128, 3)
    # the left half of the side-by-side video is frame t itself (up to H.264 compression), not its neighbours
    source = translated_frames(5, 48, 64)
    error = [np.abs(side[1][:, :64].astype(float) - source[t]).mean() for t in (0, 1, 2)]
    assert error[1] < 0.5 * min(error[0], error[2])
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["pairs"] == 4
    assert not list((tmp_path / "out").glob(".*partial*"))


def test_odd_size_is_padded_and_cropped_like_a_hand_padded_input(run, tmp_path):
    first, second = translated_frames(2, 37, 53)
    write_image(tmp_path / "a.png", first)
    write_image(tmp_path / "b.png", second)
    flow_on_frames(run, [tmp_path / "a.png", tmp_path / "b.png"], tmp_path / "out", device="cpu", progress=False)
    written = read_flo(tmp_path / "out" / "flow" / "000000.flo")
    assert written.shape == (37, 53, 2)
    model, _ = load_model(run)
    assert model.stride == 32
    frames = [torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in (first, second)]
    padded = [F.pad(f, (0, 64 - 53, 0, 64 - 37), mode="replicate") for f in frames]  # to 64 x 64 by hand
    expected = model.predict_flow(*padded)[0, :, :37, :53].permute(1, 2, 0).numpy()
    assert np.abs(written).max() > 1e-2  # a real flow, not the untrained zero
    np.testing.assert_allclose(written, expected, atol=1e-5)
    zero_padded = [F.pad(f, (0, 64 - 53, 0, 64 - 37)) for f in frames]  # the padding mode matters: not zeros
    assert np.abs(model.predict_flow(*zero_padded)[0, :, :37, :53].permute(1, 2, 0).numpy() - written).max() > 1e-4


def test_video_input_max_frames_and_resize(run, tmp_path):
    video = write_mp4(tmp_path / "clip.mp4", translated_frames(6, 48, 64))
    assert count_frames(video) == 6 and count_frames(video, 4) == 4
    summary = flow_on_frames(run, video, tmp_path / "out", device="cpu", max_frames=4, resize=(24, 32),
                             progress=False)
    flows = sorted((tmp_path / "out" / "flow").glob("*.flo"))
    assert len(flows) == 3 and read_flo(flows[0]).shape == (24, 32, 2) and summary["fps"] == 5
    # a second, shorter run into the same folder leaves no stale pair behind
    flow_on_frames(run, video, tmp_path / "out", device="cpu", max_frames=2, progress=False)
    assert len(list((tmp_path / "out" / "flow").glob("*.flo"))) == 1
    assert len(read_video(tmp_path / "out" / "flow.mp4")) == 1


def test_cli_flow_prints_the_summary(run, tmp_path, capsys):
    folder = write_folder(tmp_path / "frames", translated_frames(3, 32, 40))
    code = cli(["flow", str(run), str(folder), "--out", str(tmp_path / "out"), "--device", "cpu", "--resize", "0.5",
                "--no-progress"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pairs"] == 2 and summary["size"] == [16, 20] and summary["device"] == "cpu"


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("unsupported", "suffix '.txt' is not supported"),
    ("one_frame", "at least 2"),
    ("empty_folder", "holds no frames"),
    ("not_a_run", "not a run folder"),
    ("not_a_checkpoint", "cannot be read"),
    ("different_sizes", "all frames must have one size"),
    ("no_gpu", "usable CUDA GPU"),
])
def test_cli_flow_errors_name_the_problem(run, tmp_path, capsys, case, message):
    frames = write_folder(tmp_path / "frames", translated_frames(1, 32, 32))
    inputs, model = [str(frames)], str(run)
    if case == "missing":
        inputs = [str(tmp_path / "nope.mp4")]
    elif case == "unsupported":
        (tmp_path / "notes.txt").write_text("x")
        inputs = [str(tmp_path / "notes.txt"), str(tmp_path / "notes.txt")]
    elif case == "empty_folder":
        (tmp_path / "empty").mkdir()
        inputs = [str(tmp_path / "empty")]
    elif case == "not_a_run":
        model = str(tmp_path)
    elif case == "not_a_checkpoint":
        (tmp_path / "fake.pt").write_bytes(b"not a checkpoint")
        model = str(tmp_path / "fake.pt")
    elif case == "different_sizes":
        write_image(tmp_path / "big.png", translated_frames(1, 40, 48)[0])
        inputs = [str(frames / "frame_000.png"), str(tmp_path / "big.png")]
    if case == "no_gpu" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    device = "cuda" if case == "no_gpu" else "cpu"
    code = cli(["flow", model, *inputs, "--out", str(tmp_path / "out"), "--no-progress", "--device", device])
    assert code == 2
    assert message in capsys.readouterr().err


def test_parse_resize():
    assert parse_resize("96x128") == (96, 128) and parse_resize("0.5") == 0.5 and parse_resize(None) is None
    for bad in ("0x10", "-1", "nan", "big", "3x"):
        with pytest.raises(ValueError, match="HxW"):
            parse_resize(bad)


def test_frame_source_kinds(tmp_path):
    folder = write_folder(tmp_path / "frames", translated_frames(3, 16, 16))
    kind, paths = frame_source(folder)
    assert kind == "images" and [p.name for p in paths] == ["frame_000.png", "frame_001.png", "frame_002.png"]
    (tmp_path / "x.MP4").touch()
    assert frame_source(tmp_path / "x.MP4") == ("video", tmp_path / "x.MP4")
    assert len(list(iter_frames(folder, max_frames=2))) == 2


def test_video_pairs_hold_out_the_end_and_drop_static_pairs(tmp_path):
    frames = translated_frames(21, 24, 32, shift=(0, 1), cell=16)  # moving, but no cut
    frames[5] = frames[4]  # a repeated frame: pair (4, 5) does not move
    folder = write_folder(tmp_path / "frames", frames)
    train, held_out = VideoPairs(folder, (24, 32)), VideoPairs(folder, (24, 32), split="val")
    names = [int(train[i]["name"].split("/")[1]) for i in range(len(train))]
    held = [int(held_out[i]["name"].split("/")[1]) for i in range(len(held_out))]
    assert held == [18, 19]  # 20 pairs, the last 10 % held out
    assert names == [t for t in range(17) if t != 4]  # pair 17 would share frame 18 with the held-out pair 18
    assert set(names + [n + 1 for n in names]).isdisjoint(held + [h + 1 for h in held])
    assert torch.equal(held_out[0]["frame1"], torch.from_numpy(frames[18]).permute(2, 0, 1).float() / 255)
    with pytest.raises(ValueError, match="at least 4"):
        len(VideoPairs(write_folder(tmp_path / "short", frames[:3]), (24, 32)))


def test_changing_pairs_and_cover_size():
    frames = torch.zeros(4, 3, 2, 2)
    frames[2] = 0.02  # pair 1 moves
    frames[3] = 1.0  # pair 2 is a cut
    assert changing_pairs(frames).tolist() == [False, True, False]
    assert cover_size(576, 768, (96, 128)) == (96, 128) and cover_size(720, 1280, (96, 128)) == (96, 171)
