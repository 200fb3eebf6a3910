"""Shrinkage fields: the HQS x-update against dense normal equations, filter operators, proximal operators, wiring
of the stages, gradients, batching and Keras round trips."""

import math

import keras
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf
from dense_operators import dense_convolution
from tolerances import EPS32, float32_bound

from dirtypixels_tf.layers import shrinkage
from dirtypixels_tf.layers.shrinkage import CnnProximal, RbfShrinkage, ShrinkageFields, ShrinkageFieldsStage

RNG = np.random.default_rng(11)


def random(*shape):
    return RNG.random(shape).astype(np.float32)


def signed(*shape):
    return (RNG.random(shape) - 0.5).astype(np.float32)


def dense_x_update(y, z, filters, ratio, psf=None):
    """Per channel: solve (ratio A^T A + sum_i C_i^T C_i) x = ratio A^T y + sum_i C_i^T z_i in float64.

    y [H, W, C]; z [H, W, C, F]; psf None, [kh, kw] or [kh, kw, C]. Singular systems use the pseudo-inverse.
    """
    height, width, channels = y.shape
    cs = [dense_convolution(filters[..., i].astype(np.float64), height, width) for i in range(filters.shape[-1])]
    x = np.zeros_like(y, dtype=np.float64)
    for c in range(channels):
        if psf is None:
            a = np.eye(height * width)
        else:
            kernel = psf if psf.ndim == 2 else psf[..., c]
            a = dense_convolution(kernel.astype(np.float64), height, width)
        lhs = ratio * a.T @ a + sum(ci.T @ ci for ci in cs)
        rhs = ratio * a.T @ y[..., c].reshape(-1) + sum(ci.T @ z[..., c, i].reshape(-1) for i, ci in enumerate(cs))
        x[..., c] = (np.linalg.pinv(lhs, rcond=1e-9) @ rhs).reshape(height, width)
    return x


def _round_off_bound(model, y, outputs):
    """`float32_bound` for two evaluations of ShrinkageFields that differ in summation order only. The longest sum:
    the adjoint's, the H * W terms of each filter's spectrum summed over the F filters. Per stage 8 stacked sums:
    forward and inverse FFT of the responses, 3 convolutions of the CNN proximal, the spectra of z and y and the
    inverse FFT of the x-update. Scale: the images' (in [0, 1]) or the outputs' if larger. An image that sees
    another image's PSF moves x by a large fraction of its scale, orders of magnitude above this."""
    n = y.shape[1] * y.shape[2] * model.num_filters
    return float32_bound(n, max(1.0, float(np.abs(outputs).max())), depth=8 * len(model.stages))


# ---- filters ----------------------------------------------------------------------------------------------------


def test_dct_filter_bank_is_24_orthonormal_zero_mean_filters():
    bank = shrinkage.dct_filter_bank(5, 24)
    assert bank.shape == (5, 5, 24)
    flat = bank.reshape(25, 24).astype(np.float64)
    # Products in float64: only the float32 rounding of the entries (eps / 2 relative) remains, which moves a product
    # of unit-norm filters by <= eps and a sum of 25 entries (sum |f| <= 5) by <= 2.5 eps; a wrong norm or a
    # non-orthogonal filter is off by > 1e-2.
    np.testing.assert_allclose(flat.T @ flat, np.eye(24), rtol=0, atol=EPS32)
    np.testing.assert_allclose(flat.sum(axis=0), 0.0, rtol=0, atol=2.5 * EPS32)


def test_filter_responses_equal_scipy_wrap_convolution():
    x = random(1, 6, 7, 2)
    filters = signed(5, 3, 4)
    responses = shrinkage.filter_responses(x, filters).numpy()
    assert responses.shape == (1, 6, 7, 2, 4)
    for c in range(2):
        for i in range(4):
            expected = scipy.ndimage.convolve(x[0, ..., c].astype(np.float64), filters[..., i], mode="wrap")
            np.testing.assert_allclose(responses[0, ..., c, i], expected, atol=1e-5)


