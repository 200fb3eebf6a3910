"""Hostile or careless clients over real loopback connections: stalled calls and uploads, tensors declared far
larger than they are sent, malformed HTTP, deep JSON, many concurrent REST clients. Nothing stalls the others,
nothing blows up, every refusal names its input. Every test is bounded in time and stops by itself."""

import json
import resource
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tiny_models import SIZE

from dirtypixels_tf.export.tflite import simulated_inputs
from dirtypixels_tf.serving.client import PredictionClient
from dirtypixels_tf.serving.server import LocalModelServer

pytestmark = pytest.mark.usefixtures("exact_graphs")
PREDICT = "/tensorflow.serving.PredictionService/Predict"


@pytest.fixture(scope="module")
def frames():
    return simulated_inputs((SIZE, SIZE), 2, profile="6lux", seed=5)


@pytest.fixture(scope="module")
def strict(exported):
    """A server with two workers, small limits and a 2 s read timeout."""
    with LocalModelServer(
        exported[0], "tiny", port=0, rest_port=0, max_workers=2, max_message_mb=4, max_batch=8, read_timeout=2.0
    ) as running:
        yield running


def _http(port, path, document=None, timeout=20):
    body = json.dumps(document).encode() if document is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _raw_http(port, data, timeout=20):
    """Send bytes as they are; return the status line and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer:
                head, _, rest = answer.partition(b"\r\n\r\n")
                length = [
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ]
                if length and len(rest) >= length[0]:
                    break
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("utf-8", "replace")


def _instances(frames):
    return {"inputs": {key: value.tolist() for key, value in frames.items()}}


def test_stalled_grpc_calls_and_rest_uploads_hold_no_worker(strict, frames):
    """8 gRPC calls that never send their message and 8 REST uploads that send headers and no body (4x the
    workers each): gRPC Predict, REST status and REST predict are all answered meanwhile, within 10 s each."""
    release = threading.Event()

    def never():
        release.wait(30)
        return
        yield  # a generator that sends nothing

    channel = grpc.insecure_channel(strict.address)
    stalled_calls = [
        channel.stream_unary(PREDICT, request_serializer=lambda r: r, response_deserializer=lambda r: r).future(
            never(), timeout=30
        )
        for _ in range(8)
    ]
    uploads = []
    for _ in range(8):
        sock = socket.create_connection(("127.0.0.1", strict.rest_port), timeout=30)
        sock.sendall(b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        uploads.append(sock)
    try:
        time.sleep(0.5)
        start = time.monotonic()
        with PredictionClient(strict.address, timeout=10) as client:
            for _ in range(3):
                assert (
                    client.predict(frames["raw"], frames["alpha"], frames["sigma"], model="tiny")["logits"].shape[0]
                    == 2
                )
        assert _http(strict.rest_port, "/v1/models/tiny", timeout=10)[0] == 200
        assert _http(strict.rest_port, "/v1/models/tiny:predict", _instances(frames), timeout=10)[0] == 200
        assert time.monotonic() - start < 20
        # the stalled uploads are answered 408 after the read timeout (2 s), naming it
        uploads[0].settimeout(10)
        answer = uploads[0].recv(4096).decode()
        assert answer.startswith("HTTP/1.1 408") and "did not arrive within 2 s" in answer
    finally:
        release.set()
        for call in stalled_calls:
            call.cancel()
        for sock in uploads:
            sock.close()
        channel.close()


def test_rest_connections_stuck_in_their_headers_are_closed_after_the_read_timeout(strict):
    """A slowloris client (headers that never end) and an idle keep-alive connection: closed after ~2 s."""
    start = time.monotonic()
    with (
        socket.create_connection(("127.0.0.1", strict.rest_port), timeout=20) as partial,
        socket.create_connection(("127.0.0.1", strict.rest_port), timeout=20) as idle,
    ):
        partial.sendall(b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert partial.recv(4096) == b""  # closed by the server, nothing answered
        assert idle.recv(4096) == b""
    assert 1.5 < time.monotonic() - start < 15


def _declared(shape, dtype=tf.float32.as_datatype_enum, **values):
    """A TensorProto built field by field: it may declare any shape and carry any values."""
    proto = tf.make_tensor_proto(np.zeros([0], np.float32))
    proto.ClearField("tensor_shape")
    proto.dtype = dtype
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    for field, value in values.items():
        getattr(proto, field).extend(value) if isinstance(value, list) else setattr(proto, field, value)
    return proto


def _request(frames, **protos):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    for name in ("raw", "alpha", "sigma"):
        request.inputs[name].CopyFrom(protos.get(name) or tf.make_tensor_proto(frames[name]))
    return request


def _max_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


HOSTILE_PROTOS = {
    # name: (protos, status code, text in the message)
    "a 128-byte proto declaring 2e6 frames (7.6 GiB)": (
        lambda f: {"raw": _declared([2_000_000, SIZE, SIZE, 1], float_val=[0.5])},
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'raw' has a batch of 2000000, more than this server's --max-batch of 8",
    ),
    "a batch within --max-batch declaring more than --max-message-mb": (
        lambda f: {
            "raw": _declared([8, SIZE * 64, SIZE * 64, 1], float_val=[0.5]),
        },
        grpc.StatusCode.INVALID_ARGUMENT,  # the shape check comes first: not the model's frame size
        "must have shape [B, 32, 32, 1] (the model's frame size)",
    ),
    "alpha declaring more than --max-message-mb": (
        lambda f: {"alpha": _declared([2_000_000_000], float_val=[0.01])},
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'alpha' has a batch of 2000000000",
    ),
    "tensor_content of the wrong length": (
        lambda f: {"raw": _declared([2, SIZE, SIZE, 1], tensor_content=b"\0" * 12)},
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed TensorProto: tensor_content holds 12 bytes; shape [2, 32, 32, 1] of float32 needs 8192",
    ),
    "more values than the shape holds": (
        lambda f: {"alpha": _declared([2], float_val=[0.1, 0.1, 0.1])},
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed TensorProto: 3 values for shape [2]",
    ),
    "a negative dimension": (
        lambda f: {"raw": _declared([-2, SIZE, SIZE, 1], float_val=[0.5])},
        grpc.StatusCode.INVALID_ARGUMENT,
        "negative dimension",
    ),
    "an unknown dtype": (
        lambda f: {"alpha": _declared([2], dtype=999, float_val=[0.1, 0.1])},
        grpc.StatusCode.INVALID_ARGUMENT,
        "must have dtype float32; received unknown dtype 999",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_PROTOS))
def test_hostile_tensor_protos_are_refused_from_their_declared_shape(strict, frames, case):
    make, code, text = HOSTILE_PROTOS[case]
    protos = make(frames)
    before = _max_rss_mb()
    with PredictionClient(strict.address, timeout=20) as client:
        with pytest.raises(grpc.RpcError) as error:
            client.prediction.Predict(_request(frames, **protos), timeout=20)
        assert error.value.code() == code, error.value.details()
        assert text in error.value.details()
        assert _max_rss_mb() - before < 200  # nothing was expanded (the 7.6 GiB case added 3.9 GB before)
        assert client.predict(frames["raw"], frames["alpha"], frames["sigma"], model="tiny")["logits"].shape[0] == 2


def test_a_declared_tensor_over_max_message_mb_is_resource_exhausted(exported, frames):
    with LocalModelServer(exported[0], "tiny", port=0, max_message_mb=1, max_batch=1000) as small:
        with PredictionClient(small.address, timeout=20) as client:
            request = _request(frames, raw=_declared([300, SIZE, SIZE, 1], float_val=[0.5]))
            with pytest.raises(grpc.RpcError) as error:
                client.prediction.Predict(request, timeout=20)
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (
                "input 'raw' declares shape [300, 32, 32, 1] (1.2 MiB of float32), more than this server's "
                "--max-message-mb of 1 MiB" in error.value.details()
            )


def test_classify_over_max_batch_is_refused(strict, frames):
    from dirtypixels_tf.export import make_example

    examples = [make_example(frames["raw"][0], frames["alpha"][0], frames["sigma"][0])] * 9
    with PredictionClient(strict.address, timeout=20) as client:
        with pytest.raises(grpc.RpcError) as error:
            client.classify(examples, model="tiny")
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "has a batch of 9, more than this server's --max-batch of 8" in error.value.details()
        assert len(client.classify(examples[:8], model="tiny")) == 8  # a batch of exactly --max-batch is served


MALFORMED_HTTP = {
    # name: (bytes sent, HTTP status, text in the answer)
    "Content-Length: -1": (
        b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}",
        400,
        "",
    ),
    "Content-Length: abc": (
        b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        400,
        "",
    ),
    "a declared body over the largest request of --max-batch examples": (
        b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1610612736\r\n\r\n",
        413,
        "request body of 1610612736 bytes is larger than the maximum of 302880 bytes (the largest request of "
        "--max-batch examples)",
    ),
    "a chunked body over the largest request of --max-batch examples": (
        b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"100000\r\n" + b" " * 0x100000 + b"\r\n") * 5
        + b"0\r\n\r\n",
        413,
        "larger than the maximum of 302880 bytes",
    ),
    "JSON nested 10000 deep": (None, 400, "nested too deeply"),
    "a body of more JSON values than --max-batch examples hold": (
        b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 200002\r\n\r\n["
        + b"0," * 100_000
        + b"]",
        400,
        "the request body holds 100001 JSON values and lists; a request of --max-batch 8 examples holds at most",
    ),
    "a 20-digit version": (
        b"GET /v1/models/tiny/versions/12345678901234567890 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        400,
        "version must be an integer below 2**63; received 12345678901234567890",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_HTTP))
def test_malformed_http_is_answered_with_its_status(strict, case):
    data, status, text = MALFORMED_HTTP[case]
    if data is None:
        body = b"[" * 10_000 + b"]" * 10_000
        data = (
            b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
    code, answer = _raw_http(strict.rest_port, data)
    assert code == status, answer
    assert text in answer
    assert _http(strict.rest_port, "/v1/models/tiny")[0] == 200


def test_a_chunked_body_is_read(strict, frames, client):
    body = json.dumps(_instances(frames)).encode()
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 5000]), body[i : i + 5000]) for i in range(0, len(body), 5000)
    )
    head = (
        b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    code, answer = _raw_http(strict.rest_port, head + chunks + b"0\r\n\r\n")
    assert code == 200, answer
    expected = client.predict(frames["raw"], frames["alpha"], frames["sigma"], model="tiny")
    np.testing.assert_allclose(json.loads(answer)["outputs"]["logits"], expected["logits"], atol=1e-5)


def test_thirty_two_concurrent_rest_clients_get_no_resets(strict, frames):
    """32 clients x 20 requests (status and predict alternating), each on a new connection: 0 errors."""
    one = {key: value[:1] for key, value in frames.items()}

    def work(thread):
        for index in range(20):
            if (thread + index) % 2:
                status, answer = _http(strict.rest_port, "/v1/models/tiny", timeout=60)
            else:
                status, answer = _http(strict.rest_port, "/v1/models/tiny:predict", _instances(one), timeout=60)
            assert status == 200, answer
        return 20

    with futures.ThreadPoolExecutor(32) as pool:
        assert sum(pool.map(work, range(32), timeout=120)) == 640


def test_unimplemented_methods_answer_unimplemented(strict):
    from tensorflow_serving.apis import regression_pb2

    with PredictionClient(strict.address, timeout=20) as client:
        with pytest.raises(grpc.RpcError) as error:
            client.prediction.Regress(regression_pb2.RegressionRequest(), timeout=20)
        assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_garbage_on_both_ports_leaves_the_server_serving(strict, frames):
    for port in (strict.port, strict.rest_port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(bytes(range(256)) * 64)
            try:
                sock.recv(4096)
            except OSError:
                pass
    assert _http(strict.rest_port, "/v1/models/tiny")[0] == 200
    with PredictionClient(strict.address, timeout=10) as client:
        assert client.predict(frames["raw"], frames["alpha"], frames["sigma"], model="tiny")["logits"].shape[0] == 2
