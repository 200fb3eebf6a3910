"""Dense heads (semantic segmentation) and the segmentation models built from an ISP and a dense head.

Conventions:
- A dense head is a functional keras.Model named after the head: images [B, H, W, C] (what the head expects, see
  `preprocessing_name`) -> per-pixel logits [B, H, W, num_classes] at the input's size: the logits at the head's
  output stride are upsampled bilinearly (keras.layers.Resizing: half-pixel centres, no corner alignment) by its
  last layer, "upsample_logits". Logits, never probabilities. Input sizes are static (the heads are built for one
  size, as the classifier heads).
- Heads (`dense_head_names()`):
  - "deeplab_largefov": DeepLab-LargeFOV of Chen et al. 2015 on VGG-16: the 13 VGG-16 convolutions (3x3, bias,
    ReLU; keras.applications.VGG16's layer names), pool1-3 3x3 max pools of stride 2 ("same" padding: 321 -> 161 ->
    81 -> 41), pool4 and pool5 3x3 max pools of stride 1, conv5 with dilation 2, fc6 a 3x3 convolution with
    dilation 12 to 1024 channels, fc7 1x1 to 1024, dropout after fc6 and fc7, fc8 1x1 to the classes; output stride
    8. No batch norm. Input: VGG-16's ("caffe" mode: BGR, ImageNet mean removed, [0, 255]).
  - "mobilenet_v1_aspp": the small dense head for CPU-scale runs: MobileNet-v1 (Howard et al. 2017, width
    multiplier `width`, keras.applications.MobileNet's layer names) made atrous past output stride 8 (each later
    stride-2 depthwise layer runs at stride 1 and the dilation of the layers after it doubles), then the light
    atrous spatial pyramid pooling of `aspp` (`ASPP_CHANNELS` channels, rates `ASPP_RATES`). Input: [-1, 1].
  - any keras.applications builder name (e.g. "ResNet50", "EfficientNetB0") as the encoder: its convolutional
    part (include_top=False, at its own output stride, 32 for most) then the same light ASPP. Input: the Keras
    preprocessing of that builder (heads.preprocess_for_head).
  The light ASPP (after Chen et al. 2017's DeepLab-v3, light as MobileNet segmentation heads use it): a 1x1 branch,
  one depthwise-separable 3x3 branch per rate (dilation = rate), and an image-pooling branch (global average, 1x1,
  broadcast back), each to `channels` with batch norm and ReLU; concatenated, projected 1x1 to `channels` (batch
  norm, ReLU), dropout, then a 1x1 convolution with bias to the classes ("logits").
- Batch norm: Keras' defaults (momentum 0.99, epsilon 1e-3) unless `bn_momentum` is given.
- Weights: random initialization or a local weights file (as heads.build_head; nothing is downloaded).

Models (component models, like models/joint.py's; the task output is named "segmentation"):
- JointSegmenter: RAW frames {"raw" [B, H, W, 1] in [0, 1], "alpha", "sigma" [B] (and "psf" for an ISP that takes
  it)} -> {"segmentation": logits [B, H, W, K], "image": the ISP's image [B, H, W, 3], ...the ISP's other outputs}.
  The ISP's image is clipped to [0, 1] and mapped to the head's input range by joint.HeadPreprocessing. The head is
  frozen by default (freeze="head"), as Liu et al. 2018 keep the segmentation network trained on clean images fixed;
  freeze=None trains it too.
- HeadSegmenter: the dense head alone on clean images {"clean" [B, H, W, 3] in [0, 1]} -> {"segmentation"} (its
  stage 1).

Scores (VOC devkit rules; evaluation/metrics.py re-exports them): a confusion matrix C [K, K] counts pixels, C[t, p]
those of true class t predicted as p, pixels labelled catalog.IGNORE_LABEL (255) left out; IoU of class k = C[k, k]
/ (row k sum + column k sum - C[k, k]); a class absent from truth and prediction has no IoU (nan) and is left out of
the mean ("miou"); pixel accuracy = trace / total. `MeanIoU` is the Keras metric, `confusion_matrix` and
`segmentation_scores` the NumPy side.
"""