def test_filter_adjoint_is_the_adjoint_of_the_responses():
    x, z, filters = random(2, 5, 6, 3), signed(2, 5, 6, 3, 4), signed(3, 3, 4)
    lhs = np.sum(shrinkage.filter_responses(x, filters).numpy().astype(np.float64) * z)
    rhs = np.sum(x * shrinkage.filter_adjoint(z, filters).numpy().astype(np.float64))
    assert abs(lhs - rhs) <= 1e-5 * max(1.0, abs(lhs))


# ---- the HQS x-update -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "psf_shape, zero_mean",
    [(None, True), (None, False), ((3, 3), True), ((2, 3, 2), False)],
    ids=["identity-dct", "identity-random", "blur-shared", "blur-per-channel"],
)
def test_x_update_equals_dense_solution_of_the_normal_equations(psf_shape, zero_mean):
    height, width, channels, ratio = 6, 5, 2, 0.4
    filters = shrinkage.dct_filter_bank(3, 4) if zero_mean else signed(3, 3, 4)
    psf = None if psf_shape is None else random(*psf_shape)
    y, z = random(1, height, width, channels), signed(1, height, width, channels, 4)
    x = shrinkage.hqs_x_update(y, z, filters, ratio, psf).numpy()[0]
    np.testing.assert_allclose(x, dense_x_update(y[0], z[0], filters, ratio, psf), atol=1e-5)


def test_x_update_with_zero_mean_filters_and_identity_keeps_the_mean_of_y():
    """DC: C_i(0) = 0 for zero-mean filters, so the mean of x is the mean of y whatever z is (no epsilon there)."""
    y, z = random(2, 6, 6, 3), signed(2, 6, 6, 3, 24)
    x = shrinkage.hqs_x_update(y, z, shrinkage.dct_filter_bank(5, 24), 0.05).numpy()
    np.testing.assert_allclose(x.mean(axis=(1, 2)), y.mean(axis=(1, 2)), atol=1e-6)


def test_x_update_is_the_pseudo_inverse_where_blur_and_filters_vanish_together():
    """A 2-tap box blur has K = 0 at the horizontal Nyquist frequency and so does the central difference filter:
    the system is singular there and the x-update returns the minimum-norm solution, finite."""
    psf = np.array([[0.5, 0.5]], np.float32)
    filters = np.array([[1.0, 0.0, -1.0]], np.float32)[..., None]
    y, z = random(1, 4, 6, 1), signed(1, 4, 6, 1, 1)
    x = shrinkage.hqs_x_update(y, z, filters, 0.7, psf).numpy()[0]
    assert np.all(np.isfinite(x))
    np.testing.assert_allclose(x, dense_x_update(y[0], z[0], filters, 0.7, psf), atol=1e-5)


def test_x_update_gradients_match_finite_differences():
    theoretical, numerical = tf.test.compute_gradient(
        lambda y, z, c, r, k: shrinkage.hqs_x_update(y, z, c, r, k),
        [random(1, 3, 3, 1), signed(1, 3, 3, 1, 2), signed(2, 2, 2), np.float32(0.8), random(2, 2)],
        delta=1e-2,
    )
    for t, n in zip(theoretical, numerical, strict=True):
        np.testing.assert_allclose(t, n, atol=3e-3)


def test_x_update_with_per_image_psfs_and_ratios_equals_each_image_alone():
    y, z, filters = random(3, 5, 5, 2), signed(3, 5, 5, 2, 3), signed(3, 3, 3)
    psfs, ratios = random(3, 3, 3, 2), np.array([0.1, 1.0, 4.0], np.float32)
    batched = shrinkage.hqs_x_update(y, z, filters, ratios, psfs).numpy()
    for i in range(3):
        alone = shrinkage.hqs_x_update(y[i : i + 1], z[i : i + 1], filters, float(ratios[i]), psfs[i]).numpy()
        np.testing.assert_allclose(batched[i], alone[0], atol=1e-5)


# ---- proximal operators -----------------------------------------------------------------------------------------


def test_rbf_shrinkage_starts_as_the_identity_inside_its_range():
    layer = RbfShrinkage()
    t = np.linspace(-1.0, 1.0, 201, dtype=np.float32).reshape(1, 1, 201, 1) * np.ones((1, 1, 1, 3), np.float32)
    np.testing.assert_allclose(layer(t).numpy(), t, atol=1e-5)


