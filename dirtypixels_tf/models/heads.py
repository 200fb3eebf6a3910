"""Classifier heads by name: MobileNet v1/v2, Inception-v4 and any keras.applications classifier.

Conventions:
- A head is a functional keras.Model named after the head: images [B, H, W, C] -> logits [B, classes].
  The output is logits, never probabilities (no softmax); apply the loss with `from_logits=True`.
- Inputs are what the head expects, not [0, 1] images: map [0, 1] images with `preprocess_for_head(name)` first
  (the joint model does this inside the graph).
- Classes: 1000 is the Keras/ImageNet layout. 1001 is the slim / original-release layout: index 0 is a background
  class and ImageNet class k is logit k + 1. `include_background=True` adds that background logit to `num_classes`
  (so num_classes=1000, include_background=True gives the release's 1001 logits). Any positive count is allowed.
- Weights: random initialization, or a local weights file (`weights=PATH`). Nothing is downloaded.
- No weight decay is attached to the heads; the training code applies it (training/optimizers.py).
- Batch norm: Keras' defaults (momentum 0.99) unless `bn_momentum` is given; slim's MobileNet-v1 and Inception-v4
  (the release's) decay at SLIM_BN_MOMENTUM = 0.9997, which the release presets set. Inception-v4 here always
  uses slim's value. Epsilon is 1e-3 in both.
"""

import os

import keras
import numpy as np

from dirtypixels_tf.models.inception_v4 import inception_v4

BUILTIN_HEADS = ("mobilenet_v1", "mobilenet_v2", "inception_v4")
SLIM_BN_MOMENTUM = 0.9997


def keras_application_names():
    """Names of the classifier builders in keras.applications (e.g. "ResNet50", "EfficientNetB0", "VGG16")."""
    return sorted(n for n in dir(keras.applications) if n[:1].isupper() and callable(getattr(keras.applications, n)))


def head_names():
    """Every name `build_head` accepts: the three built-in heads, then the keras.applications names."""
    return list(BUILTIN_HEADS) + keras_application_names()


def _check_name(name):
    if not isinstance(name, str) or name not in head_names():
        raise ValueError(f"name: unknown head {name!r}; valid names are {', '.join(head_names())}")
    return name


def _application_module(name):
    """The keras.applications submodule of a builder, holding its `preprocess_input` (ResNet50 -> resnet)."""
    module_name = getattr(keras.applications, name).__module__.rsplit(".", 1)[-1]
    return getattr(keras.applications, module_name)


def _to_minus_one_one(images):
    return images * 2.0 - 1.0


def preprocess_for_head(name):
    """Return a callable mapping images in [0, 1] to the input range head `name` was designed (and pretrained) for.

    - "mobilenet_v1", "mobilenet_v2", "inception_v4": [-1, 1], that is 2 x - 1 (the slim / Keras "tf" mode).
    - keras.applications names: `keras.applications.<module>.preprocess_input(255 x)`, the Keras preprocessing for
      [0, 255] RGB input ("caffe" mode for VGG/ResNet: BGR with the ImageNet mean removed; "torch" mode for DenseNet;
      pass-through for EfficientNet/ConvNeXt/MobileNetV3, whose models rescale internally).
    Works on NumPy arrays, tensors and symbolic Keras tensors; the input is not modified.
    """
    name = _check_name(name)
    if name in BUILTIN_HEADS:
        return _to_minus_one_one
    preprocess_input = _application_module(name).preprocess_input

    def preprocess(images):
        return preprocess_input(keras.ops.multiply(images, 255.0))

    preprocess.__name__ = f"preprocess_{name}"
    return preprocess


def _check_input_shape(input_shape):
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels); received {input_shape!r}")
    for side in shape:
        if side is not None and (isinstance(side, bool) or not isinstance(side, int) or side < 1):
            raise ValueError(f"input_shape entries must be positive integers (or None); received {input_shape!r}")
    return shape


def _check_weights(weights):
    """Return None or an existing local weights file path; refuse names Keras would download."""
    if weights is None:
        return None
    if isinstance(weights, str) and weights.lower() == "imagenet":
        raise ValueError(
            "weights='imagenet' is not supported: Keras downloads those files from the internet, which this machine "
            "cannot reach. Download the weights file on a connected machine and pass its local path, e.g. "
            "weights='/path/to/mobilenet.weights.h5' (a file written by model.save_weights, or any file "
            "keras.Model.load_weights reads, with the same architecture and class count)."
        )
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights must be None or the path of a local weights file; received {weights!r}")
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise ValueError(f"weights file not found: received weights={path!r} (no such file on this machine)")
    return path


