"""Dark frames give back the extended noise terms of Wei et al. 2020 (Tukey-lambda shape, row noise, black-level
bias, ADC bits) and their plot."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dirtypixels_tf.physics import dark_noise, noise
from dirtypixels_tf.physics.sensor import SensorModel


def dark_frames(terms, sigma, seed, count=4, size=512):
    """Dark frames of the extended model: black level subtracted, not clipped (as `estimate_dark_noise` takes)."""
    sensor = SensorModel(alpha=1e-3, sigma=sigma, noise_terms=terms, clip=False)
    return sensor.simulate(tf.zeros([count, size, size, 3]), tf.constant(seed, tf.int64))["raw"].numpy()[..., 0]


@pytest.mark.parametrize("draw", range(3))
def test_dark_frames_recover_the_extended_terms(draw):
    """Parameters drawn fresh per case (not the values of any other test); tolerances from the issue."""
    rng = np.random.default_rng([2026, 12, draw])
    lam, row, bits = rng.uniform(-0.22, -0.04), rng.uniform(0.15, 0.6), int(rng.choice([12, 14]))
    sigma = 12.0 * float(np.exp(rng.uniform(0.0, np.log(10.0)))) / (2**bits - 1)  # 12 to 120 ADC steps
    bias = tuple(rng.uniform(-3, 3, 4) * sigma / 10)
    terms = noise.NoiseTerms(tukey_lambda=lam, row_noise=row, black_level_bias=bias, bit_depth=bits)
    fit = dark_noise.estimate_dark_noise(dark_frames(terms, sigma, [draw, 77]))
    assert fit.terms.tukey_lambda == pytest.approx(lam, rel=0.1)
    assert fit.row_std == pytest.approx(row * sigma, rel=0.1)
    assert fit.sigma == pytest.approx(sigma, rel=0.05)
    assert fit.terms.bit_depth == bits
    # The bias of each Bayer position: within 4 standard errors of its mean (row noise shared along rows).
    error = 4 * np.sqrt((sigma**2 + (row * sigma) ** 2 * 512 / 2) / (4 * 256 * 256))
    np.testing.assert_allclose(fit.terms.black_level_bias, bias, atol=error)
    assert fit.ppcc > fit.gaussian_ppcc  # heavy tails: the fitted shape beats the Gaussian


def test_gaussian_dark_frames_give_a_near_gaussian_shape_and_no_rows():
    sigma = 0.011
    fit = dark_noise.estimate_dark_noise(dark_frames(noise.NoiseTerms(), sigma, [4, 4], count=2), bit_depth=None)
    assert fit.terms.tukey_lambda == pytest.approx(0.1349, abs=0.02)
    assert fit.row_std < 0.05 * sigma and fit.terms.bit_depth is None
    assert fit.sigma == pytest.approx(sigma, rel=0.02)


def test_dark_fit_plot_and_bad_dark_frames(tmp_path):
    terms = noise.NoiseTerms(tukey_lambda=-0.1, row_noise=0.3, bit_depth=12)
    fit = dark_noise.estimate_dark_noise(dark_frames(terms, 0.01, [5, 5], count=1, size=256))
    with Image.open(dark_noise.plot_dark_fit(fit, tmp_path / "dark.png")) as image:
        assert image.format == "PNG" and image.size == (900, 700)
    with pytest.raises(ValueError, match=r"dark_frames\[0\] must hold finite values in \(-1, 1\)"):
        dark_noise.estimate_dark_noise([np.full((8, 8), 1.5)])
    with pytest.raises(ValueError, match=r"dark_frames\[1\] must be a floating mosaic \[H, W\]"):
        dark_noise.estimate_dark_noise([np.zeros((8, 8)), np.zeros((8, 8), np.uint16)])
    with pytest.raises(ValueError, match='bit_depth must be "auto", None or an integer >= 1; received 0'):
        dark_noise.estimate_dark_noise([np.zeros((8, 8))], bit_depth=0)
