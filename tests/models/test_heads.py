import keras
import numpy as np
import published_counts as published
import pytest

from dirtypixels_tf.models import heads
from dirtypixels_tf.models.counting import count_params

RNG = np.random.default_rng(0)


def small_head(**kwargs):
    """MobileNet-v1 at width 0.25 and 32x32: the cheapest head to build and run (about 0.2 M parameters)."""
    return heads.build_head("mobilenet_v1", **{"input_shape": (32, 32, 3), "num_classes": 5, "width": 0.25, **kwargs})


def test_mobilenet_v1_parameter_counts():
    # Howard et al. 2017 Table 1, counted layer by layer (published_counts.mobilenet_v1): 4.2 M
    model = heads.build_head("mobilenet_v1", input_shape=(128, 128, 3), num_classes=1000)
    assert model.name == "mobilenet_v1"
    trainable, statistics, _ = published.mobilenet_v1(128, 1000)
    assert count_params(model) == {"trainable": trainable, "non_trainable": statistics, "total": 4_253_864}


def test_background_class_gives_the_slim_count():
    # slim / release layout: 1001 logits, background at index 0; 1025 more weights than the Keras 1000-class head
    with_flag = heads.build_head("mobilenet_v1", num_classes=1000, include_background=True)
    explicit = heads.build_head("mobilenet_v1", num_classes=1001)
    assert count_params(with_flag)["trainable"] == count_params(explicit)["trainable"] == 4_233_001
    assert published.mobilenet_v1(128, 1001)[0] == 4_233_001
    assert with_flag.output.shape == (None, 1001)


def test_mobilenet_v2_14_parameter_count_is_the_total():
    # reference_facts' 6,156,712 is the total including batch-norm statistics; 6,108,776 of them are trainable
    model = heads.build_head("mobilenet_v2", input_shape=(128, 128, 3), num_classes=1000, width=1.4)
    assert model.name == "mobilenet_v2"
    trainable, statistics, _ = published.mobilenet_v2(128, 1000, 1.4)  # Sandler et al. 2018 Table 2 at width 1.4
    assert count_params(model) == {"trainable": trainable, "non_trainable": statistics, "total": 6_156_712}


def test_keras_application_by_name_outputs_logits():
    model = heads.build_head("EfficientNetB0", input_shape=(32, 32, 3), num_classes=10)
    assert model.name == "EfficientNetB0"
    logits = model(RNG.random((2, 32, 32, 3)).astype(np.float32) * 255, training=False).numpy()
    assert logits.shape == (2, 10)
    assert (logits < 0).any()  # probabilities would all be positive and sum to 1
    assert not np.allclose(logits.sum(-1), 1.0)


def test_forward_pass_shape():
    keras.utils.set_random_seed(7)  # the initial weights (unseeded, this failed once in a full run)
    model = small_head(num_classes=7)
    images = heads.preprocess_for_head("mobilenet_v1")(RNG.random((3, 32, 32, 3)).astype(np.float32))
    logits = model(images, training=False).numpy()
    assert logits.shape == (3, 7)
    assert np.isfinite(logits).all(), logits
    assert (logits < 0).any() and (logits > 0).any(), logits


@pytest.mark.parametrize(
    ("name", "size"), [("mobilenet_v1", 32), ("mobilenet_v2", 32), ("inception_v4", 75), ("EfficientNetB0", 32)]
)
def test_classifier_is_linear(name, size):
    # Guards against a softmax (or any nonlinearity) after the classifier: the losses take logits (from_logits=True)
    # and the release's heads output logits. Everything after the last global pooling must be one affine map of
    # the pooled features: g(a f1 + (1 - a) f2) = a g(f1) + (1 - a) g(f2), and g(2 f) - g(0) = 2 (g(f) - g(0)).
    model = heads.build_head(name, input_shape=(size, size, 3), num_classes=6)
    pooling = [i for i, layer in enumerate(model.layers) if isinstance(layer, keras.layers.GlobalAveragePooling2D)]
    tail = model.layers[pooling[-1] + 1 :]

    def classifier(features):
        for layer in tail:
            features = layer(features, training=False)
        return np.asarray(features, np.float64)

    images = RNG.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    pooled = keras.Model(model.inputs[0], model.layers[pooling[-1]].output)(images, training=False)
    np.testing.assert_allclose(classifier(pooled), model(images, training=False).numpy(), rtol=1e-5, atol=1e-6)
    f1, f2 = (RNG.normal(0, 3, pooled.shape).astype(np.float32) for _ in range(2))
    zero = classifier(np.zeros_like(f1))
    g1, g2 = classifier(f1), classifier(f2)
    assert np.abs(g1 - zero).max() > 0.1  # the features do reach the logits
    np.testing.assert_allclose(classifier(0.3 * f1 + 0.7 * f2), 0.3 * g1 + 0.7 * g2, atol=1e-4)
    np.testing.assert_allclose(classifier(2 * f1) - zero, 2 * (g1 - zero), atol=1e-4)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "inception_v4", "MobileNet"])
