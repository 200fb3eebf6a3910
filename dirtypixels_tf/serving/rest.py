"""The REST front end of the local model server: TF Serving's REST API on aiohttp, over a PredictionCore.

Paths as TF Serving's:
  POST /v1/models/NAME[/versions/N | /labels/L]:predict   {"signature_name"?, "instances": [...]} or {"inputs": ...}
  GET  /v1/models/NAME[/versions/N]                        the model status
  GET  /v1/models/NAME[/versions/N]/metadata               the signatures
"instances" (row format) is a list of objects, one per example, with every input; "inputs" (columnar) is an object
of batched inputs. Answers {"predictions": [...]} and {"outputs": {...}} respectively; errors {"error": message}
with HTTP 400 (INVALID_ARGUMENT, FAILED_PRECONDITION; also malformed HTTP, e.g. a Content-Length that is not a
non-negative integer), 404 (NOT_FOUND), 408 (the body did not arrive within the read timeout), 413 (a body over
the largest request the signature allows, refused from its Content-Length before it is read, or while a chunked body
arrives), 429 (no room in the --max-inflight-mb budget within the read timeout), 500.
The largest body a :predict accepts is min(--max-message-mb, --max-batch x the values of one example of the model's
largest signature x MAX_CHARS_PER_VALUE + overhead); a body is also refused before it is parsed if it holds more
JSON values (commas and brackets) than that many examples have, so that parsing (Python objects, about 32 bytes a
value) cannot expand a body beyond what a valid request would. JSON booleans are refused where numbers are expected.

Why aiohttp: a maintained HTTP/1.1 server (llhttp parser: chunked bodies, Content-Length validation, header size
limits) that runs in one asyncio event loop with grpc.aio (grpc_api.py). A connection waiting for its body holds a
coroutine, not a worker: the JSON parsing and the model run in the server's worker pool only once a body has
arrived whole, and a body that does not arrive within `read_timeout` seconds is answered 408. The listening socket
has a real backlog (server.py).
"""

import asyncio
import base64
import json
import logging
import re

import grpc
import numpy as np
import tensorflow as tf
from aiohttp import web
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from dirtypixels_tf.serving.core import DEFAULT_SIGNATURE
from dirtypixels_tf.serving.limits import MIB, REST_EXPANSION
from dirtypixels_tf.serving.repository import ServingError

LOGGER = logging.getLogger("dirtypixels_tf.serving")
_INVALID = grpc.StatusCode.INVALID_ARGUMENT
_MAX_VERSION = 2**63 - 1  # ModelSpec.version is an int64
_MODEL_PATH = r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
_PREDICT_PATH = re.compile(_MODEL_PATH + r":predict$")
_STATUS_PATH = re.compile(_MODEL_PATH + r"(?P<metadata>/metadata)?$")
MAX_CHARS_PER_VALUE = 32  # JSON text of one number with its separator: "-1.2345678901234567e-308, " is 26
BODY_OVERHEAD_BYTES = 4096  # keys, signature_name, brackets
ROW_OVERHEAD_BYTES = 256  # per example: the keys of one row of "instances"
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


def _holds_booleans(value):
    return any(v is True or v is False or (isinstance(v, list) and _holds_booleans(v)) for v in value)


