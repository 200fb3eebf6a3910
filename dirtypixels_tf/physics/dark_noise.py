"""Dark frames (no light on the sensor): the extended low-light noise terms of Wei et al. 2020.

Calibration runs offline on whole frames, so this module is NumPy / SciPy (no TensorFlow graph). The terms are
physics/noise.py's NoiseTerms: Tukey-lambda read-noise shape, row noise, black-level bias per Bayer position and
the ADC bit depth; `dirtypixels calibrate noise --dark` writes them into the sensor.yaml (physics/sensor_files.py).
"""

import dataclasses
import math

import numpy as np
import scipy.stats

from dirtypixels_tf.physics import noise as noise_lib
from dirtypixels_tf.physics.noise import TUKEY_LAMBDA_RANGE, NoiseTerms
from dirtypixels_tf.physics.noise_estimation import PLOTS_INSTALL_HINT


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
    Accuracy (tests/physics/test_dark_noise.py: 4 frames of 512 x 512, parameters drawn at random with lambda in
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
