"""Augmentations: VICReg's two views of still images, and flow-consistent augmentation of frame pairs.

Reproducibility. kornia samples its random parameters from the *global* torch RNG. Both modules therefore
take an optional `seed` (or a `torch.Generator`, from which one seed is drawn) and, when given one, run the
whole forward pass inside `torch.random.fork_rng()` after `torch.manual_seed(seed)`: the output is then a pure
function of (input, seed) and the caller's global RNG state is left untouched. A training step is reproduced
by passing e.g. `seed=step_seed(base_seed, step)`. Without a seed the global RNG is used (and advanced).

Shapes: images (B, 3, H, W) float in [0, 1]; flow (B, 2, H, W) in pixels (u right, v down); masks (B, H, W) bool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Iterator

import einops
import kornia.augmentation as K
import torch
from kornia.geometry.transform import warp_affine
from torch import nn

__all__ = ["VICRegAugConfig", "VICRegViews", "FlowAugment", "step_seed", "seeded", "scatter_sparse_flow",
           "resize_sparse_flow"]


def scatter_sparse_flow(flow: torch.Tensor, valid: torch.Tensor, matrix: torch.Tensor,
                        size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample sparse flow by its valid mask (RAFT's sparse resize, for any axis-aligned affine map).

    Each valid source pixel p (pixel centres at integer coordinates) moves to q = round(A p + t) and its vector
    d becomes diag(A) d; samples landing on one output pixel are averaged, and an output pixel is valid iff a
    sample landed on it. Invalid pixels never mix into valid ones (bilinear resampling would blend in their
    zeros). Args: flow (B, 2, H, W) px, valid (B, H, W) bool, matrix (B, 2, 3) source -> destination pixel
    coordinates (off-diagonal terms ignored for the vector), size (h, w). Returns flow (B, 2, h, w) (0 where
    invalid) and valid (B, h, w) bool.
    """
    batch, h, w = flow.shape[0], *size
    index, y, x = valid.bool().nonzero(as_tuple=True)
    m = matrix.to(torch.float64)[index]
    qx = torch.round(m[:, 0, 0] * x + m[:, 0, 1] * y + m[:, 0, 2]).long()
    qy = torch.round(m[:, 1, 0] * x + m[:, 1, 1] * y + m[:, 1, 2]).long()
    inside = (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h)
    vectors = flow[index, :, y, x].to(torch.float64) * torch.stack([m[:, 0, 0], m[:, 1, 1]], dim=1)
    target = ((index * h + qy) * w + qx)[inside]
    sums = torch.zeros(batch * h * w, 2, dtype=torch.float64, device=flow.device).index_add_(0, target, vectors[inside])
    counts = torch.zeros(batch * h * w, dtype=torch.float64, device=flow.device).index_add_(
        0, target, torch.ones_like(target, dtype=torch.float64))
    out_valid = counts > 0
    out = torch.where(out_valid[:, None], sums / counts.clamp(min=1)[:, None], 0.0).to(flow.dtype)
    return einops.rearrange(out, "(b h w) c -> b c h w", b=batch, h=h), out_valid.view(batch, h, w)


def resize_sparse_flow(flow: torch.Tensor, valid: torch.Tensor, size: tuple[int, int]):
    """Resize (B, 2, H, W) sparse flow with its (B, H, W) valid mask to `size` = (h, w) by `scatter_sparse_flow`
    (pixel centres as F.interpolate with align_corners=False; u scaled by w / W, v by h / H)."""
    height, width = flow.shape[-2:]
    sx, sy = size[1] / width, size[0] / height
    matrix = flow.new_tensor([[sx, 0.0, 0.5 * (sx - 1)], [0.0, sy, 0.5 * (sy - 1)]], dtype=torch.float64)
    return scatter_sparse_flow(flow, valid, matrix.expand(flow.shape[0], 2, 3), size)


def step_seed(base_seed: int, step: int) -> int:
    """A per-step seed derived from a run seed (a fixed odd multiplier mixes the step, mod 2**62)."""
    return (int(base_seed) * 1_000_003 + int(step) * 0x9E3779B1) % (2**62)