def _json_to_array(name, value, dtype, may_hold_booleans=True):
    """A JSON value -> a NumPy array of the signature's dtype (numbers checked to fit integer dtypes; booleans are
    refused). may_hold_booleans=False skips the search for booleans (the body has no `true` or `false`)."""
    if dtype == tf.string:
        return np.array(_json_strings(value), dtype=object)
    try:
        array = np.asarray(value)
    except (ValueError, RecursionError):
        raise ServingError(
            _INVALID,
            f"input {name!r}: the nested lists are ragged or too deep (all rows must have one length, at most 32 "
            f"levels)",
        ) from None
    if array.dtype.kind == "b" or (
        may_hold_booleans and array.dtype.kind in "iuf" and isinstance(value, list) and _holds_booleans(value)
    ):
        raise ServingError(
            _INVALID, f"input {name!r} must hold numbers ({dtype.name}); received a boolean (true/false)"
        )
    if array.dtype.kind not in "iuf":
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

    def request_limits(self, method, path):
        """(largest body in bytes, most JSON tokens) a request to `path` may hold (None, None: no limit but the
        server's); ServingError if the path names no model or version served. Tokens are what Python objects
        parsing makes: numbers, lists, objects (counted as commas plus opening brackets)."""
        match = _PREDICT_PATH.match(path.split("?", 1)[0]) if method == "POST" else None
        if match is None:
            return None, None
        spec = predict_pb2.PredictRequest().model_spec
        self._model_spec(match, spec)
        largest_body, most_tokens = 0, 0
        for function in self.core.repository.get(spec).functions.values():
            values, lists = 0, 0
            specs = function.structured_input_signature[1].values()
            if any(spec.dtype == tf.string for spec in specs):
                continue  # serialized examples: base64 text, shorter than the same frames as JSON numbers
            for input_spec in specs:
                dims = input_spec.shape.as_list()[1:]
                if None in dims:
                    return None, None
                values += int(np.prod(dims))
                lists += sum(int(np.prod(dims[:k])) for k in range(len(dims)))  # the nested lists of one example
            largest_body = max(largest_body, values * MAX_CHARS_PER_VALUE + lists * 4 + ROW_OVERHEAD_BYTES)
            most_tokens = max(most_tokens, values + 2 * lists + 4)
        batch = self.core.max_batch
        return batch * largest_body + BODY_OVERHEAD_BYTES, batch * most_tokens + 64

    def answer(self, method, path, body, max_tokens=None):
        """(HTTP status, JSON document) of one request; never raises. max_tokens: the most JSON tokens the body
        may hold (request_limits; checked before it is parsed)."""
        try:
            if max_tokens is not None:
                found = body.count(b",") + body.count(b"[") + body.count(b"{")
                if found > max_tokens:
                    raise ServingError(
                        _INVALID,
                        f"the request body holds {found} JSON values and lists; a request of --max-batch "
                        f"{self.core.max_batch} examples holds at most {max_tokens}",
                    )
            return self.handle(method, path, body)
        except ServingError as error:
            return HTTP_STATUS.get(error.code, 500), {"error": error.message}
        except Exception as error:  # a bug answers 500 and the server keeps serving
            LOGGER.exception("internal error")
            return 500, {"error": f"{type(error).__name__}: {error}"}

    @staticmethod
    def _model_spec(match, spec):
        spec.name = match["name"]
        if match["version"]:
            version = int(match["version"])
            if version > _MAX_VERSION:
                raise ServingError(_INVALID, f"version must be an integer below 2**63; received {match['version']}")
            spec.version.value = version
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
        except RecursionError:
            raise ServingError(_INVALID, "the request body is not usable JSON: it is nested too deeply") from None
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
        batch = document["instances"] if rows else document["inputs"]
        for value in batch.values() if isinstance(batch, dict) else [batch]:
            if isinstance(value, list):  # refused before the lists become arrays
                self.core.check_batch(len(value), "'instances'" if rows else "'inputs'")
        columns = self._columns(document["instances"], specs) if rows else self._inputs(document["inputs"], specs)
        may_hold_booleans = b"true" in body or b"false" in body
        for name, value in columns.items():
            dtype = specs[name].dtype if name in specs else tf.float32
            array = _json_to_array(name, value, dtype, may_hold_booleans)
            request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
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


class ProtocolLog(logging.LoggerAdapter):
    """aiohttp's server log, at DEBUG: it reports malformed HTTP and connections that clients drop, which are the
    clients' errors (answered 400 by aiohttp, or nothing to answer), not the server's."""

    def __init__(self):
        super().__init__(logging.getLogger("dirtypixels_tf.serving.http"), {})

    def log(self, level, msg, *args, **kwargs):
        super().log(logging.DEBUG, msg, *args, **kwargs)


def _json_response(status, document):
    return web.Response(status=status, text=json.dumps(document), content_type="application/json")


def _error(status, message):
    response = _json_response(status, {"error": message})
    response.force_close()  # the body is not read (or not whole)
    return response


class _TooLarge(Exception):
    pass


async def _read_body(request, limit):
    body = bytearray()
    while chunk := await request.content.read(2**16):
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


def make_app(api, executor, max_bytes, read_timeout, budget):
    """The aiohttp application: bodies up to `max_bytes` (less where the signature allows less), read within
    `read_timeout` s once `budget` (limits.ByteBudget) holds room for them, answered in `executor`."""

    async def handle(request):
        loop = asyncio.get_running_loop()
        try:
            max_body, max_tokens = api.request_limits(request.method, request.path)
        except ServingError as error:
            return _error(HTTP_STATUS.get(error.code, 500), error.message)
        limit = min(max_bytes, max_body or max_bytes)
        what = "the largest request of --max-batch examples" if limit < max_bytes else "--max-message-mb"
        if request.content_length is not None and request.content_length > limit:
            return _error(
                413,
                f"request body of {request.content_length} bytes is larger than the maximum of {limit} bytes ({what})",
            )
        reserved = REST_EXPANSION * (request.content_length if request.content_length is not None else limit)
        if reserved > budget.limit:
            return _error(
                413,
                f"request body of {reserved // REST_EXPANSION} bytes needs {reserved / MIB:.1f} MiB of working memory, "
                f"more than --max-inflight-mb of {budget.limit / MIB:g} MiB",
            )
        if not await budget.acquire(reserved, read_timeout):
            return _error(
                429, f"the server is busy: no room in --max-inflight-mb for this request within {read_timeout:g} s"
            )
        try:
            try:
                body = await asyncio.wait_for(_read_body(request, limit), read_timeout)
            except asyncio.TimeoutError:
                return _error(408, f"the request body did not arrive within {read_timeout:g} s")
            except _TooLarge:
                return _error(413, f"request body is larger than the maximum of {limit} bytes ({what})")
            answer = await loop.run_in_executor(executor, api.answer, request.method, request.path, body, max_tokens)
            del body
            return _json_response(*answer)
        finally:
            await budget.release(reserved)

    app = web.Application(client_max_size=max_bytes)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
