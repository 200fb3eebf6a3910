import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from dirtypixels_tf.physics import noise

N = 200_000  # samples per statistic


@pytest.mark.parametrize(
    "x, alpha, sigma", [(0.3, 0.01, 0.02), (0.05, 0.1248, 0.3155), (0.7, 0.0, 0.05), (0.5, 0.02, 0.0)]
)
def test_unclipped_noise_has_the_model_mean_and_variance(x, alpha, sigma):
    images = tf.fill([N, 1, 1, 1], x)
    y = noise.add_noise(images, alpha, sigma, seed=[3, 4], clip=False).numpy().ravel().astype(np.float64)
    variance = alpha * x + sigma**2
    assert abs(y.mean() - x) < 5 * np.sqrt(variance / N), y.mean()  # 5 standard errors
    assert abs(y.var() / variance - 1) < 0.02, y.var()  # relative standard error of a variance ~ sqrt(2 / N) = 0.3 %


def test_per_image_parameters_apply_to_their_image():
    images = tf.fill([2, 300, 300, 1], 0.5)
    alpha, sigma = tf.constant([0.001, 0.05]), tf.constant([0.001, 0.1])
    y = noise.add_noise(images, alpha, sigma, seed=[0, 1], clip=False).numpy()
    expected = np.sqrt(alpha.numpy() * 0.5 + sigma.numpy() ** 2)
    np.testing.assert_allclose(y.reshape(2, -1).std(axis=1), expected, rtol=0.02)


def test_clipping_bounds_hold():
    images = tf.constant(np.linspace(0, 1, N, dtype=np.float32).reshape(-1, 1, 1, 1))
    y = noise.add_noise(images, 0.1248, 0.3155, seed=[5, 6]).numpy()
    assert y.min() == 0.0 and y.max() == 1.0
    assert np.all((y >= 0) & (y <= 1))


def test_same_seed_same_bits_and_different_seeds_differ():
    images = tf.random.stateless_uniform([2, 16, 16, 1], [0, 0])
    a = noise.add_noise(images, 0.05, 0.1, seed=[7, 8]).numpy()
    b = noise.add_noise(images, 0.05, 0.1, seed=[7, 8]).numpy()
    c = noise.add_noise(images, 0.05, 0.1, seed=[7, 9]).numpy()
    assert a.tobytes() == b.tobytes()
    assert np.mean(a != c) > 0.9


def test_log_uniform_light_levels_pass_ks_and_linear_uniform_fails():
    low, high = noise.get_light_profile("2to200lux")
    levels = noise.sample_light_levels(low, high, [N], seed=[1, 2]).numpy().astype(np.float64)
    assert levels.min() >= low * (1 - 1e-6) and levels.max() <= high * (1 + 1e-6)
    log_uniform = scipy.stats.uniform(np.log(low), np.log(high) - np.log(low))
    assert scipy.stats.kstest(np.log(levels), log_uniform.cdf).pvalue > 0.01
    assert scipy.stats.kstest(levels, scipy.stats.uniform(low, high - low).cdf).pvalue < 1e-6  # the test has power
    fixed = noise.sample_light_levels(*noise.get_light_profile("3lux"), shape=[4], seed=[1, 2]).numpy()
    np.testing.assert_array_equal(fixed, np.float32(0.0015))


def test_lux_mapping_matches_the_release():
    assert noise.lux_to_light_level(3) == pytest.approx(0.0015)
    assert noise.lux_to_light_level(6) == pytest.approx(0.003)
    assert noise.light_level_to_iso(0.0015) == pytest.approx(66666.67, rel=1e-6)
    alpha, sigma = noise.noise_at_lux(3, "Nexus_6P_rear")
    assert alpha == pytest.approx(0.1248, abs=1e-4) and sigma == pytest.approx(0.3155, abs=1e-4)
    preset = noise.get_noise_preset("Nexus_6P_rear")
    assert preset.at_iso(800) == pytest.approx((0.00018724 * 8, 0.0004733 * 8))
    assert preset.at_iso(noise.light_level_to_iso(0.0015)) == pytest.approx((alpha, sigma))


