"""Throughput of the simulation map versus one MobileNet-v1 training step, measured in one run.

    python benchmarks/simulation_throughput.py [--batches 20] [--train-steps 8] [--device-steps 10]

The simulation is the full training map of dirtypixels_tf.data.make_dataset: random crop + flip + bilinear resize,
5x5 Gaussian PSF blur (FFT, reflect boundary), BGGR mosaic and Poisson-Gaussian noise at a light level drawn per
image (2to20lux), batched 32, from synthetic images held in memory (no disk reading), at 128x128 and 224x224.
The reference is keras.applications.MobileNet(weights=None, input_shape=(128, 128, 3), classes=1000) trained with
SGD on batches of 32 (default compile settings), a few warm-up steps then timed steps; the same step at 224x224 is
timed too, for a like-for-like ratio at that size. Target: simulating an image takes at most a fifth of the
128x128 training step's time per image (ratio >= 5). Everything runs on the same CPU cores, one after the other.
Host frames/s per core is the tf.data rate divided by the cores it ran on.

On-device simulation (make_dataset(..., simulate_on_device=True) + data.pipeline.simulate_batch in the step): a
custom MobileNet-v1 training step at 128 on the bilinear demosaic of the RAW frames, timed interleaved (median)
with the frames given and with the frames simulated inside the step from the clean images and seeds; the extra
time is reported as a fraction of the step. On this CPU both share the cores; on an accelerator the fraction is
what the simulation adds to the device's step, and the host then only crops and resizes.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from dirtypixels_tf.data import array_source, make_dataset  # noqa: E402
from dirtypixels_tf.data.pipeline import simulate_batch  # noqa: E402
from dirtypixels_tf.physics import mosaic, optics  # noqa: E402
from dirtypixels_tf.physics.sensor import SensorModel  # noqa: E402

BATCH = 32


def simulation_seconds_per_image(size, batches, warmup=3):
    """Seconds per image of the training simulation map at size x size (images 1.25x larger, cropped down)."""
    side = int(size * 1.25)
    images = np.random.default_rng(0).integers(0, 256, (64, side, side, 3), dtype=np.uint8)
    sensor = SensorModel(preset="Nexus_6P_rear", light_levels="2to20lux", psf=optics.gaussian_psf(5, 1.0))
    dataset = make_dataset(array_source(images, np.arange(64) % 10), sensor, size, BATCH, training=True, seed=0)
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in tqdm(range(batches), desc=f"simulate {size}x{size}", unit="batch"):
        features, _ = next(iterator)
    features["raw"].numpy()
    return (time.perf_counter() - start) / (batches * BATCH)


def training_seconds_per_image(size, steps, warmup=3):
    """Seconds per image of a MobileNet-v1 (size x size, 1000 classes) SGD training step on batches of 32."""
    import keras

    model = keras.applications.MobileNet(weights=None, input_shape=(size, size, 3), classes=1000)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, size, size, 3), dtype=np.float32)
    y = rng.integers(0, 1000, BATCH)
    for _ in tqdm(range(warmup), desc=f"MobileNet {size}x{size} warm-up", unit="step"):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in tqdm(range(steps), desc=f"MobileNet {size}x{size} training", unit="step"):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / (steps * BATCH)


def device_simulation_fraction(steps, warmup=2, size=128):
    """(step seconds with frames given, step seconds with the simulation inside): interleaved medians."""
    import keras

    sensor = SensorModel(preset="Nexus_6P_rear", light_levels="2to20lux", psf=optics.gaussian_psf(5, 1.0))
    images = np.random.default_rng(0).integers(0, 256, (BATCH, int(size * 1.25), int(size * 1.25), 3), np.uint8)
    dataset = make_dataset(
        array_source(images, np.arange(BATCH) % 10), sensor, size, BATCH, True, seed=0, simulate_on_device=True
    )
    features, labels = next(iter(dataset))
    given = simulate_batch(sensor, features)["raw"]
    model = keras.applications.MobileNet(weights=None, input_shape=(size, size, 3), classes=1000)
    optimizer = keras.optimizers.SGD(0.01)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    def train(raw, labels):
        with tf.GradientTape() as tape:
            logits = model(mosaic.demosaic_bilinear(raw) * 2 - 1, training=True)
            loss = loss_fn(labels, logits)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))
        return loss

    plain = tf.function(train)
    inside = tf.function(lambda f, y: train(simulate_batch(sensor, f)["raw"], y))
    calls = {"given": lambda: plain(given, labels), "inside": lambda: inside(features, labels)}
    times = {name: [] for name in calls}
    for call in calls.values():
        for _ in range(warmup):
            call().numpy()
    for _ in tqdm(range(steps), desc="training step, frames given / simulated inside", unit="pair"):
        for name, call in calls.items():
            start = time.perf_counter()
            call().numpy()
            times[name].append(time.perf_counter() - start)
    return float(np.median(times["given"])), float(np.median(times["inside"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20, help="timed simulation batches of 32 per size")
    parser.add_argument("--train-steps", type=int, default=8, help="timed MobileNet training steps")
    parser.add_argument("--device-steps", type=int, default=10, help="timed pairs of on-device simulation steps")
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds (the tests run it)")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.train_steps, args.device_steps = 1, 1, 1
    cores = len(os.sched_getaffinity(0))
    print(f"TensorFlow {tf.__version__}, {cores} CPU cores, batch {BATCH}, load average {os.getloadavg()}")
    sizes = (128, 224)
    simulation = {size: simulation_seconds_per_image(size, args.batches) for size in sizes}
    training = {size: training_seconds_per_image(size, args.train_steps) for size in sizes}
    for size in sizes:
        seconds = training[size]
        print(f"MobileNet-v1 {size}x{size} training step: {1 / seconds:8.1f} images/s ({1000 * seconds:.2f} ms/image)")
    for size, seconds in simulation.items():
        ratio = training[128] / seconds
        verdict = "meets" if ratio >= 5 else "misses"
        print(
            f"simulation {size}x{size}: {1 / seconds:8.1f} images/s ({1000 * seconds:.2f} ms/image); "
            f"{ratio:.1f}x faster per image than the 128x128 training step ({verdict} the 5x target), "
            f"{training[size] / seconds:.1f}x faster than the {size}x{size} step; "
            f"{1 / seconds / cores:.1f} frames/s per host core"
        )
    given, inside = device_simulation_fraction(args.device_steps)
    print(
        f"on-device simulation at 128x128, batch {BATCH}: step {1000 * given:.1f} ms with frames given, "
        f"{1000 * inside:.1f} ms simulating inside; simulation = {(inside - given) / given:.2f} of the step"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
