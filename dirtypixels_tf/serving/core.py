"""A local model server with TF Serving's gRPC API (and its REST :predict), on top of exported SavedModels.

TF Serving itself runs from its container image (see serving/ at the repository root); this server implements the
same PredictionService (Predict, Classify, GetModelMetadata) and ModelService (GetModelStatus) from the
tensorflow-serving-api protos, so clients and tests talk to it exactly as they would to TF Serving. It serves one
model from one base path (see repository.py: versions, polling, labels, warm-up).

Request semantics, as TF Serving's (status codes in capitals):
- model_spec: name (NOT_FOUND "Servable not found for request: Latest(NAME)" if it is not this model's), then
  version (NOT_FOUND if that version is not loaded) or version_label (INVALID_ARGUMENT "Unrecognized servable
  version label" if unknown), else the latest loaded version. signature_name defaults to "serving_default".
- Predict: an unknown signature is FAILED_PRECONDITION ('Serving signature key "X" not found.', TF Serving's code
  and message). Inputs are checked against the signature before the model runs, each as INVALID_ARGUMENT naming
  the input and what was received: missing or extra inputs, wrong dtype (with the signature that takes that dtype),
  wrong rank, a height or width that is odd (not whole 2x2 Bayer blocks) or not the model's, unequal or empty
  batches, a malformed TensorProto. Values are checked in the graph (export/savedmodel.py): NaN or infinity, raw
  outside [0, 1], negative alpha or sigma, ... -> INVALID_ARGUMENT with the graph's message. output_filter works.
- Classify: the signature must have method name tensorflow/serving/classify (INVALID_ARGUMENT otherwise, as in TF
  Serving, so clients must name signature "classify"); an unknown signature or an empty input is INVALID_ARGUMENT.
- GetModelMetadata: metadata_field must be ["signature_def"]; answers a SignatureDefMap packed in an Any.
- GetModelStatus: every version seen, AVAILABLE or END (unloaded, or failed with its error); NOT_FOUND for another
  model or an unknown version.
- A message over --max-message-mb is refused by gRPC itself with RESOURCE_EXHAUSTED ("Received message larger than
  max"); by the REST endpoint with HTTP 413. Regress, MultiInference and HandleReloadConfigRequest are UNIMPLEMENTED.
A bad request never affects the next one: each is answered on its own and the server keeps serving.

REST (optional, http.server in a thread), paths as TF Serving's:
  POST /v1/models/NAME[/versions/N | /labels/L]:predict   {"signature_name"?, "instances": [...]} or {"inputs": ...}
  GET  /v1/models/NAME[/versions/N]                        the model status
  GET  /v1/models/NAME[/versions/N]/metadata               the signatures
"instances" (row format) is a list of objects, one per example, with every input; "inputs" (columnar) is an object
of batched inputs. Answers {"predictions": [...]} and {"outputs": {...}} respectively; errors {"error": message}
with HTTP 400 (INVALID_ARGUMENT, FAILED_PRECONDITION), 404 (NOT_FOUND), 413 (too large), 500.
"""

import base64
import http.server
import json
import logging
import os
import re
import threading
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)

from dirtypixels_tf.serving.repository import ModelRepository, ServingError

LOGGER = logging.getLogger("dirtypixels_tf.serving")
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"
DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
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


