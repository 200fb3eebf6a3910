"""FFT convolution against scipy.ndimage.convolve (direct convolution in float64).

Tolerance: the FFT runs in float32/complex64, a forward and an inverse transform of the padded image's size;
tests/tolerances.py bounds their round-off on images in [0, 1] and kernels summing to 1.
"""

import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf
from tolerances import float32_bound

from dirtypixels_tf.physics.fourier import circular_convolve_otf, fft_convolve, psf_to_otf

SCIPY_MODES = {"circular": "wrap", "reflect": "reflect", "zero": "constant"}


def scipy_convolve(images, psf, mode):
    """Reference: per image and channel scipy.ndimage.convolve in float64."""
    out = np.zeros(images.shape, np.float64)
    for b in range(images.shape[0]):
        for c in range(images.shape[3]):
            kernel = psf if psf.ndim == 2 else psf[..., c]
            out[b, ..., c] = scipy.ndimage.convolve(images[b, ..., c].astype(np.float64), kernel, mode=mode)
    return out


@pytest.mark.parametrize("boundary", ["circular", "reflect", "zero"])
@pytest.mark.parametrize("kernel_size", [(3, 3), (4, 4), (5, 2), (1, 6), (11, 9)])
@pytest.mark.parametrize("per_channel", [True, False])
def test_fft_convolve_matches_scipy(boundary, kernel_size, per_channel):
    rng = np.random.default_rng([*kernel_size, per_channel])
    images = rng.random((2, 11, 9, 3)).astype(np.float32)
    # Asymmetric random kernels (normalized so outputs stay in [0, 1]): a flip or a shift of the centre would show.
    psf = rng.random(kernel_size + ((3,) if per_channel else ()))
    psf = (psf / psf.sum(axis=(0, 1))).astype(np.float32)
    got = fft_convolve(images, psf, boundary).numpy()
    assert got.shape == images.shape and got.dtype == np.float32
    # two stacked transforms (forward, inverse) of sums over the padded image, of outputs <= 1; a flipped kernel or
    # a shifted centre moves pixels by > 1e-2
    n = (images.shape[1] + kernel_size[0] - 1) * (images.shape[2] + kernel_size[1] - 1)
    expected = scipy_convolve(images, psf.astype(np.float64), SCIPY_MODES[boundary])
    np.testing.assert_allclose(got, expected, rtol=0, atol=float32_bound(n, 1.0, depth=2))


def test_single_channel_psf_broadcasts_like_shared_psf():
    rng = np.random.default_rng(0)
    images = rng.random((2, 8, 8, 3)).astype(np.float32)
    psf = rng.random((3, 3)).astype(np.float32)
    shared = fft_convolve(images, psf, "zero").numpy()
    single = fft_convolve(images, psf[..., None], "zero").numpy()
    np.testing.assert_allclose(single, shared, atol=1e-6)


def test_float64_input_keeps_dtype():
    images = np.random.default_rng(1).random((1, 6, 6, 1))
    out = fft_convolve(images, np.ones((3, 3)) / 9, "reflect")
    assert out.dtype == tf.float64
    # A constant image stays constant under a normalized kernel and reflect padding.
    flat = fft_convolve(np.full((1, 6, 6, 1), 0.7), np.ones((3, 3)) / 9, "reflect").numpy()
    np.testing.assert_allclose(flat, 0.7, atol=1e-6)


def test_delta_psf_has_all_ones_otf():
    for shape in [(1, 1), (3, 3), (5, 4)]:
        delta = np.zeros(shape, np.float32)
        delta[shape[0] // 2, shape[1] // 2] = 1.0
        otf = psf_to_otf(delta, 8, 7, channels=3).numpy()
        assert otf.shape == (3, 8, 7) and otf.dtype == np.complex64
        np.testing.assert_allclose(otf, np.ones((3, 8, 7)), atol=1e-6)


def test_otf_convolution_equals_fft_convolve_circular():
    rng = np.random.default_rng(2)
    images = rng.random((2, 8, 10, 3)).astype(np.float32)
    psf = rng.random((3, 4, 3)).astype(np.float32)
    otf = psf_to_otf(psf, 8, 10, channels=3)
    by_otf = circular_convolve_otf(tf.constant(images), otf).numpy()
    # A per-image OTF [B, C, H, W] gives the same result.
    by_batched = circular_convolve_otf(tf.constant(images), tf.stack([otf, otf])).numpy()
    np.testing.assert_allclose(by_otf, fft_convolve(images, psf, "circular").numpy(), atol=1e-6)
    np.testing.assert_allclose(by_batched, by_otf, atol=1e-6)


def test_psf_larger_than_image_raises():
    with pytest.raises(ValueError, match="psf"):
        psf_to_otf(np.ones((9, 3)), 8, 8)
    with pytest.raises(ValueError, match="psf"):
        fft_convolve(np.zeros((1, 8, 8, 1), np.float32), np.ones((3, 9)), "reflect")


def test_bad_arguments_name_themselves():
    images = np.zeros((1, 8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="boundary"):
        fft_convolve(images, np.ones((3, 3)), "mirror")
    with pytest.raises(ValueError, match="images"):
        fft_convolve(images[0], np.ones((3, 3)))
    with pytest.raises(ValueError, match="psf"):
        fft_convolve(images, np.ones((3, 3, 2)))
