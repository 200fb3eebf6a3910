"""A Python client of TF Serving's gRPC API (TF Serving itself, or the local server of server.py).

    with PredictionClient("127.0.0.1:8500") as client:
        outputs = client.predict(raw, alpha, sigma, model="dirtypixels")          # serving_default
        outputs = client.predict_uint16(raw_u16, black, white, iso, model="dirtypixels")  # raw_uint16
        labels = client.classify([example, ...], model="dirtypixels")              # classify signature

Arrays: raw [B, H, W, 1] (a single frame [H, W] or [H, W, 1] is taken as B = 1), alpha, sigma and the other
per-image values [B] (a scalar is repeated for every frame). Outputs come back as NumPy arrays by name (strings as
bytes). Errors are grpc.RpcError with the server's status code and message (see server.py for which is which).
"""

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from dirtypixels_tf.catalog import CLASSIFY_SIGNATURE, SERVING_SIGNATURE, UINT16_SIGNATURE

DEFAULT_MODEL = "dirtypixels"


def as_batch(raw, dtype):
    """raw as [B, H, W, 1] of `dtype`: a frame [H, W] or [H, W, 1] becomes a batch of one."""
    raw = np.asarray(raw)
    if raw.ndim == 2:
        raw = raw[None, :, :, None]
    elif raw.ndim == 3 and raw.shape[-1] == 1:
        raw = raw[None]
    return raw.astype(dtype, copy=False)


def per_image(value, batch, name, per_colour=False):
    """A scalar or [B] value as float32 [B]; with per_colour, a [B, 3] value (alpha or sigma per colour, for a model
    exported with per-colour noise) as it is."""
    array = np.asarray(value, np.float32)
    if array.ndim == 0:
        return np.full([batch], array, np.float32)
    if array.shape != (batch,) and not (per_colour and array.shape == (batch, 3)):
        also = f" or [{batch}, 3] (per colour)" if per_colour else ""
        raise ValueError(
            f"{name} must be a number or have shape [{batch}] (one per frame){also}; received {array.shape}"
        )
    return array


def _model_spec(spec, model, signature=None, version=None, version_label=None):
    spec.name = model
    if signature:
        spec.signature_name = signature
    if version is not None and version_label is not None:
        raise ValueError(f"give version or version_label, not both; received {version!r} and {version_label!r}")
    if version is not None:
        spec.version.value = int(version)
    elif version_label is not None:
        spec.version_label = version_label


class PredictionClient:
    """gRPC client of one server at `host_port` ("HOST:PORT"); timeout in seconds per call."""

    def __init__(self, host_port, timeout=30.0, max_message_mb=64):
        size = int(max_message_mb * 1024 * 1024)
        options = [("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size)]
        self.host_port = host_port
        self.timeout = timeout
        self.channel = grpc.insecure_channel(host_port, options=options)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def request(
        self,
        inputs,
        model=DEFAULT_MODEL,
        signature=SERVING_SIGNATURE,
        version=None,
        version_label=None,
        output_filter=None,
    ):
        """Predict with {name: array} inputs as given; returns ({name: array} outputs, the answering ModelSpec)."""
        request = predict_pb2.PredictRequest()
        _model_spec(request.model_spec, model, signature, version, version_label)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        request.output_filter.extend(output_filter or [])
        response = self.prediction.Predict(request, timeout=self.timeout)
        outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
        return outputs, response.model_spec

    def predict(
        self, raw, alpha, sigma, model=DEFAULT_MODEL, signature=SERVING_SIGNATURE, version=None, version_label=None
    ):
        """RAW mosaics in [0, 1] with their noise (alpha, sigma) -> the signature's outputs by name."""
        raw = as_batch(raw, np.float32)
        inputs = {
            "raw": raw,
            "alpha": per_image(alpha, len(raw), "alpha", per_colour=True),
            "sigma": per_image(sigma, len(raw), "sigma", per_colour=True),
        }
        return self.request(inputs, model, signature, version, version_label)[0]

    def predict_uint16(self, raw, black_level, white_level, iso, model=DEFAULT_MODEL, version=None, version_label=None):
        """Sensor values (uint16) with black and white levels and ISO -> outputs of signature "raw_uint16"."""
        raw = as_batch(raw, np.uint16)
        batch = len(raw)
        inputs = {
            "raw": raw,
            "black_level": per_image(black_level, batch, "black_level"),
            "white_level": per_image(white_level, batch, "white_level"),
            "iso": per_image(iso, batch, "iso"),
        }
        return self.request(inputs, model, UINT16_SIGNATURE, version, version_label)[0]

    def classify(self, examples, model=DEFAULT_MODEL, signature=CLASSIFY_SIGNATURE, version=None, version_label=None):
        """Classify tf.Examples (tf.train.Example or serialized bytes) -> per example a list of (label, score)."""
        request = classification_pb2.ClassificationRequest()
        _model_spec(request.model_spec, model, signature, version, version_label)
        for example in examples:
            added = request.input.example_list.examples.add()
            if isinstance(example, bytes):
                added.ParseFromString(example)
            else:
                added.CopyFrom(example)
        response = self.prediction.Classify(request, timeout=self.timeout)
        return [[(c.label, c.score) for c in result.classes] for result in response.result.classifications]

    def metadata(self, model=DEFAULT_MODEL, version=None):
        """{signature name: tensorflow.SignatureDef} of the model, and the answering version: (signatures, version)."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        _model_spec(request.model_spec, model, version=version)
        response = self.prediction.GetModelMetadata(request, timeout=self.timeout)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return dict(signature_map.signature_def), response.model_spec.version.value

    def image_size(self, model=DEFAULT_MODEL, version=None):
        """(H, W) of the frames the model takes, read from its serving_default signature."""
        signatures, _ = self.metadata(model, version)
        dims = [d.size for d in signatures[SERVING_SIGNATURE].inputs["raw"].tensor_shape.dim]
        return dims[1], dims[2]

    def status(self, model=DEFAULT_MODEL, version=None):
        """[(version, state name, error message)] of every version the server has seen."""
        request = get_model_status_pb2.GetModelStatusRequest()
        _model_spec(request.model_spec, model, version=version)
        response = self.models.GetModelStatus(request, timeout=self.timeout)
        state_name = get_model_status_pb2.ModelVersionStatus.State.Name
        return [(s.version, state_name(s.state), s.status.error_message) for s in response.model_version_status]

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
