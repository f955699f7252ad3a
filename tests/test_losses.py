"""Every loss against a hand-computed value or an independent slow re-computation, and zero where it must be."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mcjepa.config import LossConfig
from mcjepa.losses.masked import masked_mean
from mcjepa.losses.occlusion import forward_backward_occlusion
from mcjepa.losses.photometric import reconstruction_loss, ssim_dissimilarity
from mcjepa.losses.regression import cycle_consistency_loss, feature_regression_loss
from mcjepa.losses.smoothness import smoothness_loss
from mcjepa.losses.total import feature_std, flow_loss, ssl_loss
from mcjepa.losses.vicreg import (
    covariance_loss,
    off_diagonal,
    variance_covariance_loss,
    variance_loss,
    vicreg_loss,
)
from mcjepa.models.mcjepa import FlowOutput
from mcjepa.models.warp import warp


def constant_flow(u, v, height, width, dtype=torch.float32):
    flow = torch.empty(1, 2, height, width, dtype=dtype)
    flow[:, 0], flow[:, 1] = u, v
    return flow


def interior_mask(u: int, v: int, height: int, width: int) -> torch.Tensor:
    """(1, 1, H, W): 1 where (x + u, y + v) and (x, y) are both in the image."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    inside = (xs + u >= 0) & (xs + u < width) & (ys + v >= 0) & (ys + v < height)
    return inside.float()[None, None]


# ----------------------------------------------------------------------------------------------- reconstruction

def test_reconstruction_l1_l2_by_hand_with_mask():
    image = torch.tensor([[[[0.1, 0.5], [0.9, 0.3]]]])
    recon = torch.tensor([[[[0.2, 0.5], [0.5, 0.6]]]])
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    # visible differences: -0.1, 0.4, -0.3 (the masked-out one would be 0 here; see the second image below)
    l1 = (0.1 + 0.4 + 0.3) / 3
    l2 = (0.01 + 0.16 + 0.09) / 3
    got = reconstruction_loss(image, recon, mask, w_l1=0.15, w_l2=2.0, w_ssim=0.0)
    assert got.item() == pytest.approx(0.15 * l1 + 2.0 * l2, abs=1e-6)
    # a large error at the masked-out pixel must not count
    recon2 = recon.clone()
    recon2[0, 0, 0, 1] = 1.0e3
    assert reconstruction_loss(image, recon2, mask, 0.15, 2.0, 0.0).item() == pytest.approx(
        0.15 * l1 + 2.0 * l2, abs=1e-6
    )
    # no mask: plain mean over the 4 pixels
    assert reconstruction_loss(image, recon, None, 1.0, 0.0, 0.0).item() == pytest.approx(0.8 / 4, abs=1e-6)


def test_masked_mean_averages_channels_then_visible_positions():
    error = torch.tensor([[[[1.0, 2.0]], [[3.0, 10.0]]]])  # (1, 2, 1, 2): channel means 2 and 6
    assert masked_mean(error, torch.tensor([[[[1.0, 0.0]]]])).item() == pytest.approx(2.0)
    assert masked_mean(error, torch.tensor([[[[1.0, 1.0]]]])).item() == pytest.approx(4.0)
    assert masked_mean(error, None).item() == pytest.approx(4.0)


def slow_ssim_dissimilarity(x: np.ndarray, y: np.ndarray, c1=0.01**2, c2=0.03**2) -> np.ndarray:
    """3x3 box-window SSIM by explicit loops, reflection padding (index -1 -> 1, H -> H-2)."""
    batch, channels, height, width = x.shape

    def reflect(i, n):
        return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)

    out = np.zeros_like(x)
    for b in range(batch):
        for c in range(channels):
            for i in range(height):
                for j in range(width):
                    xs = [
                        x[b, c, reflect(i + di, height), reflect(j + dj, width)]
                        for di in (-1, 0, 1)
                        for dj in (-1, 0, 1)
                    ]
                    ys = [
                        y[b, c, reflect(i + di, height), reflect(j + dj, width)]
                        for di in (-1, 0, 1)
                        for dj in (-1, 0, 1)
                    ]
                    mx, my = sum(xs) / 9, sum(ys) / 9
                    vx = sum((a - mx) ** 2 for a in xs) / 9
                    vy = sum((a - my) ** 2 for a in ys) / 9
                    cxy = sum((a - mx) * (q - my) for a, q in zip(xs, ys)) / 9
                    ssim = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
                    out[b, c, i, j] = min(max((1 - ssim) / 2, 0.0), 1.0)
    return out


