import keras
import numpy as np
import pytest
import tensorflow as tf

from dirtypixels_tf.layers import anscombe
from dirtypixels_tf.layers.anscombe import GeneralizedAnscombe, InverseAnscombe
from dirtypixels_tf.physics.noise import add_noise

RNG = np.random.default_rng(0)
SIDE = 320  # 320 x 320 = 102,400 samples per (alpha, sigma, x)
CASES = [(a, s, x) for a in (0.01, 0.1) for s in (0.01, 0.05) for x in (0.1, 0.3, 0.7)]


@pytest.fixture(scope="module")
def transformed():
    """Forward GAT of flat unclipped Poisson-Gaussian images, one image per case of CASES."""
    alpha = tf.constant([c[0] for c in CASES])
    sigma = tf.constant([c[1] for c in CASES])
    x = tf.constant([c[2] for c in CASES])
    y = add_noise(tf.ones([len(CASES), SIDE, SIDE, 1]) * x[:, None, None, None], alpha, sigma, seed=[1, 2], clip=False)
    return anscombe.anscombe_forward(y, alpha, sigma).numpy().reshape(len(CASES), -1).astype(np.float64)


def test_transform_stabilizes_the_noise_std_to_one_where_counts_suffice(transformed):
    """Measured: std in [0.989, 1.015] for every case with x / alpha >= 3 (tolerance 0.025; the standard error of a
    std from 1e5 samples is 0.002); at 1 count with little read noise the GAT no longer stabilizes (std 0.86)."""
    stds = transformed.std(axis=1)
    for (alpha, sigma, x), std in zip(CASES, stds, strict=True):
        if x / alpha >= 3 - 1e-9:
            assert abs(std - 1) < 0.025, (alpha, sigma, x, std)
    assert stds[CASES.index((0.1, 0.01, 0.1))] < 0.9  # the count criterion matters: the check above has power


def test_unbiased_inverse_removes_the_low_count_bias_of_the_algebraic_inverse(transformed):
    """At 1 count (alpha 0.1, x 0.1, sigma 0.01), a denoiser's ideal output E[D] mapped back: measured errors
    +0.0071 (algebraic) and -0.0003 (unbiased, within one standard error 0.0003 of the Monte Carlo mean)."""
    alpha, sigma, x = 0.1, 0.01, 0.1
    mean_d = tf.constant(transformed[CASES.index((alpha, sigma, x))].mean(), tf.float64, shape=[1, 1, 1, 1])
    algebraic = anscombe.anscombe_inverse_algebraic(mean_d, alpha, sigma).numpy().item() - x
    unbiased = anscombe.anscombe_inverse_unbiased(mean_d, alpha, sigma).numpy().item() - x
    message = f"error of the algebraic inverse {algebraic:+.5f}, of the unbiased inverse {unbiased:+.5f}"
    assert abs(algebraic) > 0.005, message
    assert abs(unbiased) < 0.2 * abs(algebraic), message


def test_unbiased_inverse_at_high_counts_matches_the_algebraic_one(transformed):
    """At 70 counts the correction terms are < 1e-4 of the signal: both inverses recover x within 1e-3."""
    alpha, sigma, x = 0.01, 0.01, 0.7
    mean_d = tf.constant(transformed[CASES.index((alpha, sigma, x))].mean(), tf.float64, shape=[1, 1, 1, 1])
    for inverse in (anscombe.anscombe_inverse_algebraic, anscombe.anscombe_inverse_unbiased):
        assert abs(inverse(mean_d, alpha, sigma).numpy().item() - x) < 1e-3


def test_forward_matches_the_closed_form_including_the_clamp_at_zero():
    y = RNG.uniform(-0.2, 1.0, (2, 4, 4, 3))
    alpha, sigma = np.array([0.01, 0.2]), np.array([0.0, 0.05])
    z, s = y / alpha[:, None, None, None], (sigma / alpha)[:, None, None, None]
    expected = 2 * np.sqrt(np.maximum(z + 3 / 8 + s**2, 0))
    assert np.any(expected == 0)  # some pixels take the max(., 0) branch
    np.testing.assert_allclose(anscombe.anscombe_forward(y, alpha, sigma).numpy(), expected, rtol=1e-12)
    classic = 2 * np.sqrt(np.maximum(y[:1] / 0.01 + 3 / 8, 0))  # sigma = 0: Anscombe's transform of Poisson counts
    np.testing.assert_allclose(anscombe.anscombe_forward(y[:1], 0.01, 0.0).numpy(), classic, rtol=1e-12)


