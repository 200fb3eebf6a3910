"""Every ISP model: builds, runs forward and a training step, round-trips through .keras, runs under XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dirtypixels_tf.models import isp
from dirtypixels_tf.physics import mosaic, optics
from dirtypixels_tf.physics.sensor import SensorModel

SIZE = 32
PSF = optics.gaussian_psf(5, 1.0)
CONFIGS = {
    "anscombe": ("anscombe", {}),
    "anscombe_2_iterations_bilinear_init": (
        "anscombe",
        {"iterations": 2, "initialization": "bilinear", "anscombe_input": "mosaic", "scalars": "log_gamma"},
    ),
    "anscombe_strided": ("anscombe", {"first_conv": "strided"}),
    "anscombe_ablation_no_anscombe": ("anscombe", {"anscombe": False}),
    "bilinear": ("bilinear", {}),
    "chen_unet": ("chen_unet", {"base_filters": 4}),
    "chen_unet_anscombe": ("chen_unet", {"base_filters": 4, "anscombe": True}),
    "shrinkage_denoise": ("shrinkage_fields", {"num_filters": 8, "filter_size": 3}),
    "shrinkage_deblur_fixed_psf": ("shrinkage_fields", {"task": "deblur_denoise", "psf": PSF, "num_filters": 8}),
    "shrinkage_deblur_psf_input": ("shrinkage_fields", {"task": "deblur_denoise", "num_filters": 8}),
    "liu": ("liu", {"encoder_filters": 8, "decoder_filters": 16}),
    "nidf": ("nidf", {"unet_options": {"levels": 2, "base_filters": 4}}),
}


def make_inputs(model, batch=2, seed=0):
    images = np.random.default_rng(seed).random((batch, SIZE, SIZE, 3)).astype(np.float32)
    features = SensorModel(light_levels="6lux").simulate(images, seed=[seed, 1])
    if "psf" in model.input:
        features["psf"] = tf.constant(np.broadcast_to(PSF[None, :, :, None], (batch, 5, 5, 3)))
    return images, features


def build(config, psf_size=(5, 5)):
    name, settings = CONFIGS[config]
    layer = isp.build_isp(name, **settings)
    return isp.isp_model(layer, (SIZE, SIZE), psf_size if layer.takes_psf else None)


def image_of(output):
    return output["image"] if isinstance(output, dict) else output


@pytest.mark.parametrize("config", list(CONFIGS))
def test_forward_training_step_save_load_and_xla(config, tmp_path):
    model = build(config)
    clean, features = make_inputs(model)
    output = image_of(model(features))
    assert output.shape == (2, SIZE, SIZE, 3)
    assert np.all(np.isfinite(output.numpy()))

    if model.trainable_weights:
        target = {"image": clean, "denoised": clean} if isinstance(model.output, dict) else clean
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae")
        before = [w.numpy().copy() for w in model.trainable_weights]
        model.fit(features, target, epochs=1, batch_size=2, verbose=0)
        after = [w.numpy() for w in model.trainable_weights]
        assert any(not np.array_equal(b, a) for b, a in zip(before, after))

    path = tmp_path / f"{config}.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(image_of(restored(features)).numpy(), image_of(model(features)).numpy())

    compiled = tf.function(lambda f: image_of(model(f, training=False)), jit_compile=True)
    np.testing.assert_allclose(compiled(features).numpy(), image_of(model(features)).numpy(), atol=2e-4, rtol=1e-3)


def test_batch_of_mixed_noise_levels_equals_each_image_alone():
    model = build("anscombe")
    _, features = make_inputs(model, batch=3)
    assert len(np.unique(features["alpha"])) == 1  # 6lux is one light level: give each image its own below
    features["alpha"] = tf.constant([0.05, 0.1, 0.2])
    features["sigma"] = tf.constant([0.01, 0.1, 0.3])
    batched = model(features).numpy()
    for i in range(3):
        alone = model({k: v[i : i + 1] for k, v in features.items()}).numpy()
        np.testing.assert_allclose(batched[i : i + 1], alone, atol=1e-5)


def test_release_anscombe_network_layout():
    layer = isp.build_isp("anscombe")
    isp.isp_model(layer, (128, 128))
    scalars = {w.path: float(w.numpy()) for w in layer.weights if w.shape == ()}
    assert scalars == {"isp/lambda": 1.0, "isp/projection_0/beta": 2.0}  # the release's gauss_den/lambda, iter_0/beta
    assert float(layer.projections[0].gamma_value(layer.lam)) == pytest.approx(2.0)
    # prior 47,659 + lambda + beta: one more than a single learned gamma
    assert sum(int(np.prod(w.shape)) for w in layer.trainable_weights) == 47_661
    assert layer.unbiased_inverse is False  # the release's joint models use the algebraic inverse


def test_release_scalars_compute_the_log_gamma_function_at_initialization():
    release = isp.build_isp("anscombe", iterations=2)
    log_gamma = isp.build_isp("anscombe", iterations=2, scalars="log_gamma")
    model_a, model_b = isp.isp_model(release, (SIZE, SIZE)), isp.isp_model(log_gamma, (SIZE, SIZE))
    for a, b in zip(release.priors, log_gamma.priors):
        b.set_weights(a.get_weights())
    _, features = make_inputs(model_a)
    np.testing.assert_allclose(model_a(features).numpy(), model_b(features).numpy(), atol=1e-6)
    assert [float(p.beta.numpy()) for p in release.projections] == [2.0, 4.0]
    release.lam.assign(2.0)  # gamma = beta / lambda: doubling lambda halves every gamma
    assert [float(p.gamma_value(release.lam)) for p in release.projections] == [1.0, 2.0]


def test_release_normalization_runs_over_the_masked_three_channel_image():
    # The release takes min and max of the GAT of S^T y, zeros at the unmeasured colours included, so with every
    # measured pixel above 0 the offset is D(0) = 2 sqrt(3/8 + s^2), not the smallest measured value.
    layer = isp.build_isp("anscombe")
    isp.isp_model(layer, (SIZE, SIZE))
    raw = tf.constant(np.random.default_rng(3).uniform(0.2, 0.8, (2, SIZE, SIZE, 1)), tf.float32)
    alpha, sigma = tf.constant([0.01, 0.02]), tf.constant([0.02, 0.05])
    x, y, scale, transformed = layer.transform(raw, alpha, sigma)
    s = sigma.numpy() / alpha.numpy()
    np.testing.assert_allclose(transformed["offset"].numpy(), 2 * np.sqrt(0.375 + s**2), rtol=1e-6)
    d = 2 * np.sqrt(raw.numpy()[..., 0] / alpha.numpy()[:, None, None] + 0.375 + s[:, None, None] ** 2)
    np.testing.assert_allclose(scale.numpy(), 1 / (d.max(axis=(1, 2)) - 2 * np.sqrt(0.375 + s**2)), rtol=1e-5)
    masks = mosaic.bayer_masks_numpy(SIZE, SIZE)
    np.testing.assert_allclose(x.numpy() * (1 - masks), 0.0, atol=1e-6)  # unmeasured entries: (D(0) - min D) k = 0
    np.testing.assert_allclose(y.numpy()[..., 0], np.sum(x.numpy() * masks, axis=-1), atol=1e-6)
    # the paper's variant normalizes over the mosaic's pixels: its offset is the smallest measured D
    paper = isp.build_isp("anscombe", anscombe_input="mosaic")
    isp.isp_model(paper, (SIZE, SIZE))
    np.testing.assert_allclose(paper.transform(raw, alpha, sigma)[3]["offset"].numpy(), d.min(axis=(1, 2)), rtol=1e-5)


def test_bilinear_isp_is_exact_on_constant_images():
    model = build("bilinear")
    images = np.full((1, SIZE, SIZE, 3), [0.2, 0.4, 0.6], np.float32)
    features = {"raw": mosaic.mosaic(images), "alpha": tf.ones([1]), "sigma": tf.ones([1])}
    np.testing.assert_allclose(model(features).numpy(), images, atol=1e-6)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="isp must be one of anscombe, bilinear, .*received 'isp9'"):
        isp.build_isp("isp9")
    with pytest.raises(ValueError, match="iterations must be an integer >= 1; received 0"):
        isp.build_isp("anscombe", iterations=0)
    with pytest.raises(ValueError, match="task must be one of denoise, deblur_denoise; received 'sharpen'"):
        isp.build_isp("shrinkage_fields", task="sharpen")
    with pytest.raises(ValueError, match=r"divisible by 32 for ChenUNet; received shape \(1, 48, 48, 1\)"):
        isp.build_isp("chen_unet")(np.zeros((1, 48, 48, 1), np.float32), np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match="raw must have even height and width"):
        isp.build_isp("bilinear")(np.zeros((1, 7, 8, 1), np.float32))
    with pytest.raises(ValueError, match=r"raw must have 1 channel\(s\)"):
        isp.build_isp("anscombe")(np.zeros((1, 8, 8, 3), np.float32), np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match="psf_size must be given"):
        isp.isp_model(isp.build_isp("shrinkage_fields", task="deblur_denoise"), (SIZE, SIZE))
