"""SensorModel: the image formation model used everywhere, clean image -> (RAW mosaic, alpha, sigma).

Forward model (Diamond et al. 2021, Eq. 1): y = clip_[0,1]( alpha * Poisson(S (k * x) / alpha) + N(0, sigma^2) ), where
k * is the lens blur (optional; see physics/fourier.py for the boundary), S the Bayer mosaic of `pattern` (see
physics/mosaic.py) and (alpha, sigma) the noise at the image's light level. Optionally (`noise_terms`, off by
default) the extended terms of Wei et al. 2020: Tukey-lambda read noise, row noise, black-level bias and ADC
quantization (physics/noise.py).

With `unprocess` (physics/unprocess.py, Brooks et al. 2019) the clean sRGB image is first mapped to linear camera RGB
(inverse tone curve, gamma, colour matrix and white balance, drawn per image); without it (the default, the
release's path) the sRGB image is mosaicked as if it were linear sensor data.

The noise is given either by a sensor preset (ISO-100 calibration) and a light-level range, sampled
log-uniformly per image, or by a fixed (alpha, sigma). All randomness comes from one stateless seed [2] per call.

With `front_end` ("percentile98" or "metering"), each simulated frame is then white-balanced and exposure-normalized
as the real-capture front end treats a camera file (data/camera_raw.py; `capture_front_end` below): divided per
colour by the camera's neutral (G-normalized 1 / the unprocessing gains; ones without unprocessing), multiplied by
e = 1 / its 98th percentile (the release's rule) or catalog.CAPTURE_METERING_TARGET / its mean, clipped to [0, 1];
alpha and sigma become [B, 3], alpha e / neutral_c and sigma e / neutral_c. A model trained on such frames takes per-colour noise.
"""

import numpy as np
import tensorflow as tf

from dirtypixels_tf.catalog import (
    CAPTURE_EXPOSURES,
    CAPTURE_METERING_TARGET,
    CAPTURE_PERCENTILE,
    DEFAULT_PRESET,
    DEFAULT_PROFILE,
)
from dirtypixels_tf.physics import darktable, fourier, mosaic, noise
from dirtypixels_tf.physics.sensor_files import load_sensor_preset, resolve_sensor
from dirtypixels_tf.physics.unprocess import UnprocessSettings, sample_camera, unprocess
from dirtypixels_tf.physics.validation import check_finite, check_image, check_positive_number

FRONT_END_RULES = tuple(rule for rule in CAPTURE_EXPOSURES if rule != "none")


def percentile(values, q):
    """The q-th percentile of each row of values [B, N], with NumPy's default linear interpolation."""
    ordered = tf.sort(values, axis=-1)
    count = tf.shape(values)[1]
    position = tf.cast(q / 100.0, values.dtype) * tf.cast(count - 1, values.dtype)
    low = tf.cast(tf.floor(position), tf.int32)
    high = tf.minimum(low + 1, count - 1)
    fraction = position - tf.cast(low, values.dtype)
    below, above = ordered[:, low], ordered[:, high]
    return below + fraction * (above - below)


def capture_front_end(raw, alpha, sigma, neutral, rule, pattern, metering_target=CAPTURE_METERING_TARGET):
    """White balance and exposure of RAW mosaics as data/camera_raw.prepare_capture does for a file (whole frames,
    no crop): raw [B, H, W, 1] in [0, 1] of phase `pattern`, alpha and sigma [B], neutral [B, 3] (R, G, B), rule
    "percentile98" or "metering". Returns (frame [B, H, W, 1] in [0, 1], alpha [B, 3], sigma [B, 3])."""
    if rule not in FRONT_END_RULES:
        raise ValueError(f"front_end must be one of {', '.join(FRONT_END_RULES)}; received {rule!r}")
    masks = mosaic.bayer_masks(raw.shape[1], raw.shape[2], pattern, raw.dtype)
    balanced = raw * tf.reduce_sum(masks / neutral[:, None, None, :], axis=-1, keepdims=True)
    flat = tf.reshape(balanced, [tf.shape(raw)[0], -1])
    if rule == CAPTURE_PERCENTILE:
        level = percentile(flat, 98.0)
    else:
        level = tf.reduce_mean(flat, axis=-1) / metering_target
    exposure = 1.0 / tf.maximum(level, 1e-6)  # a black frame stays black
    frame = tf.clip_by_value(balanced * exposure[:, None, None, None], 0.0, 1.0)
    gains = exposure[:, None] / neutral
    return frame, alpha[:, None] * gains, sigma[:, None] * gains


