"""Tests of the synthetic video generator (mcjepa/data/synthetic*.py).

References are independent of the implementation: hand-computed pixel sets for integer translations, a
per-pixel Python loop with explicit 3x3 homogeneous matrices for flow / visibility / occlusion of random
scenes, and the kit's `warp` for brightness constancy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mcjepa.data.synthetic import (CLASS_NAMES, Layer, SceneConfig, SyntheticFlowPairs, SyntheticSequences,
                                   SyntheticStills, derive_seed, render_pair, render_sequence, render_still)
from mcjepa.data.synthetic_export import export_davis, export_flyingchairs
from mcjepa.data.synthetic_render import render_layers
from mcjepa.data.synthetic_scene import HIGHPASS_STD, class_texture, sample_scene
from mcjepa.models.warp import warp

SMALL = SceneConfig(height=32, width=48)


def _interior(mask: torch.Tensor, border: int = 2) -> torch.Tensor:
    mask = mask.clone()
    mask[..., :border, :] = False
    mask[..., -border:, :] = False
    mask[..., :border] = False
    mask[..., -border:] = False
    return mask


# ------------------------------------------------------------------------------------------ determinism
def test_same_seed_gives_bit_identical_tensors():
    first, second = render_sequence(7, 3), render_sequence(7, 3)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    items = SyntheticFlowPairs(3, seed=5, split="val")[2], SyntheticFlowPairs(3, seed=5, split="val")[2]
    for key in ("frame1", "frame2", "flow", "occlusion", "flow_bw", "occlusion_bw"):
        assert torch.equal(items[0][key], items[1][key]), key
    assert items[0]["name"] == items[1]["name"]


def test_different_seeds_and_splits_differ():
    assert not torch.equal(render_pair(1, SMALL)["frame1"], render_pair(2, SMALL)["frame1"])
    frames = [SyntheticFlowPairs(2, seed=0, cfg=SMALL, split=split)[1]["frame1"] for split in ("train", "val", "test")]
    frames.append(SyntheticFlowPairs(2, seed=1, cfg=SMALL, split="train")[1]["frame1"])
    frames.append(SyntheticFlowPairs(2, seed=0, cfg=SMALL, split="train")[0]["frame1"])
    for i in range(len(frames)):
        for j in range(i + 1, len(frames)):
            assert not torch.equal(frames[i], frames[j]), (i, j)
    seeds = {derive_seed(seed, split, index) for seed in (0, 1) for split in ("train", "val", "test")
             for index in range(500)}
    assert len(seeds) == 2 * 3 * 500
    with pytest.raises(ValueError):
        derive_seed(0, "validation", 0)


def test_render_sequence_shapes_dtypes_and_ranges():
    seq = render_sequence(3, 4, SMALL)
    height, width = SMALL.height, SMALL.width
    expected = {"frames": ((4, 3, height, width), torch.float32), "flows_fw": ((3, 2, height, width), torch.float32),
                "flows_bw": ((3, 2, height, width), torch.float32), "occlusions_fw": ((3, height, width), torch.bool),
                "occlusions_bw": ((3, height, width), torch.bool), "instances": ((4, height, width), torch.int64),
                "classes": ((4, height, width), torch.int64)}
    assert set(seq) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert tuple(seq[key].shape) == shape and seq[key].dtype == dtype, key
    assert 0.0 <= seq["frames"].min() and seq["frames"].max() <= 1.0
    assert SMALL.num_classes == len(CLASS_NAMES) == 6 and CLASS_NAMES[0] == "background"
    assert 0 <= seq["classes"].min() and seq["classes"].max() < SMALL.num_classes
    still = render_still(3, SMALL)
    assert still["image"].shape == (3, height, width) and still["label"].dtype == torch.int64
    with pytest.raises(ValueError):
        render_sequence(0, 0)
    with pytest.raises(ValueError):
        SceneConfig(min_objects=3, max_objects=2)


# ------------------------------------------------------------------------------- brightness constancy
def test_ground_truth_flow_warps_frame2_onto_frame1():
    warped_errors, zero_errors, backward_errors = [], [], []
    for seed in range(8):
        pair = render_pair(100 + seed)
        mask = _interior(~pair["occlusion_fw"])
        assert mask.float().mean() > 0.5
        warped = warp(pair["frame2"][None], pair["flow_fw"][None])[0]
        warped_errors.append((warped - pair["frame1"]).abs().mean(0)[mask].mean().item())
        zero_errors.append((pair["frame2"] - pair["frame1"]).abs().mean(0)[mask].mean().item())
        mask_bw = _interior(~pair["occlusion_bw"])
        warped_bw = warp(pair["frame1"][None], pair["flow_bw"][None])[0]
        backward_errors.append((warped_bw - pair["frame2"]).abs().mean(0)[mask_bw].mean().item())
    assert max(warped_errors) < 0.01, warped_errors
    assert max(backward_errors) < 0.01, backward_errors
    assert np.mean(zero_errors) > 4 * np.mean(warped_errors), (zero_errors, warped_errors)


def test_forward_backward_flows_are_consistent():
    for seed in range(4):
        pair = render_pair(200 + seed)
        mask = _interior(~pair["occlusion_fw"])
        flow_fw = pair["flow_fw"][None]
        round_trip = warp(pair["flow_bw"][None], flow_fw)[0] + pair["flow_fw"]
        error = round_trip.norm(dim=0)[mask]
        assert error.mean() < 0.1 and error.median() < 0.02, (error.mean(), error.median())
        assert pair["flow_fw"].norm(dim=0)[mask].mean() > 10 * error.mean()  # zero backward flow would fail


# ----------------------------------------------------------------------------- hand-built scene
def _square(center, velocity, texture, class_id=2) -> Layer:
    return Layer(class_id=class_id, shape="square", radius=5.5, texture=texture, texture_center=(10.0, 10.0),
                 center=center, velocity=velocity)


def test_occlusion_and_flow_exact_on_hand_built_translation_scene():
    height, width = 48, 64
    generator = torch.Generator().manual_seed(0)
    background = Layer(class_id=0, shape="plane", radius=0.0, texture=torch.rand(3, 80, 90, generator=generator),
                       texture_center=(40.0, 30.0), center=((width - 1) / 2, (height - 1) / 2),
                       padding_mode="reflection")
    texture = torch.rand(3, 21, 21, generator=generator)
    # Half-side 5.5 around integer centres: 11x11 pixel squares, no boundary ties.
    static_d = _square((30.0, 12.0), (0.0, 0.0), texture, class_id=1)   # rows 7..17, cols 25..35 (instance 1)
    moving_a = _square((20.0, 12.0), (3.0, 0.0), texture)               # rows 7..17, cols 15..25 -> 18..28
    leaving_b = _square((58.0, 36.0), (4.0, 0.0), texture, class_id=5)  # rows 31..41, cols 53..63 -> 57..63
    seq = render_layers([background, static_d, moving_a, leaving_b], 2, height, width)

    instances1 = torch.zeros(height, width, dtype=torch.int64)
    instances1[7:18, 25:36] = 1
    instances1[7:18, 15:26] = 2
    instances1[31:42, 53:64] = 3
    instances2 = torch.zeros(height, width, dtype=torch.int64)
    instances2[7:18, 25:36] = 1
    instances2[7:18, 18:29] = 2
    instances2[31:42, 57:64] = 3
    assert torch.equal(seq["instances"][0], instances1)
    assert torch.equal(seq["instances"][1], instances2)
    assert torch.equal(seq["classes"][0], torch.tensor([0, 1, 2, 5])[instances1])

    flow_fw = torch.zeros(2, height, width)
    flow_fw[0][instances1 == 2] = 3.0
    flow_fw[0][instances1 == 3] = 4.0
    assert torch.equal(seq["flows_fw"][0], flow_fw)
    flow_bw = torch.zeros(2, height, width)
    flow_bw[0][instances2 == 2] = -3.0
    flow_bw[0][instances2 == 3] = -4.0
    assert torch.equal(seq["flows_bw"][0], flow_bw)

    occlusion_fw = torch.zeros(height, width, dtype=torch.bool)
    occlusion_fw[7:18, 26:29] = True   # static square D covered by A (A's old column 25 is A, not D)
    occlusion_fw[31:42, 60:64] = True  # B leaves the image (x + 4 > 63)
    occlusion_bw = torch.zeros(height, width, dtype=torch.bool)
    occlusion_bw[7:18, 15:18] = True   # background uncovered by A
    occlusion_bw[31:42, 53:57] = True  # background uncovered by B
    assert torch.equal(seq["occlusions_fw"][0], occlusion_fw)
    assert torch.equal(seq["occlusions_bw"][0], occlusion_bw)

    # Integer translation: brightness constancy is exact up to the float32 rounding of the warp's coordinates.
    warped = warp(seq["frames"][1][None], seq["flows_fw"][0][None])[0]
    assert torch.allclose(warped[:, ~occlusion_fw], seq["frames"][0][:, ~occlusion_fw], atol=1e-5)
    assert not torch.allclose(warped[:, occlusion_fw], seq["frames"][0][:, occlusion_fw], atol=1e-2)


# ------------------------------------------------------------------- random scenes vs a slow reference
def _matrix(layer: Layer, time: float) -> np.ndarray:
    """Homogeneous 3x3 T(t): canonical -> image (independent re-statement of the pose model)."""
    scale = math.exp(layer.log_scale + layer.log_scale_velocity * time)
    angle = layer.angle + layer.angular_velocity * time
    return np.array([[scale * math.cos(angle), -scale * math.sin(angle), layer.center[0] + layer.velocity[0] * time],
                     [scale * math.sin(angle), scale * math.cos(angle), layer.center[1] + layer.velocity[1] * time],
                     [0.0, 0.0, 1.0]])


def _covers(layer: Layer, u: np.ndarray) -> bool:
    """Reference shape tests, written from the documented definitions."""
    r, (x, y) = layer.radius, u
    if layer.shape == "plane":
        return True
    if layer.shape == "disc":
        return math.hypot(x, y) <= r
    if layer.shape == "square":
        return max(abs(x), abs(y)) <= r
    if layer.shape == "ring":
        return 0.55 * r <= math.hypot(x, y) <= r
    if layer.shape == "cross":
        return (abs(x) <= r and abs(y) <= 0.35 * r) or (abs(y) <= r and abs(x) <= 0.35 * r)
    if layer.shape == "triangle":  # vertices at angles -90, 30, 150 degrees, distance 1.25 r
        vertices = [1.25 * r * np.array([math.cos(a), math.sin(a)]) for a in np.radians([-90.0, 30.0, 150.0])]
        signs = []
        for k in range(3):
            a, b = vertices[k], vertices[(k + 1) % 3]
            signs.append((b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]))
        return all(s >= -1e-9 for s in signs) or all(s <= 1e-9 for s in signs)
    raise AssertionError(layer.shape)


def _top_layer(layers, time, point) -> int:
    top = 0
    for index, layer in enumerate(layers):
        u = np.linalg.solve(_matrix(layer, time), np.array([point[0], point[1], 1.0]))[:2]
        if _covers(layer, u):
            top = index
    return top


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_scene_matches_slow_per_pixel_reference(seed):
    cfg = SceneConfig(height=24, width=32, min_objects=3, max_objects=4, max_rotation_deg=8.0,
                      max_scale_change=0.08, object_radius_range=(0.2, 0.35))
    layers = sample_scene(np.random.default_rng(seed), 2, cfg)
    assert len(layers) >= 4 and all(layer.angular_velocity != 0 for layer in layers)
    seq = render_layers(layers, 2, cfg.height, cfg.width)
    for direction, (t, s) in enumerate([(0, 1), (1, 0)]):
        flows = seq["flows_fw" if direction == 0 else "flows_bw"][0].double()
        occlusion = seq["occlusions_fw" if direction == 0 else "occlusions_bw"][0]
        mismatched_occlusion = 0
        for row in range(cfg.height):
            for col in range(cfg.width):
                top = _top_layer(layers, t, (col, row))
                assert seq["instances"][t, row, col] == top, (row, col)
                mapping = _matrix(layers[top], s) @ np.linalg.inv(_matrix(layers[top], t))
                target = mapping @ np.array([col, row, 1.0])
                expected_flow = target[:2] - np.array([col, row])
                assert np.allclose(flows[:, row, col].numpy(), expected_flow, atol=1e-4), (row, col)
                outside = not (0 <= target[0] <= cfg.width - 1 and 0 <= target[1] <= cfg.height - 1)
                hidden = any(_covers(layer, np.linalg.solve(_matrix(layer, s), target)[:2])
                             for layer in layers[top + 1:])
                mismatched_occlusion += int(bool(occlusion[row, col]) != (outside or hidden))
        assert mismatched_occlusion == 0


# ------------------------------------------------------------------------------- labels and datasets
def test_class_and_instance_maps_are_consistent():
    seen_classes = set()
    for seed in range(30):
        still = render_still(seed, SMALL)
        label, instances = still["label"], still["instances"]
        assert torch.equal(label == 0, instances == 0)
        for instance in instances.unique().tolist():
            assert len(label[instances == instance].unique()) == 1, (seed, instance)
        seen_classes |= set(label.unique().tolist())
    assert seen_classes == set(range(SMALL.num_classes))
    seq = render_sequence(4, 5, SMALL)
    mapping = {}
    for instance, klass in zip(seq["instances"].flatten().tolist(), seq["classes"].flatten().tolist()):
        assert mapping.setdefault(instance, klass) == klass  # one class per instance over the whole video


def test_dataset_items_follow_conventions():
    pairs = SyntheticFlowPairs(3, seed=2, cfg=SMALL, split="test")
    assert len(pairs) == 3
    item = pairs[1]
    assert set(item) == {"frame1", "frame2", "flow", "valid", "occlusion", "flow_bw", "occlusion_bw", "name"}
    reference = render_pair(derive_seed(2, "test", 1), SMALL)
    assert torch.equal(item["flow"], reference["flow_fw"]) and torch.equal(item["frame2"], reference["frame2"])
    assert torch.equal(item["occlusion"], reference["occlusion_fw"])
    assert item["valid"].dtype == torch.bool and bool(item["valid"].all())
    assert item["name"] == pairs[1]["name"] != pairs[2]["name"]
    with pytest.raises(IndexError):
        pairs[3]
    still = SyntheticStills(2, cfg=SMALL)[0]
    assert set(still) == {"image", "label", "name"} and still["label"].dtype == torch.int64
    sequence = SyntheticSequences(2, num_frames=3, cfg=SMALL, split="val")[1]
    assert set(sequence) == {"frames", "masks", "classes", "flows_fw", "occlusions_fw", "name"}
    assert sequence["frames"].shape == (3, 3, 32, 48) and sequence["flows_fw"].shape == (2, 2, 32, 48)
    assert torch.equal(sequence["masks"], render_sequence(derive_seed(0, "val", 1), 3, SMALL)["instances"])


# ------------------------------------------------------------------------------------------ exports
def test_export_flyingchairs_layout_and_read_back(tmp_path):
    root = export_flyingchairs(tmp_path / "FlyingChairs_release", 5, seed=3, cfg=SMALL, val_fraction=0.4)
    names = sorted(p.name for p in (root / "data").iterdir())
    assert names == sorted(f"{i:05d}_{kind}" for i in range(1, 6) for kind in ("img1.ppm", "img2.ppm", "flow.flo"))
    # floor((i+1) * 0.4) > floor(i * 0.4) holds for i = 2, 4 only -> pairs 00003 and 00005 are validation pairs.
    assert (root / "FlyingChairs_train_val.txt").read_text() == "1\n1\n2\n1\n2\n"
    from mcjepa.data.flow_datasets import FlyingChairs

    for split, count in (("train", 3), ("val", 2)):
        loaded = FlyingChairs(root, split)
        generated = SyntheticFlowPairs(count, seed=3, cfg=SMALL, split=split)
        assert len(loaded) == count
        for k in range(count):
            disk, truth = loaded[k], generated[k]
            assert torch.equal(disk["flow"], truth["flow"])  # .flo is bit-exact float32
            for key in ("frame1", "frame2"):  # PPM is lossless after 8-bit rounding
                assert torch.equal((disk[key] * 255).round().to(torch.uint8),
                                   (truth[key] * 255).round().to(torch.uint8)), key


def test_export_davis_layout_and_read_back(tmp_path):
    root = export_davis(tmp_path / "DAVIS", 2, 3, seed=1, cfg=SMALL)
    assert (root / "ImageSets" / "2017" / "train.txt").read_text() == "synthetic-train-0000\n"
    assert (root / "ImageSets" / "2017" / "val.txt").read_text() == "synthetic-val-0000\n"
    for name in ("synthetic-train-0000", "synthetic-val-0000"):
        assert sorted(p.name for p in (root / "JPEGImages" / "480p" / name).iterdir()) == [
            "00000.jpg", "00001.jpg", "00002.jpg"]
        assert sorted(p.name for p in (root / "Annotations" / "480p" / name).iterdir()) == [
            "00000.png", "00001.png", "00002.png"]
    from mcjepa.data.content_datasets import DAVIS2017
    from mcjepa.data.formats import read_palette_png

    assert read_palette_png(root / "Annotations" / "480p" / "synthetic-val-0000" / "00000.png").dtype == np.uint8
    loaded = DAVIS2017(root, "val")[0]
    truth = SyntheticSequences(1, num_frames=3, seed=1, cfg=SMALL, split="val")[0]
    assert loaded["name"] == "synthetic-val-0000"
    assert torch.equal(loaded["masks"], truth["masks"])
    difference = (loaded["frames"] - truth["frames"]).abs()
    assert difference.mean() < 0.01 and difference.max() < 0.15, (difference.mean(), difference.max())


# ------------------------------------------------------------------------------------------ texture modes
def _colour_classifier_accuracy(textures: str, scenes: int = 24) -> float:
    """Accuracy, on held-out scenes, of a nearest-class-mean classifier on a pixel's RGB over the object pixels:
    what colour alone says about the class."""
    cfg = SceneConfig(height=48, width=64, textures=textures)

    def pixels(split):
        rgb, labels = [], []
        for i in range(scenes):
            still = render_still(derive_seed(0, split, i), cfg)
            objects = still["label"] > 0
            rgb.append(still["image"].permute(1, 2, 0)[objects])
            labels.append(still["label"][objects])
        return torch.cat(rgb), torch.cat(labels)

    train_rgb, train_labels = pixels("train")
    test_rgb, test_labels = pixels("test")
    classes = sorted(set(train_labels.tolist()) & set(test_labels.tolist()))
    means = torch.stack([train_rgb[train_labels == c].mean(0) for c in classes])
    keep = torch.isin(test_labels, torch.tensor(classes))
    nearest = torch.cdist(test_rgb[keep], means).argmin(1)
    return (torch.tensor(classes)[nearest] == test_labels[keep]).float().mean().item()


def test_camouflage_takes_the_class_information_out_of_colour():
    """With a photo per class, colour alone names most object pixels' class; with one photo for every layer
    of a scene (camouflage) it is near chance (1/5 for the five shapes)."""
    assert _colour_classifier_accuracy("class") > 0.6
    assert _colour_classifier_accuracy("scene") < 0.4


def test_texture_mode_leaves_only_texture():
    """"texture": grey photos less their low frequencies, so neither a pixel's colour (near chance, 1/5) nor
    the stride-8 average brightness that the raw-colour floor reads (its spread a third of the class mode's or
    less) tells the classes apart; each class keeps its own photo, in grey around 0.5."""
    assert _colour_classifier_accuracy("texture") < 0.4

    def pooled_spread(textures):
        images = torch.stack([render_still(i, SceneConfig(textures=textures))["image"] for i in range(8)])
        return F.avg_pool2d(images, 8).std().item()

    assert pooled_spread("texture") < pooled_spread("class") / 3
    cfg = SceneConfig(textures="texture")
    textures = [class_texture(c, cfg) for c in range(1, len(CLASS_NAMES))]
    for texture in textures:
        assert torch.equal(texture[0], texture[1]) and torch.equal(texture[1], texture[2])  # grey
        assert abs(texture.mean().item() - 0.5) < 0.01 and 0.05 < texture.std().item() <= HIGHPASS_STD
    assert all(not torch.equal(a, b) for a, b in zip(textures, textures[1:]))  # a photo per class


def test_texture_modes_draw_from_their_pools():
    rng = np.random.default_rng
    scene = sample_scene(rng(3), 2, SceneConfig(textures="scene", min_objects=3))
    assert all(layer.texture is scene[0].texture for layer in scene[1:])  # camouflage: the background's photo
    classes = sample_scene(rng(3), 2, SceneConfig(textures="class", min_objects=3))
    assert all(layer.texture.shape != classes[0].texture.shape or not torch.equal(layer.texture, classes[0].texture)
               for layer in classes[1:])
    with pytest.raises(ValueError, match="textures must be one of"):
        SceneConfig(textures="stripes")


def test_class_mode_is_the_default_and_unchanged_by_the_new_modes():
    """The "class" mode consumes the random stream exactly as before the other modes existed: the layers' poses
    do not depend on the texture mode (textures are drawn after the class and radius of each layer)."""
    default = render_still(11, SceneConfig())
    explicit = render_still(11, SceneConfig(textures="class"))
    assert torch.equal(default["image"], explicit["image"])
    shared = sample_scene(np.random.default_rng(11), 1, SceneConfig(textures="scene"))
    classes = sample_scene(np.random.default_rng(11), 1, SceneConfig(textures="class"))
    assert [layer.class_id for layer in shared][:2] == [layer.class_id for layer in classes][:2]
