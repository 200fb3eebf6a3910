"""Poisson-Gaussian sensor noise with clipping, sensor presets, and the lux -> ISO -> (alpha, sigma) mapping.

Model (Diamond et al. 2021, Eq. 1): y = clip_[0,1]( alpha * Poisson(x / alpha) + N(0, sigma^2) ), x in [0, 1], so
E[y] = x and Var[y] = alpha * x + sigma^2 before clipping; alpha = 0 means no Poisson part, sigma = 0 no Gaussian.
Presets give (Poisson scale, Gaussian std) at ISO 100 in [0, 1] units. The release's linear ISO model:
alpha = poisson * ISO / 100, sigma = gauss * ISO / 100, with light level = lux / 2000 and ISO = 100 / light level.

Extended low-light terms (Wei et al. 2020, ELD), all optional and off by default (`NoiseTerms`, `add_sensor_noise`):
- read noise of Tukey-lambda shape: sigma * T / std(T), T ~ Tukey-lambda(lam) (heavy-tailed for lam < 0.14, near
  Gaussian at 0.14); sigma stays the read noise's std, so the variance alpha x + sigma^2 holds;
- row noise: one offset N(0, (row_noise * sigma)^2) per image row (relative to sigma, so it follows the ISO);
- black-level bias: a constant offset per position of the 2x2 Bayer block (row-major, [0, 1] units);
- ADC quantization at `bit_depth` bits: values rounded to multiples of 1 / (2^bit_depth - 1) after clipping (or
  without clipping when clip=False, as for dark frames read with their pedestal).
Order: shot noise, read noise, row noise, bias, clip, quantization.

Randomness is stateless: every sampler takes a `seed` of shape [2] (int32/int64), so the same seed gives the same
noise bit for bit on every run and machine. Key it by example index (`example_seed`) to make an evaluation set
independent of batching and of the number of replicas.
"""

import dataclasses
import math

import scipy.special
import tensorflow as tf

from dirtypixels_tf.catalog import (  # noqa: F401 (the tables live there, free of TensorFlow)
    DEFAULT_PRESET,
    LIGHT_PROFILES,
    LUX_PER_LIGHT_LEVEL,
    SENSOR_PRESETS,
)
from dirtypixels_tf.physics.poisson import poisson_counts
from dirtypixels_tf.physics.validation import check_positive_number


@dataclasses.dataclass(frozen=True)
class NoisePreset:
    """A sensor's noise at ISO 100: Poisson scale and Gaussian std, in units of the [0, 1] range."""

    poisson: float
    gauss: float

    def __post_init__(self):
        check_positive_number(self.poisson, "poisson", allow_zero=True)
        check_positive_number(self.gauss, "gauss", allow_zero=True)
        if self.poisson == 0 and self.gauss == 0:
            raise ValueError("a noise preset needs poisson > 0 or gauss > 0; received both 0")

    def at_iso(self, iso):
        """(alpha, sigma) at `iso` under the linear ISO model."""
        iso = check_positive_number(iso, "iso")
        return self.poisson * iso / 100.0, self.gauss * iso / 100.0

    def at_light_level(self, light_level):
        """(alpha, sigma) at a light level (lux / 2000); works on numbers and tensors alike."""
        return self.poisson / light_level, self.gauss / light_level


def get_noise_preset(name):
    """The NoisePreset called `name` (case-sensitive, as in the release), or a ValueError listing the valid ones."""
    if name not in SENSOR_PRESETS:
        raise ValueError(f"preset must be one of {', '.join(SENSOR_PRESETS)}; received {name!r}")
    return NoisePreset(*SENSOR_PRESETS[name])


def lux_to_light_level(lux):
    """Light level = lux / 2000 (3 lux -> 0.0015)."""
    return check_positive_number(lux, "lux") / LUX_PER_LIGHT_LEVEL


def light_level_to_lux(light_level):
    return check_positive_number(light_level, "light_level") * LUX_PER_LIGHT_LEVEL


def light_level_to_iso(light_level):
    """ISO = 100 / light_level: the gain that keeps the dynamic range at a light level."""
    return 100.0 / check_positive_number(light_level, "light_level")


def noise_at_lux(lux, preset=DEFAULT_PRESET):
    """(alpha, sigma) at `lux` for a preset name or NoisePreset; 3 lux on Nexus_6P_rear -> (0.1248, 0.3155)."""
    preset = get_noise_preset(preset) if isinstance(preset, str) else preset
    return preset.at_light_level(lux_to_light_level(lux))