def test_ssim_matches_slow_box_window_loop():
    torch.manual_seed(0)
    x = torch.rand(1, 2, 5, 6, dtype=torch.float64)
    y = (x + 0.3 * torch.rand(1, 2, 5, 6, dtype=torch.float64)).clamp(0, 1)
    got = ssim_dissimilarity(x, y)
    assert got.shape == x.shape
    np.testing.assert_allclose(got.numpy(), slow_ssim_dissimilarity(x.numpy(), y.numpy()), atol=1e-10)
    # and the SSIM part of the reconstruction loss is its masked mean
    mask = (torch.rand(1, 1, 5, 6) > 0.4).double()
    expected = (
        slow_ssim_dissimilarity(x.numpy(), y.numpy()).mean(axis=1, keepdims=True) * mask.numpy()
    ).sum() / mask.sum().item()
    assert reconstruction_loss(x, y, mask, 0.0, 0.0, 1.0).item() == pytest.approx(expected, abs=1e-10)


def test_reconstruction_of_identical_images_is_zero():
    torch.manual_seed(1)
    image = torch.rand(2, 3, 6, 7)
    assert reconstruction_loss(image, image.clone(), None, 0.15, 1.0, 0.85).item() == pytest.approx(0.0, abs=1e-6)
    assert reconstruction_loss(image, 1 - image, None, 0.15, 1.0, 0.85).item() > 0.1


# ----------------------------------------------------------------------------------------------- smoothness

def test_smoothness_order1_ramp_constant_image():
    height, width = 4, 5
    image = torch.full((1, 3, height, width), 0.5)
    flow = torch.zeros(1, 2, height, width)
    flow[0, 0] = 0.1 * torch.arange(width).float()  # u = 0.1 x: |d_x u| = 0.1 on 4 x 4 positions, rest 0
    expected_x = 0.1 * (height * (width - 1)) / (2 * height * (width - 1))  # mean over (1, 2, 4, 4) = 0.05
    assert smoothness_loss(flow, image, alpha=10.0, order=1).item() == pytest.approx(expected_x / 2, abs=1e-7)
    # a linear ramp has no second derivative
    assert smoothness_loss(flow, image, alpha=10.0, order=2).item() == pytest.approx(0.0, abs=1e-7)


def test_smoothness_order2_quadratic_constant_image():
    height, width = 4, 5
    image = torch.full((1, 3, height, width), 0.2)
    flow = torch.zeros(1, 2, height, width)
    flow[0, 1] = 0.05 * torch.arange(height).float().pow(2)[:, None]  # v = 0.05 y^2: d_yy v = 0.1 everywhere
    # y part: |d_yy| = 0.1 on (H-2) x W positions of channel v, 0 on channel u -> mean 0.05; x part 0
    assert smoothness_loss(flow, image, alpha=10.0, order=2).item() == pytest.approx(0.05 / 2, abs=1e-7)


