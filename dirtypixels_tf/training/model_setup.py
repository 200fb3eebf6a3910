"""The Keras model of an experiment config, and stage-1 weights loaded into it by component.

The model is models/spec.build_model of the config's ModelSpec (training/config.model_spec): a JointClassifier,
an IspModel or a HeadClassifier (models/joint.py, models/components.py), or the ISP's own pretraining model when the loss is its
pretraining loss (ModelSpec.pretrains, e.g. NIDF's "nidf_pretrain"). Stage-1 weights are copied by component:
the ISP by its own `load_pretrained` (from the stage-1 model's "isp" layer, or what its pretraining model holds),
the head from the stage-1 model's head (or a .weights.h5 of the head model). Nothing is matched by variable names.
"""

import os

import keras

from dirtypixels_tf.catalog import NO_PSF
from dirtypixels_tf.models.components import PsfSizeError, with_per_channel_noise
from dirtypixels_tf.models.isp import copy_weights
from dirtypixels_tf.models.loading import MODEL_FILE
from dirtypixels_tf.models.spec import build_model
from dirtypixels_tf.physics import optics
from dirtypixels_tf.training import config as config_lib


def build_experiment_model(config):
    """The uncompiled Keras model of an ExperimentConfig (see the module docstring)."""
    spec = config_lib.model_spec(config)
    psf_size = None
    if spec.psf_size is None and config.data.psf != NO_PSF:  # an ISP that takes PSFs gets the data's PSF size
        psf_size = tuple(optics.resolve_psf(config.data.psf, config.seed).shape[:2])
    try:
        model = build_model(spec, pretraining=spec.pretrains(config.loss.kind), psf_size=psf_size)
    except PsfSizeError:
        raise config_lib.ConfigError(f"data.psf: model.isp {spec.isp!r} deblurs with a PSF; received 'none'") from None
    if config.data.front_end == "none" or "alpha" not in model.input:
        return model
    try:  # frames through the capture front end carry alpha and sigma per colour
        return with_per_channel_noise(model)
    except ValueError:
        raise config_lib.ConfigError(
            f"data.front_end: the {model.name} model cannot take per-colour noise; received {config.data.front_end!r}"
        ) from None


def training_view(model, output_names):
    """A functional model over the same layers and variables as `model`, with only the outputs `output_names`
    (Keras' compile wants a target for every output it sees; the final model keeps all of them)."""
    if not isinstance(model.output, dict) or set(model.output) == set(output_names):
        return model
    return keras.Model(model.input, {name: model.output[name] for name in output_names}, name=f"{model.name}_training")


def model_input_names(model):
    """The input names of a model built by `build_experiment_model`."""
    return tuple(model.input.keys()) if isinstance(model.input, dict) else tuple(t.name for t in model.inputs)


def _load_stage_model(path, key):
    file = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise config_lib.ConfigError(
            f"{key}: no stage-1 model at {path!r} (expected a run directory with {MODEL_FILE} or a .keras file)"
        )
    return keras.models.load_model(file, compile=False)


def _copy(source, target, key):
    try:
        copy_weights(source, target)
    except ValueError as error:
        raise config_lib.ConfigError(f"{key}: {error}") from None


def _head_of(model, key, source):
    head = getattr(model, "head", None)
    if head is None:
        raise config_lib.ConfigError(f"{key}: {source!r} holds no classifier head (model {model.name!r})")
    return head


def load_stage_weights(model, config):
    """Copy the stage-1 ISP and head weights named in config.stages into `model` by component; returns a list of
    what was loaded (for the log)."""
    loaded = []
    stages = config.stages
    if stages.isp_weights is not None:
        stage = _load_stage_model(stages.isp_weights, "stages.isp_weights")
        try:
            model.isp.load_pretrained(stage)
        except ValueError as error:
            raise config_lib.ConfigError(f"stages.isp_weights: {stages.isp_weights!r}: {error}") from None
        loaded.append(f"isp <- {stages.isp_weights}")
    if stages.head_weights is not None:
        head = _head_of(model, "stages.head_weights", "this model")
        if str(stages.head_weights).endswith(".weights.h5"):
            if not os.path.isfile(stages.head_weights):
                raise config_lib.ConfigError(f"stages.head_weights: file not found: {stages.head_weights!r}")
            head.load_weights(stages.head_weights)
        else:
            stage = _load_stage_model(stages.head_weights, "stages.head_weights")
            _copy(_head_of(stage, "stages.head_weights", stages.head_weights), head, "stages.head_weights")
        loaded.append(f"{head.name} <- {stages.head_weights}")
    return loaded


def set_sync_batch_norm(model, synchronized):
    """Make every BatchNormalization layer compute its statistics over the global batch (or per replica)."""
    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = bool(synchronized)
            count += 1
    return count


def precise_batch_norm(model, batches):
    """Set every BatchNormalization layer's moving mean and variance to the average of its batch statistics over
    `batches` (an iterable of model inputs), computed with the final weights ("precise BN"). Returns the count."""
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    count = 0
    for inputs in batches:
        for layer in layers:
            layer.momentum = count / (count + 1)  # moving = running mean of the batch statistics seen so far
        model(inputs, training=True)
        count += 1
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    return count


def inference_copy(model):
    """An uncompiled copy of `model` (same config, same weights, no optimizer or loss state): what model.keras holds."""
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy
