"""The Keras model of an experiment config, and stage-1 weights loaded into it by component.

Models (inputs by name, outputs a dict):
- ISP + head: models.joint.joint_classifier: {"raw", "alpha", "sigma"[, "psf"]} -> {"logits", "image"[, "denoised"]}.
- ISP alone (reconstruction, stage 1): {"raw", "alpha", "sigma"} -> {"image"} ({"image", "denoised"} for NIDF),
  with the ISP as the layer named "isp".
- NIDF pretraining: {"raw", "alpha", "sigma", "blurred"} -> {"denoised": denoiser(demosaic(raw)), "deblurred":
  deblurrer(blurred)}, built from the cascade's own sub-layers "demosaic", "denoiser" and "deblurrer".
- Head alone on clean images (the head's stage 1): {"clean"} [B, H, W, 3] in [0, 1] -> {"logits"}, through the
  same HeadPreprocessing layer as the joint model, the head as the layer named after it.

Stage-1 weights are copied by component: the joint model's "isp" layer from the stage-1 model's "isp" layer (or,
from a NIDF pretraining model, the cascade's "denoiser" and "deblurrer"), the head from the stage-1 model's layer
named after the head (or a .weights.h5 of the head model). Nothing is matched by variable names.
"""

import os

import keras

from dirtypixels_tf.models import heads
from dirtypixels_tf.models.isp import build_isp, isp_model
from dirtypixels_tf.models.joint import clean_image_classifier, joint_classifier
from dirtypixels_tf.models.loading import MODEL_FILE
from dirtypixels_tf.training import config as config_lib


def _image_size(spec):
    return (spec["image_size"], spec["image_size"])


def _head_bn_momentum(config):
    """The head's batch-norm momentum: the preset's (slim's 0.9997 for the release presets), else the head's default."""
    from dirtypixels_tf.models import presets

    return None if config.model.preset is None else presets.get_preset(config.model.preset).head_bn_momentum


def build_model(config):
    """The uncompiled Keras model of an ExperimentConfig (see the module docstring)."""
    spec = config_lib.model_spec(config)
    size = _image_size(spec)
    head = None
    if spec["head"] is not None:
        head = heads.build_head(
            spec["head"],
            (*size, 3),
            spec["num_classes"],
            width=spec["head_width"],
            bn_momentum=_head_bn_momentum(config),
        )
    if spec["isp"] is None:
        return clean_image_classifier(head, spec["head"], size)
    isp = build_isp(spec["isp"], **spec["isp_settings"])
    if config.loss.kind == "nidf_pretrain":
        return _nidf_pretraining_model(isp, size)
    psf_size = spec["psf_size"]
    if isp.takes_psf and psf_size is None:  # per-image PSF input of the data's PSF size
        from dirtypixels_tf.training.data import load_psf

        psf = load_psf(config.data.psf, config.seed)
        if psf is None:
            raise config_lib.ConfigError(f"data.psf: model.isp {spec['isp']!r} deblurs with a PSF; received 'none'")
        psf_size = tuple(psf.shape[:2])
    if head is not None:
        return joint_classifier(isp, head, spec["head"], size, psf_size, spec["freeze"], name="joint_model")
    standalone = isp_model(isp, size, psf_size)
    outputs = standalone.output if isinstance(standalone.output, dict) else {"image": standalone.output}
    return keras.Model(standalone.input, dict(outputs), name=f"{spec['isp']}_isp")


def _nidf_pretraining_model(isp, size):
    inputs = {
        "raw": keras.Input((*size, 1), name="raw"),
        "alpha": keras.Input((), name="alpha"),
        "sigma": keras.Input((), name="sigma"),
        "blurred": keras.Input((*size, 3), name="blurred"),
    }
    denoised = isp.denoiser(isp.demosaic(inputs["raw"]))
    deblurred = isp.deblurrer(inputs["blurred"])
    return keras.Model(inputs, {"denoised": denoised, "deblurred": deblurred}, name="nidf_pretraining")


def training_view(model, output_names):
    """A functional model over the same layers and variables as `model`, with only the outputs `output_names`
    (Keras' compile wants a target for every output it sees; the final model keeps all of them)."""
    if not isinstance(model.output, dict) or set(model.output) == set(output_names):
        return model
    return keras.Model(model.input, {name: model.output[name] for name in output_names}, name=f"{model.name}_training")


def model_input_names(model):
    """The input names of a model built by `build_model`."""
    return tuple(model.input.keys()) if isinstance(model.input, dict) else tuple(t.name for t in model.inputs)


def _load_stage_model(path, key):
    file = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise config_lib.ConfigError(
            f"{key}: no stage-1 model at {path!r} (expected a run directory with {MODEL_FILE} or a .keras file)"
        )
    return keras.models.load_model(file, compile=False)


def _copy_layer(source, target, what):
    weights = source.get_weights()
    if len(weights) != len(target.weights) or any(a.shape != tuple(b.shape) for a, b in zip(weights, target.weights)):
        raise config_lib.ConfigError(
            f"{what}: the stage-1 layer {source.name!r} has weights of shapes {[w.shape for w in weights]}, which "
            f"do not fit this model's layer {target.name!r} ({[tuple(w.shape) for w in target.weights]})"
        )
    target.set_weights(weights)


def load_stage_weights(model, config):
    """Copy the stage-1 ISP and head weights named in config.stages into `model` by component; returns a list of
    what was loaded (for the log)."""
    loaded = []
    stages = config.stages
    spec = config_lib.model_spec(config)
    if stages.isp_weights is not None:
        stage = _load_stage_model(stages.isp_weights, "stages.isp_weights")
        names = {layer.name for layer in stage.layers}
        target = model.get_layer("isp")
        if "isp" in names:
            _copy_layer(stage.get_layer("isp"), target, "stages.isp_weights")
        elif spec["isp"] == "nidf" and {"denoiser", "deblurrer"} <= names:
            for part in ("denoiser", "deblurrer"):
                _copy_layer(stage.get_layer(part), getattr(target, part), "stages.isp_weights")
        else:
            raise config_lib.ConfigError(f"stages.isp_weights: {stages.isp_weights!r} has no layer named 'isp'")
        loaded.append(f"isp <- {stages.isp_weights}")
    if stages.head_weights is not None:
        head = model.get_layer(spec["head"])
        if str(stages.head_weights).endswith(".weights.h5"):
            if not os.path.isfile(stages.head_weights):
                raise config_lib.ConfigError(f"stages.head_weights: file not found: {stages.head_weights!r}")
            head.load_weights(stages.head_weights)
        else:
            stage = _load_stage_model(stages.head_weights, "stages.head_weights")
            if spec["head"] not in {layer.name for layer in stage.layers}:
                raise config_lib.ConfigError(
                    f"stages.head_weights: {stages.head_weights!r} has no layer named {spec['head']!r}"
                )
            _copy_layer(stage.get_layer(spec["head"]), head, "stages.head_weights")
        loaded.append(f"{spec['head']} <- {stages.head_weights}")
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
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy
