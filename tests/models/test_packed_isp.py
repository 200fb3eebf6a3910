"""The packed-Bayer Anscombe network (domain="packed", preset joint_packed_mobilenet_v1_128)."""

import numpy as np
import pytest
import tensorflow as tf
from tiny_models import randomize_weights

from dirtypixels_tf.layers.anscombe import append_noise_channel
from dirtypixels_tf.models import presets
from dirtypixels_tf.models.isp import AnscombeNetwork
from dirtypixels_tf.models.loading import load_model
from dirtypixels_tf.physics import mosaic

RNG = np.random.default_rng(0)


def _inputs(batch=2, size=16):
    raw = tf.constant(RNG.uniform(0.0, 1.0, (batch, size, size, 1)).astype(np.float32))
    return raw, tf.constant([0.01, 0.05][:batch]), tf.constant([0.02, 0.01][:batch])


def _randomized(isp, raw, alpha, sigma):
    isp(raw, alpha, sigma)
    randomize_weights(isp, seed=1, scale=0.1)
    return isp


def test_packed_preset_records_its_exact_counts():
    counts = presets.count_preset("joint_packed_mobilenet_v1_128")
    assert counts["isp"]["trainable"] == 48_966  # prior 48,964 (by hand: 3,564 + 10,952 + 34,448) + lambda + beta
    assert counts["isp"]["multiply_adds"] == 34_373_632
    assert counts["total"]["trainable"] == presets.get_preset("joint_packed_mobilenet_v1_128").expected_params
    assert counts["total"]["multiply_adds"] == presets.get_preset("joint_packed_mobilenet_v1_128").expected_macs
    assert counts["total"]["multiply_adds"] / counts["head"]["multiply_adds"] < 1.2


def test_packed_network_runs_its_prior_on_the_packed_blocks_then_projects_on_the_mosaic():
    raw, alpha, sigma = _inputs()
    isp = _randomized(AnscombeNetwork(domain="packed", first_conv="plain", prior_width=4), raw, alpha, sigma)
    x, y, k, transformed = isp.transform(raw, alpha, sigma)
    prior_input = append_noise_channel(tf.nn.space_to_depth(x, 2), k)
    assert prior_input.shape == (2, 8, 8, 13)
    v = tf.nn.depth_to_space(isp.priors[0](prior_input), 2)
    gamma = isp.projections[0].gamma_value(isp.lam)
    masks = mosaic.bayer_masks(16, 16, isp.pattern, tf.float32)
    projected = (mosaic.mosaic_adjoint(y, isp.pattern) + gamma * v) / (masks + gamma)
    expected = isp.inverse(projected, alpha, sigma, transformed["scale"], transformed["offset"])
    np.testing.assert_allclose(isp(raw, alpha, sigma)["image"].numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_packed_network_round_trips_through_keras_files(tmp_path):
    model = presets.build_preset("joint_packed_mobilenet_v1_128", num_classes=5)
    raw = tf.constant(RNG.uniform(0, 1, (1, 128, 128, 1)).astype(np.float32))
    inputs = {"raw": raw, "alpha": tf.constant([0.01]), "sigma": tf.constant([0.02])}
    path = str(tmp_path / "packed.keras")
    model.save(path)
    loaded = load_model(path)
    assert loaded.get_layer("isp").domain == "packed"
    for key in ("image", "logits"):
        np.testing.assert_allclose(loaded(inputs)[key].numpy(), model(inputs)[key].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "settings, message",
    [({"domain": "half"}, "domain must be one of"), ({"domain": "packed", "prior_width": 1}, "prior_width must be")],
)
def test_bad_packed_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        AnscombeNetwork(**settings)
