"""`dirtypixels convert`: TF1 checkpoints of the release and of TF-slim as this package's Keras models.

Two kinds of cases:
- tiny checkpoints written here (tf.raw_ops.SaveV2, no TF1 graph) from a random Keras model under the release's /
  slim's variable names, listed below independently of the converter: the converted model must compute what the
  model that wrote them computes;
- the release reference (<repo>/../shared/release_reference, see its README): a checkpoint written by the release's
  own TF1 graph and that graph's outputs. Skipped only when that folder is absent.
"""

import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_models import calibrate_batch_norm
from tolerances import decided, model_bound

from dirtypixels_tf.cli import main
from dirtypixels_tf.export.tflite import simulated_inputs
from dirtypixels_tf.models import heads, isp, tf1_checkpoints
from dirtypixels_tf.models.joint import JointClassifier
from dirtypixels_tf.models.loading import load_model

REFERENCE = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "release_reference"
SIZE = 32


def release_name(path):
    """The release's / slim's checkpoint name of a Keras weight path of this package's joint model."""
    if path == "isp/lambda":
        return "gauss_den/lambda"
    if m := re.fullmatch(r"isp/projection_(\d+)/beta", path):
        return f"gauss_den/iter_{m[1]}/beta"
    if m := re.fullmatch(r"isp/prior_(\d+)/level(\d)_(conv_in|conv_1|conv_2|out_conv)/(conv|bn)/(\w+)", path):
        scope = f"gauss_den/iter_{m[1]}/prior_grad/depth_{m[2]}/{m[3]}"
        return (
            f"{scope}/{dict(kernel='weights', bias='biases')[m[5]]}" if m[4] == "conv" else f"{scope}/BatchNorm/{m[5]}"
        )
    if m := re.fullmatch(r"isp/prior_(\d+)/level(\d)_(out_conv|up_conv)/(kernel|bias)", path):
        return f"gauss_den/iter_{m[1]}/prior_grad/depth_{m[2]}/{m[3]}/{dict(kernel='weights', bias='biases')[m[4]]}"
    if m := re.fullmatch(r"conv1(_bn)?/(\w+)", path):
        return "MobilenetV1/Conv2d_0/" + (f"BatchNorm/{m[2]}" if m[1] else "weights")
    if m := re.fullmatch(r"conv_(dw|pw)_(\d+)(_bn)?/(\w+)", path):
        kind = "depthwise" if m[1] == "dw" else "pointwise"
        leaf = f"BatchNorm/{m[4]}" if m[3] else ("depthwise_weights" if kind == "depthwise" else "weights")
        return f"MobilenetV1/Conv2d_{m[2]}_{kind}/{leaf}"
    if m := re.fullmatch(r"conv_preds/(kernel|bias)", path):
        return "MobilenetV1/Logits/Conv2d_1c_1x1/" + dict(kernel="weights", bias="biases")[m[1]]
    raise AssertionError(f"no release name for {path}")


def write_checkpoint(prefix, arrays):
    names = sorted(arrays)
    tensors = [tf.constant(arrays[name]) for name in names]
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)
    return str(prefix)


def randomized_joint(iterations=2, seed=0):
    """A tiny joint model with random weights, random lambda / beta and calibrated batch-norm statistics."""
    keras.utils.set_random_seed(seed)
    layer = isp.build_isp("anscombe", iterations=iterations)
    head = heads.build_head("mobilenet_v1", (SIZE, SIZE, 3), 11, width=0.25)
    model = JointClassifier(layer, head, "mobilenet_v1", (SIZE, SIZE))
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if "bn" in variable.path or variable.path.endswith(("bias", "gamma", "beta")):
            variable.assign(variable.numpy() + rng.normal(0, 0.1, variable.shape).astype(np.float32))
    layer.lam.assign(1.3)
    calibrate_batch_norm(model, simulated_inputs((SIZE, SIZE), 16, seed=5))
    return model


def checkpoint_arrays(model, only=None):
    arrays = {}
    for variable in model.weights:
        path = variable.path.removeprefix("mobilenet_v1/")
        if only is None or path.startswith(only):
            arrays[release_name(path)] = variable.numpy()
    return arrays


