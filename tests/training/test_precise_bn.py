"""Precise BN: the moving statistics become the average of the batch statistics under the final weights."""

import keras
import numpy as np
import pytest

from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training.models import precise_batch_norm

DEFAULT_CONFIG = config_lib.resolve_config("default")


def test_moving_statistics_become_the_average_of_the_batch_statistics():
    inputs = keras.Input((3,))
    norm = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inputs, norm(keras.layers.Dense(3, use_bias=False, kernel_initializer="identity")(inputs)))
    rng = np.random.default_rng(0)
    batches = [rng.normal(k, 1 + k, (16, 3)).astype(np.float32) for k in range(4)]
    assert precise_batch_norm(model, batches) == 4
    np.testing.assert_allclose(norm.moving_mean.numpy(), np.mean([b.mean(0) for b in batches], 0), rtol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), np.mean([b.var(0) for b in batches], 0), rtol=1e-4)
    assert norm.momentum == 0.99  # restored


def test_precise_bn_batches_is_validated():
    with pytest.raises(config_lib.ConfigError, match="precise_bn_batches: must be >= 0, received -1"):
        config_lib.validate(config_lib.load_config(DEFAULT_CONFIG, ["precise_bn_batches=-1"]))
    assert config_lib.load_config(DEFAULT_CONFIG, ["precise_bn_batches=50"]).precise_bn_batches == 50


def test_the_default_job_and_its_comparison_reestimate_their_statistics():
    """The default job's budget is too short for Keras' moving averages (see configs/default.yaml); its stage 1,
    stage 2 and bilinear comparison all re-estimate the statistics over the same number of batches."""
    from dirtypixels_tf.training.fit import comparison_config

    config = config_lib.load_config(DEFAULT_CONFIG)
    assert config.precise_bn_batches == 100
    assert comparison_config(config, "bilinear").precise_bn_batches == 100
    assert config_lib.pretrain_config(config).precise_bn_batches == 100
