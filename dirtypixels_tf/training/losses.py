"""Losses and metrics of the training recipes, keyed by the model's output names.

Every objective is a dict {output name: keras Loss} with weights {output name: float}, which model.compile takes
as is and the multi-worker loop (loop.py) applies per example:
- "classification": sparse cross entropy of "logits" against the integer label (from logits, label smoothing
  eps spreads eps / classes to every class as slim does).
- "segmentation": per-pixel softmax cross entropy of "segmentation" (logits [B, H, W, K]) against the label map
  [B, H, W] (PixelCrossEntropy: pixels labelled catalog.IGNORE_LABEL = 255 count nowhere).
- "l1" / "mse": the ISP's "image" against the clean image (pixel mean of |x - y| or (x - y)^2).
- "liu" (Liu et al. Eq. 1): MSE("image", clean) + weight * cross entropy("logits", label), weight = lambda = 0.25;
  with image_loss "l1" the image term is the mean absolute error instead. On a segmentation model (task
  "segmentation") the second term is the per-pixel cross entropy of "segmentation" (Liu et al.: lambda = 0.5):
  `loss_outputs(kind, task)` names what each objective reads.
- "nidf_pretrain" (NIDF Eq. 3 and 4): MSE("denoised", B) + MSE("deblurred", I): the denoiser fed the RAW frame
  against the blurred clean image B, and the deblurrer fed B against the sharp image I. The two terms share no
  weights, so minimizing their sum trains the two networks separately, as the paper's pretraining does.
- "nidf" (NIDF Eq. 5): MSE("denoised", B) + weight * MSE("image", I), weight 0.5.
- "psnr": minus the mean PSNR of "image" against the clean image (L-BFGS pretraining, lbfgs.py).
The papers' squared norms ||.||^2 are taken as pixel means (a constant factor per image size, the same for
every term of a sum, so the optimum and the ratio of the terms are unchanged).

Targets: the data pipeline's "clean" feature is the preprocessed image before optics, the sharp I. The blurred
clean image B is the sensor's optics applied to it (SensorModel.optics: the same PSF and boundary as the RAW
frames), computed in `make_targets`.
"""

import math

import keras
import tensorflow as tf

from dirtypixels_tf.catalog import IGNORE_LABEL
from dirtypixels_tf.models.segmentation import MeanIoU

IMAGE_KINDS = ("l1", "mse", "psnr")
# The model outputs each objective reads (for a classifier; `loss_outputs` for either task); the targets come from
# the clean image for every output but the task's ("logits", "segmentation"), which reads the label.
TASK_OUTPUTS = {"classification": "logits", "segmentation": "segmentation"}
LOSS_OUTPUTS = {
    "classification": ("logits",),
    "segmentation": ("segmentation",),
    "l1": ("image",),
    "mse": ("image",),
    "psnr": ("image",),
    "liu": ("image", "logits"),
    "nidf_pretrain": ("denoised", "deblurred"),
    "nidf": ("image", "denoised"),
}


def loss_outputs(kind, task="classification"):
    """The model outputs objective `kind` reads on a model of `task`: "liu" reads the task's output."""
    if kind == "liu":
        return ("image", TASK_OUTPUTS[task])
    return LOSS_OUTPUTS[kind]