def test_smoothness_edge_reduces_weight_by_exp_minus_alpha_dI():
    height, width, alpha, step = 4, 5, 10.0, 0.3
    image = torch.zeros(1, 3, height, width)
    image[..., 3:] = step  # vertical edge between columns 2 and 3 (all channels -> mean_c |dI| = step)
    edge = math.exp(-alpha * step)
    flow = torch.zeros(1, 2, height, width)
    flow[0, 0] = 0.1 * torch.arange(width).float()
    # order 1: d_x positions 0..3, weight 1 except position 2 -> exp(-alpha * step)
    expected = 0.1 * height * (3 + edge) / (2 * height * (width - 1)) / 2
    assert smoothness_loss(flow, image, alpha=alpha, order=1).item() == pytest.approx(expected, rel=1e-5)
    # order 2 on u = 0.02 x^3: d_xx at i = 0.02 ((i+2)^3 - 2 (i+1)^3 + i^3) = 0.12 (i + 1) -> 0.12, 0.24, 0.36 at
    # positions 0..2, the one centred at i + 1 weighted by w_x[i + 1] (docstring, ARFlow): w_x[2] = exp(-alpha step)
    flow[0, 0] = 0.02 * torch.arange(width).float().pow(3)
    expected2 = height * (0.12 + 0.24 * edge + 0.36) / (2 * height * (width - 2)) / 2
    assert smoothness_loss(flow, image, alpha=alpha, order=2).item() == pytest.approx(expected2, rel=1e-5)
    # the x edge does not touch the y weights: a v ramp in y is not reduced
    flow = torch.zeros(1, 2, height, width)
    flow[0, 1] = 0.1 * torch.arange(height).float()[:, None]
    assert smoothness_loss(flow, image, alpha=alpha, order=1).item() == pytest.approx(0.05 / 2, rel=1e-5)


def test_smoothness_bad_order_raises():
    with pytest.raises(ValueError, match="order"):
        smoothness_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4), order=3)


# ----------------------------------------------------------------------------------------------- occlusion

def test_occlusion_constant_flow_and_exact_inverse_is_not_occluded_in_interior():
    height, width = 8, 16
    occ = forward_backward_occlusion(constant_flow(4.0, 0.0, height, width), constant_flow(-4.0, 0.0, height, width))
    assert occ.shape == (1, 1, height, width)
    assert torch.all(occ[..., : width - 4] == 0)
    # pixels mapped out of the image sample zero backward flow: |4|^2 = 16 > 0.01 * 16 + 0.5 -> occluded
    assert torch.all(occ[..., width - 4:] == 1)


def test_occlusion_half_magnitude_backward_flow_is_occluded():
    height, width = 8, 16
    occ = forward_backward_occlusion(constant_flow(4.0, 0.0, height, width), constant_flow(-2.0, 0.0, height, width))
    assert torch.all(occ == 1)  # |4 - 2|^2 = 4 > 0.01 (16 + 4) + 0.5 = 0.7


@pytest.mark.parametrize("d,occluded", [(0.79, 0), (0.80, 1)])
def test_occlusion_threshold_by_hand(d, occluded):
    """f_fw = (3, 0), f_bw = (-3 + d, 0): mismatch d^2 vs 0.01 (9 + (3 - d)^2) + 0.5.
    d = 0.79: 0.6241 < 0.6388 -> visible;  d = 0.80: 0.6400 > 0.6384 -> occluded."""
    height, width = 4, 8
    occ = forward_backward_occlusion(
        constant_flow(3.0, 0.0, height, width), constant_flow(-3.0 + d, 0.0, height, width), alpha1=0.01, alpha2=0.5
    )
    assert torch.all(occ[..., : width - 3] == occluded)


def test_occlusion_vertical_component():
    occ = forward_backward_occlusion(constant_flow(0.0, 0.0, 4, 4), constant_flow(0.0, 0.72, 4, 4))
    assert torch.all(occ == 1)  # 0.5184 > 0.01 * 0.5184 + 0.5
    occ = forward_backward_occlusion(constant_flow(0.0, 0.0, 4, 4), constant_flow(0.0, 0.70, 4, 4))
    assert torch.all(occ == 0)  # 0.49 < 0.5049


# ----------------------------------------------------------------------------------------------- feature regression

