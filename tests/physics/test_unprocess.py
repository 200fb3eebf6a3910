"""Unprocessing (Brooks et al. 2019): closed forms, the exact round trip, the cameras' matrices, the sensor option."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf
from tolerances import float32_bound

from dirtypixels_tf.physics import mosaic, unprocess
from dirtypixels_tf.physics.sensor import SensorModel

REAL_CR2 = pathlib.Path(__file__).parents[2] / ".cache/rawtran/usr/share/doc/rawtran/IMG_5952.CR2"


def images(batch=6, size=48, seed=(5, 9)):
    return tf.random.stateless_uniform([batch, size, size, 3], seed)


def test_tone_curve_and_gamma_closed_forms():
    y = tf.constant([0.0, 0.25, 0.5, 0.9, 1.0])
    np.testing.assert_allclose(unprocess.tone_curve(y).numpy(), 3 * y.numpy() ** 2 - 2 * y.numpy() ** 3, atol=1e-7)
    np.testing.assert_allclose(unprocess.tone_curve(unprocess.inverse_tone_curve(y)).numpy(), y.numpy(), atol=1e-6)
    assert unprocess.inverse_tone_curve(tf.constant(0.15625)).numpy() == pytest.approx(0.25, abs=1e-6)
    assert unprocess.gamma_expand(tf.constant(0.5)).numpy() == pytest.approx(0.5**2.2, rel=1e-6)
    assert unprocess.gamma_compress(unprocess.gamma_expand(tf.constant(0.3))).numpy() == pytest.approx(0.3, rel=1e-6)


@pytest.mark.parametrize("highlight_preserving", [False, True])
def test_round_trip_is_exact_to_float32_round_off(highlight_preserving):
    x = images()
    camera = unprocess.sample_camera(6, tf.constant([1, 2]))
    raw = unprocess.unprocess(x, camera, highlight_preserving=highlight_preserving, clip=False)
    back = unprocess.process(raw, camera).numpy()
    camera_rgb = tf.einsum(
        "bhwj,bij->bhwi", unprocess.gamma_expand(unprocess.inverse_tone_curve(x)), camera["rgb_to_camera"]
    )
    exact = np.mean(camera_rgb.numpy(), axis=-1) <= unprocess.HIGHLIGHT_KNEE  # the plain inverse gains there
    error = np.abs(back - x.numpy()).max(axis=-1)
    # 16 rounded stages (tone curve and its inverse, gammas, gains, the 3-term matrix products and the inverse) on
    # values <= 1, the inverse matrix amplifying by its condition number; wrong gains or matrices are off by > 1e-2
    condition = max(np.linalg.cond(matrix) for matrix in camera["rgb_to_camera"].numpy())
    assert error[exact].max() < float32_bound(3, condition, depth=16)
    assert exact.mean() > 0.99


def test_grey_stays_grey_and_highlights_stay_saturated():
    camera = unprocess.sample_camera(4, tf.constant([3, 4]))
    for name in unprocess.CAMERA_XYZ_TO_CAMERA:
        np.testing.assert_allclose(unprocess.rgb_to_camera_matrix(name).sum(axis=1), 1.0, rtol=1e-12)
    grey = tf.fill([4, 2, 2, 3], 0.5)
    raw = unprocess.unprocess(grey, camera).numpy()
    linear = unprocess.gamma_expand(unprocess.inverse_tone_curve(tf.constant(0.5))).numpy()
    np.testing.assert_allclose(
        raw, np.broadcast_to(linear / camera["gains"].numpy()[:, None, None, :], raw.shape), rtol=1e-5
    )
    white = tf.ones([4, 2, 2, 3])
    np.testing.assert_allclose(unprocess.unprocess(white, camera).numpy(), 1.0, rtol=1e-6)  # preserved
    plain = unprocess.unprocess(white, camera, highlight_preserving=False).numpy()
    np.testing.assert_allclose(
        plain, np.broadcast_to(1.0 / camera["gains"].numpy()[:, None, None, :], plain.shape), rtol=1e-5
    )


def test_randomization_follows_the_settings_and_the_seed():
    camera = unprocess.sample_camera(4000, tf.constant([7, 7]))
    gains = camera["gains"].numpy()
    red, blue = gains[:, 0] / gains[:, 1], gains[:, 2] / gains[:, 1]
    assert 1.9 <= red.min() and red.max() <= 2.4 and 1.5 <= blue.min() and blue.max() <= 1.9
    assert np.mean(1.0 / gains[:, 1]) == pytest.approx(0.8, abs=0.01)  # 1 / brightness ~ N(0.8, 0.1)
    matrices = camera["rgb_to_camera"].numpy()
    canon, nikon = (unprocess.rgb_to_camera_matrix(name) for name in ("Canon EOS 30D", "Nikon D5100"))
    # Every matrix is a convex combination of the two cameras': its weight on Canon lies in [0, 1].
    weight = ((matrices - nikon) * (canon - nikon)).sum(axis=(1, 2)) / ((canon - nikon) ** 2).sum()
    assert weight.min() >= -1e-5 and weight.max() <= 1 + 1e-5 and weight.std() > 0.2
    np.testing.assert_allclose(matrices, nikon + weight[:, None, None] * (canon - nikon), atol=1e-5)
    again = unprocess.sample_camera(4000, tf.constant([7, 7]))
    assert np.array_equal(again["gains"].numpy(), gains)
    fixed = unprocess.UnprocessSettings(
        cameras="Canon EOS 30D", red_gain=(2, 2), blue_gain=(1.5, 1.5), brightness_std=0
    )
    one = unprocess.sample_camera(3, tf.constant([0, 1]), fixed)
    np.testing.assert_allclose(one["gains"].numpy(), [[2.5, 1.25, 1.875]] * 3, rtol=1e-6)
    np.testing.assert_allclose(one["rgb_to_camera"].numpy(), [canon] * 3, rtol=1e-6)


def test_bad_settings_are_reported():
    with pytest.raises(ValueError, match="camera must be one of Canon EOS 30D, Nikon D5100; received 'Leica M'"):
        unprocess.UnprocessSettings(cameras=("Leica M",))
    with pytest.raises(ValueError, match=r"red_gain must be finite with 0.0 < low <= high; received \(2.4, 1.9\)"):
        unprocess.UnprocessSettings(red_gain=(2.4, 1.9))
    with pytest.raises(ValueError, match="brightness_mean must be a number in"):
        unprocess.UnprocessSettings(brightness_mean=3)
    with pytest.raises(ValueError, match="unprocess must be None, True or an UnprocessSettings; received 'yes'"):
        SensorModel(unprocess="yes")


def test_canon_matrix_is_libraws_for_the_real_cr2():
    rawpy = pytest.importorskip("rawpy")
    if not REAL_CR2.is_file():
        pytest.skip(f"the real Canon CR2 is absent: {REAL_CR2}")
    with rawpy.imread(str(REAL_CR2)) as raw:
        matrix = np.asarray(raw.rgb_xyz_matrix)[:3]
    np.testing.assert_allclose(unprocess.CAMERA_XYZ_TO_CAMERA["Canon EOS 30D"], matrix, atol=5e-5)


def test_nikon_matrix_is_the_fit_to_its_measured_sensitivities():
    colour = pytest.importorskip("colour")
    shape = colour.SpectralShape(400, 700, 10)
    sensitivities = colour.MSDS_CAMERA_SENSITIVITIES["Nikon 5100 (NPL)"].copy().align(shape).values
    observer = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"].copy().align(shape).values
    fit = np.linalg.lstsq(observer, sensitivities, rcond=None)[0].T
    np.testing.assert_allclose(unprocess.CAMERA_XYZ_TO_CAMERA["Nikon D5100"], fit / fit[1, 1], atol=5e-5)


def test_sensor_model_unprocesses_before_the_mosaic():
    grey = tf.fill([2, 8, 8, 3], 0.5)
    settings = unprocess.UnprocessSettings(
        cameras="Canon EOS 30D", red_gain=(2, 2), blue_gain=(1.6, 1.6), brightness_std=0
    )
    sensor = SensorModel(alpha=1e-10, sigma=1e-10, pattern="RGGB", unprocess=settings)
    measured = sensor.simulate(grey, tf.constant([0, 1]))
    assert sorted(measured) == ["alpha", "gains", "raw", "rgb_to_camera", "sigma"]
    linear = unprocess.gamma_expand(unprocess.inverse_tone_curve(tf.constant(0.5))).numpy()
    expected = mosaic.mosaic(tf.fill([2, 8, 8, 3], 1.0) * linear / measured["gains"][:, None, None, :], "RGGB")
    np.testing.assert_allclose(measured["raw"].numpy(), expected.numpy(), atol=1e-4)
    again = sensor.simulate(grey, tf.constant([0, 1]))
    assert np.array_equal(again["raw"].numpy(), measured["raw"].numpy())
    plain = SensorModel(alpha=1e-10, sigma=1e-10, pattern="RGGB").simulate(grey, tf.constant([0, 1]))
    assert sorted(plain) == ["alpha", "raw", "sigma"]
    np.testing.assert_allclose(plain["raw"].numpy(), 0.5, atol=1e-4)  # the release's path: sRGB as linear data


def test_experiment_config_turns_it_on_and_the_default_keeps_the_release_path():
    from dirtypixels_tf.training import config as config_lib
    from dirtypixels_tf.training.data import make_sensor

    path = config_lib.resolve_config("default")
    assert make_sensor(config_lib.load_config(path)).unprocess is None
    sensor = make_sensor(config_lib.load_config(path, ["data.unprocess=true"]))
    assert sensor.unprocess == unprocess.UnprocessSettings()
