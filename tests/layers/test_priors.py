import keras
import numpy as np
import pytest
import tensorflow as tf
from tolerances import model_bound

from dirtypixels_tf.layers.priors import LiuDecodingModule, LiuEncodingModule, NidfUNet, ResidualUNetPrior

RNG = np.random.default_rng(0)

# Counted by building ResidualUNetPrior() on a 3-channel image + noise channel (Diamond et al. 2021 Table 1: ~0.05 M).
RELEASE_TRAINABLE = 47_659
RELEASE_BN_STATISTICS = 416


def _n(weights):
    return int(sum(np.prod(w.shape) for w in weights))


def _image(shape, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(0.0, 1.0, shape).astype(np.float32))


# Each case: (name, factory, list of input shapes) on tiny inputs; Liu's decoder takes two tensors.
CASES = {
    "unet_dilated": (lambda: ResidualUNetPrior(), [(2, 16, 16, 4)]),
    "unet_strided": (lambda: ResidualUNetPrior(first_conv="strided", levels=2), [(2, 8, 8, 4)]),
    "liu_encoding": (lambda: LiuEncodingModule(filters=16, bottleneck_filters=4), [(2, 8, 8, 3)]),
    "liu_decoding": (lambda: LiuDecodingModule(filters=16, bottleneck_filters=8), [(2, 8, 8, 6), (2, 8, 8, 5)]),
    "nidf": (lambda: NidfUNet(levels=3, base_filters=4), [(2, 8, 8, 3)]),
    "nidf_bn": (lambda: NidfUNet(levels=2, base_filters=4, residual=False, batch_norm=True), [(2, 8, 8, 3)]),
}


def _built(name, randomize, seed=1):
    factory, shapes = CASES[name]
    layer = factory()
    inputs = [_image(shape, seed=i) for i, shape in enumerate(shapes)]
    layer(*inputs)
    randomize(layer, seed=seed)
    return layer, inputs


def test_release_prior_has_the_measured_parameter_count():
    prior = ResidualUNetPrior()
    prior.build((None, 128, 128, 4))  # 3-channel image + noise channel
    assert prior.widths == [8, 16, 32]
    assert _n(prior.trainable_weights) == RELEASE_TRAINABLE
    assert _n(prior.non_trainable_weights) == RELEASE_BN_STATISTICS
    assert prior.count_params() == 48_075
    assert 0.03e6 < prior.count_params() < 0.07e6


def test_strided_prior_adds_only_the_upsampling_transposed_convolution():
    prior = ResidualUNetPrior(first_conv="strided")
    prior.build((None, 16, 16, 4))
    assert _n(prior.trainable_weights) == RELEASE_TRAINABLE + 2 * 2 * 8 * 8 + 8


def test_liu_module_parameter_counts_match_the_closed_form():
    def unit(k, cin, cout):  # conv without bias + batch norm (gamma, beta, mean, variance)
        return k * k * cin * cout + 4 * cout

    encoder = LiuEncodingModule()
    encoder.build((None, 48, 48, 3))
    assert encoder.count_params() == unit(3, 3, 128) + unit(1, 128, 32) + unit(3, 32, 32) + unit(1, 32, 128)
    decoder = LiuDecodingModule()
    decoder.build((None, 24, 24, 128), (None, 24, 24, 128))
    assert decoder.count_params() == unit(3, 256, 256) + unit(1, 256, 64) + unit(3, 64, 64) + unit(1, 64, 256)


def test_nidf_unet_parameter_count_matches_the_closed_form():
    net = NidfUNet(levels=3, base_filters=4)
    net.build((None, 8, 8, 3))
    conv = lambda k, cin, cout: k * k * cin * cout + cout  # noqa: E731 (with bias, no batch norm)
    encoder = conv(3, 3, 4) + conv(3, 4, 4) + conv(3, 4, 8) + conv(3, 8, 8) + conv(3, 8, 16) + conv(3, 16, 16)
    decoder = conv(2, 16, 8) + conv(3, 16, 8) + conv(3, 8, 8) + conv(2, 8, 4) + conv(3, 8, 4) + conv(3, 4, 4)
    assert net.count_params() == encoder + decoder + conv(1, 4, 3)
    default = NidfUNet()
    default.build((None, 64, 64, 3))
    assert default.count_params() == 1_925_667  # the count stated in the docstring