def build_head(
    name,
    input_shape=(128, 128, 3),
    num_classes=1000,
    width=1.0,
    weights=None,
    include_background=False,
    aux_logits=False,
    bn_momentum=None,
):
    """Build classifier head `name` (see `head_names()`): images [B, H, W, C] -> logits [B, num_classes (+1)].

    Args:
        name: "mobilenet_v1" (keras.applications.MobileNet), "mobilenet_v2" (MobileNetV2; the paper's baseline
            uses width 1.4), "inception_v4" (slim layout, this package), or a keras.applications builder name
            such as "ResNet50", built with include_top=True and classifier_activation=None.
        input_shape: (height, width, channels) of the head's input. Keras heads with a classifier need a static
            size at least their minimum (32 for MobileNet); Inception-v4 needs >= 75 (reference 299).
        num_classes: number of logits (1001 = slim layout with background at index 0).
        width: width multiplier (Keras `alpha`) of MobileNet v1/v2; must be 1.0 for the other heads.
        weights: None (random initialization) or the path of a local weights file, loaded with
            `keras.Model.load_weights` (a `.weights.h5` from `save_weights`, a `.keras` file, or a legacy Keras
            `.h5` file). "imagenet" is refused: it would be downloaded, and this machine has no internet.
        include_background: add a background logit at index 0 (slim / release convention).
        aux_logits: Inception-v4 only: also output the auxiliary logits (outputs become a dict, see inception_v4).
        bn_momentum: batch-norm momentum (decay of the moving statistics) of every BatchNormalization layer of the
            head, in [0, 1); None keeps the builder's (0.99 for keras.applications, 0.9997 for Inception-v4).

    Returns:
        A functional keras.Model named `name`.
    """
    name = _check_name(name)
    shape = _check_input_shape(input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; received {num_classes!r}")
    if not isinstance(include_background, bool):
        raise ValueError(f"include_background must be True or False; received {include_background!r}")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not np.isfinite(width) or width <= 0:
        raise ValueError(f"width must be a positive number; received {width!r}")
    if not isinstance(aux_logits, bool):
        raise ValueError(f"aux_logits must be True or False; received {aux_logits!r}")
    if aux_logits and name != "inception_v4":
        raise ValueError(f"aux_logits=True is only available for 'inception_v4'; received name={name!r}")
    if bn_momentum is not None and (
        isinstance(bn_momentum, bool) or not isinstance(bn_momentum, (int, float)) or not 0.0 <= bn_momentum < 1.0
    ):
        raise ValueError(f"bn_momentum must be None or a number in [0, 1); received {bn_momentum!r}")
    path = _check_weights(weights)
    classes = num_classes + int(include_background)

    keras_builders = {"mobilenet_v1": "MobileNet", "mobilenet_v2": "MobileNetV2"}
    has_width = name in keras_builders or name in ("MobileNet", "MobileNetV2", "MobileNetV3Large", "MobileNetV3Small")
    if not has_width and width != 1.0:
        raise ValueError(f"width must be 1.0 for head {name!r} (it has no width multiplier); received {width!r}")

    try:
        if name == "inception_v4":
            model = inception_v4(shape, num_classes=classes, aux_logits=aux_logits, name=name)
        else:
            builder = getattr(keras.applications, keras_builders.get(name, name))
            extra = {"alpha": float(width)} if has_width else {}
            model = builder(
                input_shape=shape,
                weights=None,
                include_top=True,
                classes=classes,
                classifier_activation=None,
                name=name,
                **extra,
            )
    except ValueError as err:
        raise ValueError(f"cannot build head {name!r} with input_shape={input_shape!r}: {err}") from err

    if bn_momentum is not None:
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = float(bn_momentum)
    if path is not None:
        try:
            model.load_weights(path)
        except (ValueError, OSError) as err:
            reason = str(err).split("Target variable:")[0].strip()  # Keras appends the whole variable's values
            raise ValueError(
                f"weights={path!r} cannot be loaded into head {name!r} (input_shape={shape}, {classes} classes, "
                f"width={width}): {reason}"
            ) from err
    return model