def test_rbf_shrinkage_is_a_weighted_sum_of_gaussians_per_channel():
    layer = RbfShrinkage(num_centers=5, value_range=1.0)
    t = signed(2, 3, 3, 2) * 2
    layer.build(t.shape)
    weights = signed(2, 5)
    layer.rbf_weights.assign(weights)
    centres, width = np.linspace(-1, 1, 5), 0.5
    expected = np.einsum("...cj,cj->...c", np.exp(-((t[..., None] - centres) ** 2) / (2 * width**2)), weights)
    # float64 reference; float32 sums 5 terms <= max|w|, each after 3 rounded stages (difference, square, exp: its
    # error is its argument's, <= 8 here, times eps, damped by the Gaussian to < eps); a wrong centre or width is > 1e-2.
    bound = float32_bound(5, np.abs(weights).max(), depth=3)
    np.testing.assert_allclose(layer(t).numpy(), expected, rtol=0, atol=bound)


def test_cnn_proximal_is_three_1x1_convolutions_with_the_stated_parameter_count():
    layer = CnnProximal()
    out = layer(random(2, 4, 4, 24))
    assert out.shape == (2, 4, 4, 24)
    assert [c.kernel.shape for c in layer.convolutions] == [(1, 1, 24, 24)] * 3
    assert layer.count_params() == 3 * (24 * 24 + 24)  # 1800
    # 1x1 kernels: every output pixel depends on its own pixel only.
    x = random(1, 4, 4, 24)
    x2 = x.copy()
    x2[0, 0, 0] += 1.0
    changed = np.any(layer(x2).numpy() != layer(x).numpy(), axis=-1)[0]
    assert changed[0, 0] and changed.sum() == 1


# ---- stages -----------------------------------------------------------------------------------------------------


def _stage_prox_responses(stage, x):
    """The proximal operator's output as the stage feeds it (tested against the stage's own result below)."""
    responses = shrinkage.filter_responses(x, stage.filters).numpy()  # [B, H, W, C, F]
    if stage.merge_channels:
        z = stage.proximal_layer(responses.sum(axis=3)).numpy()
        return np.repeat(z[:, :, :, None, :], x.shape[-1], axis=3)
    per_channel = [stage.proximal_layer(responses[:, :, :, c]).numpy() for c in range(x.shape[-1])]
    return np.stack(per_channel, axis=3)


@pytest.mark.parametrize("merge_channels", [False, True])
@pytest.mark.parametrize("proximal", ["cnn", "rbf"])
def test_stage_output_is_the_dense_x_update_of_the_proximal_responses(proximal, merge_channels):
    stage = ShrinkageFieldsStage(
        num_filters=4, filter_size=3, proximal=proximal, merge_channels=merge_channels, lambda_init=0.6, beta_init=2.0
    )
    x, y = random(1, 5, 6, 3), random(1, 5, 6, 3)
    out = stage(x, y).numpy()[0]
    z = _stage_prox_responses(stage, x)
    np.testing.assert_allclose(out, dense_x_update(y[0], z[0], stage.filters.numpy(), 0.3), atol=1e-5)


@pytest.mark.parametrize("merge_channels", [False, True])
def test_separate_channels_do_not_mix_and_merged_channels_do(merge_channels):
    stage = ShrinkageFieldsStage(num_filters=4, filter_size=3, merge_channels=merge_channels)
    x, y = random(1, 6, 6, 3), random(1, 6, 6, 3)
    x2 = x.copy()
    x2[..., 1:] = random(1, 6, 6, 2)
    delta = np.abs(stage(x2, y).numpy()[..., 0] - stage(x, y).numpy()[..., 0]).max()
    assert (delta > 1e-4) if merge_channels else (delta == 0.0)


