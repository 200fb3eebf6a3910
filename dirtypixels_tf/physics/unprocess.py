"""Unprocessing (Brooks et al. 2019): sRGB photographs -> linear camera RAW, and the camera pipeline back.

Diamond et al. (2017, 2021) mosaic an sRGB image as if it were linear sensor data; Brooks et al. 2019 first invert a
camera's processing, so the mosaic has a camera's colour response, white balance and linear intensities. Per image:

    unprocess:  sRGB --inverse tone--> --inverse gamma--> linear sRGB --rgb_to_camera--> --1 / gains--> camera RGB
    process:    camera RGB --gains--> --camera_to_rgb, clip [0, 1]--> linear sRGB --gamma--> --tone--> sRGB

- Values: float32 [B, H, W, 3]; sRGB and linear sRGB in [0, 1]; camera RGB >= 0 (clipped to [0, 1] by `unprocess`
  unless clip=False). Mosaicking and noise follow in the sensor (physics/sensor.py). `sample_camera` takes a
  stateless seed [2] (physics/noise.py conventions).
- Tone: smoothstep 3 x^2 - 2 x^3, inverse 1/2 - sin(asin(1 - 2 y) / 3). Gamma: x^(1 / 2.2), x floored at 1e-8 (a
  plain power law, not the piecewise sRGB curve); inverse y^2.2.
- Colour: `rgb_to_camera` [B, 3, 3], camera = M @ rgb, is a camera's XYZ->camera times sRGB->XYZ (D65) with rows
  normalized to sum 1 (grey stays grey). CAMERA_XYZ_TO_CAMERA: "Canon EOS 30D" and "Nikon D5100" (sources in
  docs/cameras.md); several cameras give each image a random convex combination of their matrices.
- White balance: gains [B, 3] = brightness * (red_gain, 1, blue_gain), red_gain ~ U(1.9, 2.4), blue_gain ~
  U(1.5, 1.9), brightness = 1 / N(0.8, 0.1) clipped to [0.5, 1.5] before inverting (Brooks et al.'s defaults).
- Highlights (`highlight_preserving`, on by default): where the mean camera value m exceeds 0.9 the inverse gain is
  blended towards 1 with weight ((m - 0.9) / 0.1)^2 (never below the plain inverse), so saturation stays saturated;
  process(unprocess(x)) is x to float32 round-off where no clipping acts (with it on, only where m <= 0.9).
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from dirtypixels_tf.physics.validation import check_image

# XYZ -> camera RGB (any scale; rows are normalized after composing with sRGB -> XYZ). See the module docstring.
CAMERA_XYZ_TO_CAMERA = {
    "Canon EOS 30D": ((0.6257, -0.0303, -0.1000), (-0.7880, 1.5621, 0.2396), (-0.1714, 0.1904, 0.7046)),
    "Nikon D5100": ((0.7366, -0.1783, -0.0905), (-0.4568, 1.0000, 0.1874), (-0.1733, 0.2222, 0.5312)),
}
# Linear sRGB (D65) -> CIE XYZ (IEC 61966-2-1).
SRGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750), (0.0193339, 0.1191920, 0.9503041))
GAMMA = 2.2
HIGHLIGHT_KNEE = 0.9
_EPSILON = 1e-8


def rgb_to_camera_matrix(camera):
    """The 3x3 linear-sRGB -> camera matrix of a camera in CAMERA_XYZ_TO_CAMERA (rows sum to 1), float64."""
    if camera not in CAMERA_XYZ_TO_CAMERA:
        raise ValueError(f"camera must be one of {', '.join(CAMERA_XYZ_TO_CAMERA)}; received {camera!r}")
    matrix = np.asarray(CAMERA_XYZ_TO_CAMERA[camera]) @ np.asarray(SRGB_TO_XYZ)
    return matrix / matrix.sum(axis=1, keepdims=True)


def _check_range(value, name, low_bound=0.0):
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of numbers; received {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low_bound < low <= high):
        raise ValueError(f"{name} must be finite with {low_bound} < low <= high; received {value!r}")
    return low, high


@dataclasses.dataclass(frozen=True)
class UnprocessSettings:
    """The camera pipeline to invert, and its randomization (defaults: Brooks et al. 2019's).

    cameras: names from CAMERA_XYZ_TO_CAMERA; with several, each image mixes their matrices (random convex weights).
    red_gain, blue_gain: (low, high) white-balance gains relative to green, drawn uniformly (low == high: fixed).
    brightness_mean, brightness_std: brightness = 1 / N(mean, std), clipped to [0.5, 1.5] before inverting
        (std 0: fixed). highlight_preserving: see the module docstring.
    """

    cameras: tuple = ("Canon EOS 30D", "Nikon D5100")
    red_gain: tuple = (1.9, 2.4)
    blue_gain: tuple = (1.5, 1.9)
    brightness_mean: float = 0.8
    brightness_std: float = 0.1
    highlight_preserving: bool = True

    def __post_init__(self):
        cameras = (self.cameras,) if isinstance(self.cameras, str) else tuple(self.cameras)
        if not cameras:
            raise ValueError("cameras must name at least one camera; received none")
        for camera in cameras:
            rgb_to_camera_matrix(camera)
        object.__setattr__(self, "cameras", cameras)
        object.__setattr__(self, "red_gain", _check_range(self.red_gain, "red_gain"))
        object.__setattr__(self, "blue_gain", _check_range(self.blue_gain, "blue_gain"))
        mean, std = self.brightness_mean, self.brightness_std
        if not (isinstance(mean, (int, float)) and 0.5 <= mean <= 1.5):
            raise ValueError(f"brightness_mean must be a number in [0.5, 1.5]; received {mean!r}")
        if not (isinstance(std, (int, float)) and 0 <= std <= 1):
            raise ValueError(f"brightness_std must be a number in [0, 1]; received {std!r}")


def sample_camera(batch_size, seed, settings=None):
    """Per-image camera parameters {"rgb_to_camera": [B, 3, 3], "gains": [B, 3]} (float32) drawn per `settings`
    (UnprocessSettings(); default Brooks et al.'s randomization) with the stateless seed [2]."""
    settings = UnprocessSettings() if settings is None else settings
    if not isinstance(settings, UnprocessSettings):
        raise ValueError(f"settings must be an UnprocessSettings; received {type(settings).__name__}")
    mix_seed, red_seed, blue_seed, bright_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
    matrices = tf.constant(np.stack([rgb_to_camera_matrix(c) for c in settings.cameras]), tf.float32)
    if len(settings.cameras) == 1:
        rgb_to_camera = tf.tile(matrices, [batch_size, 1, 1])
    else:
        weights = tf.random.stateless_uniform([batch_size, len(settings.cameras)], mix_seed, 1e-8, 1.0)
        weights /= tf.reduce_sum(weights, axis=1, keepdims=True)
        rgb_to_camera = tf.einsum("bk,kij->bij", weights, matrices)

    def uniform(bounds, key):
        return tf.random.stateless_uniform([batch_size], key, bounds[0], bounds[1])

    draw = settings.brightness_mean + settings.brightness_std * tf.random.stateless_normal([batch_size], bright_seed)
    brightness = 1.0 / tf.clip_by_value(draw, 0.5, 1.5)
    gains = brightness[:, None] * tf.stack(
        [uniform(settings.red_gain, red_seed), tf.ones([batch_size]), uniform(settings.blue_gain, blue_seed)], axis=1
    )
    return {"rgb_to_camera": rgb_to_camera, "gains": gains}


def tone_curve(images):
    """The smoothstep tone curve 3 x^2 - 2 x^3 on values clipped to [0, 1]."""
    x = tf.clip_by_value(images, 0.0, 1.0)
    return 3.0 * x**2 - 2.0 * x**3


def inverse_tone_curve(images):
    """The inverse of `tone_curve` on [0, 1]: 1/2 - sin(asin(1 - 2 y) / 3)."""
    y = tf.clip_by_value(images, 0.0, 1.0)
    return 0.5 - tf.sin(tf.asin(1.0 - 2.0 * y) / 3.0)


def gamma_compress(images, gamma=GAMMA):
    """x^(1 / gamma), x floored at 1e-8."""
    return tf.maximum(images, _EPSILON) ** (1.0 / gamma)


def gamma_expand(images, gamma=GAMMA):
    """y^gamma, y floored at 1e-8 (the inverse of `gamma_compress`)."""
    return tf.maximum(images, _EPSILON) ** gamma


def _apply_matrix(images, matrices):
    """Per-image colour matrix [B, 3, 3] applied to [B, H, W, 3] (out = M @ pixel)."""
    return tf.einsum("bhwj,bij->bhwi", images, matrices)


def _inverse_gains(camera_rgb, gains, highlight_preserving):
    inverse = 1.0 / gains[:, None, None, :]
    if not highlight_preserving:
        return inverse
    mean = tf.reduce_mean(camera_rgb, axis=-1, keepdims=True)
    weight = tf.square(tf.maximum(mean - HIGHLIGHT_KNEE, 0.0) / (1.0 - HIGHLIGHT_KNEE))
    return tf.maximum(weight + (1.0 - weight) * inverse, inverse)


def unprocess(images, camera, highlight_preserving=True, clip=True):
    """sRGB images [B, H, W, 3] in [0, 1] -> linear camera RGB [B, H, W, 3] (see the module docstring).

    camera: {"rgb_to_camera": [B, 3, 3], "gains": [B, 3]} from `sample_camera`. clip: clip the result to [0, 1]
    (colours outside the camera's gamut come out negative before clipping).
    """
    images = check_image(tf.convert_to_tensor(images, tf.float32), "images", channels=3)
    linear = gamma_expand(inverse_tone_curve(images))
    camera_rgb = _apply_matrix(linear, camera["rgb_to_camera"])
    raw = camera_rgb * _inverse_gains(camera_rgb, camera["gains"], highlight_preserving)
    return tf.clip_by_value(raw, 0.0, 1.0) if clip else raw


def process(camera_rgb, camera):
    """Linear camera RGB [B, H, W, 3] (e.g. a demosaicked RAW) -> sRGB [B, H, W, 3] in [0, 1]: white balance, colour
    matrix (the inverse of rgb_to_camera), clip to [0, 1], gamma, tone curve. The forward camera pipeline of
    `unprocess`, for viewing and for the conventional baselines."""
    camera_rgb = check_image(tf.convert_to_tensor(camera_rgb, tf.float32), "camera_rgb", channels=3)
    balanced = camera_rgb * camera["gains"][:, None, None, :]
    linear = _apply_matrix(balanced, tf.linalg.inv(camera["rgb_to_camera"]))
    return tone_curve(gamma_compress(tf.clip_by_value(linear, 0.0, 1.0)))
