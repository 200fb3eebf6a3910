"""Generalized Anscombe transform (GAT) layers with the release's max-normalization and noise channel.

Conventions (Diamond et al. 2021 Eq. 10-11, Sec. 4.1; Makitalo and Foi 2013):
- `y` is a RAW image [B, H, W, C] (mosaic, or a masked 3-channel mosaic) in [0, 1] units, before clipping matters:
  y = alpha * Poisson(x / alpha) + N(0, sigma^2). `alpha`, `sigma`: scalars, [B] (one per image, the default) or
  [B, 3] (one per colour R, G, B: a white-balanced or exposure-scaled real capture, the release's is_real_data=True,
  where the GAT and its inverse divide each colour channel by its own alpha). On a 3-channel image colour c uses
  entry c; on a 1-channel mosaic each pixel uses the entry of the colour it sees under the Bayer phase `pattern`
  (physics/mosaic.py; default BGGR, the release's). alpha > 0 (the GAT divides by it; for pure Gaussian noise build
  the ISP without Anscombe layers); sigma >= 0 (0 is the classic Anscombe transform).
- Forward: z = y / alpha, s = sigma / alpha, D = 2 sqrt(max(z + 3/8 + s^2, 0)); D's noise is about N(0, 1) wherever
  the counts x / alpha are not tiny.
- Max-normalization (release): D' = (D - min D) k, k = 1 / (max D - min D) over H, W, C of each image, so D' is in
  [0, 1] with noise std k. The Anscombe network transforms the 3-channel S^T y, zeros included, so min D <= D(0)
  (models/isp.py). A range below RANGE_EPSILON (only constant, noise-free images) counts as RANGE_EPSILON, so
  k <= 1000. D = D' / k + min D undoes it exactly.
- Noise channel: a constant channel of value k appended last, so the prior's input [D', k] has C + 1 channels.
- Inverses: algebraic (D^2/4 - 1/8 - s^2) alpha; and the closed-form unbiased approximation, which adds
  1/4 sqrt(3/2) D^-1 - 11/8 D^-2 + 5/8 sqrt(3/2) D^-3, evaluated at max(D, sqrt(3/2)) (the transform of zero counts,
  where it equals -s^2) so it stays finite and continuous with gradient D / 2 below. Outputs are not clipped: dark
  pixels may come out slightly negative.
- Precision: the pure functions compute in float64 for float64 `y`, else float32; the layers use the "float32"
  dtype policy whatever the global policy (alpha ~ 1e-4 and the sqrt of large counts need more than float16).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from dirtypixels_tf.physics import mosaic
from dirtypixels_tf.physics.validation import check_image

RANGE_EPSILON = 1e-3
UNBIASED_D_FLOOR = math.sqrt(1.5)  # 2 sqrt(3/8): forward transform of zero counts without read noise
_SQRT_3_2 = math.sqrt(1.5)


def _compute_dtype(x):
    return tf.float64 if x.dtype == tf.float64 else tf.float32


def _check_noise_parameter(value, name, images, allow_zero, pattern):
    """Cast alpha or sigma to images' dtype, checking shape and sign, shaped to broadcast against images: a scalar,
    [B, 1, 1, 1] for [B], and for [B, 3] [B, 1, 1, 3] (3-channel images) or the per-pixel map [B, H, W, 1] of the
    mosaic's colours (1-channel images of Bayer phase `pattern`).

    Eagerly a bad value raises ValueError naming the argument and the value; in a graph the same message comes from
    tf.debugging (InvalidArgumentError at run time; XLA drops the check).
    """
    value = tf.cast(tf.convert_to_tensor(value, dtype_hint=images.dtype), images.dtype)
    rank = value.shape.rank
    if rank not in (0, 1, 2) or (rank == 2 and value.shape[1] != 3):
        raise ValueError(
            f"{name} must be a scalar or have shape [batch] or [batch, 3] (per colour); received shape {value.shape}"
        )
    channels = images.shape[-1]
    if rank == 2 and channels not in (1, 3):
        raise ValueError(
            f"{name} of shape [batch, 3] (per colour) needs images of 1 (mosaic) or 3 channels; received {images.shape}"
        )
    batch = images.shape[0]
    if rank >= 1 and value.shape[0] is not None and batch is not None and value.shape[0] != batch:
        expected = f"[{batch}] (one value per image)" if rank == 1 else f"[{batch}, 3] (one row per image)"
        raise ValueError(f"{name} must have shape {expected}; received shape {value.shape}")
    bound = ">= 0" if allow_zero else "> 0"
    message = f"{name} must be finite and {bound}"
    if tf.executing_eagerly():
        numbers = value.numpy()
        bad = ~np.isfinite(numbers) | (numbers < 0) | ((numbers == 0) & (not allow_zero))
        if np.any(bad):
            raise ValueError(f"{message}; received {name}={numbers.tolist()}")
    else:
        check = tf.debugging.assert_non_negative if allow_zero else tf.debugging.assert_positive
        with tf.control_dependencies([check(value, message=message), tf.debugging.assert_all_finite(value, message)]):
            value = tf.identity(value)
    if rank == 0:
        return value
    if rank == 1:
        return tf.reshape(value, [-1, 1, 1, 1])
    per_colour = value[:, None, None, :]
    if channels == 3:
        return per_colour
    masks = mosaic.bayer_masks(images.shape[1], images.shape[2], pattern, images.dtype)
    return tf.reduce_sum(per_colour * masks, axis=-1, keepdims=True)


def _prepare(images, alpha, sigma, name, pattern):
    images = check_image(images, name)
    images = tf.cast(images, _compute_dtype(images))
    alpha = _check_noise_parameter(alpha, "alpha", images, allow_zero=False, pattern=pattern)
    sigma = _check_noise_parameter(sigma, "sigma", images, allow_zero=True, pattern=pattern)
    return images, alpha, sigma


def anscombe_forward(y, alpha, sigma, pattern=mosaic.RELEASE_PATTERN):
    """GAT D = 2 sqrt(max(y / alpha + 3/8 + (sigma / alpha)^2, 0)); y [B, H, W, C], alpha > 0, sigma >= 0 (scalars,
    [B] or [B, 3]; `pattern` places [B, 3] values on a 1-channel mosaic, see the module docstring)."""
    y, alpha, sigma = _prepare(y, alpha, sigma, "y", pattern)
    s = sigma / alpha
    return 2.0 * tf.sqrt(tf.maximum(y / alpha + 0.375 + tf.square(s), 0.0))


def anscombe_inverse_algebraic(d, alpha, sigma, pattern=mosaic.RELEASE_PATTERN):
    """Algebraic inverse (D^2 / 4 - 1/8 - s^2) * alpha, s = sigma / alpha (Diamond et al. 2021 Eq. 11)."""
    d, alpha, sigma = _prepare(d, alpha, sigma, "d", pattern)
    s = sigma / alpha
    return (0.25 * tf.square(d) - 0.125 - tf.square(s)) * alpha


def anscombe_inverse_unbiased(d, alpha, sigma, pattern=mosaic.RELEASE_PATTERN):
    """Closed-form approximation of the exact unbiased inverse (Makitalo and Foi 2013), finite for every D.

    (D^2/4 + 1/4 sqrt(3/2) E^-1 - 11/8 E^-2 + 5/8 sqrt(3/2) E^-3 - 1/8 - s^2) * alpha with E = max(D, sqrt(3/2)):
    the exact closed form for D >= sqrt(3/2), continuous below it (see the module docstring).
    """
    d, alpha, sigma = _prepare(d, alpha, sigma, "d", pattern)
    s = sigma / alpha
    e = tf.maximum(d, UNBIASED_D_FLOOR)
    correction = 0.25 * _SQRT_3_2 / e - 1.375 / tf.square(e) + 0.625 * _SQRT_3_2 / (e * e * e)
    return (0.25 * tf.square(d) + correction - 0.125 - tf.square(s)) * alpha


def max_normalize(d):
    """Per-image max-normalization: returns (D', scale k [B], offset min D [B]) with D' = (D - min D) * k in [0, 1].

    k = 1 / max(max D - min D, RANGE_EPSILON), min and max over H, W, C of each image. D' has noise std k.
    """
    d = check_image(d, "d")
    d = tf.cast(d, _compute_dtype(d))
    offset = tf.reduce_min(d, axis=[1, 2, 3])
    value_range = tf.reduce_max(d, axis=[1, 2, 3]) - offset
    scale = 1.0 / tf.maximum(value_range, RANGE_EPSILON)
    normalized = (d - offset[:, None, None, None]) * scale[:, None, None, None]
    return normalized, scale, offset


def max_denormalize(normalized, scale, offset):
    """Undo max_normalize: D = D' / k + min D, with scale k and offset min D of shape [B]."""
    normalized = check_image(normalized, "normalized")
    dtype = _compute_dtype(normalized)
    normalized = tf.cast(normalized, dtype)
    scale = tf.reshape(tf.cast(scale, dtype), [-1, 1, 1, 1])
    offset = tf.reshape(tf.cast(offset, dtype), [-1, 1, 1, 1])
    return normalized / scale + offset


def append_noise_channel(images, noise_std):
    """Append a constant channel holding each image's noise std ([B] or scalar): [B, H, W, C] -> [B, H, W, C + 1]."""
    images = check_image(images, "images")
    noise_std = tf.cast(noise_std, images.dtype)
    if noise_std.shape.rank == 0:
        noise_std = tf.fill(tf.shape(images)[:1], noise_std)
    channel = tf.ones_like(images[..., :1]) * tf.reshape(noise_std, [-1, 1, 1, 1])
    return tf.concat([images, channel], axis=-1)


def _known_channels(x, name):
    x = check_image(x, name)
    if x.shape[-1] is None:
        raise ValueError(f"{name} must have a known number of channels; received shape {x.shape}")
    return x


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class GeneralizedAnscombe(keras.layers.Layer):
    """Forward GAT of a RAW image, then (optionally) max-normalization and the noise channel.

    Call: layer(y, alpha, sigma) with y [B, H, W, C] and alpha, sigma [B], [B, 3] (per colour, placed on a
    1-channel mosaic by the Bayer phase `pattern`) or scalars. Returns a dict:
    - "image": D' (normalize=True) or D, [B, H, W, C], with the noise channel appended ([B, H, W, C + 1]) when
      noise_channel=True;
    - "scale": k [B] (the noise std of "image"; ones when normalize=False, since the GAT's noise std is 1);
    - "offset": min D [B] (zeros when normalize=False).
    InverseAnscombe takes "scale" and "offset" back. All values float32 (see the module docstring).
    """

    def __init__(self, normalize=True, noise_channel=True, pattern=mosaic.RELEASE_PATTERN, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        for name, value in (("normalize", normalize), ("noise_channel", noise_channel)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False; received {value!r}")
        self.normalize = normalize
        self.noise_channel = noise_channel
        self.pattern = mosaic.check_pattern(pattern)

    def call(self, y, alpha, sigma):
        y = _known_channels(y, "y")
        d = tf.cast(anscombe_forward(tf.cast(y, tf.float32), alpha, sigma, self.pattern), tf.float32)
        if self.normalize:
            d, scale, offset = max_normalize(d)
        else:
            scale, offset = tf.ones(tf.shape(d)[:1]), tf.zeros(tf.shape(d)[:1])
        if self.noise_channel:
            d = append_noise_channel(d, scale)
        return {"image": d, "scale": scale, "offset": offset}

    def compute_output_shape(self, y_shape, alpha_shape=None, sigma_shape=None):
        channels = y_shape[-1] + 1 if self.noise_channel else y_shape[-1]
        return {"image": (*y_shape[:-1], channels), "scale": (y_shape[0],), "offset": (y_shape[0],)}

    def get_config(self):
        return {
            **super().get_config(),
            "normalize": self.normalize,
            "noise_channel": self.noise_channel,
            "pattern": self.pattern,
        }


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class InverseAnscombe(keras.layers.Layer):
    """Undo the max-normalization (when scale and offset are given), then apply the inverse GAT.

    Call: layer(image, alpha, sigma, scale=None, offset=None) with image [B, H, W, C] in the normalized domain
    (no noise channel) and scale, offset [B] from GeneralizedAnscombe. unbiased=True uses the closed-form
    approximation of the exact unbiased inverse, False the algebraic inverse. alpha, sigma as for
    GeneralizedAnscombe (`pattern` places [B, 3] values on a 1-channel image). Returns float32 [B, H, W, C] in
    units of the [0, 1] pixel range (not clipped).
    """

    def __init__(self, unbiased=True, pattern=mosaic.RELEASE_PATTERN, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not isinstance(unbiased, bool):
            raise ValueError(f"unbiased must be True or False; received {unbiased!r}")
        self.unbiased = unbiased
        self.pattern = mosaic.check_pattern(pattern)

    def call(self, image, alpha, sigma, scale=None, offset=None):
        image = tf.cast(_known_channels(image, "image"), tf.float32)
        if (scale is None) != (offset is None):
            raise ValueError(f"scale and offset go together; received scale={scale!r}, offset={offset!r}")
        if scale is not None:
            image = max_denormalize(image, scale, offset)
        inverse = anscombe_inverse_unbiased if self.unbiased else anscombe_inverse_algebraic
        return tf.cast(inverse(image, alpha, sigma, self.pattern), tf.float32)

    def compute_output_shape(self, image_shape, *args, **kwargs):
        return image_shape

    def get_config(self):
        return {**super().get_config(), "unbiased": self.unbiased, "pattern": self.pattern}