def test_prior_returns_the_input_image_minus_the_unet_residual(randomize):
    estimate, (x,) = _built("unet_dilated", randomize)
    residual = ResidualUNetPrior(residual_output=True)
    residual(x)
    residual.set_weights(estimate.get_weights())
    r = residual(x).numpy()
    assert np.abs(r).max() > 1e-2  # a non-trivial residual
    np.testing.assert_allclose(estimate(x).numpy(), x.numpy()[..., :3] - r, rtol=1e-5, atol=1e-6)


def test_release_first_convolution_is_dilated_and_keeps_full_resolution():
    prior = ResidualUNetPrior()
    prior.build((None, 16, 16, 4))
    conv = prior.conv_in[0].conv
    assert conv.dilation_rate == (2, 2) and conv.strides == (1, 1)
    strided = ResidualUNetPrior(first_conv="strided")
    strided.build((None, 16, 16, 4))
    assert strided.conv_in[0].conv.strides == (2, 2)
    assert strided(_image((1, 16, 16, 4))).shape == (1, 16, 16, 3)


def test_nidf_residual_setting_adds_the_input(randomize):
    x = _image((1, 8, 8, 3))
    for residual in (True, False):
        net = NidfUNet(levels=2, base_filters=4, residual=residual)
        net(x)
        randomize(net)
        net.output_conv.set_weights([np.zeros(w.shape, np.float32) for w in net.output_conv.weights])
        np.testing.assert_allclose(net(x).numpy(), x.numpy() if residual else 0.0, atol=1e-7)


def test_liu_encoding_skip_adds_the_first_convolution_output(randomize):
    layer, (x,) = _built("liu_encoding", randomize)
    first = layer.conv_first(x).numpy()
    assert np.abs(layer(x).numpy() - first).max() > 1e-3  # the residual branch contributes
    layer.conv_expand.bn.beta.assign(tf.fill([16], -1e4))  # branch output relu(... - 1e4) = 0
    np.testing.assert_allclose(layer(x).numpy(), first, atol=1e-6)


def test_liu_decoding_concatenates_features_then_skip(randomize):
    layer, (features, skip) = _built("liu_decoding", randomize)
    encoder = LiuEncodingModule(filters=16, bottleneck_filters=8)
    joined = tf.concat([features, skip], axis=-1)
    encoder(joined)
    encoder.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(features, skip).numpy(), encoder(joined).numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_reach_every_weight_and_are_finite(name, randomize):
    layer, inputs = _built(name, randomize)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(*inputs, training=True)))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(grads) == len(layer.trainable_weights) > 0
    for weight, grad in zip(layer.trainable_weights, grads, strict=True):
        assert grad is not None, weight.path
        assert np.all(np.isfinite(grad.numpy())) and np.any(grad.numpy() != 0), weight.path


@pytest.mark.parametrize("name", sorted(CASES))
def test_get_config_round_trip(name):
    layer = CASES[name][0]()
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == layer.get_config()


@pytest.mark.parametrize("name", sorted(CASES))
def test_keras_save_and_load_give_identical_outputs(name, randomize, tmp_path):
    factory, shapes = CASES[name]
    model_inputs = [keras.Input(shape[1:]) for shape in shapes]
    model = keras.Model(model_inputs, factory()(*model_inputs))
    randomize(model)
    inputs = [_image(shape, seed=i) for i, shape in enumerate(shapes)]
    model.save(tmp_path / "prior.keras")
    loaded = keras.saving.load_model(tmp_path / "prior.keras")
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())


