"""LiteRT (TFLite) export of a joint model for on-device inference, quantized or not, and its parity report.

The model has two signatures at batch size 1, as the SavedModel's (export/savedmodel.py):
- "serving_default": raw float32 [1, H, W, 1] in [0, 1], alpha and sigma float32 [1] -> logits and probabilities
  [1, C] and the ISP's image [1, H, W, 3] (the image only, for a model without a classifier; class_map int32
  [1, H, W], probabilities [1, H, W, K] and the image for a segmentation model);
- "raw_uint16": raw uint16 [1, H, W, 1] sensor codes, black_level, white_level, iso float32 [1] -> the same, the
  mosaic normalized and the noise of the export's sensor at that ISO (savedmodel.from_sensor_codes). LiteRT has no
  assertions: the app must send white_level > black_level and iso > 0.
Inputs and outputs stay float32 (class_map int32; raw uint16) at every quantize setting (QUANTIZE_CHOICES):
- "none": float32 weights and activations.
- "float16": float16 weights, dequantized to float32 at load (float activations).
- "dynamic": dynamic range, int8 weights with activations quantized on the fly.
- "int8": post-training quantization of the head: int8 weights and activations, their ranges calibrated on
  `calibration` frames (default: `calibration_frames`, simulated RAW frames of the model's sensor at its light
  levels); the ISP (every op under the model's `isp` layer) stays float, and so do the ops named in `float_ops` and
  those without an int8 kernel. Why the ISP: quantized, it changes 9 to 14 % of the default job's decisions, the
  head alone 1 to 3 % (docs/mobile.md, with the per-layer evidence).
The converter first tries the built-in ops only; if the graph needs TensorFlow ops without a LiteRT kernel, it
converts again with SELECT_TF_OPS (the runtime then needs the Flex delegate) and says so in the result.
`make_interpreter` runs a model with LiteRT's interpreter (the `ai-edge-litert` package, extra [litert]) where
installed and tf.lite's otherwise; both apply the XNNPACK delegate by default.
"""

import json
import os
import re
import tempfile

import keras
import numpy as np
import tensorflow as tf

from dirtypixels_tf.catalog import (
    DEFAULT_PRESET,
    DEFAULT_PROFILE,
    FLOAT16,
    INT8,
    LIGHT_PROFILES,
    SERVING_SIGNATURE,
    TFLITE_QUANTIZE,
    UINT16_SIGNATURE,
)
from dirtypixels_tf.export import fold
from dirtypixels_tf.physics.sensor import SensorModel

QUANTIZE_CHOICES = TFLITE_QUANTIZE
# The ops an int8 export keeps in float besides the ISP: the elementwise arithmetic (the GAT, its per-image
# max-normalization, the noise channel, the soft projection, the inverse GAT, the head's input clip and
# normalization). Quantized, alpha and sigma (which span 16x from 3 to 48 lux on one int8 scale) round to 0 and the
# GAT divides by them (docs/mobile.md); for a model without a separate ISP layer these ops are what stays float.
INT8_FLOAT_OPS = ("ADD", "SUB", "MUL", "DIV", "SQRT", "SQUARE", "MAXIMUM", "MINIMUM", "REDUCE_MAX", "REDUCE_MIN", "SUM")
# The default job's report levels in lux (Fashion-MNIST at 2 to 200 lux): the calibration and parity light levels.
LIGHT_LEVELS = ("3", "6", "12", "48")
CALIBRATION_FRAMES = 64  # per light level
UINT16_WHITE_LEVEL = 1023  # the white level of the sensor codes the int8 calibration feeds "raw_uint16" (10 bits)


def make_interpreter(path, threads=None):
    """A LiteRT interpreter of the .tflite file at `path` (ai_edge_litert where installed, else tf.lite), tensors
    allocated; XNNPACK is its default delegate for float and int8 models. threads: None = the runtime's default."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=os.fspath(path), num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def signature_function(model, batch_size=1):
    """The on-device signature of `model` as a tf.function: raw [B, H, W, 1], alpha and sigma [B] (or [B, 3]) float32
    -> the outputs of the module docstring; B = batch_size (None: any). Shared by the LiteRT and ONNX exports."""
    from dirtypixels_tf.export.savedmodel import SEGMENTATION_OUTPUT, _check_model

    (height, width), classifies, per_channel = _check_model(model)
    noise_shape = [batch_size, 3] if per_channel else [batch_size]
    segments = SEGMENTATION_OUTPUT in model.output

    @tf.function(
        input_signature=[
            tf.TensorSpec([batch_size, height, width, 1], tf.float32, name="raw"),
            tf.TensorSpec(noise_shape, tf.float32, name="alpha"),
            tf.TensorSpec(noise_shape, tf.float32, name="sigma"),
        ]
    )
    def serving_default(raw, alpha, sigma):
        outputs = model({"raw": raw, "alpha": alpha, "sigma": sigma}, training=False)
        image = {"image": tf.cast(outputs["image"], tf.float32)}
        if segments:
            logits = tf.cast(outputs[SEGMENTATION_OUTPUT], tf.float32)
            return {
                "class_map": tf.argmax(logits, axis=-1, output_type=tf.int32),
                "probabilities": tf.nn.softmax(logits),
                **image,
            }
        if not classifies:
            return image
        logits = tf.cast(outputs["logits"], tf.float32)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits), **image}

    return serving_default


def uint16_signature_function(model, sensor=DEFAULT_PRESET, batch_size=1):
    """The "raw_uint16" signature of the module docstring as a tf.function (B = batch_size; None: any)."""
    from dirtypixels_tf.export.savedmodel import _check_model, _check_sensor, from_sensor_codes

    (height, width), _, per_channel = _check_model(model)
    preset = _check_sensor(sensor)[1]
    serving_default = signature_function(model, batch_size)

    @tf.function(
        input_signature=[
            tf.TensorSpec([batch_size, height, width, 1], tf.uint16, name="raw"),
            *(tf.TensorSpec([batch_size], tf.float32, name=name) for name in ("black_level", "white_level", "iso")),
        ]
    )
    def raw_uint16(raw, black_level, white_level, iso):
        normalized, alpha, sigma = from_sensor_codes(raw, black_level, white_level, iso, preset)
        if per_channel:
            alpha, sigma = (tf.tile(value[:, None], [1, 3]) for value in (alpha, sigma))
        return serving_default(normalized, alpha, sigma)

    return raw_uint16


def as_sensor_codes(frames, preset, white_level=UINT16_WHITE_LEVEL):
    """{"raw", "alpha"[, ...]} float frames as "raw_uint16" inputs: codes round(raw * white_level) (black level 0) and
    the ISO whose noise (of `preset`, a NoisePreset) has the frames' alpha (per colour: their mean)."""
    count = len(frames["raw"])
    return {
        "raw": np.round(np.clip(frames["raw"], 0, 1) * white_level).astype(np.uint16),
        "black_level": np.zeros(count, np.float32),
        "white_level": np.full(count, white_level, np.float32),
        "iso": (100.0 * _per_frame(frames["alpha"]) / preset.poisson).astype(np.float32),
    }


def _per_frame(values):
    """One value per frame: [N] as it is, [N, 3] (per colour) averaged over the colours; float64."""
    values = np.asarray(values, np.float64)
    return values.mean(axis=1) if values.ndim == 2 else values


def _converter(savedmodel_dir, quantize, select_tf_ops, calibration):
    converter = tf.lite.TFLiteConverter.from_saved_model(savedmodel_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if select_tf_ops:
        converter.target_spec.supported_ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == FLOAT16:
        converter.target_spec.supported_types = [tf.float16]
    if quantize == INT8:

        def representative_dataset():
            # (signature, inputs) pairs: the model has two signatures, each calibrated on the same frames
            for index in range(len(calibration[SERVING_SIGNATURE]["raw"])):
                for signature, inputs in calibration.items():
                    yield signature, {key: value[index : index + 1] for key, value in inputs.items()}

        converter.representative_dataset = representative_dataset
    return converter


def _nodes_under(savedmodel_dir, select_tf_ops, scopes):
    """The names of the float model's tensors traced under the layers or name scopes `scopes` (e.g. ".../isp_1/...";
    fused ops join
    several names with ';') in every signature's subgraph, as the quantization debugger's denylisted_nodes takes
    them."""
    flatbuffer = _converter(savedmodel_dir, "none", select_tf_ops, None).convert()
    pattern = re.compile(rf"(^|/)({'|'.join(re.escape(scope) for scope in scopes)})(_\d+)?/")
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    names = {
        detail["name"]
        for subgraph in range(interpreter.num_subgraphs())  # one per signature
        for detail in interpreter.get_tensor_details(subgraph)
    }
    return sorted(name for name in names if pattern.search(name))


def _convert(savedmodel_dir, quantize, select_tf_ops, calibration, float_ops, float_scopes):
    converter = _converter(savedmodel_dir, quantize, select_tf_ops, calibration)
    if not float_ops and not float_scopes:
        return converter.convert()
    # selective quantization: the ops and nodes named stay float (the quantization debugger's documented route)
    nodes = _nodes_under(savedmodel_dir, select_tf_ops, float_scopes) if float_scopes else []
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=converter.representative_dataset,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(
            denylisted_ops=list(float_ops), denylisted_nodes=nodes
        ),
    )
    return debugger.get_nondebug_quantized_model()


def export_tflite(
    model,
    path,
    quantize="none",
    fold_batch_norm="head",
    calibration=None,
    float_ops=None,
    isp_in_float=True,
    sensor=DEFAULT_PRESET,
):
    """Convert `model` (inputs {"raw", "alpha", "sigma"}) to a .tflite file at `path` (see the module docstring).

    fold_batch_norm: "head" (default), "all" (convert the inference copy of export/fold.py, those batch norms folded
    into the convolutions before them) or None (the model's own layers). calibration (int8 only): frames
    {"raw" [N, H, W, 1], "alpha" [N], "sigma" [N]} float32 (default: `calibration_frames` of the model's size).
    float_ops: LiteRT op names (e.g. "SQRT", "DIV") kept in float in an int8 model (None: INT8_FLOAT_OPS).
    In an int8 model the ISP (the model's `isp` layer, if it has one and a head) stays float as a whole unless
    isp_in_float=False (then only `float_ops` stay float: faster, fewer decisions kept; docs/mobile.md).
    sensor: the sensor whose noise "raw_uint16" takes at the given ISO (a spec of physics.sensor_files.resolve_sensor).
    Returns {"path", "quantize", "float_ops", "float_layers" (kept float whole), "select_tf_ops" (whether TF ops had
    to be enabled), "bytes"}.
    """
    if quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize must be one of {QUANTIZE_CHOICES}; received {quantize!r}")
    if float_ops is None:
        float_ops = INT8_FLOAT_OPS if quantize == INT8 else ()
    if float_ops and quantize != INT8:
        raise ValueError(f"float_ops applies to quantize='int8'; received quantize={quantize!r}")
    fold.check_export_setting(fold_batch_norm)
    path = os.fspath(path)
    if not path.endswith(".tflite"):
        raise ValueError(f"path must end with .tflite; received {path!r}")
    from dirtypixels_tf.export.savedmodel import SENSOR_CODES_SCOPE, _check_model, _check_sensor

    if quantize == INT8:
        if calibration is None:
            calibration = calibration_frames(_check_model(model)[0])
        calibration = {
            SERVING_SIGNATURE: {key: calibration[key] for key in ("raw", "alpha", "sigma")},
            UINT16_SIGNATURE: as_sensor_codes(calibration, _check_sensor(sensor)[1]),
        }
    model = fold.export_copy(model, fold_batch_norm)
    has_head = getattr(model, "head", None) is not None
    keep_isp = quantize == INT8 and isp_in_float and has_head and getattr(model, "isp", None) is not None
    float_layers = [model.isp.name] if keep_isp else []
    # the sensor codes' normalization of "raw_uint16" is physics too: float in every int8 model
    float_scopes = [*float_layers, SENSOR_CODES_SCOPE] if quantize == INT8 else []
    select_tf_ops = False
    with tempfile.TemporaryDirectory() as savedmodel_dir:
        # Through a batch-1 SavedModel: converting the concrete function directly leaves some Keras variables
        # unfrozen (READ_VARIABLE fails at run time); the SavedModel route freezes them all.
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(SERVING_SIGNATURE, signature_function(model))
        archive.add_endpoint(UINT16_SIGNATURE, uint16_signature_function(model, sensor))
        archive.write_out(savedmodel_dir, verbose=False)
        try:
            flatbuffer = _convert(savedmodel_dir, quantize, False, calibration, float_ops, float_scopes)
        except Exception as error:  # the converter raises ConverterError (not exported under a stable name)
            if "select" not in str(error).lower() and "flex" not in str(error).lower():
                raise
            select_tf_ops = True
            flatbuffer = _convert(savedmodel_dir, quantize, True, calibration, float_ops, float_scopes)
    write_atomically(path, flatbuffer)
    return {
        "path": path,
        "quantize": quantize,
        "float_ops": list(float_ops),
        "float_layers": float_layers,
        "select_tf_ops": select_tf_ops,
        "bytes": len(flatbuffer),
    }


