"""Server-side batching (--enable-batching): TF Serving's parameter file, merged concurrent requests over real gRPC
on loopback whose answers equal the unbatched ones, errors kept to their request, the size limits kept."""

import os
import shutil
import threading

import grpc
import numpy as np
import pytest
from tiny_models import CLASS_NAMES, SIZE, tiny_variant
from tolerances import model_bound

from dirtypixels_tf import cli
from dirtypixels_tf.export import export_savedmodel
from dirtypixels_tf.export.tflite import simulated_inputs
from dirtypixels_tf.serving.batching import BatchingParameters
from dirtypixels_tf.serving.client import PredictionClient
from dirtypixels_tf.serving.server import LocalModelServer

pytestmark = pytest.mark.usefixtures("exact_graphs")  # see tests/tiny_models.py: outputs compared closely
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENTS = 8


def test_the_shipped_parameters_file_is_read_with_its_values():
    parameters = BatchingParameters.from_file(os.path.join(REPO_ROOT, "serving", "batching_parameters.txt"))
    assert parameters == BatchingParameters(32, 1000, 100, 4, (1, 2, 4, 8, 16, 32))
    assert [parameters.padded_size(n) for n in (1, 3, 5, 17, 32)] == [1, 4, 8, 32, 32]
    assert BatchingParameters(num_batch_threads=1).max_batch_size == 1000  # TF Serving's defaults
    assert BatchingParameters(8, num_batch_threads=1).padded_size(3) == 3  # no allowed sizes: no padding


@pytest.mark.parametrize(
    "text, message",
    [
        ('thread_pool_name { value: "x" }', "thread_pool_name is not supported"),
        (
            "max_batch_size { value: 8 }\nbatch_size_limit { value: 8 }",
            'FILE: line 2, column 1: Message type "tensorflow.serving.BatchingParameters" '
            'has no field named "batch_size_limit"',
        ),
        ("max_batch_size: 8", "max_batch_size"),
        ("max_batch_size { value: 0 }", "max_batch_size"),
        ("max_batch_size { value: 8 }\nallowed_batch_sizes: 4", "must equal max_batch_size"),
        ("pad_variable_length_inputs: true", "pad_variable_length_inputs: true is not supported"),
        ("batch_timeout_micros { value: -1 }", "batch_timeout_micros"),
    ],
)
def test_bad_parameters_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        BatchingParameters.from_text(text, "FILE")


def test_the_file_needs_enable_batching(capsys):
    with pytest.raises(SystemExit):
        cli.main(["serve", "somewhere", "--batching-parameters-file", "serving/batching_parameters.txt"])
    assert "--batching-parameters-file is read only with --enable-batching" in capsys.readouterr().err


@pytest.fixture(scope="module")
def frames(tiny_model):
    frames = simulated_inputs((SIZE, SIZE), CLIENTS, profile="2to20lux", seed=5)
    expected = tiny_model(frames)["logits"].numpy()
    return frames, expected


@pytest.fixture(scope="module")
def batching_server(exported):
    base, _ = exported
    # a long timeout, so that requests sent together are merged whatever the machine's load
    parameters = BatchingParameters(CLIENTS, batch_timeout_micros=2_000_000, num_batch_threads=1)
    with LocalModelServer(base, model_name="tiny", port=0, max_batch=16, batching=parameters) as running:
        yield running


def _concurrently(server, requests, versions=None):
    """Send `requests` ({inputs} each, one frame or more) at once, each on its own channel (to `versions[i]`, or the
    latest); outcomes in order."""
    barrier, outcomes = threading.Barrier(len(requests)), [None] * len(requests)

    def send(index):
        with PredictionClient(server.address, timeout=60) as client:
            barrier.wait()
            try:
                version = None if versions is None else versions[index]
                outcomes[index] = client.request(requests[index], model="tiny", version=version)[0]["logits"]
            except grpc.RpcError as error:
                outcomes[index] = error

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def _one(frames, index, **replace):
    return {key: replace.get(key, value)[index : index + 1] for key, value in frames.items()}


