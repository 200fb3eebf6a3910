"""Shared fixtures for the layer tests: the mixed-precision policy and random (non-initial) weights."""

import keras
import pytest
from tiny_models import randomize_weights


@pytest.fixture
def mixed_precision():
    """Run a test under the global mixed_float16 policy and restore the previous policy afterwards."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.fixture
def randomize():
    return randomize_weights
