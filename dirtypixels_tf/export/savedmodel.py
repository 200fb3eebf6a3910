"""SavedModels with RAW-input signatures, for TensorFlow Serving (and the local server in dirtypixels_tf/serving).

Layout: one directory per version under a base path, BASE/1, BASE/2, ... A version is written into a hidden sibling
(BASE/.tmp-N-xxxx, ignored by servers as not a number) and renamed into place when complete, so a server polling
BASE never sees a half-written version; a failed export removes it; concurrent exports both publish (the later takes
the next free number). Modes are a plain mkdir's under the umask, so a TF Serving container can read them.

Signatures (dynamic batch B; H and W the model's):
- "serving_default": raw float32 [B, H, W, 1] Bayer mosaic in [0, 1]; alpha, sigma float32 [B] ([0, 1] units), or
  [B, 3] (one per colour R, G, B) for a model built with per_channel_noise=True (models/joint.py; the metadata's
  "per_channel_noise") -> probabilities, logits [B, C]; top_k_classes int32, top_k_scores, top_k_labels string
  [B, k] (best first).
- "raw_uint16": raw uint16 sensor values; black_level, white_level, iso float32 [B]: the mosaic is
  clip((raw - black) / (white - black), 0, 1), the noise the sensor preset's at that ISO (baked in; the same for
  the three colours of a per-colour model) -> the same.
- "classify": TF Serving's Classify API (method tensorflow/serving/classify): serialized tf.Example [B] with "raw"
  (float_list, H*W row-major) or "raw_bytes" (little-endian float32), "alpha", "sigma" (1 value, or 3 for a
  per-colour model) -> classes, scores [B, C].
- "isp": as serving_default -> image [B, H, W, 3], the ISP's linear image. An ISP-only model's other signatures
  return {"image"} too.
A segmentation model (output "segmentation", models/segmentation.py) has "serving_default", "raw_uint16" (the same
inputs as above) -> class_map int32 [B, H, W] (the arg-max class per pixel), probabilities float32 [B, H, W, K];
and "isp"; no "classify" (TF Serving's Classify API answers one class list per example).
Bad inputs fail in the graph with InvalidArgumentError: non-finite values, raw outside [0, 1], alpha outside
(0, MAX_NOISE] or sigma outside [0, MAX_NOISE], white_level <= black_level, iso <= 0, a malformed tf.Example.
assets.extra holds tf_serving_warmup_requests (replayed before serving) and dirtypixels.json (image size, classes,
sensor preset, signatures). export/README.md has the recipes and the client's view.
"""

import datetime
import errno
import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from dirtypixels_tf.catalog import (
    CLASSIFY_METHOD_NAME,
    CLASSIFY_SIGNATURE,
    DEFAULT_PRESET,
    ISP_SIGNATURE,
    SENSOR_PRESETS,
    SERVING_SIGNATURE,
    SIGNATURES,
    UINT16_SIGNATURE,
)
from dirtypixels_tf.export import fold
from dirtypixels_tf.export.layout import EXTRA_DIR, METADATA_FILE, WARMUP_FILE, is_version_name
from dirtypixels_tf.physics import noise
from dirtypixels_tf.physics.sensor_files import resolve_sensor

# Noise beyond 1000 x full scale carries no signal and overflows the Anscombe transform in float32, so the signatures
# refuse it; the release's presets reach alpha 10 and sigma 22 (Pixel at 3 lux).
MAX_NOISE = 1000.0