@contextlib.contextmanager
def seeded(seed: int | None = None, generator: torch.Generator | None = None, device=None) -> Iterator[None]:
    """Run the block on a forked global RNG seeded with `seed` (or a seed drawn from `generator`).

    With neither, the block runs on the caller's global RNG (not reproducible, advances it).
    """
    if seed is None and generator is not None:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    if seed is None:
        yield
        return
    devices = [device] if device is not None and torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _check_images(images: torch.Tensor, where: str) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{where}: expected images (B, 3, H, W), got {tuple(images.shape)}")


# ----------------------------------------------------------------------------------------------------------
# VICReg views
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VICRegAugConfig:
    """VICReg's augmentation recipe (facebookresearch/vicreg `augmentations.py`), per view where it differs.

    Paper defaults: crop scale (0.08, 1), ratio (3/4, 4/3), bicubic resize, flip 0.5, ColorJitter(0.4, 0.4,
    0.2, 0.1) with p 0.8, grayscale p 0.2, Gaussian blur sigma ~ U(0.1, 2.0) with p (1.0, 0.1), solarize at
    threshold 0.5 (PIL's 128) with p (0.0, 0.2). The blur kernel size is not fixed by VICReg (PIL derives it
    from sigma); ours is `blur_kernel_fraction` x min(H, W), made odd, at least 3 (SimCLR's 10% rule, our
    choice). Tensors fed to the views must lie in [0, 1]; normalisation is the model's job.
    """

    min_scale: float = 0.08
    max_scale: float = 1.0
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    resample: str = "BICUBIC"
    hflip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)  # brightness, contrast, saturation, hue
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: tuple[float, float] = (1.0, 0.1)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel_fraction: float = 0.1
    solarize_p: tuple[float, float] = (0.0, 0.2)

    @classmethod
    def paper(cls) -> "VICRegAugConfig":
        """The VICReg paper's recipe (the dataclass defaults)."""
        return cls()

    @classmethod
    def tiny(cls) -> "VICRegAugConfig":
        """Our preset for the kit's tiny images (32-64 px): crops keep >= 25% of the area (0.08 of a 32x32
        image is a ~9x9 patch, mostly empty of content) and the blur sigma tops out at 1.0 px (2.0 px wipes out
        a 32 px image). Everything else as in the paper. Our choice, not the paper's."""
        return cls(min_scale=0.25, blur_sigma=(0.1, 1.0))


def blur_kernel_size(size: tuple[int, int], fraction: float) -> int:
    """Odd kernel size = round(fraction * min(H, W)) made odd, at least 3 (224 px, 0.1 -> 23)."""
    k = max(3, int(round(fraction * min(size))))
    return k if k % 2 == 1 else k + 1


