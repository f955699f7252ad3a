"""Tests of mcjepa.data.augment: VICReg views and flow-consistent pair augmentation."""

import pytest
import torch
import torch.nn.functional as F

from mcjepa.data.augment import (ColourViews, FlowAugment, VICRegAugConfig, VICRegViews, blur_kernel_size,
                                 step_seed)
from mcjepa.models.warp import inside_image_mask, warp

# -- helpers -------------------------------------------------------------------------------------------------


def smooth_texture(batch, height, width, cells=8, seed=0):
    """Smooth random texture in [0, 1]: low-res noise upsampled bilinearly (B, 3, H, W)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 3, height // cells + 2, width // cells + 2, generator=g)
    return F.interpolate(low, size=(height, width), mode="bicubic", align_corners=True).clamp(0, 1)


def translated_pair(batch=3, height=48, width=64, shift=(3.0, -2.0)):
    """frame2 = frame1 moved by a constant flow f, so that warp(frame2, f) == frame1 in the interior."""
    frame1 = smooth_texture(batch, height, width)
    flow = torch.tensor(shift).view(1, 2, 1, 1).expand(batch, 2, height, width).contiguous()
    frame2 = warp(frame1, -flow, padding_mode="border")
    return {"frame1": frame1, "frame2": frame2, "flow": flow,
            "valid": torch.ones(batch, height, width, dtype=torch.bool),
            "occlusion": torch.zeros(batch, height, width, dtype=torch.bool)}


def photometric_error(frame1, frame2, flow, margin=3):
    """Mean |warp(frame2, flow) - frame1| over pixels whose target lies inside, away from the border."""
    mask = inside_image_mask(flow)
    mask[..., :margin, :] = 0
    mask[..., -margin:, :] = 0
    mask[..., :, :margin] = 0
    mask[..., :, -margin:] = 0
    diff = (warp(frame2, flow) - frame1).abs().mean(1, keepdim=True)
    return float((diff * mask).sum() / mask.sum().clamp(min=1))


# -- FlowAugment ---------------------------------------------------------------------------------------------


def test_flow_augment_gt_flow_still_warps_after_crop_flip_scale():
    batch = translated_pair()
    assert photometric_error(batch["frame1"], batch["frame2"], batch["flow"]) < 1e-5  # the test data is right
    aug = FlowAugment(crop_size=(32, 48), hflip_p=1.0, vflip_p=0.5, scale_range=(0.85, 1.15), jitter_p=0.0)
    out, params = aug(batch, seed=5, return_params=True)
    assert out["frame1"].shape == (3, 3, 32, 48) and out["flow"].shape == (3, 2, 32, 48)
    assert out["valid"].dtype == torch.bool and out["valid"].shape == (3, 32, 48) and out["valid"].all()
    assert not (params["scale"] == 1).all()  # scaling did happen
    # hand-computed transformed flow: (u, v) -> (-s u, +-s v)
    s = params["scale"].view(-1, 1, 1)
    sign_v = torch.where(params["vflip"], -1.0, 1.0).view(-1, 1, 1)
    torch.testing.assert_close(out["flow"][:, 0], (-3.0 * s).expand(-1, 32, 48))
    torch.testing.assert_close(out["flow"][:, 1], (-2.0 * s * sign_v).expand(-1, 32, 48))
    good = photometric_error(out["frame1"], out["frame2"], out["flow"])
    wrong_flow = out["flow"].clone()
    wrong_flow[:, 0] = -wrong_flow[:, 0]  # flipped the field but forgot to negate u
    wrong = photometric_error(out["frame1"], out["frame2"], wrong_flow)
    assert good < 0.01, good
    assert wrong > 5 * good and wrong > 0.02, (good, wrong)


def test_flow_augment_crop_and_flips_match_plain_slicing():
    g = torch.Generator().manual_seed(1)
    bsz, height, width, h, w = 6, 20, 30, 12, 17
    batch = {"frame1": torch.rand(bsz, 3, height, width, generator=g),
             "frame2": torch.rand(bsz, 3, height, width, generator=g),
             "flow": torch.randn(bsz, 2, height, width, generator=g) * 4,
             "valid": torch.rand(bsz, height, width, generator=g) > 0.3,
             "occlusion": torch.rand(bsz, height, width, generator=g) > 0.7,
             "name": [f"s{i}" for i in range(bsz)]}
    aug = FlowAugment(crop_size=(h, w), hflip_p=0.5, vflip_p=0.5, jitter_p=0.0)
    seen_h, seen_v, seen_plain = False, False, False
    for seed in range(3):
        out, params = aug(batch, seed=seed, return_params=True)
        assert out["name"] == batch["name"]
        for i in range(bsz):  # independent reference: slicing, torch.flip, sign changes
            ox, oy = (int(v) for v in params["offset"][i])
            keys = ("frame1", "frame2", "flow", "valid", "occlusion")
            ref = {k: batch[k][i][..., oy:oy + h, ox:ox + w] for k in keys}
            if params["hflip"][i]:
                ref = {k: v.flip(-1) for k, v in ref.items()}
                ref["flow"] = ref["flow"] * torch.tensor([-1.0, 1.0]).view(2, 1, 1)
            if params["vflip"][i]:
                ref = {k: v.flip(-2) for k, v in ref.items()}
                ref["flow"] = ref["flow"] * torch.tensor([1.0, -1.0]).view(2, 1, 1)
            ref["flow"] = ref["flow"] * ref["valid"]  # sparse GT is resampled by its mask: 0 where invalid
            for key, value in ref.items():
                if value.dtype == torch.bool:
                    assert torch.equal(out[key][i], value), key
                else:
                    torch.testing.assert_close(out[key][i], value, atol=1e-4, rtol=0)  # float32 resampling
        seen_h |= bool(params["hflip"].any())
        seen_v |= bool(params["vflip"].any())
        seen_plain |= bool((~params["hflip"] & ~params["vflip"]).any())
    assert seen_h and seen_v and seen_plain


def test_flow_augment_same_colour_and_crop_on_both_frames_but_not_across_batch():
    image = smooth_texture(1, 24, 32).expand(4, 3, 24, 32).contiguous()
    batch = {"frame1": image, "frame2": image.clone()}
    aug = FlowAugment(crop_size=(16, 20), hflip_p=0.5, jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=1.0, gamma=(0.7, 1.4))
    out = aug(batch, seed=3)
    torch.testing.assert_close(out["frame1"], out["frame2"], atol=1e-6, rtol=0)
    assert not torch.allclose(out["frame1"][0], image[0, :, :16, :20])  # colour changed
    for i in range(1, 4):  # each sample gets its own draw (no same_on_batch)
        assert (out["frame1"][i] - out["frame1"][0]).abs().max() > 1e-2
    asym = FlowAugment(crop_size=(16, 20), jitter_p=1.0, asymmetric=0.2)(batch, seed=3)
    assert (asym["frame1"] - asym["frame2"]).abs().max() > 1e-3  # the asymmetric part does differ


def test_flow_augment_seed_reproducible_and_global_rng_untouched():
    batch = translated_pair(batch=2, height=24, width=32)
    aug = FlowAugment(crop_size=(16, 24), hflip_p=0.5, scale_range=(0.9, 1.1))
    state = torch.get_rng_state()
    a, b = aug(batch, seed=step_seed(0, 7)), aug(batch, seed=step_seed(0, 7))
    assert torch.equal(torch.get_rng_state(), state)
    for key in ("frame1", "frame2", "flow", "valid"):
        assert torch.equal(a[key], b[key]), key
    c = aug(batch, seed=step_seed(0, 8))
    assert not torch.equal(a["frame1"], c["frame1"])
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert torch.equal(aug(batch, generator=g1)["frame1"], aug(batch, generator=g2)["frame1"])


def test_flow_augment_rejects_bad_input():
    aug = FlowAugment(crop_size=(40, 40))
    with pytest.raises(ValueError, match="frame2"):
        aug({"frame1": torch.rand(1, 3, 50, 50)})
    with pytest.raises(ValueError, match="larger"):
        aug({"frame1": torch.rand(1, 3, 30, 50), "frame2": torch.rand(1, 3, 30, 50)})
    with pytest.raises(ValueError, match="flow"):
        aug({"frame1": torch.rand(1, 3, 50, 50), "frame2": torch.rand(1, 3, 50, 50), "flow": torch.rand(1, 2, 5, 5)})


# -- VICRegViews ---------------------------------------------------------------------------------------------

IDENTITY_CROP = dict(min_scale=1.0, max_scale=1.0, ratio=(1.0, 1.0), hflip_p=0.0)


def test_vicreg_views_shapes_range_and_views_differ():
    images = smooth_texture(4, 40, 48)
    view1, view2 = VICRegViews((32, 32), VICRegAugConfig.tiny())(images, seed=0)
    assert view1.shape == view2.shape == (4, 3, 32, 32)
    for v in (view1, view2):
        assert v.dtype == torch.float32 and v.min() >= 0 and v.max() <= 1
    assert (view1 - view2).abs().mean() > 0.02
    assert (view1[0] - view1[1]).abs().mean() > 0.02  # per-image draws


def test_vicreg_views_reproducible_with_seed():
    images = smooth_texture(3, 32, 32)
    views = VICRegViews((24, 24))
    state = torch.get_rng_state()
    a1, a2 = views(images, seed=42)
    b1, b2 = views(images, seed=42)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    c1, _ = views(images, seed=43)
    assert not torch.equal(a1, c1)


def test_vicreg_solarize_is_exact_threshold_half():
    image = torch.tensor([0.0, 0.2, 0.49, 0.5, 0.51, 0.7, 0.9, 1.0, 0.3]).view(1, 1, 3, 3).expand(1, 3, 3, 3)
    image = image.contiguous()
    views = VICRegViews(
        (3, 3), jitter_p=0.0, grayscale_p=0.0, blur_p=(0.0, 0.0), solarize_p=(0.0, 1.0), **IDENTITY_CROP
    )
    view1, view2 = views(image, seed=0)
    expected = torch.tensor([0.0, 0.2, 0.49, 0.5, 0.49, 0.3, 0.1, 0.0, 0.3]).view(1, 1, 3, 3).expand(1, 3, 3, 3)
    torch.testing.assert_close(view2, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(view1, image, atol=1e-6, rtol=0)  # view 1 never solarised


def test_vicreg_grayscale_p1_gives_equal_channels():
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    view1, view2 = VICRegViews((16, 16), grayscale_p=1.0)(images, seed=1)
    for v in (view1, view2):
        torch.testing.assert_close(v[:, 0], v[:, 1], atol=1e-6, rtol=0)
        torch.testing.assert_close(v[:, 1], v[:, 2], atol=1e-6, rtol=0)
    view1, _ = VICRegViews((16, 16), grayscale_p=0.0, jitter_p=0.0)(images, seed=1)
    assert (view1[:, 0] - view1[:, 1]).abs().max() > 0.1


def test_vicreg_view1_always_blurred_view2_rarely():
    checker = ((torch.arange(16).view(1, 16) + torch.arange(16).view(16, 1)) % 2).float()
    images = checker.expand(8, 3, 16, 16).contiguous()
    views = VICRegViews((16, 16), jitter_p=0.0, grayscale_p=0.0, solarize_p=(0.0, 0.0), blur_sigma=(1.0, 1.0),
                        blur_kernel_fraction=0.3, **IDENTITY_CROP)
    view1, view2 = views(images, seed=0)
    contrast1 = (view1 - 0.5).abs().amax(dim=(1, 2, 3))
    assert (contrast1 < 0.3).all()  # sigma 1 blur of a 1-px checkerboard nearly flattens it
    assert ((view2 - images).abs().amax(dim=(1, 2, 3)) < 1e-6).sum() >= 4  # p 0.1: most untouched


def test_colour_views_change_colour_per_image_and_never_move_a_pixel():
    images = smooth_texture(4, 16, 20)
    colour = ColourViews(VICRegAugConfig(jitter_p=1.0, grayscale_p=0.0))
    out = colour(images, seed=3)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, colour(images, seed=3)) and not torch.equal(out, colour(images, seed=4))
    changes = (out - images).abs().mean(dim=(1, 2, 3))
    assert (changes > 0.01).all() and changes.max() - changes.min() > 0.005  # every image, each its own draw
    # colour only: shuffling the pixels before or after gives the same images (no crop, flip or blur)
    order = torch.randperm(16 * 20, generator=torch.Generator().manual_seed(0))
    shuffle = lambda x: x.flatten(2)[:, :, order].view_as(x)  # noqa: E731
    torch.testing.assert_close(colour(shuffle(images), seed=3), shuffle(out), atol=1e-5, rtol=0)
    grey = ColourViews(VICRegAugConfig(jitter_p=0.0, grayscale_p=1.0))(images, seed=0)
    torch.testing.assert_close(grey[:, 0], grey[:, 2], atol=1e-6, rtol=0)
    assert torch.equal(ColourViews(VICRegAugConfig(jitter_p=0.0, grayscale_p=0.0))(images, seed=0), images)
    with pytest.raises(ValueError, match="ColourViews"):
        colour(images[:, :2])


def test_blur_kernel_size_rule():
    assert blur_kernel_size((224, 224), 0.1) == 23
    assert blur_kernel_size((32, 40), 0.1) == 3
    assert blur_kernel_size((64, 64), 0.1) == 7