@pytest.mark.parametrize("preset", list(noise.SENSOR_PRESETS))
@pytest.mark.parametrize("intensity", [0.1, 0.5])
def test_light_level_for_noise_inverts_the_noise_model(preset, intensity):
    level = noise.light_level_for_noise(preset, noise_std=0.2, intensity=intensity)
    alpha, sigma = noise.get_noise_preset(preset).at_light_level(level)
    assert np.sqrt(alpha * intensity + sigma**2) == pytest.approx(0.2, rel=1e-9)


# The original release's calibration, (Poisson scale, Gaussian std) at ISO 100, and its named light profiles.
RELEASE_PRESETS = {
    "Nexus_6P_rear": (0.00018724, 0.0004733),
    "Nexus_6P_front": (0.00015, 0.0003875),
    "SEMCO": (0.000388, 0.0025),
    "OV2740": (0.000088021, 0.00022673),
    "Pixel": (0.0153, 0.0328),
    "Pixel3x3": (2.2682e-4, 0.0017),
    "Pixel5x5": (1.2361e-4, 0.0043),
    "Pixel7x7": (7.3344e-05, 0.0077),
    "GAUSS": (0, 1),
    "POISSON": (1, 0),
}
RELEASE_PROFILES = {
    "3lux": (0.0015, 0.0015),
    "6lux": (0.003, 0.003),
    "2to20lux": (0.001, 0.010),
    "2to200lux": (0.001, 0.1),
}


def test_every_release_preset_and_light_profile_is_there_with_its_values():
    assert noise.DEFAULT_PRESET == "Nexus_6P_rear"
    assert {name: tuple(values) for name, values in noise.SENSOR_PRESETS.items()} == RELEASE_PRESETS
    for name, (poisson, gauss) in RELEASE_PRESETS.items():
        assert noise.get_noise_preset(name) == noise.NoisePreset(poisson, gauss)
    assert {name: tuple(levels) for name, levels in noise.LIGHT_PROFILES.items()} == RELEASE_PROFILES
    for name, levels in RELEASE_PROFILES.items():
        assert noise.get_light_profile(name) == levels


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="lux must be finite and > 0; received -3"):
        noise.lux_to_light_level(-3)
    with pytest.raises(ValueError, match="lux must be finite and > 0; received 0"):
        noise.noise_at_lux(0)
    with pytest.raises(ValueError, match="preset must be one of .*received 'Nexus7'"):
        noise.get_noise_preset("Nexus7")
    with pytest.raises(ValueError, match="profile must be one of .*received '1lux'"):
        noise.get_light_profile("1lux")
    with pytest.raises(ValueError, match="noise_std must be finite and > 0; received nan"):
        noise.light_level_for_noise("Pixel", noise_std=float("nan"))
    with pytest.raises(ValueError, match="high must be >= low"):
        noise.sample_light_levels(0.01, 0.001, [2], seed=[0, 0])


# ---------------------------------------------------------------------------------------------- extended terms


def test_extended_terms_off_are_exactly_the_poisson_gaussian_model():
    images = tf.random.stateless_uniform([2, 16, 16, 1], [1, 1])
    plain = noise.add_noise(images, 0.01, 0.02, seed=[3, 3]).numpy()
    assert np.array_equal(noise.add_sensor_noise(images, 0.01, 0.02, [3, 3], noise.NoiseTerms()).numpy(), plain)
    assert np.array_equal(noise.add_sensor_noise(images, 0.01, 0.02, [3, 3], None).numpy(), plain)


@pytest.mark.parametrize("lam", [-0.15, 0.0, 0.3])
def test_tukey_lambda_read_noise_has_std_sigma_and_the_shape(lam):
    sigma = 0.02
    terms = noise.NoiseTerms(tukey_lambda=lam)
    y = noise.add_sensor_noise(tf.fill([1, 500, 400, 1], 0.5), 0.0, sigma, [9, 9], terms, clip=False).numpy().ravel()
    assert y.std() == pytest.approx(sigma, rel=0.02)
    assert noise.tukey_lambda_std(lam) == pytest.approx(scipy.stats.tukeylambda(lam).std(), rel=1e-9)
    # The shape: Kolmogorov-Smirnov against the scaled Tukey-lambda distribution.
    scale = sigma / noise.tukey_lambda_std(lam)
    assert scipy.stats.kstest((y - 0.5) / scale, "tukeylambda", args=(lam,)).pvalue > 1e-3


