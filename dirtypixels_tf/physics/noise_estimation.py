"""Noise calibration from RAW captures: the clipped Poisson-Gaussian noise (alpha, sigma) per ISO.

NumPy / SciPy, run once offline on whole frames. Captures are RAW mosaics [H, W] in [0, 1] of the model
y = clip(alpha P(x / alpha) + N(0, sigma^2), 0, 1) (Diamond et al. 2017 and 2021, after Foi et al. 2008), so
Var[y] = alpha x + sigma^2 away from 0 and 1. Each mosaic is split into its four Bayer planes and each plane into
`block` x `block` blocks; a block gives its mean and its noise variance, either "spatial" (the mean square of its
diagonal Haar details, which cancel signal linear along rows or columns; textured blocks are rejected by their
horizontal and vertical details and by the next scale's) or "temporal" (each pixel's variance across frames of one
static scene). The blocks of all planes are fitted by weighted least squares to the clipped model evaluated at
each block's measured mean (`expected_variance_at_mean`, exact Poisson sums from `clipped_moments`); a colour plane
whose smooth blocks stand out (PLANE_TEXTURE_Z) is left out as scene texture. The dark-frame terms of Wei et al.
2020 are in physics/dark_noise.py, the sensor.yaml in physics/sensor_files.py, frames without metadata in
`estimate_frame_noise`. The method in full and its measured accuracy: docs/noise_calibration.md.
"""

import dataclasses
import math
import warnings

import numpy as np
import scipy.optimize
import scipy.special

from dirtypixels_tf.physics.mosaic import RELEASE_PATTERN, check_pattern
from dirtypixels_tf.physics.sensor_files import SensorCalibration, check_iso, fit_iso_model
from dirtypixels_tf.physics.validation import check_int, check_mosaic_array, check_positive_number

METHODS = ("spatial", "temporal")
PLOTS_INSTALL_HINT = "pip install dirtypixels_tf[plots]"

IDENTIFIABLE_FRACTION = 0.1  # largest standard error of alpha x or sigma^2, relative to the noise variance
MIN_BINS = 3  # intensity bins that must hold kept blocks: fewer cannot tell alpha from sigma
MIN_PLANE_BLOCKS = 10  # kept blocks a Bayer plane needs (inside the clipping zones) to be compared with the others
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


def _haar_details(values):
    """The diagonal, horizontal and vertical Haar details (a - b - c + d) / 2, (a - b + c - d) / 2 and
    (a + b - c - d) / 2 of the 2x2 cells of [..., h, w], and the cells' approximation (a + b + c + d) / 2 (all of
    the noise's variance for independent noise of one variance)."""
    a, b = values[..., 0::2, 0::2], values[..., 0::2, 1::2]
    c, d = values[..., 1::2, 0::2], values[..., 1::2, 1::2]
    return (a - b - c + d) / 2, (a - b + c - d) / 2, (a + b - c - d) / 2, (a + b + c + d) / 2


