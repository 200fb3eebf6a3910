"""Shrinkage fields: unrolled half-quadratic splitting (HQS) with learned filters and proximal operators
(Diamond et al. 2017 Sec. 5).

HQS for  min_x lambda/2 ||A x - y||^2 + g(C x)  alternates, with beta_1 < beta_2 < ... (Algorithm 1):
    z_k = prox_{lambda g / beta_k}(C x_{k-1})                                (a learned proximal operator)
    x_k = (lambda/beta_k A^T A + C^T C)^-1 (lambda/beta_k A^T y + C^T z_k)   (inverse filtering)
Conventions:
- C: F filters [fh, fw, F] (default 24 of 5x5), each applied to every colour channel by circular convolution
  (physics/fourier.py: kernel centre (fh // 2, fw // 2)); C x for x [B, H, W, C] is [B, H, W, C, F]. C, C^T and the
  x-update run in the Fourier domain, so C^T is exactly C's adjoint and the x-update exact.
- A: the identity (operator "identity", denoising) or a circular blur by a known PSF (operator "blur"; PSF [kh, kw],
  [kh, kw, C] or per image [B, kh, kw, C] / [B, kh, kw, 1], as in layers/projection.py).
- The x-update divides by lambda/beta |K|^2 + sum_i |C_i|^2 per frequency; at DC that is lambda/beta > 0 (|K(0)| = 1,
  zero-mean filters), so no epsilon is added. Frequencies below DENOMINATOR_FLOOR = 1e-6 (K and every C_i vanishing
  together) are set to 0, the minimum-norm solution, rather than dividing round-off by ~0.
- Colour channels: separate (merge_channels=False, each channel's responses through the proximal operator alone) or
  merged (True: responses summed over channels, the operator's output copied onto each; the x-update stays per
  channel). Seed 000 separates them for denoising and merges them for joint deblurring and denoising.
- Fourier arithmetic runs in float32 / complex64 whatever the input dtype; the proximal operators run in the
  layer's compute dtype (float16 under mixed precision).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from dirtypixels_tf.layers.projection import (
    as_complex,
    from_spectrum,
    gamma_tensor,
    psf_otf,
    spectrum,
    static_size,
)
from dirtypixels_tf.physics.fourier import psf_to_otf
from dirtypixels_tf.physics.validation import check_image, check_int, check_positive_number

SHRINKAGE_OPERATORS = ("identity", "blur")
PROXIMALS = ("cnn", "rbf")
DENOMINATOR_FLOOR = 1e-6


def dct_filter_bank(size=5, count=24):
    """The 2-D DCT-II basis of a size x size patch without its DC element, unit norm, by increasing frequency
    (u + v, then u): float32 [size, size, count]. All filters are zero-mean; 5x5 gives exactly 24."""
    size = check_int(size, "filter_size", 2)
    if check_int(count, "num_filters") > size * size - 1:
        raise ValueError(
            f"num_filters must be an integer in [1, {size * size - 1}] for {size}x{size} filters; received {count!r}"
        )
    n = np.arange(size)
    basis_1d = [np.cos(np.pi * (n + 0.5) * u / size) for u in range(size)]
    frequencies = sorted(
        ((u, v) for u in range(size) for v in range(size) if u + v > 0), key=lambda f: (f[0] + f[1], f[0])
    )
    filters = [np.outer(basis_1d[u], basis_1d[v]) for u, v in frequencies[:count]]
    filters = [f / np.linalg.norm(f) for f in filters]
    return np.stack(filters, axis=-1).astype(np.float32)


def _filters_otf(filters, height, width):
    """Filters [fh, fw, F] -> complex64 [F, H, W]."""
    filters = tf.cast(tf.convert_to_tensor(filters), tf.float32)
    if filters.shape.rank != 3:
        raise ValueError(f"filters must be [fh, fw, num_filters]; received shape {filters.shape}")
    if filters.shape[0] > height or filters.shape[1] > width:
        raise ValueError(
            f"filters of size {filters.shape[0]}x{filters.shape[1]} are larger than the image ({height}x{width})"
        )
    return psf_to_otf(filters, height, width, filters.shape[-1])


def filter_responses(x, filters):
    """C x: images [B, H, W, C] -> responses [B, H, W, C, F] (circular convolution with each filter)."""
    x = check_image(x, "x")
    height, width = static_size(x, "x")
    otf = _filters_otf(filters, height, width)
    responses = tf.math.real(tf.signal.ifft2d(spectrum(x)[:, :, tf.newaxis] * otf))  # [B, C, F, H, W]
    return tf.cast(tf.transpose(responses, [0, 3, 4, 1, 2]), x.dtype)


def _responses_spectrum(z, height, width, channels, filters_count):
    """Responses [B, H, W, C, F] -> complex64 [B, C, F, H, W], checking the shape."""
    z = tf.convert_to_tensor(z)
    if z.shape.rank != 5 or tuple(z.shape[1:]) != (height, width, channels, filters_count):
        raise ValueError(
            f"z must be [batch, {height}, {width}, {channels}, {filters_count}] (responses of every filter on every "
            f"channel); received shape {z.shape}"
        )
    z = tf.transpose(tf.cast(z, tf.float32), [0, 3, 4, 1, 2])
    return tf.signal.fft2d(tf.complex(z, tf.zeros_like(z)))


def filter_adjoint(z, filters):
    """C^T z: responses [B, H, W, C, F] -> images [B, H, W, C] (sum over filters of the correlations)."""
    z = tf.convert_to_tensor(z)
    if z.shape.rank != 5:
        raise ValueError(f"z must be [batch, height, width, channels, num_filters]; received shape {z.shape}")
    height, width = static_size(z, "z")
    otf = _filters_otf(filters, height, width)
    spectra = _responses_spectrum(z, height, width, z.shape[3], otf.shape[0])
    return from_spectrum(tf.reduce_sum(tf.math.conj(otf) * spectra, axis=2), z.dtype)


def hqs_x_update(y, z, filters, ratio, psf=None):
    """x = (ratio A^T A + C^T C)^-1 (ratio A^T y + C^T z) by inverse filtering (circular boundary).

    y [B, H, W, C]; z [B, H, W, C, F] responses; filters [fh, fw, F]; ratio = lambda / beta > 0, a scalar or [B];
    psf None for A = I, else the blur's PSF (shared or per image). Returns x [B, H, W, C] in y's dtype.
    """
    y = check_image(y, "y")
    height, width = static_size(y, "y")
    channels = y.shape[-1]
    filters_otf = _filters_otf(filters, height, width)  # [F, H, W]
    z_spectra = _responses_spectrum(z, height, width, channels, filters_otf.shape[0])  # [B, C, F, H, W]
    r = gamma_tensor(ratio, "ratio")
    prior_numerator = tf.reduce_sum(tf.math.conj(filters_otf) * z_spectra, axis=2)
    prior_denominator = tf.reduce_sum(tf.math.real(filters_otf * tf.math.conj(filters_otf)), axis=0)
    y_spectra = spectrum(y)
    if psf is None:
        data_numerator, data_denominator = y_spectra, tf.ones([], tf.float32)
    else:
        otf = psf_otf(psf, height, width, channels)
        data_numerator = tf.math.conj(otf) * y_spectra
        data_denominator = tf.math.real(otf * tf.math.conj(otf))
    numerator = as_complex(r) * data_numerator + prior_numerator
    denominator = r * data_denominator + prior_denominator
    solvable = denominator > DENOMINATOR_FLOOR
    inverse = tf.where(solvable, 1.0 / tf.where(solvable, denominator, 1.0), 0.0)
    return from_spectrum(numerator * as_complex(inverse), y.dtype)


def rbf_shrinkage(responses, weights, centers, width):
    """Per-filter 1-D functions f_i(t) = sum_j weights[i, j] exp(-(t - centers[j])^2 / (2 width^2)).

    responses [..., F], weights [F, M], centers [M] -> [..., F].
    """
    distances = responses[..., tf.newaxis] - centers
    basis = tf.exp(-tf.square(distances) / (2.0 * width**2))
    return tf.reduce_sum(basis * weights, axis=-1)


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class RbfShrinkage(keras.layers.Layer):
    """Shrinkage-fields proximal operator (Schmidt and Roth 2014): one learned 1-D function per response channel,
    a weighted sum of Gaussian RBFs on fixed, equally spaced centres.

    [N, H, W, F] -> [N, H, W, F]. Centres: `num_centers` points evenly spaced in [-value_range, value_range];
    common width = the spacing. Defaults (63 centres on +-1.2) are Schmidt and Roth's 63 RBFs on +-310 for
    0..255 images, rescaled to [0, 1] images. Weights [F, num_centers] start at centre / sqrt(2 pi), which makes
    every function the identity (no shrinkage) to about 1e-6 inside [-value_range + 3 width, value_range - 3 width].
    Responses far outside the centres' range map to about 0: choose value_range to cover the responses.
    """

    def __init__(self, num_centers=63, value_range=1.2, **kwargs):
        super().__init__(**kwargs)
        self.num_centers = check_int(num_centers, "num_centers")
        if num_centers < 2:
            raise ValueError(f"num_centers must be >= 2; received {num_centers!r}")
        self.value_range = check_positive_number(value_range, "value_range")
        self.centers = np.linspace(-self.value_range, self.value_range, self.num_centers).astype(np.float32)
        self.width = 2.0 * self.value_range / (self.num_centers - 1)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"RbfShrinkage needs a known number of channels; received input shape {input_shape}")
        initial = np.tile(self.centers / math.sqrt(2.0 * math.pi), (channels, 1))
        self.rbf_weights = self.add_weight(
            name="rbf_weights",
            shape=(channels, self.num_centers),
            initializer=keras.initializers.Constant(initial),
        )

    def call(self, inputs):
        centers = tf.constant(self.centers, dtype=self.compute_dtype)
        return rbf_shrinkage(inputs, self.rbf_weights, centers, tf.constant(self.width, self.compute_dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(num_centers=self.num_centers, value_range=self.value_range)
        return config


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class CnnProximal(keras.layers.Layer):
    """CNN proximal operator of Diamond et al. 2017 Sec. 5.3: `num_layers` 1x1 convolutions, stride 1, ReLU between
    them.

    [N, H, W, F] -> [N, H, W, F]: the hidden layers have `hidden_units` channels (default 24) and ReLU; the last
    layer maps back to F channels with no activation (responses of zero-mean filters are signed). Separable and
    uniform across pixels, not across channels.
    """

    def __init__(self, hidden_units=24, num_layers=3, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = check_int(hidden_units, "hidden_units")
        self.num_layers = check_int(num_layers, "num_layers")
        self.convolutions = []

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"CnnProximal needs a known number of channels; received input shape {input_shape}")
        shape = tuple(input_shape)
        for index in range(self.num_layers):
            last = index == self.num_layers - 1
            convolution = keras.layers.Conv2D(
                channels if last else self.hidden_units,
                1,
                activation=None if last else "relu",
                name=f"conv_{index}",
                dtype=self.dtype_policy,
            )
            convolution.build(shape)
            shape = shape[:-1] + (convolution.filters,)
            self.convolutions.append(convolution)

    def call(self, inputs):
        x = inputs
        for convolution in self.convolutions:
            x = convolution(x)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(hidden_units=self.hidden_units, num_layers=self.num_layers)
        return config


_PROXIMAL_CLASSES = {"cnn": CnnProximal, "rbf": RbfShrinkage}


def _check_choice(value, choices, name):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; received {value!r}")
    return value


def _check_psf_argument(psf, operator):
    if psf is None:
        return None
    if operator != "blur":
        raise ValueError(f"psf is only used with operator 'blur'; received a psf with operator {operator!r}")
    psf = np.asarray(psf, np.float32)
    if psf.ndim not in (2, 3) or not np.all(np.isfinite(psf)):
        raise ValueError(f"psf must be a finite [kh, kw] or [kh, kw, C] array; received shape {psf.shape}")
    return psf


def _resolve_psf(fixed, given, operator):
    if operator == "identity":
        if given is not None:
            raise ValueError("psf must not be given with operator 'identity' (A = I); received a psf")
        return None
    if fixed is not None and given is not None:
        raise ValueError(
            f"psf was fixed at construction (shape {fixed.shape}); received another psf of shape {given.shape}"
        )
    if fixed is None and given is None:
        raise ValueError("operator 'blur' needs a psf (at construction or call); received none")
    return fixed if given is None else given


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class ShrinkageFieldsStage(keras.layers.Layer):
    """One HQS stage: z = prox(C x), then x = (lambda/beta A^T A + C^T C)^-1 (lambda/beta A^T y + C^T z).

    Call: `x_new = stage(x, y)` or `stage(x, y, psf)`; x, y [B, H, W, C]. Arguments:
    - num_filters, filter_size: the bank C, initialised with the zero-mean DCT basis (`dct_filter_bank`), learned.
    - proximal: "cnn" (CnnProximal) or "rbf" (RbfShrinkage); proximal_options: keyword arguments for it.
    - merge_channels: sum the colour channels' responses before the proximal operator (module docstring).
    - operator: "identity" (A = I) or "blur" (A = k*, circular); psf: a fixed PSF, or None to pass one per call.
    - lambda_init, beta_init: positive; stored as log(lambda), log(beta) (float32, never autocast). Only the ratio
      lambda / beta enters the stage (the learned proximal operator absorbs the scale of lambda g / beta); both
      are kept so the weights read as the paper's lambda and beta_k.
    """

    def __init__(
        self,
        num_filters=24,
        filter_size=5,
        proximal="cnn",
        proximal_options=None,
        merge_channels=False,
        operator="identity",
        psf=None,
        lambda_init=1.0,
        beta_init=1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.initial_filters = dct_filter_bank(filter_size, num_filters)
        self.num_filters = num_filters
        self.filter_size = filter_size
        self.proximal = _check_choice(proximal, PROXIMALS, "proximal")
        if proximal_options is not None and not isinstance(proximal_options, dict):
            raise ValueError(f"proximal_options must be a dict of keyword arguments; received {proximal_options!r}")
        self.proximal_options = dict(proximal_options or {})
        self.merge_channels = bool(merge_channels)
        self.operator = _check_choice(operator, SHRINKAGE_OPERATORS, "operator")
        self.psf = _check_psf_argument(psf, operator)
        self.lambda_init = check_positive_number(lambda_init, "lambda_init")
        self.beta_init = check_positive_number(beta_init, "beta_init")
        self.proximal_layer = _PROXIMAL_CLASSES[proximal](
            name=f"{proximal}_proximal", dtype=self.dtype_policy, **self.proximal_options
        )

    def build(self, x_shape):
        self.filters = self.add_weight(
            name="filters",
            shape=self.initial_filters.shape,
            initializer=keras.initializers.Constant(self.initial_filters),
            dtype="float32",
            autocast=False,
        )
        for name, value in (("log_lambda", self.lambda_init), ("log_beta", self.beta_init)):
            weight = self.add_weight(
                name=name,
                shape=(),
                initializer=keras.initializers.Constant(math.log(value)),
                dtype="float32",
                autocast=False,
            )
            setattr(self, name, weight)
        self.proximal_layer.build((None, None, None, self.num_filters))

    @property
    def ratio(self):
        """lambda / beta."""
        return tf.exp(tf.convert_to_tensor(self.log_lambda) - tf.convert_to_tensor(self.log_beta))

    def _proximal(self, responses):
        """responses float32 [B, H, W, C, F] -> z float32 [B, H, W, C, F]."""
        shape = tf.shape(responses)
        if self.merge_channels:
            merged = tf.reduce_sum(responses, axis=3)
            z = tf.cast(self.proximal_layer(tf.cast(merged, self.compute_dtype)), tf.float32)
            return tf.broadcast_to(z[:, :, :, tf.newaxis, :], shape)
        per_channel = tf.transpose(responses, [0, 3, 1, 2, 4])  # [B, C, H, W, F]
        flat = tf.reshape(per_channel, tf.concat([[-1], tf.shape(per_channel)[2:]], axis=0))
        z = tf.cast(self.proximal_layer(tf.cast(flat, self.compute_dtype)), tf.float32)
        z = tf.reshape(z, tf.shape(per_channel))
        return tf.transpose(z, [0, 2, 3, 1, 4])

    def call(self, x, y, psf=None):
        psf = _resolve_psf(self.psf, psf, self.operator)
        x = check_image(x, "x")
        y = check_image(y, "y", channels=x.shape[-1])
        if x.shape[1:3] != y.shape[1:3]:
            raise ValueError(f"x and y must have the same height and width; received {x.shape} and {y.shape}")
        responses = filter_responses(tf.cast(x, tf.float32), self.filters)
        z = self._proximal(responses)
        x_new = hqs_x_update(tf.cast(y, tf.float32), z, self.filters, self.ratio, psf)
        return tf.cast(x_new, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_filters=self.num_filters,
            filter_size=self.filter_size,
            proximal=self.proximal,
            proximal_options=dict(self.proximal_options),
            merge_channels=self.merge_channels,
            operator=self.operator,
            psf=None if self.psf is None else self.psf.tolist(),
            lambda_init=self.lambda_init,
            beta_init=self.beta_init,
        )
        return config


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class ShrinkageFields(keras.layers.Layer):
    """Unrolled HQS with `num_stages` ShrinkageFieldsStage layers, each with its own filters, proximal operator,
    lambda and beta: `x = layer(y)` or `layer(y, psf)`, y [B, H, W, C] -> x [B, H, W, C], starting from x_0 = y.

    beta_init: a number (stage k starts at beta_init * 2^k, the increasing beta_1 < beta_2 < ... of HQS) or a list
    of num_stages positive numbers. The other arguments are those of ShrinkageFieldsStage and apply to every
    stage. Seed 000 uses one stage, 24 filters of 5x5 and the CNN proximal operator. Stages are named stage_0, ...
    """

    def __init__(
        self,
        num_stages=1,
        num_filters=24,
        filter_size=5,
        proximal="cnn",
        proximal_options=None,
        merge_channels=False,
        operator="identity",
        psf=None,
        lambda_init=1.0,
        beta_init=1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_stages = check_int(num_stages, "num_stages")
        if isinstance(beta_init, (list, tuple)):
            if len(beta_init) != num_stages:
                raise ValueError(f"beta_init must have one value per stage ({num_stages}); received {beta_init!r}")
            betas = [check_positive_number(b, "beta_init") for b in beta_init]
            self.beta_init = list(betas)
        else:
            self.beta_init = check_positive_number(beta_init, "beta_init")
            betas = [self.beta_init * 2.0**k for k in range(num_stages)]
        self.num_filters = num_filters
        self.filter_size = filter_size
        self.proximal = proximal
        self.proximal_options = proximal_options
        self.merge_channels = merge_channels
        self.operator = _check_choice(operator, SHRINKAGE_OPERATORS, "operator")
        self.psf = _check_psf_argument(psf, operator)
        self.lambda_init = check_positive_number(lambda_init, "lambda_init")
        self.stages = [
            ShrinkageFieldsStage(
                num_filters=num_filters,
                filter_size=filter_size,
                proximal=proximal,
                proximal_options=proximal_options,
                merge_channels=merge_channels,
                operator=operator,
                lambda_init=lambda_init,
                beta_init=beta,
                name=f"stage_{k}",
                dtype=self.dtype_policy,
            )
            for k, beta in enumerate(betas)
        ]

    def build(self, y_shape):
        for stage in self.stages:
            stage.build(y_shape)

    def call(self, y, psf=None):
        psf = _resolve_psf(self.psf, psf, self.operator)
        x = y
        for stage in self.stages:
            x = stage(x, y) if psf is None else stage(x, y, tf.convert_to_tensor(psf))
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            num_stages=self.num_stages,
            num_filters=self.num_filters,
            filter_size=self.filter_size,
            proximal=self.proximal,
            proximal_options=None if self.proximal_options is None else dict(self.proximal_options),
            merge_channels=self.merge_channels,
            operator=self.operator,
            psf=None if self.psf is None else self.psf.tolist(),
            lambda_init=self.lambda_init,
            beta_init=self.beta_init,
        )
        return config
