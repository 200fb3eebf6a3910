"""Batch-norm folding (export/fold.py): the closed form in float64, the folded copies of heads, priors and joint
models against the unfolded models, parity with the release's own graph, and exports without batch-norm ops."""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_models import SIZE, calibrate_batch_norm
from tolerances import decided, model_bound

from dirtypixels_tf.export import export_savedmodel, export_tflite, fold_batch_norm
from dirtypixels_tf.export.fold import folded_kernel_and_bias
from dirtypixels_tf.export.tflite import simulated_inputs
from dirtypixels_tf.layers.priors import _ConvNormAct
from dirtypixels_tf.models.components import IspModel
from dirtypixels_tf.models.heads import build_head
from dirtypixels_tf.models.isp import build_isp
from dirtypixels_tf.models.joint import HeadClassifier

REFERENCE = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "release_reference"
BATCH_NORM_OPS = {"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "Rsqrt"}


def _trained_like(model, inputs, seed):
    """Batch norms as after training: random gamma, beta and biases, then moving statistics of `inputs` (precise
    batch norm) perturbed by up to 10 % (mean) and 20 % (variance), as the release reference's."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        name = weight.path.rsplit("/", 1)[-1]
        if name in ("beta", "bias"):
            weight.assign(rng.normal(0.0, 0.1, weight.shape).astype(np.float32))
        elif name == "gamma":
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype(np.float32))
    calibrate_batch_norm(model, inputs)
    for weight in model.weights:
        name = weight.path.rsplit("/", 1)[-1]
        if name in ("moving_mean", "moving_variance"):
            spread = 0.1 if name == "moving_mean" else 0.2
            weight.assign(weight.numpy() * rng.uniform(1 - spread, 1 + spread, weight.shape).astype(np.float32))


def _assert_same_decisions(actual, expected, bound):
    """The same arg-max wherever the top two logits are not a tie at the round-off bound, and most frames are so."""
    clear = decided(expected, bound)
    assert clear.sum() >= len(clear) / 2, f"top-two margins {np.diff(np.sort(expected)[:, -2:]).ravel()}"
    np.testing.assert_array_equal(actual.argmax(-1)[clear], expected.argmax(-1)[clear])


def _scale_error(actual, expected):
    return float(np.abs(np.asarray(actual) - np.asarray(expected)).max() / np.abs(expected).max())


@pytest.mark.parametrize("depthwise, use_bias", [(False, False), (False, True), (True, False)])
def test_folded_kernel_and_bias_is_the_batch_norm_of_the_convolution_in_float64(depthwise, use_bias):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 7, 3))
    kernel = rng.normal(size=(3, 3, 3, 2 if depthwise else 5))
    channels = 6 if depthwise else 5
    bias = rng.normal(size=channels) if use_bias else None
    mean, beta = rng.normal(size=channels), rng.normal(size=channels)
    variance, gamma = rng.uniform(0.05, 2.0, channels), rng.uniform(0.5, 1.5, channels)

    def conv(k):
        if depthwise:
            return tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "SAME").numpy()
        return tf.nn.conv2d(x, k, 1, "SAME").numpy()

    z = conv(kernel) + (0.0 if bias is None else bias)
    expected = (z - mean) / np.sqrt(variance + 1e-3) * gamma + beta
    folded, folded_bias = folded_kernel_and_bias(kernel, bias, mean, variance, 1e-3, gamma, beta, depthwise=depthwise)
    assert folded.dtype == folded_bias.dtype == np.float32
    actual = conv(folded.astype(np.float64)) + folded_bias
    # only the rounding of kernel and bias to float32 remains (2^-24 relative each)
    assert _scale_error(actual, expected) < 1e-6


def test_folded_head_has_no_batch_norm_and_computes_the_head():
    keras.utils.set_random_seed(1)
    model = HeadClassifier(build_head("mobilenet_v1", (SIZE, SIZE, 3), 10, width=0.25), "mobilenet_v1", (SIZE,) * 2)
    _trained_like(model, {"clean": np.random.default_rng(2).random((16, SIZE, SIZE, 3)).astype(np.float32)}, seed=2)
    before = [weight.numpy().copy() for weight in model.weights]
    folded = fold_batch_norm(model)
    assert type(folded) is HeadClassifier and folded.name == model.name
    norms = [layer for layer in folded.head.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms == [] and len(model.head.layers) - len(folded.head.layers) == 27  # MobileNet-v1: 27 conv + BN
    assert all(np.array_equal(w.numpy(), b) for w, b in zip(model.weights, before))  # the original is untouched
    clean = {"clean": np.random.default_rng(3).random((4, SIZE, SIZE, 3)).astype(np.float32)}
    expected, actual = model(clean)["logits"].numpy(), folded(clean)["logits"].numpy()
    # float32 round-off through the head's layers, far below the O(1) change of a wrongly folded batch norm
    np.testing.assert_allclose(actual, expected, rtol=0, atol=model_bound(model, expected))
    assert np.std(expected, axis=0).min() > 1e-2  # logits that depend on the image


def test_folded_prior_units_compute_the_unfolded_units(randomize_prior_model):
    model = randomize_prior_model
    folded = fold_batch_norm(model)
    units = [unit for unit in folded.isp._flatten_layers() if isinstance(unit, _ConvNormAct)]
    assert all(unit.bn is None for unit in units)
    assert not [layer for layer in folded._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    sources = [unit for unit in model.isp._flatten_layers() if isinstance(unit, _ConvNormAct)]
    # per prior: 3 conv_in, 3 conv_1, 3 conv_2, 2 out_conv, all with a batch norm but the first
    assert len(sources) == len(units) == 2 * 11 and sum(unit.bn is not None for unit in sources) == 2 * 10
    rng = np.random.default_rng(4)
    ratios = []
    for source, unit in zip(sources, units):
        x = rng.uniform(0, 1, (2, 8, 8, unit.conv.kernel.shape[2])).astype(np.float32)
        exact = _exact_unit(source, x)
        unfolded_error = np.abs(source(x, training=False).numpy() - exact).max()
        ratios.append(np.abs(unit(x, training=False).numpy() - exact).max() / unfolded_error)
    # each folded unit is as close to the exact (float64) function as the unfolded unit (measured ratios 0.7 to 1.5)
    print("folded / unfolded error of the prior units:", np.round(ratios, 2))
    assert max(ratios) < 3
    frames = simulated_inputs((SIZE, SIZE), 4, seed=5)
    image, folded_image = model(frames)["image"].numpy(), folded(frames)["image"].numpy()
    # round-off of the ISP's layers (two priors), far below the O(1) change of a wrongly folded unit
    np.testing.assert_allclose(folded_image, image, rtol=0, atol=model_bound(model.isp, image))
    # "head" leaves the ISP's units as they are: the same function, bit for bit
    np.testing.assert_array_equal(fold_batch_norm(model, "head")(frames)["image"].numpy(), image)


def _exact_unit(unit, x):
    """A prior unit's function at inference in float64: ReLU(batch norm(conv(x)))."""
    conv = unit.conv
    z = tf.nn.conv2d(
        x.astype(np.float64),
        conv.kernel.numpy().astype(np.float64),
        conv.strides,
        "SAME",
        dilations=conv.dilation_rate,
    ).numpy()
    if unit.bn is None:
        z = z + conv.bias.numpy()
    else:
        bn = unit.bn
        z = (z - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy().astype(np.float64) + bn.epsilon)
        z = z + bn.beta.numpy()
    return np.maximum(z, 0.0)


@pytest.fixture(scope="module")
def randomize_prior_model():
    keras.utils.set_random_seed(6)
    model = IspModel(build_isp("anscombe", iterations=2), (SIZE, SIZE))
    _trained_like(model, simulated_inputs((SIZE, SIZE), 16, seed=9), seed=7)
    return model


def test_bad_arguments_are_refused(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="parts must be one of \\('all', 'head'\\); received 'isp'"):
        fold_batch_norm(tiny_model, "isp")

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="received Subclassed"):
        fold_batch_norm(Subclassed())
    with pytest.raises(ValueError, match="fold_batch_norm must be None or one of"):
        export_savedmodel(tiny_model, tmp_path / "x", fold_batch_norm=True)
    with pytest.raises(ValueError, match="fold_batch_norm must be None or one of"):
        export_tflite(tiny_model, tmp_path / "x.tflite", fold_batch_norm="yes")
    assert not (tmp_path / "x").exists()