class PredictionCore:
    """The request handling shared by the gRPC services and the REST endpoint (protos in, protos out)."""

    def __init__(self, repository):
        self.repository = repository

    @staticmethod
    def _check_model_spec(request):
        if not request.HasField("model_spec"):
            raise ServingError(_INVALID, "Missing ModelSpec")
        return request.model_spec

    def input_specs(self, model_spec):
        """{input name: tf.TensorSpec} of the signature a ModelSpec names."""
        servable = self.repository.get(model_spec)
        return servable.function(model_spec.signature_name or DEFAULT_SIGNATURE).structured_input_signature[1]

    def _read_inputs(self, servable, signature_name, protos):
        specs = servable.function(signature_name).structured_input_signature[1]
        sent, expected = set(protos), set(specs)
        if sent != expected:
            raise ServingError(
                _INVALID,
                f"input size does not match signature {signature_name!r}: expected inputs {sorted(expected)}; "
                f"missing {sorted(expected - sent)}, sent extra {sorted(sent - expected)}",
            )
        arrays = {}
        for name, spec in sorted(specs.items()):
            proto = protos[name]
            if proto.dtype != spec.dtype.as_datatype_enum:
                received = tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else "DT_INVALID"
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
            try:
                array = tf.make_ndarray(proto)
            except (ValueError, TypeError, OverflowError) as error:
                raise ServingError(_INVALID, f"input {name!r}: malformed TensorProto: {error}") from None
            self._check_shape(name, spec, array.shape)
            arrays[name] = array
        batches = {name: array.shape[0] for name, array in arrays.items()}
        if len(set(batches.values())) > 1:
            raise ServingError(_INVALID, f"inputs must have the same batch size; received {batches}")
        if 0 in batches.values():
            raise ServingError(_INVALID, f"batch size must be at least 1; received {batches}")
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
        outputs = _call(function, self._read_inputs(servable, signature_name, request.inputs))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.repository.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name
        for name in names:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name].numpy()))
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
        path = os.path.join(servable.path, WARMUP_FILE)
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


def _answer(context, method, request):
    try:
        return method(request)
    except ServingError as error:
        context.abort(error.code, error.message)
    except Exception as error:  # a bug must answer INTERNAL, not take the worker down
        LOGGER.exception("internal error")
        context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core):
        self.core = core

    def Predict(self, request, context):
        return _answer(context, self.core.predict, request)

    def Classify(self, request, context):
        return _answer(context, self.core.classify, request)

    def GetModelMetadata(self, request, context):
        return _answer(context, self.core.get_model_metadata, request)


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core):
        self.core = core

    def GetModelStatus(self, request, context):
        return _answer(context, self.core.get_model_status, request)


# ---------------------------------------------------------------------------------------------------- REST


_MODEL_PATH = r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
_PREDICT_PATH = re.compile(_MODEL_PATH + r":predict$")
_STATUS_PATH = re.compile(_MODEL_PATH + r"(?P<metadata>/metadata)?$")
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
}


def _json_strings(value):
    if isinstance(value, list):
        return [_json_strings(v) for v in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ServingError(_INVALID, f"expected strings or {{'b64': ...}} objects; received {value!r}")


def _json_to_array(name, value, dtype):
    """A JSON value -> a NumPy array of the signature's dtype (numbers checked to fit integer dtypes)."""
    if dtype == tf.string:
        return np.array(_json_strings(value), dtype=object)
    try:
        array = np.asarray(value)
    except ValueError:
        raise ServingError(
            _INVALID, f"input {name!r}: the nested lists are ragged (all rows must have one length)"
        ) from None
    if array.dtype.kind not in "biuf":
        raise ServingError(_INVALID, f"input {name!r} must hold numbers ({dtype.name}); received {str(value)[:80]}")
    if dtype.is_integer:
        if array.dtype.kind == "f" and not np.all(np.isfinite(array) & (array == np.round(array))):
            raise ServingError(_INVALID, f"input {name!r} must hold integers ({dtype.name}); received non-integers")
        if array.size and (array.min() < dtype.min or array.max() > dtype.max):
            raise ServingError(
                _INVALID,
                f"input {name!r} must hold values in [{dtype.min}, {dtype.max}] ({dtype.name}); received "
                f"values from {array.min()} to {array.max()}",
            )
    return array.astype(dtype.as_numpy_dtype)


def _string_to_json(value):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode("ascii")}


def _array_to_json(array):
    """NumPy -> JSON values; strings as UTF-8 text, or {"b64": ...} when they are not UTF-8 (TF Serving's rule)."""
    if array.dtype == object:
        return np.vectorize(_string_to_json, otypes=[object])(array).tolist()
    return array.tolist()


