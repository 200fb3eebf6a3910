"""The authors' TF1 checkpoints as Keras models: the release's joint model, its ISP, slim MobileNet-v1 and Inception-v4.

Checkpoints are read with tf.train.load_checkpoint (a name -> array table; no TF1 graph is built) and recognized
from their variable names (slim's scopes):
- "joint": the release's Anscombe network (`gauss_den/lambda`, `gauss_den/iter_N/beta`, `gauss_den/iter_N/
  prior_grad/depth_L/...`) and MobileNet-v1 (`MobilenetV1/...`), as the release's `joint128/*/model.ckpt-N`;
- "isp": the Anscombe network alone (the release's stage-1 `multires128/...` checkpoints);
- "mobilenet_v1": slim's MobileNet-v1 (e.g. `mobilenet_v1_1.0_128.ckpt`, the release's stage-2 starting point);
- "inception_v4": slim's Inception-v4 (`InceptionV4/...`), without its training-only auxiliary head `AuxLogits`.
The architecture is inferred (iterations from the `gauss_den/iter_N` scopes, classes from the logits kernel,
MobileNet's width from its last pointwise convolution), or a preset (models/presets.py) names it and must fit.

The models written are those `dirtypixels train` writes: joint -> the joint classifier (inputs "raw", "alpha",
"sigma"; outputs "logits", "image"); ISP -> the stage-1 ISP model ("image"); head -> the stage-1 head model (input
"clean" [B, H, W, 3] in [0, 1], output "logits"), for a config's `stages.head_weights`. They follow the release:
algebraic inverse, GAT over S^T y, one shared lambda and one beta per iteration, head input clipped to [0, 1] then
mapped to [-1, 1], 1001 classes with background at index 0, slim's batch-norm momentum 0.9997.
Every model weight must come from the checkpoint and every checkpoint variable must go into the model, except
`global_step`, optimizer slots of a mapped variable (`NAME/RMSProp`, `NAME/Momentum`, ...) and `AuxLogits`;
otherwise conversion stops with a message listing what did not map.
"""

import re

import numpy as np
import tensorflow as tf

from dirtypixels_tf.models import heads, presets
from dirtypixels_tf.models.spec import ModelSpec, build_model

RELEASE_IMAGE_SIZE = 128  # the release's --train_image_size
INCEPTION_IMAGE_SIZE = 299
ISP_SCOPE = "gauss_den"
MOBILENET_SCOPE = "MobilenetV1"
INCEPTION_SCOPE = "InceptionV4"
_IGNORED = ("global_step",)
_ITERATION = re.compile(rf"^{ISP_SCOPE}/iter_(\d+)/")


class CheckpointError(ValueError):
    """A checkpoint that cannot be converted; the message lists the variables concerned."""


def read_checkpoint(path):
    """All variables of a TF1 checkpoint (prefix such as `model.ckpt-1234`, or its directory): name -> array."""
    prefix = tf.train.latest_checkpoint(path) if tf.io.gfile.isdir(path) else path
    if prefix is None:
        raise CheckpointError(f"checkpoint: no checkpoint in directory {path!r}")
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as err:
        raise CheckpointError(f"checkpoint: cannot read {path!r} as a TF checkpoint: {err}") from None
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def checkpoint_kind(names):
    """ "joint", "isp", "mobilenet_v1" or "inception_v4" from the variable names (see the module docstring)."""
    has_isp = any(n.startswith(ISP_SCOPE + "/") for n in names)
    has_mobilenet = any(n.startswith(MOBILENET_SCOPE + "/") for n in names)
    has_inception = any(n.startswith(INCEPTION_SCOPE + "/") for n in names)
    if has_isp and has_mobilenet:
        return "joint"
    if has_isp and not has_inception:
        return "isp"
    if has_mobilenet and not has_inception:
        return "mobilenet_v1"
    if has_inception and not has_isp and not has_mobilenet:
        return "inception_v4"
    scopes = sorted({n.split("/")[0] for n in names})
    raise CheckpointError(
        f"checkpoint: not a release or slim checkpoint this package knows (expected scopes {ISP_SCOPE}, "
        f"{MOBILENET_SCOPE} or {INCEPTION_SCOPE}); received top-level scopes {scopes}"
    )


def _require(variables, name):
    if name not in variables:
        raise CheckpointError(f"checkpoint: variable {name!r} not found, which the architecture needs")
    return variables[name]


def infer_iterations(variables):
    found = {int(m.group(1)) for n in variables if (m := _ITERATION.match(n))}
    if not found or found != set(range(max(found) + 1)):
        raise CheckpointError(f"checkpoint: {ISP_SCOPE}/iter_N scopes must be iter_0 .. iter_K; found {sorted(found)}")
    return max(found) + 1


def infer_mobilenet(variables):
    """(width, classes) of slim's MobileNet-v1 from its last pointwise convolution and its logits kernel."""
    last = _require(variables, f"{MOBILENET_SCOPE}/Conv2d_13_pointwise/weights")
    logits = _require(variables, f"{MOBILENET_SCOPE}/Logits/Conv2d_1c_1x1/weights")
    return last.shape[-1] / 1024.0, int(logits.shape[-1])


