"""The REST endpoint: TF Serving's :predict row and columnar formats, status and metadata, errors as HTTP codes."""

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from tiny_models import CLASS_NAMES, SIZE

from dirtypixels_tf.export.tflite import simulated_inputs
from dirtypixels_tf.serving.server import LocalModelServer

pytestmark = pytest.mark.usefixtures("exact_graphs")


def _call(port, path, document=None, data=None):
    body = data if data is not None else (json.dumps(document).encode() if document is not None else None)
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def frames():
    return simulated_inputs((SIZE, SIZE), 3, profile="6lux", seed=5)


def test_row_and_columnar_predict_equal_grpc(server, client, frames):
    expected = client.predict(frames["raw"], frames["alpha"], frames["sigma"], model="tiny")
    instances = [
        {"raw": frames["raw"][i].tolist(), "alpha": float(frames["alpha"][i]), "sigma": float(frames["sigma"][i])}
        for i in range(3)
    ]
    status, rows = _call(server.rest_port, "/v1/models/tiny:predict", {"instances": instances})
    assert status == 200 and len(rows["predictions"]) == 3
    for index, row in enumerate(rows["predictions"]):
        np.testing.assert_allclose(row["logits"], expected["logits"][index], atol=1e-5)
        assert row["top_k_labels"] == [v.decode() for v in expected["top_k_labels"][index]]
    columns = {"inputs": {key: value.tolist() for key, value in frames.items()}, "signature_name": "serving_default"}
    status, answer = _call(server.rest_port, "/v1/models/tiny/versions/1:predict", columns)
    assert status == 200
    np.testing.assert_allclose(answer["outputs"]["probabilities"], expected["probabilities"], atol=1e-5)
    np.testing.assert_array_equal(answer["outputs"]["top_k_classes"], expected["top_k_classes"])


@pytest.mark.parametrize("batch", [1, 3])
def test_row_predict_of_a_single_output_signature_answers_each_row_with_its_own_result(server, client, frames, batch):
    """The "isp" signature has one output ("image"): row format answers a list of bare values, one per instance."""
    expected = client.predict(frames["raw"][:batch], frames["alpha"][:batch], frames["sigma"][:batch], "tiny", "isp")
    assert set(expected) == {"image"}
    instances = [
        {"raw": frames["raw"][i].tolist(), "alpha": float(frames["alpha"][i]), "sigma": float(frames["sigma"][i])}
        for i in range(batch)
    ]
    status, rows = _call(server.rest_port, "/v1/models/tiny:predict", {"signature_name": "isp", "instances": instances})
    assert status == 200 and len(rows["predictions"]) == batch
    for index, row in enumerate(rows["predictions"]):
        np.testing.assert_allclose(row, expected["image"][index], atol=1e-5)
    if batch > 1:  # the frames differ, so a row answered with another row's result would be caught
        assert np.abs(expected["image"][0] - expected["image"][1]).max() > 1e-3


def test_uint16_signature_over_rest_checks_integers(server, client):
    raw = np.random.default_rng(1).integers(64, 1023, (1, SIZE, SIZE, 1))
    inputs = {"raw": raw.tolist(), "black_level": [64.0], "white_level": [1023.0], "iso": [800.0]}
    status, answer = _call(
        server.rest_port, "/v1/models/tiny:predict", {"signature_name": "raw_uint16", "inputs": inputs}
    )
    assert status == 200
    expected = client.predict_uint16(raw, 64, 1023, 800, model="tiny")
    np.testing.assert_allclose(answer["outputs"]["logits"], expected["logits"], atol=1e-5)
    inputs["raw"] = (raw + 0.5).tolist()
    status, answer = _call(
        server.rest_port, "/v1/models/tiny:predict", {"signature_name": "raw_uint16", "inputs": inputs}
    )
    assert status == 400 and "must hold integers (uint16)" in answer["error"]