class RestApi:
    """TF Serving's REST predict/status/metadata over a PredictionCore: handle(method, path, body) -> (HTTP, JSON)."""

    def __init__(self, core):
        self.core = core

    @staticmethod
    def _model_spec(match, spec):
        spec.name = match["name"]
        if match["version"]:
            spec.version.value = int(match["version"])
        elif match["label"]:
            spec.version_label = match["label"]

    def handle(self, method, path, body):
        path = path.split("?", 1)[0]
        if method == "POST" and (match := _PREDICT_PATH.match(path)):
            return 200, self._predict(match, body)
        if method == "GET" and (match := _STATUS_PATH.match(path)):
            if match["metadata"]:
                request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
                self._model_spec(match, request.model_spec)
                response = self.core.get_model_metadata(request)
            else:
                request = get_model_status_pb2.GetModelStatusRequest()
                self._model_spec(match, request.model_spec)
                response = self.core.get_model_status(request)
            return 200, json_format.MessageToDict(
                response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
        raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {path}")

    def _predict(self, match, body):
        try:
            document = json.loads(body or b"")
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ServingError(_INVALID, f"the request body is not JSON: {error}") from None
        if not isinstance(document, dict):
            raise ServingError(_INVALID, "the request body must be a JSON object")
        if ("instances" in document) == ("inputs" in document):
            raise ServingError(_INVALID, "the request must have exactly one of 'instances' and 'inputs'")
        signature_name = document.get("signature_name", DEFAULT_SIGNATURE)
        if not isinstance(signature_name, str):
            raise ServingError(_INVALID, "'signature_name' key must be a string value.")
        request = predict_pb2.PredictRequest()
        self._model_spec(match, request.model_spec)
        request.model_spec.signature_name = signature_name
        specs = self.core.input_specs(request.model_spec)
        rows = "instances" in document
        columns = self._columns(document["instances"], specs) if rows else self._inputs(document["inputs"], specs)
        for name, value in columns.items():
            dtype = specs[name].dtype if name in specs else tf.float32
            request.inputs[name].CopyFrom(tf.make_tensor_proto(_json_to_array(name, value, dtype)))
        response = self.core.predict(request)
        outputs = {name: tf.make_ndarray(proto) for name, proto in sorted(response.outputs.items())}
        if rows:
            batch = next(iter(outputs.values())).shape[0]
            if len(outputs) == 1:
                (only,) = outputs.values()
                return {"predictions": [_array_to_json(only[i]) for i in range(batch)]}
            return {"predictions": [{k: _array_to_json(v[i]) for k, v in outputs.items()} for i in range(batch)]}
        if len(outputs) == 1:
            return {"outputs": _array_to_json(next(iter(outputs.values())))}
        return {"outputs": {k: _array_to_json(v) for k, v in outputs.items()}}

    @staticmethod
    def _columns(instances, specs):
        if not isinstance(instances, list) or not instances:
            raise ServingError(_INVALID, "'instances' must be a non-empty list")
        if len(specs) == 1 and not any(isinstance(i, dict) for i in instances):
            return {next(iter(specs)): instances}
        names = sorted(specs)
        for index, instance in enumerate(instances):
            if not isinstance(instance, dict) or sorted(instance) != names:
                keys = sorted(instance) if isinstance(instance, dict) else type(instance).__name__
                raise ServingError(_INVALID, f"instance {index} must be an object with keys {names}; received {keys}")
        return {name: [instance[name] for instance in instances] for name in names}

    @staticmethod
    def _inputs(inputs, specs):
        if isinstance(inputs, dict):
            return inputs
        if len(specs) == 1:
            return {next(iter(specs)): inputs}
        raise ServingError(_INVALID, f"'inputs' must be an object with keys {sorted(specs)}")


def _rest_handler(api, max_bytes, slots):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

        def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
            LOGGER.debug("rest: " + format, *args)

        def _handle(self, method):
            with slots:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    if length > max_bytes:
                        self.close_connection = True  # the body is not read
                        raise ServingError(
                            grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"request body of {length} bytes is larger than the maximum of {max_bytes} bytes",
                        )
                    body = self.rfile.read(length) if length else b""
                    status, document = api.handle(method, self.path, body)
                except ServingError as error:
                    status, document = HTTP_STATUS.get(error.code, 500), {"error": error.message}
                except Exception as error:
                    LOGGER.exception("internal error")
                    status, document = 500, {"error": f"{type(error).__name__}: {error}"}
            payload = json.dumps(document).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


# ---------------------------------------------------------------------------------------------------- server


def _address(host, port):
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class LocalModelServer:
    """Serve the SavedModel versions under `base_path` over gRPC (and REST if rest_port is not None).

    Args:
        base_path: directory of integer-named versions (export/savedmodel.py writes them).
        model_name: the name clients ask for (default: the base path's last component, as TF Serving's image).
        host: interface to bind (127.0.0.1 by default: only this machine can connect).
        port, rest_port: TCP ports; 0 picks a free one (read `port` and `rest_port` after start()).
        poll_seconds: how often the base path is scanned for new versions.
        max_workers: gRPC worker threads (also the number of REST requests handled at once).
        max_message_mb: the largest request and response, in MiB (gRPC answers RESOURCE_EXHAUSTED above it).
        num_versions, version_labels: see repository.ModelRepository.
    Use as a context manager, or start() / stop(); stop lets requests in flight finish (grace seconds).
    """

    def __init__(
        self,
        base_path,
        model_name=None,
        host="127.0.0.1",
        port=8500,
        rest_port=None,
        poll_seconds=2.0,
        max_workers=4,
        max_message_mb=64,
        num_versions=1,
        version_labels=None,
    ):
        base_path = os.fspath(base_path)
        name = model_name or os.path.basename(os.path.normpath(os.path.abspath(base_path)))
        for value, label in ((max_workers, "max_workers"), (max_message_mb, "max_message_mb")):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{label} must be a positive number; received {value!r}")
        if isinstance(poll_seconds, bool) or not isinstance(poll_seconds, (int, float)) or not poll_seconds > 0:
            raise ValueError(f"poll_seconds must be a positive number; received {poll_seconds!r}")
        self.host = host
        self.port = port
        self.rest_port = rest_port
        self.poll_seconds = float(poll_seconds)
        self.max_workers = int(max_workers)
        self.max_message_bytes = int(max_message_mb * 1024 * 1024)
        self.repository = ModelRepository(name, base_path, num_versions, version_labels)
        self.core = PredictionCore(self.repository)
        self.repository.warmup = self.core.warmup
        self._grpc = None
        self._http = None
        self._http_thread = None

    @property
    def model_name(self):
        return self.repository.name

    @property
    def address(self):
        """HOST:PORT of the gRPC endpoint."""
        return _address(self.host, self.port)

    def start(self):
        """Load the current versions, then serve; returns self once both endpoints accept requests."""
        self.repository.refresh()
        try:
            if self.rest_port is not None:
                handler = _rest_handler(
                    RestApi(self.core), self.max_message_bytes, threading.Semaphore(self.max_workers)
                )
                self._http = http.server.ThreadingHTTPServer((self.host, self.rest_port), handler)
                self._http.daemon_threads = True
                self.rest_port = self._http.server_address[1]
            self._start_grpc()
        except BaseException:
            self.stop(grace=0)
            raise
        if self._http is not None:
            self._http_thread = threading.Thread(target=self._http.serve_forever, name="rest", daemon=True)
            self._http_thread.start()
        self.repository.start_polling(self.poll_seconds)
        return self

    def _start_grpc(self):
        options = [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
        ]
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="grpc"), options=options
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(self.core), self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(self.core), self._grpc)
        try:
            port = self._grpc.add_insecure_port(_address(self.host, self.port))
        except RuntimeError as error:
            raise OSError(f"cannot bind gRPC to {_address(self.host, self.port)}: {error}") from None
        if port == 0:
            raise OSError(f"cannot bind gRPC to {_address(self.host, self.port)}: address unavailable")
        self.port = port
        self._grpc.start()

    def stop(self, grace=5.0):
        """Stop accepting requests, let those in flight finish (up to `grace` seconds), stop polling."""
        if self._http is not None:
            if self._http_thread is not None:
                self._http.shutdown()
                self._http_thread.join()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
            self._grpc = None
        self.repository.stop_polling()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