def frames(count=3, seed=1):
    return simulated_inputs((SIZE, SIZE), count, seed=seed)


def test_tiny_release_joint_checkpoint_converts_to_the_model_that_wrote_it(tmp_path, capsys):
    model = randomized_joint()
    arrays = checkpoint_arrays(model)
    arrays["global_step"] = np.int64(1234)
    arrays["gauss_den/lambda/RMSProp"] = np.float32(1.0)  # optimizer slots of mapped variables are ignored
    arrays["MobilenetV1/Conv2d_0/weights/ExponentialMovingAverage"] = arrays["MobilenetV1/Conv2d_0/weights"]
    prefix = write_checkpoint(tmp_path / "model.ckpt-1234", arrays)
    out = tmp_path / "joint.keras"
    assert main(["convert", prefix, "--out", str(out), "--image-size", str(SIZE)]) == 0
    printed = capsys.readouterr().out
    assert (
        "joint (iterations 2, width 0.25, classes 11)" in printed and f"{len(arrays) - 3} of {len(arrays)}" in printed
    )
    converted = load_model(str(out))
    assert sorted(converted.input) == ["alpha", "raw", "sigma"] and sorted(converted.output) == ["image", "logits"]
    inputs = frames()
    expected, outputs = model(inputs), converted(inputs)
    for name in ("image", "logits"):
        np.testing.assert_allclose(outputs[name].numpy(), expected[name].numpy(), rtol=1e-5, atol=1e-5)
    assert np.std(expected["logits"].numpy(), axis=0).min() > 1e-3  # the logits depend on the input
    head = converted.get_layer("mobilenet_v1")
    assert {layer.momentum for layer in head.layers if isinstance(layer, keras.layers.BatchNormalization)} == {0.9997}


def test_release_isp_checkpoint_becomes_the_stage_one_isp_model(tmp_path):
    model = randomized_joint(iterations=1, seed=2)
    prefix = write_checkpoint(tmp_path / "isp.ckpt", checkpoint_arrays(model, only="isp/"))
    converted, info = tf1_checkpoints.convert_checkpoint(prefix, image_size=SIZE)
    assert info["kind"] == "isp" and info["settings"] == {"iterations": 1}
    assert list(converted.output) == ["image"] and converted.get_layer("isp") is not None
    inputs = frames()
    np.testing.assert_allclose(converted(inputs)["image"].numpy(), model(inputs)["image"].numpy(), atol=1e-5)