def needs_clean_image(kind):
    """True when the targets of objective `kind` are computed from the clean image."""
    return any(name not in TASK_OUTPUTS.values() for name in LOSS_OUTPUTS[kind])


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class PixelCrossEntropy(keras.losses.Loss):
    """Softmax cross entropy of per-pixel logits [B, H, W, K] against label maps [B, H, W] (integers in [0, K), or
    `ignore_label` for pixels that count nowhere). Per example: the mean over its labelled pixels (0 for an image
    without any); the batch value is the mean over examples."""

    def __init__(self, ignore_label=IGNORE_LABEL, name="pixel_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_label = int(ignore_label)

    def call(self, y_true, y_pred):
        labels = tf.cast(y_true, tf.int32)
        labelled = tf.not_equal(labels, self.ignore_label)
        safe = tf.where(labelled, labels, tf.zeros_like(labels))
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(safe, y_pred)
        weights = tf.cast(labelled, losses.dtype)
        total = tf.reduce_sum(losses * weights, axis=[1, 2])
        return total / tf.maximum(tf.reduce_sum(weights, axis=[1, 2]), 1.0)

    def get_config(self):
        return {**super().get_config(), "ignore_label": self.ignore_label}


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class SparseCrossEntropy(keras.losses.Loss):
    """Cross entropy of logits [B, C] against integer labels [B] with label smoothing (eps / C to every class)."""

    def __init__(self, label_smoothing=0.0, name="sparse_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        one_hot = tf.one_hot(labels, tf.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=True, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def psnr_per_image(y_true, y_pred, max_value=1.0):
    """PSNR in dB of each image [B, H, W, C] (values in [0, max_value]): 10 log10(max^2 / mean squared error), in
    float64 for float64 estimates and float32 otherwise."""
    dtype = tf.float64 if tf.as_dtype(y_pred.dtype) == tf.float64 else tf.float32
    y_true = tf.cast(y_true, dtype)
    y_pred = tf.cast(y_pred, dtype)
    mse = tf.reduce_mean(tf.square(y_true - y_pred), axis=tf.range(1, tf.rank(y_true)))
    return 10.0 * tf.math.log(max_value**2 / tf.maximum(mse, 1e-12)) / math.log(10.0)


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class PSNR(keras.metrics.Mean):
    """Mean PSNR (dB) over the images seen, images in [0, 1]."""

    def __init__(self, name="psnr", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(psnr_per_image(y_true, y_pred), sample_weight)


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class NegativePSNR(keras.losses.Loss):
    """Minus the PSNR of each image (dB); its batch mean is minus the average PSNR (Diamond et al. 2017's pretraining goal)."""

    def __init__(self, name="negative_psnr", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return -psnr_per_image(y_true, y_pred)


_IMAGE_LOSSES = {"l1": keras.losses.MeanAbsoluteError, "mse": keras.losses.MeanSquaredError}
LIU_IMAGE_LOSS = "mse"  # the "liu" loss's image term when image_loss is unset (Liu et al. 2018)


def build_losses(loss_config, dtype=None, task="classification"):
    """(losses {output: Loss}, loss_weights {output: float}) of a LossConfig for a model of `task`. dtype: the losses'
    compute dtype (None: Keras' float32, also under mixed precision; "float64" for double-precision runs, which Keras
    would round)."""
    kind = loss_config.kind
    cross_entropy = SparseCrossEntropy(loss_config.label_smoothing, dtype=dtype)
    if task == "segmentation":
        cross_entropy = PixelCrossEntropy(dtype=dtype)
    if kind == "classification":
        return {"logits": cross_entropy}, {"logits": 1.0}
    if kind == "segmentation":
        return {"segmentation": cross_entropy}, {"segmentation": 1.0}
    if kind in _IMAGE_LOSSES:
        return {"image": _IMAGE_LOSSES[kind](dtype=dtype)}, {"image": 1.0}
    if kind == "psnr":
        return {"image": NegativePSNR(dtype=dtype)}, {"image": 1.0}
    if kind == "liu":
        task_output = TASK_OUTPUTS[task]
        return (
            {"image": _IMAGE_LOSSES[loss_config.image_loss or LIU_IMAGE_LOSS](dtype=dtype), task_output: cross_entropy},
            {"image": 1.0, task_output: float(loss_config.weight)},
        )
    if kind == "nidf_pretrain":
        return (
            {
                "denoised": keras.losses.MeanSquaredError(dtype=dtype),
                "deblurred": keras.losses.MeanSquaredError(dtype=dtype),
            },
            {"denoised": 1.0, "deblurred": 1.0},
        )
    if kind == "nidf":
        return (
            {
                "denoised": keras.losses.MeanSquaredError(dtype=dtype),
                "image": keras.losses.MeanSquaredError(dtype=dtype),
            },
            {"denoised": 1.0, "image": float(loss_config.weight)},
        )
    raise ValueError(f"loss.kind: unknown loss {kind!r}")


def build_metrics(outputs, num_classes=None):
    """Compile metrics for the model's outputs: top-1 (and top-5 with more than 5 classes, add_top5) for "logits",
    mean IoU and pixel accuracy for "segmentation" (num_classes needed), PSNR for image outputs."""
    metrics = {}
    for name in outputs:
        if name == "logits":
            metrics[name] = [keras.metrics.SparseCategoricalAccuracy(name="top1")]
        elif name == "segmentation":
            metrics[name] = [MeanIoU(num_classes), PixelAccuracy()]
        else:
            metrics[name] = [PSNR()]
    return metrics


def add_top5(metrics, num_classes):
    if "logits" in metrics and num_classes > 5:
        metrics["logits"].append(keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5"))
    return metrics


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class PixelAccuracy(keras.metrics.Mean):
    """Fraction of the labelled pixels (not IGNORE_LABEL) whose arg-max logit is their label, over all pixels seen."""

    def __init__(self, name="pixel_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.cast(y_true, tf.int32)
        correct = tf.cast(tf.equal(tf.argmax(y_pred, axis=-1, output_type=tf.int32), labels), self.dtype)
        return super().update_state(correct, tf.cast(tf.not_equal(labels, IGNORE_LABEL), self.dtype))


def per_example_loss(losses, weights, targets, outputs):
    """The weighted sum of the losses per example, [B] in the losses' dtype (each term averaged over its non-batch
    axes), for custom loops that average over the global batch themselves."""
    total = None
    for name, loss in losses.items():
        value = tf.cast(loss.call(targets[name], tf.cast(outputs[name], loss.dtype)), loss.dtype)
        if value.shape.rank > 1:
            value = tf.reduce_mean(value, axis=tf.range(1, tf.rank(value)))
        term = weights[name] * value
        total = term if total is None else total + term
    return total


def make_targets(kind, model_inputs, sensor=None, task="classification"):
    """A map (features, label) -> (model inputs, targets) for batched pipeline output (with include_clean=True
    when a target needs the clean image). `model_inputs`: the names the model takes (e.g. {"raw", "alpha",
    "sigma"}, or {"clean"} for a head trained on clean images). `sensor`: the SensorModel of the data, whose optics
    give the blurred clean image B of the NIDF losses. `task`: the model's ("liu" targets its output)."""
    model_inputs = tuple(model_inputs)

    def blurred(clean):
        return sensor.optics(clean)

    def fn(features, label):
        inputs = {name: features[name] for name in model_inputs if name != "blurred"}
        if kind == "classification":
            targets = {"logits": label}
        elif kind == "segmentation":
            targets = {"segmentation": label}
        elif kind in IMAGE_KINDS:
            targets = {"image": features["clean"]}
        elif kind == "liu":
            targets = {"image": features["clean"], TASK_OUTPUTS[task]: label}
        elif kind == "nidf_pretrain":
            b = blurred(features["clean"])
            inputs["blurred"] = b
            targets = {"denoised": b, "deblurred": features["clean"]}
        elif kind == "nidf":
            targets = {"denoised": blurred(features["clean"]), "image": features["clean"]}
        else:
            raise ValueError(f"loss.kind: unknown loss {kind!r}")
        return inputs, targets

    return fn
