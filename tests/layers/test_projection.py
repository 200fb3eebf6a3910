"""Soft projection: closed forms against dense linear algebra, limits, gradients, batching, Keras round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from dense_operators import dense_convolution
from tolerances import float32_bound

from dirtypixels_tf.layers import projection
from dirtypixels_tf.layers.projection import SoftProjection
from dirtypixels_tf.physics import mosaic
from dirtypixels_tf.physics.fourier import psf_to_otf

RNG = np.random.default_rng(7)
# An invertible PSF: |K| >= 0.6 - 0.4 = 0.2 at every frequency.
INVERTIBLE_PSF = np.array([[0.05, 0.1, 0.05], [0.1, 0.6, 0.05], [0.0, 0.05, 0.0]], np.float32)


# ---- dense reference operators (vectors are [H, W, C] flattened in C order) -------------------------------------


def dense_blur(psf, height, width, channels):
    """Block matrix of a per-channel blur; psf [kh, kw] (shared) or [kh, kw, C]."""
    psf = np.asarray(psf, np.float64)
    if psf.ndim == 2:
        psf = np.repeat(psf[..., None], channels, axis=-1)
    matrix = np.zeros((height * width * channels, height * width * channels))
    for c in range(channels):
        block = dense_convolution(psf[..., c], height, width)
        matrix[c::channels, c::channels] = block
    return matrix


def dense_mosaic(height, width, pattern):
    """Matrix of S: row p picks, at pixel p = (i, j), the colour its filter passes, read from the pattern's name
    (its letters are the 2x2 tile (0, 0), (0, 1), (1, 0), (1, 1); e.g. BGGR: B at even rows and even columns)."""
    matrix = np.zeros((height * width, height * width * 3))
    for i in range(height):
        for j in range(width):
            p = i * width + j
            matrix[p, p * 3 + "RGB".index(pattern[2 * (i % 2) + j % 2])] = 1.0
    return matrix


def dense_soft_projection(a, v, y, gamma):
    """argmin 1/2 ||y - A z||^2 + gamma/2 ||v - z||^2 by solving the normal equations in float64."""
    lhs = a.T @ a + gamma * np.eye(a.shape[1])
    return np.linalg.solve(lhs, a.T @ y.reshape(-1).astype(np.float64) + gamma * v.reshape(-1))


def random(*shape):
    return RNG.random(shape).astype(np.float32)


# ---- (a) A = S --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", mosaic.PATTERNS)
def test_mosaic_projection_equals_dense_minimizer(pattern):
    v, y = random(2, 4, 6, 3), random(2, 4, 6, 1)
    gammas = np.array([0.5, 3.0], np.float32)
    z = projection.soft_projection_mosaic(v, y, gammas, pattern).numpy()
    a = dense_mosaic(4, 6, pattern)
    for i in range(2):
        expected = dense_soft_projection(a, v[i], y[i], gammas[i]).reshape(4, 6, 3)
        np.testing.assert_allclose(z[i], expected, atol=1e-5)


def test_mosaic_projection_is_the_release_formula_with_gamma_beta_over_lambda():
    v, y = random(1, 4, 4, 3), random(1, 4, 4, 1)
    lam, beta = 1.7, 4.0
    masks = mosaic.bayer_masks_numpy(4, 4, "BGGR").astype(np.float64)
    v64, y64 = v.astype(np.float64), y.astype(np.float64)
    release = (lam * masks * y64 + beta * v64) / (lam * masks + beta)  # x = (lambda M y + beta v) / (lambda M + beta)
    z = projection.soft_projection_mosaic(v, y, beta / lam).numpy()
    # float64 reference; float32 rounds 5 times (beta / lambda, gamma v, the sum, M + gamma, the quotient) on values
    # <= max|x|; taking gamma = lambda / beta instead, or v where y belongs, moves x by > 1e-2.
    np.testing.assert_allclose(z, release, rtol=0, atol=float32_bound(1, np.abs(release).max(), depth=5))


def test_mosaic_projection_with_small_gamma_keeps_measured_pixels_and_v_elsewhere():
    v, y = random(1, 4, 4, 3), random(1, 4, 4, 1)
    z = projection.soft_projection_mosaic(v, y, 1e-6).numpy()[0]
    masks = mosaic.bayer_masks_numpy(4, 4, "BGGR")
    measured = np.broadcast_to(y[0], masks.shape)
    np.testing.assert_allclose(z[masks == 1], measured[masks == 1], atol=1e-5)
    np.testing.assert_allclose(z[masks == 0], v[0][masks == 0], atol=1e-6)
    # Red of BGGR sits at (1, 1): the R channel there is the RAW value.
    assert abs(z[1, 1, 0] - y[0, 1, 1, 0]) < 1e-5


# ---- (b) A = k* -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "psf_shape",
    [(3, 3), (4, 3, 2), (2, 2, 1)],
    ids=["shared", "per-channel-even-height", "even-size"],
)
def test_blur_projection_equals_dense_minimizer(psf_shape):
    height, width, channels, gamma = 6, 5, 2, 0.3
    psf = random(*psf_shape)
    v, y = random(1, height, width, channels), random(1, height, width, channels)
    z = projection.soft_projection_blur(v, y, gamma, psf).numpy()[0]
    a = dense_blur(psf if psf.ndim == 2 or psf.shape[-1] == channels else psf[..., 0], height, width, channels)
    expected = dense_soft_projection(a, v[0], y[0], gamma).reshape(height, width, channels)
    np.testing.assert_allclose(z, expected, atol=1e-5)


def test_blur_projection_with_small_gamma_inverts_an_invertible_psf():
    v, y = random(1, 6, 6, 1), random(1, 6, 6, 1)
    z = projection.soft_projection_blur(v, y, 1e-6, INVERTIBLE_PSF).numpy()[0]
    a = dense_blur(INVERTIBLE_PSF, 6, 6, 1)
    np.testing.assert_allclose(a @ z.reshape(-1), y[0].reshape(-1), atol=1e-4)


# ---- (c) A = S k* -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", mosaic.PATTERNS)
@pytest.mark.parametrize("gamma", [0.1, 2.0])
def test_mosaic_blur_projection_meets_the_stated_cg_tolerance(gamma, pattern):
    """With the default settings the true relative residual of the normal equations (of A = S k* with the pattern's
    S) is <= the tolerance (1e-5) up to float32 rounding of z, and so ||z - z*|| <= ||r|| / gamma."""
    height = width = 6
    psf = random(3, 3, 3)
    psf /= psf.sum(axis=(0, 1))
    v, y = random(1, height, width, 3), random(1, height, width, 1)
    z = projection.soft_projection_mosaic_blur(v, y, gamma, psf, pattern).numpy()[0].reshape(-1).astype(np.float64)
    a = dense_mosaic(height, width, pattern) @ dense_blur(psf, height, width, 3)
    lhs = a.T @ a + gamma * np.eye(a.shape[1])
    rhs = a.T @ y[0].reshape(-1) + gamma * v[0].reshape(-1)
    residual = np.linalg.norm(rhs - lhs @ z)
    assert residual <= 1.5 * projection.DEFAULT_CG_TOLERANCE * np.linalg.norm(rhs)
    exact = np.linalg.solve(lhs, rhs)
    assert np.linalg.norm(z - exact) <= residual / gamma + 1e-6


def test_mosaic_blur_projection_with_small_gamma_satisfies_the_measurements():
    """gamma -> 0: z approaches the projection of v onto {z : S k* z = y}; the gap is <= gamma / min|K|^2 ~ 3e-4."""
    psf = np.zeros((3, 3), np.float32)
    psf[1, 1], psf[0, 1], psf[1, 2] = 0.8, 0.1, 0.1  # |K| >= 0.6
    v, y = random(1, 4, 4, 3), random(1, 4, 4, 1)
    z = projection.soft_projection_mosaic_blur(v, y, 1e-4, psf, iterations=200, tolerance=1e-7).numpy()[0]
    a = dense_mosaic(4, 4, "BGGR") @ dense_blur(psf, 4, 4, 3)
    np.testing.assert_allclose(a @ z.reshape(-1), y[0].reshape(-1), atol=1e-3)


# ---- gradients --------------------------------------------------------------------------------------------------


def _assert_jacobians_match(function, arguments, atol):
    theoretical, numerical = tf.test.compute_gradient(function, arguments, delta=1e-2)
    for t, n in zip(theoretical, numerical, strict=True):
        np.testing.assert_allclose(t, n, atol=atol)


def test_mosaic_projection_gradients_match_finite_differences():
    _assert_jacobians_match(
        lambda v, y, g: projection.soft_projection_mosaic(v, y, g),
        [random(1, 2, 2, 3), random(1, 2, 2, 1), np.float32(0.7)],
        atol=2e-3,
    )


def test_blur_projection_gradients_match_finite_differences():
    _assert_jacobians_match(
        lambda v, y, g, k: projection.soft_projection_blur(v, y, g, k),
        [random(1, 3, 3, 1), random(1, 3, 3, 1), np.float32(0.7), random(2, 2)],
        atol=2e-3,
    )


def test_mosaic_blur_projection_gradients_match_finite_differences():
    _assert_jacobians_match(
        lambda v, y, g, k: projection.soft_projection_mosaic_blur(v, y, g, k, iterations=10, tolerance=1e-7),
        [random(1, 2, 2, 3), random(1, 2, 2, 1), np.float32(1.0), random(2, 2)],
        atol=2e-3,
    )


@pytest.mark.parametrize("operator", projection.OPERATORS)
def test_gradients_reach_gamma_and_inputs(operator):
    layer, v, y, psf = _layer_and_inputs(operator)
    v, y, psf = tf.constant(v), tf.constant(y), tf.constant(psf) if psf is not None else None
    with tf.GradientTape() as tape:
        tape.watch([v, y] + ([psf] if psf is not None else []))
        loss = tf.reduce_sum(tf.square(layer(v, y, psf) - 0.3))
    sources = [layer.log_gamma, v, y] + ([psf] if psf is not None else [])
    for gradient in tape.gradient(loss, sources):
        assert gradient is not None
        assert np.all(np.isfinite(gradient.numpy())) and np.any(gradient.numpy() != 0)


def _round_off_bound(operator, v, outputs, iterations=projection.DEFAULT_CG_ITERATIONS):
    """`float32_bound` for two evaluations of a projection that sum in other orders: the mosaic's 5 roundings per
    pixel (see the release formula's test), the blur's two transforms of H * W terms, and per CG iteration two
    transforms and two inner products of H * W * C terms. Scale: the images' (in [0, 1]) or the outputs' if larger."""
    height, width, channels = v.shape[1:]
    scale = max(1.0, float(np.abs(outputs).max()))
    if operator == "mosaic":
        return float32_bound(1, scale, depth=5)
    if operator == "blur":
        return float32_bound(height * width, scale, depth=2)
    return float32_bound(height * width * channels, scale, depth=4 * iterations)


# ---- batching ---------------------------------------------------------------------------------------------------


def test_batched_otf_equals_psf_to_otf_per_image():
    psfs = random(3, 3, 2, 4)
    batched = projection.psf_otf(psfs, 5, 6, 4).numpy()
    # Batched and single FFTs may sum the 5 * 6 terms in another order; a term is <= max|psf| but partial sums reach
    # the sum of a kernel's 9 values, the scale here; a wrong kernel, channel or centre moves the OTF by > 1e-2.
    bound = float32_bound(5 * 6, np.abs(psfs).sum(axis=(1, 2)).max())
    for i in range(3):
        np.testing.assert_allclose(batched[i], psf_to_otf(psfs[i], 5, 6, 4).numpy(), rtol=0, atol=bound)
    single_channel = projection.psf_otf(psfs[..., :1], 5, 6, 4).numpy()
    expected = psf_to_otf(psfs[1, ..., 0], 5, 6, 1).numpy()[0]
    np.testing.assert_allclose(single_channel[1, 3], expected, rtol=0, atol=bound)


@pytest.mark.parametrize("operator", ["blur", "mosaic_blur"])
def test_per_image_psfs_and_gammas_equal_running_each_image_alone(operator):
    v = random(3, 4, 4, 3)
    y = random(3, 4, 4, 3 if operator == "blur" else 1)
    psfs, gammas = random(3, 3, 3, 3), np.array([0.2, 1.0, 5.0], np.float32)
    function = projection.soft_projection_blur if operator == "blur" else projection.soft_projection_mosaic_blur
    batched = function(v, y, gammas, psfs).numpy()
    bound = _round_off_bound(operator, v, batched)  # far below the O(1) change of another image's PSF or gamma
    for i in range(3):
        alone = function(v[i : i + 1], y[i : i + 1], float(gammas[i]), psfs[i]).numpy()[0]
        np.testing.assert_allclose(batched[i], alone, rtol=0, atol=bound)


# ---- the Keras layer --------------------------------------------------------------------------------------------


def _layer_and_inputs(operator, fixed_psf=False, **kwargs):
    """A layer plus inputs (v, y, psf-or-None) for a batch of 2 images of 4x4."""
    v = random(2, 4, 4, 3)
    y = random(2, 4, 4, 3 if operator == "blur" else 1)
    psf = None
    if operator != "mosaic":
        psf = random(2, 3, 3, 3)
        psf /= psf.sum(axis=(1, 2), keepdims=True)
    if fixed_psf and psf is not None:
        layer = SoftProjection(operator, gamma_init=0.8, psf=psf[0], **kwargs)
        return layer, v, y, None
    return SoftProjection(operator, gamma_init=0.8, **kwargs), v, y, psf


def _model(operator, fixed_psf=False, **kwargs):
    layer, v, y, psf = _layer_and_inputs(operator, fixed_psf, **kwargs)
    inputs = [keras.Input(v.shape[1:]), keras.Input(y.shape[1:])]
    if psf is not None:
        inputs.append(keras.Input(psf.shape[1:]))
    model = keras.Model(inputs, layer(*inputs))
    arrays = [v, y] if psf is None else [v, y, psf]
    return model, layer, arrays


@pytest.mark.parametrize("pattern", mosaic.PATTERNS)
@pytest.mark.parametrize("operator", ["mosaic", "mosaic_blur"])
def test_layer_projects_with_its_pattern(operator, pattern):
    """The layer's pattern reaches the operator: its output is the dense minimizer with that pattern's S (CG run to
    a relative residual of 1e-7, so ||z - z*|| <= 1e-7 ||b|| / gamma ~ 1e-6, under the float32 rounding allowed)."""
    cg = {"cg_tolerance": 1e-7, "cg_iterations": 100} if operator == "mosaic_blur" else {}
    layer, v, y, psf = _layer_and_inputs(operator, pattern=pattern, **cg)
    z = layer(v, y, psf).numpy()
    a = dense_mosaic(4, 4, pattern)
    for i in range(2):
        dense = a if psf is None else a @ dense_blur(psf[i], 4, 4, 3)
        expected = dense_soft_projection(dense, v[i], y[i], 0.8).reshape(4, 4, 3)
        np.testing.assert_allclose(z[i], expected, atol=1e-5)


def test_gamma_is_positive_and_starts_at_gamma_init():
    layer = SoftProjection("mosaic", gamma_init=0.25)
    layer.build((None, 4, 4, 3))
    np.testing.assert_allclose(layer.gamma.numpy(), 0.25, rtol=1e-6)
    layer.log_gamma.assign(-30.0)
    assert layer.gamma.numpy() > 0
    frozen = SoftProjection("mosaic", trainable_gamma=False)
    frozen.build((None, 4, 4, 3))
    assert frozen.trainable_weights == [] and len(frozen.non_trainable_weights) == 1


def test_beta_parameterization_divides_by_the_shared_lambda():
    # the release: x = (lambda M y + beta v) / (lambda M + beta), i.e. gamma = beta / lambda
    v = tf.random.stateless_uniform((1, 4, 4, 3), [1, 2])
    y = tf.random.stateless_uniform((1, 4, 4, 1), [3, 4])
    layer = SoftProjection("mosaic", gamma_init=4.0, parameterization="beta")
    z = layer(v, y, lam=tf.constant(2.0))
    assert [w.name for w in layer.weights] == ["beta"]
    masks = mosaic.bayer_masks_numpy(4, 4)
    expected = (2.0 * masks * y.numpy() + 4.0 * v.numpy()) / (2.0 * masks + 4.0)
    np.testing.assert_allclose(z.numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="needs the shared lambda"):
        layer(v, y)
    with pytest.raises(ValueError, match="lam is only taken by a SoftProjection with parameterization 'beta'"):
        SoftProjection("mosaic")(v, y, lam=1.0)
    with pytest.raises(ValueError, match="parameterization must be one of"):
        SoftProjection("mosaic", parameterization="gamma")
    clone = SoftProjection.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_release_gamma_inits_follow_beta_over_lambda():
    assert projection.release_gamma_inits(4) == [2.0, 4.0, 8.0, 16.0]
    assert projection.release_gamma_inits(2, lambda_init=2.0, beta_init=1.0) == [0.5, 1.0]


@pytest.mark.parametrize(
    "operator, fixed",
    [("mosaic", False), ("blur", True), ("blur", False), ("mosaic_blur", False)],
)
def test_get_config_round_trip(operator, fixed):
    layer, v, y, psf = _layer_and_inputs(operator, fixed, pattern="RGGB")
    clone = SoftProjection.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    out = layer(v, y, psf)
    clone(v, y, psf)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(v, y, psf).numpy(), out.numpy())


@pytest.mark.parametrize(
    "operator, fixed",
    [("mosaic", False), ("blur", True), ("mosaic_blur", False)],
)
def test_keras_save_and_load_give_identical_outputs(operator, fixed, tmp_path):
    model, layer, arrays = _model(operator, fixed, **({"cg_iterations": 12} if operator == "mosaic_blur" else {}))
    layer.log_gamma.assign(np.log(1.3))
    path = tmp_path / "projection.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded(arrays).numpy(), model(arrays).numpy())
    assert loaded.layers[-1].get_config() == layer.get_config()


@pytest.mark.parametrize("operator", projection.OPERATORS)
def test_runs_under_xla_with_equal_outputs(operator):
    layer, v, y, psf = _layer_and_inputs(operator)
    eager = layer(v, y, psf).numpy()
    compiled = tf.function(lambda *args: layer(*args), jit_compile=True)
    args = (v, y) if psf is None else (v, y, psf)
    # XLA fuses and reorders: round-off only, far below the O(1) change of a wrong operator or gamma
    bound = _round_off_bound(operator, v, eager)  # the layer runs DEFAULT_CG_ITERATIONS
    np.testing.assert_allclose(compiled(*args).numpy(), eager, rtol=0, atol=bound)


@pytest.mark.parametrize("operator", projection.OPERATORS)
def test_mixed_float16_is_finite_and_close_to_float32(operator, mixed_precision):
    model16, layer16, arrays = _model(operator)
    out16 = model16(arrays)
    assert out16.dtype == tf.float16 and layer16.log_gamma.dtype == "float32"
    keras.mixed_precision.set_global_policy("float32")
    layer32 = SoftProjection.from_config({**layer16.get_config(), "dtype": "float32"})
    out32 = layer32(*arrays)
    assert np.all(np.isfinite(out16.numpy()))
    np.testing.assert_allclose(out16.numpy().astype(np.float32), out32.numpy(), atol=1e-2)


# ---- bad input --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"operator": "deblur"}, "operator must be one of .*'deblur'"),
        ({"gamma_init": 0.0}, "gamma_init must be finite and > 0; received 0.0"),
        ({"gamma_init": -1}, "gamma_init .*received -1"),
        ({"pattern": "RGBG"}, "pattern must be one of .*'RGBG'"),
        ({"operator": "mosaic", "psf": np.ones((3, 3))}, "psf is only used by the blur operators"),
        ({"operator": "blur", "cg_iterations": 5}, "cg_iterations .*'blur' with cg_iterations=5"),
        ({"operator": "mosaic_blur", "cg_iterations": 0}, "cg_iterations must be an integer >= 1; received 0"),
        ({"operator": "mosaic_blur", "cg_tolerance": 1e-9}, "cg_tolerance must be >= 1e-07 .*received 1e-09"),
        ({"operator": "blur", "psf": np.ones(3)}, r"psf must be a finite .*received shape \(3,\)"),
    ],
)
def test_bad_constructor_arguments_name_the_argument_and_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SoftProjection(**kwargs)


@pytest.mark.parametrize(
    "operator, v_shape, y_shape, psf_shape, message",
    [
        ("mosaic", (4, 4, 3), (1, 4, 4, 1), None, r"v must have rank 4 .*received shape \(4, 4, 3\)"),
        ("mosaic", (1, 4, 4, 2), (1, 4, 4, 1), None, r"v must have 3 channel.*received shape \(1, 4, 4, 2\)"),
        ("mosaic", (1, 4, 4, 3), (1, 4, 4, 3), None, r"y must have 1 channel.*received shape \(1, 4, 4, 3\)"),
        ("mosaic", (1, 5, 4, 3), (1, 5, 4, 1), None, "v must have even height and width .*received 5x4"),
        ("mosaic", (1, 4, 4, 3), (1, 4, 6, 1), None, "v and y must have the same height and width"),
        ("blur", (1, 4, 4, 3), (1, 4, 4, 3), (1, 5, 5, 3), "psf of size 5x5 is larger than the image \\(4x4\\)"),
        ("blur", (1, 4, 4, 3), (1, 4, 4, 3), (1, 3, 3, 2), r"psf must be .*received shape \(1, 3, 3, 2\)"),
        ("blur", (1, 4, 4, 3), (1, 4, 4, 3), None, "operator 'blur' needs a psf .*received none"),
        ("mosaic_blur", (1, 6, 5, 3), (1, 6, 5, 1), (1, 3, 3, 1), "v must have even height and width .*6x5"),
    ],
)
def test_bad_call_inputs_name_the_argument_and_value(operator, v_shape, y_shape, psf_shape, message):
    layer = SoftProjection(operator)
    psf = None if psf_shape is None else np.ones(psf_shape, np.float32) / 9
    with pytest.raises(ValueError, match=message):
        layer(np.zeros(v_shape, np.float32), np.zeros(y_shape, np.float32), psf)


def test_psf_given_twice_or_to_the_mosaic_is_refused():
    fixed = SoftProjection("blur", psf=np.ones((3, 3)) / 9)
    images = np.zeros((1, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match=r"psf was fixed at construction \(shape \(3, 3\)\)"):
        fixed(images, images, np.ones((1, 3, 3, 1), np.float32))
    with pytest.raises(ValueError, match="psf must not be given .*'mosaic'"):
        SoftProjection("mosaic")(np.zeros((1, 4, 4, 3), np.float32), images, np.ones((1, 3, 3, 1), np.float32))


def test_non_positive_gamma_to_the_pure_function_is_refused():
    with pytest.raises(ValueError, match="gamma must be finite and > 0; received -0.5"):
        projection.soft_projection_mosaic(np.zeros((1, 4, 4, 3), np.float32), np.zeros((1, 4, 4, 1), np.float32), -0.5)
