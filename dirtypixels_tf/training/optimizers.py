"""Optimizers, the learning-rate schedule and weight decay, as the papers and the original release state them.

- RMSProp (TF1 semantics, the release's): ms <- rho ms + (1 - rho) g^2; mom <- momentum mom + lr g / sqrt(ms + eps);
  w <- w - mom, with rho 0.9, momentum 0.9, epsilon 1.0. Keras 3's RMSprop computes the same update but starts ms
  at zero; TF1 started it at ones, which with epsilon 1.0 halves the first steps' size relative to Keras'
  (1 / sqrt(1 + 0.1 g^2 + 1) ~ 1 / sqrt(2) rather than ~1). `Tf1RMSprop` starts it at ones.
- Schedule: lr * decay_rate ** (step / decay_steps), floored exponent when staircase (slim's exponential_decay);
  decay_steps = decay_epochs * steps per epoch from config.derive_steps, so it follows the global batch size.
- Weight decay as slim's l2_regularizer: the loss gains 0.5 * weight_decay * sum(w^2) over the kernels of Conv
  (including transposed) and Dense layers. This is an L2 loss term, not decoupled decay: with RMSProp the penalty's
  gradient is normalized by the accumulator like every other gradient, which is what the release trained with;
  decoupled decay (Keras' weight_decay argument, AdamW-style) would give a different optimum for the same number.
  Depthwise kernels are not penalized (slim's MobileNet default, regularize_depthwise=False; keras' DepthwiseConv2D
  is not a Conv2D), nor biases, batch norm parameters, nor any weight of an ISP layer (the release builds its ISP
  with weight_decay=0.0; that covers the priors' convolutions, shrinkage-field filters and projection weights):
  weight decay applies to the head.
"""

import keras

from dirtypixels_tf.training.config import ConfigError

_DECAYED_LAYERS = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.Dense,
)


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class Tf1RMSprop(keras.optimizers.RMSprop):
    """keras.optimizers.RMSprop whose mean-square accumulators ("velocity") start at `initial_accumulator` (1.0 as
    in TF1's tf.train.RMSPropOptimizer; Keras' own starts at 0.0). Other arguments are RMSprop's."""

    def __init__(self, *args, initial_accumulator=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial_accumulator = float(initial_accumulator)

    def add_optimizer_variables(self, trainable_variables, name, initializer="zeros"):
        if name == "velocity":
            initializer = keras.initializers.Constant(self.initial_accumulator)
        return super().add_optimizer_variables(trainable_variables, name, initializer)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator": self.initial_accumulator}


def build_schedule(schedule_config, learning_rate, steps):
    """The learning rate (a float, or a keras LearningRateSchedule) for a ScheduleConfig and config.Steps."""
    if schedule_config.kind == "constant":
        return float(learning_rate)
    return keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=float(learning_rate),
        decay_steps=steps.decay_steps,
        decay_rate=schedule_config.decay_rate,
        staircase=bool(schedule_config.staircase),
    )


def learning_rate_at(schedule, step):
    """The learning rate at optimizer step `step` (a float)."""
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return float(schedule(step))
    return float(schedule)


def build_optimizer(optimizer_config, schedule_config, steps):
    """The Keras optimizer of an OptimizerConfig (None settings = that optimizer's Keras default)."""
    cfg = optimizer_config
    rate = build_schedule(schedule_config, cfg.learning_rate, steps)
    ema = {"use_ema": True, "ema_momentum": cfg.ema_momentum} if cfg.ema else {}
    given = {k: v for k, v in (("rho", cfg.rho), ("momentum", cfg.momentum), ("epsilon", cfg.epsilon)) if v is not None}
    if cfg.name == "rmsprop":
        if cfg.tf1_rmsprop_init:
            return Tf1RMSprop(learning_rate=rate, **given, **ema)
        return keras.optimizers.RMSprop(learning_rate=rate, **given, **ema)
    if cfg.name == "adam":
        return keras.optimizers.Adam(learning_rate=rate, **given, **ema)
    if cfg.name == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, **given, **ema)
    raise ConfigError(f"optimizer.name: expected rmsprop, adam or sgd, received {cfg.name!r}")


def decayed_kernels(model):
    """The trainable kernels that weight decay applies to (see the module docstring), in model order."""
    from dirtypixels_tf.models.isp import ISP_CLASSES

    layers = list(model._flatten_layers(include_self=False, recursive=True))
    isp_parts = {
        id(part)
        for layer in layers
        if isinstance(layer, tuple(ISP_CLASSES.values()))
        for part in layer._flatten_layers(include_self=True, recursive=True)
    }
    kernels, seen = [], set()
    for layer in layers:
        if id(layer) in isp_parts:
            continue
        if isinstance(layer, _DECAYED_LAYERS) and layer.trainable and getattr(layer, "kernel", None) is not None:
            kernel = layer.kernel
            if id(kernel) not in seen:
                seen.add(id(kernel))
                kernels.append(kernel)
    return kernels


def apply_weight_decay(model, weight_decay):
    """Attach slim's L2 penalty 0.5 * weight_decay * ||w||^2 to each decayed kernel (an L2 loss Keras adds to the
    training loss through model.losses). Returns the number of kernels. weight_decay 0 removes nothing and adds none."""
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0; received {weight_decay!r}")
    kernels = decayed_kernels(model) if weight_decay > 0 else []
    for kernel in kernels:
        kernel.regularizer = keras.regularizers.L2(0.5 * weight_decay)
    return len(kernels)


def remove_weight_decay(model):
    """Detach the penalties of `apply_weight_decay` (before saving a model for inference)."""
    for kernel in decayed_kernels(model):
        kernel.regularizer = None