def light_level_for_noise(preset=DEFAULT_PRESET, noise_std=None, intensity=0.5):
    """The light level at which pixels of value `intensity` have noise std `noise_std` (the inverse question).

    Solves noise_std^2 = alpha * intensity + sigma^2 with alpha = poisson / L and sigma = gauss / L for L.
    Returns the light level; multiply by 2000 for lux.
    """
    preset = get_noise_preset(preset) if isinstance(preset, str) else preset
    std = check_positive_number(noise_std, "noise_std")
    intensity = check_positive_number(intensity, "intensity", allow_zero=True)
    p, g = preset.poisson * intensity, preset.gauss
    if p == 0 and g == 0:
        raise ValueError(f"intensity must be > 0 for a pure Poisson preset; received {intensity!r}")
    # With u = 1 / L: g^2 u^2 + p u - std^2 = 0, positive root (stable form).
    u = 2.0 * std**2 / (p + math.sqrt(p * p + 4.0 * g * g * std**2))
    return 1.0 / u


def get_light_profile(name):
    """(low, high) light levels of a named profile, or a ValueError listing the valid ones."""
    if name not in LIGHT_PROFILES:
        raise ValueError(f"profile must be one of {', '.join(LIGHT_PROFILES)}; received {name!r}")
    return LIGHT_PROFILES[name]


def sample_light_levels(low, high, shape, seed):
    """Log-uniform light levels in [low, high] (constant when low == high), float32 of `shape`."""
    low = check_positive_number(low, "low")
    high = check_positive_number(high, "high")
    if high < low:
        raise ValueError(f"high must be >= low; received low={low}, high={high}")
    if low == high:
        return tf.fill(shape, tf.constant(low, tf.float32))
    u = tf.random.stateless_uniform(shape, seed, dtype=tf.float32)
    return tf.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def example_seed(base_seed, index):
    """The stateless seed [2] of example `index` under `base_seed`: independent of batching and replicas."""
    return tf.stack([tf.cast(base_seed, tf.int64), tf.cast(index, tf.int64)])


def _per_image(value, images):
    """Broadcast a scalar or [B] parameter against [B, H, W, C] images."""
    value = tf.cast(value, images.dtype)
    if value.shape.rank == 0:
        return value
    return tf.reshape(value, [-1, 1, 1, 1])


# Expected photon count x / alpha under which the Poisson draw is exact (a moment-matched normal above): high, as
# clipping near saturation exposes the normal's missing skewness (docs/numerics.md).
POISSON_EXACT_BELOW = 1000.0


def add_noise(images, alpha, sigma, seed, clip=True):
    """Poisson-Gaussian noise: clip_[0,1](alpha * Poisson(x / alpha) + N(0, sigma^2)).

    images: [B, H, W, C] float in [0, 1] (any layout works where alpha and sigma are scalars).
    alpha, sigma: scalars or [B] (one per image), >= 0. seed: [2] integers. Returns images' shape and dtype.
    The Poisson draw is exact where the expected count x / alpha is below POISSON_EXACT_BELOW (1000); at and above
    it, shot and read noise together are the moment-matched normal x + sqrt(alpha x + sigma^2) z (same mean and
    variance; the Poisson's skewness there is at most 1 / sqrt(1000) = 0.03 before the read noise), drawn with the
    read noise's z, so those pixels cost no Poisson sampling. The exact draw is physics/poisson.poisson_counts':
    where TensorFlow sees a GPU, a sampler built from ops with GPU kernels (the whole function then runs on an
    accelerator); without one, TensorFlow's CPU kernel (faster there, and the frames of earlier versions).
    """
    images = tf.convert_to_tensor(images)
    alpha_b = _per_image(alpha, images)
    sigma_b = _per_image(sigma, images)
    poisson_seed, gauss_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    safe_alpha = tf.where(alpha_b > 0, alpha_b, tf.ones_like(alpha_b))
    signal = tf.maximum(images, 0.0)
    rate = signal / safe_alpha
    exact = (rate < POISSON_EXACT_BELOW) & (alpha_b > 0)
    counts = poisson_counts(tf.where(exact, rate, tf.zeros_like(rate)), poisson_seed)
    z = tf.random.stateless_normal(tf.shape(images), gauss_seed, dtype=images.dtype)
    normal = images + tf.sqrt(alpha_b * signal + tf.square(sigma_b)) * z  # also alpha = 0: x + sigma z
    noisy = tf.where(exact, counts * safe_alpha + sigma_b * z, normal)
    return tf.clip_by_value(noisy, 0.0, 1.0) if clip else noisy


TUKEY_LAMBDA_RANGE = (-0.4, 1.0)  # open interval of supported shapes (the variance is infinite for lam <= -0.5)