def _op_types(export_dir):
    """Every op type in the SavedModel's graph and its function library, with counts."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((pathlib.Path(export_dir) / "saved_model.pb").read_bytes())
    graph = saved_model.meta_graphs[0].graph_def
    nodes = list(graph.node) + [node for function in graph.library.function for node in function.node_def]
    counts = {}
    for node in nodes:
        counts[node.op] = counts.get(node.op, 0) + 1
    return counts


@pytest.mark.usefixtures("exact_graphs")
def test_folded_export_has_no_batch_norm_ops_and_serves_the_folded_model(tiny_model, exported, tmp_path):
    plain = exported[1]  # exported with fold_batch_norm=None (tests/tiny_models.py)
    folded = export_savedmodel(tiny_model, tmp_path / "tiny", fold_batch_norm="all")
    plain_ops, folded_ops = _op_types(plain), _op_types(folded)
    assert plain_ops.get("Rsqrt", 0) >= 27  # the check sees the unfolded batch norms (27 in the head, more in the ISP)
    assert not set(folded_ops) & BATCH_NORM_OPS, {op: folded_ops[op] for op in set(folded_ops) & BATCH_NORM_OPS}
    from dirtypixels_tf.export import read_export_metadata

    assert read_export_metadata(folded)["batch_norm_folded"] == "all"
    assert read_export_metadata(plain)["batch_norm_folded"] is None
    frames = simulated_inputs((SIZE, SIZE), 6, profile="2to20lux", seed=3)
    served = tf.saved_model.load(folded).signatures["serving_default"](**frames)["logits"].numpy()
    # the signature wraps exactly the folded Keras copy (Grappler off: the same kernels) ...
    np.testing.assert_allclose(served, fold_batch_norm(tiny_model)(frames)["logits"].numpy(), atol=1e-5)
    # ... which is the unfolded model up to float32 round-off, far below the O(1) change of a wrong fold
    expected = tiny_model(frames)["logits"].numpy()
    bound = model_bound(tiny_model, expected)
    np.testing.assert_allclose(served, expected, rtol=0, atol=bound)
    _assert_same_decisions(served, expected, bound)
    image = tf.saved_model.load(folded).signatures["isp"](**frames)["image"].numpy()
    expected_image = tiny_model(frames)["image"].numpy()
    np.testing.assert_allclose(image, expected_image, rtol=0, atol=model_bound(tiny_model.isp, expected_image))


@pytest.mark.usefixtures("exact_graphs")
def test_the_default_export_folds_the_heads_batch_norms(tiny_model, exported, tmp_path):
    default = export_savedmodel(tiny_model, tmp_path / "default")
    from dirtypixels_tf.export import read_export_metadata

    assert read_export_metadata(default)["batch_norm_folded"] == "head"
    plain_rsqrt, default_rsqrt = _op_types(exported[1]).get("Rsqrt", 0), _op_types(default).get("Rsqrt", 0)
    assert plain_rsqrt - default_rsqrt >= 27  # the head's 27 batch norms are gone; the ISP prior keeps its own
    frames = simulated_inputs((SIZE, SIZE), 6, profile="2to20lux", seed=4)
    served = tf.saved_model.load(default).signatures["serving_default"](**frames)["logits"].numpy()
    np.testing.assert_allclose(served, fold_batch_norm(tiny_model, "head")(frames)["logits"].numpy(), atol=1e-5)
    expected = tiny_model(frames)["logits"].numpy()
    bound = model_bound(tiny_model, expected)  # round-off of the fold and of the head's layers
    np.testing.assert_allclose(served, expected, rtol=0, atol=bound)
    _assert_same_decisions(served, expected, bound)


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_folded_tflite_computes_the_folded_model(tiny_model, tmp_path):
    info = export_tflite(tiny_model, tmp_path / "folded.tflite", fold_batch_norm="all")
    assert info["select_tf_ops"] is False
    runner = tf.lite.Interpreter(model_path=info["path"]).get_signature_runner("serving_default")
    frames = simulated_inputs((SIZE, SIZE), 2, seed=8)
    folded = fold_batch_norm(tiny_model)
    for index in range(2):
        frame = {key: value[index : index + 1] for key, value in frames.items()}
        expected = folded(frame)["logits"].numpy()
        # TFLite's kernels sum in other orders: round-off only, far below the O(1) change of a wrong fold
        np.testing.assert_allclose(runner(**frame)["logits"], expected, rtol=0, atol=model_bound(folded, expected))


# ---- the release reference (see tests/commands/test_convert.py) -----------------------------------------------


@pytest.mark.skipif(not (REFERENCE / "io.npz").is_file(), reason=f"release reference not found at {REFERENCE}")
def test_folded_release_model_keeps_parity_with_the_release_graph():
    from dirtypixels_tf.models.tf1_checkpoints import convert_checkpoint

    model, _ = convert_checkpoint(str(REFERENCE / "model.ckpt"))
    data = dict(np.load(REFERENCE / "io.npz"))
    inputs = {"raw": data["mosaic"], "alpha": data["alpha"], "sigma": data["sigma"]}

    def check(candidate):
        outputs = candidate(inputs)
        image = np.clip(outputs["image"].numpy(), 0, 1)
        head = candidate.head
        pool = next(layer for layer in head.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D))
        features = keras.Model(head.input, pool.output)(image * 2 - 1).numpy().reshape(data["features"].shape)
        logits = outputs["logits"].numpy()
        # the bounds of test_convert.py: the float32 round-off of the joint model's layers, folded or not, far below
        # the O(1) change of a wrong fold
        np.testing.assert_allclose(features, data["features"], rtol=0, atol=model_bound(model, data["features"]))
        bound = model_bound(model, data["logits"])
        np.testing.assert_allclose(logits, data["logits"], rtol=0, atol=bound)
        _assert_same_decisions(logits, data["logits"], bound)

    check(fold_batch_norm(model, "head"))
    check(fold_batch_norm(model, "all"))  # the prior folded too: its round-off changes, within the same bound