def test_shrinkage_fields_composes_its_stages_with_doubling_beta():
    model = ShrinkageFields(num_stages=3, num_filters=4, filter_size=3, lambda_init=0.5, beta_init=1.5)
    y = random(2, 6, 6, 1)
    out = model(y).numpy()
    assert [stage.name for stage in model.stages] == ["stage_0", "stage_1", "stage_2"]
    np.testing.assert_allclose([s.ratio.numpy() for s in model.stages], [0.5 / 1.5, 0.5 / 3, 0.5 / 6], rtol=1e-6)
    x = y
    for stage in model.stages:
        x = stage(x, y)
    np.testing.assert_array_equal(out, x.numpy())
    explicit = ShrinkageFields(num_stages=2, num_filters=4, filter_size=3, beta_init=[1.0, 5.0])
    explicit(y)
    np.testing.assert_allclose([s.ratio.numpy() for s in explicit.stages], [1.0, 0.2], rtol=1e-6)


def test_fixed_psf_equals_passing_the_same_psf_per_call():
    psf = random(3, 3)
    psf /= psf.sum()
    fixed = ShrinkageFields(num_filters=4, filter_size=3, operator="blur", psf=psf)
    per_call = ShrinkageFields(num_filters=4, filter_size=3, operator="blur")
    y = random(2, 6, 6, 3)
    a = fixed(y)
    per_call(y, psf)
    per_call.set_weights(fixed.get_weights())
    # a shared OTF against a batch of OTFs: FFTs that may sum in another order; a wrong PSF moves x by > 1e-2
    bound = _round_off_bound(fixed, y, a)
    np.testing.assert_allclose(
        per_call(y, np.broadcast_to(psf[None, ..., None], (2, 3, 3, 3))).numpy(), a, rtol=0, atol=bound
    )


def test_per_image_psfs_equal_running_each_image_alone():
    model = ShrinkageFields(num_stages=2, num_filters=4, filter_size=3, operator="blur", merge_channels=True)
    y, psfs = random(3, 6, 6, 3), random(3, 3, 3, 1)
    batched = model(y, psfs).numpy()
    bound = _round_off_bound(model, y, batched)  # batch and single image may sum in another order
    for i in range(3):
        np.testing.assert_allclose(model(y[i : i + 1], psfs[i : i + 1]).numpy()[0], batched[i], rtol=0, atol=bound)


@pytest.mark.parametrize("proximal", ["cnn", "rbf"])
@pytest.mark.parametrize("operator", ["identity", "blur"])
def test_gradients_reach_every_weight(proximal, operator):
    """At initialisation the RBF operator is the identity, and with A = I then x_k = y for any filters, lambda and
    beta (zero gradients, correctly); the weights are moved off their initial values first."""
    model = ShrinkageFields(num_stages=2, num_filters=4, filter_size=3, proximal=proximal, operator=operator)
    y = random(2, 6, 6, 3)
    psf = random(2, 3, 3, 3) if operator == "blur" else None
    model(y, psf)
    model.set_weights([w + 0.05 * RNG.standard_normal(w.shape).astype(np.float32) for w in model.get_weights()])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(y, psf) - 0.5))
    gradients = tape.gradient(loss, model.trainable_weights)
    assert len(gradients) == 2 * (3 + (6 if proximal == "cnn" else 1))
    for weight, gradient in zip(model.trainable_weights, gradients, strict=True):
        assert gradient is not None, weight.path
        assert np.all(np.isfinite(gradient.numpy())) and np.any(gradient.numpy() != 0), weight.path


def test_a_few_adam_steps_reduce_the_denoising_error():
    ramp = np.tile(np.linspace(0.2, 0.8, 8, dtype=np.float32), (8, 1))
    clean = np.stack([ramp, ramp.T], axis=0)[..., None]  # a horizontal and a vertical ramp, [2, 8, 8, 1]
    noisy = (clean + 0.05 * RNG.standard_normal(clean.shape)).astype(np.float32)
    model = ShrinkageFields(num_filters=8, filter_size=3, proximal="rbf", proximal_options={"num_centers": 15})
    optimizer = keras.optimizers.Adam(0.01)

    def loss():
        return tf.reduce_mean(tf.square(model(noisy) - clean))

    before = float(loss())
    for _ in range(15):
        with tf.GradientTape() as tape:
            value = loss()
        optimizer.apply_gradients(
            zip(tape.gradient(value, model.trainable_weights), model.trainable_weights, strict=True)
        )
    assert float(loss()) < 0.8 * before


