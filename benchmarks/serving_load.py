"""Serving under hostile load: 64 clients mixing good and bad requests on gRPC and REST, plus stalled connections.

    python benchmarks/serving_load.py [--preset joint_mobilenet_v1_128] [--clients 64] [--stalled 16] [--seconds 20]

The model is a release preset (random weights) exported into a temporary base path and served by `dirtypixels
serve` in a subprocess on 127.0.0.1 (gRPC and REST, --max-workers 4, the defaults otherwise). During the run:
- --stalled gRPC calls that open a Predict stream and never send the message, and --stalled REST uploads that send
  headers and no body, on the two ports, held open for the whole run;
- --clients threads, each for --seconds, cycling through: a good gRPC Predict (batch 1), a good REST :predict, and
  one bad request in turn (wrong dtype, NaN, a 130-byte TensorProto declaring 2e6 frames, an unknown model, a
  malformed JSON body, a Content-Length of -1, 100000-deep JSON). Every good answer is compared with the
  in-process SavedModel's answer for that frame (top class equal, logits within 1e-3); every bad one must get its
  status (gRPC INVALID_ARGUMENT / NOT_FOUND, HTTP 400).
Prints: good requests and the errors among them (target: 0), bad requests and the unexpected answers among them
(target: 0), p50 / p99 latency of the good requests per transport, and the server's peak resident memory (VmHWM)
against its resident memory before the load. All in one run; clients and server share the same cores.
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import predict_pb2  # noqa: E402

from dirtypixels_tf.export import export_savedmodel  # noqa: E402
from dirtypixels_tf.export.tflite import simulated_inputs  # noqa: E402
from dirtypixels_tf.models.presets import build_preset, get_preset  # noqa: E402
from dirtypixels_tf.serving.client import PredictionClient  # noqa: E402

PREDICT = "/tensorflow.serving.PredictionService/Predict"


def start_server(base_path):
    command = [sys.executable, "-m", "dirtypixels_tf.cli", "serve", base_path, "--model-name", "bench"]
    process = subprocess.Popen(command + ["--port", "0", "--rest-port", "0"], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.search(r"gRPC (\S+):(\d+), REST (\S+):(\d+);", line)
    if not match:
        process.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return process, f"127.0.0.1:{match[2]}", int(match[4])


def memory_kb(pid, field):
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rest(port, path, body, timeout=60):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def raw_http(port, data, timeout=60):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = sock.recv(4096)
    return int(answer.split()[1])


def float64_request(frames):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "bench"
    for name, value in frames.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value[:1].astype(np.float64)))
    return request


def declared_huge(frames):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "bench"
    for name in ("alpha", "sigma"):
        request.inputs[name].CopyFrom(tf.make_tensor_proto(frames[name][:1]))
    raw = request.inputs["raw"]
    raw.dtype = tf.float32.as_datatype_enum
    for size in (2_000_000, *frames["raw"].shape[1:]):
        raw.tensor_shape.dim.add(size=size)
    raw.float_val.append(0.5)
    return request


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="joint_mobilenet_v1_128")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--stalled", type=int, default=16, help="stalled connections on each port")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds (the tests run it)")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.stalled, args.seconds = 4, 2, 3.0

    size = get_preset(args.preset).spec.image_size
    model = build_preset(args.preset)
    frames = simulated_inputs((size, size), 8, profile="3lux", seed=0)
    with tempfile.TemporaryDirectory() as base:
        version = export_savedmodel(model, os.path.join(base, "bench"))
        expected = tf.saved_model.load(version).signatures["serving_default"](**frames)["logits"].numpy()
        process, address, rest_port = start_server(os.path.join(base, "bench"))
        try:
            run(args, frames, expected, process, address, rest_port)
        finally:
            process.terminate()
            process.wait(timeout=60)


def run(args, frames, expected, process, address, rest_port):
    client = PredictionClient(address, timeout=60)
    client.predict(frames["raw"][:1], frames["alpha"][:1], frames["sigma"][:1], model="bench")  # warm
    idle_kb = memory_kb(process.pid, "VmRSS")
    unloaded = []
    for _ in range(20):  # one client, nothing else running: the latency the load is compared with
        start = time.perf_counter()
        client.predict(frames["raw"][:1], frames["alpha"][:1], frames["sigma"][:1], model="bench")
        unloaded.append(time.perf_counter() - start)
    release = threading.Event()

    def never():
        release.wait(args.seconds + 60)
        return
        yield

    channel = grpc.insecure_channel(address)
    stalled = [
        channel.stream_unary(PREDICT, request_serializer=lambda r: r, response_deserializer=lambda r: r).future(never())
        for _ in range(args.stalled)
    ]
    uploads = []
    for _ in range(args.stalled):
        sock = socket.create_connection(("127.0.0.1", rest_port), timeout=120)
        sock.sendall(b"POST /v1/models/bench:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        uploads.append(sock)

    def good_grpc(i):
        out = client.predict(frames["raw"][i : i + 1], frames["alpha"][i : i + 1], frames["sigma"][i : i + 1], "bench")
        return out["logits"][0]

    def good_rest(i):
        document = {"inputs": {k: v[i : i + 1].tolist() for k, v in frames.items()}}
        status, answer = rest(rest_port, "/v1/models/bench:predict", json.dumps(document).encode())
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {answer}")
        return np.asarray(answer["outputs"]["logits"][0])

    def expect_grpc(code, call):
        try:
            call()
        except grpc.RpcError as error:
            return error.code() == code
        return False

    bad = [
        lambda i: expect_grpc(
            grpc.StatusCode.INVALID_ARGUMENT, lambda: client.prediction.Predict(float64_request(frames), timeout=60)
        ),
        lambda i: expect_grpc(
            grpc.StatusCode.INVALID_ARGUMENT,
            lambda: client.predict(np.full_like(frames["raw"][:1], np.nan), 0.01, 0.01, "bench"),
        ),
        lambda i: expect_grpc(
            grpc.StatusCode.INVALID_ARGUMENT, lambda: client.prediction.Predict(declared_huge(frames), timeout=60)
        ),
        lambda i: expect_grpc(grpc.StatusCode.NOT_FOUND, lambda: client.predict(frames["raw"][:1], 0.01, 0.01, "nope")),
        lambda i: rest(rest_port, "/v1/models/bench:predict", b"{not json")[0] == 400,
        lambda i: (
            raw_http(rest_port, b"POST /v1/models/bench:predict HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
            == 400
        ),
        lambda i: rest(rest_port, "/v1/models/bench:predict", b"[" * 100_000 + b"]" * 100_000)[0] == 400,
    ]
    latencies = {"grpc": [], "rest": []}
    counts = {"good": 0, "good_errors": 0, "bad": 0, "bad_unexpected": 0}
    unexpected = [0] * len(bad)
    lock = threading.Lock()
    failures = []
    deadline = time.monotonic() + args.seconds

    def work(thread):
        step = 0
        while time.monotonic() < deadline:
            i = (thread + step) % len(frames["raw"])
            kind = step % 3
            step += 1
            if kind < 2:
                transport, call = ("grpc", good_grpc) if kind == 0 else ("rest", good_rest)
                start = time.perf_counter()
                try:
                    logits = call(i)
                    ok = np.argmax(logits) == np.argmax(expected[i]) and np.allclose(logits, expected[i], atol=1e-3)
                    error = None if ok else "answer differs from the in-process one"
                except Exception as exception:  # noqa: BLE001 (counted and reported)
                    error = f"{type(exception).__name__}: {exception}"
                elapsed = time.perf_counter() - start
                with lock:
                    counts["good"] += 1
                    latencies[transport].append(elapsed)
                    if error:
                        counts["good_errors"] += 1
                        failures.append(f"{transport}: {error}"[:300])
            else:
                which = (thread + step) % len(bad)
                try:
                    ok = bad[which](i)
                except Exception as exception:  # noqa: BLE001 (a reset or a timeout is an unexpected answer)
                    ok = False
                    failures.append(f"bad request {which}: {type(exception).__name__}: {exception}"[:300])
                with lock:
                    counts["bad"] += 1
                    counts["bad_unexpected"] += not ok
                    unexpected[which] += not ok

    threads = [threading.Thread(target=work, args=(t,)) for t in range(args.clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.seconds + 180)
    elapsed = time.monotonic() - start
    still_open = sum(1 for call in stalled if not call.done())
    release.set()
    for call in stalled:
        call.cancel()
    for sock in uploads:
        sock.close()
    channel.close()
    peak_kb = memory_kb(process.pid, "VmHWM")
    client.close()

    def pct(values, q):
        return 1000 * float(np.quantile(values, q)) if values else float("nan")

    print(
        f"preset {args.preset}; {args.clients} clients for {args.seconds:g} s (ran {elapsed:.1f} s); "
        f"{args.stalled} stalled gRPC calls ({still_open} still open at the end) and {args.stalled} stalled REST uploads"
    )
    print(f"good requests: {counts['good']}, errors on good requests: {counts['good_errors']}")
    print(
        f"bad requests: {counts['bad']}, answered with an unexpected status: {counts['bad_unexpected']} "
        f"(by kind: {unexpected})"
    )
    for transport, values in latencies.items():
        print(
            f"{transport} good latency: p50 {pct(values, 0.5):.0f} ms, p99 {pct(values, 0.99):.0f} ms "
            f"({len(values)} requests, {len(values) / elapsed:.1f}/s; mean {1000 * statistics.fmean(values or [0]):.0f} ms)"
        )
    baseline = 1000 * statistics.median(unloaded)
    p50 = pct(latencies["grpc"], 0.5)
    print(
        f"unloaded gRPC batch-1 latency (one client): p50 {baseline:.0f} ms; loaded/unloaded p50 ratio "
        f"{p50 / baseline:.1f} with {args.clients} clients on {os.cpu_count()} cores (queueing: 4 workers)"
    )
    print(f"server resident memory: {idle_kb / 1024:.0f} MiB before the load, peak {peak_kb / 1024:.0f} MiB")
    for failure in failures[:5]:
        print("  failure:", failure)


if __name__ == "__main__":
    main()
