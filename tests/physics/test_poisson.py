"""The GPU-ready Poisson sampler against the Poisson law (chi-square and moments), its seeding and its ops."""

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
from gpu_kernels import ops_without_gpu_kernel

from dirtypixels_tf.physics import noise, poisson

N = 100_000  # draws per mean
# A correct sampler fails a chi-square test at this p-value once in 10^4 seeds; the seeds below are fixed.
P_MIN = 1e-4
MEANS = [1e-3, 0.1, 1.0, 4.5, 9.99, 10.0, 37.0, 100.0, 1000.0, 1e4]


def _draw(mean, seed=(1, 2), n=N):
    return poisson.stateless_poisson(tf.fill([n], tf.constant(mean, tf.float32)), seed).numpy().astype(np.int64)


def _chi_square_pvalue(samples, mean):
    """Pearson's test of `samples` against Poisson(mean); consecutive values are grouped until each group expects at
    least 5 draws (so the tails join their neighbours)."""
    law = scipy.stats.poisson(mean)
    top = int(law.isf(1e-15)) + 1
    expected = samples.size * np.append(law.pmf(np.arange(top)), law.sf(top - 1))  # the last bin: >= top
    observed = np.bincount(np.minimum(samples, top), minlength=top + 1)
    groups_observed, groups_expected, o, e = [], [], 0, 0.0
    for count, expectation in zip(observed, expected):
        o, e = o + count, e + expectation
        if e >= 5:
            groups_observed.append(o)
            groups_expected.append(e)
            o, e = 0, 0.0
    groups_observed[-1] += o
    groups_expected[-1] += e
    return scipy.stats.chisquare(groups_observed, groups_expected).pvalue


@pytest.mark.parametrize("mean", MEANS)
def test_draws_follow_the_poisson_law(mean):
    samples = _draw(mean)
    assert samples.min() >= 0
    assert _chi_square_pvalue(samples, mean) > P_MIN
    # 5 standard errors: of the mean sqrt(mu / n); of the sample variance sqrt((mu4 - mu^2) / n), mu4 = mu (1 + 3 mu)
    assert abs(samples.mean() - mean) < 5 * np.sqrt(mean / N), samples.mean()
    assert abs(samples.var() - mean) < 5 * np.sqrt((mean + 2 * mean**2) / N), samples.var()


def test_rare_counts_at_tiny_means_have_the_right_frequency():
    mean, n = 1e-3, 1_000_000
    nonzero = int(np.count_nonzero(_draw(mean, n=n)))
    # binomial(n, 1 - exp(-mean)): 5 standard deviations
    p = -np.expm1(-mean)
    assert abs(nonzero - n * p) < 5 * np.sqrt(n * p * (1 - p)), nonzero


def test_the_chi_square_test_has_power():
    # a 1 % error in the mean at 1e4 (one standard deviation of a draw) is rejected
    assert _chi_square_pvalue(_draw(1.01e4), 1e4) < 1e-12
    assert _chi_square_pvalue(_draw(10.3), 10.0) < 1e-12


def test_zero_means_give_zero_and_shapes_and_dtypes_are_kept():
    means = tf.constant([[0.0, 3.0], [0.0, 300.0]], tf.float64)
    counts = poisson.stateless_poisson(means, [0, 1])
    assert counts.dtype == tf.float64 and counts.shape == (2, 2)
    np.testing.assert_array_equal(counts.numpy()[:, 0], 0.0)
    assert np.all(counts.numpy() == np.round(counts.numpy()))


def test_same_seed_same_bits_eager_and_in_a_graph():
    means = tf.constant(np.geomspace(1e-3, 1e4, 4096), tf.float32)
    seed = tf.constant([7, 8], tf.int64)  # (a seed's dtype is part of it: int32 [7, 8] is another seed)
    eager = poisson.stateless_poisson(means, seed).numpy()
    graph = tf.function(poisson.stateless_poisson)(means, seed).numpy()
    other = poisson.stateless_poisson(means, seed + [0, 1]).numpy()
    assert eager.tobytes() == graph.tobytes()
    assert np.mean(eager != other) > 0.5


def test_every_op_of_the_sampler_has_a_gpu_kernel():
    graph = (
        tf.function(poisson.stateless_poisson)
        .get_concrete_function(tf.TensorSpec([None, 8, 8, 1], tf.float32), tf.TensorSpec([2], tf.int64))
        .graph.as_graph_def()
    )
    assert ops_without_gpu_kernel(graph) == {}
    # and the op it replaces has none, which is the reason for it
    stock = (
        tf.function(lambda lam: tf.random.stateless_poisson(tf.shape(lam), [0, 1], lam))
        .get_concrete_function(tf.TensorSpec([4], tf.float32))
        .graph.as_graph_def()
    )
    assert set(ops_without_gpu_kernel(stock)) == {"StatelessRandomPoisson"}


def test_bad_mean_is_named():
    with pytest.raises(ValueError, match="mean must be a float tensor; received dtype int32"):
        poisson.stateless_poisson(tf.constant([1, 2]), [0, 0])


@pytest.mark.parametrize("choice", ["portable", "stock"])
def test_add_noise_draws_with_the_chosen_sampler_bit_for_bit(monkeypatch, choice):
    """add_noise is x -> alpha * Poisson(x / alpha) + sigma z below the exact-draw limit, its Poisson counts from
    poisson_counts' sampler: the portable one, or TensorFlow's StatelessRandomPoisson (the frames of earlier
    versions); "auto" is the portable sampler exactly where TensorFlow sees a GPU."""
    monkeypatch.setenv("DIRTYPIXELS_POISSON_SAMPLER", choice)
    images = tf.random.stateless_uniform([2, 16, 16, 1], [5, 6])
    alpha, sigma, seed = tf.constant([0.01, 0.002]), tf.constant([0.003, 0.001]), tf.constant([7, 8])
    noisy = noise.add_noise(images, alpha, sigma, seed, clip=False)
    poisson_seed, gauss_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    rate = images / alpha[:, None, None, None]
    if choice == "portable":
        counts = poisson.stateless_poisson(rate, poisson_seed)
    else:
        counts = tf.random.stateless_poisson(tf.shape(images), poisson_seed, lam=rate, dtype=tf.float32)
    z = tf.random.stateless_normal(tf.shape(images), gauss_seed)
    expected = counts * alpha[:, None, None, None] + sigma[:, None, None, None] * z
    np.testing.assert_array_equal(noisy.numpy(), expected.numpy())
    monkeypatch.setenv("DIRTYPIXELS_POISSON_SAMPLER", "auto")
    assert poisson.sampler() == ("portable" if tf.config.list_physical_devices("GPU") else "stock")
    monkeypatch.setenv("DIRTYPIXELS_POISSON_SAMPLER", "fast")
    with pytest.raises(ValueError, match="DIRTYPIXELS_POISSON_SAMPLER must be one of auto, portable, stock"):
        poisson.sampler()
