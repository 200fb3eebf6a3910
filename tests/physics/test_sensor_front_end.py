"""Simulated frames through the capture front end (SensorModel(front_end=...)): the same white balance, exposure
and per-colour noise as data/camera_raw.prepare_capture gives a camera file, and noise moments per colour."""

import numpy as np
import pytest
import tensorflow as tf
from tolerances import EPS32

from dirtypixels_tf.data import camera_raw
from dirtypixels_tf.physics.mosaic import bayer_masks_numpy
from dirtypixels_tf.physics.sensor import SensorModel, capture_front_end, percentile
from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training.data import make_sensor


def test_percentile_is_numpys_linear_interpolation():
    values = np.random.default_rng(0).random((3, 1001)).astype(np.float32)
    for q in (0.0, 50.0, 98.0, 100.0):
        np.testing.assert_allclose(
            percentile(tf.constant(values), q).numpy(), np.percentile(values, q, axis=1), rtol=2 * EPS32
        )


@pytest.mark.parametrize("rule", ["percentile98", "metering"])
def test_the_simulated_front_end_is_the_file_front_end(rule):
    """On one mosaic (a whole frame: no crop), the TF front end of the simulation and the NumPy one of real files
    give the same frame and per-colour noise, to float32 round-off."""
    rng = np.random.default_rng(1)
    raw = rng.uniform(0.0, 0.3, (1, 32, 48, 1)).astype(np.float32)
    neutral = np.array([[0.45, 1.0, 0.7]], np.float32)
    frame, alpha, sigma = capture_front_end(
        tf.constant(raw), tf.constant([0.002]), tf.constant([0.004]), tf.constant(neutral), rule, "GRBG"
    )
    raw_frame = camera_raw.RawFrame(
        raw[0, ..., 0], "GRBG", "GRBG", (0, 0), (0,) * 4, 1.0, (32, 48), None, None, tuple(neutral[0].tolist())
    )
    expected = camera_raw.prepare_capture(raw_frame, (32, 48), exposure=rule, noise=(0.002, 0.004))
    np.testing.assert_allclose(frame.numpy()[0, ..., 0], expected.mosaic, atol=4 * EPS32)  # values <= 1
    np.testing.assert_allclose(alpha.numpy()[0], expected.alpha, rtol=4 * EPS32)
    np.testing.assert_allclose(sigma.numpy()[0], expected.sigma, rtol=4 * EPS32)


def test_noise_moments_per_colour_match_the_per_colour_parameters():
    """Flat grey scenes through Brooks et al.'s unprocessing (a white balance per image), Poisson-Gaussian noise, the
    front end with metering: in each colour plane the variance is alpha_c * mean_c + sigma_c^2 with the [B, 3]
    parameters returned. 8,192 pixels per plane: the sample variance's relative standard error is sqrt(2 / n) =
    1.6 %; the tolerance is 5 standard errors (8 %)."""
    sensor = SensorModel(alpha=0.0004, sigma=0.003, unprocess=True, front_end="metering", pattern="BGGR")
    scenes = tf.fill([4, 256, 128, 3], 0.5)
    out = sensor.simulate(scenes, tf.constant([3, 4], tf.int64))
    raw, alpha, sigma = out["raw"].numpy()[..., 0], out["alpha"].numpy(), out["sigma"].numpy()
    assert alpha.shape == (4, 3) and raw.max() < 1.0 and raw.min() > 0.0  # nothing clipped
    ratio = alpha[:, 0] / alpha[:, 1]
    assert np.ptp(ratio) > 0.05  # the white balance differs per image, so the check is per colour
    masks = bayer_masks_numpy(256, 128, "BGGR").astype(bool)
    for image in range(4):
        for colour in range(3):
            values = raw[image][masks[..., colour]].astype(np.float64)
            predicted = alpha[image, colour] * values.mean() + sigma[image, colour] ** 2
            assert values.var() == pytest.approx(predicted, rel=0.08), (image, colour)
    np.testing.assert_allclose(raw.mean(axis=(1, 2)), 0.449, rtol=1e-5)  # metering: the target mean


def test_the_config_option_builds_the_sensor_with_the_front_end():
    default = config_lib.resolve_config("default")
    config = config_lib.load_config(default, ["data.front_end=percentile98"])
    assert make_sensor(config).front_end == "percentile98"
    assert make_sensor(config_lib.load_config(default)).front_end is None
    with pytest.raises(config_lib.ConfigError, match="front_end"):
        config_lib.load_config(default, ["data.front_end=auto"])


def test_the_pipeline_carries_per_colour_noise_with_the_front_end():
    from dirtypixels_tf.data.pipeline import simulate_batch, simulation_map

    sensor = SensorModel(front_end="percentile98")
    fn = simulation_map(sensor, (16, 16), training=False)
    features, _ = fn(tf.constant(0, tf.int64), (tf.fill([20, 20, 3], 0.4), tf.constant(1)))
    assert features["alpha"].shape == (3,) and features["sigma"].shape == (3,)
    on_device = simulation_map(sensor, (16, 16), training=False, simulate_on_device=True)
    clean, _ = on_device(tf.constant(0, tf.int64), (tf.fill([20, 20, 3], 0.4), tf.constant(1)))
    batched = simulate_batch(sensor, {key: value[None] for key, value in clean.items()})
    np.testing.assert_array_equal(batched["alpha"].numpy()[0], features["alpha"].numpy())  # same frame either way


@pytest.mark.slow  # builds the default experiment's model: about 30 s on a shared CPU
def test_the_config_option_builds_a_model_taking_per_colour_noise():
    from dirtypixels_tf.training.model_setup import build_experiment_model

    config = config_lib.load_config(config_lib.resolve_config("default"), ["data.front_end=metering"])
    assert build_experiment_model(config).input["alpha"].shape == (None, 3)
