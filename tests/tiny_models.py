"""A tiny joint model (Anscombe network + MobileNet-v1 width 0.25, 32x32 RAW, 10 classes) exported once, shared by
the export and serving tests (its fixtures are registered in tests/conftest.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dirtypixels_tf.export import export_savedmodel
from dirtypixels_tf.export.tflite import simulated_inputs
from dirtypixels_tf.models.heads import build_head
from dirtypixels_tf.models.isp import build_isp
from dirtypixels_tf.models.joint import JointClassifier
from dirtypixels_tf.training.model_setup import precise_batch_norm

SIZE = 32
CLASS_NAMES = [f"class_{k}" for k in range(10)]


def calibrate_batch_norm(model, inputs):
    """Set every batch-norm layer's statistics to those of `inputs`, so a random model has O(1) logits that differ
    between inputs (with the initial statistics its logits are ~1e-18, which would make every comparison trivial)."""
    precise_batch_norm(model, [inputs])


def build_tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    isp = build_isp("anscombe")
    head = build_head("mobilenet_v1", (SIZE, SIZE, 3), len(CLASS_NAMES), width=0.25)
    model = JointClassifier(isp, head, "mobilenet_v1", (SIZE, SIZE), name="tiny_joint")
    calibrate_batch_norm(model, simulated_inputs((SIZE, SIZE), 64, seed=100 + seed))
    return model


@pytest.fixture(scope="module")
def exact_graphs():
    """Run graphs without Grappler's rewrites while a test module needs exact comparisons, then restore.

    Grappler fuses and reorders ops in graph mode (a SavedModel's functions) but not in eager mode (a Keras call),
    which changes float rounding; the random MobileNet of these tests amplifies an input change of 1e-6 into
    ~1e-4 on its logits, so with Grappler on, eager and SavedModel logits differ by up to ~3e-4 although the
    exported function is the same. With Grappler off both run the same kernels and agree to the bit. The option is
    process-wide, so it is restored after the module.
    """
    saved = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    yield
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": saved.get("disable_meta_optimizer", False)})


@pytest.fixture(scope="session")
def tiny_model():
    return build_tiny_model()


@pytest.fixture(scope="session")
def exported(tiny_model, tmp_path_factory):
    """(base path, version directory) of the tiny model exported as version 1, its batch norms not folded (the
    serving and export tests compare it with the in-process model at 1e-5; folding: tests/export/test_fold.py)."""
    base = tmp_path_factory.mktemp("export") / "tiny"
    return base, export_savedmodel(tiny_model, base, class_names=CLASS_NAMES, fold_batch_norm=None)


def tiny_variant(tiny_model, top_class):
    """The tiny model with logit `top_class` raised by 50: every frame's answer names the version that gave it."""
    other = keras.models.clone_model(tiny_model)
    other.set_weights(tiny_model.get_weights())
    predictions = other.get_layer("mobilenet_v1").get_layer("conv_preds")
    predictions.bias.assign(predictions.bias.numpy() + np.eye(len(CLASS_NAMES))[top_class] * 50.0)
    return other


def randomize_weights(layer, seed=0, scale=0.2):
    """Give every weight of a built layer a random value (positive moving variances), so that round trips compare
    weights that differ from their initializers, batch-norm statistics included."""
    rng = np.random.default_rng(seed)
    values = []
    for weight in layer.weights:
        shape = tuple(weight.shape)
        if "moving_variance" in weight.path:
            values.append(rng.uniform(0.5, 1.5, shape))
        else:
            values.append(rng.normal(0.0, scale, shape))
    layer.set_weights([v.astype(np.float32) for v in values])
