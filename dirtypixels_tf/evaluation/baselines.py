"""Conventional ISPs as real pipelines: RAW mosaic + (alpha, sigma) [+ PSF] in, an RGB image out. NumPy, per image.

Stages, in this order (each optional except demosaicking):
1. Denoising on the RAW mosaic, where each pixel's noise is independent: the generalized Anscombe transform
   (layers/anscombe.py, not max-normalized) on the four Bayer planes [H/2, W/2, 4] (G first: BM3D matches blocks on
   the first plane), a Gaussian denoiser at the transformed domain's noise std 1, then the exact unbiased inverse of
   the CLIPPED measurement (`clipped_gat_inverse`; Makitalo and Foi 2013 with clipping as in Foi 2009), since the
   inverse that ignores clipping turns dark backgrounds grey. Denoisers: "nlm" (scikit-image non-local means,
   3 x 3 patches, search distance 3, h = 0.5 sigma) and "bm3d" (the `bm3d` package, profile "np"; extra [baselines]).
2. Demosaicking: "bilinear" (physics.mosaic), "malvar" (Malvar et al. 2004) or "menon" (Menon et al. 2007).
3. Deconvolution with the known PSF [kh, kw] or [kh, kw, 3], if any: "wiener" (gradient prior, weight 0.05) or
   "hqs" (half-quadratic splitting with anisotropic TV, weight 5e-3, 12 iterations). The image is padded by
   reflection (edge pixel repeated) by the PSF's size, deconvolved circularly and cropped back.
4. White balance: None, "gray_world" (each channel's mean scaled to green's) or three gains (R, G, B).
5. Tone: gamma=True applies the sRGB transfer curve.
The output is clipped to [0, 1]. Simulated data (data.pipeline) has no colour response, so pipelines compared with
its clean images use neither white balance nor gamma; "malvar_nlm_display" (gray world + sRGB) is for real captures.
`ConventionalIsp.process_batch` is what the grid evaluation calls (evaluation/predictors.py); `isp_dataset` maps a
tf.data stream through tf.numpy_function (on the CPU, not differentiable; `.cache(filename)` after it for BM3D).
Why these defaults, with the measurements: docs/models.md, "Conventional baselines".
"""

import dataclasses
import functools
import importlib.util

import numpy as np
import scipy.stats
import tensorflow as tf

from dirtypixels_tf.optional import require
from dirtypixels_tf.physics import mosaic
from dirtypixels_tf.physics.validation import check_positive_number

DEMOSAICKERS = ("bilinear", "malvar", "menon")
DENOISERS = (None, "nlm", "bm3d")
DECONVOLUTIONS = (None, "wiener", "hqs")
WHITE_BALANCES = (None, "gray_world")
BM3D_INSTALL_HINT = "pip install bm3d, or the extra dirtypixels_tf[baselines]"

# Non-local means on the Bayer planes (half the frame's size): a small search window, so that on 16 x 16 planes of
# 32 x 32 frames a pixel does not average most of its plane (docs/models.md, "Conventional baselines").
NLM_PATCH_SIZE = 3
NLM_PATCH_DISTANCE = 3
NLM_H = 0.5  # times the noise std (1 in the GAT domain)
HQS_ITERATIONS = 12
DEMOSAIC_PAD = 4  # even: the reflected border keeps the Bayer phase (demosaic)
DECONVOLUTION_WEIGHTS = {"wiener": 0.05, "hqs": 5e-3}


def bm3d_available():
    """Whether the optional `bm3d` package is installed."""
    return importlib.util.find_spec("bm3d") is not None


# ---------------------------------------------------------------------------------------------------------------
# Stages (pure functions on NumPy arrays)


def _plane_order(pattern):
    """Positions (row, col) of the 2x2 Bayer block in plane order: the first G, then R, B and the second G."""
    pattern = mosaic.check_pattern(pattern)
    positions = [divmod(i, 2) for i in range(4)]
    greens = [p for p, c in zip(positions, pattern) if c == "G"]
    red = positions[pattern.index("R")]
    blue = positions[pattern.index("B")]
    return [greens[0], red, blue, greens[1]]


def pack_bayer(raw, pattern=mosaic.RELEASE_PATTERN):
    """RAW [H, W] -> its four Bayer planes [H/2, W/2, 4] in the order G1, R, B, G2."""
    return np.stack([raw[r::2, c::2] for r, c in _plane_order(pattern)], axis=-1)


