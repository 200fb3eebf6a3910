import numpy as np
import published_counts as published
import pytest

from dirtypixels_tf.models import heads
from dirtypixels_tf.models.counting import count_params
from dirtypixels_tf.models.inception_v4 import MIN_SIZE, MIN_SIZE_AUX, REFERENCE_SIZE, feature_sizes, inception_v4


@pytest.fixture(scope="module")
def model():
    """Slim layout at 299 with 1001 classes, no auxiliary head (built once: about 2 s)."""
    return inception_v4((299, 299, 3), num_classes=1001)


@pytest.fixture(scope="module")
def model_aux():
    """The same through build_head: 1000 classes plus the background logit, with the auxiliary head."""
    return heads.build_head(
        "inception_v4", input_shape=(299, 299, 3), num_classes=1000, include_background=True, aux_logits=True
    )


def test_parameter_count_without_auxiliary_head(model):
    # Szegedy et al. 2016, Figs. 3-9, counted block by block in published_counts.inception_v4
    assert count_params(model)["trainable"] == published.inception_v4(1001) == 42_649_769


def test_parameter_count_with_auxiliary_head(model_aux):
    assert model_aux.name == "inception_v4"
    assert count_params(model_aux)["trainable"] == published.inception_v4(1001, aux_logits=True) == 46_009_106
    # the auxiliary convolution covers the whole 5x5 map left by the 5x5/3 pooling of the 17x17 Mixed_6h
    assert model_aux.get_layer("AuxLogits.Conv2d_2a").kernel.shape == (5, 5, 128, 768)


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        ("Conv2d_2b_3x3.Relu", (147, 147, 64)),
        ("Mixed_3a", (73, 73, 160)),
        ("Mixed_4a", (71, 71, 192)),
        ("Mixed_5a", (35, 35, 384)),
        ("Mixed_5e", (35, 35, 384)),
        ("Mixed_6a", (17, 17, 1024)),
        ("Mixed_6h", (17, 17, 1024)),
        ("Mixed_7a", (8, 8, 1536)),
        ("Mixed_7d", (8, 8, 1536)),
        ("Logits.Logits", (1001,)),
    ],
)
def test_feature_map_sizes_of_the_paper(model, layer, shape):
    assert tuple(model.get_layer(layer).output.shape[1:]) == shape


def test_block_counts_and_slim_names(model):
    names = {layer.name for layer in model.layers}
    blocks = sorted(n for n in names if n.startswith("Mixed_") and "." not in n)
    assert blocks == ["Mixed_3a", "Mixed_4a", "Mixed_5a"] + [f"Mixed_5{b}" for b in "bcde"] + ["Mixed_6a"] + [
        f"Mixed_6{b}" for b in "bcdefgh"
    ] + ["Mixed_7a"] + [f"Mixed_7{b}" for b in "bcd"]
    assert "Mixed_6b.Branch_2.Conv2d_0e_1x7" in names
    assert model.get_layer("Mixed_6b.Branch_2.Conv2d_0e_1x7").kernel.shape == (1, 7, 224, 256)
    assert not any(n.startswith("AuxLogits") for n in names)


def test_convolutions_have_no_bias_and_batch_norm_only_beta(model):
    conv = model.get_layer("Mixed_7b.Branch_1.Conv2d_0b_1x3")
    assert [w.name for w in conv.weights] == ["kernel"]
    norm = model.get_layer("Mixed_7b.Branch_1.Conv2d_0b_1x3.BatchNorm")
    assert [w.name for w in norm.trainable_weights] == ["beta"]
    assert norm.momentum == pytest.approx(0.9997) and norm.epsilon == pytest.approx(0.001)
    assert model.get_layer("Logits.Dropout_1b").rate == pytest.approx(0.2)  # slim keep probability 0.8


def test_forward_pass_at_299(model, model_aux):
    images = np.random.default_rng(0).uniform(-1, 1, (2, 299, 299, 3)).astype(np.float32)
    logits = model(images, training=False).numpy()
    assert logits.shape == (2, 1001) and np.isfinite(logits).all()
    np.testing.assert_allclose(model(images, training=False).numpy(), logits, rtol=1e-5, atol=1e-5)
    outputs = model_aux(images[:1], training=False)
    assert outputs["logits"].shape == (1, 1001) and outputs["aux_logits"].shape == (1, 1001)


def test_minimum_size_builds_and_runs():
    assert feature_sizes(REFERENCE_SIZE) == (35, 17, 8)
    assert feature_sizes(MIN_SIZE)[-1] == 1 and feature_sizes(MIN_SIZE - 1)[-1] == 0
    assert feature_sizes(MIN_SIZE_AUX)[1] == 5 and feature_sizes(MIN_SIZE_AUX - 1)[1] == 4
    small = inception_v4((MIN_SIZE, MIN_SIZE, 3), num_classes=3)
    assert small(np.zeros((1, MIN_SIZE, MIN_SIZE, 3), np.float32), training=False).shape == (1, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_shape": (74, 299, 3)}, "at least 75x75 pixels"),
        ({"input_shape": (106, 106, 3), "aux_logits": True}, "at least 107x107 pixels with aux_logits=True"),
        ({"input_shape": (None, None, 3), "aux_logits": True}, "static height and width"),
        ({"input_shape": (299, 299)}, r"input_shape must be \(height, width, channels\)"),
        ({"num_classes": -1}, "num_classes must be a positive integer; received -1"),
        ({"dropout_keep_prob": 0.0}, r"dropout_keep_prob must be in \(0, 1\]; received 0.0"),
        ({"aux_logits": "yes"}, "aux_logits must be True or False; received 'yes'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        inception_v4(**kwargs)
