"""Learned priors: the residual U-Net of the Anscombe network, the modules of Liu et al., and the NIDF U-Net.

Conventions decided here:
- Inputs are NHWC float images; padding is "same" for every convolution, so spatial sizes only change at the
  2x2 poolings (stride 2, no padding) and the stride-2 transposed convolutions, which undo each other exactly
  when the size is divisible by the number of halvings (checked, ValueError otherwise).
- Batch normalization follows Keras' training flag: call with training=True while training, False (the default)
  at inference, where each image's output does not depend on the rest of the batch.
- Layers follow the global dtype policy (mixed_float16 works: batch normalization keeps float32 statistics).

ResidualUNetPrior's docstring states its architecture (the release's configuration, Diamond et al. 2021 Sec. 4.2).
"""

import keras
import tensorflow as tf

from dirtypixels_tf.physics.validation import check_bool, check_image, check_int

FIRST_CONV_CHOICES = ("dilated", "strided", "plain")
RELEASE_BN_MOMENTUM = 0.95  # slim batch_norm decay in the release
RELEASE_BN_EPSILON = 1e-4
_FUSED_BATCH_NORM_DTYPES = (tf.float16, tf.bfloat16, tf.float32)


def _check_divisible(x, factor, name):
    """Static check that H and W are divisible by `factor` (sizes unknown until run time are not checked)."""
    for axis, label in ((1, "height"), (2, "width")):
        size = x.shape[axis]
        if size is not None and size % factor:
            raise ValueError(
                f"{name} {label} must be divisible by {factor} (one factor 2 per down-sampling); "
                f"received shape {x.shape}"
            )


def upsample_2x2(layer, x):
    """A 2x2 stride-2 Conv2DTranspose `layer` applied to x as a 1x1 convolution to 4 x filters channels then
    depth-to-space: the same function (the 2x2 blocks of its output do not overlap) without the scatter of
    Conv2DBackpropInput, which is slow on CPU. Same multiply-adds. Inference only: training keeps the layer's own
    op, so training runs are bit for bit those of the layers unfused (the gradients differ in round-off)."""
    kernel = layer.kernel  # [2, 2, filters, in_channels]
    filters, in_channels = kernel.shape[2], kernel.shape[3]
    matrix = tf.reshape(tf.transpose(kernel, [3, 0, 1, 2]), [1, 1, in_channels, 4 * filters])
    x = tf.nn.conv2d(x, tf.cast(matrix, x.dtype), 1, "VALID")
    x = tf.nn.depth_to_space(x, 2)
    return tf.nn.bias_add(x, tf.cast(layer.bias, x.dtype)) if layer.use_bias else x


