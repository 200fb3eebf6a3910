"""Dense heads and the segmentation models: shapes, output stride, bilinear upsampling, freezing, serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_models import calibrate_batch_norm

from dirtypixels_tf.models import isp, segmentation
from dirtypixels_tf.models.spec import ModelSpec, build_model
from dirtypixels_tf.physics.sensor import SensorModel

SIZE = 32
CLASSES = 5


def small_head(name="mobilenet_v1_aspp", size=SIZE, **kwargs):
    return segmentation.build_dense_head(name, (size, size, 3), CLASSES, width=0.25, **kwargs)


def small_segmenter(freeze="head", isp_name="bilinear", **isp_settings):
    """A JointSegmenter whose head's batch norms are set to the statistics of random [-1, 1] images first (a random
    head with the initial statistics has logits of ~1e-17, which would make every comparison trivial)."""
    head = small_head()
    calibrate_batch_norm(head, np.random.default_rng(7).random((8, SIZE, SIZE, 3)).astype(np.float32) * 2 - 1)
    return segmentation.JointSegmenter(
        isp.build_isp(isp_name, **isp_settings), head, "mobilenet_v1_aspp", (SIZE, SIZE), freeze=freeze
    )


def raw_batch(count=4, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((count, SIZE, SIZE, 3)).astype(np.float32)
    return SensorModel(light_levels="6lux").simulate(images, seed=[seed, 0])


def label_maps(count=4, seed=0):
    labels = np.random.default_rng(seed).integers(0, CLASSES, (count, SIZE, SIZE))
    labels[:, :2] = 255  # an ignored border, as VOC's
    return labels


def test_deeplab_largefov_has_output_stride_8_and_the_paper_layout():
    head = segmentation.build_dense_head("deeplab_largefov", (64, 64, 3), 21)
    assert head.get_layer("fc8").output.shape[1:] == (8, 8, 21)
    assert head.output.shape[1:] == (64, 64, 21)
    assert head.get_layer("fc6").dilation_rate == (12, 12) and head.get_layer("fc6").filters == 1024
    assert {head.get_layer(f"block5_conv{i}").dilation_rate for i in (1, 2, 3)} == {(2, 2)}
    assert [head.get_layer(f"block{b}_pool").strides for b in range(1, 6)] == [(2, 2)] * 3 + [(1, 1)] * 2
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in head.layers)


def test_atrous_mobilenet_keeps_output_stride_8_and_doubles_the_dilation():
    head = small_head(size=64)
    assert head.get_layer("logits").output.shape[1:] == (8, 8, CLASSES)
    dilations = [head.get_layer(f"conv_dw_{i}").dilation_rate[0] for i in range(1, 14)]
    strides = [head.get_layer(f"conv_dw_{i}").strides[0] for i in range(1, 14)]
    assert strides == [1, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert dilations == [1] * 6 + [2] * 6 + [4]


def test_logits_are_the_bilinear_upsampling_of_the_output_stride_logits():
    keras.utils.set_random_seed(0)
    head = small_head()
    images = np.random.default_rng(1).random((2, SIZE, SIZE, 3)).astype(np.float32) * 2 - 1
    calibrate_batch_norm(head, images)
    coarse = keras.Model(head.input, head.get_layer("logits").output)(images)
    expected = tf.image.resize(coarse, (SIZE, SIZE), method="bilinear")
    np.testing.assert_allclose(head(images).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_any_keras_application_is_an_encoder():
    head = segmentation.build_dense_head("MobileNetV2", (SIZE, SIZE, 3), CLASSES, width=0.35)
    assert head.output.shape[1:] == (SIZE, SIZE, CLASSES)
    assert segmentation.preprocessing_name("MobileNetV2") == "MobileNetV2"
    assert segmentation.preprocessing_name("deeplab_largefov") == "VGG16"


def test_bad_arguments_are_refused_with_what_was_received():
    with pytest.raises(ValueError, match="unknown dense head 'deeplab'"):
        segmentation.build_dense_head("deeplab")
    message = r"width must be 1.0 for dense head 'deeplab_largefov' \(it has no width multiplier\); received 0.5"
    with pytest.raises(ValueError, match=message):
        segmentation.build_dense_head("deeplab_largefov", (64, 64, 3), 21, width=0.5)
    with pytest.raises(ValueError, match=r"do not fit dense head 'mobilenet_v1_aspp', which expects 64x64"):
        segmentation.JointSegmenter(isp.build_isp("bilinear"), small_head(size=64), "mobilenet_v1_aspp", (SIZE, SIZE))


def test_joint_segmenter_outputs_and_wiring():
    keras.utils.set_random_seed(0)
    model = small_segmenter(freeze=None)
    features = raw_batch()
    outputs = model({k: features[k] for k in ("raw", "alpha", "sigma")})
    assert set(outputs) == {"segmentation", "image"}
    assert outputs["segmentation"].shape == (4, SIZE, SIZE, CLASSES) and outputs["image"].shape == (4, SIZE, SIZE, 3)
    expected = model.head(np.clip(outputs["image"].numpy(), 0.0, 1.0) * 2.0 - 1.0)  # MobileNet's [-1, 1]
    np.testing.assert_allclose(outputs["segmentation"].numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    assert segmentation.task_of(model) == ("segmentation", "segmentation")


def test_the_head_is_frozen_by_default_and_stays_bit_identical_while_the_isp_learns():
    from dirtypixels_tf.training.losses import PixelCrossEntropy

    keras.utils.set_random_seed(0)
    model = small_segmenter(isp_name="liu", encoder_filters=8, decoder_filters=8)
    assert not model.head.trainable and model.isp.trainable
    features = {k: v for k, v in raw_batch().items() if k in ("raw", "alpha", "sigma")}
    head_before = [w.numpy().copy() for w in model.head.weights]  # batch-norm statistics included
    isp_before = [w.numpy().copy() for w in model.isp.trainable_weights]
    optimizer, loss, labels = keras.optimizers.Adam(1e-3), PixelCrossEntropy(), label_maps()
    for _ in range(2):  # eager steps (a traced fit step costs a minute of graph building on a shared CPU)
        with tf.GradientTape() as tape:
            value = loss(labels, model(features, training=True)["segmentation"])
        optimizer.apply(tape.gradient(value, model.trainable_weights), model.trainable_weights)
    assert len(model.trainable_weights) == len(isp_before)
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(head_before, model.head.weights))
    changed = sum(not np.array_equal(b, w.numpy()) for b, w in zip(isp_before, model.isp.trainable_weights))
    assert changed == len(isp_before)


def test_keras_file_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    model = small_segmenter()
    features = {k: v for k, v in raw_batch().items() if k in ("raw", "alpha", "sigma")}
    path = tmp_path / "segmenter.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is segmentation.JointSegmenter and loaded.freeze == "head"
    np.testing.assert_array_equal(loaded(features)["segmentation"].numpy(), model(features)["segmentation"].numpy())


def test_spec_builds_the_segmentation_models():
    spec = ModelSpec(SIZE, "bilinear", "mobilenet_v1_aspp", CLASSES, head_width=0.25, task="segmentation")
    assert spec.outputs() == {"image", "segmentation"}
    assert type(build_model(spec)) is segmentation.JointSegmenter
    head_alone = build_model(ModelSpec(SIZE, None, "mobilenet_v1_aspp", CLASSES, head_width=0.25, task="segmentation"))
    assert type(head_alone) is segmentation.HeadSegmenter and set(head_alone.output) == {"segmentation"}
    with pytest.raises(ValueError, match="unknown segmentation head 'mobilenet_v1'"):
        ModelSpec(SIZE, "bilinear", "mobilenet_v1", task="segmentation")