def _check_model(model):
    """The model's (height, width), whether it classifies and whether it takes per-colour noise [B, 3]; refuses
    models this export cannot serve."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model; received {type(model).__name__}")
    try:
        model_input = model.input
    except (AttributeError, ValueError):  # a model never called has no input
        model_input = None
    inputs = model_input if isinstance(model_input, dict) else {}
    if sorted(inputs) != ["alpha", "raw", "sigma"]:
        extra = " (per-image PSF inputs are not served)" if "psf" in inputs else ""
        raise ValueError(
            f"model must take the inputs {{'raw', 'alpha', 'sigma'}} (models/joint.py, models/isp.py){extra}; "
            f"received inputs {sorted(inputs) if inputs else model_input}"
        )
    shape = tuple(inputs["raw"].shape)
    if len(shape) != 4 or shape[3] != 1 or None in shape[1:3]:
        raise ValueError(f"model input raw must be [B, H, W, 1] with a static H and W; received {shape}")
    return shape[1:3], "logits" in model.output, len(inputs["alpha"].shape) == 2


def _check_class_names(class_names, num_classes):
    if class_names is None:
        return [str(index) for index in range(num_classes)]
    names = [str(name) for name in class_names]
    if len(names) != num_classes:
        raise ValueError(f"class_names must have {num_classes} entries (one per logit); received {len(names)}")
    return names


def _check_sensor(sensor):
    """(name, NoisePreset) of a sensor spec (physics.sensor_files.resolve_sensor); the name is "custom" for anything
    but a preset name (a sensor.yaml is recorded by its noise: the file itself stays on the exporting machine)."""
    name = sensor if isinstance(sensor, str) and sensor in SENSOR_PRESETS else "custom"
    return name, resolve_sensor(sensor).preset


def _assert(condition, message, *data):
    return tf.debugging.Assert(tf.reduce_all(condition), [message, *data], summarize=8)


SEGMENTATION_OUTPUT = "segmentation"  # the per-pixel logits of models/segmentation.py


SENSOR_CODES_SCOPE = "sensor_codes"  # the name scope of from_sensor_codes (kept float in an int8 LiteRT model)


def from_sensor_codes(raw, black_level, white_level, iso, preset):
    """The "raw_uint16" inputs as the model takes them: raw [B, H, W, 1] sensor codes (any integer or float dtype),
    black_level, white_level, iso [B] -> (mosaic clip((raw - black) / (white - black), 0, 1) float32, alpha [B],
    sigma [B]), the noise of `preset` (a NoisePreset) at that ISO."""
    with tf.name_scope(SENSOR_CODES_SCOPE):
        black = tf.reshape(black_level, [-1, 1, 1, 1])
        white = tf.reshape(white_level, [-1, 1, 1, 1])
        normalized = tf.clip_by_value((tf.cast(raw, tf.float32) - black) / (white - black), 0.0, 1.0)
        return normalized, preset.poisson * iso / 100.0, preset.gauss * iso / 100.0


class _Signatures:
    """The signature functions of one model (traced by ExportArchive.add_endpoint)."""

    def __init__(self, model, image_size, classifies, preset, top_k, class_names, per_channel=False):
        self.model = model
        self.per_channel = per_channel
        self.height, self.width = image_size
        self.classifies = classifies
        self.preset = preset
        self.class_names = class_names
        self.top_k = top_k

    def raw_spec(self, dtype=tf.float32):
        return tf.TensorSpec([None, self.height, self.width, 1], dtype, name="raw")

    @staticmethod
    def vector_spec(name):
        return tf.TensorSpec([None], tf.float32, name=name)

    def noise_spec(self, name):
        """alpha or sigma: [B], or [B, 3] for a model that takes them per colour."""
        return tf.TensorSpec([None, 3] if self.per_channel else [None], tf.float32, name=name)

    def run(self, raw, alpha, sigma):
        """The model on checked inputs: {"logits", "image", ...} as the model returns them."""
        checks = [
            _assert(tf.math.is_finite(raw), "raw must be finite; received NaN or infinity"),
            _assert(
                (raw >= 0.0) & (raw <= 1.0),
                "raw must be in [0, 1]; received values from",
                tf.reduce_min(raw),
                "to",
                tf.reduce_max(raw),
            ),
            _assert(
                tf.math.is_finite(alpha) & (alpha > 0.0) & (alpha <= MAX_NOISE),
                "alpha must be finite, > 0 and <= 1000 (the Poisson scale in [0, 1] units); received",
                alpha,
            ),
            _assert(
                tf.math.is_finite(sigma) & (sigma >= 0.0) & (sigma <= MAX_NOISE),
                "sigma must be finite, >= 0 and <= 1000 (the Gaussian std in [0, 1] units); received",
                sigma,
            ),
            _assert(tf.shape(alpha)[0] == tf.shape(raw)[0], "alpha must have one value per image of raw"),
            _assert(tf.shape(sigma)[0] == tf.shape(raw)[0], "sigma must have one value per image of raw"),
        ]
        with tf.control_dependencies(checks):
            outputs = self.model({"raw": raw, "alpha": alpha, "sigma": sigma}, training=False)
        return {key: tf.cast(value, tf.float32) for key, value in outputs.items()}

    def predictions(self, outputs):
        if not self.classifies:
            return {"image": outputs["image"]}
        logits = outputs["logits"]
        probabilities = tf.nn.softmax(logits)
        scores, classes = tf.math.top_k(probabilities, k=min(self.top_k, len(self.class_names)))
        return {
            "probabilities": probabilities,
            "logits": logits,
            "top_k_classes": tf.cast(classes, tf.int32),
            "top_k_scores": scores,
            "top_k_labels": tf.gather(tf.constant(self.class_names), classes),
        }

    def serving_default(self):
        @tf.function(input_signature=[self.raw_spec(), self.noise_spec("alpha"), self.noise_spec("sigma")])
        def serving_default(raw, alpha, sigma):
            return self.predictions(self.run(raw, alpha, sigma))

        return serving_default

    def raw_uint16(self):
        specs = [self.raw_spec(tf.uint16)] + [self.vector_spec(n) for n in ("black_level", "white_level", "iso")]

        @tf.function(input_signature=specs)
        def raw_uint16(raw, black_level, white_level, iso):
            checks = [
                _assert(
                    tf.math.is_finite(black_level) & tf.math.is_finite(white_level) & (white_level > black_level),
                    "white_level must be finite and > black_level; received black_level",
                    black_level,
                    "white_level",
                    white_level,
                ),
                _assert(tf.math.is_finite(iso) & (iso > 0.0), "iso must be finite and > 0; received", iso),
                _assert(tf.shape(black_level)[0] == tf.shape(raw)[0], "black_level must have one value per image"),
                _assert(tf.shape(white_level)[0] == tf.shape(raw)[0], "white_level must have one value per image"),
                _assert(tf.shape(iso)[0] == tf.shape(raw)[0], "iso must have one value per image"),
            ]
            with tf.control_dependencies(checks):
                normalized, alpha, sigma = from_sensor_codes(raw, black_level, white_level, iso, self.preset)
                if self.per_channel:
                    alpha, sigma = (tf.tile(value[:, None], [1, 3]) for value in (alpha, sigma))
            return self.predictions(self.run(normalized, alpha, sigma))

        return raw_uint16

    def parse_examples(self, serialized):
        """Serialized tf.Examples -> (raw [B, H, W, 1], alpha, sigma [B] or [B, 3]); see the module docstring."""
        size = self.height * self.width
        noise_shape = [3] if self.per_channel else []
        features = tf.io.parse_example(
            serialized,
            {
                "raw": tf.io.VarLenFeature(tf.float32),
                "raw_bytes": tf.io.FixedLenFeature([], tf.string, default_value=""),
                "alpha": tf.io.FixedLenFeature(noise_shape, tf.float32),
                "sigma": tf.io.FixedLenFeature(noise_shape, tf.float32),
            },
        )
        batch = tf.shape(serialized)[0]
        values = features["raw"]
        float_counts = tf.math.bincount(tf.cast(values.indices[:, 0], tf.int32), minlength=batch, maxlength=batch)
        byte_counts = tf.strings.length(features["raw_bytes"])
        from_floats = tf.equal(float_counts, size) & tf.equal(byte_counts, 0)
        from_bytes = tf.equal(float_counts, 0) & tf.equal(byte_counts, 4 * size)
        check = _assert(
            from_floats | from_bytes,
            f"each tf.Example needs feature raw (a float_list of H*W = {size} values) or raw_bytes (one bytes value "
            f"of {4 * size} bytes, float32 little-endian), not both; received float counts",
            float_counts,
            "and byte lengths",
            byte_counts,
        )
        with tf.control_dependencies([check]):
            floats = tf.sparse.to_dense(tf.sparse.reset_shape(values, tf.cast(tf.stack([batch, size]), tf.int64)))
        decoded = tf.io.decode_raw(features["raw_bytes"], tf.float32, little_endian=True, fixed_length=4 * size)
        raw = tf.where(from_floats[:, None], floats, decoded)
        return tf.reshape(raw, [-1, self.height, self.width, 1]), features["alpha"], features["sigma"]

    def classify(self):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(inputs):
            probabilities = self.predictions(self.run(*self.parse_examples(inputs)))["probabilities"]
            classes = tf.tile(tf.constant([self.class_names]), [tf.shape(inputs)[0], 1])
            return {"classes": classes, "scores": probabilities}

        return classify

    def isp(self):
        @tf.function(input_signature=[self.raw_spec(), self.noise_spec("alpha"), self.noise_spec("sigma")])
        def isp(raw, alpha, sigma):
            outputs = self.run(raw, alpha, sigma)
            return {key: value for key, value in outputs.items() if key != "logits"}

        return isp


class _SegmentationSignatures(_Signatures):
    """The signature functions of a segmentation model: per-pixel class map and probabilities (module docstring)."""

    def predictions(self, outputs):
        logits = outputs[SEGMENTATION_OUTPUT]
        return {
            "class_map": tf.argmax(logits, axis=-1, output_type=tf.int32),
            "probabilities": tf.nn.softmax(logits),
        }

    def isp(self):
        @tf.function(input_signature=[self.raw_spec(), self.noise_spec("alpha"), self.noise_spec("sigma")])
        def isp(raw, alpha, sigma):
            outputs = self.run(raw, alpha, sigma)
            return {key: value for key, value in outputs.items() if key != SEGMENTATION_OUTPUT}

        return isp


def _next_version(base_path):
    numbers = [int(name) for name in os.listdir(base_path) if is_version_name(name)]
    return max(numbers, default=0) + 1


def _check_version(version):
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"version must be a positive integer or None (the next free one); received {version!r}")
    return int(version)


def _set_classify_method_name(export_dir):
    """TF2 writes every signature with the Predict method name; TF Serving's Classify API needs the classify one.

    Rewrites saved_model.pb with the "classify" signature's method_name set, and the fingerprint.pb that hashes it.
    """
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.saved_model import fingerprinting_utils  # no public API writes the fingerprint

    path = os.path.join(export_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with open(path, "rb") as file:
        saved_model.ParseFromString(file.read())
    saved_model.meta_graphs[0].signature_def[CLASSIFY_SIGNATURE].method_name = CLASSIFY_METHOD_NAME
    with open(path, "wb") as file:
        file.write(saved_model.SerializeToString())
    fingerprinting_utils.write_fingerprint(export_dir)


def warmup_inputs(image_size, batch_size=1, per_channel=False):
    """Valid inputs of each signature for a dark frame at 3 lux (used for warm-up requests and smoke checks);
    per_channel: alpha and sigma [B, 3] (one per colour), for a model that takes them so.

    Returns {signature: {input name: NumPy array}}; "classify" gets serialized tf.Examples.
    """
    height, width = image_size
    alpha, sigma = noise.noise_at_lux(3.0)
    if per_channel:
        alpha, sigma = [alpha] * 3, [sigma] * 3
    raw = np.zeros([batch_size, height, width, 1], np.float32)
    float_inputs = {
        "raw": raw,
        "alpha": np.array([alpha] * batch_size, np.float32),
        "sigma": np.array([sigma] * batch_size, np.float32),
    }
    example = make_example(raw[0], alpha, sigma)
    return {
        SERVING_SIGNATURE: float_inputs,
        UINT16_SIGNATURE: {
            "raw": np.full([batch_size, height, width, 1], 64, np.uint16),
            "black_level": np.full([batch_size], 64.0, np.float32),
            "white_level": np.full([batch_size], 1023.0, np.float32),
            "iso": np.full([batch_size], 100.0 / noise.lux_to_light_level(3.0), np.float32),
        },
        CLASSIFY_SIGNATURE: {"inputs": np.array([example] * batch_size, dtype=object)},
        ISP_SIGNATURE: float_inputs,
    }


def make_example(raw, alpha, sigma, encoding="float_list"):
    """A serialized tf.Example for the "classify" signature: raw [H, W] or [H, W, 1] in [0, 1], alpha, sigma (numbers,
    or 3 values each for a model that takes them per colour).

    encoding: "float_list" (feature "raw") or "bytes" (feature "raw_bytes", float32 little-endian).
    """
    raw = np.asarray(raw, np.float32)
    if raw.ndim == 3 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.ndim != 2:
        raise ValueError(f"raw must be [H, W] or [H, W, 1]; received shape {raw.shape}")
    feature = {
        "alpha": tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(alpha).astype(np.float32))),
        "sigma": tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(sigma).astype(np.float32))),
    }
    if encoding == "float_list":
        feature["raw"] = tf.train.Feature(float_list=tf.train.FloatList(value=raw.ravel()))
    elif encoding == "bytes":
        feature["raw_bytes"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[raw.astype("<f4").tobytes()]))
    else:
        raise ValueError(f"encoding must be 'float_list' or 'bytes'; received {encoding!r}")
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_warmup(export_dir, image_size, signatures, per_channel):
    """TF Serving's warm-up file: one batch-1 PredictionLog per signature, as TFRecords."""
    from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2

    inputs = warmup_inputs(image_size, per_channel=per_channel)
    path = os.path.join(export_dir, EXTRA_DIR, WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for name in signatures:
            if name == CLASSIFY_SIGNATURE:
                request = classification_pb2.ClassificationRequest()
                request.model_spec.signature_name = name
                for serialized in inputs[name]["inputs"]:
                    request.input.example_list.examples.add().ParseFromString(serialized)
                log = prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=request))
            else:
                request = predict_pb2.PredictRequest()
                request.model_spec.signature_name = name
                for key, value in inputs[name].items():
                    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
                log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def export_savedmodel(
    model, base_path, version=None, sensor=DEFAULT_PRESET, top_k=5, class_names=None, fold_batch_norm="head"
):
    """Write `model` as BASE/N, a SavedModel with the signatures of the module docstring; returns its path.

    Args:
        model: a keras.Model with inputs {"raw", "alpha", "sigma"} (models/joint.py JointClassifier,
            models/segmentation.py JointSegmenter, or an ISP model, models/components.py IspModel); trained weights as they are (EMA weights folded in by training).
        base_path: the model's base directory (created if missing); versions are integer subdirectories.
        version: the version number N, or None for one more than the highest present (1 for an empty base path).
        sensor: the sensor whose noise is baked into "raw_uint16" (a spec of physics.sensor_files.resolve_sensor: a
            preset name, a sensor.yaml path or a NoisePreset).
        top_k: how many classes the top-k outputs hold (at most the number of classes).
        class_names: one name per class (default "0", "1", ...).
        fold_batch_norm: "head" (default) or "all" exports the inference copy of export/fold.py with those batch
            norms folded into the convolutions before them (the same outputs up to float32 round-off, fewer ops,
            faster; "head" keeps the release-parity bound, see fold.py); None exports the model's own layers.
    """
    image_size, classifies, per_channel = _check_model(model)
    segments = SEGMENTATION_OUTPUT in model.output
    fold.check_export_setting(fold_batch_norm)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer; received {top_k!r}")
    sensor_name, preset = _check_sensor(sensor)
    task_output = "logits" if classifies else SEGMENTATION_OUTPUT if segments else None
    num_classes = int(model.output[task_output].shape[-1]) if task_output else 0
    names = _check_class_names(class_names, num_classes) if task_output else []
    base_path = os.fspath(base_path)
    os.makedirs(base_path, exist_ok=True)
    pick_next = version is None
    version = _next_version(base_path) if pick_next else _check_version(version)
    final = os.path.join(base_path, str(version))
    if os.path.exists(final):
        raise ValueError(f"version {version} already exists in {base_path!r}; pick another or leave version=None")

    model = fold.export_copy(model, fold_batch_norm)
    signature_class = _SegmentationSignatures if segments else _Signatures
    functions = signature_class(model, image_size, classifies, preset, top_k, names, per_channel)
    signatures = SIGNATURES if classifies else (SERVING_SIGNATURE, UINT16_SIGNATURE, ISP_SIGNATURE)
    temporary = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base_path)
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        for name in signatures:
            archive.add_endpoint(name, getattr(functions, name)())
        archive.write_out(temporary, verbose=False)
        if classifies:
            _set_classify_method_name(temporary)
        os.makedirs(os.path.join(temporary, EXTRA_DIR))
        _write_warmup(temporary, image_size, signatures, per_channel)
        metadata = {
            "model": model.name,
            "task": "classification" if classifies else "segmentation" if segments else "isp",
            "image_size": list(image_size),
            "num_classes": num_classes,
            "class_names": names,
            "top_k": min(top_k, num_classes) if classifies else 0,
            "sensor": {"name": sensor_name, "poisson": preset.poisson, "gauss": preset.gauss},
            "signatures": list(signatures),
            "per_channel_noise": per_channel,
            "batch_norm_folded": fold_batch_norm,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        }
        with open(os.path.join(temporary, EXTRA_DIR, METADATA_FILE), "w", encoding="utf-8") as file:
            json.dump(metadata, file, indent=2)
        _make_readable(temporary)
        final = _publish(temporary, base_path, version, pick_next=pick_next)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return final


def _make_readable(directory):
    """Modes as a plain mkdir would give under the umask (mkdtemp's 0700 would hide the version from a TF Serving
    container that runs as another user)."""
    umask = os.umask(0)
    os.umask(umask)
    for root, _, files in os.walk(directory):
        os.chmod(root, 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~umask)


def _publish(temporary, base_path, version, pick_next):
    """Rename the finished export into BASE/version. If another export took that version meanwhile: the next free
    one when the version was picked automatically, else a ValueError."""
    while True:
        final = os.path.join(base_path, str(version))
        try:
            os.rename(temporary, final)
            return final
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not os.path.isdir(final):
                raise
            if not pick_next:
                raise ValueError(
                    f"version {version} already exists in {base_path!r} (written meanwhile by another "
                    f"export); pick another or leave version=None"
                ) from None
            version = _next_version(base_path)
