"""Sensor calibration from captures: the Poisson-Gaussian noise (alpha, sigma) and the lens PSF.

Calibration runs once, offline, on whole frames, so this module is NumPy / SciPy (no TensorFlow graph).

Noise (Diamond et al. 2017 and 2021, Sec. 3.2, after Foi et al. 2008 and 2009). Captures are RAW mosaics [H, W] in [0, 1]
(`data.camera_raw.read_raw` gives them) of the package's sensor: y = clip(alpha P(x / alpha) + N(0, sigma^2), 0, 1),
so Var[y] = alpha x + sigma^2 away from 0 and 1. Each mosaic is split into its four Bayer planes (2x2
subsampling, so a plane holds one colour filter) and each plane into blocks of `block` x `block` plane pixels.
Per block:
- mean: the mean of its pixels;
- variance, "spatial" (one or more frames of any scenes): the mean square of the block's diagonal Haar details
  (a - b - c + d) / 2 over its 2x2 cells, which cancel any signal that is constant or linear along rows or along
  columns and have the noise's variance. The horizontal and vertical details (a - b + c - d) / 2 and
  (a + b - c - d) / 2 measure the block's texture; for independent noise they are uncorrelated with the diagonal
  one, so choosing blocks by texture hardly biases the variance. A block is smooth when both texture measures
  stay below the noise curve times 1 + t sqrt(2 / n), n = (block / 2)^2 details per block and t =
  `texture_tolerance` (standard deviations of a noise-only block's estimate; 1 by default). The curve starts
  from a robust fit (per-bin medians over all blocks) and is refitted on the smooth blocks until the selection
  settles (at most 4 rounds);
- variance, "temporal" (several frames of one static scene): the mean over the block of each pixel's variance
  across the frames (ddof 1). Texture does not bias it where the model is linear in x, but near 0 and 1, where
  clipping bends the curve, a block mixing dark and darker pixels has less variance than the model at its mean
  (Jensen): there a block must also pass the texture test, on the Haar details of the frames' mean (noise
  variance Var[y] / N) with tolerance 3. Blocks whose darkest and brightest mean pixels lie 4 noise stds inside
  [0, 1] are kept whatever their texture.
Blocks are pooled over frames and planes (one (alpha, sigma) per sensor, as the package's noise model has) and
fitted one by one by weighted least squares with the clipped model (not by dropping blocks near 0 and 1): the
predicted variance of a block is Var[y] at the x whose E[y] equals its measured mean, tabulated by
`clipped_moments`, which sums the Poisson part exactly over photon counts (the Gaussian approximation of Foi et al.
2009 is off by 2-10 % in the variance at low counts and near saturation). Weights n / (2 f^2), f the previous fit's
variance (three reweighting rounds). Dropped: blocks of variance exactly 0 (constant or fully saturated) and blocks
beyond the saturation knee (mean above E[y] at x = 1, i.e. over half the pixels clipped), where the variance falls
to 0 within a fraction of the noise and the noise of the block's own mean would dominate. `bins` equal intensity
bins on [0, 1] serve the coverage check (kept blocks in at least 3 bins, else alpha and sigma cannot be told
apart) and the returned points; the robust start uses `bins` bins of equal block counts.

The fit compares each block's variance with `expected_variance_at_mean`: the clipped model at the block's measured
mean, corrected to second order for the noise of that mean (block^2 pixels, times N frames for "temporal"), which
otherwise tilts the fit where clipping bends the curve (on black blocks the uncorrected model is 3 % high).

Accuracy (tests/physics/test_calibration.py; gray charts of 16 levels from 0.002 to 1.05): alpha and sigma within
5 %. At noise std 0.11 at mid-gray (ISO 10000 of Nexus_6P_rear, 4 seeds) alpha comes out +3.2 % (spatial, one
frame) and +0.9 % (temporal, two frames), sigma -1.4 % and -1.0 %; before the correction for the noise of the
block means it was +13 % and +6 %. On one natural image (skimage's astronaut as a BGGR mosaic, Nexus_6P_rear, 3 seeds;
benchmarks/noise_calibration_accuracy.py): spatial, alpha +1.7 to +7.3 % and sigma -1.9 to -9.3 % at ISO 800 to
6400, but alpha +16 to +20 % at ISO 200, where the photograph's own grain is a sizeable part of the noise it is
measured against (blurred by 2 px: alpha within 2.1 %, sigma -1 to -12 %); temporal (2 frames), alpha within 1 %
and sigma -3 to -6 % at ISO 200 to 6400 (dark blocks mixing black and near-black pixels). The robust start bins
blocks by rank (equal counts), so the dark blocks where clipping reveals sigma get bins of their own (with
equal-width bins sigma collapsed to 0 at low ISO). Frames without
metadata: `estimate_frame_noise`.

Per-ISO presets: under the package's linear ISO model alpha = poisson ISO / 100 and sigma = gauss ISO / 100,
`fit_iso_model` takes poisson and gauss as the means of alpha * 100 / ISO and sigma * 100 / ISO over the ISOs
(least squares on the relative error, each ISO weighted equally).

Sensor preset file (YAML, `save_sensor_preset` / `load_sensor_preset`), keys:
    poisson, gauss   the NoisePreset at ISO 100, [0, 1] units (required)
    pattern          the Bayer phase the calibration's mosaics had and simulations should use (required)
    iso_table        list of {iso, alpha, sigma}: the measurements behind the preset (optional)
    source           free text: where the numbers come from (optional)
    tukey_lambda, row_noise, black_level_bias, bit_depth
                     the extended low-light terms (physics/noise.py NoiseTerms; optional, absent = off): read-noise
                     shape, row-noise std relative to sigma, 4 Bayer-position offsets, ADC bits

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

import dataclasses
import math
import os
import warnings

import numpy as np
import scipy.optimize
import scipy.special
import scipy.stats
import yaml

from dirtypixels_tf.physics import noise as noise_lib
from dirtypixels_tf.physics.mosaic import RELEASE_PATTERN, check_pattern
from dirtypixels_tf.physics.noise import TUKEY_LAMBDA_RANGE, NoisePreset, NoiseTerms
from dirtypixels_tf.physics.optics import normalize_psf
from dirtypixels_tf.physics.validation import check_int, check_mosaic_array, check_positive_number

METHODS = ("spatial", "temporal")
PSF_PENALTIES = ("gradient", "identity")
PSF_BOUNDARIES = ("taper", "circular")
TERM_KEYS = ("tukey_lambda", "row_noise", "black_level_bias", "bit_depth")
PRESET_KEYS = ("poisson", "gauss", "pattern", "iso_table", "source") + TERM_KEYS
PLOTS_INSTALL_HINT = "pip install dirtypixels_tf[plots]"

IDENTIFIABLE_FRACTION = 0.1  # largest standard error of alpha x or sigma^2, relative to the noise variance
MIN_BINS = 3  # intensity bins that must hold kept blocks: fewer cannot tell alpha from sigma
_SELECTION_ROUNDS = 4
_IRLS_ROUNDS = 3
_GRID_POINTS = 64  # model table points in each clipping zone
_EXACT_POISSON_COUNTS = 1e4  # mean photon count up to which the Poisson part is summed exactly
_POISSON_TAIL = 7.0  # photon counts summed: mean +- (7 std + 7)
_CHUNK = 128
_SQRT_2PI = math.sqrt(2.0 * math.pi)


class CalibrationError(ValueError):
    """The captures of one ISO cannot be calibrated; `iso` names it (the message says why)."""

    def __init__(self, iso, message):
        super().__init__(message)
        self.iso = iso


@dataclasses.dataclass(frozen=True, eq=False)
class NoiseFit:
    """A fitted noise curve and the measurements behind it.

    alpha, sigma: the fit ([0, 1] units). means, variances, counts: per intensity bin with data, the mean of the
    kept blocks' means, the mean of their variances, and the number of variance samples (for plotting: std =
    sqrt(variances) against means). blocks_used / blocks_total: blocks in the final fit (smooth, variance > 0,
    below the saturation knee) / blocks measured.
    """

    alpha: float
    sigma: float
    means: np.ndarray
    variances: np.ndarray
    counts: np.ndarray
    blocks_used: int
    blocks_total: int


@dataclasses.dataclass(frozen=True)
class SensorCalibration:
    """A sensor preset: the NoisePreset at ISO 100, the Bayer phase, the per-ISO (iso, alpha, sigma) measurements,
    a free-text source and the extended noise terms (the content of a sensor.yaml; see the module docstring)."""

    preset: NoisePreset
    pattern: str = RELEASE_PATTERN
    iso_table: tuple = ()
    source: str = ""
    terms: NoiseTerms = NoiseTerms()


# ----------------------------------------------------------------------------------------------------------------
# The clipped noise model


def _clipped_gaussian(mean, var):
    """(E[y], Var[y]) of y = clip(N(mean, var), 0, 1), elementwise (var floored at 1e-24)."""
    std = np.sqrt(np.maximum(var, 1e-24))
    lo, hi = -mean / std, (1.0 - mean) / std
    cdf_lo, cdf_hi = scipy.special.ndtr(lo), scipy.special.ndtr(hi)
    pdf_lo, pdf_hi = np.exp(-0.5 * lo**2) / _SQRT_2PI, np.exp(-0.5 * hi**2) / _SQRT_2PI
    inside, above = cdf_hi - cdf_lo, 1.0 - cdf_hi
    first = above + mean * inside + std * (pdf_lo - pdf_hi)
    second = (
        above + mean**2 * inside + 2 * mean * std * (pdf_lo - pdf_hi) + std**2 * (inside + lo * pdf_lo - hi * pdf_hi)
    )
    return first, np.maximum(second - first**2, 0.0)


def _poisson_gaussian_clipped(x, alpha, sigma):
    """Exact (E[y], Var[y]) of y = clip(alpha P(x / alpha) + N(0, sigma^2), 0, 1) by summing over photon counts."""
    lam = x / alpha
    half = int(math.ceil(_POISSON_TAIL * math.sqrt(float(lam.max())) + _POISSON_TAIL))
    first, second = np.empty_like(x), np.empty_like(x)
    for start in range(0, x.size, _CHUNK):
        rate = lam[start : start + _CHUNK, None]
        counts = np.maximum(np.floor(rate) - half, 0.0) + np.arange(2 * half + 1)
        weights = np.exp(scipy.special.xlogy(counts, rate) - rate - scipy.special.gammaln(counts + 1.0))
        mean_k, var_k = _clipped_gaussian(alpha * counts, sigma**2)
        first[start : start + _CHUNK] = (weights * mean_k).sum(axis=1)
        second[start : start + _CHUNK] = (weights * (var_k + mean_k**2)).sum(axis=1)
    return first, np.maximum(second - first**2, 0.0)


def clipped_moments(x, alpha, sigma):
    """(E[y], Var[y]) of the clipped sensor y = clip(alpha P(x / alpha) + N(0, sigma^2), 0, 1) at clean values x >= 0.

    Exact (a sum over photon counts) where the mean count x / alpha is at most 1e4; beyond that, and for alpha = 0,
    the Poisson part is replaced by a Gaussian of the same variance (its skewness is then below 1 %). Without
    clipping E[y] = x and Var[y] = alpha x + sigma^2; clipping lowers the variance near 0 and 1. float64 arrays.
    """
    shape = np.shape(x)
    x = np.maximum(np.asarray(x, np.float64).ravel(), 0.0)
    mean, var = _clipped_gaussian(x, alpha * x + sigma**2)
    if alpha > 0:
        exact = x / alpha <= _EXACT_POISSON_COUNTS
        if np.any(exact):
            mean[exact], var[exact] = _poisson_gaussian_clipped(x[exact], alpha, sigma)
    return mean.reshape(shape), var.reshape(shape)


def _model_grid(alpha, sigma):
    """Clean values x at which to tabulate the clipped model: dense where clipping acts (near 0 and near 1, within
    8 standard deviations), sparse in between where E[y] = x and Var[y] = alpha x + sigma^2 are linear."""
    low = 8.0 * sigma
    for _ in range(4):  # the x where 8 std(x) = x, from below
        low = 8.0 * math.sqrt(alpha * low + sigma**2)
    spread = 8.0 * math.sqrt(alpha * 1.0 + sigma**2)
    high, top = 1.0 - spread, 1.0 + spread
    if low >= high:
        return np.linspace(0.0, top, 3 * _GRID_POINTS)
    return np.unique(
        np.concatenate(
            [np.linspace(0.0, low, _GRID_POINTS), np.linspace(low, high, 5), np.linspace(high, top, _GRID_POINTS)]
        )
    )


def clipped_variance_at_mean(means, alpha, sigma):
    """Var[y] of the clipped model at measured means E[y] (the curve s-hat(x-hat)^2 of Diamond et al. 2017, Fig. 3d).

    The x with E[y](x) = mean is found by interpolation on a table of the model over x in [0, 1 + 8 std(1)];
    means below E[y](0) take the value at x = 0, means above the table's top its last value.
    """
    grid_mean, grid_var = clipped_moments(_model_grid(alpha, sigma), alpha, sigma)
    return np.interp(np.asarray(means, np.float64), grid_mean, grid_var)


# ----------------------------------------------------------------------------------------------------------------
# Noise estimation


def _check_frames(frames):
    """A list of float64 mosaics [H, W] of one size with values in [0, 1]."""
    if isinstance(frames, np.ndarray):
        arrays = [frames] if frames.ndim == 2 else list(frames)
    elif isinstance(frames, (list, tuple)):
        arrays = list(frames)
    else:
        raise ValueError(f"frames must be a list of mosaics [H, W] or an array [N, H, W]; received {type(frames)}")
    if not arrays:
        raise ValueError("frames must hold at least one mosaic; received none")
    checked = []
    for index, frame in enumerate(arrays):
        array = check_mosaic_array(frame, f"frames[{index}]")
        if checked and array.shape != checked[0].shape:
            raise ValueError(
                f"frames must all have one size; received frames[0] {checked[0].shape} and frames[{index}] "
                f"{array.shape}"
            )
        checked.append(array.astype(np.float64))
    return checked


def _check_block(block, shape):
    if check_int(block, "block", 2) % 2:
        raise ValueError(f"block must be an even integer >= 2 (Bayer-plane pixels); received {block!r}")
    if shape[0] // 2 < block or shape[1] // 2 < block:
        raise ValueError(
            f"frames of {shape[0]}x{shape[1]} are too small for block {block}: each Bayer plane needs at least "
            f"{block}x{block} pixels (mosaics of {2 * block}x{2 * block})"
        )
    return int(block)


def _planes(frame, block):
    """The four Bayer planes of a mosaic [H, W], cropped to whole blocks: [4, h, w], h and w multiples of block."""
    h, w = frame.shape[0] // 2 // block * block, frame.shape[1] // 2 // block * block
    return np.stack([frame[r : 2 * h : 2, c : 2 * w : 2] for r in (0, 1) for c in (0, 1)])


def _block_mean(values, size):
    """Means over non-overlapping size x size blocks of [..., h, w] -> [..., h / size, w / size]."""
    *lead, h, w = values.shape
    return values.reshape(*lead, h // size, size, w // size, size).mean(axis=(-3, -1))


def _spatial_blocks(frame, block):
    """Per block of every Bayer plane: mean, diagonal detail variance, horizontal and vertical detail energy."""
    planes = _planes(frame, block)
    a, b = planes[:, 0::2, 0::2], planes[:, 0::2, 1::2]
    c, d = planes[:, 1::2, 0::2], planes[:, 1::2, 1::2]
    half = block // 2
    diagonal = _block_mean(((a - b - c + d) / 2) ** 2, half)
    horizontal = _block_mean(((a - b + c - d) / 2) ** 2, half)
    vertical = _block_mean(((a + b - c - d) / 2) ** 2, half)
    return _block_mean(planes, block).ravel(), diagonal.ravel(), horizontal.ravel(), vertical.ravel()


def _bin_index(means, bins):
    return np.minimum((means * bins).astype(int), bins - 1)


def _binned(means, variances, samples, bins, robust=False):
    """Per occupied bin: mean of means, mean (or chi-square-corrected median) of variances, total samples.

    Bins are equal intensity intervals; robust=True uses bins of equal block counts instead (by rank of the mean),
    so that a dense cluster of dark blocks, where clipping tells sigma apart, gets bins of its own."""
    index = _bin_index(means, bins) if not robust else np.argsort(np.argsort(means)) * bins // max(means.size, 1)
    occupied = np.unique(index)
    bin_means, bin_vars, bin_counts = [], [], []
    # Median of a chi-square variable with k degrees of freedom over k (Wilson-Hilferty), to unbias medians.
    median_factor = (1.0 - 2.0 / (9.0 * samples)) ** 3
    for k in occupied:
        inside = index == k
        bin_means.append(means[inside].mean())
        if robust:
            bin_vars.append(np.median(variances[inside]) / median_factor)
        else:
            bin_vars.append(variances[inside].mean())
        bin_counts.append(samples * inside.sum())
    return np.array(bin_means), np.array(bin_vars), np.array(bin_counts, np.float64)


def _initial_guess(means, variances, counts):
    """(alpha, sigma) from an unclipped weighted linear fit variance = alpha mean + sigma^2 (clamped to >= 0)."""
    inner = (means > 0.05) & (means < 0.95)
    if inner.sum() < 2:
        inner = np.ones_like(means, bool)
    weights = counts[inner] / np.maximum(variances[inner], 1e-12) ** 2
    design = np.stack([means[inner], np.ones(inner.sum())], axis=1) * np.sqrt(weights)[:, None]
    (slope, intercept), *_ = np.linalg.lstsq(design, variances[inner] * np.sqrt(weights), rcond=None)
    scale = max(float(np.median(variances)), 1e-12)
    return max(float(slope), 1e-3 * scale), math.sqrt(max(float(intercept), 1e-3 * scale))


def expected_variance_at_mean(means, alpha, sigma, mean_samples=None):
    """The clipped model's variance f at measured block means, corrected for the noise of the means themselves.

    A block's mean is off its E[y] by noise of variance f / mean_samples; where f bends (near 0 and 1, where
    clipping acts) the average of f over that noise differs from f by f'' f / (2 mean_samples), so the fit would
    tilt (sigma low, alpha high). Returned: f(m) - (f(m + h) - 2 f(m) + f(m - h)) / 2 with h = sqrt(f(m) /
    mean_samples), the second-order correction. mean_samples None: f itself (`clipped_variance_at_mean`).
    """
    grid_mean, grid_var = clipped_moments(_model_grid(alpha, sigma), alpha, sigma)
    means = np.asarray(means, np.float64)
    curve = np.interp(means, grid_mean, grid_var)
    if mean_samples is None:
        return curve
    step = np.sqrt(curve / mean_samples)
    above, below = np.interp(means + step, grid_mean, grid_var), np.interp(means - step, grid_mean, grid_var)
    return np.maximum(2.0 * curve - 0.5 * (above + below), 0.0)


def fit_clipped_noise(means, variances, counts, initial=None, mean_samples=None):
    """Weighted least-squares fit of the clipped model to (mean, variance) points; returns (alpha, sigma).

    means, variances: one entry per block (or bin); counts: the number of variance samples behind each (a number
    or an array); mean_samples: the pixels behind each mean (for `expected_variance_at_mean`; None: no
    correction). Residuals sqrt(counts / 2) (variance - f(mean)) / f_previous(mean), with f the clipped model,
    three reweighting rounds; alpha, sigma >= 0.
    """
    means, variances = np.asarray(means, np.float64), np.asarray(variances, np.float64)
    counts = np.broadcast_to(np.asarray(counts, np.float64), means.shape)
    alpha, sigma = initial if initial is not None else _initial_guess(means, variances, counts)
    floor = 1e-6 * max(float(np.max(variances)), 1e-20)
    for _ in range(_IRLS_ROUNDS):
        weights = np.sqrt(counts / 2.0) / np.maximum(clipped_variance_at_mean(means, alpha, sigma), floor)

        def residuals(params, weights=weights):
            return weights * (variances - expected_variance_at_mean(means, params[0], params[1], mean_samples))

        result = scipy.optimize.least_squares(
            residuals, x0=[alpha, sigma], bounds=([0.0, 0.0], [np.inf, np.inf]), x_scale="jac", method="trf"
        )
        alpha, sigma = (float(v) for v in result.x)
    return alpha, sigma


def _check_coverage(means, bins, total):
    """Raise ValueError unless the kept blocks' means fall in at least MIN_BINS of the intensity bins."""
    occupied = np.unique(_bin_index(means, bins)).size
    if occupied < MIN_BINS:
        raise ValueError(
            f"frames have too few smooth blocks to fit the noise curve: {means.size} of {total} blocks kept, in "
            f"{occupied} of {bins} intensity bins (need blocks in at least {MIN_BINS} bins). Use flat-field or "
            "gray-chart captures at several exposures, more frames, or a smaller block"
        )