@pytest.mark.parametrize("name", sorted(CASES))
def test_jit_compile_gives_equal_outputs(name, randomize):
    layer, inputs = _built(name, randomize)
    compiled = tf.function(lambda *args: layer(*args, training=False), jit_compile=True)
    np.testing.assert_allclose(compiled(*inputs).numpy(), layer(*inputs).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_mixed_float16_is_finite_and_close_to_float32(name, randomize, mixed_precision):
    factory, shapes = CASES[name]
    inputs = [_image(shape, seed=i) for i, shape in enumerate(shapes)]
    half = factory()
    out_half = half(*inputs)
    assert out_half.dtype == tf.float16
    keras.config.set_dtype_policy("float32")
    full = factory()
    full(*inputs)
    randomize(full)
    half.set_weights(full.get_weights())
    out_half, out_full = half(*inputs).numpy().astype(np.float32), full(*inputs).numpy()
    assert np.all(np.isfinite(out_half))
    np.testing.assert_allclose(out_half, out_full, atol=2e-2 * max(1.0, np.abs(out_full).max()))


@pytest.mark.parametrize("name", sorted(CASES))
def test_batch_gives_each_image_its_result_alone_at_inference(name, randomize):
    layer, inputs = _built(name, randomize)
    batch = layer(*inputs).numpy()
    # Batch and single image may sum in another order (oneDNN blocks by batch): round-off only, far below the O(1)
    # change that an image seeing the other one would make.
    bound = model_bound(layer, batch)
    for i in range(2):
        alone = layer(*[x[i : i + 1] for x in inputs]).numpy()
        np.testing.assert_allclose(batch[i : i + 1], alone, rtol=0, atol=bound)


@pytest.mark.parametrize(
    "make, shape, pattern",
    [
        (
            lambda: ResidualUNetPrior(),
            (2, 10, 16, 4),
            r"height must be divisible by 4.*received shape \(2, 10, 16, 4\)",
        ),
        (lambda: ResidualUNetPrior(), (2, 16, 12, 4), None),  # 12 is divisible by 2^(3 - 1)
        (
            lambda: ResidualUNetPrior(first_conv="strided"),
            (2, 16, 12, 4),
            r"width must be divisible by 8.*received shape \(2, 16, 12, 4\)",
        ),
        (
            lambda: ResidualUNetPrior(),
            (2, 8, 8, 2),
            r"at least output_channels=3 channels.*received shape \(2, 8, 8, 2\)",
        ),
        (lambda: ResidualUNetPrior(), (8, 8, 4), r"x must have rank 4.*received shape \(8, 8, 4\)"),
        (lambda: NidfUNet(), (1, 12, 12, 3), r"height must be divisible by 8.*received shape \(1, 12, 12, 3\)"),
        (lambda: NidfUNet(), (1, 8, 8, 4), r"output_channels=3 channels when residual=True.*\(1, 8, 8, 4\)"),
        (lambda: LiuEncodingModule(), (8, 8, 3), r"x must have rank 4.*received shape \(8, 8, 3\)"),
    ],
)
def test_bad_inputs_are_refused_with_the_received_shape(make, shape, pattern):
    if pattern is None:
        assert make()(tf.zeros(shape)).shape == (*shape[:-1], 3)
        return
    with pytest.raises(ValueError, match=pattern):
        make()(tf.zeros(shape))


def test_liu_decoding_refuses_mismatched_resolutions():
    with pytest.raises(ValueError, match=r"same height and width; received shapes \(1, 8, 8, 2\) and \(1, 4, 4, 2\)"):
        LiuDecodingModule()(tf.zeros([1, 8, 8, 2]), tf.zeros([1, 4, 4, 2]))


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: ResidualUNetPrior(levels=0), r"levels must be an integer >= 1; received 0"),
        (lambda: ResidualUNetPrior(first_conv="pooled"), r"first_conv must be one of .*received 'pooled'"),
        (lambda: ResidualUNetPrior(output_channels=2.5), r"output_channels must be an integer >= 1; received 2.5"),
        (lambda: ResidualUNetPrior(bn_momentum=1.5), r"bn_momentum must be in \[0, 1\).*received 1.5"),
        (lambda: LiuEncodingModule(filters=0), r"filters must be an integer >= 1; received 0"),
        (lambda: NidfUNet(residual="yes"), r"residual must be True or False; received 'yes'"),
    ],
)
def test_bad_settings_are_refused_in_init(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_release_initializers_he_normal_for_every_3x3_convolution():
    # slim's variance_scaling_initializer (factor 2, fan-in, truncated normal) in the release, the output too
    prior = ResidualUNetPrior()
    prior.build((None, 16, 16, 4))
    convs = [prior.output_conv] + [unit.conv for unit in prior.conv_in + prior.conv_1 + prior.conv_2 + prior.out_conv]
    for conv in convs:
        initializer = conv.kernel_initializer
        assert isinstance(initializer, keras.initializers.VarianceScaling), conv.name
        assert (initializer.scale, initializer.mode, initializer.distribution) == (2.0, "fan_in", "truncated_normal")
    kernel = prior.output_conv.kernel.numpy()
    assert abs(kernel.std() / np.sqrt(2.0 / (9 * 8)) - 1) < 0.35  # 216 draws
