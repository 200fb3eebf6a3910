"""An exact stateless Poisson sampler built only from ops with GPU kernels.

TensorFlow's StatelessRandomPoisson has a CPU kernel only, so a simulation inside the training step would copy
every batch to the host for the draw. `stateless_poisson` draws from the same law with stateless uniforms, floor,
log, lgamma and a bounded while loop, all of which run on a GPU:
- means below INVERSION_BELOW (10): inversion by sequential search, X = the least k with U <= F(k), F the Poisson
  cdf, built term by term (p_k = p_{k-1} mu / k); one uniform per value;
- means at and above it: Hormann's transformed rejection with squeeze, PTRS (Hormann 1993, "The transformed
  rejection method for generating Poisson random variables"), two uniforms per round; a round accepts with
  probability 0.75 at mean 10, 0.85 at 100, 0.89 at 1e4 (measured with these formulas, 10^6 rounds each).
Both run in float64 (uniforms with 53-bit resolution, the cdf and the acceptance test without float32's round-off:
at mean 1e4 the log-probabilities are sums of terms near 1e5). Each loop stops once every value is decided and after
MAX_ROUNDS rounds at most; a value still undecided then (probability below 5e-30 per value for inversion, at mean 10,
below 0.25^64 for PTRS) keeps the search's last index or PTRS's last proposal (floored at 0).
Randomness: `seed` [2] is split into the inversion's and PTRS's streams; PTRS's round r uses fold_in(stream, r).
The same seed and means give the same values bit for bit on any device (elementwise ops, gathers and scatters;
which values a round draws for depends on the means of the whole tensor, so key a frame by its own seed).
"""

import os

import tensorflow as tf

INVERSION_BELOW = 10.0  # PTRS needs mean >= 10 (Hormann 1993); inversion's expected search length is mean + 1
MAX_ROUNDS = 64
# Which sampler `poisson_counts` uses: "portable" (stateless_poisson, every op with a GPU kernel), "stock"
# (TensorFlow's StatelessRandomPoisson, CPU kernel only) or "auto" (portable where TensorFlow sees a GPU, stock
# otherwise). Both draw from the Poisson law but give different values for one seed. The stock kernel is the faster on
# a CPU (the default job's tf.data stream of 32x32 frames: 11.6 ms against 47.6 ms a batch of 64) and keeps the
# frames, and the default job's figures, those of earlier versions; on GPUs the portable sampler keeps the
# simulation in the step on the device. The environment variable DIRTYPIXELS_POISSON_SAMPLER overrides "auto".
SAMPLERS = ("auto", "portable", "stock")


def _inversion(mean, seed):
    """Poisson(mean) by sequential search of the cdf, for float64 means in [0, INVERSION_BELOW) (0 gives 0)."""
    u = tf.random.stateless_uniform(tf.shape(mean), seed, dtype=tf.float64)
    p = tf.exp(-mean)
    above = u > p  # U > F(k): the count is past k; F grows with k, so count = the number of k with U > F(k)

    def body(k, p, cdf, count, above):
        p = p * mean / k
        cdf = cdf + p
        above = u > cdf
        return k + 1.0, p, cdf, count + tf.cast(above, tf.float64), above

    _, _, _, count, _ = tf.while_loop(
        lambda k, p, cdf, count, above: tf.reduce_any(above),
        body,
        (tf.constant(1.0, tf.float64), p, p, tf.cast(above, tf.float64), above),
        maximum_iterations=MAX_ROUNDS,
    )
    return count


def _ptrs(mean, seed):
    """Poisson(mean) by Hormann's PTRS, for float64 means [n] >= INVERSION_BELOW. Each round draws for the values
    still undecided only (gathered), so later rounds cost a small fraction of the first."""

    def body(round_index, count, undecided):
        mu = tf.gather(mean, undecided)
        b = 0.931 + 2.53 * tf.sqrt(mu)
        a = -0.059 + 0.02483 * b
        uniforms = tf.random.stateless_uniform(
            tf.stack([2, tf.size(undecided)]),
            tf.random.experimental.stateless_fold_in(seed, round_index),
            dtype=tf.float64,
        )
        u = uniforms[0] - 0.5
        v = uniforms[1]
        us = 0.5 - tf.abs(u)
        k = tf.floor((2.0 * a / us + b) * u + mu + 0.43)
        squeeze = (us >= 0.07) & (v <= 0.9277 - 3.6224 / (b - 2.0))
        rejected = (k < 0.0) | ((us < 0.013) & (v > us))
        log_density = -mu + k * tf.math.log(mu) - tf.math.lgamma(k + 1.0)
        log_inv_alpha = tf.math.log(1.1239 + 1.1328 / (b - 3.4))
        exact = tf.math.log(v) + log_inv_alpha - tf.math.log(a / (us * us) + b) <= log_density
        accept = squeeze | (~rejected & exact) | (round_index == MAX_ROUNDS - 1)  # the bound: see the docstring
        taken = tf.boolean_mask(undecided, accept)[:, tf.newaxis]
        count = tf.tensor_scatter_nd_update(count, taken, tf.maximum(tf.boolean_mask(k, accept), 0.0))
        return round_index + 1, count, tf.boolean_mask(undecided, ~accept)

    _, count, _ = tf.while_loop(
        lambda round_index, count, undecided: tf.size(undecided) > 0,
        body,
        (tf.constant(0, tf.int32), tf.zeros_like(mean), tf.range(tf.size(mean))),
        shape_invariants=(tf.TensorShape([]), mean.shape, tf.TensorShape([None])),
        maximum_iterations=MAX_ROUNDS,
    )
    return count


def stateless_poisson(mean, seed):
    """Poisson counts with the given means, as floats of the means' dtype and shape.

    mean: float tensor of any shape, >= 0 and finite (0 gives 0). seed: [2] integers (a stateless seed).
    """
    mean = tf.convert_to_tensor(mean)
    if not mean.dtype.is_floating:
        raise ValueError(f"mean must be a float tensor; received dtype {mean.dtype.name}")
    inversion_seed, ptrs_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    mean64 = tf.reshape(tf.cast(mean, tf.float64), [-1])
    small = mean64 < INVERSION_BELOW
    # Each method runs on its own means only (gathered), so a frame of small means pays nothing for PTRS.
    small_at, large_at = tf.where(small), tf.where(~small)
    size = tf.shape(mean64, out_type=tf.int64)
    counts = tf.scatter_nd(small_at, _inversion(tf.gather_nd(mean64, small_at), inversion_seed), size) + tf.scatter_nd(
        large_at, _ptrs(tf.gather_nd(mean64, large_at), ptrs_seed), size
    )
    return tf.cast(tf.reshape(counts, tf.shape(mean)), mean.dtype)


def sampler():
    """The sampler `poisson_counts` uses now: "portable" or "stock" (see SAMPLERS)."""
    choice = os.environ.get("DIRTYPIXELS_POISSON_SAMPLER", "auto")
    if choice not in SAMPLERS:
        raise ValueError(f"DIRTYPIXELS_POISSON_SAMPLER must be one of {', '.join(SAMPLERS)}; received {choice!r}")
    if choice == "auto":
        return "portable" if tf.config.list_physical_devices("GPU") else "stock"
    return choice


def poisson_counts(mean, seed):
    """Poisson counts with the given means (float, >= 0; shape and dtype kept), seed [2]: by `sampler()`."""
    mean = tf.convert_to_tensor(mean)
    if sampler() == "portable":
        return stateless_poisson(mean, seed)
    return tf.random.stateless_poisson(tf.shape(mean), seed, lam=mean, dtype=mean.dtype)