class _ConvNormAct(keras.layers.Layer):
    """Conv2D then optional batch norm (offset only, or offset and scale) then optional ReLU: one named unit."""

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        dilation_rate=1,
        batch_norm=True,
        bn_scale=True,
        relu=True,
        bn_momentum=0.99,
        bn_epsilon=1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            dilation_rate=dilation_rate,
            padding="same",
            use_bias=not batch_norm,
            kernel_initializer="he_normal",
            dtype=self.dtype_policy,
            name="conv",
        )
        self.bn = (
            keras.layers.BatchNormalization(
                scale=bn_scale, momentum=bn_momentum, epsilon=bn_epsilon, dtype=self.dtype_policy, name="bn"
            )
            if batch_norm
            else None
        )
        self.relu = relu
        self.filters = filters

    def build(self, input_shape):
        self.conv.build(input_shape)
        if self.bn is not None:
            self.bn.build((*input_shape[:-1], self.filters))

    def call(self, x, training=False):
        if training:
            x = self.conv(x)
            if self.bn is not None:
                x = self.bn(x, training=training)
            return tf.nn.relu(x) if self.relu else x
        # Inference: one Conv2D (a dilated one too: no SpaceToBatchND / BatchToSpaceND), then the batch norm as one
        # per-channel map (x - mean) * g + beta, g = gamma / sqrt(variance + epsilon): TensorFlow's FusedBatchNormV3 in
        # inference mode, as slim's batch_norm in the release (float64, which it does not take: the same map spelled
        # out). Inside a graph (tf.function, SavedModel) the graph optimizer fuses it with the convolution and the
        # ReLU into one op: 10 to 20 % less of the prior's time at batch 32 than three element-wise passes over each
        # full-resolution activation, and the same values as those passes. Run eagerly or with the graph optimizer
        # off, the standalone kernel rounds differently (it moves the release image by up to 1e-5). export/fold.py goes
        # further for inference copies (fold_batch_norm below), folding g into the kernel in float64; folding it in
        # float32 moves the image by ~1e-6, which MobileNet amplifies (tests/commands/test_convert.py).
        x = tf.nn.conv2d(
            x, tf.cast(self.conv.kernel, x.dtype), self.conv.strides, "SAME", dilations=self.conv.dilation_rate
        )
        if self.bn is None:
            x = tf.nn.bias_add(x, tf.cast(self.conv.bias, x.dtype))
        elif x.dtype in _FUSED_BATCH_NORM_DTYPES:
            x = tf.raw_ops.FusedBatchNormV3(
                x=x,
                scale=self.bn.gamma if self.bn.gamma is not None else tf.ones([self.filters]),
                offset=self.bn.beta if self.bn.beta is not None else tf.zeros([self.filters]),
                mean=self.bn.moving_mean,
                variance=self.bn.moving_variance,
                epsilon=self.bn.epsilon,
                is_training=False,
            )[0]
        else:  # float64
            gain = tf.math.rsqrt(self.bn.moving_variance + self.bn.epsilon)
            if self.bn.gamma is not None:
                gain = gain * self.bn.gamma
            offset = self.bn.beta if self.bn.beta is not None else 0.0
            x = (x - tf.cast(self.bn.moving_mean, x.dtype)) * tf.cast(gain, x.dtype) + tf.cast(offset, x.dtype)
        return tf.nn.relu(x) if self.relu else x

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def fold_batch_norm(self, kernel, bias):
        """Inference copies only (export/fold.py computes `kernel` and `bias`): replace the convolution and its
        batch norm by one convolution with that kernel and bias. The unit then no longer matches its config (a
        .keras file of it does not load back) and training mode runs the same fixed affine map."""
        if self.bn is None:
            raise ValueError(f"unit {self.name!r} has no batch norm to fold")
        conv = keras.layers.Conv2D(
            self.filters,
            self.conv.kernel_size,
            strides=self.conv.strides,
            dilation_rate=self.conv.dilation_rate,
            padding="same",
            dtype=self.dtype_policy,
            name="conv",
        )
        conv.build((None, None, None, self.conv.kernel.shape[2]))
        conv.set_weights([kernel, bias])
        self._tracker.unlock()  # a built layer refuses new sub-layers otherwise
        try:
            for old in (self.conv, self.bn):  # their variables leave the layer's weights
                self._tracker.untrack(old)
            self.conv, self.bn = conv, None
        finally:
            self._tracker.lock()


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class ResidualUNetPrior(keras.layers.Layer):
    """The Anscombe network's residual U-Net prior; returns v = x - r. Architecture (Diamond et al. 2021 Sec. 4.2,
    release configuration from the authors' TF1 code):
    - input [B, H, W, C_in]: the current estimate (its first `output_channels` channels, e.g. the Anscombe-domain,
      max-normalized 3-channel image in [0, 1]) followed by extra channels such as the noise channel (constant k, the
      noise std of the normalized image); output [B, H, W, output_channels].
    - The U-Net computes a residual r (a linear 3x3 convolution at the top); the layer returns the prior's estimate
      v = x - r with x the first `output_channels` input channels, which is what Algorithm 1 hands to the data step
      (v = x_k - prior_k(x_k) in the release, the U-Net being prior_k). `residual_output` gives r itself.
    - Level l (l = 0 .. levels - 1) has c_l = max(2 * C_in, 8) * 2^l channels (8, 16, 32 for 3 + 1 input channels);
      in it: conv_in, conv_1 (3x3); then, except at the bottom, 2x2 average pooling, the level below, and concatenation
      of conv_1's output with the level below's upsampled output (c_l + c_l channels); conv_2 (3x3); below the top
      also out_conv (3x3) and a 2x2 stride-2 transposed convolution to c_l / 2 channels (linear, with bias); at the top
      the linear 3x3 output convolution to `output_channels` (with bias). Every other convolution is conv + batch norm
      (offset only, no scale; momentum 0.95, epsilon 1e-4 as slim's batch_norm in the release) + ReLU, except the
      very first one (conv + bias + ReLU, no batch norm).
    - Initializers (the release's): every 3x3 convolution, the linear output convolution included, draws its kernel
      from He's truncated normal (Keras "he_normal", slim's variance_scaling_initializer: factor 2, fan-in); the
      transposed convolutions use Glorot uniform (slim's conv2d_transpose default); biases start at zero.
    - first_conv="dilated" (release): the first convolution is 3x3 with dilation rate 2 at full resolution; H and W must
      be divisible by 2^(levels - 1). first_conv="strided" (paper text): it has stride 2, the U-Net runs at half
      resolution, and a 2x2 stride-2 transposed convolution (c_0 channels, linear, with bias) restores full resolution
      before the output convolution; H and W must be divisible by 2^levels. first_conv="plain": an ordinary 3x3
      convolution (the packed-Bayer prior of models/isp.py, which already runs at half resolution).
    - width: the top-level width c_0 when given (the packed prior's 8), instead of max(2 * C_in, min_channels).
    - Parameter count, release configuration (3-channel image + noise channel, levels 3, dilated): 47,659 trainable
      plus 416 batch-norm moving statistics = 48,075 weights (Diamond et al. 2021 Table 1: about 0.05 M).

    output_channels: channels of the image part of the input and of the output (3). levels: number of
    resolutions (3). first_conv: "dilated" (release) or "strided" (paper). min_channels: floor of the top-level
    width max(2 * C_in, min_channels) (8). width: the top-level width itself (None: that floor rule). residual_output: return r instead of x - r. bn_momentum, bn_epsilon:
    batch-norm settings (release values).
    """

    def __init__(
        self,
        output_channels=3,
        levels=3,
        first_conv="dilated",
        min_channels=8,
        width=None,
        residual_output=False,
        bn_momentum=RELEASE_BN_MOMENTUM,
        bn_epsilon=RELEASE_BN_EPSILON,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.output_channels = check_int(output_channels, "output_channels", 1)
        self.levels = check_int(levels, "levels", 1)
        if first_conv not in FIRST_CONV_CHOICES:
            raise ValueError(f"first_conv must be one of {FIRST_CONV_CHOICES}; received {first_conv!r}")
        self.first_conv = first_conv
        self.min_channels = check_int(min_channels, "min_channels", 1)
        self.width = None if width is None else check_int(width, "width", 2)
        self.residual_output = check_bool(residual_output, "residual_output")
        if not 0.0 <= float(bn_momentum) < 1.0 or not float(bn_epsilon) > 0:
            raise ValueError(
                f"bn_momentum must be in [0, 1) and bn_epsilon > 0; received {bn_momentum!r}, {bn_epsilon!r}"
            )
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        # Sub-layers depend on the input channel count; build creates them with fixed names.
        self.widths = None
        self.conv_in, self.conv_1, self.conv_2, self.out_conv, self.up_conv = [], [], [], [], []
        self.top_up_conv = None
        self.output_conv = None

    def _unit(self, filters, name, **kwargs):
        return _ConvNormAct(
            filters,
            3,
            bn_scale=False,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
            dtype=self.dtype_policy,
            name=name,
            **kwargs,
        )

    def _downsampling(self):
        return 2 ** (self.levels - 1 + (self.first_conv == "strided"))

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None or in_channels < self.output_channels:
            raise ValueError(
                f"the prior's input needs at least output_channels={self.output_channels} channels (the image) "
                f"plus optional extra channels; received shape {tuple(input_shape)}"
            )
        top = max(2 * in_channels, self.min_channels) if self.width is None else self.width
        widths = [top * 2**level for level in range(self.levels)]
        self.widths = widths
        self.conv_in, self.conv_1, self.conv_2, self.out_conv, self.up_conv = [], [], [], [], []
        for level, width in enumerate(widths):
            if level == 0:
                first = {"strided": {"strides": 2}, "dilated": {"dilation_rate": 2}, "plain": {}}[self.first_conv]
                self.conv_in.append(self._unit(width, "level0_conv_in", batch_norm=False, **first))
            else:
                self.conv_in.append(self._unit(width, f"level{level}_conv_in"))
            self.conv_1.append(self._unit(width, f"level{level}_conv_1"))
            self.conv_2.append(self._unit(width, f"level{level}_conv_2"))
            if level > 0:
                self.out_conv.append(self._unit(width, f"level{level}_out_conv"))
                self.up_conv.append(
                    keras.layers.Conv2DTranspose(
                        width // 2, 2, strides=2, dtype=self.dtype_policy, name=f"level{level}_up_conv"
                    )
                )
        if self.first_conv == "strided":
            self.top_up_conv = keras.layers.Conv2DTranspose(
                widths[0], 2, strides=2, dtype=self.dtype_policy, name="level0_up_conv"
            )
        self.output_conv = keras.layers.Conv2D(
            self.output_channels,
            3,
            padding="same",
            kernel_initializer="he_normal",
            dtype=self.dtype_policy,
            name="level0_out_conv",
        )
        # Build every sub-layer with its input shape (batch and spatial sizes are irrelevant to the weights).
        for level, width in enumerate(widths):
            previous = in_channels if level == 0 else widths[level - 1]
            self.conv_in[level].build((None, None, None, previous))
            self.conv_1[level].build((None, None, None, width))
            below = level < self.levels - 1
            self.conv_2[level].build((None, None, None, 2 * width if below else width))
            if level > 0:
                self.out_conv[level - 1].build((None, None, None, width))
                self.up_conv[level - 1].build((None, None, None, width))
        if self.top_up_conv is not None:
            self.top_up_conv.build((None, None, None, widths[0]))
        self.output_conv.build((None, None, None, widths[0]))

    def _level(self, x, level, training):
        x = self.conv_in[level](x, training=training)
        x = self.conv_1[level](x, training=training)
        if level < self.levels - 1:
            lower = tf.nn.avg_pool2d(x, 2, 2, "VALID")
            lower = self._level(lower, level + 1, training)
            x = tf.concat([x, lower], axis=-1)
        x = self.conv_2[level](x, training=training)
        if level > 0:
            x = self.out_conv[level - 1](x, training=training)
            up = self.up_conv[level - 1]
            x = up(x) if training else upsample_2x2(up, x)
        return x

    def call(self, x, training=False):
        x = check_image(x, "x")
        _check_divisible(x, self._downsampling(), "x")
        features = self._level(x, 0, training)
        if self.top_up_conv is not None:
            up = self.top_up_conv
            features = up(features) if training else upsample_2x2(up, features)
        residual = self.output_conv(features)
        if self.residual_output:
            return residual
        return tf.cast(x[..., : self.output_channels], residual.dtype) - residual

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "output_channels": self.output_channels,
            "levels": self.levels,
            "first_conv": self.first_conv,
            "min_channels": self.min_channels,
            "width": self.width,
            "residual_output": self.residual_output,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
        }