class SensorModel:
    """A simulated camera: optics, colour filter array and noise.

    Args:
        preset: a sensor spec (physics/sensor_files.py resolve_sensor): a preset name (catalog.SENSOR_PRESETS), a
            sensor.yaml path, a noise.NoisePreset or a SensorCalibration; its noise, Bayer phase and extended terms.
        light_levels: a profile name (catalog.LIGHT_PROFILES) or a (low, high) pair of light levels
            (lux / 2000); ignored when `alpha` and `sigma` are given.
        alpha, sigma: a fixed noise level (in [0, 1] units) for every image, instead of preset + light levels.
        pattern: Bayer phase (None: the sensor's; the release's BGGR for a preset).
        psf: None (no blur), or [kh, kw] / [kh, kw, 3], normalized to sum 1 per channel.
        boundary: blur boundary handling ("reflect" by default; see physics/fourier.py).
        clip: clip the measurements to [0, 1] (the real sensor does).
        noise_terms: the extended low-light terms of Wei et al. 2020 (a noise.NoiseTerms; None: the sensor's, a
            sensor.yaml's, else all off, the release's Poisson-Gaussian model).
        unprocess: None (default: the release's path, sRGB mosaicked as linear data), True (Brooks et al. 2019's
            randomized camera pipeline) or a physics.unprocess.UnprocessSettings.
        front_end: None (default), or "percentile98" / "metering": frames white-balanced and exposure-normalized
            as real captures are, with alpha and sigma per colour [B, 3] (module docstring).
    """

    def __init__(
        self,
        preset=DEFAULT_PRESET,
        light_levels=DEFAULT_PROFILE,
        alpha=None,
        sigma=None,
        pattern=None,
        psf=None,
        boundary="reflect",
        clip=True,
        noise_terms=None,
        unprocess=None,
        front_end=None,
    ):
        calibration = resolve_sensor(preset)
        self.preset = calibration.preset
        if (alpha is None) != (sigma is None):
            raise ValueError(f"alpha and sigma must be given together; received alpha={alpha!r}, sigma={sigma!r}")
        self.fixed_noise = None
        if alpha is not None:
            self.fixed_noise = (
                check_positive_number(alpha, "alpha", allow_zero=True),
                check_positive_number(sigma, "sigma", allow_zero=True),
            )
            if self.fixed_noise == (0.0, 0.0):
                raise ValueError("alpha and sigma must not both be 0; received alpha=0, sigma=0")
        if isinstance(light_levels, str):
            light_levels = noise.get_light_profile(light_levels)
        try:
            low, high = (float(v) for v in light_levels)
        except (TypeError, ValueError):
            raise ValueError(f"light_levels must be a profile name or (low, high); received {light_levels!r}") from None
        check_positive_number(low, "light_levels low")
        check_positive_number(high, "light_levels high")
        if high < low:
            raise ValueError(f"light_levels must have low <= high; received {light_levels!r}")
        self.light_levels = (low, high)
        self.pattern = mosaic.check_pattern(calibration.pattern if pattern is None else pattern)
        self.psf = None if psf is None else np.asarray(psf, np.float32)
        if self.psf is not None:
            sums = self.psf.sum(axis=(0, 1))
            if self.psf.ndim not in (2, 3) or not np.all(np.isfinite(self.psf)) or np.any(np.abs(sums - 1) > 1e-3):
                raise ValueError(f"psf must be [kh, kw] or [kh, kw, 3], finite, summing to 1; received sums {sums}")
        self.boundary = fourier.check_boundary(boundary)
        self.clip = bool(clip)
        self.noise_terms = calibration.terms if noise_terms is None else noise_terms
        if not isinstance(self.noise_terms, noise.NoiseTerms):
            raise ValueError(f"noise_terms must be None or a NoiseTerms; received {noise_terms!r}")
        if unprocess is True:
            unprocess = UnprocessSettings()
        if unprocess not in (None, False) and not isinstance(unprocess, UnprocessSettings):
            raise ValueError(f"unprocess must be None, True or an UnprocessSettings; received {unprocess!r}")
        self.unprocess = unprocess or None
        if front_end not in (None, *FRONT_END_RULES):
            raise ValueError(f"front_end must be None or one of {', '.join(FRONT_END_RULES)}; received {front_end!r}")
        self.front_end = front_end

    @classmethod
    def from_darktable(cls, maker, model, iso, path=None, **kwargs):
        """A sensor with the noise of a real camera at `iso` from darktable's profiles (see physics/darktable.py)."""
        return cls(preset=darktable.preset_from_darktable(maker, model, iso, path), **kwargs)

    @classmethod
    def from_preset_file(cls, path, **kwargs):
        """A sensor with the noise, Bayer phase and extended terms of a calibrated sensor.yaml (physics/sensor_files.py)."""
        return cls(preset=load_sensor_preset(path), **kwargs)

    def noise_params(self, batch_size, seed):
        """(alpha, sigma), each float32 [batch_size]: fixed, or from light levels sampled per image."""
        if self.fixed_noise is not None:
            alpha, sigma = self.fixed_noise
            return tf.fill([batch_size], tf.constant(alpha, tf.float32)), tf.fill(
                [batch_size], tf.constant(sigma, tf.float32)
            )
        levels = noise.sample_light_levels(*self.light_levels, shape=[batch_size], seed=seed)
        return self.preset.at_light_level(levels)

    def optics(self, images):
        """The lens: blur by the PSF (identity without one). images [B, H, W, 3] in [0, 1]."""
        return images if self.psf is None else fourier.fft_convolve(images, self.psf, self.boundary)

    def simulate(self, images, seed):
        """Clean colour images [B, H, W, 3] in [0, 1] -> {"raw": [B, H, W, 1], "alpha": [B], "sigma": [B]} (alpha
        and sigma [B, 3] with a front end), plus the camera drawn per image ({"rgb_to_camera": [B, 3, 3], "gains": [B, 3]}, physics/unprocess.py) when
        unprocessing.

        H and W must be even (whole Bayer blocks). `seed` is a stateless seed [2]; the same seed and images give
        the same output bit for bit.
        """
        images = check_image(images, "images", channels=3)
        with tf.control_dependencies([check_finite(images, "images")]):
            images = tf.identity(images)
        level_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        batch_size = tf.shape(images)[0]
        alpha, sigma = self.noise_params(batch_size, level_seed)
        measured = {"alpha": alpha, "sigma": sigma}
        if self.unprocess is not None:
            camera = sample_camera(batch_size, tf.random.experimental.stateless_fold_in(seed, 2), self.unprocess)
            images = unprocess(images, camera, self.unprocess.highlight_preserving)
            measured.update(camera)
        clean_raw = mosaic.mosaic(self.optics(images), self.pattern)
        measured["raw"] = noise.add_sensor_noise(clean_raw, alpha, sigma, noise_seed, self.noise_terms, self.clip)
        if self.front_end is not None:
            gains = measured.get("gains")
            neutral = tf.ones([batch_size, 3]) if gains is None else gains[:, 1:2] / gains
            measured["raw"], measured["alpha"], measured["sigma"] = capture_front_end(
                measured["raw"], alpha, sigma, neutral, self.front_end, self.pattern
            )
        return measured
