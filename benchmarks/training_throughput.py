"""Training-step throughput of the release joint model versus MobileNet-v1 alone, measured in one run.

    python benchmarks/training_throughput.py [--steps 10] [--warmup 3] [--batch 32]

Both models are trained on 128x128 inputs, batch 32, 1001 classes, with the release's optimizer (TF1-initialised
RMSProp, momentum 0.9, epsilon 1.0, learning rate 4.5e-4, weight decay 4e-5 on the kernels) and the sparse cross
entropy, through Keras' train step (model.train_on_batch, compiled graph): the joint model is preset
joint_mobilenet_v1_128 (Anscombe network + MobileNet-v1, RAW frames in); the reference is the same MobileNet-v1
fed 128x128x3 images. Inputs are fixed tensors held in memory (no data pipeline). Prints images/second of each and
the ratio of step times; target: joint / head <= 1.5. Everything runs on the same CPU cores, one after the other.

Then where the frames are simulated (training config data.simulate_on_device): the same joint model trained by
model.fit from the input pipeline of training/data.py on synthetic 160x160 images in memory (random crop and resize
to 128, the default sensor: Nexus 6P, 3 lux, BGGR, no blur), once with the frames simulated by tf.data on the host
(parallel map, prefetched: overlapping the step) and once simulated inside the step (training/data.simulating_view).
Two alternating rounds of each, the first epoch of every fit call a warm-up; prints the median step time of each
and their ratio (on-device / host). On this CPU "device" and host are the same cores.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from dirtypixels_tf.data import array_source, make_dataset  # noqa: E402
from dirtypixels_tf.models import heads, presets  # noqa: E402
from dirtypixels_tf.physics.sensor import SensorModel  # noqa: E402
from dirtypixels_tf.training.data import simulating_view  # noqa: E402
from dirtypixels_tf.training.losses import SparseCrossEntropy  # noqa: E402
from dirtypixels_tf.training.model_setup import training_view  # noqa: E402
from dirtypixels_tf.training.optimizers import Tf1RMSprop, apply_weight_decay  # noqa: E402

SIZE, CLASSES = 128, 1001


def optimizer():
    return Tf1RMSprop(learning_rate=4.5e-4, rho=0.9, momentum=0.9, epsilon=1.0)


def seconds_per_step(model, inputs, labels, steps, warmup):
    for _ in range(warmup):
        model.train_on_batch(inputs, labels)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(inputs, labels)
    return (time.perf_counter() - start) / steps


class EpochTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def simulation_placement_seconds(batch, steps, rounds=2):
    """Median seconds per model.fit step of the joint model with the frames simulated by tf.data (host) and
    inside the step (device): {"host": s, "device": s}."""
    images = np.random.default_rng(1).integers(0, 256, (256, 160, 160, 3), np.uint8)
    sensor = SensorModel(preset="Nexus_6P_rear", light_levels="3lux", pattern="BGGR")
    keras.utils.set_random_seed(0)
    model = training_view(presets.build_preset("joint_mobilenet_v1_128"), ["logits"])
    fitted = {"host": model, "device": simulating_view(model, sensor)}
    for trained in fitted.values():
        trained.compile(optimizer=optimizer(), loss={"logits": SparseCrossEntropy()})

    def stream(on_device):
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

    seconds = {name: [] for name in fitted}
    for _ in range(rounds):
        for name, trained in fitted.items():
            timer = EpochTimes()
            trained.fit(
                stream(name == "device"), epochs=3, steps_per_epoch=steps, callbacks=[timer], verbose=0, shuffle=False
            )
            seconds[name].extend(t / steps for t in timer.seconds[1:])
    return {name: float(np.median(values)) for name, values in seconds.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--jit", action="store_true", help="compile both train steps with XLA (jit_compile=True)")
    parser.add_argument("--fit-steps", type=int, default=4, help="steps per timed epoch of the simulation placement")
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds (the tests run it)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup, args.batch, args.fit_steps = 1, 1, 4, 1
    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, args.batch)

    keras.utils.set_random_seed(0)
    joint = training_view(presets.build_preset("joint_mobilenet_v1_128"), ["logits"])
    apply_weight_decay(joint, 4e-5)
    joint.compile(optimizer=optimizer(), loss={"logits": SparseCrossEntropy()}, jit_compile=args.jit)
    raw = {
        "raw": rng.random((args.batch, SIZE, SIZE, 1), np.float32),
        "alpha": np.full(args.batch, 0.1248, np.float32),
        "sigma": np.full(args.batch, 0.3155, np.float32),
    }
    joint_time = seconds_per_step(joint, raw, {"logits": labels}, args.steps, args.warmup)

    head = heads.build_head("mobilenet_v1", (SIZE, SIZE, 3), CLASSES)
    apply_weight_decay(head, 4e-5)
    head.compile(optimizer=optimizer(), loss=SparseCrossEntropy(), jit_compile=args.jit)
    images = rng.random((args.batch, SIZE, SIZE, 3), np.float32) * 2 - 1
    head_time = seconds_per_step(head, images, labels, args.steps, args.warmup)

    print(
        f"batch {args.batch} at {SIZE}x{SIZE}, {args.steps} timed steps after {args.warmup} warm-up steps, XLA {args.jit}"
    )
    print(f"joint_mobilenet_v1_128 : {joint_time * 1000:8.1f} ms/step  {args.batch / joint_time:8.1f} images/s")
    print(f"mobilenet_v1 alone     : {head_time * 1000:8.1f} ms/step  {args.batch / head_time:8.1f} images/s")
    ratio = joint_time / head_time
    print(f"step time ratio joint / head: {ratio:.2f} (target <= 1.5: {'met' if ratio <= 1.5 else 'not met'})")

    placement = simulation_placement_seconds(args.batch, args.fit_steps, rounds=1 if args.quick else 2)
    print(f"model.fit, frames simulated by tf.data : {placement['host'] * 1000:8.1f} ms/step")
    print(f"model.fit, frames simulated in the step: {placement['device'] * 1000:8.1f} ms/step")
    print(f"step time ratio on-device / host simulation: {placement['device'] / placement['host']:.2f}")


if __name__ == "__main__":
    main()
