"""Soft projection, the data step of the Anscombe network (Diamond et al. 2021 Sec. 4.1, Algorithm 1 line 5).

    Pi(v, gamma, A, y) = argmin_z 1/2 ||y - A z||^2 + gamma/2 ||v - z||^2 = (A^T A + gamma I)^-1 (A^T y + gamma v)

for three image formation operators A:
- "mosaic": A = S, the Bayer subsampling of physics/mosaic.py; v colour [B, H, W, 3], y RAW [B, H, W, 1]. Closed
  form z = (S^T y + gamma v) / (M + gamma), M the per-channel Bayer masks; the release's
  x = (lambda M y + beta_k v) / (lambda M + beta_k) is the same step with gamma = beta_k / lambda.
- "blur": A = k*, circular convolution with a PSF (physics/fourier.py conventions: kernel centre (kh // 2, kw // 2)),
  v and y [B, H, W, C]; exact in the Fourier domain, z = F^-1[(conj(K) Y + gamma V) / (|K|^2 + gamma)], because the
  boundary is circular (pad or taper real photographs' borders if wrap-around matters).
- "mosaic_blur": A = S k*, v colour, y RAW. Conjugate gradient on the normal equations, warm-started at z = v and
  unrolled for DEFAULT_CG_ITERATIONS = 30 (differentiable, XLA-compilable); an image stops updating once its relative
  residual ||r|| / ||b|| is <= the tolerance (DEFAULT_CG_TOLERANCE = 1e-5, at least MIN_CG_TOLERANCE = 1e-7, as
  float32 CG run long past convergence drifts). Smaller gamma needs more iterations (docs/numerics.md).

PSFs: [kh, kw] or [kh, kw, C] shared by the batch, or [B, kh, kw, C] / [B, kh, kw, 1] one per image; kh <= H,
kw <= W. gamma: a positive scalar or [B]. Height and width must be static. Fourier and CG arithmetic runs in float32
/ complex64 whatever the input dtype (float16 under mixed precision); the result is cast back to v's dtype.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from dirtypixels_tf.physics.fourier import psf_to_otf
from dirtypixels_tf.physics.mosaic import RELEASE_PATTERN, bayer_masks, check_pattern
from dirtypixels_tf.physics.validation import check_image, check_int, check_positive_number

OPERATORS = ("mosaic", "blur", "mosaic_blur")
DEFAULT_CG_ITERATIONS = 30
DEFAULT_CG_TOLERANCE = 1e-5
MIN_CG_TOLERANCE = 1e-7


def check_operator(operator):
    if operator not in OPERATORS:
        raise ValueError(f"operator must be one of {', '.join(OPERATORS)}; received {operator!r}")
    return operator


PARAMETERIZATIONS = ("beta", "log_gamma")


def release_gamma_inits(num_iterations, lambda_init=1.0, beta_init=2.0):
    """Initial gamma per iteration of the release's Anscombe network: gamma_k = beta_init * 2^k / lambda_init.

    The release learns one lambda (init 1.0) and one beta_k per iteration (init 2, 4, 8, ...); only the ratio
    gamma_k = beta_k / lambda enters the data step (same function at initialization whichever is learned).
    """
    num_iterations = check_int(num_iterations, "num_iterations")
    lambda_init = check_positive_number(lambda_init, "lambda_init")
    beta_init = check_positive_number(beta_init, "beta_init")
    return [beta_init * 2.0**k / lambda_init for k in range(num_iterations)]


def static_size(x, name):
    """Static (height, width) of an NHWC tensor, or ValueError naming `name`."""
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        raise ValueError(f"{name} must have a static height and width; received shape {x.shape}")
    return height, width


def check_same_size(a, b, name_a, name_b):
    if a.shape[1:3] != b.shape[1:3]:
        raise ValueError(f"{name_a} and {name_b} must have the same height and width; received {a.shape} and {b.shape}")


def check_even(height, width, name):
    if height % 2 or width % 2:
        raise ValueError(f"{name} must have even height and width for a Bayer mosaic; received {height}x{width}")


def psf_otf(psf, height, width, channels):
    """OTF of a shared PSF ([kh, kw] or [kh, kw, C]: complex64 [C, H, W]) or of per-image PSFs
    ([B, kh, kw, C] or [B, kh, kw, 1]: complex64 [B, C, H, W]), circular boundary, centre (kh // 2, kw // 2).

    The per-image case applies the construction of physics.fourier.psf_to_otf to each image (the tests check it).
    """
    psf = tf.cast(tf.convert_to_tensor(psf), tf.float32)
    if psf.shape.rank in (2, 3):
        return psf_to_otf(psf, height, width, channels)
    if psf.shape.rank != 4 or psf.shape[-1] not in (1, channels):
        raise ValueError(
            f"psf must be [kh, kw], [kh, kw, {channels}], [batch, kh, kw, {channels}] or [batch, kh, kw, 1]; "
            f"received shape {psf.shape}"
        )
    kh, kw = psf.shape[1], psf.shape[2]
    if kh > height or kw > width:
        raise ValueError(f"psf of size {kh}x{kw} is larger than the image ({height}x{width})")
    kernels = tf.transpose(psf, [0, 3, 1, 2])
    if psf.shape[-1] != channels:
        kernels = tf.tile(kernels, [1, channels, 1, 1])
    padded = tf.pad(kernels, [[0, 0], [0, 0], [0, height - kh], [0, width - kw]])
    centred = tf.roll(padded, shift=[-(kh // 2), -(kw // 2)], axis=[2, 3])
    return tf.signal.fft2d(tf.complex(centred, tf.zeros_like(centred)))


def gamma_tensor(gamma, name="gamma"):
    """gamma as float32, broadcastable against [B, ...4 axes]: a scalar stays a scalar, [B] becomes [B, 1, 1, 1].

    A Python number must be > 0 (checked here); a tensor is trusted (the layers keep theirs positive)."""
    if isinstance(gamma, (int, float)):
        check_positive_number(gamma, name)
    gamma = tf.cast(tf.convert_to_tensor(gamma), tf.float32)
    if gamma.shape.rank == 1:
        return gamma[:, tf.newaxis, tf.newaxis, tf.newaxis]
    if gamma.shape.rank != 0:
        raise ValueError(f"{name} must be a scalar or a [batch] vector; received shape {gamma.shape}")
    return gamma


def spectrum(images):
    """float NHWC -> complex64 spectra [B, C, H, W]."""
    x = tf.transpose(tf.cast(images, tf.float32), [0, 3, 1, 2])
    return tf.signal.fft2d(tf.complex(x, tf.zeros_like(x)))


def from_spectrum(spectra, dtype):
    """complex [B, C, H, W] -> real NHWC of `dtype`."""
    return tf.cast(tf.transpose(tf.math.real(tf.signal.ifft2d(spectra)), [0, 2, 3, 1]), dtype)


def as_complex(real):
    return tf.complex(real, tf.zeros_like(real))


def soft_projection_mosaic(v, y, gamma, pattern=RELEASE_PATTERN):
    """Data step for A = S: z = (S^T y + gamma v) / (M + gamma). v [B, H, W, 3], y [B, H, W, 1] -> z [B, H, W, 3].

    As gamma -> 0, z keeps the measured colour at every pixel (z_c = y where M_c = 1) and v elsewhere.
    """
    v = check_image(v, "v", channels=3)
    y = check_image(y, "y", channels=1)
    check_same_size(v, y, "v", "y")
    height, width = static_size(v, "v")
    check_even(height, width, "v")
    masks = bayer_masks(height, width, pattern)
    g = gamma_tensor(gamma)
    v32, y32 = tf.cast(v, tf.float32), tf.cast(y, tf.float32)
    return tf.cast((y32 * masks + g * v32) / (masks + g), v.dtype)


def soft_projection_blur(v, y, gamma, psf):
    """Data step for A = k* (circular): z = F^-1[(conj(K) Y + gamma V) / (|K|^2 + gamma)]. v, y [B, H, W, C]."""
    v = check_image(v, "v")
    y = check_image(y, "y", channels=v.shape[-1])
    check_same_size(v, y, "v", "y")
    height, width = static_size(v, "v")
    otf = psf_otf(psf, height, width, v.shape[-1])
    g = gamma_tensor(gamma)
    numerator = tf.math.conj(otf) * spectrum(y) + as_complex(g) * spectrum(v)
    denominator = tf.math.real(otf * tf.math.conj(otf)) + g
    return from_spectrum(numerator / as_complex(denominator), v.dtype)


def _batch_dot(a, b):
    """Per-image inner product of [B, C, H, W] tensors -> [B]."""
    return tf.reduce_sum(a * b, axis=[1, 2, 3])


def conjugate_gradient(operator, rhs, initial, iterations, tolerance):
    """Unrolled CG for operator(z) = rhs with a symmetric positive definite, per-image operator.

    Tensors are [B, ...] and every image runs its own CG (inner products per image). An image freezes once
    ||r||^2 <= tolerance^2 ||rhs||^2 (r the recursively updated residual); the loop always runs `iterations`
    steps, so the graph is static (XLA) and differentiable.
    """
    z = initial
    r = rhs - operator(z)
    p = r
    rr = _batch_dot(r, r)
    threshold = tolerance**2 * _batch_dot(rhs, rhs)
    for _ in range(iterations):
        active = rr > threshold
        operator_p = operator(p)
        step = tf.where(active, tf.math.divide_no_nan(rr, _batch_dot(p, operator_p)), 0.0)
        step = step[:, tf.newaxis, tf.newaxis, tf.newaxis]
        z = z + step * p
        r = r - step * operator_p
        rr_new = _batch_dot(r, r)
        ratio = tf.math.divide_no_nan(rr_new, rr)[:, tf.newaxis, tf.newaxis, tf.newaxis]
        p = tf.where(active[:, tf.newaxis, tf.newaxis, tf.newaxis], r + ratio * p, p)
        rr = rr_new
    return z


def check_cg_settings(iterations, tolerance):
    """Validate CG settings: iterations an integer >= 1, tolerance >= MIN_CG_TOLERANCE (float32 cannot certify less;
    an image that never reaches its tolerance keeps iterating past convergence, where float32 CG drifts)."""
    iterations = check_int(iterations, "cg_iterations")
    tolerance = check_positive_number(tolerance, "cg_tolerance")
    if tolerance < MIN_CG_TOLERANCE:
        raise ValueError(f"cg_tolerance must be >= {MIN_CG_TOLERANCE} (float32 arithmetic); received {tolerance!r}")
    return iterations, tolerance


def soft_projection_mosaic_blur(
    v,
    y,
    gamma,
    psf,
    pattern=RELEASE_PATTERN,
    iterations=DEFAULT_CG_ITERATIONS,
    tolerance=DEFAULT_CG_TOLERANCE,
):
    """Data step for A = S k*, by CG on (A^T A + gamma I) z = A^T y + gamma v from z = v (module docstring).

    v [B, H, W, 3] colour, y [B, H, W, 1] RAW; A^T A z = K^T (M (K z)) since S^T S multiplies by the masks M.
    """
    v = check_image(v, "v", channels=3)
    y = check_image(y, "y", channels=1)
    check_same_size(v, y, "v", "y")
    height, width = static_size(v, "v")
    check_even(height, width, "v")
    iterations, tolerance = check_cg_settings(iterations, tolerance)
    otf = psf_otf(psf, height, width, 3)
    masks = tf.transpose(bayer_masks(height, width, pattern), [2, 0, 1])  # [3, H, W]
    g = gamma_tensor(gamma)

    def blur(x, kernel):
        return tf.math.real(tf.signal.ifft2d(kernel * tf.signal.fft2d(as_complex(x))))

    def normal_operator(x):
        return blur(masks * blur(x, otf), tf.math.conj(otf)) + g * x

    v_cf = tf.transpose(tf.cast(v, tf.float32), [0, 3, 1, 2])
    y_cf = tf.transpose(tf.cast(y, tf.float32), [0, 3, 1, 2])
    rhs = blur(masks * y_cf, tf.math.conj(otf)) + g * v_cf
    z = conjugate_gradient(normal_operator, rhs, v_cf, iterations, tolerance)
    return tf.cast(tf.transpose(z, [0, 2, 3, 1]), v.dtype)


def _psf_to_config(psf):
    return None if psf is None else np.asarray(psf, np.float32).tolist()


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class SoftProjection(keras.layers.Layer):
    """The soft-projection data step as a layer: `z = layer(v, y)` or `layer(v, y, psf)` (per-image PSFs).

    Arguments:
    - operator: "mosaic" (A = S), "blur" (A = k*) or "mosaic_blur" (A = S k*); see the module docstring.
    - pattern: Bayer phase for the mosaic operators (default "BGGR", the release's); not read by "blur".
    - gamma_init: initial gamma > 0. One SoftProjection per unrolled iteration, with gamma_init = beta_k / lambda
      of the release (`release_gamma_inits` gives 2, 4, 8, ...), reproduces Algorithm 1's data steps. The default
      2.0 is the release's first iteration (beta_1 = 2, lambda = 1).
    - parameterization: what is learned. "beta" (the release): weight `beta`, initialized to gamma_init, and the
      call takes the network's shared lambda (`layer(v, y, lam=lam)`, the release's one learned `lambda`, init
      1.0), gamma = beta / lambda; both are plain float32 scalars as in the release (not constrained positive).
      "log_gamma": weight `log_gamma` = log(gamma), so gamma stays positive and its updates are relative; the call
      takes no lambda. Both give the same data step at initialization; training moves them differently.
    - trainable_gamma: learn the weight (beta or log_gamma). Weights are float32 and never autocast.
    - psf: a fixed PSF ([kh, kw] or [kh, kw, C]) for the blur operators; leave None to pass per-image PSFs
      [B, kh, kw, C] at call time. Exactly one of the two is required for "blur" / "mosaic_blur".
    - cg_iterations, cg_tolerance: CG settings, only for "mosaic_blur" (None: DEFAULT_CG_ITERATIONS = 30,
      DEFAULT_CG_TOLERANCE = 1e-5, relative residual).
    """

    def __init__(
        self,
        operator="mosaic",
        pattern=RELEASE_PATTERN,
        gamma_init=2.0,
        trainable_gamma=True,
        psf=None,
        cg_iterations=None,
        cg_tolerance=None,
        parameterization="log_gamma",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.operator = check_operator(operator)
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}; received {parameterization!r}")
        self.parameterization = parameterization
        self.pattern = check_pattern(pattern)
        self.gamma_init = check_positive_number(gamma_init, "gamma_init")
        self.trainable_gamma = bool(trainable_gamma)
        if psf is not None:
            if operator == "mosaic":
                raise ValueError(f"psf is only used by the blur operators; received a psf with operator {operator!r}")
            psf = np.asarray(psf, np.float32)
            if psf.ndim not in (2, 3) or not np.all(np.isfinite(psf)):
                raise ValueError(f"psf must be a finite [kh, kw] or [kh, kw, C] array; received shape {psf.shape}")
        self.psf = psf
        if operator != "mosaic_blur" and (cg_iterations is not None or cg_tolerance is not None):
            raise ValueError(
                f"cg_iterations and cg_tolerance are only used by operator 'mosaic_blur'; received operator "
                f"{operator!r} with cg_iterations={cg_iterations!r}, cg_tolerance={cg_tolerance!r}"
            )
        self.cg_iterations = cg_iterations
        self.cg_tolerance = cg_tolerance
        if operator == "mosaic_blur":
            check_cg_settings(
                DEFAULT_CG_ITERATIONS if cg_iterations is None else cg_iterations,
                DEFAULT_CG_TOLERANCE if cg_tolerance is None else cg_tolerance,
            )

    def build(self, v_shape, y_shape=None, psf_shape=None):
        beta = self.parameterization == "beta"
        weight = self.add_weight(
            name=self.parameterization,
            shape=(),
            initializer=keras.initializers.Constant(self.gamma_init if beta else math.log(self.gamma_init)),
            trainable=self.trainable_gamma,
            dtype="float32",
            autocast=False,
        )
        setattr(self, self.parameterization, weight)  # self.beta or self.log_gamma

    def gamma_value(self, lam=None):
        """gamma: beta / lam ("beta", lam required) or exp(log_gamma) ("log_gamma", lam must be None)."""
        weight = tf.convert_to_tensor(getattr(self, self.parameterization))
        if self.parameterization == "log_gamma":
            if lam is not None:
                raise ValueError("lam is only taken by a SoftProjection with parameterization 'beta'; received one")
            return tf.exp(weight)
        if lam is None:
            raise ValueError(
                "a SoftProjection with parameterization 'beta' needs the shared lambda: call(v, y, lam=...)"
            )
        return weight / tf.cast(lam, tf.float32)

    @property
    def gamma(self):
        """gamma of a "log_gamma" layer (a "beta" layer's gamma depends on the network's lambda: gamma_value)."""
        return self.gamma_value()

    def _resolve_psf(self, psf):
        if self.operator == "mosaic":
            if psf is not None:
                raise ValueError("psf must not be given to a SoftProjection with operator 'mosaic'; received a psf")
            return None
        if psf is not None and self.psf is not None:
            raise ValueError(
                f"psf was fixed at construction (shape {self.psf.shape}); received another psf of shape {psf.shape}"
            )
        if psf is None and self.psf is None:
            raise ValueError(f"operator {self.operator!r} needs a psf (at construction or call); received none")
        return self.psf if psf is None else psf

    def call(self, v, y, psf=None, lam=None):
        psf = self._resolve_psf(psf)
        gamma = self.gamma_value(lam)
        if self.operator == "mosaic":
            z = soft_projection_mosaic(v, y, gamma, self.pattern)
        elif self.operator == "blur":
            z = soft_projection_blur(v, y, gamma, psf)
        else:
            z = soft_projection_mosaic_blur(
                v,
                y,
                gamma,
                psf,
                self.pattern,
                DEFAULT_CG_ITERATIONS if self.cg_iterations is None else self.cg_iterations,
                DEFAULT_CG_TOLERANCE if self.cg_tolerance is None else self.cg_tolerance,
            )
        return tf.cast(z, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            operator=self.operator,
            pattern=self.pattern,
            gamma_init=self.gamma_init,
            trainable_gamma=self.trainable_gamma,
            psf=_psf_to_config(self.psf),
            cg_iterations=self.cg_iterations,
            cg_tolerance=self.cg_tolerance,
            parameterization=self.parameterization,
        )
        return config