import keras
import numpy as np

from dirtypixels_tf.catalog import IGNORE_LABEL
from dirtypixels_tf.models import heads
from dirtypixels_tf.models.components import ComponentModel, check_size, isp_outputs
from dirtypixels_tf.models.joint import FREEZE_CHOICES, HeadPreprocessing

TASK = "segmentation"
OUTPUT = "segmentation"  # the models' output of per-pixel logits
DENSE_HEADS = ("deeplab_largefov", "mobilenet_v1_aspp")
OUTPUT_STRIDE = 8  # of the two built-in dense heads
ASPP_CHANNELS = 64
ASPP_RATES = (2, 4)
DROPOUT = 0.5  # DeepLab-LargeFOV's after fc6 and fc7, and the ASPP's before the classifier

# VGG-16's convolutions by block (keras.applications.VGG16's names block{b}_conv{i}).
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
# MobileNet-v1's 13 separable layers (Howard et al. 2017, Table 1): (stride, pointwise output channels).
MOBILENET_V1_LAYERS = (
    (1, 64),
    (2, 128),
    (1, 128),
    (2, 256),
    (1, 256),
    (2, 512),
    *[(1, 512)] * 5,
    (2, 1024),
    (1, 1024),
)


def dense_head_names():
    """Every name `build_dense_head` accepts: the built-in dense heads, then the keras.applications names."""
    return list(DENSE_HEADS) + heads.keras_application_names()


def _check_name(name):
    if not isinstance(name, str) or name not in dense_head_names():
        raise ValueError(f"name: unknown dense head {name!r}; valid names are {', '.join(dense_head_names())}")
    return name


def preprocessing_name(name):
    """The classifier head (heads.preprocess_for_head) whose input convention dense head `name` takes."""
    return {"deeplab_largefov": "VGG16", "mobilenet_v1_aspp": "mobilenet_v1"}.get(_check_name(name), name)


def _bn(momentum, name):
    return keras.layers.BatchNormalization(name=name, **({} if momentum is None else {"momentum": momentum}))


def _conv_bn_relu(x, filters, kernel, name, momentum, dilation=1):
    x = keras.layers.Conv2D(filters, kernel, padding="same", dilation_rate=dilation, use_bias=False, name=name)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(_bn(momentum, f"{name}_bn")(x))


def aspp(features, num_classes, channels=ASPP_CHANNELS, rates=ASPP_RATES, dropout=DROPOUT, bn_momentum=None):
    """The light atrous spatial pyramid pooling and classifier of the module docstring: features [B, h, w, C] ->
    logits [B, h, w, num_classes]."""
    height, width = features.shape[1:3]
    branches = [_conv_bn_relu(features, channels, 1, "aspp_1x1", bn_momentum)]
    for rate in rates:
        x = keras.layers.DepthwiseConv2D(
            3, padding="same", dilation_rate=rate, use_bias=False, name=f"aspp_rate{rate}_depthwise"
        )(features)
        x = keras.layers.ReLU(name=f"aspp_rate{rate}_depthwise_relu")(
            _bn(bn_momentum, f"aspp_rate{rate}_depthwise_bn")(x)
        )
        branches.append(_conv_bn_relu(x, channels, 1, f"aspp_rate{rate}_pointwise", bn_momentum))
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(features)
    pooled = _conv_bn_relu(pooled, channels, 1, "aspp_pool_conv", bn_momentum)
    branches.append(keras.layers.UpSampling2D((height, width), name="aspp_pool_broadcast")(pooled))
    x = keras.layers.Concatenate(name="aspp_concat")(branches)
    x = _conv_bn_relu(x, channels, 1, "aspp_projection", bn_momentum)
    x = keras.layers.Dropout(dropout, name="aspp_dropout")(x)
    return keras.layers.Conv2D(num_classes, 1, name="logits")(x)


