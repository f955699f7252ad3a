"""Encoder pyramid, flow head, MCJEPA wiring, drop path, and the config helpers."""

import json

import pytest
import torch

from mcjepa.config import Config, apply_overrides, flat_keys, from_dict, paper, tiny, to_dict
from mcjepa.models.convnext import ConvNeXtPyramid, drop_path
from mcjepa.models.flow_head import FlowHead
from mcjepa.models.mcjepa import MCJEPA


@pytest.fixture(scope="module")
def paper_encoder():
    torch.manual_seed(0)
    return ConvNeXtPyramid(paper().model.encoder).eval()


def tiny_model(seed: int = 0) -> MCJEPA:
    torch.manual_seed(seed)
    return MCJEPA(tiny().model)


# ----------------------------------------------------------------------------------------------- encoder

def test_tiny_pyramid_strides_channels_shapes():
    cfg = tiny().model.encoder
    encoder = ConvNeXtPyramid(cfg)
    assert encoder.strides == (2, 4, 8, 16, 32)
    assert encoder.channels == (cfg.stem_dim,) + tuple(cfg.dims)
    levels = encoder(torch.rand(2, 3, 64, 96))
    assert [tuple(f.shape) for f in levels] == [
        (2, c, 64 // s, 96 // s) for c, s in zip(encoder.channels, encoder.strides)
    ]
    assert encoder.pool(levels).shape == (2, cfg.dims[-1])


def test_paper_pyramid_strides_channels_shapes_and_size(paper_encoder):
    assert paper_encoder.strides == (2, 4, 8, 16, 32, 64)
    assert paper_encoder.channels == (48, 96, 192, 384, 768, 768)
    with torch.no_grad():
        levels = paper_encoder(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape) for f in levels] == [(1, c, 64 // s, 64 // s) for c, s in
                                                zip(paper_encoder.channels, paper_encoder.strides)]
    params = sum(p.numel() for p in paper_encoder.parameters())
    print(f"paper encoder parameters: {params / 1e6:.2f} M (ConvNeXt-T: 28.6 M with its classifier)")
    assert 20e6 < params < 35e6


def test_encoder_rejects_sizes_not_divisible_by_the_coarsest_stride():
    encoder = ConvNeXtPyramid(tiny().model.encoder)
    with pytest.raises(ValueError, match="divisible by the coarsest stride 32"):
        encoder(torch.rand(1, 3, 48, 64))
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        encoder(torch.rand(1, 1, 64, 64))


@pytest.mark.parametrize("preset", [tiny, paper])
def test_embed_accepts_the_configured_view_size(preset):
    """The VICReg views (paper: 224x224, not a multiple of the stride-64 level) must go through `embed`."""
    cfg = preset()
    cfg.model.expander = (32, 16)
    torch.manual_seed(0)
    model = MCJEPA(cfg.model).eval()
    with torch.no_grad():
        embedding, _ = model.embed(torch.rand(1, 3, *cfg.data.image_size))
    assert embedding.shape == (1, 16)
    assert torch.isfinite(embedding).all()


# ----------------------------------------------------------------------------------------------- flow head

@pytest.mark.parametrize("shared", [True, False])
def test_flow_head_shapes_per_level_and_clip(shared):
    cfg = tiny().model.flow
    cfg.shared_estimator, cfg.flow_clip = shared, 0.5
    channels = (24, 16, 8)
    sizes = [(2, 3), (4, 6), (8, 12)]
    head = FlowHead(cfg, channels)
    torch.manual_seed(0)
    f1 = [torch.randn(2, c, h, w) for c, (h, w) in zip(channels, sizes)]
    f2 = [torch.randn(2, c, h, w) for c, (h, w) in zip(channels, sizes)]
    flows, costs = head(f1, f2, return_costs=True)
    assert [tuple(f.shape) for f in flows] == [(2, 2, h, w) for h, w in sizes]
    assert [tuple(c.shape) for c in costs] == [(2, (2 * cfg.radius + 1) ** 2, h, w) for h, w in sizes]
    for estimator in head.estimators:  # push the residual far beyond the clip, in opposite directions
        estimator.to_flow.bias.data = torch.tensor([10.0, -10.0])
    flows = head(f1, f2)
    for flow in flows:
        assert torch.all(flow[:, 0] == 0.5) and torch.all(flow[:, 1] == -0.5)


def test_flow_head_shares_one_estimator_when_asked():
    cfg = tiny().model.flow
    head = FlowHead(cfg, (8, 8, 8, 8))
    assert all(e is head.estimators[0] for e in head.estimators)
    cfg.shared_estimator = False
    head = FlowHead(cfg, (8, 8, 8, 8))
    assert len({id(e) for e in head.estimators}) == 4


# ----------------------------------------------------------------------------------------------- MCJEPA

def test_forward_flow_shapes_and_zero_flow_at_init():
    model = tiny_model().eval()
    frame1, frame2 = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        out = model.forward_flow(frame1, frame2, return_costs=True)
    strides = tiny().model.flow.strides
    expected = [(2, 2, 64 // s, 96 // s) for s in strides]
    assert [tuple(f.shape) for f in out.flows_fw] == expected
    assert [tuple(f.shape) for f in out.flows_bw] == expected
    assert out.flow_fw.shape == (2, 2, 64, 96) and out.flow_bw.shape == (2, 2, 64, 96)
    assert [f.shape[-2:] for f in out.features1] == [f.shape[-2:] for f in out.flows_fw]
    assert len(out.costs_fw) == len(strides) and out.costs_fw[-1].shape[0] == 2
    # the flow output conv is zero-initialised: zero flow everywhere at init
    for flow in out.flows_fw + out.flows_bw + [out.flow_fw, out.flow_bw]:
        assert torch.all(flow == 0)
    assert model.predict_flow(frame1, frame2).abs().max() == 0


def test_backward_flow_of_ab_is_forward_flow_of_ba():
    model = tiny_model(1).eval()
    with torch.no_grad():
        for estimator in model.flow_head.estimators:  # non-zero flows, so that the comparison means something
            torch.nn.init.normal_(estimator.to_flow.weight, std=0.05)
            estimator.to_flow.bias.data = torch.tensor([0.3, -0.2])
        a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
        ab, ba = model.forward_flow(a, b), model.forward_flow(b, a)
    assert ab.flow_fw.abs().mean() > 0.1
    assert not torch.allclose(ab.flow_fw, ab.flow_bw, atol=1e-3)
    for bw, fw in zip(ab.flows_bw + [ab.flow_bw], ba.flows_fw + [ba.flow_fw]):
        assert torch.allclose(bw, fw, atol=1e-5)
    for f1, f2 in zip(ab.features1, ba.features2):
        assert torch.allclose(f1, f2, atol=1e-6)


def test_drop_path_keeps_the_expectation():
    torch.manual_seed(0)
    x = torch.ones(20000, 3, 2, 2)
    p = 0.3
    y = drop_path(x, p, training=True)
    kept = (y[:, 0, 0, 0] != 0).float()
    # whole samples are dropped or rescaled by 1 / (1 - p)
    assert torch.all((y == 0).all(dim=(1, 2, 3)) | torch.isclose(y, torch.full_like(y, 1 / (1 - p))).all(dim=(1, 2, 3)))
    # mean 1 (std of the mean ~ sqrt(p / (1 - p) / N) = 0.0046; 0.02 is > 4 sigma); drop rate ~ p
    assert y.mean().item() == pytest.approx(1.0, abs=0.02)
    assert kept.mean().item() == pytest.approx(1 - p, abs=0.02)
    assert torch.equal(drop_path(x, p, training=False), x)
    assert torch.equal(drop_path(x, 0.0, training=True), x)


# ----------------------------------------------------------------------------------------------- config

def test_apply_overrides_from_cli_strings_and_dict():
    cfg = apply_overrides(
        tiny(),
        [
            "loss.cycle=0.2",
            "model.flow.radius = 2",
            "train.method=m-jepa",
            "data.crop=(64, 128)",
            "model.encoder.depths=[1, 1, 1, 1]",
            "loss.use_occlusion=False",
        ],
    )
    assert cfg.loss.cycle == 0.2 and cfg.model.flow.radius == 2 and cfg.train.method == "m-jepa"
    assert cfg.data.crop == (64, 128) and cfg.model.encoder.depths == (1, 1, 1, 1) and cfg.loss.use_occlusion is False
    cfg = apply_overrides(tiny(), {"loss.balance": 1, "train.sampling": "alternate"})
    assert cfg.loss.balance == 1.0 and isinstance(cfg.loss.balance, float) and cfg.train.sampling == "alternate"


def test_unknown_override_key_lists_valid_keys():
    with pytest.raises(KeyError) as info:
        apply_overrides(tiny(), {"loss.cylce": 0.2})
    message = str(info.value)
    assert "loss.cylce" in message and "loss.cycle" in message and "model.flow.radius" in message


@pytest.mark.parametrize(
    "override",
    [
        ["train.epochs=1.5"],
        ["train.epochs=abc"],
        {"loss.use_occlusion": 1},
        {"loss.cycle": "big"},
        ["override-without-equals"],
        {"train.method": "supervised"},
    ],
)
def test_wrong_type_or_value_raises(override):
    with pytest.raises(ValueError):
        apply_overrides(tiny(), override)


@pytest.mark.parametrize("key", ["loss.cycle", "loss.balance", "loss.smoothness", "loss.vc"])
def test_negative_coefficient_raises(key):
    with pytest.raises(ValueError, match=key):
        apply_overrides(tiny(), [f"{key}=-0.1"])


@pytest.mark.parametrize("preset", [tiny, paper])
def test_to_dict_from_dict_round_trip(preset):
    cfg = preset()
    assert from_dict(to_dict(cfg)) == cfg
    restored = from_dict(json.loads(json.dumps(to_dict(cfg))))  # tuples -> lists -> tuples
    assert restored == cfg
    assert isinstance(restored.model.flow.strides, tuple)
    other = tiny() if preset is paper else paper()
    assert from_dict(to_dict(other)) != cfg  # the comparison can fail


def test_flat_keys_cover_every_leaf():
    keys = flat_keys(Config())
    assert "model.encoder.dims" in keys and "loss.cycle" in keys and "train.seed" in keys and "data.roots" in keys
    assert not any(k in ("model", "model.encoder", "loss") for k in keys)
