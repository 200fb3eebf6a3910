"""The local server over real gRPC on 127.0.0.1: round trips, metadata, error semantics, new versions, load."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2
from tiny_models import CLASS_NAMES, SIZE
from tolerances import model_bound

from dirtypixels_tf.export import export_savedmodel, make_example
from dirtypixels_tf.export.tflite import simulated_inputs
from dirtypixels_tf.serving.client import PredictionClient
from dirtypixels_tf.serving.server import LocalModelServer

pytestmark = pytest.mark.usefixtures(
    "exact_graphs"
)  # see tests/tiny_models.py (exact_graphs): outputs compared to the bit
INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
def frames():
    return simulated_inputs((SIZE, SIZE), 6, profile="2to20lux", seed=3)


def test_predict_round_trip_equals_in_process(client, tiny_model, frames):
    outputs, spec = client.request(frames, model="tiny")
    assert (spec.name, spec.version.value, spec.signature_name) == ("tiny", 1, "serving_default")
    expected = tiny_model(frames)["logits"].numpy()
    np.testing.assert_allclose(outputs["logits"], expected, atol=1e-5)
    np.testing.assert_allclose(outputs["probabilities"], tf.nn.softmax(expected).numpy(), atol=1e-5)
    top = np.argsort(-expected, axis=1)[:, :5]
    np.testing.assert_array_equal(outputs["top_k_classes"], top)
    assert [label.decode() for label in outputs["top_k_labels"][0]] == [CLASS_NAMES[k] for k in top[0]]


def test_every_signature_round_trips(client, exported, frames):
    local = tf.saved_model.load(exported[1]).signatures
    isp = client.predict(frames["raw"], frames["alpha"], frames["sigma"], model="tiny", signature="isp")
    np.testing.assert_allclose(isp["image"], local["isp"](**frames)["image"], atol=1e-5)
    rng = np.random.default_rng(0)
    raw = rng.integers(64, 1023, (2, SIZE, SIZE, 1)).astype(np.uint16)
    levels = {
        "black_level": np.float32([64, 60]),
        "white_level": np.float32([1023, 1000]),
        "iso": np.float32([800, 400]),
    }
    remote = client.predict_uint16(raw, levels["black_level"], levels["white_level"], levels["iso"], model="tiny")
    np.testing.assert_allclose(remote["logits"], local["raw_uint16"](raw=raw, **levels)["logits"], atol=1e-5)
    examples = [make_example(frames["raw"][i], frames["alpha"][i], frames["sigma"][i]) for i in range(3)]
    classified = client.classify(examples, model="tiny")
    probabilities = local["serving_default"](**frames)["probabilities"].numpy()
    for index, classes in enumerate(classified):
        assert [label for label, _ in classes] == CLASS_NAMES
        np.testing.assert_allclose([score for _, score in classes], probabilities[index], atol=1e-5)


def test_classify_with_a_shared_context_lets_each_example_override_it(client, exported, frames):
    """example_list_with_context: each example is read as context + example (TF Serving's rule), so the context's
    alpha and sigma reach every example, and an example's own sigma wins over the context's."""
    from tensorflow_serving.apis import classification_pb2

    alpha, sigma, own_sigma = 0.05, 0.02, 0.4
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = "tiny", "classify"
    listed = request.input.example_list_with_context
    listed.context.ParseFromString(make_example(frames["raw"][0], alpha, sigma))
    del listed.context.features.feature["raw"]
    for index in range(3):
        example = listed.examples.add()
        example.ParseFromString(make_example(frames["raw"][index], alpha, own_sigma))
        del example.features.feature["alpha"]
        if index < 2:
            del example.features.feature["sigma"]
    response = client.prediction.Classify(request, timeout=60)
    local = tf.saved_model.load(exported[1]).signatures["serving_default"]
    sigmas = np.float32([sigma, sigma, own_sigma])
    expected = local(raw=frames["raw"][:3], alpha=np.float32([alpha] * 3), sigma=sigmas)["probabilities"].numpy()
    assert len(response.result.classifications) == 3
    for index, result in enumerate(response.result.classifications):
        assert [c.label for c in result.classes] == CLASS_NAMES
        np.testing.assert_allclose([c.score for c in result.classes], expected[index], atol=1e-5)
    with_context_sigma = local(raw=frames["raw"][2:3], alpha=np.float32([alpha]), sigma=np.float32([sigma]))
    assert np.abs(with_context_sigma["probabilities"].numpy()[0] - expected[2]).max() > 1e-3  # the override matters


def test_output_filter_returns_only_the_outputs_asked_for(client, frames):
    outputs, _ = client.request(frames, model="tiny", output_filter=["top_k_classes", "top_k_scores"])
    assert sorted(outputs) == ["top_k_classes", "top_k_scores"]


def test_metadata_and_status(client):
    signatures, version = client.metadata("tiny")
    assert version == 1
    assert {"serving_default", "raw_uint16", "classify", "isp"} <= set(signatures)
    assert signatures["classify"].method_name == "tensorflow/serving/classify"
    assert signatures["serving_default"].method_name == "tensorflow/serving/predict"
    assert signatures["raw_uint16"].inputs["raw"].dtype == tf.uint16.as_datatype_enum
    assert sorted(signatures["raw_uint16"].inputs) == ["black_level", "iso", "raw", "white_level"]
    assert client.image_size("tiny") == (SIZE, SIZE)
    assert client.status("tiny") == [(1, "AVAILABLE", "")]


def _predict(client, model="tiny", signature="serving_default", version=None, label=None, **inputs):
    return client.request(inputs, model, signature, version, label)


def _frames(frames, **changes):
    inputs = {key: frames[key] for key in ("raw", "alpha", "sigma")}
    inputs.update(changes)
    return {key: value for key, value in inputs.items() if value is not None}


def _metadata(client, field):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=[field])
    request.model_spec.name = "tiny"
    return client.prediction.GetModelMetadata(request)


def _status(client, name, version=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    return client.models.GetModelStatus(request)


def _no_model_spec(client):
    return client.prediction.Predict(predict_pb2.PredictRequest())


nan_raw = simulated_inputs((SIZE, SIZE), 6, profile="2to20lux", seed=3)["raw"].copy()
nan_raw[2, 5, 7, 0] = np.nan
BAD_REQUESTS = {
    # name: (call(client, frames), status code, text in the message)
    "wrong dtype": (
        lambda c, f: _predict(c, **_frames(f, raw=f["raw"].astype(np.float64))),
        INVALID,
        "must have dtype float32; received float64",
    ),
    "uint16 to the float signature": (
        lambda c, f: _predict(c, **_frames(f, raw=(f["raw"] * 1000).astype(np.uint16))),
        INVALID,
        "signature 'raw_uint16' takes raw as uint16",
    ),
    "wrong rank": (
        lambda c, f: _predict(c, **_frames(f, raw=f["raw"][..., 0])),
        INVALID,
        "must have rank 4, shape [B, 32, 32, 1]; received shape [6, 32, 32]",
    ),
    "odd height": (
        lambda c, f: _predict(c, **_frames(f, raw=f["raw"][:, :31])),
        INVALID,
        "even height and width (whole 2x2 Bayer blocks); received 31x32",
    ),
    "odd width": (lambda c, f: _predict(c, **_frames(f, raw=f["raw"][:, :, :29])), INVALID, "received 32x29"),
    "wrong size": (
        lambda c, f: _predict(c, **_frames(f, raw=f["raw"][:, :16, :16])),
        INVALID,
        "must have shape [B, 32, 32, 1] (the model's frame size)",
    ),
    "NaN values": (
        lambda c, f: _predict(c, **_frames(f, raw=nan_raw)),
        INVALID,
        "raw must be finite; received NaN or infinity",
    ),
    "raw outside [0, 1]": (
        lambda c, f: _predict(c, **_frames(f, raw=f["raw"] * 255)),
        INVALID,
        "raw must be in [0, 1]",
    ),
    "negative sigma": (
        lambda c, f: _predict(c, **_frames(f, sigma=-f["sigma"])),
        INVALID,
        "sigma must be finite, >= 0 and <= 1000",
    ),
    "zero alpha": (
        lambda c, f: _predict(c, **_frames(f, alpha=np.zeros_like(f["alpha"]))),
        INVALID,
        "alpha must be finite, > 0 and <= 1000 (the Poisson scale in [0, 1] units); received 0 0 0",
    ),
    "sigma far above full scale (NaN logits before)": (
        lambda c, f: _predict(c, **_frames(f, sigma=np.full_like(f["sigma"], 1e30))),
        INVALID,
        "sigma must be finite, >= 0 and <= 1000 (the Gaussian std in [0, 1] units); received 1e+30",
    ),
    "missing alpha": (lambda c, f: _predict(c, **_frames(f, alpha=None)), INVALID, "missing ['alpha']"),
    "extra input": (lambda c, f: _predict(c, **_frames(f, iso=f["alpha"])), INVALID, "sent extra ['iso']"),
    "unequal batches": (lambda c, f: _predict(c, **_frames(f, alpha=f["alpha"][:2])), INVALID, "same batch size"),
    "empty batch": (
        lambda c, f: _predict(c, **{k: v[:0] for k, v in _frames(f).items()}),
        INVALID,
        "batch size must be at least 1",
    ),
    "unknown model": (
        lambda c, f: _predict(c, model="resnet", **_frames(f)),
        NOT_FOUND,
        "Servable not found for request: Latest(resnet)",
    ),
    "unknown version": (
        lambda c, f: _predict(c, version=9, **_frames(f)),
        NOT_FOUND,
        "Servable not found for request: Specific(tiny, 9)",
    ),
    "unknown version label": (
        lambda c, f: _predict(c, label="canary", **_frames(f)),
        INVALID,
        "Unrecognized servable version label: canary",
    ),
    "unknown signature": (
        lambda c, f: _predict(c, signature="resnet_v2", **_frames(f)),
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "resnet_v2" not found.',
    ),
    "missing model spec": (lambda c, f: _no_model_spec(c), INVALID, "Missing ModelSpec"),
    "classify with a predict signature": (
        lambda c, f: c.classify([], model="tiny", signature="serving_default"),
        INVALID,
        "Expected classification signature method_name to be tensorflow/serving/classify",
    ),
    "classify with no examples": (
        lambda c, f: c.classify([], model="tiny"),
        INVALID,
        "ClassificationRequest::input is empty.",
    ),
    "classify an example without alpha": (
        lambda c, f: c.classify([tf.train.Example()], model="tiny"),
        INVALID,
        "Feature: alpha (data type: float) is required",
    ),
    "classify with an unknown signature": (
        lambda c, f: c.classify([tf.train.Example()], model="tiny", signature="nope"),
        INVALID,
        "No signature was found with the name: nope",
    ),
    "unsupported metadata field": (
        lambda c, f: _metadata(c, "graph"),
        INVALID,
        "Metadata field graph is not supported",
    ),
    "status of an unknown model": (
        lambda c, f: _status(c, "resnet"),
        NOT_FOUND,
        "Could not find any versions of model resnet",
    ),
    "status of an unknown version": (
        lambda c, f: _status(c, "tiny", 4),
        NOT_FOUND,
        "Could not find version 4 of model tiny",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_is_refused_and_the_server_keeps_serving(client, frames, case):
    call, code, text = BAD_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as error:
        call(client, frames)
    assert error.value.code() == code, error.value.details()
    assert text in error.value.details()
    outputs, _ = client.request(_frames(frames), model="tiny")  # the next good request is answered
    assert outputs["logits"].shape == (6, len(CLASS_NAMES))


def test_an_over_size_message_is_refused_by_grpc(exported, frames):
    """gRPC itself refuses a message over the server's maximum with RESOURCE_EXHAUSTED; the server keeps serving."""
    with LocalModelServer(exported[0], "tiny", port=0, max_message_mb=0.25) as small:
        with PredictionClient(small.address) as client:
            big = {key: np.repeat(value, 14, axis=0) for key, value in _frames(frames).items()}  # 84 frames, 344 KB
            with pytest.raises(grpc.RpcError) as error:
                client.request(big, model="tiny")
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "larger than max" in error.value.details()
            assert client.request(_frames(frames), model="tiny")[0]["logits"].shape == (6, len(CLASS_NAMES))


def _wait_for(condition, seconds=60.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_new_versions_are_picked_up_after_the_poll_interval(tiny_model, exported, frames, tmp_path):
    base = tmp_path / "tiny"
    shutil.copytree(exported[1], base / "1")
    other = keras.models.clone_model(tiny_model)
    other.set_weights(tiny_model.get_weights())
    predictions = other.get_layer("mobilenet_v1").get_layer("conv_preds")
    predictions.bias.assign(predictions.bias.numpy() + np.eye(len(CLASS_NAMES))[7] * 50.0)  # class 7 wins
    server = LocalModelServer(base, "tiny", port=0, poll_seconds=0.3, num_versions=2, version_labels={"stable": 1})
    with server, PredictionClient(server.address) as client:
        assert client.request(_frames(frames), model="tiny")[1].version.value == 1
        export_savedmodel(
            other, base, class_names=CLASS_NAMES, fold_batch_norm=None
        )  # version 2, renamed into place when complete
        _wait_for(lambda: (2, "AVAILABLE", "") in client.status("tiny"))
        outputs, spec = client.request(_frames(frames), model="tiny")
        assert spec.version.value == 2 and (outputs["top_k_classes"][:, 0] == 7).all()
        np.testing.assert_allclose(outputs["logits"], other(frames)["logits"], atol=1e-5)
        stable, spec = client.request(_frames(frames), model="tiny", version_label="stable")
        assert spec.version.value == 1
        np.testing.assert_allclose(stable["logits"], tiny_model(frames)["logits"], atol=1e-5)
        shutil.copytree(base / "2", base / ".copying")  # a third version, published by a rename
        os.rename(base / ".copying", base / "3")
        _wait_for(lambda: (3, "AVAILABLE", "") in client.status("tiny"))
        assert client.status("tiny") == [(1, "END", ""), (2, "AVAILABLE", ""), (3, "AVAILABLE", "")]
        with pytest.raises(grpc.RpcError) as error:
            client.request(_frames(frames), model="tiny", version=1)
        assert error.value.code() == NOT_FOUND
        shutil.rmtree(base / "3")  # a rollback: version 1 is among the latest two again
        _wait_for(lambda: client.status("tiny") == [(1, "AVAILABLE", ""), (2, "AVAILABLE", ""), (3, "END", "")])
        assert client.request(_frames(frames), model="tiny", version=1)[1].version.value == 1


def _load(client, frames, expected, bound, clients, requests, seconds):
    """`clients` threads each send `requests` batch-1 requests for frames chosen by (thread, request); every answer
    must be the in-process answer of its own frame, up to round-off (the in-process batch sums in another order)."""
    count = len(frames["raw"])

    def work(thread):
        for index in range(requests):
            frame = (thread * 7 + index * 3) % count
            one = {key: value[frame : frame + 1] for key, value in frames.items()}
            outputs = client.predict(one["raw"], one["alpha"], one["sigma"], model="tiny")
            np.testing.assert_allclose(outputs["logits"][0], expected[frame], atol=bound)
            assert outputs["top_k_classes"][0, 0] == np.argmax(expected[frame])
        return requests

    start = time.monotonic()
    with futures.ThreadPoolExecutor(clients) as pool:
        jobs = [pool.submit(work, thread) for thread in range(clients)]
        done, pending = futures.wait(jobs, timeout=seconds)
        assert not pending, f"{len(pending)} clients did not finish within {seconds} s"
        answered = sum(job.result() for job in done)  # re-raises any failed comparison
    assert answered == clients * requests
    return time.monotonic() - start


@pytest.fixture(scope="module")
def distinct_frames(tiny_model):
    frames = simulated_inputs((SIZE, SIZE), 16, profile="2to20lux", seed=11)
    expected = tiny_model(frames)["logits"].numpy()
    assert len(set(np.argmax(expected, 1).tolist())) >= 4, "the frames should have several distinct top classes"
    bound = model_bound(tiny_model, expected)  # float32 round-off, far below the gap between two frames' logits
    gaps = [np.abs(a - b).max() for i, a in enumerate(expected) for b in expected[:i]]
    assert min(gaps) > 20 * bound, f"frames {min(gaps)} apart, round-off bound {bound}"
    return frames, expected, bound


def test_eight_concurrent_clients_of_two_hundred_requests_get_their_own_answers(client, distinct_frames):
    """8 x 200 batch-1 requests within 120 s, none lost or mixed up (measured: about 3 s on 2 cores)."""
    frames, expected, bound = distinct_frames
    seconds = _load(client, frames, expected, bound, clients=8, requests=200, seconds=120)
    print(f"8 x 200 requests in {seconds:.1f} s ({1600 / seconds:.0f} requests/s)")


def test_stop_refuses_new_requests_and_stops_polling(exported, frames):
    server = LocalModelServer(exported[0], "tiny", port=0, poll_seconds=0.2).start()
    with PredictionClient(server.address, timeout=5) as client:
        assert client.request(_frames(frames), model="tiny")[0]["logits"].shape == (6, len(CLASS_NAMES))
        server.stop(grace=1.0)
        with pytest.raises(grpc.RpcError) as error:
            client.request(_frames(frames), model="tiny")
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not server.repository._thread.is_alive()


def test_serve_command_serves_until_sigterm(exported, tiny_model, frames):
    """`dirtypixels serve` in a subprocess (default graph optimizations): round trip, then a graceful stop."""
    command = [sys.executable, "-m", "dirtypixels_tf.cli", "serve", str(exported[0]), "--model-name", "tiny"]
    process = subprocess.Popen(command + ["--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert "serving model 'tiny' (versions [1])" in line, process.stderr.read() if not line else line
        address = line.split("gRPC ")[1].split(";")[0].split(",")[0]
        assert address.startswith("127.0.0.1:")
        with PredictionClient(address) as client:
            outputs = client.predict(frames["raw"], frames["alpha"], frames["sigma"], model="tiny")
        expected = tiny_model(frames)["logits"].numpy()
        # Grappler on in the subprocess: other fusions, so other summation orders
        np.testing.assert_allclose(outputs["logits"], expected, atol=model_bound(tiny_model, expected))
        np.testing.assert_array_equal(outputs["top_k_classes"][:, 0], np.argmax(expected, 1))
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and "stopping" in stdout


def test_thirty_two_concurrent_clients_of_fifty_requests_get_their_own_answers(client, distinct_frames):
    frames, expected, bound = distinct_frames
    seconds = _load(client, frames, expected, bound, clients=32, requests=50, seconds=180)
    print(f"32 x 50 requests in {seconds:.1f} s ({1600 / seconds:.0f} requests/s)")


@pytest.mark.slow
def test_a_hot_version_swap_under_load_fails_no_request(tiny_model, exported, frames, tmp_path):
    """8 clients send requests without pause while version 2 is exported into the base path and swapped in
    (num_versions 1: version 1 is unloaded). Every request is answered, by version 1 or 2, with that version's
    logits; the last ones come from version 2."""
    base = tmp_path / "tiny"
    shutil.copytree(exported[1], base / "1")
    other = keras.models.clone_model(tiny_model)
    other.set_weights(tiny_model.get_weights())
    predictions = other.get_layer("mobilenet_v1").get_layer("conv_preds")
    predictions.bias.assign(predictions.bias.numpy() + np.eye(len(CLASS_NAMES))[7] * 50.0)
    one = _frames({key: value[:1] for key, value in frames.items()})
    answers = {1: tiny_model(one)["logits"].numpy()[0], 2: other(one)["logits"].numpy()[0]}
    stop, failures, versions = threading.Event(), [], []
    server = LocalModelServer(base, "tiny", port=0, poll_seconds=0.2)
    with server, PredictionClient(server.address, timeout=30) as client:

        def work():
            while not stop.is_set():
                try:
                    outputs, spec = client.request(one, model="tiny")
                    np.testing.assert_allclose(outputs["logits"][0], answers[spec.version.value], atol=1e-4)
                    versions.append(spec.version.value)
                except Exception as error:  # noqa: BLE001 (collected and reported)
                    failures.append(repr(error)[:300])

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(0.5)
            export_savedmodel(other, base, class_names=CLASS_NAMES, fold_batch_norm=None)
            _wait_for(lambda: client.status("tiny") == [(1, "END", ""), (2, "AVAILABLE", "")])
            count = len(versions)
            _wait_for(lambda: len(versions) > count + 20)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
    assert failures == []
    assert versions[0] == 1 and versions[-1] == 2 and versions.count(1) > 8 and versions.count(2) > 8