class VICRegViews(nn.Module):
    """Two VICReg views of a batch: images (B, 3, H0, W0) in [0, 1] -> (view1, view2), each (B, 3, H, W).

    Every random parameter is drawn per image (never `same_on_batch`). `forward(images, seed=None,
    generator=None)`: see the module docstring for reproducibility. Keyword overrides replace config fields,
    e.g. `VICRegViews((32, 32), VICRegAugConfig.tiny(), grayscale_p=1.0)`.
    """

    def __init__(self, size: tuple[int, int], config: VICRegAugConfig | None = None, **overrides):
        super().__init__()
        config = dataclasses.replace(config or VICRegAugConfig(), **overrides)
        if not 0.0 < config.min_scale <= config.max_scale <= 1.0:
            raise ValueError(f"VICRegViews: need 0 < min_scale <= max_scale <= 1, got {config}")
        self.size = (int(size[0]), int(size[1]))
        self.config = config
        self.view1 = self._pipeline(view=0)
        self.view2 = self._pipeline(view=1)

    def _pipeline(self, view: int) -> nn.Sequential:
        c = self.config
        kernel = blur_kernel_size(self.size, c.blur_kernel_fraction)
        return nn.Sequential(
            K.RandomResizedCrop(self.size, scale=(c.min_scale, c.max_scale), ratio=c.ratio, resample=c.resample),
            K.RandomHorizontalFlip(p=c.hflip_p),
            K.ColorJitter(*c.jitter, p=c.jitter_p),
            K.RandomGrayscale(p=c.grayscale_p),
            K.RandomGaussianBlur(kernel, c.blur_sigma, p=c.blur_p[view]),
            # thresholds=0, additions=0: threshold exactly 0.5 and no shift, i.e. where(x >= 0.5, 1 - x, x)
            # (kornia's defaults 0.1/0.1 are NOT PIL's solarize).
            K.RandomSolarize(thresholds=0.0, additions=0.0, p=c.solarize_p[view]),
        )

    def forward(
        self, images: torch.Tensor, seed: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _check_images(images, "VICRegViews")
        with seeded(seed, generator, images.device):
            view1 = self.view1(images).clamp(0.0, 1.0)  # bicubic resampling can overshoot [0, 1]
            view2 = self.view2(images).clamp(0.0, 1.0)
        return view1, view2


class ColourViews(nn.Module):
    """The colour part of the VICReg views, per image, without geometry: images (B, 3, H, W) in [0, 1] ->
    (B, 3, H, W), ColorJitter(`jitter`) with p `jitter_p`, then grayscale with p `grayscale_p` (`VICRegAugConfig`).

    The supervised ceiling's photometric augmentation (`data.supervised_colour`): without it, the ceiling's
    features lean on the class colours of the embedded stills, and label propagation under a change of
    lighting between frames falls below the raw-colour floor (README, "Content evaluations")."""

    def __init__(self, config: VICRegAugConfig | None = None):
        super().__init__()
        c = config or VICRegAugConfig()
        self.pipeline = nn.Sequential(K.ColorJitter(*c.jitter, p=c.jitter_p), K.RandomGrayscale(p=c.grayscale_p))

    def forward(self, images: torch.Tensor, seed: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        _check_images(images, "ColourViews")
        with seeded(seed, generator, images.device):
            return self.pipeline(images).clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------
# Flow-consistent augmentation
# ----------------------------------------------------------------------------------------------------------


class FlowAugment(nn.Module):
    """Augment a batch of frame pairs so that the ground-truth flow stays consistent.

    Geometry (one draw per sample, the SAME for both frames and all fields): scale s ~ log-uniform in
    `scale_range` (raised if needed so that the crop fits), crop offset (o_x, o_y) in the scaled image
    (integers), horizontal flip (p `hflip_p`), vertical flip (p `vflip_p`). A source pixel p maps to
        q = D (s p - o) + c,   D = diag(f_x, f_y), f = -1 if flipped else +1, c = (w-1 if f_x<0, h-1 if f_y<0),
    so a displacement d becomes D s d: the flow is resampled at the new pixels and multiplied by s, with u
    negated under a horizontal flip and v under a vertical flip. Images and dense flow are resampled
    bilinearly, masks with nearest neighbour (kornia `warp_affine`, corner-aligned pixel coordinates, so
    s = 1 gives exact integer crops). A sample whose `valid` mask has invalid pixels (sparse ground truth such
    as KITTI's) has its flow resampled by the mask with `scatter_sparse_flow` (RAFT's sparse resize): every
    valid vector moves to its rounded new position, scaled, the new `valid` marks where one landed, and the
    flow is 0 elsewhere; bilinear resampling would blend the invalid zeros in (a checkerboard-valid u = 10
    field scaled by 1.5 must give 15 wherever it is valid). Downscaling is not antialiased: keep
    `scale_range` close to 1.
    GT stays valid for pixels whose target leaves the crop (the vector is still correct).

    Colour (flow unaffected): kornia ColorJitter(`jitter`, p `jitter_p`) and optional RandomGamma(`gamma`)
    with ONE parameter set per sample shared by both frames: the two frames are placed side by side
    (B, 3, H, 2W) and jittered as one image (brightness/saturation/hue are per pixel and contrast blends with
    the mean grey level of the pair, so both frames undergo exactly the same function while different samples
    of the batch get different draws). With `asymmetric > 0`, each frame then gets an extra independent small
    jitter (brightness, contrast, saturation `asymmetric`, hue `asymmetric / 4`) to mimic lighting changes
    between frames (UFlow/ARFlow-style); 0 (default) keeps the pair photometrically identical.

    Input/output: dict with "frame1", "frame2" (B, 3, H, W), optional "flow" (B, 2, H, W), "valid" and
    "occlusion" (B, H, W) bool; other keys pass through. Output fields have the crop size (h, w).
    `forward(batch, seed=None, generator=None, return_params=False)`; `return_params=True` also returns the
    drawn geometry {"scale" (B,), "offset" (B, 2) as (o_x, o_y), "hflip" (B,) bool, "vflip" (B,) bool}.
    """

    def __init__(
        self,
        crop_size: tuple[int, int] | None = None,
        hflip_p: float = 0.5,
        vflip_p: float = 0.0,
        scale_range: tuple[float, float] = (1.0, 1.0),
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
        jitter_p: float = 0.8,
        gamma: tuple[float, float] | None = None,
        asymmetric: float = 0.0,
    ):
        super().__init__()
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"FlowAugment: scale_range must satisfy 0 < lo <= hi, got {scale_range}")
        self.crop_size = None if crop_size is None else (int(crop_size[0]), int(crop_size[1]))
        self.hflip_p, self.vflip_p = float(hflip_p), float(vflip_p)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        colour = [K.ColorJitter(*jitter, p=jitter_p)] if jitter_p > 0 else []
        if gamma is not None:
            colour.append(K.RandomGamma(gamma=gamma, p=1.0))
        self.colour = nn.Sequential(*colour)
        self.asymmetric = float(asymmetric)
        a = self.asymmetric
        self.asym_jitter = K.ColorJitter(a, a, a, a / 4, p=1.0) if a > 0 else None

    # -- geometry ---------------------------------------------------------------------------------------
    def sample_geometry(self, batch: int, height: int, width: int, device=None) -> dict[str, torch.Tensor]:
        """Draw per-sample scale, integer crop offset and flips from the global RNG."""
        h, w = self.crop_size or (height, width)
        if h > height or w > width:
            raise ValueError(f"FlowAugment: crop {(h, w)} larger than the input {(height, width)}")
        lo, hi = self.scale_range
        log_s = (
            torch.empty(batch).uniform_(math.log(lo), math.log(hi)) if hi > lo else torch.full((batch,), math.log(lo))
        )
        # the crop must fit in the scaled image: s (W - 1) >= w - 1 and s (H - 1) >= h - 1
        s_fit = max((h - 1) / max(height - 1, 1), (w - 1) / max(width - 1, 1))
        scale = log_s.exp().clamp(min=s_fit)
        max_ox = torch.floor(scale * (width - 1) - (w - 1) + 1e-4).clamp(min=0)
        max_oy = torch.floor(scale * (height - 1) - (h - 1) + 1e-4).clamp(min=0)
        offset = torch.stack(
            [torch.floor(torch.rand(batch) * (max_ox + 1)).clamp(max=max_ox),
             torch.floor(torch.rand(batch) * (max_oy + 1)).clamp(max=max_oy)], dim=1)
        hflip = torch.rand(batch) < self.hflip_p
        vflip = torch.rand(batch) < self.vflip_p
        params = {"scale": scale, "offset": offset, "hflip": hflip, "vflip": vflip}
        return {k: v.to(device) for k, v in params.items()}

    def _affine(self, params: dict[str, torch.Tensor], h: int, w: int, dtype) -> torch.Tensor:
        """(B, 2, 3) source->destination matrices q = D (s p - o) + c in pixel units."""
        s = params["scale"].to(dtype)
        fx = 1.0 - 2.0 * params["hflip"].to(dtype)
        fy = 1.0 - 2.0 * params["vflip"].to(dtype)
        cx = params["hflip"].to(dtype) * (w - 1)
        cy = params["vflip"].to(dtype) * (h - 1)
        zero = torch.zeros_like(s)
        row_x = torch.stack([fx * s, zero, -fx * params["offset"][:, 0].to(dtype) + cx], dim=1)
        row_y = torch.stack([zero, fy * s, -fy * params["offset"][:, 1].to(dtype) + cy], dim=1)
        return torch.stack([row_x, row_y], dim=1)

    def apply_geometry(self, batch: dict, params: dict[str, torch.Tensor]) -> dict:
        """Apply drawn geometry to every field of `batch` (see class docstring)."""
        frame1 = batch["frame1"]
        height, width = frame1.shape[-2:]
        h, w = self.crop_size or (height, width)
        out = dict(batch)
        matrix = self._affine(params, h, w, frame1.dtype)
        for key in ("frame1", "frame2"):
            out[key] = warp_affine(batch[key], matrix, (h, w), mode="bilinear", align_corners=True)
        if batch.get("flow") is not None:
            flow = warp_affine(batch["flow"], matrix, (h, w), mode="bilinear", align_corners=True)
            # d -> D s d: diagonal of the linear part, per sample and component
            factor = torch.stack([matrix[:, 0, 0], matrix[:, 1, 1]], dim=1)
            out["flow"] = flow * einops.rearrange(factor, "b c -> b c 1 1")
        for key in ("valid", "occlusion"):
            if batch.get(key) is not None:
                mask = einops.rearrange(batch[key].to(frame1.dtype), "b h w -> b 1 h w")
                mask = warp_affine(mask, matrix.to(mask.dtype), (h, w), mode="nearest", align_corners=True)
                out[key] = einops.rearrange(mask > 0.5, "b 1 h w -> b h w")
        if batch.get("flow") is not None and batch.get("valid") is not None and not batch["valid"].all():
            sparse = ~batch["valid"].flatten(1).all(dim=1)  # samples with invalid pixels: sparse GT
            flow, valid = scatter_sparse_flow(batch["flow"], batch["valid"], matrix, (h, w))
            out["flow"] = torch.where(sparse.view(-1, 1, 1, 1), flow, out["flow"])
            out["valid"] = torch.where(sparse.view(-1, 1, 1), valid, out["valid"])
        return out

    # -- colour -----------------------------------------------------------------------------------------
    def apply_colour(self, frame1: torch.Tensor, frame2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Same colour draw for both frames of a sample (side-by-side trick), then optional asymmetric part."""
        if len(self.colour) > 0:
            pair = torch.cat([frame1, frame2], dim=-1)  # (B, 3, H, 2W)
            pair = self.colour(pair)
            frame1, frame2 = pair.split(frame1.shape[-1], dim=-1)
        if self.asym_jitter is not None:
            frame1, frame2 = self.asym_jitter(frame1), self.asym_jitter(frame2)
        return frame1.contiguous(), frame2.contiguous()

    def forward(self, batch: dict, seed: int | None = None, generator: torch.Generator | None = None,
                return_params: bool = False):
        for key in ("frame1", "frame2"):
            if key not in batch:
                raise ValueError(f"FlowAugment: batch has no '{key}' (keys: {sorted(batch)})")
            _check_images(batch[key], f"FlowAugment[{key}]")
        frame1 = batch["frame1"]
        bsz, _, height, width = frame1.shape
        if batch["frame2"].shape != frame1.shape:
            raise ValueError(f"FlowAugment: frame2 {tuple(batch['frame2'].shape)} != frame1 {tuple(frame1.shape)}")
        if batch.get("flow") is not None and batch["flow"].shape != (bsz, 2, height, width):
            raise ValueError(f"FlowAugment: flow must be {(bsz, 2, height, width)}, got {tuple(batch['flow'].shape)}")
        for key in ("valid", "occlusion"):
            if batch.get(key) is not None and batch[key].shape != (bsz, height, width):
                raise ValueError(f"FlowAugment: {key} must be {(bsz, height, width)}, got {tuple(batch[key].shape)}")
        with seeded(seed, generator, frame1.device):
            params = self.sample_geometry(bsz, height, width, device=frame1.device)
            out = self.apply_geometry(batch, params)
            out["frame1"], out["frame2"] = self.apply_colour(out["frame1"], out["frame2"])
        return (out, params) if return_params else out
