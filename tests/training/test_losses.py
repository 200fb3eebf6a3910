"""Losses and targets against closed forms."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dirtypixels_tf.physics import optics
from dirtypixels_tf.physics.sensor import SensorModel
from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training import losses


def test_label_smoothing_cross_entropy_closed_form():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]], np.float32)
    labels = np.array([0, 2])
    eps = 0.1
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    target = np.full((2, 3), eps / 3) + (1 - eps) * np.eye(3)[labels]
    expected = -(target * log_p).sum(-1).mean()
    loss = losses.SparseCrossEntropy(label_smoothing=eps)(labels, logits)
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(losses.SparseCrossEntropy()(labels, logits)) == pytest.approx(float(plain), rel=1e-6)


@pytest.mark.parametrize("kind", ["classification", "l1", "mse", "psnr", "liu", "nidf"])
def test_losses_built_for_float64_compute_in_float64(kind):
    """A double-precision run (mixed_precision "float64") must not round its loss to float32: Keras builds losses
    in float32 unless told, which would make a 1e-9 change of the outputs vanish from the loss. Built with
    dtype="float64" every loss (through Keras' call and through per_example_loss, the custom loops' path) sees it."""
    config = type("Loss", (), {"kind": kind, "weight": 0.5, "label_smoothing": 0.0, "image_loss": None})()
    built, weights = losses.build_losses(config, dtype="float64")
    rng = np.random.default_rng(0)
    image = rng.uniform(0.2, 0.8, (2, 4, 4, 3))
    targets = {"logits": np.array([0, 2]), "image": image, "denoised": image, "deblurred": image}
    outputs = {"logits": rng.standard_normal((2, 3)), "image": image + 0.1, "denoised": image + 0.1}
    outputs["deblurred"] = outputs["image"]
    nudged = {name: value + 1e-9 for name, value in outputs.items()}
    nudged["logits"] = outputs["logits"] + [1e-9, 0.0, 0.0]  # softmax ignores a shift of every logit
    for name, loss in built.items():
        assert loss.dtype == "float64", (name, loss.dtype)
        value, moved = float(loss(targets[name], outputs[name])), float(loss(targets[name], nudged[name]))
        assert value != moved, name
    per_example = losses.per_example_loss(built, weights, targets, outputs)
    assert per_example.dtype == tf.float64
    assert not np.array_equal(per_example.numpy(), losses.per_example_loss(built, weights, targets, nudged).numpy())
    assert all(loss.dtype == "float32" for loss in losses.build_losses(config)[0].values())


def test_psnr_closed_form():
    clean = np.full((2, 4, 4, 3), 0.5, np.float32)
    noisy = clean + np.array([0.1, 0.01], np.float32)[:, None, None, None]
    np.testing.assert_allclose(losses.psnr_per_image(clean, noisy).numpy(), [20.0, 40.0], rtol=1e-4)
    metric = losses.PSNR()
    metric.update_state(clean, noisy)
    assert float(metric.result()) == pytest.approx(30.0, rel=1e-4)
    assert float(losses.NegativePSNR()(clean, noisy)) == pytest.approx(-30.0, rel=1e-4)


def test_weighted_objectives():
    liu, weights = losses.build_losses(config_lib.LossConfig(kind="liu", weight=0.25))
    assert set(liu) == {"image", "logits"} and weights == {"image": 1.0, "logits": 0.25}
    targets = {"image": tf.zeros([2, 2, 2, 3]), "logits": tf.constant([0, 1])}
    outputs = {"image": tf.fill([2, 2, 2, 3], 0.5), "logits": tf.constant([[0.0, 0.0], [0.0, 0.0]])}
    cross_entropy = np.log(2.0)
    np.testing.assert_allclose(
        losses.per_example_loss(liu, weights, targets, outputs).numpy(), [0.25 + 0.25 * cross_entropy] * 2, rtol=1e-6
    )
    liu_l1, weights = losses.build_losses(config_lib.LossConfig(kind="liu", weight=0.25, image_loss="l1"))
    np.testing.assert_allclose(
        losses.per_example_loss(liu_l1, weights, targets, outputs).numpy(), [0.5 + 0.25 * cross_entropy] * 2, rtol=1e-6
    )
    nidf, weights = losses.build_losses(type("L", (), {"kind": "nidf", "weight": 0.5, "label_smoothing": 0.0})())
    assert set(nidf) == {"denoised", "image"} and weights == {"denoised": 1.0, "image": 0.5}
    targets = {"denoised": tf.zeros([2, 2, 2, 3]), "image": tf.zeros([2, 2, 2, 3])}
    outputs = {"denoised": tf.ones([2, 2, 2, 3]), "image": tf.fill([2, 2, 2, 3], 2.0)}
    np.testing.assert_allclose(losses.per_example_loss(nidf, weights, targets, outputs).numpy(), [1 + 0.5 * 4] * 2)


def test_nidf_targets_are_the_blurred_clean_image_and_the_sharp_image():
    psf = optics.motion_psf(3, seed=0)
    sensor = SensorModel(preset="GAUSS", light_levels=(10.0, 10.0), psf=psf)
    clean = tf.random.stateless_uniform([2, 16, 16, 3], seed=[1, 2])
    features = {"raw": tf.zeros([2, 16, 16, 1]), "alpha": tf.zeros([2]), "sigma": tf.zeros([2]), "clean": clean}
    inputs, targets = losses.make_targets("nidf_pretrain", ("raw", "alpha", "sigma", "blurred"), sensor)(
        features, tf.zeros([2], tf.int64)
    )
    blurred = optics.blur(clean, psf)
    np.testing.assert_allclose(targets["denoised"].numpy(), blurred.numpy(), atol=1e-6)
    np.testing.assert_allclose(inputs["blurred"].numpy(), blurred.numpy(), atol=1e-6)
    np.testing.assert_array_equal(targets["deblurred"].numpy(), clean.numpy())
    assert set(inputs) == {"raw", "alpha", "sigma", "blurred"}
