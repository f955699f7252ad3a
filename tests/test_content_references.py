"""The content instruments: the probe's class weights, the reference rows (raw colour, untrained, supervised)
and the floor-to-ceiling fraction, each against a hand-computed case or a slow loop."""

import math

import pytest
import torch

from mcjepa.config import apply_overrides, for_method, tiny, validate
from mcjepa.eval.davis import evaluate_davis
from mcjepa.eval.references import (OneHotLabels, OneHotMasks, label_features, range_fraction, range_share_text,
                                    raw_colour_fn)
from mcjepa.eval.segmentation import LinearProbeConfig, class_weights, linear_probe_segmentation


class _Shapes(torch.utils.data.Dataset):
    """16x16 label maps: background 0 with one 8x8 square of class 1 or 2 (a quarter of the pixels)."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            label = torch.zeros(16, 16, dtype=torch.long)
            top, left = (int(v) for v in torch.randint(0, 9, (2,), generator=g))
            label[top:top + 8, left:left + 8] = 1 + i % 2
            self.items.append({"image": torch.rand(3, 16, 16, generator=g), "label": label, "name": str(i)})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _label_features(dataset):
    """A frozen 'encoder' whose features one-hot encode the label of each pixel (looked up by image)."""
    lookup = {item["image"].sum().item(): item["label"] for item in dataset.items}

    def features(images):
        labels = torch.stack([lookup[image.sum().item()] for image in images])
        return torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()

    return features


def test_probe_on_label_features_is_near_perfect_and_on_constant_features_at_the_background_share():
    train, val = _Shapes(12, 0), _Shapes(6, 1)
    cfg = LinearProbeConfig(epochs=20, lr=5e-2, batch_size=4, progress=False)
    both = _Shapes(0, 0)
    both.items = train.items + val.items
    informed = linear_probe_segmentation(_label_features(both), train, val, 3, cfg)
    assert informed["miou"] > 0.95
    constant = linear_probe_segmentation(lambda x: torch.ones(x.shape[0], 4, 16, 16), train, val, 3, cfg)
    background = sum((item["label"] == 0).sum().item() for item in val.items) / (6 * 256)
    assert constant["pixel_acc"] == pytest.approx(background)  # the majority class everywhere
    assert constant["miou"] == pytest.approx(background / 3)  # IoU of background = its share; 0 for the others


def test_balanced_class_weights_hand_computed():
    labels = [torch.tensor([[0, 0, 0, 1], [0, 0, 255, 1]])]  # 5 background, 2 class-1, class 2 absent, 1 ignored
    weights = class_weights(labels, 3, "balanced")
    assert weights.tolist() == pytest.approx([7 / (2 * 5), 7 / (2 * 2), 0.0])
    assert class_weights(labels, 3, "none") is None
    with pytest.raises(ValueError, match="class_weights must be 'none' or 'balanced'"):
        class_weights(labels, 3, "inverse")


def test_raw_colour_features_are_the_pooled_image_at_the_feature_strides():
    images = torch.rand(2, 3, 40, 70)
    last = raw_colour_fn("last")(images)
    assert last.shape == (2, 3, 2, 3)  # ceil(40/32), ceil(70/32)
    # slow reference: the mean of each (possibly partial) 32x32 cell
    for row in range(2):
        for col in range(3):
            cell = images[:, :, row * 32:(row + 1) * 32, col * 32:(col + 1) * 32]
            assert torch.allclose(last[:, :, row, col], cell.mean(dim=(-2, -1)), atol=1e-6)
    concat = raw_colour_fn("concat")(images)
    assert concat.shape == (2, 9, 5, 9)  # the stride-8 grid, 3 channels per stride
    assert torch.allclose(concat[:, :3], torch.nn.functional.avg_pool2d(images, 8, ceil_mode=True))
    with pytest.raises(ValueError, match="levels must be one of"):
        raw_colour_fn("all")


def test_range_fraction_hand_cases():
    assert range_fraction(50.0, [20.0, 30.0], 70.0) == pytest.approx(0.5)  # from the best floor
    assert range_fraction(70.0, [20.0, 30.0], 70.0) == pytest.approx(1.0)
    assert range_fraction(25.0, [20.0, 30.0], 70.0) == pytest.approx(-0.125)  # below a floor: negative
    assert math.isnan(range_fraction(50.0, [60.0], 55.0))  # the ceiling below a floor: no range
    assert math.isnan(range_fraction(float("nan"), [20.0], 70.0))
    assert math.isnan(range_fraction(50.0, [], 70.0))


def test_range_share_text_names_the_side_of_the_floor_instead_of_a_negative_share():
    assert range_share_text(0.5) == "50 %"
    assert range_share_text(0.0) == "0 %"  # on the best floor
    assert range_share_text(1.25) == "125 %"  # above the ceiling: still a share of the range
    assert range_share_text(-1.84) == "below the best floor"
    assert range_share_text(math.nan) == "-" and range_share_text(None) == "-"


def test_supervised_method_needs_its_head_and_the_embedded_stills():
    cfg = for_method(tiny(), "supervised")
    assert cfg.model.segmentation_classes == 6
    validate(cfg)
    assert for_method(tiny(), "vicreg").model.segmentation_classes == 0
    with pytest.raises(ValueError, match="model.segmentation_classes"):
        validate(apply_overrides(tiny(), {"train.method": "supervised"}))
    with pytest.raises(ValueError, match="model.segmentation_classes"):
        validate(apply_overrides(tiny(), {"model.segmentation_classes": 6}))
    with pytest.raises(ValueError, match="no dense labels"):
        validate(apply_overrides(for_method(tiny(), "supervised"), {"data.image_dataset": "imagenet"}))


def test_embedded_class_count_matches_the_class_table():
    from mcjepa.config import EMBEDDED_CLASSES
    from mcjepa.data.synthetic import CLASS_NAMES

    assert EMBEDDED_CLASSES == len(CLASS_NAMES)


def test_segmentation_head_logits_match_a_per_level_reference():
    from mcjepa.models.mcjepa import SEGMENTATION_LEVELS, MCJEPA

    cfg = for_method(tiny(), "supervised")
    torch.manual_seed(0)
    model = MCJEPA(cfg.model).eval()
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        logits = model.segment(images)
        levels = model.encoder(images)
        # slow reference: the head is linear, so its output is the sum of per-level contributions
        weight, bias = model.segmentation_head.weight[:, :, 0, 0], model.segmentation_head.bias
        grid, start, total = levels[1].shape[-2:], 0, bias.view(1, -1, 1, 1).clone()
        for i in SEGMENTATION_LEVELS:
            up = torch.nn.functional.interpolate(levels[i], size=grid, mode="bilinear", align_corners=False)
            part = weight[:, start:start + up.shape[1]]
            total = total + torch.einsum("kc,bchw->bkhw", part, up)
            start += up.shape[1]
        reference = torch.nn.functional.interpolate(total, size=(64, 96), mode="bilinear", align_corners=False)
    assert logits.shape == (2, 6, 64, 96)
    assert torch.allclose(logits, reference, atol=1e-5)
    with pytest.raises(RuntimeError, match="no segmentation head"):
        MCJEPA(tiny().model).segment(images)


def test_supervised_training_lowers_the_cross_entropy(tmp_path):
    """A short supervised run on a few labelled stills learns (its loss falls), and its run evaluates on the
    content tasks only (no flow)."""
    from mcjepa.eval.suite import evaluate_run
    from mcjepa.train.trainer import train

    cfg = apply_overrides(for_method(tiny(), "supervised"),
                          {"train.epochs": 1, "train.steps_per_epoch": 30, "train.image_batch_size": 8,
                           "data.embedded_pairs": 32, "train.lr_encoder": 1e-3, "train.log_every": 1})
    torch.set_num_threads(1)
    result = train(cfg, tmp_path / "run", progress=False)
    rows = [line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    import json

    losses = [json.loads(row)["supervised/ce"] for row in rows]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert result.steps == 30
    evaluated = evaluate_run(tmp_path / "run", tasks=("flow", "segmentation"), progress=False)
    assert set(evaluated) == {"segmentation"}


@pytest.mark.parametrize("colour", ["none", "views"])
def test_supervised_colour_views_reach_the_ceiling_stills_only_when_asked(tmp_path, monkeypatch, colour):
    from mcjepa.data.augment import ColourViews
    from mcjepa.train import trainer

    calls, outputs, seen = [], [], []

    class Recording(ColourViews):
        def forward(self, images, seed=None, generator=None):
            out = super().forward(images, seed=seed, generator=generator)
            calls.append((tuple(images.shape), seed, (out - images).abs().mean().item()))
            outputs.append(out.clone())
            return out

    objective_forward = trainer.Objective.forward

    def watched(self, frames, views, occlusion=True, labelled=None):
        seen.append(labelled[0].clone())
        return objective_forward(self, frames, views, occlusion, labelled)

    monkeypatch.setattr(trainer, "ColourViews", Recording)
    monkeypatch.setattr(trainer.Objective, "forward", watched)
    cfg = apply_overrides(for_method(tiny(), "supervised"),
                          {"train.epochs": 1, "train.steps_per_epoch": 2, "train.image_batch_size": 4,
                           "data.embedded_pairs": 8, "data.supervised_colour": colour})
    trainer.train(cfg, tmp_path / "run", progress=False)
    if colour == "none":
        assert calls == []
    else:
        assert [shape for shape, _, _ in calls] == [(4, 3, 64, 64)] * 2
        assert calls[0][1] != calls[1][1] and all(change > 0 for _, _, change in calls)
        assert all(torch.equal(a, b) for a, b in zip(seen, outputs, strict=True))  # the loss sees the jittered stills
    assert len(seen) == 2


def test_embedded_texture_scale_reaches_the_generated_scenes():
    from mcjepa.data.registry import embedded_scene
    from mcjepa.data.synthetic import render_still

    data = apply_overrides(tiny(), {"data.embedded_texture_scale": 0.6, "data.embedded_textures": "texture"}).data
    scene = embedded_scene(data)
    assert scene.texture_scale == 0.6 and embedded_scene(tiny().data).texture_scale == 3.0
    assert not torch.equal(render_still(5, scene)["image"], render_still(5, embedded_scene(
        apply_overrides(tiny(), {"data.embedded_textures": "texture"}).data))["image"])


def test_add_range_fraction_per_dataset_and_the_no_network_backbone():
    from mcjepa.eval.compare import add_range_fraction, paper_table_rows

    results = {"raw colour": {"embedded": {"miou": 0.2}, "other": {"miou": 0.1}},
               "untrained": {"embedded": {"miou": 0.4}, "other": {"miou": 0.2}},
               "supervised": {"embedded": {"miou": 0.8}},
               "VICReg": {"embedded": {"miou": 0.6}, "other": {"miou": 0.3}},
               "true labels": {"embedded": {"miou": 0.9}}}
    add_range_fraction(results, "miou")
    assert results["true labels"]["embedded"]["range"] == pytest.approx(1.25)  # beyond the ceiling
    assert results["VICReg"]["embedded"]["range"] == pytest.approx(0.5)
    assert results["raw colour"]["embedded"]["range"] == pytest.approx(-0.5)
    assert math.isnan(results["VICReg"]["other"]["range"])  # no ceiling on that dataset
    rows = paper_table_rows(results, "segmentation", "tiny")
    backbones = {label.split(": ")[1].split(" [")[0]: row["backbone"] for label, row in rows.items()}
    assert backbones["raw colour"] == "- (no network)" and backbones["VICReg"] == "ConvNeXt (tiny)"
    assert backbones["true labels"] == "- (the labels)"


def test_one_hot_labels_and_masks_hand_case():
    label = torch.tensor([[0, 2, 255], [1, 1, 0]])
    item = OneHotLabels([{"image": torch.rand(3, 2, 3), "label": label, "name": "a"}], num_classes=3)[0]
    expected = torch.zeros(3, 2, 3)
    for (y, x), c in {(0, 0): 0, (0, 1): 2, (1, 0): 1, (1, 1): 1, (1, 2): 0}.items():
        expected[c, y, x] = 1.0  # (0, 2) is void: all zero
    assert torch.equal(item["image"], expected) and item["name"] == "a"
    with pytest.raises(ValueError, match="num_classes = 2"):
        OneHotLabels([{"image": torch.rand(3, 2, 3), "label": label}], num_classes=2)[0]
    masks = torch.tensor([[[0, 3], [255, 1]], [[3, 3], [0, 0]]])
    frames = OneHotMasks([{"frames": torch.rand(2, 3, 2, 2), "masks": masks}])[0]["frames"]
    assert frames.shape == (2, 4, 2, 2)  # ids 0..3
    assert frames[0, :, 1, 0].sum() == 0 and frames[0, 3, 0, 1] == 1 and frames[1, 3].sum() == 2


def test_label_features_average_the_one_hot_maps_over_the_finest_stride():
    one_hot = torch.zeros(1, 2, 16, 24)
    one_hot[0, 1, :8, :4] = 1.0  # half of the top-left 8x8 cell
    one_hot[0, 0] = 1.0 - one_hot[0, 1]
    pooled = label_features("concat")(one_hot)  # stride 8
    assert pooled.shape == (1, 2, 2, 3)
    assert pooled[0, 1, 0, 0] == 0.5 and pooled[0, 1].sum() == 0.5 and pooled[0, 0, 1, 2] == 1.0
    assert label_features("last")(one_hot).shape == (1, 2, 1, 1)
    with pytest.raises(ValueError, match="levels must be one of"):
        label_features("all")


class _AlignedSquares(_Shapes):
    """64x64 label maps with one 32x32 square of class 1 or 2 on the stride-8 grid."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            label = torch.zeros(64, 64, dtype=torch.long)
            top, left = (8 * int(v) for v in torch.randint(0, 5, (2,), generator=g))
            label[top:top + 32, left:left + 32] = 1 + i % 2
            self.items.append({"image": torch.rand(3, 64, 64, generator=g), "label": label, "name": str(i)})