def test_preprocessing_maps_unit_range_to_minus_one_one(name):
    preprocess = heads.preprocess_for_head(name)
    images = np.stack([np.zeros((2, 2, 3)), np.full((2, 2, 3), 0.5), np.ones((2, 2, 3))]).astype(np.float32)
    out = np.asarray(preprocess(images))
    np.testing.assert_allclose(out[:, 0, 0], [[-1] * 3, [0] * 3, [1] * 3], atol=1e-6)


def test_caffe_preprocessing_is_bgr_minus_the_imagenet_mean():
    images = np.ones((1, 2, 2, 3), np.float32)
    out = np.asarray(heads.preprocess_for_head("VGG16")(images))
    np.testing.assert_allclose(out[0, 0, 0], 255.0 - np.array([103.939, 116.779, 123.68]), rtol=1e-6)  # B, G, R
    np.testing.assert_array_equal(images, 1.0)  # the input is not modified in place


def test_preprocessing_works_on_symbolic_inputs():
    inputs = keras.Input((4, 4, 3))
    outputs = heads.preprocess_for_head("ResNet50")(inputs)
    model = keras.Model(inputs, outputs)
    out = model(np.zeros((1, 4, 4, 3), np.float32)).numpy()
    np.testing.assert_allclose(out[0, 0, 0], -np.array([103.939, 116.779, 123.68]), rtol=1e-6)


def test_weights_round_trip_through_a_local_file(tmp_path):
    path = tmp_path / "head.weights.h5"
    original = small_head()
    # A freshly initialized MobileNet outputs logits of about 1e-17 (the signal fades through 27 layers), so give
    # every weight a random value of order one first: the comparison below is then between non-trivial logits.
    for weight in original.weights:
        value = RNG.uniform(0.5, 1.5, weight.shape)
        sign = 1.0 if "variance" in weight.path else RNG.choice([-1.0, 1.0], weight.shape)
        weight.assign(value * sign)
    original.save_weights(path)
    loaded = small_head(weights=path)
    fresh = small_head()
    for saved, restored in zip(original.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())
    images = RNG.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    expected = original(images, training=False).numpy()
    assert np.abs(expected).max() > 1.0
    np.testing.assert_array_equal(loaded(images, training=False).numpy(), expected)
    assert not np.allclose(fresh(images, training=False).numpy(), expected)  # loading did change the weights


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras warns before it raises
def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "head.weights.h5"
    small_head(num_classes=5).save_weights(path)
    with pytest.raises(ValueError, match="cannot be loaded into head 'mobilenet_v1'.*6 classes"):
        small_head(num_classes=6, weights=str(path))


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown head 'resnet'") as info:
        heads.build_head("resnet")
    for valid in ("mobilenet_v1", "mobilenet_v2", "inception_v4", "ResNet50", "EfficientNetB0", "VGG16"):
        assert valid in str(info.value)
    with pytest.raises(ValueError, match="unknown head"):
        heads.preprocess_for_head("resnet")
    assert heads.head_names()[:3] == ["mobilenet_v1", "mobilenet_v2", "inception_v4"]
    assert "ResNet50" in heads.keras_application_names()


def test_imagenet_weights_are_refused_with_the_local_file_advice():
    with pytest.raises(ValueError, match="internet.*local path"):
        heads.build_head("mobilenet_v1", weights="imagenet")


def test_missing_weights_file(tmp_path):
    missing = tmp_path / "nothing.weights.h5"
    with pytest.raises(ValueError, match="weights file not found.*nothing.weights.h5"):
        heads.build_head("mobilenet_v1", weights=missing)


def test_wrong_input_size_names_the_expected_size():
    with pytest.raises(ValueError, match="mobilenet_v1.*at least 32x32"):
        heads.build_head("mobilenet_v1", input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match="at least 75x75.*reference size 299x299"):
        heads.build_head("inception_v4", input_shape=(74, 74, 3))
    model = small_head()
    with pytest.raises(ValueError, match=r"expected shape=\(None, 32, 32, 3\)"):
        model(np.zeros((1, 64, 64, 3), np.float32))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 0}, "num_classes must be a positive integer; received 0"),
        ({"num_classes": 10.0}, "num_classes must be a positive integer; received 10.0"),
        ({"width": -1.0}, "width must be a positive number; received -1.0"),
        ({"input_shape": (32, 32)}, r"input_shape must be \(height, width, channels\); received \(32, 32\)"),
        ({"include_background": 1}, "include_background must be True or False; received 1"),
        ({"aux_logits": True}, "aux_logits=True is only available for 'inception_v4'"),
        ({"weights": 3}, "weights must be None or the path of a local weights file; received 3"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        heads.build_head("mobilenet_v1", **kwargs)


def test_width_only_for_heads_that_have_one():
    with pytest.raises(ValueError, match="width must be 1.0 for head 'ResNet50'.*received 0.5"):
        heads.build_head("ResNet50", width=0.5)