def _spatial_blocks(frame, block):
    """Per block of every Bayer plane: mean, diagonal detail variance, horizontal and vertical detail energy, and
    the energy of the three details of the next scale (the details of the approximations; None when block is not a
    multiple of 4)."""
    planes = _planes(frame, block)
    diagonal, horizontal, vertical, approximation = _haar_details(planes)
    half = block // 2
    energies = [_block_mean(detail**2, half).ravel() for detail in (diagonal, horizontal, vertical)]
    coarse = None
    if block % 4 == 0:
        coarse = sum(_block_mean(detail**2, block // 4) for detail in _haar_details(approximation)[:3]).ravel() / 3
    return (_block_mean(planes, block).ravel(), *energies, coarse)


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
    mean_samples), the second-order correction. Below E[y](0), the lowest mean the model has, a block's mean lies
    only by its own noise, so there f continues along its slope at x = 0 (down to 3 noise stds of the mean, then
    flat) instead of staying at f(0): flat, its average over that noise would exceed f(0) by a first-order term
    (measured on black blocks: 2 to 5 %, sigma 5 % low). mean_samples None: f itself (`clipped_variance_at_mean`).
    """
    grid_mean, grid_var = clipped_moments(_model_grid(alpha, sigma), alpha, sigma)
    means = np.asarray(means, np.float64)
    if mean_samples is None:
        return np.interp(means, grid_mean, grid_var)
    slope = (grid_var[1] - grid_var[0]) / max(grid_mean[1] - grid_mean[0], 1e-300)
    lowest = grid_mean[0] - 3.0 * math.sqrt(grid_var[0] / mean_samples)

    def curve_at(values):
        below_zero = grid_var[0] + slope * (np.maximum(values, lowest) - grid_mean[0])
        return np.where(values < grid_mean[0], np.maximum(below_zero, 0.0), np.interp(values, grid_mean, grid_var))

    curve = curve_at(means)
    step = np.sqrt(curve / mean_samples)
    return np.maximum(2.0 * curve - 0.5 * (curve_at(means + step) + curve_at(means - step)), 0.0)


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


PLANE_TEXTURE_Z = 3.0  # standard errors by which a Bayer plane's smooth blocks may exceed the other planes'
PLANE_TEXTURE_EXCESS = 0.05  # and the fraction of the noise variance by which they may (see `_textured_plane`)


def _textured_plane(means, variances, kept, plane, alpha, sigma, mean_samples):
    """The Bayer plane (index 0-3) whose kept blocks measure the most variance above the other planes', if that is
    more than PLANE_TEXTURE_Z standard errors and more than PLANE_TEXTURE_EXCESS of the noise variance; else None.

    All planes share one noise curve, and texture only adds variance, so a plane whose kept blocks lie further
    above the curve than the other planes' carries texture (a natural scene's texture differs by colour). Compared:
    the mean of variance / `expected_variance_at_mean` over the plane's kept blocks at least 4 noise stds inside
    [0, 1] (in the clipped zones a scene's black and white areas hold no texture of any colour) against the same
    mean over the other planes' blocks; the standard error of the difference from the spread of the ratios in each
    group. Planes with fewer than MIN_PLANE_BLOCKS such blocks are not compared. Smaller excesses than
    PLANE_TEXTURE_EXCESS move the fit by about a quarter of that and are left in: in large real frames they pass
    the standard-error test (a Canon frame of 2048 x 3072: one green plane 1.5 % above the others, 6000 blocks).
    """
    inside = kept & (means > 4.0 * np.sqrt(alpha * np.maximum(means, 0.0) + sigma**2))
    inside &= means < 1.0 - 4.0 * np.sqrt(alpha * np.minimum(means, 1.0) + sigma**2)
    ratio = variances / np.maximum(expected_variance_at_mean(means, alpha, sigma, mean_samples), 1e-300)
    scores = {}
    for index in np.unique(plane[inside]):
        own, others = ratio[inside & (plane == index)], ratio[inside & (plane != index)]
        if own.size >= MIN_PLANE_BLOCKS and others.size >= MIN_PLANE_BLOCKS:
            error = math.sqrt(own.var(ddof=1) / own.size + others.var(ddof=1) / others.size)
            excess = own.mean() - others.mean()
            if excess > PLANE_TEXTURE_EXCESS and excess > PLANE_TEXTURE_Z * error:
                scores[int(index)] = excess / error
    return max(scores, key=scores.get, default=None)


TEXTURE_TOLERANCE = {"spatial": 1.0, "temporal": 3.0}


def estimate_noise(frames, method="spatial", block=8, bins=64, texture_tolerance=None):
    """Estimate (alpha, sigma) of the clipped Poisson-Gaussian noise from RAW captures (see module docstring).

    frames: mosaics [H, W] (or [H, W, 1]) in [0, 1], all of one size: a list or an array [N, H, W].
    method: "spatial" (any scenes; smooth blocks, and colour planes without extra texture, are found
        automatically: flat fields and gray charts work best) or "temporal" (at least two frames of the same static
        scene).
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
        _, *details, _ = _spatial_blocks(stack.mean(axis=0), block)
        textures = [(detail * len(frames), math.sqrt(2 / (block // 2) ** 2)) for detail in details]
        shape = (*average.shape[:1], average.shape[1] // block, block, average.shape[2] // block, block)
        darkest = average.reshape(shape).min(axis=(2, 4)).ravel()
        brightest = average.reshape(shape).max(axis=(2, 4)).ravel()
    else:
        stats = [_spatial_blocks(frame, block) for frame in frames]
        means, variances, horizontal, vertical = (np.concatenate(parts) for parts in list(zip(*stats))[:4])
        samples = (block // 2) ** 2
        mean_samples = block * block
        textures = [(horizontal, math.sqrt(2 / samples)), (vertical, math.sqrt(2 / samples))]
        if block % 4 == 0:  # the next scale, 3 (block / 4)^2 details; a loose test (3 stds) for coarse texture only
            textures.append((np.concatenate([stat[4] for stat in stats]), 3 * math.sqrt(2 / (3 * (block // 4) ** 2))))
    total = means.size
    usable = variances > 0
    _check_coverage(means[usable], bins, total)
    alpha, sigma = fit_clipped_noise(*_binned(means[usable], variances[usable], samples, bins, robust=True))

    def select_and_fit(usable, alpha, sigma):
        kept = None
        for _ in range(_SELECTION_ROUNDS):
            curve = clipped_variance_at_mean(means, alpha, sigma)
            smooth = np.all([energy <= (1 + texture_tolerance * spread) * curve for energy, spread in textures], axis=0)
            if method == "temporal":
                dark_std = np.sqrt(np.maximum(alpha * darkest, 0.0) + sigma**2)
                bright_std = np.sqrt(np.maximum(alpha * brightest, 0.0) + sigma**2)
                smooth |= (darkest > 4.0 * dark_std) & (brightest < 1.0 - 4.0 * bright_std)
            # Beyond the saturation knee (E[y] at x = 1: over half the pixels clipped) the variance drops to 0 within
            # a fraction of the noise's std, so there the noise of a block's own mean dominates: they are left out.
            below_knee = means <= clipped_moments(1.0, alpha, sigma)[0]
            selection = usable & smooth & below_knee
            if kept is not None and np.array_equal(selection, kept):
                break
            kept = selection
            _check_coverage(means[kept], bins, total)
            alpha, sigma = fit_clipped_noise(
                means[kept], variances[kept], samples, initial=(alpha, sigma), mean_samples=mean_samples
            )
        return kept, alpha, sigma

    kept, alpha, sigma = select_and_fit(usable, alpha, sigma)
    if method == "spatial":  # colour planes whose smooth blocks carry texture the block tests let through
        per_plane = total // len(frames) // 4  # blocks are raveled [frame, plane, block row, block column]
        plane = np.tile(np.repeat(np.arange(4), per_plane), len(frames))
        while (textured := _textured_plane(means, variances, kept, plane, alpha, sigma, mean_samples)) is not None:
            try:
                kept, alpha, sigma = select_and_fit(usable & (plane != textured), alpha, sigma)
            except ValueError:  # the other planes' blocks alone cover too few intensity bins: the plane stays
                break
            usable &= plane != textured
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
    Accuracy (tests/physics/test_noise_estimation.py, one 512 x 512 natural photograph, a sensor drawn at random, 3 to
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


def calibrate_sensor(captures_by_iso, pattern=RELEASE_PATTERN, method="spatial", block=8, bins=64, source=""):
    """Calibrate a sensor from captures at one or more ISOs: {iso: frames} -> (SensorCalibration, {iso: NoiseFit}).

    Each ISO's frames go through `estimate_noise`; the preset is the linear ISO model fitted to the per-ISO
    (alpha, sigma). From a single ISO the model is an extrapolation: a UserWarning says so and the source notes it.
    `pattern` is recorded in the calibration (the phase the mosaics were read in).
    """
    pattern = check_pattern(pattern)
    if not isinstance(captures_by_iso, dict) or not captures_by_iso:
        raise ValueError(f"captures_by_iso must be a non-empty dict {{iso: frames}}; received {captures_by_iso!r}")
    fits = {}
    for key in sorted(captures_by_iso, key=check_iso):
        iso = check_iso(key)
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
