"""Scene model of the synthetic video generator: configuration, class table, textures, random layers.

A scene is a list of `Layer`s, back to front: layer 0 is the textured background (class 0), layers 1..K are
objects (instance id = layer index, so instance K is the topmost). Each layer has a canonical texture and, for
objects, an analytic binary shape in its own canonical coordinates u (pixels at scale 1, origin at the shape's
centre). Its pose at (possibly fractional) time t is the similarity transform

    T(t) u = c(t) + exp(s(t)) R(theta(t)) u,  c(t) = c0 + v t,  theta(t) = theta0 + omega t,  s(t) = s0 + sigma t

(constant velocity in the transform parameters; the log-scale s makes scale changes compose multiplicatively).
Rendering and ground truth live in `synthetic_render.py`; the public API in `synthetic.py`.

Textures are photos shipped in scikit-image's wheel (`skimage.data`), loaded once (lru_cache), resized so
that their short side is `texture_scale * min(H, W)` (so images scale with (height, width)) and pre-blurred
by a Gaussian of `texture_blur_sigma` texels, which keeps bilinear re-sampling close to exact (brightness
constancy of the ground-truth flow holds up to a small interpolation error).
Three texture modes (`SceneConfig.textures`):
- "class" (the default): each object class has its own shape and its own photo (grey photos get a class
  colour), so classes are linearly separable from local appearance (colour alone places them);
- "scene" (camouflage): every layer of a scene, the background included, carries the same photo (drawn per
  scene from `SHARED_TEXTURES`, at its own offset), so appearance carries no class information: only an
  object's outline (a texture discontinuity) and, in video, its motion tell it from the background and from
  the other objects. README ("Content evaluations") has what the instruments measure on it;
- "texture": each class keeps its photo, but every photo (background too) is grey, less its Gaussian blur of
  `HIGHPASS_SIGMA` texels, at the contrast `HIGHPASS_STD` around 0.5, so that neither colour nor the local
  mean brightness tells a class: only texture, outline and motion do (README, "Content evaluations").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

# (name, shape, skimage.data photo, RGB tint for grey photos or None). Row index = class id.
CLASS_TABLE: tuple[tuple[str, str, str | None, tuple[float, float, float] | None], ...] = (
    ("background", "plane", None, None),
    ("disc", "disc", "chelsea", None),
    ("square", "square", "brick", (1.00, 0.55, 0.40)),
    ("triangle", "triangle", "grass", (0.50, 0.95, 0.35)),
    ("ring", "ring", "gravel", (0.45, 0.65, 1.00)),
    ("cross", "cross", "page", (0.85, 0.45, 1.00)),
)
CLASS_NAMES: tuple[str, ...] = tuple(row[0] for row in CLASS_TABLE)
SHAPES: tuple[str, ...] = tuple(row[1] for row in CLASS_TABLE)
# Background photos: none of them is used by an object class (coffee was left out: too close to chelsea).
BACKGROUND_PHOTOS: tuple[str, ...] = ("astronaut", "rocket", "camera", "coins")
# The pool of the "scene" mode: (photo, tint) of every object class and every background photo.
SHARED_TEXTURES: tuple[tuple[str, tuple[float, float, float] | None], ...] = (
    tuple((photo, tint) for _, _, photo, tint in CLASS_TABLE[1:]) + tuple((photo, None) for photo in BACKGROUND_PHOTOS))
TEXTURE_MODES = ("class", "scene", "texture")
# "texture" mode: grey photos, their low frequencies (a Gaussian of this many texels) removed and their contrast
# set to this standard deviation around mid-grey
HIGHPASS_SIGMA = 3.0
HIGHPASS_STD = 0.15


@dataclass(frozen=True)
class SceneConfig:
    """Scene sampling parameters; the defaults are the kit's tiny scale (96x128 images).

    Motion magnitudes are per frame, in pixels of the configured image size. Objects translate by up to
    `max_translation` px/frame (uniform speed in [0, max], uniform direction), rotate by up to
    `max_rotation_deg` deg/frame and change scale by up to `max_scale_change` (relative) per frame; with
    object radii of 10-20% of min(H, W) this gives typical displacements of 0-6 px and at most about 8 px
    at the defaults (6 + 0.05 rad * 27 px + 0.03 * 27 px at a large square's corner). The background moves the
    same way, scaled by `background_motion_fraction`.
    Object radii (`object_radius_range`, fraction of min(H, W)) and textures scale with the image size.
    """

    height: int = 96
    width: int = 128
    min_objects: int = 2
    max_objects: int = 4
    max_translation: float = 6.0
    max_rotation_deg: float = 3.0
    max_scale_change: float = 0.03
    background_motion_fraction: float = 0.4
    object_radius_range: tuple[float, float] = (0.10, 0.20)
    texture_scale: float = 3.0
    texture_blur_sigma: float = 1.0
    textures: str = "class"  # "class" | "scene" | "texture" (module docstring)

    def __post_init__(self):
        if self.height < 8 or self.width < 8:
            raise ValueError(f"SceneConfig: image size ({self.height}, {self.width}) must be at least 8x8")
        if not 0 <= self.min_objects <= self.max_objects <= 254:
            raise ValueError(f"SceneConfig: need 0 <= min_objects ({self.min_objects}) <= max_objects "
                             f"({self.max_objects}) <= 254")
        if min(self.max_translation, self.max_rotation_deg, self.max_scale_change) < 0:
            raise ValueError("SceneConfig: motion ranges must be non-negative")
        if self.max_scale_change >= 1:
            raise ValueError(f"SceneConfig: max_scale_change {self.max_scale_change} must be < 1")
        low, high = self.object_radius_range
        if not 0 < low <= high:
            raise ValueError(f"SceneConfig: object_radius_range {self.object_radius_range} must be 0 < low <= high")
        if self.textures not in TEXTURE_MODES:
            raise ValueError(f"SceneConfig: textures must be one of {TEXTURE_MODES}, got {self.textures!r}")

    @property
    def num_classes(self) -> int:
        """Number of classes including background (derived from the class table)."""
        return len(CLASS_NAMES)


@dataclass(frozen=True)
class Layer:
    """One scene layer. Canonical coords u (px at scale 1) map to image px by T(t) (module docstring).

    texture: (3, h, w) float32 in [0, 1]; the canonical origin u = 0 sits at texel `texture_center` (x, y),
        one texel per canonical pixel. Sampled bilinearly, `padding_mode` outside the texture.
    shape: "plane" (covers everything: the background) or an object shape of `SHAPES`; `radius` is its size
        in canonical px (see `synthetic_render.inside_shape`).
    """

    class_id: int
    shape: str
    radius: float
    texture: torch.Tensor
    texture_center: tuple[float, float]
    center: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0
    angular_velocity: float = 0.0
    log_scale: float = 0.0
    log_scale_velocity: float = 0.0
    padding_mode: str = "border"


@lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """A `skimage.data` photo as (h, w, 3) float32 in [0, 1] (grey photos replicated). Cached."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = image[..., :3].astype(np.float32)
    return image / 255.0 if image.max() > 1.0 else image


@lru_cache(maxsize=128)
def photo_texture(name: str, short_side: int, blur_sigma: float,
                  tint: tuple[float, float, float] | None = None, highpass: bool = False) -> torch.Tensor:
    """(3, h, w) float32 texture: photo resized to `short_side`, tinted (grey photos), Gaussian-blurred. Cached.

    tint: RGB multipliers for a grey photo, rgb = 0.1 + 0.9 * grey * tint.
    highpass: the "texture" mode: the photo in grey, less its Gaussian blur of `HIGHPASS_SIGMA` texels, scaled
        to a standard deviation of `HIGHPASS_STD` around 0.5 (the tint is ignored).
    """
    from scipy.ndimage import gaussian_filter
    from skimage.transform import resize

    photo = load_photo(name)
    factor = short_side / min(photo.shape[:2])
    size = (max(1, round(photo.shape[0] * factor)), max(1, round(photo.shape[1] * factor)))
    image = resize(photo, size, order=1, anti_aliasing=factor < 1).astype(np.float32)
    if highpass:
        grey = image.mean(axis=2, keepdims=True)
        detail = grey - gaussian_filter(grey, sigma=(HIGHPASS_SIGMA, HIGHPASS_SIGMA, 0), mode="reflect")
        image = np.repeat(0.5 + HIGHPASS_STD * detail / max(float(detail.std()), 1e-6), 3, axis=2)
    elif tint is not None:
        image = 0.1 + 0.9 * image.mean(axis=2, keepdims=True) * np.asarray(tint, dtype=np.float32)
    if blur_sigma > 0:
        image = gaussian_filter(image, sigma=(blur_sigma, blur_sigma, 0), mode="reflect")
    image = np.clip(image, 0.0, 1.0)
    texture = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    texture.requires_grad_(False)
    return texture


def class_texture(class_id: int, cfg: SceneConfig) -> torch.Tensor:
    """(3, h, w) texture of object class `class_id` (1..num_classes-1) at the scale of `cfg`."""
    _, _, photo, tint = CLASS_TABLE[class_id]
    short_side = max(16, round(cfg.texture_scale * min(cfg.height, cfg.width)))
    return photo_texture(photo, short_side, cfg.texture_blur_sigma, tint, highpass=cfg.textures == "texture")


def scene_texture(rng: np.random.Generator, cfg: SceneConfig) -> torch.Tensor:
    """The one texture of a "scene"-mode scene: a photo and tint drawn uniformly from `SHARED_TEXTURES`, short
    side large enough for the background (1.5x the image diagonal) and for an object
    (`texture_scale * min(H, W)`), whichever is larger."""
    photo, tint = SHARED_TEXTURES[rng.integers(len(SHARED_TEXTURES))]
    short_side = max(16, math.ceil(1.5 * math.hypot(cfg.height, cfg.width)),
                     round(cfg.texture_scale * min(cfg.height, cfg.width)))
    return photo_texture(photo, short_side, cfg.texture_blur_sigma, tint)


def sample_scene(rng: np.random.Generator, num_frames: int, cfg: SceneConfig) -> list[Layer]:
    """Random layers [background, object 1 (back), ..., object K (front)], K in [min_objects, max_objects].

    Each object's class is uniform over 1..num_classes-1; its centre at the middle frame (T-1)/2 is uniform
    over the central 80% of the image, so objects stay mostly in view over the sequence. Textures follow
    `cfg.textures` ("class" draws exactly the random numbers it drew before the "scene" mode existed).
    """
    camouflage = cfg.textures == "scene"
    height, width = cfg.height, cfg.width
    diagonal = math.hypot(height, width)
    mid_time = (num_frames - 1) / 2.0
    max_rotation = math.radians(cfg.max_rotation_deg)
    max_log_scale = math.log1p(cfg.max_scale_change)

    def motion(fraction: float) -> dict:
        speed = fraction * cfg.max_translation * rng.uniform()
        direction = rng.uniform(0.0, 2.0 * math.pi)
        return dict(velocity=(speed * math.cos(direction), speed * math.sin(direction)),
                    angular_velocity=fraction * max_rotation * rng.uniform(-1.0, 1.0),
                    log_scale_velocity=fraction * max_log_scale * rng.uniform(-1.0, 1.0))

    # Background: a photo at least 1.5x the image diagonal, canonical origin at the image centre.
    if camouflage:
        texture = shared = scene_texture(rng, cfg)
    else:
        photo = BACKGROUND_PHOTOS[rng.integers(len(BACKGROUND_PHOTOS))]
        texture = photo_texture(photo, max(16, math.ceil(1.5 * diagonal)), cfg.texture_blur_sigma, None,
                                highpass=cfg.textures == "texture")
    tex_h, tex_w = texture.shape[-2:]
    half = diagonal / 2.0
    texture_center = (rng.uniform(min(half, tex_w / 2), max(tex_w - half, tex_w / 2)),
                      rng.uniform(min(half, tex_h / 2), max(tex_h - half, tex_h / 2)))
    layers = [Layer(class_id=0, shape="plane", radius=0.0, texture=texture, texture_center=texture_center,
                    center=((width - 1) / 2.0, (height - 1) / 2.0), angle=0.0,
                    padding_mode="reflection", **motion(cfg.background_motion_fraction))]

    num_objects = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    for _ in range(num_objects):
        class_id = int(rng.integers(1, len(CLASS_NAMES)))
        radius = min(height, width) * rng.uniform(*cfg.object_radius_range)
        texture = shared if camouflage else class_texture(class_id, cfg)
        tex_h, tex_w = texture.shape[-2:]
        reach = 1.5 * radius + 2.0  # the shapes fit in |u|_inf <= 1.25 radius
        texture_center = (rng.uniform(min(reach, tex_w / 2), max(tex_w - reach, tex_w / 2)),
                          rng.uniform(min(reach, tex_h / 2), max(tex_h - reach, tex_h / 2)))
        mid_center = (rng.uniform(0.1, 0.9) * (width - 1), rng.uniform(0.1, 0.9) * (height - 1))
        move = motion(1.0)
        center = (mid_center[0] - move["velocity"][0] * mid_time, mid_center[1] - move["velocity"][1] * mid_time)
        layers.append(Layer(class_id=class_id, shape=SHAPES[class_id], radius=float(radius), texture=texture,
                            texture_center=texture_center, center=center, angle=rng.uniform(0, 2 * math.pi),
                            padding_mode="border", **move))
    return layers
