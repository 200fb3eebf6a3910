"""A prepared check for GPU machines: model.fit of the release joint model on every GPU, frames simulated inside the
step versus by tf.data on the host.

    python benchmarks/accelerator_check.py [--steps 20] [--batch-per-replica 64] [--rounds 2] [--quick]

Where GPUs are present: tf.distribute.MirroredStrategy over all of them; preset joint_mobilenet_v1_128 (Anscombe
network + MobileNet-v1, 128x128 RAW, 1001 classes, random weights) compiled with the release's optimizer
(TF1-initialised RMSProp) and the sparse cross entropy; model.fit from the input pipeline (data.make_dataset) on
synthetic 160x160 images held in memory (random crop and resize to 128, the default sensor: Nexus 6P, 3 lux, BGGR,
no blur), global batch = batch per replica x GPUs, once with the frames simulated by tf.data on the host (parallel
map, prefetched) and once inside the step (training/data.simulating_view: physics/poisson.py's sampler, every op
with a GPU kernel). Each fit runs 1 + --rounds epochs of --steps steps; the first epoch is a warm-up, the step time
is the median over the others. Prints per placement: step time, images/s, GPU utilization (mean of nvidia-smi
samples every 0.5 s during the timed epochs, per GPU; "not readable" without nvidia-smi), and the simulation's
share of the on-device step: the simulation alone (strategy.run of data.simulate_batch on the same distributed
batches, timed the same way) over the on-device step time.
Without a GPU it says so and exits 0. --quick runs the same code on the CPU (2 steps of batch 4, one round): the
slow tests run it.
"""

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dirtypixels_tf.data import array_source, make_dataset  # noqa: E402
from dirtypixels_tf.data.pipeline import simulate_batch  # noqa: E402
from dirtypixels_tf.models import presets  # noqa: E402
from dirtypixels_tf.physics.sensor import SensorModel  # noqa: E402
from dirtypixels_tf.training.data import simulating_view  # noqa: E402
from dirtypixels_tf.training.losses import SparseCrossEntropy  # noqa: E402
from dirtypixels_tf.training.model_setup import training_view  # noqa: E402
from dirtypixels_tf.training.optimizers import Tf1RMSprop  # noqa: E402

SIZE, PRESET = 128, "joint_mobilenet_v1_128"


class GpuUtilization:
    """nvidia-smi's utilization.gpu sampled every 0.5 s between start() and stop(): mean per GPU, or None."""

    def __init__(self):
        self.command = shutil.which("nvidia-smi")
        self.samples = []
        self._stop = threading.Event()
        self._thread = None

    def _sample(self):
        while not self._stop.wait(0.5):
            try:
                text = subprocess.run(
                    [self.command, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                ).stdout
                self.samples.append([float(line) for line in text.split()])
            except (OSError, ValueError, subprocess.SubprocessError):
                return

    def start(self):
        self.samples, self._stop = [], threading.Event()
        if self.command:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self.samples:
            return None
        return np.mean(np.array(self.samples), axis=0)


class EpochTimes(keras.callbacks.Callback):
    """Seconds of each epoch; GPU utilization sampled over the epochs after the first."""

    def __init__(self, utilization):
        super().__init__()
        self.seconds, self.utilization = [], utilization

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            self.utilization.start()
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def stream(images, sensor, batch, on_device):
    dataset = make_dataset(
        array_source(images, np.arange(len(images)) % 10),
        sensor,
        SIZE,
        batch,
        True,
        seed=0,
        simulate_on_device=on_device,
    )
    if on_device:
        return dataset.map(lambda features, label: (features, {"logits": label}))
    return dataset.map(lambda f, label: ({k: f[k] for k in ("raw", "alpha", "sigma")}, {"logits": label}))


def simulation_seconds(strategy, sensor, dataset, steps, rounds):
    """Median seconds of the on-device simulation alone per global batch (strategy.run of simulate_batch)."""
    simulate = tf.function(lambda features: strategy.run(lambda f: simulate_batch(sensor, f)["raw"], args=(features,)))
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    times = []
    for round_index in range(1 + rounds):
        start = time.perf_counter()
        for _ in range(steps):
            outputs = simulate(next(iterator)[0])
        for value in strategy.experimental_local_results(outputs):
            value.numpy()  # wait for every replica
        if round_index:  # the first round traces and warms up
            times.append((time.perf_counter() - start) / steps)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per timed epoch")
    parser.add_argument("--batch-per-replica", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="timed epochs per placement (after one warm-up)")
    parser.add_argument("--quick", action="store_true", help="the same code on the CPU, 2 steps of batch 4")
    args = parser.parse_args()
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not args.quick:
        print("no GPU on this machine: nothing to check (the --quick form runs the same code on the CPU)")
        return 0
    if args.quick:
        args.steps, args.batch_per_replica, args.rounds = 2, 4, 1
    strategy = tf.distribute.MirroredStrategy() if gpus else tf.distribute.MirroredStrategy(["/cpu:0"])
    replicas = strategy.num_replicas_in_sync
    batch = args.batch_per_replica * replicas
    devices = ", ".join(d.name for d in gpus) if gpus else "the CPU (--quick)"
    print(
        f"MirroredStrategy over {replicas} replica(s): {devices}; global batch {batch} ({args.batch_per_replica} each)"
    )

    images = np.random.default_rng(1).integers(0, 256, (max(256, 2 * batch), 160, 160, 3), np.uint8)
    sensor = SensorModel(preset="Nexus_6P_rear", light_levels="3lux", pattern="BGGR")
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = training_view(presets.build_preset(PRESET), ["logits"])
        fitted = {"tf.data (host)": model, "in the step (device)": simulating_view(model, sensor)}
        for trained in fitted.values():
            optimizer = Tf1RMSprop(learning_rate=4.5e-4, rho=0.9, momentum=0.9, epsilon=1.0)
            trained.compile(optimizer=optimizer, loss={"logits": SparseCrossEntropy()})
    utilization = GpuUtilization()
    step = {}
    for name, trained in fitted.items():
        timer = EpochTimes(utilization)
        trained.fit(
            stream(images, sensor, batch, on_device=trained is not model),
            epochs=1 + args.rounds,
            steps_per_epoch=args.steps,
            callbacks=[timer],
            verbose=0,
            shuffle=False,
        )
        busy = utilization.stop()
        step[name] = float(np.median(timer.seconds[1:])) / args.steps
        readable = "not readable (no nvidia-smi)" if busy is None else ", ".join(f"{u:.0f} %" for u in busy)
        print(
            f"frames simulated {name:<21}: {1000 * step[name]:8.1f} ms/step, {batch / step[name]:8.1f} images/s, "
            f"GPU utilization {readable}"
        )
    alone = simulation_seconds(strategy, sensor, stream(images, sensor, batch, True), args.steps, args.rounds)
    device = step["in the step (device)"]
    print(
        f"simulation alone: {1000 * alone:.1f} ms per global batch, {alone / device:.2f} of the on-device step; "
        f"step time ratio in-step / tf.data: {device / step['tf.data (host)']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
