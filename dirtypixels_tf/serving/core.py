"""The request handling of the local model server, shared by its gRPC services (grpc_api.py) and REST (rest.py).

PredictionCore answers TF Serving's PredictionService and ModelService requests (protos in, protos out) from a
ModelRepository (repository.py); the transports only move bytes. Semantics, codes and messages are TF Serving's
(serving/README.md, "Errors", lists them):
- model_spec: the name (NOT_FOUND if not this model's), then version (NOT_FOUND if not loaded) or version_label
  (INVALID_ARGUMENT if unknown), else the latest loaded version; signature_name defaults to "serving_default".
- Predict: an unknown signature is FAILED_PRECONDITION. Inputs are checked from each TensorProto's declared dtype
  and shape BEFORE any array is built (a 128-byte proto may declare a 7 GB tensor): missing or extra inputs, dtype,
  shape, rank, an odd or foreign height or width, a batch over `max_batch` -> INVALID_ARGUMENT naming the input; a
  declared size over `max_bytes` -> RESOURCE_EXHAUSTED; then unequal or empty batches and malformed values. Values
  are checked in the graph (export/savedmodel.py) -> INVALID_ARGUMENT with its message. output_filter works.
- Classify: the signature's method name must be tensorflow/serving/classify (clients name "classify"); an unknown
  signature, an empty input or more examples than `max_batch` is INVALID_ARGUMENT.
- GetModelMetadata: metadata_field must be ["signature_def"]; answers a SignatureDefMap packed in an Any.
- GetModelStatus: every version seen, AVAILABLE or END (unloaded, or failed with an error that names the version,
  never a server path); NOT_FOUND for another model or an unknown version.
A bad request never affects the next one: each is answered on its own.
"""

import logging
import math
import os
import re

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    prediction_log_pb2,
)

from dirtypixels_tf.catalog import CLASSIFY_METHOD_NAME, SERVING_SIGNATURE
from dirtypixels_tf.export import layout
from dirtypixels_tf.serving.repository import ServingError

LOGGER = logging.getLogger("dirtypixels_tf.serving")
DEFAULT_SIGNATURE = SERVING_SIGNATURE  # a request that names no signature gets this one, as in TF Serving
_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}
_INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _shape_text(shape):
    return (
        "["
        + ", ".join("B" if i == 0 and d is None else "?" if d is None else str(d) for i, d in enumerate(shape))
        + "]"
    )


def _op_error_message(error):
    """The useful line of a TensorFlow runtime error: the assertion's own message, without the graph location."""
    text = re.split(r"\s*\[\[\{\{|\s*\[Op:", error.message)[0].strip()  # drop the node and function names
    line = text.splitlines()[-1] if text else type(error).__name__  # after "Graph execution error: Detected at..."
    line = re.sub(r"^assertion failed: \[(.*)\]$", r"\1", line.strip())
    return line.replace("] [", " ")


def _call(function, arrays):
    """Run a loaded signature; TensorFlow runtime errors become ServingErrors with the same status code."""
    try:
        return function(**{name: tf.constant(value) for name, value in arrays.items()})
    except tf.errors.OpError as error:
        raise ServingError(
            _GRPC_CODES.get(error.error_code, grpc.StatusCode.UNKNOWN), _op_error_message(error)
        ) from None


def call_signature(servable, signature_name, arrays):
    """The unbatched call of a signature on {input name: array} (what batching.Batcher merges requests for)."""
    return _call(servable.function(signature_name), arrays)


def _dtype_name(enum):
    try:
        return tf.dtypes.as_dtype(enum).name if enum else "DT_INVALID"
    except TypeError:
        return f"unknown dtype {enum}"


def declared_shape(name, proto):
    """The shape a TensorProto declares, read from its dims (nothing is allocated); INVALID_ARGUMENT if malformed."""
    if proto.tensor_shape.unknown_rank:
        raise ServingError(_INVALID, f"input {name!r}: malformed TensorProto: its shape has an unknown rank")
    shape = [dim.size for dim in proto.tensor_shape.dim]
    if any(size < 0 for size in shape):
        raise ServingError(_INVALID, f"input {name!r}: malformed TensorProto: negative dimension in shape {shape}")
    return shape


def _value_count(proto):
    """How many values a TensorProto carries (tensor_content bytes, or the length of its typed value field)."""
    if proto.tensor_content:
        return None
    for field in (
        "half_val",
        "float_val",
        "double_val",
        "int_val",
        "string_val",
        "int64_val",
        "bool_val",
        "uint32_val",
        "uint64_val",
        "scomplex_val",
        "dcomplex_val",
    ):
        count = len(getattr(proto, field))
        if count:
            return count
    return 0