# ---- Keras round trips ------------------------------------------------------------------------------------------


def _cases():
    """(name, layer factory, input shapes without batch): every layer of the module."""
    return {
        "rbf": (lambda: RbfShrinkage(num_centers=7), [(4, 4, 3)]),
        "cnn": (lambda: CnnProximal(hidden_units=5), [(4, 4, 3)]),
        "stage": (lambda: ShrinkageFieldsStage(num_filters=4, filter_size=3, lambda_init=0.7), [(6, 6, 2), (6, 6, 2)]),
        "stage-blur-fixed": (
            lambda: ShrinkageFieldsStage(num_filters=4, filter_size=3, operator="blur", psf=np.full((3, 3), 1 / 9)),
            [(6, 6, 2), (6, 6, 2)],
        ),
        "fields-rbf-merged": (
            lambda: ShrinkageFields(
                2,
                num_filters=4,
                filter_size=3,
                proximal="rbf",
                merge_channels=True,
                proximal_options={"num_centers": 9},
            ),
            [(6, 6, 3)],
        ),
        "fields-blur-per-image": (
            lambda: ShrinkageFields(2, num_filters=4, filter_size=3, operator="blur"),
            [(6, 6, 3), (3, 3, 3)],
        ),
    }


def _arrays(shapes):
    return [random(2, *shape) for shape in shapes]


@pytest.mark.parametrize("case", list(_cases()))
def test_get_config_round_trip(case):
    factory, shapes = _cases()[case]
    layer = factory()
    arrays = _arrays(shapes)
    out = layer(*arrays)
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone(*arrays)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(*arrays).numpy(), out.numpy())


@pytest.mark.parametrize("case", list(_cases()))
def test_keras_save_and_load_give_identical_outputs(case, tmp_path):
    factory, shapes = _cases()[case]
    layer = factory()
    inputs = [keras.Input(shape) for shape in shapes]
    model = keras.Model(inputs, layer(*inputs))
    model.set_weights([w + 0.01 * RNG.standard_normal(w.shape).astype(np.float32) for w in model.get_weights()])
    arrays = _arrays(shapes)
    model.save(tmp_path / "layer.keras")
    loaded = keras.models.load_model(tmp_path / "layer.keras")
    np.testing.assert_array_equal(loaded(arrays).numpy(), model(arrays).numpy())


@pytest.mark.parametrize("case", list(_cases()))
def test_runs_under_xla_with_equal_outputs(case):
    factory, shapes = _cases()[case]
    layer = factory()
    arrays = _arrays(shapes)
    eager = layer(*arrays).numpy()
    compiled = tf.function(lambda *args: layer(*args), jit_compile=True)
    np.testing.assert_allclose(compiled(*arrays).numpy(), eager, atol=1e-5)


@pytest.mark.parametrize("case", list(_cases()))
def test_mixed_float16_is_finite_and_close_to_float32(case, mixed_precision):
    factory, shapes = _cases()[case]
    layer16 = factory()
    arrays = _arrays(shapes)
    out16 = layer16(*arrays)
    assert out16.dtype == tf.float16
    keras.mixed_precision.set_global_policy("float32")
    layer32 = factory()
    layer32(*arrays)
    layer32.set_weights(layer16.get_weights())
    out32 = layer32(*arrays).numpy()
    assert np.all(np.isfinite(out16.numpy()))
    np.testing.assert_allclose(out16.numpy().astype(np.float32), out32, atol=2e-2 * max(1.0, np.abs(out32).max()))


def test_fourier_weights_stay_float32_under_mixed_precision(mixed_precision):
    stage = ShrinkageFieldsStage(num_filters=4, filter_size=3)
    stage(random(1, 6, 6, 1), random(1, 6, 6, 1))
    assert {stage.filters.dtype, stage.log_lambda.dtype, stage.log_beta.dtype} == {"float32"}
    assert stage.proximal_layer.compute_dtype == "float16"