def _deeplab_largefov(inputs, num_classes, dropout):
    x = inputs
    for block, widths in enumerate(VGG16_BLOCKS, start=1):
        dilation = 2 if block == 5 else 1
        for index, filters in enumerate(widths, start=1):
            x = keras.layers.Conv2D(
                filters, 3, padding="same", dilation_rate=dilation, activation="relu", name=f"block{block}_conv{index}"
            )(x)
        x = keras.layers.MaxPooling2D(3, strides=2 if block <= 3 else 1, padding="same", name=f"block{block}_pool")(x)
    x = keras.layers.Conv2D(1024, 3, padding="same", dilation_rate=12, activation="relu", name="fc6")(x)
    x = keras.layers.Dropout(dropout, name="fc6_dropout")(x)
    x = keras.layers.Conv2D(1024, 1, activation="relu", name="fc7")(x)
    x = keras.layers.Dropout(dropout, name="fc7_dropout")(x)
    return keras.layers.Conv2D(num_classes, 1, name="fc8")(x)


def atrous_mobilenet_v1(inputs, width=1.0, output_stride=OUTPUT_STRIDE, bn_momentum=None):
    """MobileNet-v1's features at `output_stride` (8, 16 or 32): keras.applications.MobileNet's layers and names
    (ReLU6, no bias, batch norm; channels int(c * width)), with the stride-2 depthwise layers past the output
    stride run at stride 1 and the dilation of the later layers multiplied by 2 each time."""
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16 or 32; received {output_stride!r}")

    def relu6(x, name):
        return keras.layers.ReLU(6.0, name=name)(x)

    x = keras.layers.Conv2D(int(32 * width), 3, strides=2, padding="same", use_bias=False, name="conv1")(inputs)
    x = relu6(_bn(bn_momentum, "conv1_bn")(x), "conv1_relu")
    stride, dilation = 2, 1
    for index, (layer_stride, filters) in enumerate(MOBILENET_V1_LAYERS, start=1):
        atrous = layer_stride == 2 and stride >= output_stride
        x = keras.layers.DepthwiseConv2D(
            3,
            strides=1 if atrous else layer_stride,
            dilation_rate=dilation,
            padding="same",
            use_bias=False,
            name=f"conv_dw_{index}",
        )(x)
        x = relu6(_bn(bn_momentum, f"conv_dw_{index}_bn")(x), f"conv_dw_{index}_relu")
        x = keras.layers.Conv2D(int(filters * width), 1, use_bias=False, name=f"conv_pw_{index}")(x)
        x = relu6(_bn(bn_momentum, f"conv_pw_{index}_bn")(x), f"conv_pw_{index}_relu")
        if atrous:
            dilation *= 2
        else:
            stride *= layer_stride
    return x


