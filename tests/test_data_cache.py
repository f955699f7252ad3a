"""Render-once training data: bit-identical to rendering on the fly, one file per setting, shared on reuse."""

import torch

from mcjepa.config import tiny
from mcjepa.data.cache import RenderedOnce, cache_root
from mcjepa.data.registry import flow_dataset, image_dataset
from mcjepa.data.synthetic import SceneConfig, SyntheticFlowPairs


def small_data():
    cfg = tiny().data
    cfg.embedded_pairs, cfg.embedded_size = 6, (32, 48)
    return cfg


def test_cached_pairs_and_stills_equal_the_rendered_ones():
    cfg = small_data()
    cached, rendered = flow_dataset("embedded", cfg, frames_only=True), flow_dataset("embedded", cfg)
    assert isinstance(cached, RenderedOnce) and len(cached) == len(rendered) == 6
    for i in (0, 5):
        assert set(cached[i]) == {"frame1", "frame2"}
        assert torch.equal(cached[i]["frame1"], rendered[i]["frame1"])
        assert torch.equal(cached[i]["frame2"], rendered[i]["frame2"])
    stills = image_dataset(cfg, images_only=True)
    assert torch.equal(stills[3]["image"], image_dataset(cfg)[3]["image"])


def test_one_file_per_setting_and_reuse_without_rendering(monkeypatch):
    pairs = SyntheticFlowPairs(3, seed=1, cfg=SceneConfig(height=24, width=32), split="train")
    first = RenderedOnce(pairs, ("frame1",), progress=False)
    other = RenderedOnce(SyntheticFlowPairs(3, seed=2, cfg=SceneConfig(height=24, width=32)), ("frame1",),
                         progress=False)
    assert first.path != other.path and first.path.parent == cache_root()

    def no_rendering(*args, **kwargs):
        raise AssertionError("the cached file should have been reused")

    monkeypatch.setattr(RenderedOnce, "_render", no_rendering)
    again = RenderedOnce(pairs, ("frame1",), progress=False)
    assert again.path == first.path and torch.equal(again[2]["frame1"], first[2]["frame1"])
