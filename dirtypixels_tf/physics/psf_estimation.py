"""PSF estimation from a registered sharp/blurred pair, and the correlation that scores an estimate.

NumPy only (calibration runs once, offline, on whole images); the estimated kernel is used with physics/optics.py.

PSF (Miao and Zhu, NIDF, Eq. 7, regularized): for a registered pair, blurred = psf * sharp + noise, per colour channel
    K = conj(X) Y / (|X|^2 + lambda R),   lambda = regularization * mean_{f != 0} |X(f)|^2,
with R = |D_row|^2 + |D_col|^2 (finite-difference gradient: smooth kernels; R(0) = 0 so the kernel's sum is
Y(0) / X(0), i.e. 1 when the blur keeps the mean) or R = 1 (Tikhonov). Boundaries: the Fourier formula assumes a
circular blur; real captures and "reflect"-padded blurs are not circular, so by default both images are first
tapered towards the sharp image's mean with the same raised-cosine window over a margin of max(2 size, 16)
pixels (at most a quarter of the side) at each edge, which removes the wrap-around jump and keeps blurred ~ psf *
sharp inside ("taper"); "circular" skips it (exact for circular blur). The kernel is then read around lag 0
(its centre at (size // 2, size // 2), the convolution convention of physics/fourier.py), negatives are set to 0
and each channel is normalized to sum 1 (optics.normalize_psf).
"""

import math

import numpy as np

from dirtypixels_tf.physics.optics import normalize_psf
from dirtypixels_tf.physics.validation import check_int, check_positive_number

PSF_PENALTIES = ("gradient", "identity")
PSF_BOUNDARIES = ("taper", "circular")


def _as_channels(image, name):
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., np.newaxis]
    if array.ndim != 3 or array.size == 0 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must be a numeric image [H, W] or [H, W, C]; received shape {array.shape}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite; received NaN or infinity")
    return array


def _taper_window(height, width, margin):
    """Separable raised-cosine window [H, W]: 0 at the border, 1 beyond `margin` pixels from it."""

    def ramp(n):
        m = max(1, min(margin, n // 4))
        t = np.ones(n)
        edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
        t[:m], t[n - m :] = edge, edge[::-1]
        return t

    return ramp(height)[:, None] * ramp(width)[None, :]


def estimate_psf(sharp, blurred, size, regularization=1e-3, penalty="gradient", boundary="taper"):
    """Estimate the PSF k with blurred = k * sharp (+ noise) from a registered pair (see the module docstring).

    sharp, blurred: [H, W] or [H, W, C] of one shape (any consistent intensity scale). size: odd kernel side,
    <= H and W. regularization: lambda relative to the sharp image's mean spectral energy (> 0). penalty:
    "gradient" or "identity". boundary: "taper" or "circular". Returns float32 [size, size] for [H, W] input,
    else [size, size, C], non-negative, sum 1 per channel.
    """
    x, y = _as_channels(sharp, "sharp"), _as_channels(blurred, "blurred")
    if x.shape != y.shape:
        raise ValueError(f"sharp and blurred must have one shape; received {x.shape} and {y.shape}")
    height, width, channels = x.shape
    if check_int(size, "size") % 2 == 0:
        raise ValueError(f"size must be an odd integer >= 1; received {size!r}")
    if size > min(height, width):
        raise ValueError(f"size must be <= the image's height and width ({height}x{width}); received {size}")
    regularization = check_positive_number(regularization, "regularization")
    if penalty not in PSF_PENALTIES:
        raise ValueError(f"penalty must be one of {', '.join(PSF_PENALTIES)}; received {penalty!r}")
    if boundary not in PSF_BOUNDARIES:
        raise ValueError(f"boundary must be one of {', '.join(PSF_BOUNDARIES)}; received {boundary!r}")

    if boundary == "taper":
        window = _taper_window(height, width, max(2 * size, 16))[..., np.newaxis]
        level = x.mean(axis=(0, 1), keepdims=True)
        x, y = level + (x - level) * window, level + (y - level) * window
    if penalty == "gradient":
        rows = np.abs(1.0 - np.exp(-2j * np.pi * np.fft.fftfreq(height)))[:, None] ** 2
        cols = np.abs(1.0 - np.exp(-2j * np.pi * np.fft.fftfreq(width)))[None, :] ** 2
        prior = rows + cols
    else:
        prior = np.ones((height, width))
    kernels = []
    for channel in range(channels):
        spectrum_x, spectrum_y = np.fft.fft2(x[..., channel]), np.fft.fft2(y[..., channel])
        energy = np.abs(spectrum_x) ** 2
        ac_energy = (energy.sum() - energy[0, 0]) / max(energy.size - 1, 1)
        if ac_energy <= 0:
            raise ValueError(f"sharp must have some structure in channel {channel}; received a constant image")
        kernel_spectrum = np.conj(spectrum_x) * spectrum_y / (energy + regularization * ac_energy * prior)
        full = np.real(np.fft.ifft2(kernel_spectrum))
        centred = np.roll(full, (size // 2, size // 2), axis=(0, 1))[:size, :size]
        positive, negative = np.maximum(centred, 0.0), np.maximum(-centred, 0.0)
        if positive.sum() <= negative.sum():
            raise ValueError(
                f"blurred does not look like a blur of sharp in channel {channel}: the estimated kernel is mostly "
                "negative (check the registration and the order of the two images)"
            )
        kernels.append(positive)
    psf = normalize_psf(np.stack(kernels, axis=-1), name="the estimated PSF")
    return psf[..., 0] if np.ndim(sharp) == 2 else psf


def psf_correlation(estimate, reference):
    """Normalized cross-correlation (Pearson, over all entries) of two PSFs of one shape: 1 for a perfect match."""
    a, b = np.asarray(estimate, np.float64).ravel(), np.asarray(reference, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(
            f"estimate and reference must have one shape; received {np.shape(estimate)}, {np.shape(reference)}"
        )
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / math.sqrt((a @ a) * (b @ b)))
