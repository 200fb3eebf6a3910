"""Predictors: the models an evaluation runs, behind one call.

A Predictor is a callable (features, psf) -> {"logits", "image", "segmentation"} (each [B, ...] NumPy or None:
class logits [B, K], the intermediate image [B, H, W, 3], per-pixel class scores [B, H, W, K] of a segmentation
model: logits, or probabilities from a SavedModel, whose arg-max is the same) with the RAW frame size it takes (`image_size`, None: any). features: "raw" [B, H, W, 1], "alpha", "sigma" [B]; psf: the cell's PSF.
`load_predictor` opens a training run directory (RUN_DIR/model.keras), a .keras file, a SavedModel (a version
directory, or a base path whose highest numbered version is used: export/layout.py) or a model preset name (random
weights); `ConventionalIspPredictor` runs a conventional ISP (baselines.py) and optionally a classifier head on its
output ("ISP + pretrained head", or a head fine-tuned on that ISP's output).

A model that takes a per-image PSF input gets the cell's PSF, zero-padded around its centre to the model's PSF
size (a delta for "none").
"""

import abc
import os

import numpy as np
import tensorflow as tf

from dirtypixels_tf.catalog import ISP_SIGNATURE, SERVING_SIGNATURE
from dirtypixels_tf.data import preprocessing
from dirtypixels_tf.evaluation.baselines import ConventionalIsp
from dirtypixels_tf.export import layout
from dirtypixels_tf.models.loading import load_model

# The per-pixel output of a segmentation SavedModel ([B, H, W, K]; a classifier's of that name is [B, K]).
SEGMENTATION_SCORES = "probabilities"


class Predictor(abc.ABC):
    """Base of the wrappers: `image_size` (H, W) of the RAW frames it takes (None: any), `class_names` (or None),
    `description`, and __call__(features, psf) -> {"logits": [B, C] or None, "image": [B, H, W, 3] or None,
    "segmentation": [B, H, W, C] or None}.
    features: "raw" [B, H, W, 1], "alpha", "sigma" [B] (NumPy); psf: the cell's PSF [kh, kw, C] or None."""

    image_size = None
    class_names = None
    description = "predictor"

    @abc.abstractmethod
    def __call__(self, features, psf):
        """{"logits", "image", "segmentation"} of one batch of features under the PSF `psf`."""


def _numpy(value):
    return None if value is None else np.asarray(value)


def _task_outputs(scores):
    """{"logits", "segmentation"} of a head's output: [B, K] class logits, or [B, H, W, K] per-pixel scores."""
    scores = _numpy(scores)
    dense = scores is not None and scores.ndim == 4
    return {"logits": None if dense else scores, "segmentation": scores if dense else None}


def _pad_psf(psf, size):
    """A PSF [kh, kw, 3] (None = a delta) zero-padded around its centre to `size` (kh', kw') >= its own."""
    psf = np.ones((1, 1, 3), np.float32) if psf is None else np.asarray(psf, np.float32)
    if psf.ndim == 2:
        psf = np.repeat(psf[..., np.newaxis], 3, axis=-1)
    kh, kw = psf.shape[:2]
    if kh > size[0] or kw > size[1]:
        raise ValueError(f"the model takes PSFs of size {size[0]}x{size[1]}; received a {kh}x{kw} PSF")
    top, left = size[0] // 2 - kh // 2, size[1] // 2 - kw // 2
    padded = np.zeros((*size, psf.shape[-1]), np.float32)
    padded[top : top + kh, left : left + kw] = psf
    return padded