class _LiuModule(keras.layers.Layer):
    """Shared body of Liu et al.'s modules: a = conv 3x3 (filters); out = a + [1x1 (bottleneck), 3x3 (bottleneck),
    1x1 (filters)](a), each convolution followed by batch norm and ReLU (the sum comes after the last ReLU)."""

    def __init__(self, filters, bottleneck_filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = check_int(filters, "filters", 1)
        self.bottleneck_filters = check_int(bottleneck_filters, "bottleneck_filters", 1)
        unit = dict(dtype=self.dtype_policy)
        self.conv_first = _ConvNormAct(filters, 3, name="conv_first", **unit)
        self.conv_reduce = _ConvNormAct(bottleneck_filters, 1, name="conv_reduce", **unit)
        self.conv_middle = _ConvNormAct(bottleneck_filters, 3, name="conv_middle", **unit)
        self.conv_expand = _ConvNormAct(filters, 1, name="conv_expand", **unit)

    def _build_body(self, in_channels):
        self.conv_first.build((None, None, None, in_channels))
        self.conv_reduce.build((None, None, None, self.filters))
        self.conv_middle.build((None, None, None, self.bottleneck_filters))
        self.conv_expand.build((None, None, None, self.bottleneck_filters))

    def _body(self, x, training):
        first = self.conv_first(x, training=training)
        branch = self.conv_reduce(first, training=training)
        branch = self.conv_middle(branch, training=training)
        return first + self.conv_expand(branch, training=training)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "bottleneck_filters": self.bottleneck_filters}


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class LiuEncodingModule(_LiuModule):
    """Feature encoding module of Liu et al. 2018 (Sec. 2.1, Fig. 2b): [B, H, W, C] -> [B, H, W, filters].

    conv 3x3 (128) then a residual block 1x1 (32), 3x3 (32), 1x1 (128) whose output is added to the first conv's;
    batch norm + ReLU after every convolution. Widths are settings with the paper's defaults.
    """

    def __init__(self, filters=128, bottleneck_filters=32, **kwargs):
        super().__init__(filters, bottleneck_filters, **kwargs)

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"x must have a known number of channels; received shape {tuple(input_shape)}")
        self._build_body(input_shape[-1])

    def call(self, x, training=False):
        return self._body(check_image(x, "x"), training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class LiuDecodingModule(_LiuModule):
    """Feature decoding module of Liu et al. 2018 (Sec. 2.1, Fig. 2c): fuses two adjacent scales.

    Call: layer(features, skip), both [B, H, W, *] at the same resolution (the coarser scale already upsampled);
    they are concatenated on channels (features first), then conv 3x3 (256) and the residual block 1x1 (64),
    3x3 (64), 1x1 (256), batch norm + ReLU after every convolution. Returns [B, H, W, filters].
    """

    def __init__(self, filters=256, bottleneck_filters=64, **kwargs):
        super().__init__(filters, bottleneck_filters, **kwargs)

    def build(self, features_shape, skip_shape):
        if features_shape[-1] is None or skip_shape[-1] is None:
            raise ValueError(
                f"features and skip must have known channel counts; received shapes {tuple(features_shape)} "
                f"and {tuple(skip_shape)}"
            )
        self._build_body(features_shape[-1] + skip_shape[-1])

    def call(self, features, skip, training=False):
        features, skip = check_image(features, "features"), check_image(skip, "skip")
        if features.shape[1:3] != skip.shape[1:3]:
            raise ValueError(
                f"features and skip must have the same height and width; received shapes {features.shape} "
                f"and {skip.shape}"
            )
        return self._body(tf.concat([features, skip], axis=-1), training)

    def compute_output_shape(self, features_shape, skip_shape):
        return (*features_shape[:-1], self.filters)


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class NidfUNet(keras.layers.Layer):
    """The U-shaped encoder-decoder of NIDF (Miao and Zhu, Sec. 2.1), used for both the denoiser and the deblurrer.

    The paper only says "a U-shape encoder-decoder [Ronneberger et al. 2015]" shared by both networks; where it is
    silent this follows Ronneberger's U-Net, scaled down: `levels` resolutions (default 4); at level l two 3x3
    convolutions of base_filters * 2^l channels (default 32, 64, 128, 256), each followed by ReLU (and batch norm
    before it when batch_norm=True; default False, as in Ronneberger's network); 2x2 max pooling down; 2x2 stride-2
    transposed convolution up to the level's width, concatenated with the encoder's features of that level, then two
    3x3 convolutions; a linear 1x1 output convolution to `output_channels`. residual=True (default) adds the input
    to the output, so the network learns the correction (needs input channels == output_channels).
    Input [B, H, W, C] with H and W divisible by 2^(levels - 1); output [B, H, W, output_channels].
    The default configuration on a 3-channel image has 1,925,667 parameters.
    """

    def __init__(self, output_channels=3, levels=4, base_filters=32, residual=True, batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.output_channels = check_int(output_channels, "output_channels", 1)
        self.levels = check_int(levels, "levels", 1)
        self.base_filters = check_int(base_filters, "base_filters", 1)
        self.residual = check_bool(residual, "residual")
        self.batch_norm = check_bool(batch_norm, "batch_norm")
        widths = [base_filters * 2**level for level in range(levels)]
        unit = dict(batch_norm=batch_norm, dtype=self.dtype_policy)
        self.encoder = [
            [_ConvNormAct(w, 3, name=f"encoder{level}_conv{i}", **unit) for i in (1, 2)]
            for level, w in enumerate(widths)
        ]
        self.up_conv = [
            keras.layers.Conv2DTranspose(w, 2, strides=2, dtype=self.dtype_policy, name=f"decoder{level}_up_conv")
            for level, w in enumerate(widths[:-1])
        ]
        self.decoder = [
            [_ConvNormAct(w, 3, name=f"decoder{level}_conv{i}", **unit) for i in (1, 2)]
            for level, w in enumerate(widths[:-1])
        ]
        self.output_conv = keras.layers.Conv2D(
            output_channels, 1, padding="same", dtype=self.dtype_policy, name="output_conv"
        )
        self.widths = widths

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None or (self.residual and in_channels != self.output_channels):
            raise ValueError(
                f"x must have output_channels={self.output_channels} channels when residual=True (and a known "
                f"channel count in any case); received shape {tuple(input_shape)}"
            )
        for level, width in enumerate(self.widths):
            previous = in_channels if level == 0 else self.widths[level - 1]
            self.encoder[level][0].build((None, None, None, previous))
            self.encoder[level][1].build((None, None, None, width))
        for level, width in enumerate(self.widths[:-1]):
            self.up_conv[level].build((None, None, None, self.widths[level + 1]))
            self.decoder[level][0].build((None, None, None, 2 * width))
            self.decoder[level][1].build((None, None, None, width))
        self.output_conv.build((None, None, None, self.widths[0]))

    def call(self, x, training=False):
        x = check_image(x, "x")
        _check_divisible(x, 2 ** (self.levels - 1), "x")
        skips = []
        features = x
        for level in range(self.levels):
            if level > 0:
                features = tf.nn.max_pool2d(features, 2, 2, "VALID")
            for unit in self.encoder[level]:
                features = unit(features, training=training)
            skips.append(features)
        for level in reversed(range(self.levels - 1)):
            features = tf.concat([self.up_conv[level](features), skips[level]], axis=-1)
            for unit in self.decoder[level]:
                features = unit(features, training=training)
        output = self.output_conv(features)
        return output + tf.cast(x, output.dtype) if self.residual else output

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "output_channels": self.output_channels,
            "levels": self.levels,
            "base_filters": self.base_filters,
            "residual": self.residual,
            "batch_norm": self.batch_norm,
        }


# The priors the Anscombe network builds by name (its `prior` setting). Each is a Keras layer built as
# cls(output_channels=..., levels=..., first_conv=..., width=..., name=...), mapping [B, H, W, C_in] (the image,
# then the noise channel) to the prior's estimate [B, H, W, output_channels].
PRIORS = {"residual_unet": ResidualUNetPrior}
DEFAULT_PRIOR = "residual_unet"


def prior_class(name):
    """The prior class registered as `name` in PRIORS; ValueError naming the choices otherwise."""
    if name not in PRIORS:
        raise ValueError(f"prior must be one of {', '.join(PRIORS)}; received {name!r}")
    return PRIORS[name]
