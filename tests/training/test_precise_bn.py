"""Precise BN: the moving statistics become the average of the batch statistics under the final weights."""

import keras
import numpy as np
import pytest
from training_jobs import tiny

from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training import data as data_lib
from dirtypixels_tf.training import from_dict, run_experiment
from dirtypixels_tf.training.model_setup import model_input_names, precise_batch_norm

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


def _batch_norm_statistics(model):
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    return [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]


def test_the_saved_model_holds_the_statistics_reestimated_on_its_final_weights(tmp_path, fashion_mnist):
    """A run with precise_bn_batches saves, in model.keras, the batch-norm statistics that re-estimating them on its
    own final weights over the same training batches gives (not Keras' moving averages, which after 2 steps are
    still close to their initial 0 and 1)."""
    batches = 2
    config = from_dict(tiny(data={"epochs": 1, "steps_per_epoch": 2}, precise_bn_batches=batches))
    run_experiment(config, str(tmp_path), verbose=0, log=lambda line: None)
    saved = _batch_norm_statistics(keras.models.load_model(tmp_path / "model.keras"))
    model = keras.models.load_model(tmp_path / "model.keras")
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):  # back to the initial statistics
            layer.moving_mean.assign(np.zeros(layer.moving_mean.shape))
            layer.moving_variance.assign(np.ones(layer.moving_variance.shape))
    stream = data_lib.ExperimentData(config, model_input_names(model)).train_dataset(0, 0, 1, on_device=False)
    assert precise_batch_norm(model, stream.take(batches).map(lambda inputs, targets: inputs)) == batches
    recomputed = _batch_norm_statistics(model)
    assert len(saved) == len(recomputed) > 10
    for (mean, variance), (expected_mean, expected_variance) in zip(saved, recomputed):
        # the same weights, batches and kernels: equal up to float32 rounding of the batch reductions
        scale = np.sqrt(expected_variance.max()) + np.abs(expected_mean).max()
        np.testing.assert_allclose(mean, expected_mean, rtol=1e-4, atol=1e-4 * scale)
        np.testing.assert_allclose(variance, expected_variance, rtol=1e-4)
    assert max(np.abs(variance - 1.0).max() for _, variance in recomputed) > 0.1  # far from the initial statistics