def unpack_bayer(planes, pattern=mosaic.RELEASE_PATTERN):
    """The inverse of `pack_bayer`: [H/2, W/2, 4] -> [H, W]."""
    height, width = planes.shape[0] * 2, planes.shape[1] * 2
    raw = np.empty((height, width), planes.dtype)
    for k, (r, c) in enumerate(_plane_order(pattern)):
        raw[r::2, c::2] = planes[..., k]
    return raw


def gaussian_denoise(image, method, sigma):
    """Denoise image [H, W, C] (float64) of additive white Gaussian noise of std `sigma` with "nlm" or "bm3d"."""
    if method == "nlm":
        denoise_nl_means = require("skimage.restoration", "the non-local means baseline").denoise_nl_means

        return denoise_nl_means(
            image,
            patch_size=NLM_PATCH_SIZE,
            patch_distance=NLM_PATCH_DISTANCE,
            h=NLM_H * sigma,
            sigma=sigma,
            fast_mode=True,
            channel_axis=-1,
        )
    if method == "bm3d":
        if not bm3d_available():
            raise ValueError(f"denoise 'bm3d' needs the optional bm3d package ({BM3D_INSTALL_HINT}); it is missing")
        import bm3d

        return np.asarray(bm3d.bm3d(image, sigma, profile="np"), np.float64).reshape(image.shape)
    raise ValueError(f"method must be one of nlm, bm3d; received {method!r}")


CLIPPED_INVERSE_POINTS = 513  # grid of x in [0, 1] on which E[GAT(clip(y)) | x] is tabulated
_HERMITE = np.polynomial.hermite_e.hermegauss(48)  # nodes and weights for E[g(n)], n ~ N(0, 1)
_EXACT_POISSON_BELOW = 2000.0  # 1 / alpha above this: the Poisson part is taken as Gaussian


def _gat(y, alpha, sigma):
    return 2.0 * np.sqrt(np.maximum(y / alpha + 0.375 + (sigma / alpha) ** 2, 0.0))


@functools.lru_cache(maxsize=64)
def _clipped_gat_table(alpha, sigma):
    """(x grid, E[GAT(clip(y, 0, 1)) | x]) for y = alpha Poisson(x / alpha) + N(0, sigma^2) on x in [0, 1]."""
    x = np.linspace(0.0, 1.0, CLIPPED_INVERSE_POINTS)
    nodes, weights = _HERMITE
    weights = weights / weights.sum()
    if 1.0 / alpha <= _EXACT_POISSON_BELOW:
        counts = np.arange(int(np.ceil(1.0 / alpha + 12.0 * np.sqrt(1.0 / alpha) + 12.0)) + 1)
        pmf = scipy.stats.poisson.pmf(counts[np.newaxis, :], x[:, np.newaxis] / alpha)  # [X, K]
        y = alpha * counts[:, np.newaxis] + sigma * nodes[np.newaxis, :]  # [K, N]
        expected_given_count = _gat(np.clip(y, 0.0, 1.0), alpha, sigma) @ weights  # [K]
        expected = pmf @ expected_given_count
    else:
        std = np.sqrt(alpha * x + sigma**2)
        y = x[:, np.newaxis] + std[:, np.newaxis] * nodes[np.newaxis, :]
        expected = _gat(np.clip(y, 0.0, 1.0), alpha, sigma) @ weights
    return x, np.maximum.accumulate(expected)  # increasing in x; accumulate removes quadrature wiggles


def clipped_gat_inverse(d, alpha, sigma):
    """The exact unbiased inverse of the GAT of a clipped measurement: x in [0, 1] with E[GAT(clip(y, 0, 1)) | x]
    = d (d below E at x = 0 gives 0, above E at x = 1 gives 1). d any shape; alpha > 0, sigma >= 0 scalars."""
    x, expected = _clipped_gat_table(float(alpha), float(sigma))
    return np.interp(d, expected, x)


def denoise_raw(raw, alpha, sigma, method, pattern=mosaic.RELEASE_PATTERN):
    """Denoise a Poisson-Gaussian RAW mosaic [H, W] via the GAT: forward, Gaussian denoiser with std 1 on the four
    Bayer planes, the exact unbiased inverse of the clipped measurement (`clipped_gat_inverse`). alpha > 0 (the
    GAT divides by it), sigma >= 0. Returns float64 [H, W] in [0, 1]."""
    alpha = check_positive_number(alpha, "alpha")
    sigma = check_positive_number(sigma, "sigma", allow_zero=True)
    transformed = _gat(np.asarray(raw, np.float64), alpha, sigma)
    denoised = unpack_bayer(gaussian_denoise(pack_bayer(transformed, pattern), method, 1.0), pattern)
    return clipped_gat_inverse(denoised, alpha, sigma)