def test_concurrent_requests_are_merged_and_answered_as_unbatched(batching_server, server, tiny_model, frames):
    frames, expected = frames
    batching_server.core.batcher.calls.clear()
    outcomes = _concurrently(batching_server, [_one(frames, i) for i in range(CLIENTS)])
    calls = dict(batching_server.core.batcher.calls)
    assert sum(size * count for size, count in calls.items()) == CLIENTS
    assert max(calls) > 1, calls  # merged
    with PredictionClient(server.address) as client:  # the same model, unbatched
        unbatched = np.concatenate([client.request(_one(frames, i), model="tiny")[0]["logits"] for i in range(CLIENTS)])
    bound = model_bound(tiny_model, expected)  # a batch of another size may sum in another order
    for index, logits in enumerate(outcomes):
        np.testing.assert_allclose(logits[0], unbatched[index], rtol=0, atol=bound)
        np.testing.assert_allclose(logits[0], expected[index], rtol=0, atol=bound)


def test_one_requests_error_fails_no_other(batching_server, frames):
    frames, expected = frames
    bad_raw = frames["raw"].copy()
    bad_raw[3, 4, 4, 0] = np.nan
    requests = [_one(frames, i, raw=bad_raw) for i in range(CLIENTS)]
    batching_server.core.batcher.calls.clear()
    outcomes = _concurrently(batching_server, requests)
    calls = dict(batching_server.core.batcher.calls)
    assert isinstance(outcomes[3], grpc.RpcError) and outcomes[3].code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw must be finite" in outcomes[3].details()
    for index, logits in enumerate(outcomes):
        if index != 3:
            assert not isinstance(logits, grpc.RpcError), (index, logits)
            assert np.argmax(logits[0]) == np.argmax(expected[index])
    assert calls.get(1, 0) >= 2, calls  # a merged call failed, then its requests ran one by one


def test_size_limits_are_kept_and_larger_requests_run_alone(batching_server, frames):
    frames, expected = frames
    with PredictionClient(batching_server.address) as client:
        with pytest.raises(grpc.RpcError) as refused:
            client.request({key: np.concatenate([value] * 3) for key, value in frames.items()}, model="tiny")
        assert (
            refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "--max-batch of 16" in refused.value.details()
        )
        twelve = {key: np.concatenate([value, value[:4]]) for key, value in frames.items()}  # over max_batch_size 8
        logits = client.request(twelve, model="tiny")[0]["logits"]
    assert np.array_equal(np.argmax(logits, 1), np.argmax(np.concatenate([expected, expected[:4]]), 1))


def test_two_versions_served_at_once_are_merged_each_with_its_own(tiny_model, exported, frames, tmp_path):
    """Versions 1 and 2 both loaded (num_versions 2; version 2 raises one logit by 50), 8 concurrent one-frame
    requests alternating between them: requests are merged per version only (at most 4 examples a call, 2 calls
    of more than one), and each answer is its own version's logits for its own frame."""
    frames, expected = frames
    base = tmp_path / "tiny"
    shutil.copytree(exported[1], base / "1")
    variant = tiny_variant(tiny_model, 7)
    export_savedmodel(variant, base, version=2, class_names=CLASS_NAMES, fold_batch_norm=None)
    answers = {1: expected, 2: variant(frames)["logits"].numpy()}
    versions = [1 + index % 2 for index in range(CLIENTS)]
    parameters = BatchingParameters(CLIENTS, batch_timeout_micros=2_000_000, num_batch_threads=1)
    with LocalModelServer(base, model_name="tiny", port=0, num_versions=2, batching=parameters) as running:
        outcomes = _concurrently(running, [_one(frames, i) for i in range(CLIENTS)], versions)
        calls = dict(running.core.batcher.calls)
    assert sum(size * count for size, count in calls.items()) == CLIENTS
    assert max(calls) <= CLIENTS // 2 and sum(count for size, count in calls.items() if size > 1) >= 2, calls
    bound = model_bound(tiny_model, expected)
    for index, logits in enumerate(outcomes):
        assert not isinstance(logits, grpc.RpcError), (index, logits)
        np.testing.assert_allclose(logits[0], answers[versions[index]][index], rtol=0, atol=bound)
