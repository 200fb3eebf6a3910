"""Per-colour noise parameters [B, 3] in the Anscombe layers, checked against the release's is_real_data=True
formulas (Diamond et al. 2021 release, nets/isp.py: each colour channel divided by its own alpha), transcribed in
NumPy below."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dirtypixels_tf.catalog import PATTERNS
from dirtypixels_tf.layers import anscombe
from dirtypixels_tf.layers.anscombe import GeneralizedAnscombe, InverseAnscombe
from dirtypixels_tf.physics import mosaic

RNG = np.random.default_rng(7)
ALPHA = np.array([[0.010, 0.004, 0.020], [0.3, 0.1, 0.2]])  # [B, 3]: R, G, B
SIGMA = np.array([[0.020, 0.008, 0.040], [0.0, 0.05, 0.1]])


def release_anscombe(data, sigma, alpha):
    """The release's anscombe(..., is_real_data=True): data [B, H, W, 3], alpha and sigma [B, 3]."""
    z = data / alpha[:, None, None, :]
    sigma_hat = sigma / alpha
    return 2 * np.sqrt(np.maximum(z + 3 / 8 + np.square(sigma_hat)[:, None, None, :], 0.0))


def release_inverse(data, sigma, alpha, unbiased):
    """The release's inv_anscombe(..., is_real_data=True)."""
    sigma_hat = sigma / alpha
    z = 0.25 * np.square(data) - 1 / 8 - np.square(sigma_hat)[:, None, None, :]
    if unbiased:
        z = z + 0.25 * np.sqrt(1.5) / data - 11 / 8 / data**2 + 5 / 8 * np.sqrt(1.5) / data**3
    return z * alpha[:, None, None, :]


def release_normalized_gat(masked, sigma, alpha):
    """The release's prox_grad_isp front: the GAT of S^T y, then (D - min D) / (max D - min D) over H, W, C."""
    d = release_anscombe(masked, sigma, alpha)
    low, high = d.min(axis=(1, 2, 3), keepdims=True), d.max(axis=(1, 2, 3), keepdims=True)
    return (d - low) / (high - low), 1 / (high - low)[:, 0, 0, 0], low[:, 0, 0, 0]


def test_forward_and_inverses_on_colour_images_are_the_release_formulas():
    y = RNG.uniform(-0.05, 1.0, (2, 6, 6, 3))
    np.testing.assert_allclose(
        anscombe.anscombe_forward(y, ALPHA, SIGMA).numpy(), release_anscombe(y, SIGMA, ALPHA), rtol=1e-12
    )
    d = RNG.uniform(1.5, 30.0, (2, 6, 6, 3))  # above the unbiased inverse's floor, where it is the closed form
    np.testing.assert_allclose(
        anscombe.anscombe_inverse_algebraic(d, ALPHA, SIGMA).numpy(),
        release_inverse(d, SIGMA, ALPHA, False),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        anscombe.anscombe_inverse_unbiased(d, ALPHA, SIGMA).numpy(), release_inverse(d, SIGMA, ALPHA, True), rtol=1e-12
    )


def test_per_colour_values_that_agree_give_the_per_image_transform():
    y = RNG.uniform(0.0, 1.0, (2, 4, 4, 3))
    alpha, sigma = np.array([0.01, 0.2]), np.array([0.03, 0.0])
    per_colour = anscombe.anscombe_forward(y, np.repeat(alpha[:, None], 3, 1), np.repeat(sigma[:, None], 3, 1))
    np.testing.assert_array_equal(per_colour.numpy(), anscombe.anscombe_forward(y, alpha, sigma).numpy())


@pytest.mark.parametrize("pattern", PATTERNS)
def test_on_a_mosaic_each_pixel_takes_the_value_of_its_colour_under_the_bayer_phase(pattern):
    """The GAT of a mosaic equals the mosaic of the GAT of S^T y (the release's 3-channel form) at the measured
    pixels, for every phase: the [B, 3] values are placed by the package's Bayer convention (physics/mosaic.py)."""
    raw = RNG.uniform(0.0, 1.0, (2, 6, 8, 1))
    on_mosaic = anscombe.anscombe_forward(raw, ALPHA, SIGMA, pattern).numpy()
    colour = release_anscombe(mosaic.mosaic_adjoint(tf.constant(raw), pattern).numpy(), SIGMA, ALPHA)
    np.testing.assert_allclose(on_mosaic, mosaic.mosaic(tf.constant(colour), pattern).numpy(), rtol=1e-12)
    back = anscombe.anscombe_inverse_algebraic(on_mosaic, ALPHA, SIGMA, pattern).numpy()
    masks = mosaic.bayer_masks_numpy(6, 8, pattern)
    np.testing.assert_allclose(back, raw + (masks @ ALPHA.T).transpose(2, 0, 1)[..., None] / 4, rtol=1e-12)


def test_layers_normalize_like_the_release_and_invert_exactly():
    masked = mosaic.mosaic_adjoint(tf.constant(RNG.uniform(0.0, 1.0, (2, 8, 8, 1)), tf.float32)).numpy()
    expected, scale, offset = release_normalized_gat(masked.astype(np.float64), SIGMA, ALPHA)
    out = GeneralizedAnscombe(noise_channel=False)(masked, ALPHA.astype(np.float32), SIGMA.astype(np.float32))
    np.testing.assert_allclose(out["image"].numpy(), expected, atol=1e-5)  # float32 layers: D ~ 20, eps 1.2e-7
    np.testing.assert_allclose(out["scale"].numpy(), scale, rtol=1e-5)
    np.testing.assert_allclose(out["offset"].numpy(), offset, rtol=1e-5)
    back = InverseAnscombe(unbiased=False)(out["image"], ALPHA, SIGMA, out["scale"], out["offset"]).numpy()
    np.testing.assert_allclose(back, masked + ALPHA[:, None, None, :] / 4, atol=2e-5 * np.max(ALPHA))


def test_layers_round_trip_their_pattern_through_keras_configs():
    for layer in (GeneralizedAnscombe(pattern="rggb"), InverseAnscombe(pattern="GRBG")):
        restored = type(layer).from_config(keras.saving.serialize_keras_object(layer)["config"])
        assert restored.pattern == layer.pattern.upper()


@pytest.mark.parametrize(
    "alpha, message",
    [
        (np.ones((2, 4)), r"alpha must be a scalar or have shape \[batch\] or \[batch, 3\]"),
        (np.ones((3, 3)), r"alpha must have shape \[2, 3\] \(one row per image\)"),
        (np.array([[0.1, 0.0, 0.1], [0.1, 0.1, 0.1]]), r"alpha must be finite and > 0; received alpha="),
    ],
)
def test_bad_per_colour_values_are_refused_with_their_name(alpha, message):
    with pytest.raises(ValueError, match=message):
        anscombe.anscombe_forward(np.ones((2, 4, 4, 3)), alpha, np.ones((2, 3)))


def test_per_colour_values_need_a_mosaic_or_a_colour_image():
    with pytest.raises(ValueError, match=r"sigma of shape \[batch, 3\] \(per colour\) needs images of 1"):
        anscombe.anscombe_forward(np.ones((2, 4, 4, 4)), np.ones([2]), np.ones((2, 3)))
