"""The learning-rate schedule, TF1's RMSProp initialisation and slim's weight decay, against closed forms."""

import os

import keras
import numpy as np
import pytest

from dirtypixels_tf.models import heads
from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training import optimizers

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "dirtypixels_tf", "configs")
RELEASE = os.path.join(CONFIGS, "release_joint_3lux.yaml")


def release_config(**data):
    overrides = [f"data.{k}={v}" for k, v in data.items()]
    return config_lib.load_config(RELEASE, overrides)


@pytest.mark.parametrize("batch", [256, 64])
def test_staircase_schedule_at_epoch_boundaries(batch):
    """lr_e = 4.5e-4 * 0.94 ** floor(e / 2) at the first step of epoch e, for the steps a global batch gives."""
    config = release_config(batch_size=batch)
    steps = config_lib.derive_steps(config, 1_281_167)
    per_epoch = 1_281_167 // batch
    assert steps.steps_per_epoch == per_epoch and steps.decay_steps == 2 * per_epoch
    schedule = optimizers.build_schedule(config.schedule, config.optimizer.learning_rate, steps)
    for epoch in range(7):
        expected = 4.5e-4 * 0.94 ** (epoch // 2)
        assert optimizers.learning_rate_at(schedule, epoch * per_epoch) == pytest.approx(expected, rel=1e-6)
        assert optimizers.learning_rate_at(schedule, (epoch + 1) * per_epoch - 1) == pytest.approx(expected, rel=1e-6)


def test_smooth_exponential_and_constant_schedules():
    config = release_config()
    smooth = config_lib.load_config(RELEASE, ["schedule.staircase=false"])
    steps = config_lib.derive_steps(config, 1_281_167)
    schedule = optimizers.build_schedule(smooth.schedule, 4.5e-4, steps)
    assert optimizers.learning_rate_at(schedule, steps.steps_per_epoch) == pytest.approx(4.5e-4 * 0.94**0.5, rel=1e-6)
    constant = config_lib.load_config(
        RELEASE,
        ["schedule.kind=constant", "schedule.decay_rate=null", "schedule.decay_epochs=null", "schedule.staircase=null"],
    )
    assert optimizers.build_schedule(constant.schedule, 0.1, steps) == 0.1


def one_rmsprop_step(optimizer, w0, g):
    variable = keras.Variable(np.array(w0, np.float32))
    optimizer.apply_gradients([(keras.ops.convert_to_tensor(np.array(g, np.float32)), variable)])
    return np.asarray(variable)


def test_tf1_rmsprop_first_step_matches_the_closed_form():
    """TF1: ms = rho * 1 + (1 - rho) g^2; mom = lr g / sqrt(ms + eps); w -= mom. Keras starts ms at 0 instead."""
    lr, rho, momentum, eps = 0.1, 0.9, 0.9, 1.0
    w0, g = np.array([1.0, -2.0, 0.5]), np.array([0.3, -4.0, 2.0])
    tf1 = optimizers.Tf1RMSprop(learning_rate=lr, rho=rho, momentum=momentum, epsilon=eps)
    expected_tf1 = w0 - lr * g / np.sqrt(rho * 1.0 + (1 - rho) * g**2 + eps)
    np.testing.assert_allclose(one_rmsprop_step(tf1, w0, g), expected_tf1, rtol=1e-6)
    keras_default = keras.optimizers.RMSprop(learning_rate=lr, rho=rho, momentum=momentum, epsilon=eps)
    expected_keras = w0 - lr * g / np.sqrt((1 - rho) * g**2 + eps)
    np.testing.assert_allclose(one_rmsprop_step(keras_default, w0, g), expected_keras, rtol=1e-6)
    assert np.all(np.abs(expected_tf1 - expected_keras) > 1e-3)


def test_tf1_rmsprop_second_step_uses_momentum():
    lr, rho, momentum, eps = 0.1, 0.9, 0.9, 1.0
    w0, g = np.array([1.0]), np.array([2.0])
    variable = keras.Variable(np.array(w0, np.float32))
    opt = optimizers.Tf1RMSprop(learning_rate=lr, rho=rho, momentum=momentum, epsilon=eps)
    for _ in range(2):
        opt.apply_gradients([(keras.ops.convert_to_tensor(np.array(g, np.float32)), variable)])
    ms1 = rho + (1 - rho) * g**2
    mom1 = lr * g / np.sqrt(ms1 + eps)
    ms2 = rho * ms1 + (1 - rho) * g**2
    mom2 = momentum * mom1 + lr * g / np.sqrt(ms2 + eps)
    np.testing.assert_allclose(np.asarray(variable), w0 - mom1 - mom2, rtol=1e-6)


def test_built_optimizer_follows_the_config():
    config = release_config()
    steps = config_lib.derive_steps(config, 1_281_167)
    optimizer = optimizers.build_optimizer(config.optimizer, config.schedule, steps)
    assert isinstance(optimizer, optimizers.Tf1RMSprop)
    assert (optimizer.rho, optimizer.momentum, optimizer.epsilon) == (0.9, 0.9, 1.0)
    ema = config_lib.load_config(
        os.path.join(CONFIGS, "default.yaml"), ["optimizer.ema=true", "optimizer.ema_momentum=0.99"]
    )
    adam = optimizers.build_optimizer(ema.optimizer, ema.schedule, config_lib.derive_steps(ema, 1000))
    assert isinstance(adam, keras.optimizers.Adam) and adam.use_ema and adam.ema_momentum == 0.99


def test_weight_decay_is_slims_l2_loss_on_conv_and_dense_kernels_only():
    """loss gains 0.5 * wd * sum(w^2) over conv and dense kernels; depthwise kernels, biases and BN are exempt."""
    head = heads.build_head("mobilenet_v1", (32, 32, 3), 10, width=0.25)
    wd = 4e-5
    count = optimizers.apply_weight_decay(head, wd)
    kernels = optimizers.decayed_kernels(head)
    assert count == len(kernels) == 15  # the first conv, 13 pointwise convs, the classifier (a 1x1 conv)
    assert all("depthwise" not in k.path for k in kernels)
    expected = sum(0.5 * wd * float(np.sum(np.square(k.numpy()))) for k in kernels)
    assert float(sum(head.losses)) == pytest.approx(expected, rel=1e-5)
    optimizers.remove_weight_decay(head)
    assert head.losses == []
