"""The real-capture front end (data/camera_raw.prepare_capture) against the release's protocol for its captured
phone DNGs (Diamond et al. 2021 release, test_captured_images.py with nets/isp.py is_real_data=True), transcribed
below in NumPy from reading that script, on DNGs written here with write_dng."""

import pathlib

import numpy as np
import pytest
import rawpy
import tifffile
from tolerances import EPS32

from dirtypixels_tf.catalog import CAPTURE_METERING_TARGET
from dirtypixels_tf.data import camera_raw
from dirtypixels_tf.physics import noise
from dirtypixels_tf.physics.mosaic import PATTERNS, bayer_masks_numpy

REPO_ROOT = pathlib.Path(__file__).parents[2]
REAL_CR2 = REPO_ROOT / ".cache/rawtran/usr/share/doc/rawtran/IMG_5952.CR2"
BLACK, WHITE = 64, 1023  # the release's phone: 10-bit codes over a black level of 64
NEUTRAL = (0.52, 1.0, 0.71)  # a warm light: the camera sees a grey card as reddish


# ---- the release's protocol, transcribed ----
def release_crop_and_subsample(img, target_size):
    factor = int(np.floor(min(img.shape) / target_size))
    ch = (img.shape[0] - factor * target_size) / 2
    cw = (img.shape[1] - factor * target_size) / 2
    cropped = img[int(np.floor(ch)) : -int(np.ceil(ch)), int(np.floor(cw)) : -int(np.ceil(cw))]
    return cropped[::factor, ::factor]


