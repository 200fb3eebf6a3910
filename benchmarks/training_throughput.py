"""Training-step throughput of the release joint model versus MobileNet-v1 alone, measured in one run.

    python benchmarks/training_throughput.py [--steps 10] [--warmup 3] [--batch 32]

Both models are trained on 128x128 inputs, batch 32, 1001 classes, with the release's optimizer (TF1-initialised
RMSProp, momentum 0.9, epsilon 1.0, learning rate 4.5e-4, weight decay 4e-5 on the kernels) and the sparse cross
entropy, through Keras' train step (model.train_on_batch, compiled graph): the joint model is preset
joint_mobilenet_v1_128 (Anscombe network + MobileNet-v1, RAW frames in); the reference is the same MobileNet-v1
fed 128x128x3 images. Inputs are fixed tensors held in memory (no data pipeline). Prints images/second of each and
the ratio of step times; target: joint / head <= 1.5. Everything runs on the same CPU cores, one after the other.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from dirtypixels_tf.models import heads, presets  # noqa: E402
from dirtypixels_tf.training.losses import SparseCrossEntropy  # noqa: E402
from dirtypixels_tf.training.models import training_view  # noqa: E402
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--jit", action="store_true", help="compile both train steps with XLA (jit_compile=True)")
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds (the tests run it)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup, args.batch = 1, 1, 4
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


if __name__ == "__main__":
    main()
