"""Per-colour noise parameters [B, 3] through the ISP models, the joint model, .keras files and the SavedModel
signatures; [B] stays the default. The release's is_real_data=True front is transcribed in
tests/layers/test_anscombe_per_channel.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layers.test_anscombe_per_channel import release_normalized_gat
from tiny_models import CLASS_NAMES, SIZE, build_tiny_model

from dirtypixels_tf.export import export_savedmodel, make_example, read_export_metadata
from dirtypixels_tf.export.tflite import simulated_inputs
from dirtypixels_tf.models.components import IspModel, takes_per_channel_noise, with_per_channel_noise
from dirtypixels_tf.models.isp import build_isp
from dirtypixels_tf.physics import mosaic, noise

pytestmark = pytest.mark.usefixtures("exact_graphs")  # eager and SavedModel graphs compared bit for bit
GAINS = np.array([1.9, 1.0, 2.6], np.float32)  # a white balance: R and B amplified, so their noise too


@pytest.fixture(scope="module")
def models():
    """(the tiny joint model with [B] noise, the same weights taking [B, 3])."""
    model = build_tiny_model(seed=1)
    return model, with_per_channel_noise(model)


@pytest.fixture(scope="module")
def frames():
    features = simulated_inputs((SIZE, SIZE), 4, profile="2to20lux", seed=5)
    per_colour = {
        "raw": features["raw"],
        "alpha": features["alpha"][:, None] * GAINS,
        "sigma": features["sigma"][:, None] * GAINS,
    }
    return features, per_colour


def test_the_rebuilt_model_takes_per_colour_noise_and_agrees_where_the_colours_agree(models, frames):
    per_image, per_colour = models
    assert not takes_per_channel_noise(per_image) and takes_per_channel_noise(per_colour)
    assert per_colour.input["alpha"].shape == (None, 3)
    features = frames[0]
    tiled = {
        **features,
        "alpha": np.repeat(features["alpha"][:, None], 3, 1),
        "sigma": np.repeat(features["sigma"][:, None], 3, 1),
    }
    np.testing.assert_array_equal(per_colour(tiled)["logits"].numpy(), per_image(features)["logits"].numpy())
    assert with_per_channel_noise(per_colour, False).input["alpha"].shape == (None,)


def test_the_anscombe_network_starts_from_the_release_is_real_data_transform(frames):
    isp = build_isp("anscombe")
    features = frames[1]
    x0, _, noise_std, _ = isp.transform(tf.constant(features["raw"]), features["alpha"], features["sigma"])
    masked = mosaic.mosaic_adjoint(tf.constant(features["raw"], tf.float64)).numpy()
    expected, scale, _ = release_normalized_gat(
        masked, features["sigma"].astype(np.float64), features["alpha"].astype(np.float64)
    )
    np.testing.assert_allclose(x0.numpy(), expected, atol=1e-5)  # float32 GAT of values up to ~100
    np.testing.assert_allclose(noise_std.numpy(), scale, rtol=1e-5)


def test_the_ablation_without_anscombe_feeds_the_mean_sigma_to_its_noise_channel(frames):
    isp = build_isp("anscombe", anscombe=False)
    features = frames[1]
    _, _, noise_std, _ = isp.transform(tf.constant(features["raw"]), features["alpha"], features["sigma"])
    np.testing.assert_allclose(noise_std.numpy(), features["sigma"].mean(axis=1), rtol=1e-6)


def test_per_colour_models_round_trip_through_keras_files(models, frames, tmp_path):
    per_colour = models[1]
    path = tmp_path / "per_colour.keras"
    per_colour.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.per_channel_noise is True
    np.testing.assert_array_equal(loaded(frames[1])["logits"].numpy(), per_colour(frames[1])["logits"].numpy())


@pytest.mark.parametrize("isp_name", ["chen_unet", "shrinkage_fields"])
def test_other_anscombe_isps_take_per_colour_noise(isp_name):
    size = 32
    model = IspModel(
        build_isp(isp_name, **({"anscombe": True} if isp_name == "chen_unet" else {})),
        (size, size),
        per_channel_noise=True,
    )
    features = simulated_inputs((size, size), 2, seed=2)
    out = model(
        {
            "raw": features["raw"],
            "alpha": features["alpha"][:, None] * GAINS,
            "sigma": features["sigma"][:, None] * GAINS,
        }
    )
    assert out["image"].shape == (2, size, size, 3) and np.all(np.isfinite(out["image"].numpy()))


@pytest.mark.slow  # one export: about a minute on a shared CPU
def test_a_per_colour_savedmodel_serves_every_signature_like_keras(models, frames, tmp_path):
    per_colour = models[1]
    version = export_savedmodel(per_colour, tmp_path / "m", class_names=CLASS_NAMES, fold_batch_norm=None)
    assert read_export_metadata(version)["per_channel_noise"] is True
    signatures = tf.saved_model.load(version).signatures
    features = frames[1]
    expected = per_colour(features)["logits"].numpy()
    assert signatures["serving_default"].structured_input_signature[1]["alpha"].shape.as_list() == [None, 3]
    np.testing.assert_allclose(signatures["serving_default"](**features)["logits"], expected, atol=1e-5)
    np.testing.assert_allclose(signatures["isp"](**features)["image"], per_colour(features)["image"], atol=1e-5)
    examples = [make_example(features["raw"][i], features["alpha"][i], features["sigma"][i]) for i in range(4)]
    scores = signatures["classify"](inputs=tf.constant(examples))["scores"].numpy()
    np.testing.assert_allclose(scores, tf.nn.softmax(expected).numpy(), atol=1e-5)
    codes = np.full([1, SIZE, SIZE, 1], 300, np.uint16)
    uint16 = signatures["raw_uint16"](raw=codes, black_level=[64.0], white_level=[1023.0], iso=[800.0])
    alpha, sigma = noise.get_noise_preset("Nexus_6P_rear").at_iso(800.0)
    same = per_colour(
        {
            "raw": np.float32((300 - 64) / 959.0) + np.zeros([1, SIZE, SIZE, 1], np.float32),
            "alpha": np.float32([[alpha] * 3]),
            "sigma": np.float32([[sigma] * 3]),
        }
    )
    np.testing.assert_allclose(uint16["logits"], same["logits"], atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="alpha must be finite, > 0"):
        signatures["serving_default"](raw=features["raw"], alpha=-features["alpha"], sigma=features["sigma"])
