"""CPU time of the GPU-ready Poisson sampler (physics/poisson.py) against TensorFlow's StatelessRandomPoisson.

    python benchmarks/poisson_sampler.py [--quick] [--repeats 9]

The means are those add_noise draws from: a batch of 16 RAW frames of 224x224 with values uniform in [0, 1],
divided by the default preset's alpha at 3 and at 48 lux (expected counts up to 8 and up to 128). Each sampler runs
in a tf.function on the same means, interleaved, and the fastest of --repeats calls is kept for each. Prints the
seconds per batch and the ratio new / stock at each light level (target at 3 lux: at most 1.5).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from dirtypixels_tf.physics.noise import noise_at_lux  # noqa: E402
from dirtypixels_tf.physics.poisson import stateless_poisson  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 small frames, 3 repeats (a smoke run)")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    shape, repeats = ([2, 64, 64, 1], 3) if args.quick else ([16, 224, 224, 1], args.repeats)
    seed = tf.constant([3, 4], tf.int64)
    samplers = {
        "new": tf.function(lambda mean: stateless_poisson(mean, seed)),
        "stock": tf.function(lambda mean: tf.random.stateless_poisson(tf.shape(mean), seed, mean, dtype=mean.dtype)),
    }
    print(f"frames {shape}, fastest of {repeats} calls (seconds per batch)")
    for lux in (3, 48):
        alpha, _ = noise_at_lux(lux)
        mean = tf.random.stateless_uniform(shape, [0, lux]) / alpha
        best = {}
        for sampler in samplers.values():
            sampler(mean).numpy()  # trace
        for _ in range(repeats):
            for name, sampler in samplers.items():
                start = time.perf_counter()
                sampler(mean).numpy()
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
        print(
            f"{lux:>3} lux (counts up to {1 / alpha:.0f}): new {best['new']:.4f} s, StatelessRandomPoisson "
            f"{best['stock']:.4f} s, ratio new / stock {best['new'] / best['stock']:.2f}"
        )


if __name__ == "__main__":
    main()