def test_the_bound_reaches_a_perfect_probe_and_propagation_on_grid_aligned_labels():
    """Labels that the stride-8 grid resolves exactly: the true-label features probe and propagate (nearly)
    perfectly, where the raw colour of random images cannot."""
    cfg = LinearProbeConfig(progress=False, epochs=60)
    train, val = _AlignedSquares(24, 0), _AlignedSquares(8, 1)
    bound = linear_probe_segmentation(label_features("concat"), OneHotLabels(train, 3), OneHotLabels(val, 3), 3, cfg)
    colour = linear_probe_segmentation(raw_colour_fn("concat"), train, val, 3, cfg)
    assert bound["miou"] > 0.9 > colour["miou"] + 0.3  # the logits are upsampled bilinearly: edges blur
    masks = torch.zeros(5, 64, 64, dtype=torch.long)
    for t in range(5):  # a 24x24 object moving 8 px right per frame
        masks[t, 16:40, 8 * t:8 * t + 24] = 1
    sequence = {"frames": torch.rand(5, 3, 64, 64), "masks": masks, "name": "square"}
    bound_jf = evaluate_davis(label_features("concat"), OneHotMasks([sequence]), progress=False)["JF_mean"]
    colour_jf = evaluate_davis(raw_colour_fn("concat"), [sequence], progress=False)["JF_mean"]
    assert bound_jf > 0.9 > colour_jf + 0.3