def test_algebraic_inverse_of_the_forward_is_the_input_plus_a_quarter_count():
    y = RNG.uniform(0.0, 1.0, (2, 4, 4, 1))
    alpha, sigma = np.array([0.01, 0.1]), np.array([0.02, 0.3])
    back = anscombe.anscombe_inverse_algebraic(anscombe.anscombe_forward(y, alpha, sigma), alpha, sigma).numpy()
    np.testing.assert_allclose(back, y + alpha[:, None, None, None] / 4, rtol=1e-12, atol=1e-14)


def test_unbiased_inverse_is_the_closed_form_above_its_floor_and_finite_monotone_below():
    d = np.linspace(0.01, 30.0, 3000).reshape(1, -1, 1, 1)
    alpha, sigma = 0.05, 0.02
    s2, r = (sigma / alpha) ** 2, np.sqrt(1.5)
    closed = (d**2 / 4 + r / 4 / d - 11 / 8 / d**2 + 5 / 8 * r / d**3 - 1 / 8 - s2) * alpha
    out = anscombe.anscombe_inverse_unbiased(d, alpha, sigma).numpy()
    above = d >= r
    np.testing.assert_allclose(out[above], closed[above], rtol=1e-12)
    assert np.all(np.isfinite(out)) and np.all(np.diff(out.ravel()) >= 0)
    at_floor = anscombe.anscombe_inverse_unbiased(np.full((1, 1, 1, 1), r), alpha, sigma).numpy().item()
    assert at_floor == pytest.approx(-s2 * alpha, abs=1e-12)  # zero counts map to 0 - s^2 exactly
    assert np.all(np.isfinite(anscombe.anscombe_inverse_unbiased(np.zeros((1, 2, 2, 1), np.float32), alpha, sigma)))