def build_dense_head(name, input_shape=(64, 64, 3), num_classes=21, width=1.0, weights=None, bn_momentum=None):
    """Build dense head `name` (see the module docstring): images [B, H, W, C] -> logits [B, H, W, num_classes].

    Args:
        name: "deeplab_largefov", "mobilenet_v1_aspp" or a keras.applications builder name (the encoder).
        input_shape: static (height, width, channels).
        num_classes: classes per pixel (21 for Pascal VOC: background and 20 objects).
        width: MobileNet width multiplier ("mobilenet_v1_aspp" and the keras.applications MobileNets); 1.0 else.
        weights: None or a local weights file (keras.Model.load_weights), as heads.build_head.
        bn_momentum: batch-norm momentum of every BatchNormalization layer, in [0, 1); None keeps the builder's.
    """
    name = _check_name(name)
    shape = heads._check_input_shape(input_shape)
    if None in shape[:2]:
        raise ValueError(f"input_shape must have a static height and width for a dense head; received {input_shape!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; received {num_classes!r}")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"width must be a positive number; received {width!r}")
    has_width = name in ("mobilenet_v1_aspp", "MobileNet", "MobileNetV2", "MobileNetV3Large", "MobileNetV3Small")
    if not has_width and width != 1.0:
        raise ValueError(f"width must be 1.0 for dense head {name!r} (it has no width multiplier); received {width!r}")
    if bn_momentum is not None and (
        isinstance(bn_momentum, bool) or not isinstance(bn_momentum, (int, float)) or not 0.0 <= bn_momentum < 1.0
    ):
        raise ValueError(f"bn_momentum must be None or a number in [0, 1); received {bn_momentum!r}")
    path = heads._check_weights(weights)

    inputs = keras.Input(shape, name="images")
    if name == "deeplab_largefov":
        logits = _deeplab_largefov(inputs, num_classes, DROPOUT)
    elif name == "mobilenet_v1_aspp":
        logits = aspp(
            atrous_mobilenet_v1(inputs, float(width), bn_momentum=bn_momentum), num_classes, bn_momentum=bn_momentum
        )
    else:
        extra = {"alpha": float(width)} if has_width else {}
        try:
            encoder = getattr(keras.applications, name)(
                input_shape=shape, include_top=False, weights=None, name=f"{name}_encoder", **extra
            )
        except ValueError as err:
            raise ValueError(f"cannot build encoder {name!r} with input_shape={input_shape!r}: {err}") from err
        if bn_momentum is not None:
            for layer in encoder._flatten_layers(include_self=False, recursive=True):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.momentum = float(bn_momentum)
        logits = aspp(encoder(inputs), num_classes, bn_momentum=bn_momentum)
    upsampled = keras.layers.Resizing(shape[0], shape[1], interpolation="bilinear", name="upsample_logits")(logits)
    model = keras.Model(inputs, upsampled, name=name)
    if path is not None:
        try:
            model.load_weights(path)
        except (ValueError, OSError) as err:
            reason = str(err).split("Target variable:")[0].strip()
            raise ValueError(f"weights={path!r} cannot be loaded into dense head {name!r}: {reason}") from err
    return model


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class JointSegmenter(ComponentModel):
    """ISP layer `isp` then dense head `head` (build_dense_head named `head_name`), one model (module docstring).

    image_size: (H, W) of the RAW frames and of the head's input (a head built for another size is refused);
    psf_size: (kh, kw) of per-image PSFs for an ISP that takes them. freeze: "head" (default: the head is
    non-trainable and keeps its batch-norm statistics, as Liu et al. 2018), None (both train) or "isp".
    clip_image: clip the ISP's image to [0, 1] before the head.
    """

    COMPONENTS = ("isp", "head")
    TASK = TASK
    TASK_OUTPUT = OUTPUT

    def __init__(
        self, isp, head, head_name, image_size, psf_size=None, freeze="head", clip_image=True, name="joint_segmenter"
    ):
        if freeze not in FREEZE_CHOICES:
            raise ValueError(f"freeze must be one of {FREEZE_CHOICES}; received {freeze!r}")
        image_size, psf_size = check_size(image_size, "image_size"), check_size(psf_size, "psf_size")
        expected = tuple(head.inputs[0].shape[1:3])
        if expected != image_size:
            raise ValueError(
                f"raw frames of size {image_size} do not fit dense head {head_name!r}, which expects {expected[0]}x"
                f"{expected[1]} images: build the head at the frames' size"
            )
        inputs, outputs = isp_outputs(isp, image_size, psf_size)
        preprocessing = HeadPreprocessing(preprocessing_name(head_name), clip=clip_image, name="head_preprocessing")
        outputs[OUTPUT] = head(preprocessing(outputs["image"]))
        if freeze == "isp":
            isp.trainable = False
        elif freeze == "head":
            head.trainable = False
        super().__init__(inputs, outputs, name=name)
        self.isp, self.head, self.head_preprocessing = isp, head, preprocessing
        self.head_name, self.image_size, self.psf_size = head_name, image_size, psf_size
        self.freeze, self.clip_image = freeze, clip_image

    def _settings(self):
        return {
            "head_name": self.head_name,
            "image_size": self.image_size,
            "psf_size": self.psf_size,
            "freeze": self.freeze,
            "clip_image": self.clip_image,
        }


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class HeadSegmenter(ComponentModel):
    """The dense head `head` (named `head_name`) alone on clean images: {"clean"} [B, H, W, 3] in [0, 1] ->
    {"segmentation"} [B, H, W, K], through the same HeadPreprocessing as JointSegmenter (the head's stage 1)."""

    COMPONENTS = ("head",)
    TASK = TASK
    TASK_OUTPUT = OUTPUT

    def __init__(self, head, head_name, image_size, name=None):
        image_size = check_size(image_size, "image_size")
        clean = keras.Input((*image_size, 3), name="clean")
        preprocessing = HeadPreprocessing(preprocessing_name(head_name), name="head_preprocessing")
        outputs = {OUTPUT: head(preprocessing(clean))}
        super().__init__({"clean": clean}, outputs, name=name or f"{head_name}_clean")
        self.head, self.head_preprocessing = head, preprocessing
        self.head_name, self.image_size = head_name, image_size

    def _settings(self):
        return {"head_name": self.head_name, "image_size": self.image_size}