class KerasPredictor(Predictor):
    """A Keras model with inputs {"raw", "alpha", "sigma"[, "psf"]} and outputs {"logits" or "segmentation",
    "image", ...}, a plain ISP model (output = the image), or a model whose outputs lack one of them (that metric is
    None)."""

    def __init__(self, model, description=None, class_names=None):
        import keras

        if not isinstance(model, keras.Model):
            raise ValueError(f"model must be a keras.Model; received {type(model).__name__}")
        try:
            model_input = model.input
        except (AttributeError, ValueError):  # a subclassed model never called has no input
            raise ValueError(f"model {model.name!r} must be a functional model with named inputs") from None
        inputs = model_input if isinstance(model_input, dict) else {}
        if not {"raw", "alpha", "sigma"} <= set(inputs):
            received = sorted(inputs) if inputs else [t.name for t in model.inputs]
            hint = " (a head alone: wrap it in ConventionalIspPredictor with a conventional ISP)" if inputs else ""
            raise ValueError(f"model must take the inputs raw, alpha and sigma; received inputs {received}{hint}")
        self.image_size = _model_image_size(model)
        self.psf_size = tuple(int(v) for v in inputs["psf"].shape[1:3]) if "psf" in inputs else None
        self.model = model
        self.class_names = class_names
        self.description = description or f"keras model {model.name}"
        self._predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self, features, psf):
        inputs = {key: tf.constant(features[key]) for key in ("raw", "alpha", "sigma")}
        if self.psf_size is not None:
            padded = _pad_psf(psf, self.psf_size)
            inputs["psf"] = tf.constant(np.broadcast_to(padded, (len(features["raw"]), *padded.shape)))
        outputs = self._predict(inputs)
        return {
            "logits": _numpy(outputs.get("logits")),
            "image": _numpy(outputs.get("image")),
            "segmentation": _numpy(outputs.get("segmentation")),
        }


class SavedModelPredictor(Predictor):
    """A SavedModel exported by dirtypixels_tf.export: signature "serving_default" (raw, alpha, sigma -> "logits"
    or, for an ISP alone, "image") and, when present, "isp" (-> "image")."""

    def __init__(self, path):
        directory = layout.find_savedmodel(path)
        if directory is None:
            raise ValueError(f"path must be a SavedModel directory (or a base path of versions); received {path!r}")
        self.loaded = tf.saved_model.load(directory)
        signatures = self.loaded.signatures
        if SERVING_SIGNATURE not in signatures:
            raise ValueError(
                f"SavedModel {directory!r} has no {SERVING_SIGNATURE} signature; it has {list(signatures)}"
            )
        self.serving = signatures[SERVING_SIGNATURE]
        self.isp = signatures.get(ISP_SIGNATURE)
        self.metadata = {}
        specs = self.serving.structured_input_signature[1]
        if not {"raw", "alpha", "sigma"} <= set(specs):
            raise ValueError(
                f"SavedModel {directory!r}: serving_default must take raw, alpha and sigma; it takes {sorted(specs)}"
            )
        shape = tuple(specs["raw"].shape)
        self.image_size = None if None in shape[1:3] else tuple(int(v) for v in shape[1:3])
        metadata = layout.read_export_metadata(directory)
        if metadata is not None:
            self.metadata = metadata
            self.class_names = metadata.get("class_names")
        self.description = f"SavedModel {directory}"

    def __call__(self, features, psf):
        inputs = {key: tf.constant(features[key], tf.float32) for key in ("raw", "alpha", "sigma")}
        outputs = self.serving(**inputs)
        image = outputs.get("image")
        if image is None and self.isp is not None:
            image = self.isp(**inputs)["image"]
        scores = _numpy(outputs.get(SEGMENTATION_SCORES))
        dense = scores is not None and scores.ndim == 4  # a classifier's probabilities are [B, K]
        return {
            "logits": _numpy(outputs.get("logits")),
            "image": _numpy(image),
            "segmentation": scores if dense else None,
        }


def head_function(model):
    """images [B, H, W, 3] in [0, 1] -> logits ([B, K], or [B, H, W, K] for a dense head), through the head of
    `model` (a JointClassifier or a HeadClassifier, models/joint.py, or a JointSegmenter: its `head_preprocessing`
    and `head`). Raises ValueError for a model without a head."""
    head, preprocess = getattr(model, "head", None), getattr(model, "head_preprocessing", None)
    if head is None or preprocess is None:
        raise ValueError(
            f"model {model.name!r} has no classifier head (a JointClassifier or HeadClassifier has one); received a "
            f"{type(model).__name__}"
        )
    predict = tf.function(lambda images: head(preprocess(images), training=False), reduce_retracing=True)
    return lambda images: predict(tf.constant(images, tf.float32)).numpy()


