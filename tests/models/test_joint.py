"""The joint model: RAW in, logits and the ISP image out; freezing; end-to-end gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_models import calibrate_batch_norm

from dirtypixels_tf.data import fashion_mnist
from dirtypixels_tf.models import heads, isp
from dirtypixels_tf.models.components import IspModel
from dirtypixels_tf.models.joint import HeadClassifier, JointClassifier
from dirtypixels_tf.physics.sensor import SensorModel

SIZE = 32


def small_joint(isp_name="anscombe", freeze=None, classes=10, **isp_settings):
    head = heads.build_head("mobilenet_v1", (SIZE, SIZE, 3), classes, width=0.25)
    return JointClassifier(isp.build_isp(isp_name, **isp_settings), head, "mobilenet_v1", (SIZE, SIZE), freeze=freeze)


def simulated_batch(count=8, seed=0, profile="3lux"):
    """Real photographs: the first Fashion-MNIST test images (or random images without the Debian package)."""
    try:
        images, labels = fashion_mnist.load_fashion_mnist("test")
        images = tf.image.resize(images[:count, ..., None].repeat(3, -1) / 255.0, (SIZE, SIZE)).numpy()
        labels = labels[:count].astype(np.int64)
    except (OSError, ValueError):
        rng = np.random.default_rng(seed)
        images, labels = rng.random((count, SIZE, SIZE, 3)).astype(np.float32), rng.integers(0, 10, count)
    features = SensorModel(light_levels=profile).simulate(images.astype(np.float32), seed=[seed, 0])
    return features, labels


def compile_for_classification(model, learning_rate=1e-3):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
    )


def test_outputs_names_and_head_normalization():
    model = small_joint()
    features, _ = simulated_batch(2)
    outputs = model(features)
    assert set(outputs) == {"logits", "image"}
    assert outputs["logits"].shape == (2, 10) and outputs["image"].shape == (2, SIZE, SIZE, 3)
    scaled = model.get_layer("head_preprocessing")(tf.constant([[0.0, 0.5, 1.0]]))
    np.testing.assert_allclose(scaled.numpy(), [[-1.0, 0.0, 1.0]])


def test_head_input_is_the_image_clipped_to_0_1_as_in_the_release():
    model = small_joint()
    scaled = model.get_layer("head_preprocessing")(tf.constant([[-0.7, 0.25, 1.9]]))
    np.testing.assert_allclose(scaled.numpy(), [[-1.0, -0.5, 1.0]])
    head = model.get_layer("mobilenet_v1")
    features, _ = simulated_batch(2)
    outputs = model(features)
    expected = head(np.clip(outputs["image"].numpy(), 0.0, 1.0) * 2.0 - 1.0)
    np.testing.assert_allclose(outputs["logits"].numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    unclipped = JointClassifier(isp.build_isp("anscombe"), head, "mobilenet_v1", (SIZE, SIZE), clip_image=False)
    np.testing.assert_allclose(unclipped.get_layer("head_preprocessing")(tf.constant([[1.9]])).numpy(), [[2.8]])


def test_weight_decay_reaches_the_head_convolutions_only():
    # The release builds the ISP with weight_decay=0.0 and MobileNet with regularize_depthwise=False.
    from dirtypixels_tf.training.optimizers import decayed_kernels

    model = small_joint()
    decayed = {id(kernel) for kernel in decayed_kernels(model)}
    head = model.get_layer("mobilenet_v1")
    expected = [
        layer.kernel
        for layer in head.layers
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.DepthwiseConv2D)
    ]
    assert len(expected) == 15  # conv1, 13 pointwise, conv_preds
    assert decayed == {id(kernel) for kernel in expected}
    assert not {id(w) for w in model.get_layer("isp").weights} & decayed


def test_frozen_head_stays_bit_identical_while_the_isp_learns():
    """As Liu et al.: a trained head is frozen and only the ISP learns."""
    model = small_joint()
    features, labels = simulated_batch(4)
    head = model.get_layer("mobilenet_v1")
    calibrate_batch_norm(head, model.get_layer("head_preprocessing")(model(features)["image"]))
    head.trainable = False
    head_before = [w.numpy().copy() for w in head.weights]  # includes the batch-norm statistics
    isp_before = [w.numpy().copy() for w in model.get_layer("isp").trainable_weights]
    compile_for_classification(model)
    model.fit(features, {"logits": labels}, batch_size=4, epochs=2, verbose=0)
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(head_before, head.weights))
    isp_after = model.get_layer("isp").trainable_weights
    assert sum(not np.array_equal(b, w.numpy()) for b, w in zip(isp_before, isp_after)) == len(isp_before)


def test_freeze_argument_sets_the_part_non_trainable():
    assert not small_joint(freeze="head").get_layer("mobilenet_v1").trainable
    assert small_joint(freeze="head").get_layer("isp").trainable
    assert not small_joint(freeze="isp").get_layer("isp").trainable


def test_frozen_isp_stays_bit_identical():
    model = small_joint(freeze="isp")
    features, labels = simulated_batch(4)
    before = [w.numpy().copy() for w in model.get_layer("isp").weights]
    compile_for_classification(model)
    model.fit(features, {"logits": labels}, batch_size=4, epochs=1, verbose=0)
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, model.get_layer("isp").weights))


def test_joint_model_overfits_a_handful_of_3_lux_images():
    """Gradients flow end to end through the Anscombe layers, soft projection and prior into the head."""
    keras.utils.set_random_seed(0)
    model = small_joint()
    features, labels = simulated_batch(8)
    compile_for_classification(model, learning_rate=3e-3)
    history = model.fit(features, {"logits": labels}, batch_size=8, epochs=60, verbose=0).history["loss"]
    assert history[-1] < history[0] / 5, (history[0], history[-1])
    gradients_reach = model.get_layer("isp").trainable_weights
    assert all(np.all(np.isfinite(w.numpy())) for w in gradients_reach)


def test_saves_and_loads_with_identical_outputs(tmp_path):
    model = small_joint(freeze="head")
    features, _ = simulated_batch(2)
    model.save(tmp_path / "joint.keras")
    restored = keras.models.load_model(tmp_path / "joint.keras")
    for key in ("logits", "image"):
        np.testing.assert_array_equal(restored(features)[key].numpy(), model(features)[key].numpy())
    # The components survive the file: the same class, the ISP and head as attributes, the same settings.
    assert type(restored) is JointClassifier and isinstance(restored.isp, isp.AnscombeNetwork)
    assert restored.head.name == "mobilenet_v1" and not restored.head.trainable and restored.isp.trainable
    assert (restored.image_size, restored.freeze, restored.clip_image) == ((SIZE, SIZE), "head", True)
    grey = tf.fill([1, SIZE, SIZE, 3], 0.5)
    np.testing.assert_array_equal(restored.head(grey).numpy(), model.head(grey).numpy())


def test_components_are_attributes_not_layer_names(tmp_path):
    model = small_joint()
    assert model.isp is model.get_layer("isp") and model.head is model.get_layer("mobilenet_v1")
    assert model.head_preprocessing is model.get_layer("head_preprocessing")
    head_alone = HeadClassifier(model.head, "mobilenet_v1", (SIZE, SIZE), name="head_alone")
    isp_alone = IspModel(model.isp, (SIZE, SIZE))
    for component, path in ((head_alone, tmp_path / "head.keras"), (isp_alone, tmp_path / "isp.keras")):
        component.save(path)
        restored = keras.models.load_model(path)
        assert type(restored) is type(component) and restored.name == component.name
    assert keras.models.load_model(tmp_path / "head.keras").head.name == "mobilenet_v1"
    assert isinstance(keras.models.load_model(tmp_path / "isp.keras").isp, isp.AnscombeNetwork)


def test_stage_one_weights_load_by_component():
    stage_one = IspModel(isp.build_isp("anscombe"), (SIZE, SIZE))
    for weight in stage_one.trainable_weights:
        weight.assign(weight + 0.01)
    model = small_joint()
    model.get_layer("isp").set_weights(stage_one.get_layer("isp").get_weights())
    features, _ = simulated_batch(2)
    np.testing.assert_array_equal(model(features)["image"].numpy(), stage_one(features)["image"].numpy())


def test_a_head_of_another_size_is_refused_with_the_size_it_expects():
    head = heads.build_head("mobilenet_v1", (64, 64, 3), 10, width=0.25)
    with pytest.raises(ValueError, match="do not fit head 'mobilenet_v1', which expects 64x64 images"):
        JointClassifier(isp.build_isp("bilinear"), head, "mobilenet_v1", (SIZE, SIZE))
    with pytest.raises(ValueError, match="freeze must be one of"):
        JointClassifier(isp.build_isp("bilinear"), head, "mobilenet_v1", (64, 64), freeze="all")
