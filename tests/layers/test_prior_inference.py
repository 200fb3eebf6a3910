"""The priors' inference path (one Conv2D, a dilated one too, then batch norm as one FusedBatchNormV3 in inference
mode, or one affine pass in float64) computes what the layers compute unfused: Keras' Conv2D then
BatchNormalization(training=False) then ReLU."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tolerances import model_bound

from dirtypixels_tf.layers.priors import LiuEncodingModule, ResidualUNetPrior, _ConvNormAct, upsample_2x2


def _unfused(unit, x):
    x = unit.conv(x)
    if unit.bn is not None:
        x = unit.bn(x, training=False)
    return tf.nn.relu(x) if unit.relu else x


def _units(layer):
    return [sub for sub in layer._flatten_layers(include_self=False) if isinstance(sub, _ConvNormAct)]


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: ResidualUNetPrior(), (2, 16, 16, 4)),
        (lambda: ResidualUNetPrior(first_conv="strided", levels=2), (2, 8, 8, 4)),
        (lambda: LiuEncodingModule(filters=16, bottleneck_filters=4), (2, 8, 8, 3)),
    ],
)
@pytest.mark.parametrize("in_graph", [False, True])
def test_every_unit_equals_convolution_then_batch_norm_at_inference(make, shape, in_graph, randomize):
    layer = make()
    x = tf.constant(np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32))
    layer(x)
    randomize(layer, seed=3)
    units = _units(layer)
    assert any(unit.bn is not None for unit in units)
    for unit in units:
        unit_input = tf.constant(
            np.random.default_rng(1).uniform(0, 1, (2, 8, 8, unit.conv.kernel.shape[2])).astype(np.float32)
        )
        expected = _unfused(unit, unit_input).numpy()
        call = tf.function(lambda t, unit=unit: unit(t, training=False)) if in_graph else unit
        folded = call(unit_input).numpy()
        # the folded kernel's sums round differently from the convolution's and the batch norm's: round-off of
        # one kernel, far below a wrong fold's O(1) change
        np.testing.assert_allclose(folded, expected, rtol=0, atol=model_bound(unit, expected))


def test_release_prior_inference_graph_has_one_fused_batch_norm_per_unit_and_no_space_to_batch(randomize):
    prior = ResidualUNetPrior()
    x = tf.zeros([1, 16, 16, 4])
    prior(x)
    graph = tf.function(lambda t: prior(t, training=False)).get_concrete_function(x).graph
    operations = graph.get_operations()
    types = {op.type for op in operations}
    assert not types & {"SpaceToBatchND", "BatchToSpaceND"}, types
    dilated = [op for op in operations if op.type == "Conv2D" and list(op.get_attr("dilations")) != [1] * 4]
    assert len(dilated) == 1 and list(dilated[0].get_attr("dilations")) == [1, 2, 2, 1]
    batch_norms = [op for op in operations if op.type == "FusedBatchNormV3"]
    assert len(batch_norms) == sum(unit.bn is not None for unit in _units(prior))
    assert not any(op.get_attr("is_training") for op in batch_norms)
    assert "Rsqrt" not in types, types  # no batch norm spelled out element-wise beside the fused ones


def test_float64_units_equal_convolution_then_batch_norm_at_inference(randomize):
    keras.config.set_dtype_policy("float64")
    try:
        prior = ResidualUNetPrior()
        x = tf.constant(np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 4)))
        prior(x)
    finally:
        keras.config.set_dtype_policy("float32")
    randomize(prior, seed=3)
    for unit in _units(prior):
        unit_input = tf.constant(np.random.default_rng(1).uniform(0, 1, (2, 8, 8, unit.conv.kernel.shape[2])))
        expected = _unfused(unit, unit_input).numpy()
        result = unit(unit_input, training=False)
        assert result.dtype == tf.float64
        np.testing.assert_allclose(result.numpy(), expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())


def test_training_still_uses_batch_statistics(randomize):
    prior = ResidualUNetPrior()
    x = tf.constant(np.random.default_rng(2).uniform(0, 1, (4, 16, 16, 4)).astype(np.float32))
    prior(x)
    randomize(prior, seed=4)
    assert np.abs(prior(x, training=True).numpy() - prior(x, training=False).numpy()).max() > 1e-3


@pytest.mark.parametrize("use_bias", [True, False])
def test_upsample_2x2_equals_the_transposed_convolution(use_bias):
    layer = keras.layers.Conv2DTranspose(5, 2, strides=2, use_bias=use_bias)
    x = tf.constant(np.random.default_rng(5).normal(size=(2, 6, 7, 3)).astype(np.float32))
    layer.build(x.shape)
    if use_bias:
        layer.bias.assign(np.random.default_rng(6).normal(size=5).astype(np.float32))
    expected = layer(x).numpy()
    # another order of the kernel's sums: round-off only; a wrong phase or channel order moves outputs by O(1)
    np.testing.assert_allclose(upsample_2x2(layer, x).numpy(), expected, rtol=0, atol=model_bound(layer, expected))