def test_row_noise_bias_and_quantization():
    sigma, row = 0.01, 0.5
    terms = noise.NoiseTerms(row_noise=row, black_level_bias=(0.02, 0.0, -0.01, 0.005), bit_depth=10)
    images = tf.fill([4, 256, 256, 1], 0.25)
    y = noise.add_sensor_noise(images, 0.0, sigma, [2, 8], terms).numpy()[..., 0]
    codes = y * 1023
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)  # on the 10-bit grid
    means = [y[:, r::2, c::2].mean() - 0.25 for r in (0, 1) for c in (0, 1)]
    np.testing.assert_allclose(means, terms.black_level_bias, atol=1.5e-3)
    row_means = (y - 0.25 - np.tile(np.reshape(terms.black_level_bias, (2, 2)), (128, 128))).mean(axis=2)
    expected = (row * sigma) ** 2 + (sigma**2 + (1 / 1023) ** 2 / 12) / 256
    assert row_means.var() == pytest.approx(expected, rel=0.1)  # 1,024 rows: relative error ~4 %


def test_bad_noise_terms_are_named():
    with pytest.raises(ValueError, match=r"tukey_lambda must be None or a number in \(-0.4, 1.0\); received -0.5"):
        noise.NoiseTerms(tukey_lambda=-0.5)
    with pytest.raises(ValueError, match="row_noise must be finite and >= 0; received -1"):
        noise.NoiseTerms(row_noise=-1)
    with pytest.raises(ValueError, match=r"black_level_bias must be 4 finite offsets in \(-1, 1\).*received \(0.1,\)"):
        noise.NoiseTerms(black_level_bias=(0.1,))
    with pytest.raises(ValueError, match="bit_depth must be None or an integer in"):
        noise.NoiseTerms(bit_depth=12.5)


def _release_noise_levels():
    """(alpha, sigma) of every sensor preset at the light levels the configs use (2 to 200 lux)."""
    from dirtypixels_tf.catalog import SENSOR_PRESETS

    return [
        (name, lux, *noise.noise_at_lux(lux, name)) for name in SENSOR_PRESETS for lux in (2.0, 3.0, 6.0, 20.0, 200.0)
    ]


@pytest.mark.parametrize("name, lux, alpha, sigma", _release_noise_levels())
def test_noise_moments_hold_at_every_preset_light_level(name, lux, alpha, sigma):
    # x spans counts x / alpha on both sides of the exact-Poisson switch (POISSON_EXACT_BELOW) for most levels.
    for x in (0.02, 0.3, 0.9):
        images = tf.fill([50_000, 1, 1, 1], x)
        y = noise.add_noise(images, alpha, sigma, seed=[11, 12], clip=False).numpy().ravel().astype(np.float64)
        variance = alpha * x + sigma**2
        assert abs(y.mean() - x) < 5 * np.sqrt(variance / y.size), (x, y.mean())
        # 5 standard errors of a sample variance: sqrt((k4 / var^2 + 2) / n), k4 = alpha^3 x the shot noise's 4th cumulant
        tolerance = 5 * np.sqrt((alpha**3 * x / variance**2 + 2) / y.size)
        assert abs(y.var() / variance - 1) < tolerance, (x, y.var() / variance, tolerance)


@pytest.mark.parametrize("count", [noise.POISSON_EXACT_BELOW - 0.5, noise.POISSON_EXACT_BELOW + 0.5, 400.0])
def test_shot_noise_on_both_sides_of_the_switch_has_poisson_moments(count):
    alpha = 0.001
    images = tf.fill([N, 1, 1, 1], count * alpha)
    counts = noise.add_noise(images, alpha, 0.0, seed=[1, 2], clip=False).numpy().ravel().astype(np.float64) / alpha
    assert abs(counts.mean() - count) < 5 * np.sqrt(count / N)
    assert abs(counts.var() / count - 1) < 0.02
    exact = count < noise.POISSON_EXACT_BELOW
    assert np.allclose(counts, np.round(counts), atol=1e-3) == exact  # integer counts only where the draw is exact