def release_protocol(path, eval_image_size):
    """(input image [S, S, 3] with zeros at the colours not seen, alpha [3], sigma [3]) as the release's script
    computes them for one DNG: EXIF BlackLevel and AsShotNeutral (read here with tifffile, where the release used
    exiftool), raw / 1023, per-plane white balance, crop_and_subsample, 1 / 98th percentile, clip, and the fixed
    noise 0.0153 / 0.0328 times scale / awb."""
    with tifffile.TiffFile(path) as tiff:
        tags = tiff.pages[0].tags
        black_level = float(np.ravel(tags[50714].value)[0])
        awb = [n / d for n, d in np.reshape(tags[50728].value, (-1, 2))]
    with rawpy.imread(str(path)) as loaded:
        raw_img = (loaded.raw_image_visible.astype(np.float64) - black_level) / 1023.0
    b = raw_img[::2, ::2] / awb[2]
    r = raw_img[1::2, 1::2] / awb[0]
    g1 = raw_img[1::2, ::2] / awb[1]
    g2 = raw_img[::2, 1::2] / awb[1]
    b, r, g1, g2 = (release_crop_and_subsample(img, eval_image_size // 2) for img in [b, r, g1, g2])
    scale_factor = 1.0 / np.percentile(np.stack([b, r, g1, g2], axis=2), 98)
    mosaiced = np.zeros((eval_image_size, eval_image_size, 3))
    mosaiced[::2, ::2, 2] = b
    mosaiced[1::2, 1::2, 0] = r
    mosaiced[1::2, ::2, 1] = g1
    mosaiced[::2, 1::2, 1] = g2
    input_img = np.clip(mosaiced * scale_factor, 0, 1)
    scaling = scale_factor / np.array(awb)
    return input_img, 0.0153 * scaling, 0.0328 * scaling


# ---- DNGs of dim, noisy scenes under a coloured light ----
def dim_capture(shape, pattern="BGGR", seed=0, level=0.08, noisy=True):
    """A smooth random scene seen through `pattern` under the light NEUTRAL, at a low exposure, with
    Poisson-Gaussian noise (noisy=True): a mosaic in [0, 1]."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.1, 1.0, (shape[0] // 16 + 2, shape[1] // 16 + 2, 3))
    rows = np.linspace(0, coarse.shape[0] - 1, shape[0])
    cols = np.linspace(0, coarse.shape[1] - 1, shape[1])
    scene = coarse[rows.astype(int)][:, cols.astype(int)] * level * np.array(NEUTRAL)
    clean = (bayer_masks_numpy(*shape, pattern) * scene).sum(axis=-1)
    if not noisy:
        return clean
    alpha, sigma = 0.002, 0.003
    noisy = alpha * rng.poisson(clean / alpha) + rng.normal(0, sigma, shape)
    return np.clip(noisy, 0, 1)


@pytest.mark.parametrize("shape, size", [((620, 470), 224), ((150, 132), 64)])
def test_front_end_equals_the_release_protocol(tmp_path, shape, size):
    path = tmp_path / "capture.dng"
    camera_raw.write_dng(
        path, dim_capture(shape), "BGGR", bits=12, black_level=BLACK, white_level=WHITE, as_shot_neutral=NEUTRAL
    )
    expected, alpha, sigma = release_protocol(path, size)
    capture = camera_raw.load_capture(path, (size, size), "BGGR", noise="release_phone")
    assert capture.mosaic.shape == (size, size) and capture.mosaic.dtype == np.float32
    # float32 reading and output: each value and the percentile carry <= EPS32 / 2 relative error, the ratio <= 2 EPS32
    np.testing.assert_allclose(capture.mosaic, expected.sum(axis=-1), rtol=0, atol=4 * EPS32)
    assert np.mean(capture.mosaic == 1.0) == pytest.approx(0.02, abs=0.01)  # the percentile rule's clipped 2 %
    np.testing.assert_allclose(capture.alpha, alpha, rtol=4 * EPS32)
    np.testing.assert_allclose(capture.sigma, sigma, rtol=4 * EPS32)
    np.testing.assert_allclose(capture.neutral, NEUTRAL, rtol=1e-6)
    inputs = capture.inputs()
    assert inputs["raw"].shape == (1, size, size, 1) and inputs["alpha"].shape == (1, 3)


def test_sensor_noise_at_the_files_iso_is_scaled_per_colour_like_the_image(tmp_path):
    path = tmp_path / "iso.dng"
    camera_raw.write_dng(
        path,
        dim_capture((96, 128), seed=1),
        bits=12,
        black_level=BLACK,
        white_level=WHITE,
        iso=1600,
        as_shot_neutral=NEUTRAL,
    )
    capture = camera_raw.load_capture(path, (64, 64), noise="sensor_at_iso", sensor="Pixel", exposure=4.0)
    alpha, sigma = noise.get_noise_preset("Pixel").at_iso(1600)
    gains = 4.0 / np.array(NEUTRAL)
    np.testing.assert_allclose(capture.alpha, alpha * gains, rtol=EPS32)
    np.testing.assert_allclose(capture.sigma, sigma * gains, rtol=EPS32)
    assert "Pixel at ISO 1600" in capture.noise_source
    frame = camera_raw.read_raw(path)
    plane = frame.mosaic[1::2, 1::2][8:40, 16:48]  # R plane 48 x 64 -> factor min(48 // 32, 64 // 32) = 1, centred
    np.testing.assert_allclose(capture.mosaic[1::2, 1::2], np.clip(plane * gains[0], 0, 1), atol=2 * EPS32)


def test_metering_sets_the_mean_and_the_release_rule_the_98th_percentile(tmp_path):
    path = tmp_path / "meter.dng"
    camera_raw.write_dng(
        path, dim_capture((128, 128), seed=2, level=0.05, noisy=False), bits=16, as_shot_neutral=NEUTRAL
    )
    frame = camera_raw.read_raw(path)
    metered = camera_raw.prepare_capture(frame, (64, 64), exposure="metering", noise=(0.01, 0.02))
    assert metered.mosaic.max() < 1.0  # nothing clipped, so the mean is the target's
    assert float(np.mean(metered.mosaic, dtype=np.float64)) == pytest.approx(CAPTURE_METERING_TARGET, rel=1e-6)
    release = camera_raw.prepare_capture(frame, (64, 64), noise=(0.01, 0.02))
    assert np.percentile(release.mosaic, 98) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(release.alpha / metered.alpha, release.exposure / metered.exposure, rtol=1e-6)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_grey_card_is_grey_after_white_balance_in_every_bayer_phase(tmp_path, pattern):
    """A uniform grey under the light NEUTRAL, written in any phase and read in the package's: every pixel of the
    front end's frame is equal (to the 16-bit code step), so each colour met its own neutral."""
    grey = (bayer_masks_numpy(64, 80, pattern) * (0.3 * np.array(NEUTRAL))).sum(axis=-1)
    path = tmp_path / f"{pattern}.dng"
    camera_raw.write_dng(path, grey, pattern, bits=16, as_shot_neutral=NEUTRAL)
    capture = camera_raw.load_capture(path, (48, 48), noise=(0.01, 0.01), exposure="none")
    np.testing.assert_allclose(capture.mosaic, 0.3, atol=1.0 / 65535 / min(NEUTRAL))


def test_crop_and_subsample_keeps_a_plane_that_fits_exactly():
    """Where the plane has exactly the size asked for, the release's slicing img[0:-0] would be empty."""
    plane = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(camera_raw.crop_and_subsample(plane, (3, 4)), plane)
    np.testing.assert_array_equal(
        camera_raw.crop_and_subsample(np.arange(49.0).reshape(7, 7), (3, 3)),
        np.arange(49.0).reshape(7, 7)[0:6:2, 0:6:2],
    )
    with pytest.raises(ValueError, match="smaller than the 4x4"):
        camera_raw.crop_and_subsample(plane, (4, 4))


def test_missing_white_balance_and_iso_are_named(tmp_path):
    path = tmp_path / "plain.dng"
    camera_raw.write_dng(path, dim_capture((64, 64), seed=3), bits=16)
    frame = camera_raw.read_raw(path)
    assert frame.as_shot_neutral == (1.0, 1.0, 1.0) and frame.iso is None
    with pytest.raises(ValueError, match=r"^iso: .*plain.dng records no ISO"):
        camera_raw.prepare_capture(frame, (32, 32))
    with pytest.raises(ValueError, match=r"^white_balance must be 3 finite numbers > 0"):
        camera_raw.prepare_capture(frame, (32, 32), white_balance=(1, 0, 1), noise="release_phone")
    with pytest.raises(ValueError, match=r"^exposure must be one of percentile98, metering, none or a number"):
        camera_raw.prepare_capture(frame, (32, 32), exposure="auto", noise="release_phone")


@pytest.mark.skipif(not REAL_CR2.is_file(), reason=f"the real Canon CR2 is absent: {REAL_CR2}")
def test_real_canon_cr2_through_the_front_end():
    """A CR2 has no AsShotNeutral tag: the white balance is LibRaw's as-shot multipliers m, as m_G / m."""
    with rawpy.imread(str(REAL_CR2)) as raw:
        multipliers = np.asarray(raw.camera_whitebalance[:3], np.float64)
    capture = camera_raw.load_capture(REAL_CR2, (224, 224), noise="sensor_at_iso", sensor="Nexus_6P_rear")
    np.testing.assert_allclose(capture.neutral, multipliers[1] / multipliers, rtol=1e-12)
    assert np.percentile(capture.mosaic, 98) == pytest.approx(1.0, abs=1e-6)
    frame = camera_raw.read_raw(REAL_CR2)
    at_iso = np.array(noise.get_noise_preset("Nexus_6P_rear").at_iso(frame.iso))
    np.testing.assert_allclose(capture.alpha, at_iso[0] * capture.exposure / capture.neutral, rtol=1e-6)
