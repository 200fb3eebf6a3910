import numpy as np
import pytest
import tensorflow as tf

from dirtypixels_tf.physics import fourier, mosaic, noise
from dirtypixels_tf.physics.sensor import SensorModel

RNG = np.random.default_rng(1)


def box_psf(size=3):
    return np.full((size, size), 1.0 / size**2, np.float32)


def test_forward_model_is_noise_around_the_blurred_mosaic():
    images = RNG.random((4, 64, 64, 3)).astype(np.float32)
    sensor = SensorModel(alpha=0.001, sigma=0.01, psf=box_psf(), pattern="GRBG", clip=False)
    out = sensor.simulate(images, seed=[0, 1])
    clean = mosaic.mosaic(fourier.fft_convolve(images, box_psf(), "reflect"), "GRBG").numpy()
    residual = (out["raw"].numpy() - clean).astype(np.float64)
    expected_std = np.sqrt(np.mean(0.001 * clean + 0.01**2))
    assert abs(residual.mean()) < 5 * expected_std / np.sqrt(residual.size)
    assert residual.std() == pytest.approx(expected_std, rel=0.02)
    np.testing.assert_array_equal(out["alpha"].numpy(), np.float32(0.001))
    np.testing.assert_array_equal(out["sigma"].numpy(), np.float32(0.01))


def test_release_3lux_noise_parameters():
    out = SensorModel("Nexus_6P_rear", "3lux").simulate(np.zeros((2, 4, 4, 3), np.float32), seed=[0, 0])
    np.testing.assert_allclose(out["alpha"].numpy(), 0.1248, atol=1e-4)
    np.testing.assert_allclose(out["sigma"].numpy(), 0.3155, atol=1e-4)
    assert out["raw"].shape == (2, 4, 4, 1)
    assert out["raw"].numpy().min() >= 0 and out["raw"].numpy().max() <= 1


def test_ranges_give_each_image_its_own_light_level():
    sensor = SensorModel("Pixel", "2to200lux")
    alpha, sigma = sensor.noise_params(1000, seed=[4, 2])
    levels = 0.0153 / alpha.numpy()
    assert levels.min() >= 0.001 * 0.999 and levels.max() <= 0.1 * 1.001
    np.testing.assert_allclose(sigma.numpy() * levels, 0.0328, rtol=1e-5)
    assert len(np.unique(alpha.numpy())) == 1000


def test_same_seed_same_bits():
    images = RNG.random((3, 8, 8, 3)).astype(np.float32)
    sensor = SensorModel(light_levels="2to20lux", psf=box_psf())
    first, second = sensor.simulate(images, [9, 9]), sensor.simulate(images, [9, 9])
    other = sensor.simulate(images, [9, 10])
    for key in ("raw", "alpha", "sigma"):
        assert first[key].numpy().tobytes() == second[key].numpy().tobytes()
        assert not np.array_equal(first[key].numpy(), other[key].numpy())


def test_runs_inside_a_graph():
    sensor = SensorModel(light_levels="2to20lux", psf=box_psf())
    graph = tf.function(lambda x, s: sensor.simulate(x, s)["raw"])
    images = RNG.random((2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(graph(images, tf.constant([1, 2])), sensor.simulate(images, [1, 2])["raw"])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="images must have even height and width .* received 7x8"):
        SensorModel().simulate(np.zeros((1, 7, 8, 3), np.float32), [0, 0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="images must be finite; received NaN or infinity"):
        SensorModel().simulate(np.full((1, 4, 4, 3), np.nan, np.float32), [0, 0])
    with pytest.raises(ValueError, match="alpha and sigma must be given together; received alpha=0.1, sigma=None"):
        SensorModel(alpha=0.1)
    with pytest.raises(ValueError, match="alpha must be finite and >= 0; received -0.1"):
        SensorModel(alpha=-0.1, sigma=0.1)
    with pytest.raises(ValueError, match="sensor must be one of"):
        SensorModel("phone")
    with pytest.raises(ValueError, match="profile must be one of .*received '5lux'"):
        SensorModel(light_levels="5lux")
    with pytest.raises(ValueError, match=r"light_levels must have low <= high; received \(0.1, 0.01\)"):
        SensorModel(light_levels=(0.1, 0.01))
    with pytest.raises(ValueError, match="psf must be .* summing to 1; received sums"):
        SensorModel(psf=np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match="light_levels low must be finite and > 0; received 0.0"):
        SensorModel(light_levels=(0, 0.01))
    assert noise.DEFAULT_PRESET == "Nexus_6P_rear"