def _check_identifiable(means, samples, alpha, sigma):
    """Raise ValueError when the kept blocks cannot tell the Poisson part from the Gaussian part.

    The fit's covariance (Gauss-Newton, unclipped derivatives [x, 1] of alpha x + sigma^2, weights n / (2 f^2))
    gives standard errors of alpha and of sigma^2. At the blocks' median level m the noise variance is
    v = alpha m + sigma^2; both parts must be pinned to within IDENTIFIABLE_FRACTION of v. Flats all at one
    exposure fail this (their means lie within the noise of one level, so any split of v fits them).
    """
    variance = np.maximum(clipped_variance_at_mean(means, alpha, sigma), 1e-20)
    weights = np.sqrt(samples / 2.0) / variance
    jacobian = np.stack([means, np.ones_like(means)], axis=1) * weights[:, None]
    normal = jacobian.T @ jacobian
    level = float(np.median(means))
    total = alpha * level + sigma**2
    try:
        covariance = np.linalg.inv(normal)
        errors = (math.sqrt(max(covariance[0, 0], 0.0)) * level, math.sqrt(max(covariance[1, 1], 0.0)))
    except np.linalg.LinAlgError:
        errors = (math.inf, math.inf)
    if max(errors) > IDENTIFIABLE_FRACTION * total:
        raise ValueError(
            f"frames do not separate alpha from sigma: the kept blocks' means span only {means.min():.4g} to "
            f"{means.max():.4g}, so the Poisson part (alpha x) and the Gaussian part (sigma^2) of the noise "
            f"variance {total:.3g} at {level:.3g} are each uncertain by up to {max(errors) / total:.0%} (standard "
            f"error; at most {IDENTIFIABLE_FRACTION:.0%} accepted). Use flat-field or gray-chart captures at several "
            "exposures (e.g. dark frames plus flats at 3 or more levels)"
        )