def infer_inception_classes(variables):
    return int(_require(variables, f"{INCEPTION_SCOPE}/Logits/Logits/weights").shape[-1])


# ---- name maps: (Keras variable, checkpoint name) pairs --------------------------------------------------------


def _isp_pairs(isp):
    """The release's names of every weight of an AnscombeNetwork built with scalars="release"."""
    pairs = []
    if isp.lam is not None:
        pairs.append((isp.lam, f"{ISP_SCOPE}/lambda"))
    for k, (prior, projection) in enumerate(zip(isp.priors, isp.projections)):
        scope = f"{ISP_SCOPE}/iter_{k}"
        if projection.parameterization != "beta":
            raise CheckpointError("the release learns beta per iteration: build the ISP with scalars='release'")
        pairs.append((projection.beta, f"{scope}/beta"))
        if prior.first_conv != "dilated":
            raise CheckpointError(
                "the release's prior has a dilated first convolution: build it with first_conv='dilated'"
            )
        units = [("conv_in", prior.conv_in), ("conv_1", prior.conv_1), ("conv_2", prior.conv_2)]
        for level in range(prior.levels):
            base = f"{scope}/prior_grad/depth_{level}"
            for name, layers in units:
                unit = layers[level]
                pairs.append((unit.conv.kernel, f"{base}/{name}/weights"))
                if unit.bn is None:
                    pairs.append((unit.conv.bias, f"{base}/{name}/biases"))
                else:
                    for attr in ("beta", "moving_mean", "moving_variance"):
                        pairs.append((getattr(unit.bn, attr), f"{base}/{name}/BatchNorm/{attr}"))
            if level > 0:
                unit = prior.out_conv[level - 1]
                pairs.append((unit.conv.kernel, f"{base}/out_conv/weights"))
                for attr in ("beta", "moving_mean", "moving_variance"):
                    pairs.append((getattr(unit.bn, attr), f"{base}/out_conv/BatchNorm/{attr}"))
                up = prior.up_conv[level - 1]
                pairs += [(up.kernel, f"{base}/up_conv/weights"), (up.bias, f"{base}/up_conv/biases")]
        out = prior.output_conv
        pairs += [(out.kernel, f"{scope}/prior_grad/depth_0/out_conv/weights")]
        pairs += [(out.bias, f"{scope}/prior_grad/depth_0/out_conv/biases")]
    return pairs


def _batch_norm_pairs(layer, scope):
    names = {"gamma": "gamma", "beta": "beta", "moving_mean": "moving_mean", "moving_variance": "moving_variance"}
    return [
        (getattr(layer, attr), f"{scope}/BatchNorm/{slim}")
        for attr, slim in names.items()
        if getattr(layer, attr, None) is not None
    ]


def _mobilenet_pairs(head):
    """keras.applications.MobileNet's layers -> slim's MobilenetV1 names."""
    pairs = []
    for layer in head.layers:
        name = layer.name
        if name == "conv1":
            pairs.append((layer.kernel, f"{MOBILENET_SCOPE}/Conv2d_0/weights"))
        elif name == "conv1_bn":
            pairs += _batch_norm_pairs(layer, f"{MOBILENET_SCOPE}/Conv2d_0")
        elif m := re.fullmatch(r"conv_(dw|pw)_(\d+)(_bn)?", name):
            kind = "depthwise" if m.group(1) == "dw" else "pointwise"
            scope = f"{MOBILENET_SCOPE}/Conv2d_{m.group(2)}_{kind}"
            if m.group(3):
                pairs += _batch_norm_pairs(layer, scope)
            elif kind == "depthwise":
                pairs.append((layer.kernel, f"{scope}/depthwise_weights"))
            else:
                pairs.append((layer.kernel, f"{scope}/weights"))
        elif name == "conv_preds":
            scope = f"{MOBILENET_SCOPE}/Logits/Conv2d_1c_1x1"
            pairs += [(layer.kernel, f"{scope}/weights"), (layer.bias, f"{scope}/biases")]
    return pairs


def _inception_pairs(head):
    """This package's Inception-v4 (slim's scopes with "." for "/") -> slim's InceptionV4 names."""
    suffix = {"kernel": "weights", "bias": "biases", "beta": "beta", "gamma": "gamma"}
    suffix.update(moving_mean="moving_mean", moving_variance="moving_variance")
    pairs = []
    for layer in head.layers:
        scope = f"{INCEPTION_SCOPE}/" + layer.name.replace(".", "/")
        for variable in layer.weights:
            pairs.append((variable, f"{scope}/{suffix[variable.name]}"))
    return pairs


def _is_ignored(name, mapped, kind):
    if name in _IGNORED or (kind == "inception_v4" and name.startswith(f"{INCEPTION_SCOPE}/AuxLogits/")):
        return True
    base, _, slot = name.rpartition("/")
    return base in mapped and slot != ""  # an optimizer slot or moving-average shadow of a mapped variable