def tukey_lambda_std(lam):
    """Standard deviation of the standard Tukey-lambda distribution, Q(u) = (u^lam - (1 - u)^lam) / lam."""
    lam = float(lam)
    if abs(lam) < 1e-6:
        return math.pi / math.sqrt(3.0)
    variance = 2.0 / lam**2 * (1.0 / (1.0 + 2.0 * lam) - math.exp(2 * math.lgamma(lam + 1) - math.lgamma(2 * lam + 2)))
    return math.sqrt(variance)


def tukey_lambda_quantile(u, lam):
    """The standard Tukey-lambda quantile function at probabilities u in (0, 1) (NumPy or TensorFlow values)."""
    lam = float(lam)
    if abs(lam) < 1e-6:
        return scipy.special.logit(u) if not tf.is_tensor(u) else tf.math.log(u / (1.0 - u))
    return (u**lam - (1.0 - u) ** lam) / lam


@dataclasses.dataclass(frozen=True)
class NoiseTerms:
    """The optional terms of Wei et al. 2020 (see the module docstring); the defaults switch every term off.

    tukey_lambda: shape of the read noise (None: Gaussian); row_noise: std of the row offsets relative to sigma
    (>= 0); black_level_bias: 4 offsets, one per position of the 2x2 Bayer block, row-major, [0, 1] units;
    bit_depth: ADC bits (None: no quantization).
    """

    tukey_lambda: float | None = None
    row_noise: float = 0.0
    black_level_bias: tuple = (0.0, 0.0, 0.0, 0.0)
    bit_depth: int | None = None

    def __post_init__(self):
        low, high = TUKEY_LAMBDA_RANGE
        if self.tukey_lambda is not None:
            value = self.tukey_lambda
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < high:
                raise ValueError(f"tukey_lambda must be None or a number in ({low}, {high}); received {value!r}")
            object.__setattr__(self, "tukey_lambda", float(value))
        object.__setattr__(self, "row_noise", check_positive_number(self.row_noise, "row_noise", allow_zero=True))
        try:
            bias = tuple(float(v) for v in self.black_level_bias)
        except (TypeError, ValueError):
            bias = ()
        if len(bias) != 4 or not all(math.isfinite(v) and abs(v) < 1 for v in bias):
            raise ValueError(
                f"black_level_bias must be 4 finite offsets in (-1, 1), one per Bayer position; received "
                f"{self.black_level_bias!r}"
            )
        object.__setattr__(self, "black_level_bias", bias)
        bits = self.bit_depth
        if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 24):
            raise ValueError(f"bit_depth must be None or an integer in [1, 24]; received {bits!r}")

    @property
    def active(self):
        """True when any term is on."""
        return (
            self.tukey_lambda is not None
            or self.row_noise > 0
            or any(self.black_level_bias)
            or self.bit_depth is not None
        )


def add_sensor_noise(images, alpha, sigma, seed, terms=None, clip=True):
    """`add_noise` with the extended terms of `terms` (a NoiseTerms; None or all off: exactly `add_noise`).

    images: clean mosaics [B, H, W, 1] in [0, 1] (H, W even; the bias follows the 2x2 block from the top-left).
    alpha, sigma: scalars or [B]. seed: [2]. Returns images' shape and dtype.
    """
    if terms is None or not terms.active:
        return add_noise(images, alpha, sigma, seed, clip=clip)
    images = tf.convert_to_tensor(images)
    shot_seed, read_seed, row_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    if terms.tukey_lambda is None:
        read = tf.random.stateless_normal(tf.shape(images), read_seed, dtype=images.dtype)
    else:
        u = tf.random.stateless_uniform(tf.shape(images), read_seed, 1e-7, 1.0 - 1e-7, dtype=images.dtype)
        read = tukey_lambda_quantile(u, terms.tukey_lambda) / tukey_lambda_std(terms.tukey_lambda)
    noisy = add_noise(images, alpha, 0.0, shot_seed, clip=False) + _per_image(sigma, images) * read
    if terms.row_noise > 0:
        shape = tf.shape(images)
        rows = tf.random.stateless_normal([shape[0], shape[1], 1, 1], row_seed, dtype=images.dtype)
        noisy += terms.row_noise * _per_image(sigma, images) * rows
    if any(terms.black_level_bias):
        shape = tf.shape(images)
        block = tf.constant(terms.black_level_bias, images.dtype, shape=[2, 2])
        noisy += tf.tile(block, [shape[1] // 2, shape[2] // 2])[tf.newaxis, :, :, tf.newaxis]
    if clip:
        noisy = tf.clip_by_value(noisy, 0.0, 1.0)
    if terms.bit_depth is not None:
        levels = float(2**terms.bit_depth - 1)
        noisy = tf.round(noisy * levels) / levels
    return noisy