TEXTURE_TOLERANCE = {"spatial": 1.0, "temporal": 3.0}


def estimate_noise(frames, method="spatial", block=8, bins=64, texture_tolerance=None):
    """Estimate (alpha, sigma) of the clipped Poisson-Gaussian noise from RAW captures (see module docstring).

    frames: mosaics [H, W] (or [H, W, 1]) in [0, 1], all of one size: a list or an array [N, H, W].
    method: "spatial" (any scenes; smooth blocks are found automatically: flat fields and gray charts work best)
        or "temporal" (at least two frames of the same static scene).
    block: block side in Bayer-plane pixels (even, default 8: 16x16 mosaic pixels). bins: intensity bins on [0, 1]
        for the robust start, the minimum-coverage check and the returned points.
    texture_tolerance: how many standard deviations of a noise-only block's texture estimate a smooth block's
        texture may exceed the noise curve by (None: TEXTURE_TOLERANCE of the method, 1 for "spatial": strict,
        for natural scenes; 3 for "temporal", whose test only guards the clipping zones).
    Returns a NoiseFit. Raises ValueError for bad frames (naming the frame) or too few usable blocks.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; received {method!r}")
    bins = check_int(bins, "bins", MIN_BINS)
    if texture_tolerance is None:
        texture_tolerance = TEXTURE_TOLERANCE.get(method, 1.0)
    texture_tolerance = check_positive_number(texture_tolerance, "texture_tolerance", allow_zero=True)
    frames = _check_frames(frames)
    block = _check_block(block, frames[0].shape)
    if method == "temporal":
        if len(frames) < 2:
            raise ValueError(f"method 'temporal' needs at least 2 frames of one scene; received {len(frames)}")
        stack = np.stack(frames)
        means = _block_mean(_planes(stack.mean(axis=0), block), block).ravel()
        variances = _block_mean(_planes(stack.var(axis=0, ddof=1), block), block).ravel()
        samples = block * block * (len(frames) - 1)
        mean_samples = block * block * len(frames)
        # Texture of the scene itself: the Haar details of the frames' mean, whose noise variance is Var[y] / N.
        # It matters only where clipping makes the variance nonlinear in x: blocks whose darkest and brightest
        # pixels (of the mean) lie 4 noise stds inside [0, 1] are kept whatever their texture.
        average = _planes(stack.mean(axis=0), block)
        _, *details = _spatial_blocks(stack.mean(axis=0), block)
        textures = [detail * len(frames) for detail in details]
        shape = (*average.shape[:1], average.shape[1] // block, block, average.shape[2] // block, block)
        darkest = average.reshape(shape).min(axis=(2, 4)).ravel()
        brightest = average.reshape(shape).max(axis=(2, 4)).ravel()
    else:
        stats = [np.concatenate(parts) for parts in zip(*(_spatial_blocks(frame, block) for frame in frames))]
        means, variances, horizontal, vertical = stats
        samples = (block // 2) ** 2
        mean_samples = block * block
        textures = [horizontal, vertical]
    total = means.size
    usable = variances > 0
    _check_coverage(means[usable], bins, total)
    alpha, sigma = fit_clipped_noise(*_binned(means[usable], variances[usable], samples, bins, robust=True))
    threshold = 1.0 + texture_tolerance * math.sqrt(2.0 / (block // 2) ** 2)
    kept = None
    for _ in range(_SELECTION_ROUNDS):
        curve = threshold * clipped_variance_at_mean(means, alpha, sigma)
        smooth = np.all([texture <= curve for texture in textures], axis=0)
        if method == "temporal":
            dark_std = np.sqrt(np.maximum(alpha * darkest, 0.0) + sigma**2)
            bright_std = np.sqrt(np.maximum(alpha * brightest, 0.0) + sigma**2)
            smooth |= (darkest > 4.0 * dark_std) & (brightest < 1.0 - 4.0 * bright_std)
        # Beyond the saturation knee (E[y] at x = 1: over half the pixels clipped) the variance drops to 0 within
        # a fraction of the noise's std, so there the noise of a block's own mean dominates: such blocks are left out.
        below_knee = means <= clipped_moments(1.0, alpha, sigma)[0]
        selection = usable & smooth & below_knee
        if kept is not None and np.array_equal(selection, kept):
            break
        kept = selection
        _check_coverage(means[kept], bins, total)
        alpha, sigma = fit_clipped_noise(
            means[kept], variances[kept], samples, initial=(alpha, sigma), mean_samples=mean_samples
        )
    _check_identifiable(means[kept], samples, alpha, sigma)
    points = _binned(means[kept], variances[kept], samples, bins)
    return NoiseFit(alpha, sigma, *points, blocks_used=int(kept.sum()), blocks_total=int(total))


FRAME_BLOCKS = (8, 4, 2)  # block sides tried by `estimate_frame_noise`, largest first
MIN_FRAME_BLOCKS = 256  # blocks (over the four Bayer planes) a frame must hold for a block side to be used


def estimate_frame_noise(mosaic):
    """(alpha, sigma) of one RAW frame that comes without a preset or ISO, estimated from the frame itself.

    mosaic: [H, W] in [0, 1] (any Bayer phase). The spatial method of `estimate_noise` with the largest block side
    of FRAME_BLOCKS that leaves at least MIN_FRAME_BLOCKS blocks (8 for frames of 128 x 128 and more, 4 from 64 x 64,
    2 from 32 x 32). Returns the NoiseFit (its blocks_used says how much of the frame the estimate rests on);
    raises ValueError when the frame is too small or too textured to separate alpha from sigma.
    Accuracy (tests/physics/test_calibration.py, one 512 x 512 natural photograph, a sensor drawn at random, 3 to
    96 lux): at 12 to 96 lux alpha and sigma within 20 %; at 3 lux only the noise std at mid-gray is (within 15 %).
    Small frames are much less accurate (a 128 x 128 downscaled photograph: alpha up to 2.7 times too high).
    """
    frame = check_mosaic_array(mosaic, "mosaic")
    for block in FRAME_BLOCKS:
        if 4 * (frame.shape[0] // 2 // block) * (frame.shape[1] // 2 // block) >= MIN_FRAME_BLOCKS:
            return estimate_noise([frame], method="spatial", block=block)
    raise ValueError(
        f"mosaic must be at least 32 x 32 to estimate its noise ({MIN_FRAME_BLOCKS} blocks of 2 x 2 Bayer-plane "
        f"pixels); received shape {frame.shape}"
    )


def _check_iso(iso):
    try:
        return check_positive_number(iso, "iso")
    except ValueError:
        raise ValueError(f"iso must be a number > 0; received {iso!r}") from None


def fit_iso_model(iso_table):
    """The NoisePreset (ISO 100) of the linear ISO model fitted to [(iso, alpha, sigma), ...] (module docstring)."""
    rows = [(_check_iso(iso), float(alpha), float(sigma)) for iso, alpha, sigma in iso_table]
    if not rows:
        raise ValueError("iso_table must hold at least one (iso, alpha, sigma); received none")
    poisson = float(np.mean([alpha * 100.0 / iso for iso, alpha, _ in rows]))
    gauss = float(np.mean([sigma * 100.0 / iso for iso, _, sigma in rows]))
    return NoisePreset(poisson=poisson, gauss=gauss)


def calibrate_sensor(captures_by_iso, pattern=RELEASE_PATTERN, method="spatial", block=8, bins=64, source=""):
    """Calibrate a sensor from captures at one or more ISOs: {iso: frames} -> (SensorCalibration, {iso: NoiseFit}).

    Each ISO's frames go through `estimate_noise`; the preset is the linear ISO model fitted to the per-ISO
    (alpha, sigma). From a single ISO the model is an extrapolation: a UserWarning says so and the source notes it. `pattern` is recorded in the calibration (the phase the mosaics were read in).
    """
    pattern = check_pattern(pattern)
    if not isinstance(captures_by_iso, dict) or not captures_by_iso:
        raise ValueError(f"captures_by_iso must be a non-empty dict {{iso: frames}}; received {captures_by_iso!r}")
    fits = {}
    for key in sorted(captures_by_iso, key=_check_iso):
        iso = _check_iso(key)
        try:
            fits[iso] = estimate_noise(captures_by_iso[key], method=method, block=block, bins=bins)
        except ValueError as error:
            raise CalibrationError(iso, f"ISO {iso:g}: {error}") from None
    table = tuple((iso, fit.alpha, fit.sigma) for iso, fit in fits.items())
    if len(table) == 1:
        warnings.warn(
            f"captures at one ISO ({table[0][0]:g}) only: the preset extrapolates to every other ISO by the linear "
            "ISO model (alpha and sigma proportional to ISO), unchecked for this sensor; calibrate at two or more "
            "ISOs to check it",
            stacklevel=2,
        )
        source = f"{source} [one ISO: other ISOs extrapolated]".strip()
    calibration = SensorCalibration(preset=fit_iso_model(table), pattern=pattern, iso_table=table, source=source)
    return calibration, fits


# ----------------------------------------------------------------------------------------------------------------
# Dark frames: the extended terms (Wei et al. 2020)


@dataclasses.dataclass(frozen=True, eq=False)
class DarkFit:
    """The extended noise terms fitted to dark frames (see `estimate_dark_noise`).

    sigma: read-noise std ([0, 1] units, quantization removed); terms: the NoiseTerms (tukey_lambda, row_noise
    relative to sigma, black_level_bias, bit_depth); row_std: the row offsets' std in [0, 1] units; ppcc: the
    probability-plot correlation of the fitted Tukey-lambda shape (1 is a perfect fit), gaussian_ppcc: that of a
    Gaussian (lambda 0.14); residuals: a sample of the standardized per-pixel read noise (for plots); row_means:
    the per-row means after the bias; row_length: pixels per row (W).
    """

    sigma: float
    terms: NoiseTerms
    row_std: float
    ppcc: float
    gaussian_ppcc: float
    residuals: np.ndarray
    row_means: np.ndarray
    row_length: int


_GAUSSIAN_TUKEY_LAMBDA = 0.1349  # the Tukey-lambda shape closest to a Gaussian
_PPCC_SAMPLES = 400_000


def _check_dark_frames(frames):
    arrays = [frames] if isinstance(frames, np.ndarray) and frames.ndim == 2 else list(frames)
    if not arrays:
        raise ValueError("dark_frames must hold at least one frame; received none")
    checked = []
    for index, frame in enumerate(arrays):
        array = np.asarray(frame)
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating) or min(array.shape) < 4:
            raise ValueError(
                f"dark_frames[{index}] must be a floating mosaic [H, W] (H, W >= 4), black level subtracted and not "
                f"clipped; received shape {array.shape}, dtype {array.dtype}"
            )
        if not np.all(np.isfinite(array)) or np.abs(array).max() >= 1:
            raise ValueError(
                f"dark_frames[{index}] must hold finite values in (-1, 1) (black level subtracted, [0, 1] units); "
                f"received min {array.min()!r}, max {array.max()!r}"
            )
        if checked and array.shape != checked[0].shape:
            raise ValueError(f"dark_frames must all have one size; received {checked[0].shape} and {array.shape}")
        checked.append(array[: array.shape[0] // 2 * 2, : array.shape[1] // 2 * 2].astype(np.float64))
    return np.stack(checked)


def quantization_bits(values, max_bits=20):
    """The ADC bit depth b whose step 1 / (2^b - 1) the values lie on, or None (no such grid up to max_bits)."""
    levels = np.unique(np.asarray(values, np.float64))
    if levels.size < 3:
        return None
    step = np.min(np.diff(levels))
    bits = math.log2(1.0 / step + 1.0) if step > 0 else math.inf
    if not 1 <= round(bits) <= max_bits:
        return None
    codes = levels * (2 ** round(bits) - 1)
    return int(round(bits)) if np.max(np.abs(codes - np.round(codes))) < 1e-3 else None


def estimate_dark_noise(dark_frames, bit_depth="auto", seed=0):
    """Fit the extended noise terms of Wei et al. 2020 to dark frames (no light reaches the sensor).

    dark_frames: mosaics [H, W] of one size, black level subtracted but NOT clipped ([0, 1] units, negative values
        kept), a list or an array [N, H, W]. bit_depth: "auto" (detect the ADC grid; None when the values lie on
        none), None (no quantization) or the number of bits.
    Method: the black-level bias is the mean of each 2x2 Bayer position; the row offsets are the per-row means
    after it, and var(row means) = row_std^2 + (sigma^2 + q^2 / 12) / W; the read noise is what is left after the
    row means, var = (sigma^2 + q^2 / 12) (W - 1) / W, with q = 1 / (2^bits - 1) the ADC step (Sheppard's
    correction). Its shape is the Tukey lambda that maximizes the probability-plot correlation
    (scipy.stats.ppcc_max, as Wei et al. 2020 do) on up to 400,000 residuals drawn with `seed`. Returns a DarkFit.
    Accuracy (tests/physics/test_calibration.py: 4 frames of 512 x 512, parameters drawn at random with lambda in
    [-0.22, -0.04], sigma 12 to 120 steps of a 12- or 14-bit ADC): lambda and row_std within 10 %, sigma within
    5 %. Below lambda = -0.25 the read noise's fourth moment is infinite and sigma's estimate gets noisy.
    """
    stack = _check_dark_frames(dark_frames)
    frames, height, width = stack.shape
    if bit_depth == "auto":
        bit_depth = quantization_bits(stack[:, :64, :64])
    elif bit_depth is not None and (isinstance(bit_depth, bool) or not isinstance(bit_depth, int) or bit_depth < 1):
        raise ValueError(f'bit_depth must be "auto", None or an integer >= 1; received {bit_depth!r}')
    quantization = 0.0 if bit_depth is None else (1.0 / (2**bit_depth - 1)) ** 2 / 12.0
    bias = np.array([stack[:, r::2, c::2].mean() for r in (0, 1) for c in (0, 1)])
    centred = stack - np.tile(bias.reshape(2, 2), (height // 2, width // 2))
    row_means = centred.mean(axis=2)
    residuals = centred - row_means[..., np.newaxis]
    pixel_variance = residuals.var() * width / (width - 1)
    sigma = math.sqrt(max(pixel_variance - quantization, 0.0))
    row_variance = row_means.var() - pixel_variance / width
    row_std = math.sqrt(max(row_variance, 0.0))
    sample = residuals.ravel()
    if sample.size > _PPCC_SAMPLES:
        sample = np.random.default_rng(seed).choice(sample, _PPCC_SAMPLES, replace=False)
    lam = float(scipy.stats.ppcc_max(sample, brack=(-0.2, 0.2), dist="tukeylambda"))
    low, high = TUKEY_LAMBDA_RANGE
    lam = min(max(lam, low + 1e-3), high - 1e-3)
    ppcc = _ppcc(sample, lam)
    gaussian_ppcc = _ppcc(sample, _GAUSSIAN_TUKEY_LAMBDA)
    terms = NoiseTerms(
        tukey_lambda=lam,
        row_noise=row_std / sigma if sigma > 0 else 0.0,
        black_level_bias=tuple(float(b) for b in bias),
        bit_depth=bit_depth,
    )
    standardized = sample / max(sample.std(), 1e-20)
    return DarkFit(sigma, terms, row_std, ppcc, gaussian_ppcc, standardized, row_means.ravel(), width)


def _ppcc(sample, lam):
    """Probability-plot correlation of `sample` with the Tukey-lambda(lam) distribution (Filliben positions)."""
    ordered = np.sort(sample)
    n = ordered.size
    positions = (np.arange(1, n + 1) - 0.3175) / (n + 0.365)
    positions[0], positions[-1] = 1 - 0.5 ** (1 / n), 0.5 ** (1 / n)
    return float(np.corrcoef(ordered, scipy.stats.tukeylambda.ppf(positions, lam))[0, 1])


def plot_dark_fit(fit, path, title="Dark-frame noise terms"):
    """Plot each fitted term of a DarkFit in a 2 x 2 figure and save it as PNG (matplotlib, extra [plots]):
    the read noise's histogram (log scale) with the fitted Tukey-lambda and the Gaussian of the same std, its
    probability plot against the fitted shape, the row means' histogram with N(0, row_std^2 + sigma^2 / W), and
    the black-level bias per Bayer position. Returns the path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(f"plotting needs matplotlib: {PLOTS_INSTALL_HINT}") from None
    if not isinstance(fit, DarkFit):
        raise ValueError(f"fit must be a DarkFit; received {type(fit).__name__}")
    lam = fit.terms.tukey_lambda
    scale = 1.0 / noise_lib.tukey_lambda_std(lam)
    figure, axes = plt.subplots(2, 2, figsize=(9, 7))
    grid = np.linspace(-6, 6, 400)
    axes[0, 0].hist(fit.residuals, bins=200, range=(-6, 6), density=True, color="0.7", label="dark frames")
    axes[0, 0].plot(grid, scipy.stats.tukeylambda.pdf(grid / scale, lam) / scale, label=f"Tukey lambda {lam:.3f}")
    axes[0, 0].plot(grid, scipy.stats.norm.pdf(grid), "--", label="Gaussian")
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylim(1e-6, 1)
    axes[0, 0].set_title(f"read noise: sigma {fit.sigma:.4g}")
    axes[0, 0].set_xlabel("read noise / its std")
    axes[0, 0].legend(fontsize="small")
    ordered = np.sort(fit.residuals)
    positions = (np.arange(1, ordered.size + 1) - 0.5) / ordered.size
    theory = scipy.stats.tukeylambda.ppf(positions, lam) * scale
    step = max(1, ordered.size // 2000)
    axes[0, 1].plot(theory[::step], ordered[::step], ".", markersize=2)
    axes[0, 1].plot(theory[[0, -1]], theory[[0, -1]], "k-", linewidth=0.8)
    axes[0, 1].set_title(f"probability plot: ppcc {fit.ppcc:.5f} (Gaussian {fit.gaussian_ppcc:.5f})")
    axes[0, 1].set_xlabel("Tukey-lambda quantile")
    axes[0, 1].set_ylabel("measured quantile")
    spread = math.sqrt(fit.row_std**2 + fit.sigma**2 / fit.row_length)
    axes[1, 0].hist(fit.row_means, bins=60, density=True, color="0.7")
    rows = np.linspace(fit.row_means.min(), fit.row_means.max(), 200)
    axes[1, 0].plot(rows, scipy.stats.norm.pdf(rows, scale=max(spread, 1e-20)))
    axes[1, 0].set_title(f"row noise: std {fit.row_std:.4g} ({fit.terms.row_noise:.3f} sigma)")
    axes[1, 0].set_xlabel("row mean")
    axes[1, 1].bar(["(0, 0)", "(0, 1)", "(1, 0)", "(1, 1)"], fit.terms.black_level_bias, color="0.5")
    axes[1, 1].axhline(0.0, color="k", linewidth=0.8)
    bits = fit.terms.bit_depth
    axes[1, 1].set_title(f"black-level bias per Bayer position; ADC {bits if bits else 'not quantized'} bits")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# ----------------------------------------------------------------------------------------------------------------
# Sensor preset files


def save_sensor_preset(path, calibration):
    """Write a SensorCalibration as YAML (keys in the module docstring); returns the path."""
    if not isinstance(calibration, SensorCalibration):
        raise ValueError(f"calibration must be a SensorCalibration; received {type(calibration).__name__}")
    content = {
        "poisson": float(calibration.preset.poisson),
        "gauss": float(calibration.preset.gauss),
        "pattern": calibration.pattern,
        "iso_table": [
            {"iso": float(iso), "alpha": float(alpha), "sigma": float(sigma)}
            for iso, alpha, sigma in calibration.iso_table
        ],
        "source": calibration.source,
    }
    terms = calibration.terms
    if terms.tukey_lambda is not None:
        content["tukey_lambda"] = terms.tukey_lambda
    if terms.row_noise > 0:
        content["row_noise"] = terms.row_noise
    if any(terms.black_level_bias):
        content["black_level_bias"] = list(terms.black_level_bias)
    if terms.bit_depth is not None:
        content["bit_depth"] = terms.bit_depth
    header = (
        "# dirtypixels_tf sensor preset: Poisson-Gaussian noise at ISO 100 in [0, 1] units;\n"
        "# alpha = poisson * ISO / 100, sigma = gauss * ISO / 100 (physics/calibration.py).\n"
    )
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(header)
        yaml.safe_dump(content, handle, sort_keys=False, width=1000)
    return path


def load_sensor_preset(path):
    """Read a sensor.yaml into a SensorCalibration; use `.preset` and `.pattern` with SensorModel.

    Unknown or missing keys and bad values raise ValueError naming the file and the key.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path must be an existing sensor preset file; received {path!r} (not found)")
    try:
        with open(path, encoding="utf-8") as handle:
            content = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise ValueError(f"path {path!r} is not valid YAML: {error}") from None
    if not isinstance(content, dict):
        raise ValueError(f"path {path!r} must hold a mapping with keys {', '.join(PRESET_KEYS)}; received {content!r}")
    unknown = sorted(set(content) - set(PRESET_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; the keys are {', '.join(PRESET_KEYS)}")
    missing = [key for key in ("poisson", "gauss", "pattern") if key not in content]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}")
    try:
        preset = NoisePreset(poisson=float(content["poisson"]), gauss=float(content["gauss"]))
        pattern = check_pattern(content["pattern"])
        rows = content.get("iso_table") or []
        table = tuple((_check_iso(row["iso"]), float(row["alpha"]), float(row["sigma"])) for row in rows)
        terms = NoiseTerms(**{key: content[key] for key in TERM_KEYS if content.get(key) is not None})
    except (TypeError, KeyError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
    source = str(content.get("source", ""))
    return SensorCalibration(preset=preset, pattern=pattern, iso_table=table, source=source, terms=terms)


def darktable_to_preset(maker, model, isos=None, pattern=RELEASE_PATTERN, path=None):
    """A SensorCalibration from darktable's profiles of one camera (see physics/darktable.py for the conversion).

    isos: None uses every measured ISO; a list uses those ISOs (interpolated as darktable does). The preset is the
    linear ISO model fitted to them, as `calibrate_sensor` does; darktable does not record the Bayer phase, so
    `pattern` is the phase to simulate with.
    """
    from dirtypixels_tf.physics import darktable

    profiles = darktable.find_camera(maker, model, path)
    if isos is None:
        table = tuple((p.iso, p.alpha, p.sigma) for p in profiles)
    else:
        table = tuple((float(iso), *darktable.noise_at_iso(maker, model, iso, path)) for iso in isos)
    if not table:
        raise ValueError(f"isos must name at least one ISO; received {isos!r}")
    source = f"darktable noise profiles: {profiles[0].maker} {profiles[0].model}"
    return SensorCalibration(
        preset=fit_iso_model(table), pattern=check_pattern(pattern), iso_table=table, source=source
    )


def plot_noise_fits(fits, path, title="Noise calibration"):
    """Plot std against mean for each NoiseFit (dict label -> fit): the measured bins, the fitted clipped curve
    std(y) vs E[y] (solid) and the unclipped sqrt(alpha x + sigma^2) vs x (dashed), as Diamond et al. 2017, Fig. 3d.
    Saves a PNG (matplotlib, Agg backend; the optional extra [plots]) and returns the path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(f"plotting needs matplotlib: {PLOTS_INSTALL_HINT}") from None
    if not isinstance(fits, dict) or not fits or not all(isinstance(f, NoiseFit) for f in fits.values()):
        raise ValueError(f"fits must be a non-empty dict of label -> NoiseFit; received {fits!r}")
    figure, axes = plt.subplots(figsize=(6, 4.5))
    x = np.linspace(0.0, 1.0, 256)
    for (label, fit), colour in zip(fits.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10):
        axes.plot(fit.means, np.sqrt(fit.variances), "o", markersize=3, color=colour, alpha=0.6)
        axes.plot(x, np.sqrt(clipped_variance_at_mean(x, fit.alpha, fit.sigma)), "-", color=colour, label=str(label))
        axes.plot(x, np.sqrt(fit.alpha * x + fit.sigma**2), "--", color=colour, linewidth=0.8)
    axes.set_xlabel("mean (E[y] for the points and solid lines, x for dashed)")
    axes.set_ylabel("standard deviation")
    axes.set_title(title)
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(bottom=0.0)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# ----------------------------------------------------------------------------------------------------------------
# PSF estimation


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