def task_of(model):
    """(task, output name) of a model of this package: ("segmentation", "segmentation") for the segmenters,
    ("classification", "logits") for a model with a "logits" output, (None, None) for an ISP alone."""
    if getattr(model, "TASK", None) == TASK:
        return TASK, OUTPUT
    output = model.output if isinstance(model.output, dict) else {}
    return ("classification", "logits") if "logits" in output else (None, None)


def confusion_matrix(labels, predictions, num_classes):
    """int64 [K, K] confusion matrix of label maps `labels` and predicted class maps `predictions` (same shape, any
    rank): C[t, p] counts the pixels of true class t predicted as p; pixels labelled IGNORE_LABEL are left out.
    Other labels must lie in [0, num_classes) and predictions too."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; received {num_classes!r}")
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels and predictions must have one shape; received {labels.shape} and {predictions.shape}")
    keep = labels != IGNORE_LABEL
    labels, predictions = labels[keep].astype(np.int64), predictions[keep].astype(np.int64)
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"{name} must be class indices in [0, {num_classes}) or {IGNORE_LABEL} (ignored); received values "
                f"from {values.min()} to {values.max()}"
            )
    counts = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def segmentation_scores(confusion):
    """{"miou", "pixel_accuracy", "iou": [K] (nan for a class absent from truth and prediction)} of a confusion
    matrix [K, K] (rows: truth; module docstring), in float64; miou is nan when no class is present."""
    confusion = np.asarray(confusion, np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or (confusion < 0).any():
        raise ValueError(f"confusion must be a square matrix of counts; received shape {confusion.shape}")
    true_positives = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - true_positives
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positives / union, np.nan)
    total = confusion.sum()
    present = ~np.isnan(iou)
    return {
        "miou": float(np.mean(iou[present])) if present.any() else float("nan"),
        "pixel_accuracy": float(true_positives.sum() / total) if total else float("nan"),
        "iou": iou.tolist(),
    }


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class MeanIoU(keras.metrics.MeanIoU):
    """Mean IoU of per-pixel logits [B, H, W, K] against label maps [B, H, W] (module docstring): Keras' MeanIoU
    over an int64 confusion matrix, predictions the arg-max of the logits, IGNORE_LABEL pixels left out, classes
    absent from truth and prediction left out of the mean. `confusion()` returns the matrix for
    `segmentation_scores`."""

    def __init__(self, num_classes, name="miou", **kwargs):
        kwargs = {"ignore_class": IGNORE_LABEL, "sparse_y_pred": False, "dtype": "int64", **kwargs}
        super().__init__(num_classes, name=name, **kwargs)

    def confusion(self):
        return np.asarray(keras.ops.convert_to_numpy(self.total_cm), np.int64)
