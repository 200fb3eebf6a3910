"""Serving overhead: a gRPC Predict round trip to the local server versus the in-process SavedModel call.

    python benchmarks/serving_latency.py [--preset joint_mobilenet_v1_128] [--requests 200] [--clients 8] [--workers 4]

The model is the release preset joint_mobilenet_v1_128 (Anscombe network + MobileNet-v1, 128x128 RAW, 1001 classes,
random weights), exported with export_savedmodel into a temporary base path. The server is `dirtypixels serve` in
a subprocess on 127.0.0.1 (as TF Serving would be: another process; Grappler on, like the in-process call).
- Batch-1 latency: the same frame sent --requests times, one request at a time, alternating blocks of 20 between
  the in-process call (the loaded SavedModel's serving_default with tensors already in memory) and the round trip
  (PredictionClient.predict: NumPy -> TensorProto -> gRPC over loopback -> server -> back to NumPy), so both see the
  same machine state. Medians are compared; target: the round trip adds at most 25 % (ratio <= 1.25).
- Throughput at batch 32: --clients threads each sending --batches-per-client requests of 32 frames at once,
  against the in-process call on batches of 32 one after the other.
Everything shares the same CPU cores (the server runs its model while the client waits, so they do not compete).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent import futures

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dirtypixels_tf.export import export_savedmodel  # noqa: E402
from dirtypixels_tf.export.tflite import simulated_inputs  # noqa: E402
from dirtypixels_tf.models.presets import build_preset, get_preset  # noqa: E402
from dirtypixels_tf.serving.client import PredictionClient  # noqa: E402

BLOCK = 20


def _timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def start_server(base_path, workers):
    command = [sys.executable, "-m", "dirtypixels_tf.cli", "serve", base_path, "--model-name", "bench", "--port", "0"]
    process = subprocess.Popen(command + ["--max-workers", str(workers)], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if "gRPC " not in line:
        process.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return process, line.split("gRPC ")[1].split(";")[0].split(",")[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="joint_mobilenet_v1_128")
    parser.add_argument("--requests", type=int, default=200, help="batch-1 requests per side")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches-per-client", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4, help="the server's --max-workers")
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds (the tests run it)")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.clients, args.batch, args.batches_per_client = 8, 2, 4, 1

    size = get_preset(args.preset).spec.image_size
    model = build_preset(args.preset)
    with tempfile.TemporaryDirectory() as base:
        version = export_savedmodel(model, os.path.join(base, "bench"))
        serving_default = tf.saved_model.load(version).signatures["serving_default"]
        process, address = start_server(os.path.join(base, "bench"), args.workers)
        try:
            frames = simulated_inputs((size, size), args.batch, profile="3lux", seed=0)
            one = {key: value[:1] for key, value in frames.items()}
            one_tensors = {key: tf.constant(value) for key, value in one.items()}
            batch_tensors = {key: tf.constant(value) for key, value in frames.items()}
            with PredictionClient(address) as client:
                remote = client.predict(one["raw"], one["alpha"], one["sigma"], model="bench")
                local = serving_default(**one_tensors)
                agreement = float(np.abs(remote["logits"] - local["logits"].numpy()).max())
                for _ in range(10):  # warm-up of both paths
                    serving_default(**one_tensors)
                    client.predict(one["raw"], one["alpha"], one["sigma"], model="bench")
                in_process, round_trip = [], []
                for _ in range(max(1, args.requests // BLOCK)):
                    in_process += [
                        _timed(lambda: serving_default(**one_tensors)["logits"].numpy()) for _ in range(BLOCK)
                    ]
                    round_trip += [
                        _timed(lambda: client.predict(one["raw"], one["alpha"], one["sigma"], model="bench"))
                        for _ in range(BLOCK)
                    ]

                local_batches = args.clients * args.batches_per_client
                serving_default(**batch_tensors)
                local_seconds = _timed(
                    lambda: [serving_default(**batch_tensors)["logits"].numpy() for _ in range(local_batches)]
                )

                def send(_):
                    for _ in range(args.batches_per_client):
                        client.predict(frames["raw"], frames["alpha"], frames["sigma"], model="bench")

                with futures.ThreadPoolExecutor(args.clients) as pool:
                    list(pool.map(send, range(args.clients)))  # warm-up at batch 32
                    remote_seconds = _timed(lambda: list(pool.map(send, range(args.clients))))
        finally:
            process.terminate()
            process.wait(timeout=60)

    local_ms, remote_ms = statistics.median(in_process) * 1e3, statistics.median(round_trip) * 1e3
    images = local_batches * args.batch
    print(f"model {args.preset} ({size}x{size} RAW, {model.output['logits'].shape[-1]} classes), server {address}")
    print(f"max |logit diff| round trip vs in-process: {agreement:.2g}")
    print(
        f"batch 1, median over {len(in_process)}: in-process {local_ms:.2f} ms, gRPC round trip {remote_ms:.2f} ms "
        f"(p90 {np.percentile(in_process, 90) * 1e3:.2f} / {np.percentile(round_trip, 90) * 1e3:.2f} ms)"
    )
    print(f"round trip / in-process = {remote_ms / local_ms:.3f} (target <= 1.25); added {remote_ms - local_ms:.2f} ms")
    print(
        f"batch {args.batch}: in-process {images / local_seconds:.0f} frames/s; gRPC with {args.clients} clients "
        f"{images / remote_seconds:.0f} frames/s; ratio {local_seconds / remote_seconds:.3f}"
    )


if __name__ == "__main__":
    main()