def test_status_and_metadata(server):
    status, answer = _call(server.rest_port, "/v1/models/tiny")
    assert status == 200
    assert answer["model_version_status"] == [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
    status, answer = _call(server.rest_port, "/v1/models/tiny/metadata")
    assert status == 200 and answer["model_spec"]["version"] == "1"
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    assert signatures["classify"]["method_name"] == "tensorflow/serving/classify"
    assert [d["size"] for d in signatures["serving_default"]["inputs"]["raw"]["tensor_shape"]["dim"]] == [
        "-1",
        "32",
        "32",
        "1",
    ]


@pytest.mark.parametrize(
    "path, document, code, text",
    [
        ("/v1/models/tiny:predict", {"inputs": {"raw": [[[[0.5]]]]}}, 400, "missing ['alpha', 'sigma']"),
        ("/v1/models/tiny:predict", {"instances": [{"raw": 1}]}, 400, "instance 0 must be an object with keys"),
        ("/v1/models/tiny:predict", {"instances": []}, 400, "'instances' must be a non-empty list"),
        ("/v1/models/tiny:predict", {"inputs": {}, "instances": []}, 400, "exactly one of 'instances' and 'inputs'"),
        ("/v1/models/tiny:predict", {"inputs": {"raw": "x", "alpha": [1], "sigma": [1]}}, 400, "must hold numbers"),
        ("/v1/models/tiny:predict", {"signature_name": 3, "inputs": {}}, 400, "'signature_name' key must be a string"),
        ("/v1/models/resnet:predict", {"inputs": {}}, 404, "Servable not found for request: Latest(resnet)"),
        ("/v1/models/tiny/versions/5:predict", {"inputs": {}}, 404, "Specific(tiny, 5)"),
        ("/v1/models/tiny/labels/canary:predict", {"inputs": {}}, 400, "Unrecognized servable version label: canary"),
        ("/v1/models/tiny:explain", {"inputs": {}}, 404, "Malformed request: POST /v1/models/tiny:explain"),
    ],
)
def test_errors_are_json_with_http_codes(server, path, document, code, text):
    status, answer = _call(server.rest_port, path, document)
    assert status == code and text in answer["error"]


def test_bad_json_and_nan_values(server, frames):
    status, answer = _call(server.rest_port, "/v1/models/tiny:predict", data=b"{not json")
    assert status == 400 and "not JSON" in answer["error"]
    raw = frames["raw"][:1].copy()
    raw[0, 0, 0, 0] = np.nan
    body = json.dumps({"inputs": {"raw": raw.tolist(), "alpha": [0.1], "sigma": [0.1]}}).encode()  # NaN token
    status, answer = _call(server.rest_port, "/v1/models/tiny:predict", data=body)
    assert status == 400 and "raw must be finite" in answer["error"]
    status, _ = _call(
        server.rest_port, "/v1/models/tiny:predict", {"inputs": {k: v.tolist() for k, v in frames.items()}}
    )
    assert status == 200  # still serving


def test_an_over_size_body_is_refused_with_413(exported, frames):
    with LocalModelServer(exported[0], "tiny", port=0, rest_port=0, max_message_mb=0.05) as small:
        big = {key: np.repeat(value, 8, axis=0).tolist() for key, value in frames.items()}
        status, answer = _call(small.rest_port, "/v1/models/tiny:predict", {"inputs": big})
        assert status == 413 and "larger than the maximum" in answer["error"]
        status, answer = _call(
            small.rest_port, "/v1/models/tiny:predict", {"inputs": {k: v[:1].tolist() for k, v in frames.items()}}
        )
        assert status == 200 and len(answer["outputs"]["top_k_labels"][0]) == 5
        assert set(answer["outputs"]["top_k_labels"][0]) <= set(CLASS_NAMES)
        # the limit itself: a body of exactly --max-message-mb is served, one byte more is refused
        limit = int(0.05 * 1024 * 1024)
        body = json.dumps({"inputs": {k: v[:1].tolist() for k, v in frames.items()}}).encode()
        status, answer = _call(small.rest_port, "/v1/models/tiny:predict", data=body.ljust(limit))
        assert status == 200 and len(answer["outputs"]["logits"]) == 1
        status, answer = _call(small.rest_port, "/v1/models/tiny:predict", data=body.ljust(limit + 1))
        assert status == 413 and f"{limit + 1} bytes is larger than the maximum of {limit} bytes" in answer["error"]