def assign(pairs, variables, kind, model_variables):
    """Copy checkpoint arrays into the Keras variables of `pairs`; refuse unless every model variable gets one and
    every checkpoint variable is used (or ignorable, see the module docstring). Returns the number copied."""
    problems = []
    covered = {id(v) for v, _ in pairs}
    missing_in_model = [v.path for v in model_variables if id(v) not in covered]
    if missing_in_model:
        problems.append(f"model weights with no checkpoint name: {missing_in_model}")
    not_found = [name for _, name in pairs if name not in variables]
    if not_found:
        problems.append(f"variables not found in the checkpoint: {not_found}")
    mapped = {name for _, name in pairs}
    unmapped = sorted(n for n in variables if n not in mapped and not _is_ignored(n, mapped, kind))
    if unmapped:
        problems.append(f"checkpoint variables that map to no model weight: {unmapped}")
    shapes = [
        f"{name} {tuple(variables[name].shape)} -> {variable.path} {tuple(variable.shape)}"
        for variable, name in pairs
        if name in variables and tuple(variables[name].shape) != tuple(variable.shape)
    ]
    if shapes:
        problems.append(f"shapes that differ: {shapes}")
    if problems:
        raise CheckpointError(f"cannot convert this {kind} checkpoint: " + "; ".join(problems))
    for variable, name in pairs:
        variable.assign(np.asarray(variables[name], dtype=variable.dtype))
    return len(pairs)


# ---- builders -----------------------------------------------------------------------------------------------


def _size(preset, image_size, default):
    if preset is not None and image_size is not None and image_size != preset.spec.image_size:
        raise CheckpointError(f"image_size {image_size} differs from preset {preset.name!r}'s {preset.spec.image_size}")
    return preset.spec.image_size if preset is not None else (image_size or default)


def convert_checkpoint(path, preset=None, image_size=None):
    """The Keras model of the TF1 checkpoint at `path` (see the module docstring), and a summary dict
    {"kind", "variables", "copied", "settings"}. preset: a models/presets.py name fixing the architecture and size;
    image_size: side of the RAW frames (or head images) when no preset is given (default 128; 299 for Inception-v4)."""
    variables = read_checkpoint(path)
    kind = checkpoint_kind(variables)
    named = presets.get_preset(preset) if preset is not None else None
    spec = named.spec if named is not None else None
    settings = {}
    if kind in ("joint", "isp"):
        iterations = infer_iterations(variables)
        conv_in = _require(variables, f"{ISP_SCOPE}/iter_0/prior_grad/depth_0/conv_in/weights")
        if conv_in.shape[2] != 4:
            raise CheckpointError(
                f"checkpoint: the release prior's first convolution takes {conv_in.shape[2]} channels; this package's "
                "Anscombe network feeds it the 3-channel image plus the noise channel (4): noise_channel=True only"
            )
        settings["iterations"] = iterations
    if kind in ("joint", "mobilenet_v1"):
        width, classes = infer_mobilenet(variables)
        settings.update(width=width, classes=classes)
    if kind == "inception_v4":
        settings["classes"] = infer_inception_classes(variables)

    default = INCEPTION_IMAGE_SIZE if kind == "inception_v4" else RELEASE_IMAGE_SIZE
    size = _size(named, image_size, default)
    if kind in ("joint", "isp"):
        if kind == "joint" and spec is not None and (spec.isp != "anscombe" or spec.head != "mobilenet_v1"):
            raise CheckpointError(f"preset {preset!r} is not an Anscombe network + MobileNet-v1, as this checkpoint")
        if spec is not None and spec.isp != "anscombe":
            raise CheckpointError(f"preset {preset!r} has ISP {spec.isp!r}; this checkpoint holds an Anscombe network")
        isp_settings = {**(spec.isp_settings if spec else {}), "iterations": iterations}
        head = {"head": None}
        if kind == "joint":
            head = {"head": "mobilenet_v1", "num_classes": settings["classes"]}
            head["head_width"] = spec.head_width if spec is not None else width
            head["head_bn_momentum"] = spec.head_bn_momentum if spec is not None else heads.SLIM_BN_MOMENTUM
        model = build_model(ModelSpec(size, "anscombe", isp_settings=isp_settings, **head), name=preset)
        pairs = _isp_pairs(model.isp) + (_mobilenet_pairs(model.head) if kind == "joint" else [])
    else:
        if spec is not None and spec.head != kind:
            raise CheckpointError(f"preset {preset!r} has head {spec.head!r}; this checkpoint holds {kind}")
        options = (
            {"head_width": settings["width"], "head_bn_momentum": heads.SLIM_BN_MOMENTUM}
            if kind == "mobilenet_v1"
            else {}
        )
        model = build_model(ModelSpec(size, head=kind, num_classes=settings["classes"], **options))
        pairs = _mobilenet_pairs(model.head) if kind == "mobilenet_v1" else _inception_pairs(model.head)
    copied = assign(pairs, variables, kind, model.weights)
    return model, {"kind": kind, "variables": len(variables), "copied": copied, "settings": settings}