@pytest.mark.parametrize("u,v", [(2, 1), (-1, 2)])
def test_feature_regression_zero_for_shifted_features_and_matching_flow(u, v):
    torch.manual_seed(0)
    height, width = 6, 7
    x1 = torch.randn(2, 4, height, width)
    x2 = torch.roll(x1, shifts=(v, u), dims=(-2, -1))  # x2[y + v, x + u] = x1[y, x]
    flow = constant_flow(u, v, height, width).expand(2, -1, -1, -1)
    mask = interior_mask(u, v, height, width).expand(2, -1, -1, -1)
    assert feature_regression_loss(x1, x2, flow, mask).item() == pytest.approx(0.0, abs=1e-10)
    # the opposite flow does not predict the features
    assert (
        feature_regression_loss(x1, x2, -flow, interior_mask(-u, -v, height, width).expand(2, -1, -1, -1)).item() > 0.5
    )


def test_feature_regression_hand_value():
    x1 = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    x2 = torch.tensor([[[[0.0, 5.0]], [[1.0, 0.0]]]])
    zero = torch.zeros(1, 2, 1, 2)
    # position 0: ((1-0)^2 + (3-1)^2) / 2 = 2.5;  position 1: ((2-5)^2 + (4-0)^2) / 2 = 12.5
    assert feature_regression_loss(x1, x2, zero, torch.tensor([[[[1.0, 0.0]]]])).item() == pytest.approx(2.5)
    assert feature_regression_loss(x1, x2, zero, None).item() == pytest.approx(7.5)


# ----------------------------------------------------------------------------------------------- cycle consistency

def test_cycle_consistency_zero_for_opposite_integer_translations():
    torch.manual_seed(1)
    height, width, u, v = 6, 8, 2, 1
    x1 = torch.randn(1, 5, height, width)
    mask = interior_mask(u, v, height, width)  # x + f12 inside (then x + f12 + f21 = x is too)
    loss = cycle_consistency_loss(x1, constant_flow(u, v, height, width), constant_flow(-u, -v, height, width), mask)
    assert loss.item() == pytest.approx(0.0, abs=1e-10)
    # not inverse: positive
    wrong = cycle_consistency_loss(
        x1, constant_flow(u, v, height, width), constant_flow(-u + 1, -v, height, width), mask
    )
    assert wrong.item() > 0.1


# ----------------------------------------------------------------------------------------------- VICReg parts

def test_off_diagonal_hand_matrix():
    matrix = torch.arange(1.0, 10.0).view(3, 3)
    assert off_diagonal(matrix).tolist() == [2.0, 3.0, 4.0, 6.0, 7.0, 8.0]


def loop_std(column):
    n = len(column)
    mean = sum(column) / n
    return math.sqrt(sum((a - mean) ** 2 for a in column) / (n - 1) + 1e-4)


def loop_variance(z: np.ndarray, gamma=1.0) -> float:
    return sum(max(0.0, gamma - loop_std(list(z[:, j]))) for j in range(z.shape[1])) / z.shape[1]


def loop_covariance(z: np.ndarray) -> float:
    n, d = z.shape
    means = [z[:, j].mean() for j in range(d)]
    total = 0.0
    for i in range(d):
        for j in range(d):
            if i != j:
                cov = sum((z[k, i] - means[i]) * (z[k, j] - means[j]) for k in range(n)) / (n - 1)
                total += cov**2
    return total / d


def mixed_scale_samples(n, d, seed):
    """Samples whose dimensions have std from ~0.2 to ~2 (some under the hinge, some over), correlated."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(0.2, 2.0, d, dtype=torch.float64)
    z[:, 1] += 0.7 * z[:, 0]
    return z


def test_variance_and_covariance_loss_match_loops():
    z = mixed_scale_samples(12, 5, 0)
    assert variance_loss(z).item() == pytest.approx(loop_variance(z.numpy()), abs=1e-10)
    assert variance_loss(z, gamma=2.0).item() == pytest.approx(loop_variance(z.numpy(), 2.0), abs=1e-10)
    assert covariance_loss(z).item() == pytest.approx(loop_covariance(z.numpy()), abs=1e-10)
    assert 0 < loop_variance(z.numpy()) and 0 < loop_covariance(z.numpy())


def test_variance_covariance_loss_on_feature_map_matches_loops():
    g = torch.Generator().manual_seed(3)
    features = torch.randn(2, 4, 3, 5, generator=g, dtype=torch.float64) * torch.tensor([0.3, 1.0, 2.0, 0.5]).view(
        1, 4, 1, 1
    )
    rows = [
        features[b, :, y, x].numpy() for b in range(2) for y in range(3) for x in range(5)
    ]  # every position a sample
    z = np.stack(rows)
    expected = 1.5 * loop_variance(z) + 0.04 * loop_covariance(z)
    assert variance_covariance_loss(features, 1.5, 0.04).item() == pytest.approx(expected, abs=1e-6)
    # subsampling: 30 positions down to at most 8 -> every ceil(30 / 8) = 4th row in (b, y, x) order
    sub = z[::4]
    expected_sub = loop_variance(sub) + 0.04 * loop_covariance(sub)
    assert variance_covariance_loss(features, 1.0, 0.04, max_positions=8).item() == pytest.approx(
        expected_sub, abs=1e-6
    )


def numpy_vicreg(x: np.ndarray, y: np.ndarray, sim=25.0, std=25.0, cov=1.0):
    """anchors.md 2.6, written out with numpy."""
    n, d = x.shape
    repr_loss = ((x - y) ** 2).mean()
    x, y = x - x.mean(0), y - y.mean(0)
    std_x, std_y = np.sqrt(x.var(0, ddof=1) + 1e-4), np.sqrt(y.var(0, ddof=1) + 1e-4)
    std_loss = np.maximum(0, 1 - std_x).mean() / 2 + np.maximum(0, 1 - std_y).mean() / 2
    cov_x, cov_y = x.T @ x / (n - 1), y.T @ y / (n - 1)
    off = ~np.eye(d, dtype=bool)
    cov_loss = (cov_x[off] ** 2).sum() / d + (cov_y[off] ** 2).sum() / d
    return sim * repr_loss + std * std_loss + cov * cov_loss, repr_loss, std_loss, cov_loss


def test_vicreg_loss_matches_official_formula():
    x = mixed_scale_samples(10, 6, 1)
    y = x + 0.3 * mixed_scale_samples(10, 6, 2)
    loss, parts = vicreg_loss(x, y)
    total, inv, var, cov = numpy_vicreg(x.numpy(), y.numpy())
    assert loss.item() == pytest.approx(total, rel=1e-5)
    assert parts["invariance"].item() == pytest.approx(inv, rel=1e-5)
    assert parts["variance"].item() == pytest.approx(var, rel=1e-5)
    assert parts["covariance"].item() == pytest.approx(cov, rel=1e-5)
    loss2, _ = vicreg_loss(x, y, 2.0, 3.0, 0.5)
    assert loss2.item() == pytest.approx(numpy_vicreg(x.numpy(), y.numpy(), 2.0, 3.0, 0.5)[0], rel=1e-5)
    # ssl_loss passes the config coefficients through
    cfg = LossConfig(vicreg_sim=2.0, vicreg_std=3.0, vicreg_cov=0.5)
    assert ssl_loss(x, y, cfg)[0].item() == pytest.approx(loss2.item(), rel=1e-6)


def test_feature_std_is_per_channel_std_over_batch_and_positions():
    features = torch.zeros(2, 2, 1, 2)
    features[:, 0] = torch.tensor([[[0.0, 2.0]], [[4.0, 6.0]]])  # channel 0 values 0, 2, 4, 6 -> std 2.582
    stds = feature_std([features])
    assert stds["feat_std/0"].item() == pytest.approx(np.std([0, 2, 4, 6], ddof=1) / 2, rel=1e-5)


# ----------------------------------------------------------------------------------------------- total flow loss

def fake_flow_output(seed=0, batch=2, height=16, width=16):
    """A FlowOutput with two levels (4x4 and 8x8) of random features and small random flows."""
    g = torch.Generator().manual_seed(seed)
    sizes = [(4, 4), (8, 8)]
    feats1 = [torch.randn(batch, 6, h, w, generator=g) for h, w in sizes]
    feats2 = [torch.randn(batch, 6, h, w, generator=g) for h, w in sizes]
    flows_fw = [0.5 * torch.randn(batch, 2, h, w, generator=g) for h, w in sizes]
    flows_bw = [0.5 * torch.randn(batch, 2, h, w, generator=g) for h, w in sizes]
    out = FlowOutput(feats1, feats2, flows_fw, flows_bw,
                     flow_fw=torch.randn(batch, 2, height, width, generator=g),
                     flow_bw=torch.randn(batch, 2, height, width, generator=g))
    frames = torch.rand(batch, 3, height, width, generator=g), torch.rand(batch, 3, height, width, generator=g)
    return out, frames


WEIGHTS = {"reconstruction": "flow/rec", "smoothness": "flow/smooth", "regression": "flow/reg",
           "cycle": "flow/cycle", "vc": "flow/vc"}


def test_flow_loss_total_is_weighted_sum_of_terms_and_zero_weight_removes_a_term():
    out, (frame1, frame2) = fake_flow_output()
    coefficients = {"reconstruction": 2.0, "smoothness": 3.0, "regression": 0.5, "cycle": 0.25, "vc": 4.0}
    cfg = LossConfig(**coefficients)
    total, terms = flow_loss(out, frame1, frame2, cfg)
    assert all(terms[t].item() > 0 for t in WEIGHTS.values())
    expected = sum(coefficients[k] * terms[t] for k, t in WEIGHTS.items())
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["flow/total"].item() == pytest.approx(total.item())
    assert 0.0 <= terms["flow/occluded_fraction"].item() <= 1.0
    for name, term in WEIGHTS.items():
        cfg0 = LossConfig(**{**coefficients, name: 0.0})
        total0, terms0 = flow_loss(out, frame1, frame2, cfg0)
        assert total0.item() == pytest.approx(total.item() - coefficients[name] * terms[term].item(), rel=1e-5), name


def test_flow_loss_terms_pair_each_direction_with_its_own_flow():
    """Without occlusion masks the terms are the sums over both directions of the single losses."""
    out, (frame1, frame2) = fake_flow_output(seed=1)
    cfg = LossConfig(use_occlusion=False, smooth_order=1, level_weights=(0.5, 2.0))
    _, terms = flow_loss(out, frame1, frame2, cfg)
    a = cfg.level_weights
    reg = sum(a[l] * (feature_regression_loss(out.features1[l], out.features2[l], out.flows_fw[l]) +
                      feature_regression_loss(out.features2[l], out.features1[l], out.flows_bw[l])) for l in range(2))
    cyc = sum(a[l] * (cycle_consistency_loss(out.features1[l], out.flows_fw[l], out.flows_bw[l]) +
                      cycle_consistency_loss(out.features2[l], out.flows_bw[l], out.flows_fw[l])) for l in range(2))
    rec = reconstruction_loss(
        frame1, warp(frame2, out.flow_fw, "border"), None, cfg.rec_l1, cfg.rec_l2, cfg.rec_ssim
    ) + reconstruction_loss(frame2, warp(frame1, out.flow_bw, "border"), None, cfg.rec_l1, cfg.rec_l2, cfg.rec_ssim)
    smooth = (smoothness_loss(out.flow_fw / 16, frame1, cfg.smooth_alpha, 1) +
              smoothness_loss(out.flow_bw / 16, frame2, cfg.smooth_alpha, 1))
    for name, value in (("flow/reg", reg), ("flow/cycle", cyc), ("flow/rec", rec), ("flow/smooth", smooth)):
        assert terms[name].item() == pytest.approx(value.item(), rel=1e-5), name
    assert "flow/occluded_fraction" not in terms


@pytest.mark.parametrize("train_flow", [True, False])
def test_feature_losses_reach_the_flow_only_when_asked(train_flow):
    """With feature_losses_train_flow=False the regression/cycle terms must not send gradient into the flow."""
    from mcjepa.config import LossConfig
    from mcjepa.losses.total import flow_loss
    from mcjepa.models.mcjepa import FlowOutput

    torch.manual_seed(0)
    x1, x2 = (torch.randn(1, 4, 6, 8, requires_grad=True) for _ in range(2))  # encoder features
    f12 = (0.7 * torch.randn(1, 2, 6, 8)).requires_grad_()
    f21 = (0.7 * torch.randn(1, 2, 6, 8)).requires_grad_()
    image = torch.rand(1, 3, 6, 8)
    out = FlowOutput([x1], [x2], [f12], [f21], torch.zeros(1, 2, 6, 8), torch.zeros(1, 2, 6, 8))
    cfg = LossConfig(reconstruction=0.0, smoothness=0.0, vc=0.0, regression=1.0, cycle=1.0,
                     feature_losses_train_flow=train_flow)
    total, _ = flow_loss(out, image, image, cfg, occlusion=False)
    total.backward()
    moved = sum(0.0 if f.grad is None else f.grad.abs().sum().item() for f in (f12, f21))
    assert (moved > 0) == train_flow
    assert x1.grad.abs().sum() > 0  # the features are trained either way


def test_coarse_reconstruction_is_zero_for_the_true_translation_and_trains_the_coarse_flow():
    """Frames = a texture and its copy moved by (4, 0) px. Level flows in their own pixels: the true motion is
    (2, 0) at the 1/2 level and (1, 0) at the 1/4 level (images 16x32, flows 8x16 and 4x8, finest stride 2).
    With the true flows the coarse L1 term is ~0 away from the border; with zero flows it is not, and its
    gradient reaches the coarse flows."""
    from mcjepa.losses.total import coarse_reconstruction
    from mcjepa.models.mcjepa import FlowOutput

    gen = torch.Generator().manual_seed(0)
    texture = F.interpolate(torch.rand(1, 3, 8, 20, generator=gen), size=(16, 40), mode="bilinear",
                            align_corners=True)
    frame1, frame2 = texture[..., 4:36], texture[..., 0:32]  # frame2(x) = frame1(x - 4): flow 1->2 is u = +4
    cfg = LossConfig(rec_l1=1.0, rec_ssim=0.0, use_occlusion=False, rec_coarse_weights=(1.0,))

    def output(u_coarse):
        fw = [torch.full((1, 2, 4, 8), 0.0), torch.zeros(1, 2, 8, 16)]
        fw[0][:, 0] = u_coarse
        bw = [-f for f in fw]
        return FlowOutput([], [], [f.requires_grad_() for f in fw], [b for b in bw], fw[1], bw[1])

    right = output(1.0)
    wrong = output(0.0)
    loss_right = coarse_reconstruction(right, frame1, frame2, cfg, occlusion=False)
    loss_wrong = coarse_reconstruction(wrong, frame1, frame2, cfg, occlusion=False)
    assert loss_wrong.item() > 5 * loss_right.item()
    loss_wrong.backward()
    assert wrong.flows_fw[0].grad.abs().sum() > 0
    assert wrong.flows_fw[1].grad is None  # the finest level is not part of the coarse term
    none = coarse_reconstruction(wrong, frame1, frame2, LossConfig(rec_coarse_weights=(0.0,)), occlusion=False)
    assert none.item() == 0.0


def test_rec_coarse_weights_length_is_checked():
    from mcjepa.config import apply_overrides, tiny

    with pytest.raises(ValueError, match="one per flow level but the finest"):
        apply_overrides(tiny(), {"loss.rec_coarse_weights": (1.0, 1.0, 1.0)})
