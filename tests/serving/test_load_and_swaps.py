"""Serving under concurrent load: version swaps while every client has its own gRPC channel (and REST clients
open their own connections), and REST predict under load with every answer checked against its own frame."""

import json
import shutil
import threading
import time
import urllib.request
from concurrent import futures

import numpy as np
import pytest
from tiny_models import CLASS_NAMES, SIZE, tiny_variant
from tolerances import model_bound

from dirtypixels_tf.export import export_savedmodel
from dirtypixels_tf.export.tflite import simulated_inputs
from dirtypixels_tf.serving.client import PredictionClient
from dirtypixels_tf.serving.server import LocalModelServer

pytestmark = pytest.mark.usefixtures("exact_graphs")  # see tests/tiny_models.py: outputs compared closely


@pytest.fixture(scope="module")
def frames(tiny_model):
    frames = simulated_inputs((SIZE, SIZE), 8, profile="2to20lux", seed=11)
    expected = tiny_model(frames)["logits"].numpy()
    assert len(set(np.argmax(expected, 1).tolist())) >= 3, "the frames should have several distinct top classes"
    return frames, expected


@pytest.fixture(scope="module")
def tolerance(tiny_model, frames):
    """The model server's graph sums in other orders than the in-process model: a float32 round-off bound, which
    must sit far below the distance between two frames' logits (what a mixed-up answer would show)."""
    _, expected = frames
    bound = model_bound(tiny_model, expected)
    gaps = [np.abs(a - b).max() for i, a in enumerate(expected) for b in expected[:i]]
    assert min(gaps) > 20 * bound, f"frames {min(gaps)} apart, round-off bound {bound}"
    return bound


def _rest_predict(port, one):
    instance = {"raw": one["raw"][0].tolist(), "alpha": float(one["alpha"][0]), "sigma": float(one["sigma"][0])}
    body = json.dumps({"instances": [instance]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/tiny:predict", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
        return np.asarray(json.loads(response.read())["predictions"][0]["logits"])


def _live(client):
    """The versions the server reports as AVAILABLE."""
    return {version for version, state, _ in client.status("tiny") if state == "AVAILABLE"}


def _wait_for(condition, seconds=120.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow  # about 1 to 4 minutes on 2 busy cores (two exports under load)
def test_version_swaps_under_load_with_a_channel_per_client(tiny_model, exported, frames, tolerance, tmp_path):
    """6 gRPC clients, each on its own channel, and 3 REST clients send requests without pause while versions 2
    and 3 are exported and swapped in (num_versions 1: the previous version is unloaded). Every answer must be the
    logits of the version it names (REST: of the version whose logits it equals) and that version must be live:
    exported before the answer arrived, and not unloaded (status END) before the request was sent."""
    frames, _ = frames
    count = len(frames["raw"])
    base = tmp_path / "tiny"
    shutil.copytree(exported[1], base / "1")
    models = {1: tiny_model, 2: tiny_variant(tiny_model, 7), 3: tiny_variant(tiny_model, 3)}
    answers = {version: model(frames)["logits"].numpy() for version, model in models.items()}
    stop, lock, failures = threading.Event(), threading.Lock(), []
    served = []  # (transport, version, sent, answered)
    exported_at, ended_at = {1: 0.0}, {}  # monotonic times: version written; version seen as END

    server = LocalModelServer(base, "tiny", port=0, rest_port=0, poll_seconds=0.2, num_versions=1)

    def grpc_client(thread):
        with PredictionClient(server.address, timeout=60) as client:  # a channel of its own
            index = 0
            while not stop.is_set():
                frame = (thread * 5 + index) % count
                index += 1
                one = {key: value[frame : frame + 1] for key, value in frames.items()}
                sent = time.monotonic()
                try:
                    outputs, spec = client.request(one, model="tiny")
                    version = spec.version.value
                    np.testing.assert_allclose(outputs["logits"][0], answers[version][frame], atol=tolerance)
                    with lock:
                        served.append(("grpc", version, sent, time.monotonic()))
                except Exception as error:  # noqa: BLE001 (collected and reported)
                    failures.append(f"grpc client {thread}: {error!r}"[:400])

    def rest_client(thread):
        index = 0
        while not stop.is_set():
            frame = (thread * 3 + index) % count
            index += 1
            one = {key: value[frame : frame + 1] for key, value in frames.items()}
            sent = time.monotonic()
            try:
                logits = _rest_predict(server.rest_port, one)
                matches = [v for v in answers if np.allclose(logits, answers[v][frame], atol=tolerance)]
                assert len(matches) == 1, f"REST logits of frame {frame} match versions {matches}"
                with lock:
                    served.append(("rest", matches[0], sent, time.monotonic()))
            except Exception as error:  # noqa: BLE001 (collected and reported)
                failures.append(f"rest client {thread}: {error!r}"[:400])

    def answered_since(mark):
        with lock:
            return len(served) - mark

    with server:
        threads = [threading.Thread(target=grpc_client, args=(k,)) for k in range(6)]
        threads += [threading.Thread(target=rest_client, args=(k,)) for k in range(3)]
        for thread in threads:
            thread.start()
        try:
            with PredictionClient(server.address, timeout=60) as monitor:
                _wait_for(lambda: answered_since(0) >= 20)
                for version in (2, 3):
                    export_savedmodel(models[version], base, class_names=CLASS_NAMES)
                    exported_at[version] = time.monotonic()  # the version directory is renamed into place here
                    _wait_for(lambda v=version: _live(monitor) == {v})
                    ended_at[version - 1] = time.monotonic()
                    mark = len(served)
                    _wait_for(lambda m=mark: answered_since(m) >= 40)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
    assert failures == []
    for transport, version, sent, answered in served:
        assert exported_at[version] <= answered, f"{transport}: version {version} answered before it was exported"
        assert version not in ended_at or sent <= ended_at[version], f"{transport}: version {version} after END"
    for transport in ("grpc", "rest"):
        versions = [version for kind, version, _, _ in served if kind == transport]
        print(f"{transport}: {len(versions)} answers, by version {[versions.count(v) for v in (1, 2, 3)]}")
        assert {1, 3} <= set(versions)
    assert sorted(version for _, version, _, _ in served)[-1] == 3


def test_sixteen_rest_clients_under_load_get_their_own_answers(server, frames, tolerance):
    """16 clients x 25 REST predicts, each on a new connection, on frames chosen per (client, request): every answer
    equals the in-process logits of its own frame (none lost, mixed up or reset)."""
    frames, expected = frames
    count = len(frames["raw"])

    def work(thread):
        for index in range(25):
            frame = (thread * 7 + index * 3) % count
            one = {key: value[frame : frame + 1] for key, value in frames.items()}
            np.testing.assert_allclose(_rest_predict(server.rest_port, one), expected[frame], atol=tolerance)
        return 25

    start = time.monotonic()
    with futures.ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(work, range(16), timeout=180)) == 400
    seconds = time.monotonic() - start
    print(f"16 x 25 REST predicts in {seconds:.1f} s ({400 / seconds:.0f} requests/s)")
