"""Census loss: the fast shift loop with its hand-written backward against a direct unfold formula and a
hand-computed case."""

import pytest
import torch
import torch.nn.functional as F

from mcjepa.losses.census import SoftHamming, census_loss, grey255
from mcjepa.losses.photometric import reconstruction_loss


def reference_census(image, reconstruction, mask, radius):
    """UFlow's census loss written out with unfold: every patch materialised, autograd for the gradient."""
    def signature(img):
        grey = 255.0 * (0.2989 * img[:, :1] + 0.5870 * img[:, 1:2] + 0.1140 * img[:, 2:3])
        size = 2 * radius + 1
        patches = F.unfold(grey, size, padding=radius).view(img.shape[0], size * size, *img.shape[-2:])
        diff = patches - grey
        return diff / torch.sqrt(0.81 + diff ** 2)

    sq = (signature(image).detach() - signature(reconstruction)) ** 2
    penalty = ((sq / (0.1 + sq)).sum(dim=1, keepdim=True).abs() + 0.01) ** 0.4
    border = torch.zeros_like(penalty)
    border[..., radius:-radius, radius:-radius] = 1
    weight = border if mask is None else border * mask
    return (penalty * weight).sum() / weight.sum()


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_census_matches_unfold_reference_value_and_gradient(radius):
    gen = torch.Generator().manual_seed(radius)
    image = torch.rand(2, 3, 13, 17, generator=gen, dtype=torch.float64)
    recon = torch.rand(2, 3, 13, 17, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = (torch.rand(2, 1, 13, 17, generator=gen) > 0.3).double()
    ours = census_loss(image, recon, mask, radius)
    (grad_ours,) = torch.autograd.grad(ours, recon)
    ref = reference_census(image, recon, mask, radius)
    (grad_ref,) = torch.autograd.grad(ref, recon)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-10)
    torch.testing.assert_close(grad_ours, grad_ref, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("radius", [1, 3])
def test_soft_hamming_equals_the_per_shift_sum_at_every_pixel(radius):
    """The half-shift loop against the distance summed over every shift by a plain loop, border pixels included
    (zero padding outside), value and gradient (a weighted sum, so that every pixel's gradient counts)."""
    gen = torch.Generator().manual_seed(radius)
    grey = 255 * torch.rand(2, 1, 9, 11, generator=gen, dtype=torch.float64)
    grey_rec = (255 * torch.rand(2, 1, 9, 11, generator=gen, dtype=torch.float64)).requires_grad_()
    weight = torch.rand(2, 1, 9, 11, generator=gen, dtype=torch.float64)

    def per_shift(g, g_rec):
        pad, pad_rec, total = F.pad(g, [radius] * 4), F.pad(g_rec, [radius] * 4), torch.zeros_like(g)
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                window = (..., slice(radius + dy, radius + dy + 9), slice(radius + dx, radius + dx + 11))
                d, d_rec = pad[window] - g, pad_rec[window] - g_rec
                e = d / torch.sqrt(0.81 + d ** 2) - d_rec / torch.sqrt(0.81 + d_rec ** 2)
                total = total + e ** 2 / (0.1 + e ** 2)
        return total

    ours, ref = SoftHamming.apply(grey, grey_rec, radius), per_shift(grey, grey_rec)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    (grad_ours,) = torch.autograd.grad((ours * weight).sum(), grey_rec)
    (grad_ref,) = torch.autograd.grad((ref * weight).sum(), grey_rec)
    torch.testing.assert_close(grad_ours, grad_ref, rtol=1e-10, atol=1e-12)


def test_soft_hamming_gradcheck():
    gen = torch.Generator().manual_seed(0)
    grey = torch.rand(1, 1, 6, 7, generator=gen, dtype=torch.float64) * 10
    grey_rec = (torch.rand(1, 1, 6, 7, generator=gen, dtype=torch.float64) * 10).requires_grad_()
    assert torch.autograd.gradcheck(lambda g: SoftHamming.apply(grey, g, 2), (grey_rec,))


def test_census_hand_computed_single_edge():
    """radius 1, a 3x3 image: only the centre pixel counts. Image: one neighbour brighter by 1/255 per channel
    -> d = 0.2989 + 0.5870 + 0.1140 at that neighbour, t = d / sqrt(0.81 + d^2); the reconstruction is flat ->
    t' = 0 everywhere. D = t^2 / (0.1 + t^2) for that neighbour only; L = (D + 0.01)^0.4."""
    image = torch.zeros(1, 3, 3, 3, dtype=torch.float64)
    image[..., 0, 1] = 1.0 / 255.0
    recon = torch.zeros_like(image)
    d = 0.2989 + 0.5870 + 0.1140
    t_sq = d * d / (0.81 + d * d)
    expected = (t_sq / (0.1 + t_sq) + 0.01) ** 0.4
    assert census_loss(image, recon, None, radius=1).item() == pytest.approx(expected, rel=1e-6)


def test_census_is_brightness_invariant_and_zero_for_identical_images():
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, 16, 16, generator=gen) * 0.5
    floor = 0.01 ** 0.4  # the robust penalty of D = 0
    assert census_loss(image, image.clone()).item() == pytest.approx(floor, abs=1e-6)
    # an additive brightness change leaves all differences equal: the same floor
    assert census_loss(image, image + 0.3).item() == pytest.approx(floor, abs=1e-4)
    assert census_loss(image, torch.rand(1, 3, 16, 16, generator=gen)).item() > 5 * floor


def test_census_weight_in_reconstruction_loss_and_bad_radius():
    gen = torch.Generator().manual_seed(2)
    image, recon = torch.rand(2, 3, 12, 12, generator=gen), torch.rand(2, 3, 12, 12, generator=gen)
    total = reconstruction_loss(image, recon, None, w_l1=0.0, w_l2=0.0, w_ssim=0.0, w_census=2.0, census_radius=2)
    assert total.item() == pytest.approx(2.0 * census_loss(image, recon, None, 2).item(), rel=1e-6)
    with pytest.raises(ValueError, match="radius"):
        census_loss(image, recon, None, 0)
    with pytest.raises(ValueError, match="too small"):
        census_loss(image[..., :6, :6], recon[..., :6, :6], None, 3)


def test_grey255_weights():
    pixel = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert grey255(pixel).item() == pytest.approx(255 * 0.2989)