def _model_image_size(model):
    """(H, W) of a model's "raw" or "clean" input (else its first input), or None if not fixed."""
    inputs = model.input if isinstance(model.input, dict) else {}
    tensor = inputs.get("raw", inputs.get("clean")) if inputs else model.inputs[0]
    shape = tuple(tensor.shape)
    return None if len(shape) != 4 or None in shape[1:3] else (int(shape[1]), int(shape[2]))


class ConventionalIspPredictor(Predictor):
    """A conventional ISP (baselines.ConventionalIsp) and, optionally, a `head` on its output: a Keras model (see
    `head_function`) or a callable images [B, H, W, 3] in [0, 1] -> logits [B, K] or per-pixel logits
    [B, H, W, K]. Without a head only PSNR and SSIM are measured. The ISP gets the cell's PSF (for its deconvolution stage)."""

    def __init__(self, isp, head=None, image_size=None, class_names=None, description=None):
        import keras

        if not isinstance(isp, ConventionalIsp):
            raise ValueError(f"isp must be a ConventionalIsp (baselines.get_pipeline); received {type(isp).__name__}")
        self.isp = isp
        self.head = head_function(head) if isinstance(head, keras.Model) else head
        if head is not None and not callable(self.head):
            raise ValueError(f"head must be a Keras model or a callable; received {type(head).__name__}")
        if image_size is None and isinstance(head, keras.Model):
            image_size = _model_image_size(head)
        self.image_size = None if image_size is None else preprocessing.check_image_size(image_size)
        self.class_names = class_names
        head_name = "" if head is None else f" + head of {getattr(head, 'name', 'a function')}"
        self.description = description or f"conventional ISP {isp.name or isp}{head_name}"

    def __call__(self, features, psf):
        images = self.isp.process_batch(features["raw"], features["alpha"], features["sigma"], psf)
        return {**_task_outputs(None if self.head is None else self.head(images)), "image": images}


class FunctionPredictor(Predictor):
    """Any function (features, psf) -> {"logits", "image", "segmentation"} (missing keys = None), for a fixed
    `image_size` or any."""

    def __init__(self, function, image_size=None, class_names=None, description="function"):
        if not callable(function):
            raise ValueError(f"function must be callable; received {type(function).__name__}")
        self.function = function
        self.image_size = None if image_size is None else preprocessing.check_image_size(image_size)
        self.class_names = class_names
        self.description = description

    def __call__(self, features, psf):
        outputs = self.function(features, psf)
        return {key: _numpy(outputs.get(key)) for key in ("logits", "image", "segmentation")}


def load_predictor(source, num_classes=None):
    """A Predictor for a SavedModel directory (or base path), a run directory, a .keras file or a preset name.
    `num_classes` sets a preset's number of classes (its own otherwise)."""
    if isinstance(source, Predictor):
        return source
    if hasattr(source, "predict") and hasattr(source, "input"):
        return KerasPredictor(source)
    is_preset = isinstance(source, str) and not os.path.exists(source) and not source.endswith(".keras")
    if num_classes is not None and not is_preset:
        raise ValueError(f"num_classes applies to preset names only; received {num_classes} with {source!r}")
    if isinstance(source, (str, os.PathLike)) and layout.find_savedmodel(source) is not None:
        return SavedModelPredictor(source)
    description = f"preset {source} (random weights)" if is_preset else os.fspath(source)
    return KerasPredictor(load_model(source, num_classes), description)


def as_predictor(model):
    """A Predictor from a Predictor, a keras.Model, a path or preset name, or a function (features, psf) -> dict."""
    if isinstance(model, (Predictor, str, os.PathLike)) or hasattr(model, "input"):
        return load_predictor(model)
    if callable(model):
        return FunctionPredictor(model)
    raise ValueError(
        f"model must be a Predictor, a keras.Model, a path, a preset name or a function; received {model!r}"
    )