def test_slim_mobilenet_checkpoint_becomes_a_head_a_config_can_start_from(tmp_path):
    model = randomized_joint(seed=3)
    head = model.get_layer("mobilenet_v1")
    prefix = write_checkpoint(tmp_path / "mobilenet_v1_0.25_32.ckpt", checkpoint_arrays(head))
    out = tmp_path / "head.keras"
    assert main(["convert", prefix, "--out", str(out), "--image-size", str(SIZE)]) == 0
    converted = load_model(str(out))
    assert list(converted.input) == ["clean"] and list(converted.output) == ["logits"]
    clean = np.random.default_rng(4).random((2, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(
        converted({"clean": clean})["logits"].numpy(), head(clean * 2.0 - 1.0).numpy(), rtol=1e-5, atol=1e-5
    )
    # a training config starts from it (stages.head_weights), as the release's stage 2 starts from slim's head
    from dirtypixels_tf.training import config as config_lib
    from dirtypixels_tf.training.model_setup import build_experiment_model, load_stage_weights

    config = config_lib.load_config(
        config_lib.resolve_config("default"), ["model.num_classes=11", f"stages.head_weights={out}"]
    )
    target = build_experiment_model(config)
    assert load_stage_weights(target, config) == [f"mobilenet_v1 <- {out}"]
    for loaded, written in zip(target.get_layer("mobilenet_v1").weights, head.weights):
        np.testing.assert_array_equal(loaded.numpy(), written.numpy())


def test_checkpoints_that_do_not_map_are_refused_with_the_variables_named(tmp_path):
    arrays = checkpoint_arrays(randomized_joint(seed=4))
    del arrays["gauss_den/iter_1/beta"]
    arrays["gauss_den/iter_0/prior_grad/depth_3/conv_in/weights"] = np.zeros((3, 3, 32, 64), np.float32)
    arrays["MobilenetV1/Conv2d_5_pointwise/weights"] = np.zeros((1, 1, 64, 65), np.float32)
    prefix = write_checkpoint(tmp_path / "bad.ckpt", arrays)
    with pytest.raises(tf1_checkpoints.CheckpointError) as error:
        tf1_checkpoints.convert_checkpoint(prefix, image_size=SIZE)
    message = str(error.value)
    assert "variables not found in the checkpoint: ['gauss_den/iter_1/beta']" in message
    assert "map to no model weight: ['gauss_den/iter_0/prior_grad/depth_3/conv_in/weights']" in message
    assert "MobilenetV1/Conv2d_5_pointwise/weights (1, 1, 64, 65) -> conv_pw_5/kernel (1, 1, 64, 64)" in message
    with pytest.raises(tf1_checkpoints.CheckpointError, match="top-level scopes \\['resnet_v1_50'\\]"):
        tf1_checkpoints.convert_checkpoint(
            write_checkpoint(tmp_path / "other.ckpt", {"resnet_v1_50/w": np.zeros(2, np.float32)})
        )
    with pytest.raises(tf1_checkpoints.CheckpointError, match="cannot read .*missing.ckpt"):
        tf1_checkpoints.convert_checkpoint(str(tmp_path / "missing.ckpt"))
    with pytest.raises(tf1_checkpoints.CheckpointError, match="preset 'nidf' has ISP 'nidf'"):
        tf1_checkpoints.convert_checkpoint(
            write_checkpoint(tmp_path / "isp.ckpt", checkpoint_arrays(randomized_joint(), "isp/")), "nidf"
        )
    with pytest.raises(SystemExit):
        main(["convert", prefix, "--out", str(tmp_path / "x.h5")])


def test_slim_inception_v4_checkpoint_becomes_a_head(tmp_path):
    keras.utils.set_random_seed(0)
    head = heads.build_head("inception_v4", (80, 80, 3), 5, include_background=True)
    rng = np.random.default_rng(0)
    arrays = {"global_step": np.int64(7)}
    for layer in head.layers:
        for variable in layer.weights:
            leaf = dict(kernel="weights", bias="biases").get(variable.name, variable.name)
            value = variable.numpy()
            if variable.name in ("beta", "moving_mean"):
                value = rng.normal(0, 0.1, value.shape).astype(np.float32)
                variable.assign(value)
            arrays["InceptionV4/" + layer.name.replace(".", "/") + "/" + leaf] = value
    arrays["InceptionV4/AuxLogits/Aux_logits/weights"] = np.zeros((768, 6), np.float32)  # training-only head: dropped
    prefix = write_checkpoint(tmp_path / "inception_v4.ckpt", arrays)
    converted, info = tf1_checkpoints.convert_checkpoint(prefix, image_size=80)
    assert info["kind"] == "inception_v4" and info["settings"] == {"classes": 6}
    assert info["copied"] == len(arrays) - 2
    clean = rng.random((1, 80, 80, 3)).astype(np.float32)
    np.testing.assert_allclose(
        converted({"clean": clean})["logits"].numpy(), head(clean * 2.0 - 1.0).numpy(), rtol=1e-4, atol=1e-4
    )


# ---- the release reference ------------------------------------------------------------------------------------

needs_reference = pytest.mark.skipif(
    not (REFERENCE / "io.npz").is_file(), reason=f"release reference not found at {REFERENCE} (shared/ beside the repo)"
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("convert") / "release_joint.keras"
    assert main(["convert", str(REFERENCE / "model.ckpt"), "--out", str(out)]) == 0
    data = dict(np.load(REFERENCE / "io.npz"))
    inputs = {"raw": data["mosaic"], "alpha": data["alpha"], "sigma": data["sigma"]}
    return load_model(str(out)), data, inputs


def _assert_same_decisions(actual, expected, bound):
    """The same arg-max on every frame whose top two logits are not a tie at the round-off bound."""
    clear = decided(expected, bound)
    assert clear.any(), "every frame is a near-tie"
    np.testing.assert_array_equal(actual.argmax(-1)[clear], expected.argmax(-1)[clear])


@needs_reference
@pytest.mark.parametrize("in_graph", [False, True], ids=["eager", "tf.function"])
def test_converted_release_checkpoint_computes_what_the_release_graph_computes(reference, in_graph):
    model, data, inputs = reference
    run = tf.function(model) if in_graph else model  # in a graph as a SavedModel or the server runs it
    outputs = run(inputs)
    # The release graph ran elsewhere (TF1, another CPU): float32 round-off bounds of each part, far below the O(1)
    # change of a wrongly converted weight (a transposed kernel, a misassigned batch norm, another padding).
    isp_bound = model_bound(model.isp, data["isp"])
    np.testing.assert_allclose(np.clip(outputs["image"].numpy(), 0.0, 1.0), data["isp"], rtol=0, atol=isp_bound)
    head = model.get_layer("mobilenet_v1")
    pool = next(layer for layer in head.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D))
    features = keras.Model(head.input, pool.output)
    pooled = features(np.clip(outputs["image"].numpy(), 0, 1) * 2 - 1).numpy().reshape(data["features"].shape)
    # the ISP's round-off and the head's, through every layer of the joint model
    np.testing.assert_allclose(pooled, data["features"], rtol=0, atol=model_bound(model, data["features"]))
    logits_bound = model_bound(model, data["logits"])
    np.testing.assert_allclose(outputs["logits"].numpy(), data["logits"], rtol=0, atol=logits_bound)
    _assert_same_decisions(outputs["logits"].numpy(), data["logits"], logits_bound)
    # The head alone, fed the release's own ISP output: the head's layers only.
    on_release_image = features(data["isp"] * 2 - 1).numpy().reshape(data["features"].shape)
    np.testing.assert_allclose(on_release_image, data["features"], rtol=0, atol=model_bound(head, data["features"]))
    head_logits = head(data["isp"] * 2 - 1).numpy()
    np.testing.assert_allclose(head_logits, data["logits"], rtol=0, atol=model_bound(head, data["logits"]))


@needs_reference
def test_a_preset_names_the_same_model(reference):
    model, _, inputs = reference
    named, info = tf1_checkpoints.convert_checkpoint(str(REFERENCE / "model.ckpt"), preset="joint_mobilenet_v1_128")
    assert named.name == "joint_mobilenet_v1_128" and info["copied"] == info["variables"] == 187
    np.testing.assert_array_equal(named(inputs)["logits"].numpy(), model(inputs)["logits"].numpy())
    with pytest.raises(tf1_checkpoints.CheckpointError, match="is not an Anscombe network"):
        tf1_checkpoints.convert_checkpoint(str(REFERENCE / "model.ckpt"), preset="raw_mobilenet_v1_128")


@needs_reference
def test_exported_and_served_release_model_give_the_same_answers(reference, tmp_path):
    from dirtypixels_tf.serving.client import PredictionClient
    from dirtypixels_tf.serving.server import LocalModelServer

    model, data, inputs = reference
    source = tmp_path / "release.keras"
    model.save(source)
    base = tmp_path / "models" / "release"
    assert main(["export", str(source), "--out", str(base), "--quiet"]) == 0
    loaded = tf.saved_model.load(str(base / "1"))
    exported = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
    bound = model_bound(model, data["logits"])  # round-off of the (folded) export and of the release graph
    np.testing.assert_allclose(exported["logits"].numpy(), data["logits"], rtol=0, atol=bound)
    with LocalModelServer(base, model_name="release", port=0, rest_port=0) as server:
        with PredictionClient(server.address) as client:
            served = client.predict(inputs["raw"], inputs["alpha"], inputs["sigma"], model="release")
    # the model server's graph sums in other orders than the in-process SavedModel: round-off only
    np.testing.assert_allclose(served["logits"], exported["logits"].numpy(), rtol=0, atol=bound)
    _assert_same_decisions(served["logits"], data["logits"], 2 * bound)
