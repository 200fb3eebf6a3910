"""Batch-norm folding for inference: a copy of a trained model whose convolutions absorb the batch norms after them.

At inference a batch norm is a fixed per-channel affine map, y = (z - mean) * g + beta with g = gamma /
sqrt(moving_variance + epsilon) (gamma = 1 and beta = 0 where the layer has none). After a convolution z = x * W + b
it folds into kernel W * g (output-channel axis) and bias (b - mean) * g + beta, computed in float64 from the
float32 weights and rounded once to float32 (folding in float32 would round twice), so the folded model computes
the unfolded one up to float32 round-off.

What is folded (`parts`):
- "head": in the functional models (the classifier head: keras.applications MobileNet, Inception-v4, ...) every
  Conv2D or DepthwiseConv2D (linear, channels-last, called once) whose only consumer is a channels-last
  BatchNormalization called once; the batch norm leaves the copy's graph. The default: it keeps release parity.
- "all": also, in the ISP, every convolution + batch-norm unit of layers/priors.py (the Anscombe network's U-Net
  prior, Liu et al.'s modules, the NIDF U-Net with batch_norm=True); its changed round-off reaches the release-parity
  bound (docs/numerics.md).
Other batch norms (e.g. LiuDenoiser's after its strided convolutions) stay as they are, computed unfolded.

The copy is for inference only (training=False): training it would not train the original's parameters. It is
not meant to be saved as .keras (its prior units no longer match their configs); call it, or export it
(export_savedmodel and export_tflite with fold_batch_norm="head" or "all").
"""

import keras
import numpy as np

from dirtypixels_tf.layers.priors import _ConvNormAct
from dirtypixels_tf.models.components import ComponentModel

FOLD_PARTS = ("all", "head")
_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def folded_kernel_and_bias(kernel, bias, mean, variance, epsilon, gamma=None, beta=None, depthwise=False):
    """(kernel, bias) float32 of the convolution that computes conv(x, kernel) + bias followed by batch norm.

    kernel: [kh, kw, in, out] (Conv2D) or [kh, kw, in, multiplier] (DepthwiseConv2D, depthwise=True: output channel
    c * multiplier + m); bias: the convolution's bias or None; mean, variance, gamma, beta: the batch norm's
    per-output-channel arrays (gamma, beta None where the layer has no scale / offset). All in float64, rounded once.
    """
    kernel = np.asarray(kernel, np.float64)
    gain = 1.0 / np.sqrt(np.asarray(variance, np.float64) + float(epsilon))
    if gamma is not None:
        gain = gain * np.asarray(gamma, np.float64)
    offset = 0.0 if beta is None else np.asarray(beta, np.float64)
    shift = -np.asarray(mean, np.float64) if bias is None else np.asarray(bias, np.float64) - mean
    folded = kernel * (gain.reshape(kernel.shape[2:]) if depthwise else gain)
    return folded.astype(np.float32), (shift * gain + offset).astype(np.float32)


def _batch_norm_arrays(layer):
    """{mean, variance, epsilon, gamma, beta} of a Keras BatchNormalization, as NumPy (gamma, beta None if absent)."""
    return {
        "mean": layer.moving_mean.numpy(),
        "variance": layer.moving_variance.numpy(),
        "epsilon": layer.epsilon,
        "gamma": layer.gamma.numpy() if layer.scale else None,
        "beta": layer.beta.numpy() if layer.center else None,
    }


def _foldable_pairs(model):
    """{convolution name: batch-norm layer} of the functional `model` (see the module docstring)."""
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or len(layer._inbound_nodes) != 1:
            continue
        node = layer._inbound_nodes[0]
        if layer.axis not in (-1, len(node.input_tensors[0].shape) - 1):
            continue
        parents = node.parent_nodes
        if len(parents) != 1:
            continue
        conv = parents[0].operation
        if (
            type(conv) in _CONVOLUTIONS
            and len(conv._inbound_nodes) == 1
            and len(conv._outbound_nodes) == 1
            and conv.data_format == "channels_last"
            and conv.activation is keras.activations.linear
            and getattr(conv, "groups", 1) == 1
        ):
            pairs[conv.name] = layer
    return pairs


