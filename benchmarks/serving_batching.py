"""Throughput and latency of `dirtypixels serve` with and without server-side batching, measured in one run.

    python benchmarks/serving_batching.py [--preset joint_mobilenet_v1_128] [--clients 32] [--seconds 20] [--quick]

The model is a release preset (random weights) exported into a temporary base path and served by `dirtypixels
serve` in a subprocess on 127.0.0.1 three times, one after the other: as it is (--max-workers 4, the default); with
--enable-batching --batching-parameters-file serving/batching_parameters.txt (the file the deployment ships:
max_batch_size 32, batch_timeout_micros 1000, 4 batch threads, allowed sizes 1 to 32); and with that file but one
batch thread (on a CPU one batch's kernels already use every core). The server's batch sizes are printed from its
exit summary. --clients threads, each on
its own gRPC channel, send Predict requests of one frame without pause for --seconds. Before the servers start,
the SavedModel's call is timed in this process at batch 1 and 32 (median of 10), and 4 threads calling it at batch 1
at once (10 calls each): batch 32's frames/s over theirs bounds what batching can gain over the unbatched server.
Prints per server: answers/s and p50 / p99 latency; per batched server the ratio of throughputs, batched /
unbatched (target >= 2);
p99 against the bound batch_timeout + 1.5 x the batch-32 model time; the largest difference between a batched
answer and the unbatched answer for the same frame, absolute and relative to the largest logit, and how many
answers failed (target 0). Clients and server share the machine's cores.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dirtypixels_tf.export import export_savedmodel  # noqa: E402
from dirtypixels_tf.export.tflite import simulated_inputs  # noqa: E402
from dirtypixels_tf.models.presets import build_preset, get_preset  # noqa: E402
from dirtypixels_tf.serving.batching import BatchingParameters  # noqa: E402
from dirtypixels_tf.serving.client import PredictionClient  # noqa: E402

PARAMETERS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "serving",
                               "batching_parameters.txt")  # fmt: skip
FRAMES = 64


def start_server(base_path, parameters_file):
    command = [sys.executable, "-m", "dirtypixels_tf.cli", "serve", base_path, "--model-name", "bench", "--port", "0"]
    if parameters_file:
        command += ["--enable-batching", "--batching-parameters-file", parameters_file]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.search(r"gRPC (\S+):(\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return process, f"127.0.0.1:{match[2]}"


def model_seconds(version, frames, batch):
    function = tf.saved_model.load(version).signatures["serving_default"]
    inputs = {key: np.concatenate([value] * (batch // len(value) + 1))[:batch] for key, value in frames.items()}
    function(**inputs)
    times = []
    for _ in range(10):
        start = time.perf_counter()
        function(**inputs)["logits"].numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def concurrent_rate(version, frames, threads=4, calls=10):
    """Frames/s of `threads` threads calling the SavedModel at batch 1 at once (what the unbatched server's 4 workers
    do), in this process."""
    function = tf.saved_model.load(version).signatures["serving_default"]
    one = {key: value[:1] for key, value in frames.items()}
    function(**one)

    def work():
        for _ in range(calls):
            function(**one)["logits"].numpy()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return threads * calls / (time.perf_counter() - start)


def load(address, frames, clients, seconds):
    """--clients threads sending one frame at a time: (latencies, {frame: [logits]}, failures, elapsed)."""
    latencies, answers, failures, lock = [], {}, [], threading.Lock()
    barrier = threading.Barrier(clients + 1)
    stop = threading.Event()

    def work(thread):
        with PredictionClient(address, timeout=120) as client:
            client.request({key: value[:1] for key, value in frames.items()}, model="bench")  # connect
            barrier.wait()
            index = thread
            while not stop.is_set():
                frame = index % FRAMES
                index += clients
                one = {key: value[frame : frame + 1] for key, value in frames.items()}
                start = time.perf_counter()
                try:
                    logits = client.request(one, model="bench")[0]["logits"][0]
                except Exception as error:  # noqa: BLE001 (counted and reported)
                    with lock:
                        failures.append(repr(error)[:200])
                    continue
                with lock:
                    latencies.append(time.perf_counter() - start)
                    answers.setdefault(frame, []).append(logits)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.monotonic()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return latencies, answers, failures, time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="joint_mobilenet_v1_128")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds (the tests run it)")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds = 4, 3.0
    parameters = BatchingParameters.from_file(PARAMETERS_FILE)
    with open(PARAMETERS_FILE, encoding="utf-8") as file:
        shipped = file.read()
    size = get_preset(args.preset).spec.image_size
    frames = simulated_inputs((size, size), FRAMES, profile="3lux", seed=0)
    with tempfile.TemporaryDirectory() as base:
        version = export_savedmodel(build_preset(args.preset), os.path.join(base, "bench"))
        one, full = model_seconds(version, frames, 1), model_seconds(version, frames, parameters.max_batch_size)
        concurrent = concurrent_rate(version, frames)
        one_thread = os.path.join(base, "one_thread.txt")
        with open(one_thread, "w", encoding="utf-8") as file:
            file.write(re.sub(r"num_batch_threads \{ value: \d+ \}", "num_batch_threads { value: 1 }", shipped))
        servers = {"unbatched": None, "batched (shipped file)": PARAMETERS_FILE, "batched, 1 batch thread": one_thread}
        results, summaries = {}, {}
        for name, parameters_file in servers.items():
            process, address = start_server(os.path.join(base, "bench"), parameters_file)
            try:
                results[name] = load(address, frames, args.clients, args.seconds)
            finally:
                process.terminate()
                summaries[name] = re.findall(r"batching: .*", process.communicate(timeout=120)[0])

    print(
        f"preset {args.preset}; {args.clients} clients of one frame each for {args.seconds:g} s per server, "
        f"{os.cpu_count()} cores; model call in-process: batch 1 {1000 * one:.1f} ms, batch "
        f"{parameters.max_batch_size} {1000 * full:.1f} ms ({1000 * full / parameters.max_batch_size:.2f} ms/frame)"
    )
    print(
        f"in-process frames/s: batch {parameters.max_batch_size} {parameters.max_batch_size / full:.1f}, 4 threads at "
        f"batch 1 {concurrent:.1f}: the most batching can gain over 4 workers here is "
        f"{parameters.max_batch_size / full / concurrent:.2f} x"
    )
    rates = {}
    for name, (latencies, _, failures, elapsed) in results.items():
        rates[name] = len(latencies) / elapsed
        p50, p99 = (1000 * float(np.quantile(latencies, q)) for q in (0.5, 0.99))
        print(
            f"{name:<24}: {rates[name]:.1f} answers/s, p50 {p50:.0f} ms, p99 {p99:.0f} ms, {len(latencies)} answers, "
            f"{len(failures)} failed; {' '.join(summaries[name]) or 'no batching'}"
        )
        for failure in failures[:3]:
            print("  failure:", failure)
    bound = parameters.batch_timeout_micros * 1e-6 + 1.5 * full
    unbatched = results["unbatched"][1]
    for name in list(servers)[1:]:
        p99 = float(np.quantile(results[name][0], 0.99))
        batched = results[name][1]
        common = sorted(set(unbatched) & set(batched))
        difference = max(
            (float(np.abs(b - unbatched[f][0]).max()) for f in common for b in batched[f]), default=float("nan")
        )
        scale = max((float(np.abs(unbatched[f][0]).max()) for f in common), default=float("nan"))
        print(
            f"{name}: throughput / unbatched {rates[name] / rates['unbatched']:.2f} (target >= 2); p99 / (batch_timeout "
            f"+ 1.5 x batch-{parameters.max_batch_size} time = {1000 * bound:.0f} ms) {p99 / bound:.2f} (target <= 1); "
            f"largest |answer - unbatched answer| {difference:.2e} over {len(common)} frames (largest logit "
            f"{scale:.2e}, relative {difference / scale:.1e})"
        )


if __name__ == "__main__":
    main()