def demosaic(raw, method, pattern=mosaic.RELEASE_PATTERN):
    """RAW [H, W] -> RGB [H, W, 3] float64 with "bilinear", "malvar" (2004) or "menon" (2007)."""
    if method == "bilinear":
        return mosaic.demosaic_bilinear(np.asarray(raw, np.float32)[np.newaxis, :, :, np.newaxis], pattern).numpy()[0]
    colour_demosaicing = require("colour_demosaicing", f"{method} demosaicking")
    functions = {
        "malvar": colour_demosaicing.demosaicing_CFA_Bayer_Malvar2004,
        "menon": colour_demosaicing.demosaicing_CFA_Bayer_Menon2007,
    }
    if method not in functions:
        raise ValueError(f"method must be one of {', '.join(DEMOSAICKERS)}; received {method!r}")
    # colour-demosaicing's "mirror" boundary puts the wrong Bayer colour next to the border (a fringe along the
    # edges); reflecting an even number of pixels (edge not repeated) keeps each padded pixel's colour, and the
    # padding is cropped off again.
    padded = np.pad(np.asarray(raw, np.float64), DEMOSAIC_PAD, mode="reflect")
    image = functions[method](padded, pattern=mosaic.check_pattern(pattern))
    return np.asarray(image)[DEMOSAIC_PAD:-DEMOSAIC_PAD, DEMOSAIC_PAD:-DEMOSAIC_PAD]


def _psf_channels(psf, channels):
    psf = np.asarray(psf, np.float64)
    if psf.ndim == 2:
        psf = psf[..., np.newaxis]
    if psf.ndim != 3 or psf.shape[-1] not in (1, channels):
        raise ValueError(f"psf must be [kh, kw] or [kh, kw, {channels}]; received shape {psf.shape}")
    return np.broadcast_to(psf, psf.shape[:2] + (channels,))