class PredictionCore:
    """The request handling shared by the gRPC services and the REST endpoint (protos in, protos out).

    max_batch: the largest batch (examples per request) answered; max_bytes: the largest tensor a request may
    declare (the server's --max-message-mb), checked from each TensorProto's shape before it is expanded.
    """

    def __init__(self, repository, max_batch=64, max_bytes=64 * 1024 * 1024):
        self.repository = repository
        self.max_batch = int(max_batch)
        self.max_bytes = int(max_bytes)
        self.batcher = None  # a batching.Batcher when the server batches Predict requests

    @staticmethod
    def _check_model_spec(request):
        if not request.HasField("model_spec"):
            raise ServingError(_INVALID, "Missing ModelSpec")
        return request.model_spec

    def input_specs(self, model_spec):
        """{input name: tf.TensorSpec} of the signature a ModelSpec names."""
        servable = self.repository.get(model_spec)
        return servable.function(model_spec.signature_name or DEFAULT_SIGNATURE).structured_input_signature[1]

    def check_batch(self, batch, what):
        if batch > self.max_batch:
            raise ServingError(
                _INVALID,
                f"{what} has a batch of {batch}, more than this server's --max-batch of {self.max_batch}; "
                f"split the request",
            )

    def _check_declared(self, name, spec, proto):
        """Shape, batch and size of one input from its proto's dims, before any array is built."""
        shape = declared_shape(name, proto)
        self._check_shape(name, spec, shape)
        if shape:
            self.check_batch(shape[0], f"input {name!r}")
        elements = math.prod(shape)
        itemsize = spec.dtype.size if spec.dtype != tf.string else np.dtype(object).itemsize
        if elements * itemsize > self.max_bytes:
            raise ServingError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"input {name!r} declares shape {shape} ({elements * itemsize / 2**20:.1f} MiB of "
                f"{spec.dtype.name}), more than this server's --max-message-mb of {self.max_bytes / 2**20:g} MiB",
            )
        count = _value_count(proto)
        if proto.tensor_content and spec.dtype != tf.string:
            if len(proto.tensor_content) != elements * itemsize:
                raise ServingError(
                    _INVALID,
                    f"input {name!r}: malformed TensorProto: tensor_content holds {len(proto.tensor_content)} bytes; "
                    f"shape {shape} of {spec.dtype.name} needs {elements * itemsize}",
                )
        elif count is not None and count > elements:
            raise ServingError(
                _INVALID,
                f"input {name!r}: malformed TensorProto: {count} values for shape {shape} ({elements} values)",
            )

    def _read_inputs(self, servable, signature_name, protos):
        specs = servable.function(signature_name).structured_input_signature[1]
        sent, expected = set(protos), set(specs)
        if sent != expected:
            raise ServingError(
                _INVALID,
                f"input size does not match signature {signature_name!r}: expected inputs {sorted(expected)}; "
                f"missing {sorted(expected - sent)}, sent extra {sorted(sent - expected)}",
            )
        for name, spec in sorted(specs.items()):
            proto = protos[name]
            if proto.dtype != spec.dtype.as_datatype_enum:
                received = _dtype_name(proto.dtype)
                takers = [
                    other
                    for other, function in sorted(servable.functions.items())
                    if (s := function.structured_input_signature[1].get(name)) is not None
                    and s.dtype.as_datatype_enum == proto.dtype
                ]
                hint = f" (signature {takers[0]!r} takes {name} as {received})" if takers else ""
                raise ServingError(
                    _INVALID,
                    f"input {name!r} of signature {signature_name!r} must have dtype {spec.dtype.name}; "
                    f"received {received}{hint}",
                )
            self._check_declared(name, spec, proto)
        batches = {name: declared_shape(name, protos[name])[0] for name in specs}
        if len(set(batches.values())) > 1:
            raise ServingError(_INVALID, f"inputs must have the same batch size; received {batches}")
        if 0 in batches.values():
            raise ServingError(_INVALID, f"batch size must be at least 1; received {batches}")
        arrays = {}
        for name in sorted(specs):
            try:
                arrays[name] = tf.make_ndarray(protos[name])
            except (ValueError, TypeError, OverflowError) as error:
                raise ServingError(_INVALID, f"input {name!r}: malformed TensorProto: {error}") from None
        return arrays

    @staticmethod
    def _check_shape(name, spec, shape):
        expected = spec.shape.as_list()
        if len(shape) != len(expected):
            raise ServingError(
                _INVALID,
                f"input {name!r} must have rank {len(expected)}, shape {_shape_text(expected)}; received shape "
                f"{list(shape)}",
            )
        if name == "raw" and len(shape) == 4 and (shape[1] % 2 or shape[2] % 2):
            raise ServingError(
                _INVALID,
                f"input 'raw' must have even height and width (whole 2x2 Bayer blocks); received {shape[1]}x{shape[2]}",
            )
        if any(e is not None and e != d for e, d in zip(expected, shape)):
            raise ServingError(
                _INVALID,
                f"input {name!r} must have shape {_shape_text(expected)} (the model's frame size); received "
                f"{list(shape)}",
            )

    def _predict(self, servable, request):
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        function = servable.function(signature_name)
        names = list(request.output_filter) or sorted(function.structured_outputs)
        unknown = [n for n in names if n not in function.structured_outputs]
        if unknown or len(set(names)) != len(names):
            raise ServingError(
                _INVALID,
                f"output_filter must name distinct outputs of {sorted(function.structured_outputs)}; received "
                f"{list(request.output_filter)}",
            )
        arrays = self._read_inputs(servable, signature_name, request.inputs)
        if self.batcher is not None:  # --enable-batching: merged with concurrent requests (batching.py)
            outputs = self.batcher.predict(servable, signature_name, arrays)
        else:
            outputs = _call(function, arrays)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.repository.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name
        for name in names:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(outputs[name])))
        return response

    def predict(self, request):
        return self._predict(self.repository.get(self._check_model_spec(request)), request)

    @staticmethod
    def _serialized_examples(request_input):
        kind = request_input.WhichOneof("kind")
        if kind == "example_list":
            return [example.SerializeToString() for example in request_input.example_list.examples]
        if kind == "example_list_with_context":
            # TF Serving's rule: each example is parsed as context + example, so an example's features win.
            listed = request_input.example_list_with_context
            context = listed.context.SerializeToString()
            return [context + example.SerializeToString() for example in listed.examples]
        return []

    def _classify(self, servable, request):
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature_def = servable.signature_defs.get(signature_name)
        if signature_def is None:
            raise ServingError(_INVALID, f"No signature was found with the name: {signature_name}")
        if signature_def.method_name != CLASSIFY_METHOD_NAME:
            raise ServingError(
                _INVALID,
                f"Expected classification signature method_name to be {CLASSIFY_METHOD_NAME}. Was: "
                f"{signature_def.method_name} (signature {signature_name!r}; this model's classification signature "
                f"is 'classify')",
            )
        serialized = self._serialized_examples(request.input)
        if not serialized:
            raise ServingError(_INVALID, "ClassificationRequest::input is empty.")
        self.check_batch(len(serialized), "ClassificationRequest::input")
        outputs = _call(servable.function(signature_name), {"inputs": np.array(serialized, dtype=object)})
        classes = outputs["classes"].numpy() if "classes" in outputs else None
        scores = outputs["scores"].numpy() if "scores" in outputs else None
        response = classification_pb2.ClassificationResponse()
        response.model_spec.name = self.repository.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name
        count = (scores if scores is not None else classes).shape[1]
        for index in range(len(serialized)):
            classifications = response.result.classifications.add()
            for k in range(count):
                entry = classifications.classes.add()
                if classes is not None:
                    entry.label = classes[index, k].decode("utf-8", "replace")
                if scores is not None:
                    entry.score = float(scores[index, k])
        return response

    def classify(self, request):
        return self._classify(self.repository.get(self._check_model_spec(request)), request)

    def get_model_metadata(self, request):
        model_spec = self._check_model_spec(request)
        if not request.metadata_field:
            raise ServingError(_INVALID, "GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != "signature_def":
                raise ServingError(_INVALID, f"Metadata field {field} is not supported (only signature_def)")
        servable = self.repository.get(model_spec)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in servable.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.repository.name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def get_model_status(self, request):
        model_spec = self._check_model_spec(request)
        states = self.repository.states()
        if model_spec.name != self.repository.name or not states:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {model_spec.name}")
        if model_spec.HasField("version"):
            version = model_spec.version.value
            if version not in states:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {model_spec.name}"
                )
            states = {version: states[version]}
        response = get_model_status_pb2.GetModelStatusResponse()
        for version, (state, error) in sorted(states.items()):
            status = response.model_version_status.add(version=version)
            status.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
            status.status.error_code = 2 if error else 0  # tensorflow.error.Code UNKNOWN / OK
            status.status.error_message = error
        return response

    def warmup(self, servable):
        """Replay the version's TF Serving warm-up records (assets.extra/tf_serving_warmup_requests), if any."""
        path = os.path.join(servable.path, layout.EXTRA_DIR, layout.WARMUP_FILE)
        if not os.path.isfile(path):
            return
        for record in tf.data.TFRecordDataset(path):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            kind = log.WhichOneof("log_type")
            if kind == "predict_log":
                self._predict(servable, log.predict_log.request)
            elif kind == "classify_log":
                self._classify(servable, log.classify_log.request)
            else:
                raise ValueError(f"warm-up record of kind {kind!r} is not supported (predict_log, classify_log)")