def write_atomically(path, content):
    """Write bytes `content` to `path` through a temporary sibling renamed into place (no half-written model)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "wb") as file:
        file.write(content)
    os.replace(temporary, path)


def simulated_inputs(image_size, count, profile=DEFAULT_PROFILE, seed=0, sensor=DEFAULT_PRESET):
    """`count` RAW frames simulated by SensorModel(sensor) at a light profile (a name or (low, high) light levels)
    from smooth random colour scenes.

    Returns {"raw": [count, H, W, 1], "alpha": [count], "sigma": [count]} as float32 NumPy arrays.
    """
    height, width = image_size
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.05, 0.95, [count, max(2, height // 4), max(2, width // 4), 3]).astype(np.float32)
    scenes = tf.image.resize(coarse, [height, width], method="bilinear")
    frames = SensorModel(preset=sensor, light_levels=profile).simulate(scenes, tf.constant([seed, 1], tf.int64))
    return {key: value.numpy().astype(np.float32) for key, value in frames.items()}


def _light_level(spec):
    """(label, (low, high) light level) of a light profile name or a number of lux ("12", "12lux")."""
    from dirtypixels_tf.physics import noise

    text = str(spec).strip()
    if text in LIGHT_PROFILES:
        return text, LIGHT_PROFILES[text]
    try:
        lux = float(text.removesuffix("lux"))
    except ValueError:
        lux = -1.0
    if not lux > 0:
        raise ValueError(
            f"light levels must be lux or a light profile ({', '.join(LIGHT_PROFILES)}); received {spec!r}"
        )
    level = noise.lux_to_light_level(lux)
    return f"{lux:g} lux", (level, level)


def frames_at(image_size, count, light_level, sensor=DEFAULT_PRESET, source=None, seed=0):
    """`count` frames at one light level (lux or a profile name): {"raw", "alpha", "sigma"} float32, plus "label"
    when `source` is given. From `source` (a tf.data.Dataset of (image [H, W, 3] in [0, 1], label), e.g.
    data.source_spec.open_source's; its first `count` examples, resized whole: no central crop) simulated through
    SensorModel(sensor), or else simulated_inputs (smooth random colour scenes, no labels)."""
    from dirtypixels_tf.data import pipeline

    _, levels = _light_level(light_level)
    if source is None:
        return simulated_inputs(image_size, count, levels, seed=seed, sensor=sensor)
    sensor_model = SensorModel(preset=sensor, light_levels=levels)
    dataset = pipeline.make_dataset(
        source.take(count), sensor_model, image_size, 256, training=False, seed=seed, central_fraction=1.0
    )
    batches = list(dataset.as_numpy_iterator())
    frames = {key: np.concatenate([features[key] for features, _ in batches]) for key in ("raw", "alpha", "sigma")}
    return {**frames, "label": np.concatenate([labels for _, labels in batches])}


def calibration_frames(
    image_size, sensor=DEFAULT_PRESET, light_levels=LIGHT_LEVELS, count=CALIBRATION_FRAMES, source=None
):
    """The int8 representative data set: `count` frames (frames_at, seeds apart from the parity frames') at each
    light level, so the calibrated ranges cover the darkest and the brightest frames the model is meant for.
    {"raw", "alpha", "sigma"}, count * len(light_levels) frames."""
    parts = [
        frames_at(image_size, count, level, sensor, source, seed=1000 + index)
        for index, level in enumerate(light_levels)
    ]
    return {key: np.concatenate([part[key] for part in parts]) for key in ("raw", "alpha", "sigma")}


def per_colour(frames):
    """`frames` with alpha and sigma [N] repeated to [N, 3] (one per colour, as a per-colour model takes them);
    frames already per colour are returned as they are."""
    return {
        key: np.repeat(np.asarray(value)[:, None], 3, axis=1)
        if key in ("alpha", "sigma") and np.ndim(value) == 1
        else value
        for key, value in frames.items()
    }


def parity_frames(image_size, count, light_levels=LIGHT_LEVELS, sensor=DEFAULT_PRESET, source=None, seed=0):
    """{light level name: frames_at(...)}: the parity report's `count` frames per light level."""
    return {_light_level(level)[0]: frames_at(image_size, count, level, sensor, source, seed) for level in light_levels}


def _psnr(estimate, reference):
    """PSNR in dB of one image against another, peak 1 (both clipped to [0, 1] as the head sees them)."""
    error = np.mean((np.clip(estimate, 0, 1).astype(np.float64) - np.clip(reference, 0, 1)) ** 2)
    return float(10 * np.log10(1 / max(error, 1e-20)))


def _batched(signature, inputs, key, batch_size=256):
    """signature(**inputs)[key] as NumPy, in batches of `batch_size` frames."""
    count = len(inputs["raw"])
    return np.concatenate(
        [
            signature(**{name: tf.constant(value[start : start + batch_size]) for name, value in inputs.items()})[
                key
            ].numpy()
            for start in range(0, count, batch_size)
        ]
    )


def tflite_parity(tflite_path, savedmodel_dir, frames):
    """The parity report of a .tflite model against an exported SavedModel version (runtime_parity; the LiteRT model
    runs one frame at a time, its signature having batch size 1)."""
    runner = make_interpreter(tflite_path).get_signature_runner(SERVING_SIGNATURE)

    def run(inputs):
        count = len(inputs["raw"])
        outputs = [runner(**{key: value[index : index + 1] for key, value in inputs.items()}) for index in range(count)]
        return {key: np.concatenate([output[key] for output in outputs]) for key in outputs[0]}

    return runtime_parity(tflite_path, savedmodel_dir, frames, run)


def runtime_parity(model_path, savedmodel_dir, frames, run):
    """The parity report of an on-device model (`run`: {"raw", "alpha", "sigma"} NumPy -> its outputs as NumPy, the
    signature_function's names) against an exported SavedModel version.

    frames: {light level name: {"raw", "alpha", "sigma"[, "label"]}} (parity_frames); the SavedModel runs them in
    batches of 256. Per level: "count", "top1_savedmodel" and "top1_<runtime>" (accuracy against the labels; None
    without labels; <runtime> "litert" for a .tflite file, "onnx" for a .onnx file), "top1_agreement" (the fraction
    of frames where both decide the same class; for a segmentation model, of pixels), "max_abs_delta_logits", and
    "image_psnr_db" (the mean over frames of the PSNR of the on-device ISP image against the SavedModel's). Without
    a classifier the logits' entries are None. Returns {"model", "runtime", "savedmodel", "levels": {name: entries},
    "min_top1_agreement"}.
    """
    runtime = "onnx" if os.fspath(model_path).endswith(".onnx") else "litert"
    loaded = tf.saved_model.load(os.fspath(savedmodel_dir))
    isp = loaded.signatures["isp"]
    classify = loaded.signatures[SERVING_SIGNATURE]
    classifies = "logits" in classify.structured_outputs
    segments = "class_map" in classify.structured_outputs
    levels = {}
    for name, level_frames in frames.items():
        count = len(level_frames["raw"])
        inputs = {key: level_frames[key] for key in ("raw", "alpha", "sigma")}
        expected = _batched(isp, inputs, "image")
        actual = run(inputs)
        psnrs = [_psnr(actual["image"][index], expected[index]) for index in range(count)]
        entries = {"count": count, "top1_savedmodel": None, f"top1_{runtime}": None, "top1_agreement": None}
        entries.update(max_abs_delta_logits=None, image_psnr_db=float(np.mean(psnrs)))
        if segments:
            class_map = _batched(classify, inputs, "class_map")
            entries["top1_agreement"] = float(np.mean(class_map == actual["class_map"]))  # of pixels
        elif classifies:
            logits = _batched(classify, inputs, "logits")
            decisions = np.argmax(logits, axis=1), np.argmax(actual["logits"], axis=1)
            entries["top1_agreement"] = float(np.mean(decisions[0] == decisions[1]))
            entries["max_abs_delta_logits"] = float(np.abs(actual["logits"] - logits).max())
            if "label" in level_frames:
                labels = np.asarray(level_frames["label"])
                entries["top1_savedmodel"] = float(np.mean(decisions[0] == labels))
                entries[f"top1_{runtime}"] = float(np.mean(decisions[1] == labels))
        levels[name] = entries
    agreements = [entries["top1_agreement"] for entries in levels.values() if entries["top1_agreement"] is not None]
    return {
        "model": os.fspath(model_path),
        "runtime": runtime,
        "savedmodel": os.fspath(savedmodel_dir),
        "levels": levels,
        "min_top1_agreement": min(agreements) if agreements else None,
    }


def write_parity_report(report, info=None):
    """Write `report` (runtime_parity's, with the export's `info` beside it) as MODEL.parity.json (MODEL.tflite or
    MODEL.onnx); returns the path."""
    path = f"{report['model']}.parity.json"
    with open(path, "w", encoding="utf-8") as file:
        json.dump({"export": info, **report}, file, indent=2)
    return path


def format_parity_report(report):
    """The report as a table, one row per light level (top-1 in %, agreement in %, PSNR in dB)."""

    def percent(value):
        return "-" if value is None else f"{100 * value:.1f}"

    runtime = report["runtime"]
    title = {"litert": "top-1 LiteRT", "onnx": "top-1 ONNX"}[runtime]
    lines = [f"{'light':>10} {'frames':>7} {'top-1 SM':>9} {title:>13} {'agree':>6} {'max|dlogit|':>12} {'PSNR':>6}"]
    for name, entries in report["levels"].items():
        delta = entries["max_abs_delta_logits"]
        lines.append(
            f"{name:>10} {entries['count']:>7} {percent(entries['top1_savedmodel']):>9} "
            f"{percent(entries[f'top1_{runtime}']):>13} {percent(entries['top1_agreement']):>6} "
            f"{'-' if delta is None else f'{delta:.3g}':>12} {entries['image_psnr_db']:>6.1f}"
        )
    return "\n".join(lines)
