"""Fixtures of the training tests (their helpers are in training_jobs.py)."""

import pytest

from dirtypixels_tf.data import fashion_mnist as fashion_mnist_data


@pytest.fixture(scope="session")
def fashion_mnist():
    """The folder the training tests read Fashion-MNIST from: the real data set, or the stand-in that
    tests/conftest.py writes when it is not on this machine (never the network)."""
    return fashion_mnist_data.locate_fashion_mnist("train", download=False)