# ---- bad input --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (ShrinkageFieldsStage, {"proximal": "mlp"}, "proximal must be one of cnn, rbf; received 'mlp'"),
        (ShrinkageFieldsStage, {"operator": "mosaic"}, "operator must be one of identity, blur; received 'mosaic'"),
        (ShrinkageFieldsStage, {"num_filters": 25}, r"num_filters must be an integer in \[1, 24\] .*received 25"),
        (ShrinkageFieldsStage, {"filter_size": 1}, "filter_size must be an integer >= 2; received 1"),
        (ShrinkageFieldsStage, {"lambda_init": 0}, "lambda_init must be finite and > 0; received 0"),
        (ShrinkageFieldsStage, {"beta_init": -2.0}, "beta_init must be finite and > 0; received -2.0"),
        (ShrinkageFieldsStage, {"psf": np.ones((3, 3))}, "psf is only used with operator 'blur'.*'identity'"),
        (ShrinkageFieldsStage, {"proximal_options": [3]}, r"proximal_options must be a dict .*received \[3\]"),
        (ShrinkageFields, {"num_stages": 0}, "num_stages must be an integer >= 1; received 0"),
        (ShrinkageFields, {"num_stages": 2, "beta_init": [1.0]}, r"one value per stage \(2\); received \[1.0\]"),
        (RbfShrinkage, {"num_centers": 1}, "num_centers must be >= 2; received 1"),
        (RbfShrinkage, {"value_range": 0.0}, "value_range must be finite and > 0; received 0.0"),
        (CnnProximal, {"hidden_units": 0}, "hidden_units must be an integer >= 1; received 0"),
    ],
)
def test_bad_constructor_arguments_name_the_argument_and_value(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_unknown_proximal_option_is_refused():
    with pytest.raises(ValueError, match="num_centres"):
        ShrinkageFieldsStage(proximal="rbf", proximal_options={"num_centres": 5})


@pytest.mark.parametrize(
    "x_shape, y_shape, psf_shape, operator, message",
    [
        ((6, 6, 1), (1, 6, 6, 1), None, "identity", r"x must have rank 4 .*received shape \(6, 6, 1\)"),
        ((1, 6, 6, 2), (1, 6, 6, 3), None, "identity", r"y must have 2 channel.*received shape \(1, 6, 6, 3\)"),
        ((1, 6, 6, 1), (1, 6, 5, 1), None, "identity", "x and y must have the same height and width"),
        ((1, 4, 4, 1), (1, 4, 4, 1), None, "identity", "filters of size 5x5 are larger than the image \\(4x4\\)"),
        ((1, 6, 6, 1), (1, 6, 6, 1), (1, 7, 7, 1), "blur", "psf of size 7x7 is larger than the image \\(6x6\\)"),
        ((1, 6, 6, 1), (1, 6, 6, 1), (1, 3, 3, 1), "identity", "psf must not be given with operator 'identity'"),
        ((1, 6, 6, 1), (1, 6, 6, 1), None, "blur", "operator 'blur' needs a psf .*received none"),
    ],
)
def test_bad_call_inputs_name_the_argument_and_value(x_shape, y_shape, psf_shape, operator, message):
    stage = ShrinkageFieldsStage(operator=operator)
    psf = None if psf_shape is None else np.ones(psf_shape, np.float32)
    with pytest.raises(ValueError, match=message):
        stage(np.zeros(x_shape, np.float32), np.zeros(y_shape, np.float32), psf)


def test_responses_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"z must be \[batch, 4, 4, 1, 3\] .*received shape \(1, 4, 4, 1, 2\)"):
        shrinkage.hqs_x_update(np.zeros((1, 4, 4, 1), np.float32), np.zeros((1, 4, 4, 1, 2)), signed(3, 3, 3), 1.0)
    with pytest.raises(ValueError, match="ratio must be finite and > 0; received 0"):
        shrinkage.hqs_x_update(np.zeros((1, 4, 4, 1), np.float32), np.zeros((1, 4, 4, 1, 3)), signed(3, 3, 3), 0)


def test_rbf_default_centres_are_schmidt_and_roth_rescaled():
    layer = RbfShrinkage()
    assert layer.centers.shape == (63,)
    np.testing.assert_allclose(layer.centers[[0, -1]], [-1.2, 1.2], rtol=1e-6)
    assert math.isclose(layer.width, 2.4 / 62, rel_tol=1e-6)