def _otf(kernel, height, width):
    """FFT of a kernel [kh, kw] zero-padded to H x W with its centre (kh // 2, kw // 2) moved to (0, 0)."""
    kh, kw = kernel.shape
    padded = np.zeros((height, width))
    padded[:kh, :kw] = kernel
    return np.fft.fft2(np.roll(padded, (-(kh // 2), -(kw // 2)), axis=(0, 1)))


def _gradient_otfs(height, width):
    """OTFs of the circular forward differences (D_x u)[i, j] = u[i, j + 1] - u[i, j] and (D_y u)[i, j] =
    u[i + 1, j] - u[i, j] (convolution kernels with -1 at (0, 0) and 1 at (0, -1), respectively (-1, 0))."""
    dx = np.zeros((height, width))
    dx[0, 0], dx[0, -1] = -1.0, 1.0
    dy = np.zeros((height, width))
    dy[0, 0], dy[-1, 0] = -1.0, 1.0
    return np.fft.fft2(dx), np.fft.fft2(dy)


def _padded(channel, pad):
    return np.pad(channel, ((pad[0], pad[0]), (pad[1], pad[1])), mode="symmetric")


def deconvolve_wiener(image, psf, weight):
    """Wiener deconvolution with a gradient prior per channel: X = conj(K) Y / (|K|^2 + weight (|Dx|^2 + |Dy|^2)),
    on the image padded by reflection by the PSF's size (cropped back). image [H, W, C]; psf [kh, kw(, C)]."""
    kernels = _psf_channels(psf, image.shape[-1])
    pad = kernels.shape[:2]
    out = np.empty(image.shape, np.float64)
    for c in range(image.shape[-1]):
        y = _padded(image[..., c], pad)
        k = _otf(kernels[..., c], *y.shape)
        gx, gy = _gradient_otfs(*y.shape)
        x = np.fft.ifft2(np.conj(k) * np.fft.fft2(y) / (np.abs(k) ** 2 + weight * (np.abs(gx) ** 2 + np.abs(gy) ** 2)))
        out[..., c] = x.real[pad[0] : pad[0] + image.shape[0], pad[1] : pad[1] + image.shape[1]]
    return out


def deconvolve_hqs(image, psf, weight, iterations=HQS_ITERATIONS):
    """Total-variation deconvolution by half-quadratic splitting (Geman and Yang 1995), per channel:
    min_x 1/2 |k * x - y|^2 + weight (|D_x x|_1 + |D_y x|_1). Alternates the x-update in the Fourier domain,
    X = (conj(K) Y + rho (conj(Gx) Zx + conj(Gy) Zy)) / (|K|^2 + rho (|Gx|^2 + |Gy|^2)), and the z-update by soft
    thresholding of the gradients at weight / rho; rho starts at 10 * weight and doubles every iteration. The image
    is padded by reflection by the PSF's size and cropped back."""
    kernels = _psf_channels(psf, image.shape[-1])
    pad = kernels.shape[:2]
    out = np.empty(image.shape, np.float64)
    for c in range(image.shape[-1]):
        y = _padded(image[..., c], pad)
        k = _otf(kernels[..., c], *y.shape)
        gx, gy = _gradient_otfs(*y.shape)
        numerator_data = np.conj(k) * np.fft.fft2(y)
        x_hat = np.fft.fft2(y)  # start from the blurred image
        rho = 10.0 * weight
        for _ in range(iterations):
            dx = np.fft.ifft2(gx * x_hat).real
            dy = np.fft.ifft2(gy * x_hat).real
            threshold = weight / rho
            zx = np.sign(dx) * np.maximum(np.abs(dx) - threshold, 0.0)
            zy = np.sign(dy) * np.maximum(np.abs(dy) - threshold, 0.0)
            numerator = numerator_data + rho * (np.conj(gx) * np.fft.fft2(zx) + np.conj(gy) * np.fft.fft2(zy))
            x_hat = numerator / (np.abs(k) ** 2 + rho * (np.abs(gx) ** 2 + np.abs(gy) ** 2))
            rho *= 2.0
        x = np.fft.ifft2(x_hat).real
        out[..., c] = x[pad[0] : pad[0] + image.shape[0], pad[1] : pad[1] + image.shape[1]]
    return out


def white_balance(image, method_or_gains):
    """ "gray_world": scale R and B so each channel's mean equals the green mean; or per-channel gains (R, G, B)."""
    if isinstance(method_or_gains, str):
        if method_or_gains != "gray_world":
            raise ValueError(f"white_balance must be 'gray_world' or 3 gains; received {method_or_gains!r}")
        means = np.maximum(image.reshape(-1, 3).mean(axis=0), 1e-8)
        gains = means[1] / means
    else:
        gains = np.asarray(method_or_gains, np.float64)
    return image * gains


def srgb_gamma(image):
    """The sRGB transfer curve (IEC 61966-2-1) on linear values in [0, 1]."""
    image = np.clip(image, 0.0, 1.0)
    return np.where(image <= 0.0031308, 12.92 * image, 1.055 * np.power(image, 1 / 2.4) - 0.055)


# ---------------------------------------------------------------------------------------------------------------
# Pipelines


def _check_choice(value, choices, name):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(str(c) for c in choices)}; received {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class ConventionalIsp:
    """A conventional ISP: denoise (RAW, GAT domain) -> demosaic -> deconvolve -> white balance -> gamma -> clip.

    See the module docstring for each stage. `deconvolution_weight` is w of the Wiener gradient prior or of the TV
    term of HQS (None: the method's DECONVOLUTION_WEIGHTS). Calling the ISP on one RAW mosaic [H, W] or [H, W, 1]
    in [0, 1] with its alpha, sigma (and PSF) returns float32 [H, W, 3] in [0, 1]; `process_batch` does the same
    for batches. Without a PSF (or with psf=None) the deconvolution stage is skipped.
    """

    demosaic: str = "bilinear"
    denoise: str | None = None
    deconvolve: str | None = None
    white_balance: str | tuple | None = None
    gamma: bool = False
    pattern: str = mosaic.RELEASE_PATTERN
    deconvolution_weight: float | None = None
    name: str = ""

    def __post_init__(self):
        _check_choice(self.demosaic, DEMOSAICKERS, "demosaic")
        _check_choice(self.denoise, DENOISERS, "denoise")
        _check_choice(self.deconvolve, DECONVOLUTIONS, "deconvolve")
        if not (
            self.white_balance in WHITE_BALANCES
            or (isinstance(self.white_balance, tuple) and len(self.white_balance) == 3)
        ):
            raise ValueError(f"white_balance must be None, 'gray_world' or 3 gains; received {self.white_balance!r}")
        object.__setattr__(self, "pattern", mosaic.check_pattern(self.pattern))
        if self.deconvolution_weight is not None:
            check_positive_number(self.deconvolution_weight, "deconvolution_weight")

    def __call__(self, raw, alpha, sigma, psf=None):
        raw = np.asarray(raw, np.float64)
        if raw.ndim == 3 and raw.shape[-1] == 1:
            raw = raw[..., 0]
        if raw.ndim != 2 or raw.shape[0] % 2 or raw.shape[1] % 2:
            raise ValueError(f"raw must be one mosaic [H, W] or [H, W, 1] with even H and W; received {raw.shape}")
        if self.denoise is not None:
            raw = denoise_raw(raw, alpha, sigma, self.denoise, self.pattern)
        image = demosaic(raw, self.demosaic, self.pattern)
        if self.deconvolve is not None and psf is not None:
            deconvolve = deconvolve_wiener if self.deconvolve == "wiener" else deconvolve_hqs
            weight = self.deconvolution_weight or DECONVOLUTION_WEIGHTS[self.deconvolve]
            image = deconvolve(image, psf, weight)
        if self.white_balance is not None:
            image = white_balance(image, self.white_balance)
        if self.gamma:
            image = srgb_gamma(image)
        return np.clip(image, 0.0, 1.0).astype(np.float32)

    def process_batch(self, raw, alpha, sigma, psf=None):
        """raw [B, H, W, 1], alpha and sigma [B] (arrays or tensors), psf None or [kh, kw(, 3)] -> [B, H, W, 3]."""
        raw, alpha, sigma = (np.asarray(v) for v in (raw, alpha, sigma))
        if raw.ndim != 4 or raw.shape[-1] != 1:
            raise ValueError(f"raw must be [B, H, W, 1]; received shape {raw.shape}")
        alpha = np.broadcast_to(alpha, raw.shape[:1])
        sigma = np.broadcast_to(sigma, raw.shape[:1])
        return np.stack([self(r, a, s, psf) for r, a, s in zip(raw, alpha, sigma)])


PIPELINES = {
    "bilinear": ConventionalIsp("bilinear"),
    "malvar": ConventionalIsp("malvar"),
    "menon": ConventionalIsp("menon"),
    "bilinear_nlm": ConventionalIsp("bilinear", "nlm"),
    "malvar_nlm": ConventionalIsp("malvar", "nlm"),
    "menon_nlm": ConventionalIsp("menon", "nlm"),
    "malvar_bm3d": ConventionalIsp("malvar", "bm3d"),
    "menon_bm3d": ConventionalIsp("menon", "bm3d"),
    "malvar_nlm_wiener": ConventionalIsp("malvar", "nlm", "wiener"),
    "malvar_nlm_hqs": ConventionalIsp("malvar", "nlm", "hqs"),
    "menon_bm3d_wiener": ConventionalIsp("menon", "bm3d", "wiener"),
    "menon_bm3d_hqs": ConventionalIsp("menon", "bm3d", "hqs"),
    "malvar_nlm_display": ConventionalIsp("malvar", "nlm", white_balance="gray_world", gamma=True),
}


def get_pipeline(name, pattern=mosaic.RELEASE_PATTERN):
    """The named conventional ISP (PIPELINES) for Bayer phase `pattern`; unknown names list the valid ones."""
    if name not in PIPELINES:
        raise ValueError(f"pipeline must be one of {', '.join(PIPELINES)}; received {name!r}")
    spec = PIPELINES[name]
    return dataclasses.replace(spec, pattern=pattern, name=name)


def isp_dataset(dataset, pipeline, psf=None, output_key="image"):
    """Map a dataset of (features, label) batches through a conventional ISP with tf.numpy_function.

    features need "raw" [B, H, W, 1], "alpha", "sigma" [B]; the result adds features[output_key] = the ISP's image
    [B, H, W, 3] float32 (the other features are kept). `psf` is the known PSF of the whole dataset (or None).
    """
    if not isinstance(pipeline, ConventionalIsp):
        raise ValueError(f"pipeline must be a ConventionalIsp (get_pipeline); received {type(pipeline).__name__}")

    def run(raw, alpha, sigma):
        return pipeline.process_batch(raw, alpha, sigma, psf)

    def fn(features, label):
        raw = features["raw"]
        image = tf.numpy_function(run, [raw, features["alpha"], features["sigma"]], tf.float32, stateful=False)
        image.set_shape(raw.shape[:-1].concatenate([3]))
        return {**features, output_key: image}, label

    return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