def test_max_normalization_spans_zero_to_one_and_undoes_to_float32_precision():
    d = tf.constant(RNG.uniform(1.0, 60.0, (2, 8, 8, 3)).astype(np.float32))
    normalized, scale, offset = anscombe.max_normalize(d)
    flat = normalized.numpy().reshape(2, -1)
    np.testing.assert_allclose(flat.min(axis=1), 0.0, atol=1e-7)
    np.testing.assert_allclose(flat.max(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(scale.numpy(), 1 / np.ptp(d.numpy().reshape(2, -1), axis=1), rtol=1e-6)
    np.testing.assert_allclose(anscombe.max_denormalize(normalized, scale, offset).numpy(), d.numpy(), rtol=1e-5)


def test_normalized_noise_std_is_the_scale():
    """GAT noise has std ~1, so after scaling by k it has std k: the value the noise channel carries."""
    y = add_noise(tf.fill([2, 64, 64, 1], 0.4), [0.01, 0.05], [0.01, 0.02], seed=[3, 3], clip=False)
    out = GeneralizedAnscombe()(y, tf.constant([0.01, 0.05]), tf.constant([0.01, 0.02]))
    image, scale = out["image"].numpy(), out["scale"].numpy()
    np.testing.assert_allclose(image[..., 0].reshape(2, -1).std(axis=1), scale, rtol=0.05)
    np.testing.assert_array_equal(image[..., 1], np.broadcast_to(scale[:, None, None], (2, 64, 64)))


def test_constant_image_uses_the_range_floor_and_still_undoes_exactly():
    d = tf.fill([1, 4, 4, 1], 7.5)
    normalized, scale, offset = anscombe.max_normalize(d)
    assert scale.numpy().item() == pytest.approx(1 / anscombe.RANGE_EPSILON)
    np.testing.assert_array_equal(normalized.numpy(), 0.0)
    np.testing.assert_array_equal(anscombe.max_denormalize(normalized, scale, offset).numpy(), 7.5)


def test_layers_round_trip_to_the_input_plus_a_quarter_count_with_the_algebraic_inverse():
    y = tf.constant(RNG.uniform(0.0, 1.0, (2, 8, 8, 3)).astype(np.float32))
    alpha, sigma = tf.constant([0.02, 0.1]), tf.constant([0.01, 0.04])
    out = GeneralizedAnscombe()(y, alpha, sigma)
    assert out["image"].shape == (2, 8, 8, 4)
    back = InverseAnscombe(unbiased=False)(out["image"][..., :3], alpha, sigma, out["scale"], out["offset"])
    np.testing.assert_allclose(back.numpy(), y.numpy() + alpha.numpy()[:, None, None, None] / 4, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "function", [anscombe.anscombe_forward, anscombe.anscombe_inverse_algebraic, anscombe.anscombe_inverse_unbiased]
)
def test_pure_function_gradients_match_central_differences(function):
    values = RNG.uniform(0.5, 3.0, (1, 2, 2, 1))  # > sqrt(3/2) / 2: away from the clamps of both directions
    alpha, sigma = np.array([0.3]), np.array([0.1])
    theoretical, numerical = tf.test.compute_gradient(function, [values, alpha, sigma], delta=1e-6)
    for t, n in zip(theoretical, numerical, strict=True):
        assert np.all(np.isfinite(t))
        np.testing.assert_allclose(t, n, rtol=1e-5, atol=1e-7)


def test_normalization_gradients_match_central_differences():
    d = RNG.permutation(np.linspace(1.0, 5.0, 8)).reshape(1, 2, 2, 2)  # distinct values: min and max are unique
    theoretical, numerical = tf.test.compute_gradient(lambda v: anscombe.max_normalize(v)[0], [d], delta=1e-6)
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-5, atol=1e-7)


def test_gradients_flow_through_the_layers_and_are_finite():
    y = tf.constant(RNG.uniform(0.0, 1.0, (2, 8, 8, 1)).astype(np.float32))
    alpha, sigma = tf.constant([0.02, 0.1]), tf.constant([0.01, 0.04])
    with tf.GradientTape() as tape:
        tape.watch([y, alpha, sigma])
        out = GeneralizedAnscombe()(y, alpha, sigma)
        back = InverseAnscombe()(out["image"][..., :1] * 0.9, alpha, sigma, out["scale"], out["offset"])
        loss = tf.reduce_sum(back)
    grads = tape.gradient(loss, [y, alpha, sigma])
    for grad in grads:
        assert grad is not None and np.all(np.isfinite(grad.numpy()))
    assert np.all(grads[0].numpy() != 0)


def _model(tmp_shape=(8, 8, 3)):
    y = keras.Input(tmp_shape, name="y")
    alpha, sigma = keras.Input((), name="alpha"), keras.Input((), name="sigma")
    forward = GeneralizedAnscombe(name="gat")(y, alpha, sigma)
    image = forward["image"][..., :-1] * 0.9 + 0.05
    back = InverseAnscombe(name="inverse")(image, alpha, sigma, forward["scale"], forward["offset"])
    return keras.Model([y, alpha, sigma], {"forward": forward["image"], "back": back})


def _inputs():
    y = RNG.uniform(0.0, 1.0, (2, 8, 8, 3)).astype(np.float32)
    return [y, np.array([0.02, 0.1], np.float32), np.array([0.01, 0.04], np.float32)]


@pytest.mark.parametrize(
    "layer", [GeneralizedAnscombe(), GeneralizedAnscombe(normalize=False, noise_channel=False), InverseAnscombe(False)]
)
def test_get_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == layer.get_config()


def test_keras_save_and_load_give_identical_outputs(tmp_path):
    model, inputs = _model(), _inputs()
    path = tmp_path / "anscombe.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    expected, actual = model(inputs), loaded(inputs)
    for key in ("forward", "back"):
        np.testing.assert_array_equal(actual[key].numpy(), expected[key].numpy())


def test_jit_compiled_model_matches_eager():
    model, inputs = _model(), _inputs()
    compiled = tf.function(lambda y, a, s: model([y, a, s]), jit_compile=True)
    expected, actual = model(inputs), compiled(*inputs)
    for key in ("forward", "back"):
        np.testing.assert_allclose(actual[key].numpy(), expected[key].numpy(), rtol=1e-5, atol=1e-6)


def test_layers_compute_in_float32_under_mixed_precision(mixed_precision):
    model, inputs = _model(), _inputs()
    outputs = model(inputs)
    assert model.get_layer("gat").compute_dtype == "float32"
    keras.config.set_dtype_policy("float32")
    reference = _model()(inputs)
    for key in ("forward", "back"):
        assert outputs[key].dtype == tf.float32
        np.testing.assert_array_equal(outputs[key].numpy(), reference[key].numpy())
    half = tf.constant(inputs[0], tf.float16)  # float16 input is upcast before the transform
    out = GeneralizedAnscombe()(half, inputs[1], inputs[2])["image"]
    assert out.dtype == tf.float32 and np.all(np.isfinite(out.numpy()))


def test_mixed_alpha_sigma_batch_equals_each_image_alone():
    y, alpha, sigma = _inputs()
    forward, inverse = GeneralizedAnscombe(), InverseAnscombe()
    batch = forward(y, alpha, sigma)
    back = inverse(batch["image"][..., :3], alpha, sigma, batch["scale"], batch["offset"])
    for i in range(2):
        alone = forward(y[i : i + 1], alpha[i : i + 1], sigma[i : i + 1])
        np.testing.assert_array_equal(batch["image"][i : i + 1].numpy(), alone["image"].numpy())
        back_alone = inverse(
            alone["image"][..., :3], alpha[i : i + 1], sigma[i : i + 1], alone["scale"], alone["offset"]
        )
        np.testing.assert_allclose(back[i : i + 1].numpy(), back_alone.numpy(), rtol=1e-6)


def test_wrong_rank_is_refused_with_the_received_shape():
    with pytest.raises(ValueError, match=r"y must have rank 4.*received shape \(8, 8, 1\)"):
        GeneralizedAnscombe()(tf.zeros([8, 8, 1]), tf.constant(0.1), tf.constant(0.1))
    with pytest.raises(ValueError, match=r"image must have rank 4.*received shape \(2, 8, 8\)"):
        InverseAnscombe()(tf.zeros([2, 8, 8]), tf.constant(0.1), tf.constant(0.1))


def test_unknown_channel_count_is_refused():
    with pytest.raises(ValueError, match=r"known number of channels.*received shape \(2, 8, 8, None\)"):
        tf.function(lambda y: GeneralizedAnscombe()(y, tf.constant(0.1), tf.constant(0.1))).get_concrete_function(
            tf.TensorSpec([2, 8, 8, None], tf.float32)
        )


@pytest.mark.parametrize(
    "alpha, sigma, pattern",
    [
        ([0.1, 0.0], [0.1, 0.1], r"alpha must be finite and > 0; received alpha=\[0\.1.*, 0\.0\]"),
        ([0.1, -0.2], [0.1, 0.1], r"alpha must be finite and > 0; received alpha=\[0\.1.*, -0\.2.*\]"),
        ([0.1, 0.1], [0.1, -0.5], r"sigma must be finite and >= 0; received sigma=\[0\.1.*, -0\.5\]"),
        ([0.1, 0.1, 0.1], [0.1, 0.1], r"alpha must have shape \[2\].*received shape \(3,\)"),
        (
            [[0.1, 0.1]],
            [0.1, 0.1],
            r"alpha must be a scalar or have shape \[batch\] or \[batch, 3\] \(per colour\); received shape \(1, 2\)",
        ),
    ],
)
def test_bad_noise_parameters_are_refused_eagerly(alpha, sigma, pattern):
    y = tf.zeros([2, 8, 8, 1])
    with pytest.raises(ValueError, match=pattern):
        GeneralizedAnscombe()(y, tf.constant(alpha), tf.constant(sigma))
    with pytest.raises(ValueError, match=pattern):
        InverseAnscombe()(y + 2.0, tf.constant(alpha), tf.constant(sigma))


def test_non_positive_alpha_fails_inside_a_graph_with_the_same_message():
    run = tf.function(lambda y, a, s: GeneralizedAnscombe()(y, a, s)["image"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="alpha must be finite and > 0"):
        run(tf.zeros([2, 8, 8, 1]), tf.constant([0.1, 0.0]), tf.constant([0.1, 0.1]))


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: GeneralizedAnscombe(normalize=1), r"normalize must be True or False; received 1"),
        (lambda: GeneralizedAnscombe(noise_channel="yes"), r"noise_channel must be True or False; received 'yes'"),
        (lambda: InverseAnscombe(unbiased=None), r"unbiased must be True or False; received None"),
    ],
)
def test_bad_settings_are_refused_in_init(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_scale_without_offset_is_refused():
    with pytest.raises(ValueError, match="scale and offset go together"):
        InverseAnscombe()(tf.ones([1, 4, 4, 1]), tf.constant(0.1), tf.constant(0.1), scale=tf.ones([1]))