def _fold_functional(model, fold_units):
    """A functional model's copy with its conv + batch-norm pairs folded (weights copied); fold_units: also fold
    the prior units inside its layers."""
    pairs = _foldable_pairs(model)
    folded_norms = {layer.name for layer in pairs.values()}

    sources = {}  # id of a copied layer -> the layer it copies

    def clone(layer):
        if layer.name in folded_norms:
            return layer  # never called (below): the copy's graph skips it
        if _is_functional(layer):  # a nested model (a head inside a joint model): folded with its weights
            return _fold_functional(layer, fold_units)
        config = layer.get_config()
        if layer.name in pairs:
            config["use_bias"] = True
        copied = layer.__class__.from_config(config)
        sources[id(copied)] = layer
        return copied

    def call(layer, *args, **kwargs):
        return args[0] if layer.name in folded_norms else layer(*args, **kwargs)

    copy = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer in copy.layers:
        source = sources.get(id(layer))
        if source is None:  # an input layer
            continue
        if layer.name in pairs:
            weights = source.get_weights()
            kernel, bias = folded_kernel_and_bias(
                weights[0],
                weights[1] if source.use_bias else None,
                depthwise=isinstance(source, keras.layers.DepthwiseConv2D),
                **_batch_norm_arrays(pairs[layer.name]),
            )
            layer.set_weights([kernel, bias])
        elif layer.weights:
            layer.set_weights(source.get_weights())
            if fold_units:
                _fold_units(layer)
    return copy


def _is_functional(model):
    return isinstance(model, keras.Model) and hasattr(model, "_run_through_graph")


def _fold_units(layer):
    """Fold every convolution + batch-norm unit of layers/priors.py inside `layer`, in place."""
    for unit in layer._flatten_layers(include_self=True):
        if isinstance(unit, _ConvNormAct) and unit.bn is not None:
            kernel, bias = folded_kernel_and_bias(
                unit.conv.kernel.numpy(),
                unit.conv.bias.numpy() if unit.conv.use_bias else None,
                **_batch_norm_arrays(unit.bn),
            )
            unit.fold_batch_norm(kernel, bias)


def fold_batch_norm(model, parts="all"):
    """An inference-only copy of `model` with its batch norms folded into the convolutions before them.

    model: a JointClassifier, IspModel or HeadClassifier (models/joint.py, models/components.py), or a functional keras.Model; it is left
    as it is. parts: "all" or "head" (module docstring). The copy computes the outputs of `model` at
    training=False up to float32 round-off (tests/export/test_fold.py states the bounds).
    """
    if parts not in FOLD_PARTS:
        raise ValueError(f"parts must be one of {FOLD_PARTS}; received {parts!r}")
    fold_units = parts == "all"
    if isinstance(model, ComponentModel):
        components = {}
        for key in model.COMPONENTS:
            part = getattr(model, key)
            if key == "isp":
                part = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(part))
            else:
                part = _fold_functional(part, fold_units)
            components[key] = part
        copy = type(model)(name=model.name, **model._settings(), **components)
        if "isp" in components:  # built by the copy's constructor, so its weights can go in now
            components["isp"].set_weights(model.isp.get_weights())
            if fold_units:
                _fold_units(components["isp"])
        return copy
    if _is_functional(model):
        return _fold_functional(model, fold_units)
    raise ValueError(
        f"model must be a JointClassifier, IspModel, HeadClassifier or functional keras.Model; received "
        f"{type(model).__name__}"
    )


def check_export_setting(fold_batch_norm):
    """The `fold_batch_norm` setting of the exports: None (no folding) or one of FOLD_PARTS; ValueError otherwise."""
    if fold_batch_norm is not None and fold_batch_norm not in FOLD_PARTS:
        raise ValueError(f"fold_batch_norm must be None or one of {FOLD_PARTS}; received {fold_batch_norm!r}")
    return fold_batch_norm


def export_copy(model, parts):
    """What an export writes: `model` itself (parts None) or its folded inference copy (fold_batch_norm)."""
    return model if check_export_setting(parts) is None else fold_batch_norm(model, parts)
