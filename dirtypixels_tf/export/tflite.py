"""TFLite export of a joint model (on-device inference), and its accuracy parity with the SavedModel.

The TFLite model has one signature, "serving_default", at batch size 1: raw float32 [1, H, W, 1] in [0, 1], alpha
and sigma float32 [1] -> logits and probabilities [1, C] (or image [1, H, W, 3] for a model without a classifier;
class_map int32 [1, H, W] and probabilities [1, H, W, K] for a segmentation model, as its SavedModel).
quantize=None keeps float32 weights; "dynamic" is dynamic-range quantization (int8 weights, float activations; no
calibration data needed). The converter first tries TFLite's built-in ops only; if the graph needs TensorFlow ops
it has no kernel for, it converts again with SELECT_TF_OPS enabled (the runtime then needs the Flex delegate, which
the `tensorflow` pip package's tf.lite.Interpreter includes) and reports it in the result.
"""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from dirtypixels_tf.catalog import DEFAULT_PRESET, DEFAULT_PROFILE, SERVING_SIGNATURE
from dirtypixels_tf.export import fold
from dirtypixels_tf.physics.sensor import SensorModel

QUANTIZE_CHOICES = (None, "dynamic")


def _tflite_function(model):
    from dirtypixels_tf.export.savedmodel import SEGMENTATION_OUTPUT, _check_model

    (height, width), classifies = _check_model(model)
    segments = SEGMENTATION_OUTPUT in model.output

    @tf.function(
        input_signature=[
            tf.TensorSpec([1, height, width, 1], tf.float32, name="raw"),
            tf.TensorSpec([1], tf.float32, name="alpha"),
            tf.TensorSpec([1], tf.float32, name="sigma"),
        ]
    )
    def serving_default(raw, alpha, sigma):
        outputs = model({"raw": raw, "alpha": alpha, "sigma": sigma}, training=False)
        if segments:
            logits = tf.cast(outputs[SEGMENTATION_OUTPUT], tf.float32)
            return {
                "class_map": tf.argmax(logits, axis=-1, output_type=tf.int32),
                "probabilities": tf.nn.softmax(logits),
            }
        if not classifies:
            return {"image": tf.cast(outputs["image"], tf.float32)}
        logits = tf.cast(outputs["logits"], tf.float32)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    return serving_default


def _convert(savedmodel_dir, quantize, select_tf_ops):
    converter = tf.lite.TFLiteConverter.from_saved_model(savedmodel_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if select_tf_ops:
        converter.target_spec.supported_ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    if quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def export_tflite(model, path, quantize=None, fold_batch_norm="head"):
    """Convert `model` (inputs {"raw", "alpha", "sigma"}) to a .tflite file at `path`.

    fold_batch_norm: "head" (default), "all" (convert the inference copy of export/fold.py, those batch norms folded
    into the convolutions before them) or None (the model's own layers).
    Returns {"path", "quantize", "select_tf_ops" (whether TF ops had to be enabled), "bytes"}.
    """
    if quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize must be one of {QUANTIZE_CHOICES}; received {quantize!r}")
    fold.check_export_setting(fold_batch_norm)
    path = os.fspath(path)
    if not path.endswith(".tflite"):
        raise ValueError(f"path must end with .tflite; received {path!r}")
    model = fold.export_copy(model, fold_batch_norm)
    select_tf_ops = False
    with tempfile.TemporaryDirectory() as savedmodel_dir:
        # Through a batch-1 SavedModel: converting the concrete function directly leaves some Keras variables
        # unfrozen (READ_VARIABLE fails at run time); the SavedModel route freezes them all.
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(SERVING_SIGNATURE, _tflite_function(model))
        archive.write_out(savedmodel_dir, verbose=False)
        try:
            flatbuffer = _convert(savedmodel_dir, quantize, select_tf_ops=False)
        except Exception as error:  # the converter raises ConverterError (not exported under a stable name)
            if "select" not in str(error).lower() and "flex" not in str(error).lower():
                raise
            select_tf_ops = True
            flatbuffer = _convert(savedmodel_dir, quantize, select_tf_ops=True)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "wb") as file:
        file.write(flatbuffer)
    os.replace(temporary, path)
    return {"path": path, "quantize": quantize, "select_tf_ops": select_tf_ops, "bytes": len(flatbuffer)}


def simulated_inputs(image_size, count, profile=DEFAULT_PROFILE, seed=0):
    """`count` RAW frames simulated by SensorModel at a light profile from smooth random colour scenes.

    Returns {"raw": [count, H, W, 1], "alpha": [count], "sigma": [count]} as float32 NumPy arrays.
    """
    height, width = image_size
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.05, 0.95, [count, max(2, height // 4), max(2, width // 4), 3]).astype(np.float32)
    scenes = tf.image.resize(coarse, [height, width], method="bilinear")
    sensor = SensorModel(preset=DEFAULT_PRESET, light_levels=profile)
    frames = sensor.simulate(scenes, tf.constant([seed, 1], tf.int64))
    return {key: value.numpy().astype(np.float32) for key, value in frames.items()}


def tflite_parity(tflite_path, savedmodel_dir, count=16, profile=DEFAULT_PROFILE, seed=0):
    """Compare a .tflite model with an exported SavedModel version on simulated inputs (one frame at a time).

    Returns {"count", "compared" ("logits", "probabilities" for a segmentation model, or "image" for a model without
    either), "max_abs_diff", "mean_abs_diff" (of the compared output), "top1_agreement" (fraction of frames with the
    same arg-max class; for a segmentation model, of pixels with the same class; None for an ISP alone)}.
    """
    reference = tf.saved_model.load(os.fspath(savedmodel_dir)).signatures[SERVING_SIGNATURE]
    interpreter = tf.lite.Interpreter(model_path=os.fspath(tflite_path))
    runner = interpreter.get_signature_runner(SERVING_SIGNATURE)
    raw_spec = reference.structured_input_signature[1]["raw"]
    inputs = simulated_inputs(tuple(raw_spec.shape[1:3]), count, profile, seed)
    outputs = reference.structured_outputs
    key = "logits" if "logits" in outputs else "probabilities" if "class_map" in outputs else "image"
    differences, agreements = [], []
    for index in range(count):
        frame = {name: value[index : index + 1] for name, value in inputs.items()}
        expected_outputs = reference(**{name: tf.constant(value) for name, value in frame.items()})
        actual_outputs = runner(**frame)
        expected, actual = expected_outputs[key].numpy(), actual_outputs[key]
        differences.append(np.abs(actual - expected))
        if key == "logits":
            agreements.append(int(np.argmax(actual)) == int(np.argmax(expected)))
        elif key == "probabilities":
            agreements.append(float(np.mean(actual_outputs["class_map"] == expected_outputs["class_map"].numpy())))
    differences = np.stack(differences)
    return {
        "count": count,
        "compared": key,
        "max_abs_diff": float(differences.max()),
        "mean_abs_diff": float(differences.mean()),
        "top1_agreement": float(np.mean(agreements)) if agreements else None,
    }
