"""`dirtypixels calibrate noise|psf`: real files in, a loadable sensor.yaml / psf.npy out; bad input exits 2."""

import pathlib

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
import tifffile
from PIL import Image

from dirtypixels_tf import cli
from dirtypixels_tf.data.camera_raw import read_raw, write_dng
from dirtypixels_tf.physics import noise, optics, psf_estimation, sensor_files
from dirtypixels_tf.physics.sensor import SensorModel

NEXUS = noise.get_noise_preset("Nexus_6P_rear")
REAL_CR2 = pathlib.Path(__file__).parents[2] / ".cache/rawtran/usr/share/doc/rawtran/IMG_5952.CR2"
needs_cr2 = pytest.mark.skipif(
    not REAL_CR2.is_file(),
    reason=f"the real Canon CR2 is absent: {REAL_CR2} (apt-get download rawtran-doc; dpkg -x into .cache/rawtran)",
)
LEVELS = np.concatenate([np.geomspace(0.002, 0.9, 14), [1.0, 1.05]])


def chart_capture(iso, seed, height=128):
    """A noisy gray-chart mosaic [height, 1024] at `iso` of Nexus_6P_rear (16 patches, two of them saturated)."""
    clean = np.concatenate([np.full((height, 64), level, np.float32) for level in LEVELS], axis=1)
    alpha, sigma = NEXUS.at_iso(iso)
    noisy = noise.add_noise(clean[np.newaxis, ..., np.newaxis], alpha, sigma, tf.constant([iso, seed], tf.int64))
    return noisy.numpy()[0, ..., 0]


def run_with_error(argv, capsys):
    """Run the CLI expecting an argument error: returns stderr after checking the exit status is 2."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_noise_from_dng_frames_with_iso_metadata(tmp_path, capsys):
    frames = []
    for iso in (800, 3200):
        for seed in range(2):
            path = tmp_path / f"iso{iso}_{seed}.dng"
            write_dng(path, chart_capture(iso, seed), "BGGR", bits=16, iso=iso, exposure_time=1 / 60)
            frames.append(str(path))
    out, plot = tmp_path / "sensor.yaml", tmp_path / "noise.png"
    argv = ["calibrate", "noise", *frames, "--out", str(out), "--plot", str(plot), "--method", "temporal"]
    assert cli.main(argv + ["--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and f"wrote {plot}" in printed
    loaded = sensor_files.load_sensor_preset(out)
    assert [row[0] for row in loaded.iso_table] == [800.0, 3200.0]
    assert loaded.preset.poisson == pytest.approx(NEXUS.poisson, rel=0.05)
    assert loaded.preset.gauss == pytest.approx(NEXUS.gauss, rel=0.05)
    assert loaded.pattern == "BGGR" and "4 frame(s) at ISO 800, 3200, method temporal" in loaded.source
    with Image.open(plot) as image:
        assert image.format == "PNG"


def test_noise_from_npy_frames_needs_iso(tmp_path, capsys):
    path = tmp_path / "frame.npy"
    np.save(path, chart_capture(1600, 0, height=256))
    out = tmp_path / "sensor.yaml"
    error = run_with_error(["calibrate", "noise", str(path), "--out", str(out)], capsys)
    assert "--iso is required for .npy frames" in error and not out.exists()
    assert cli.main(["calibrate", "noise", str(path), "--out", str(out), "--iso", "1600", "--quiet"]) == 0
    loaded = sensor_files.load_sensor_preset(out)
    alpha, sigma = loaded.preset.at_iso(1600)
    assert alpha == pytest.approx(NEXUS.at_iso(1600)[0], rel=0.05)
    assert sigma == pytest.approx(NEXUS.at_iso(1600)[1], rel=0.05)


def test_noise_bad_input_exits_2(tmp_path, capsys):
    small = tmp_path / "small.npy"
    np.save(small, chart_capture(800, 0)[:64, :512])
    large = tmp_path / "large.npy"
    np.save(large, chart_capture(800, 1))
    out = str(tmp_path / "sensor.yaml")
    error = run_with_error(["calibrate", "noise", str(large), str(small), "--out", out, "--iso", "800"], capsys)
    assert "FRAMES must all have one size; received (128, 1024)" in error and "(64, 512)" in error
    text = tmp_path / "frame.cr2"
    text.write_text("no raw data here\n" * 64)
    error = run_with_error(["calibrate", "noise", str(text), "--out", out], capsys)
    assert "is not a readable camera RAW file" in error
    error = run_with_error(["calibrate", "noise", str(tmp_path / "missing.dng"), "--out", out], capsys)
    assert "FRAMES must be existing files" in error
    integers = tmp_path / "integers.npy"
    np.save(integers, np.zeros((64, 64), np.uint16))
    error = run_with_error(["calibrate", "noise", str(integers), "--out", out, "--iso", "100"], capsys)
    assert "must hold a floating mosaic [H, W] in [0, 1]; received shape (64, 64), dtype uint16" in error
    flat = tmp_path / "flat.npy"
    np.save(flat, np.full((128, 128), 0.3984, np.float32))
    error = run_with_error(["calibrate", "noise", str(flat), "--out", out, "--iso", "100"], capsys)
    assert "ISO 100: frames have too few smooth blocks" in error
    error = run_with_error(["calibrate", "noise", str(flat), "--out", out, "--iso", "-5"], capsys)
    assert "--iso: must be a number > 0; received '-5'" in error


@pytest.fixture(scope="module")
def pair():
    sharp = skimage.data.astronaut()[64:320, 128:384].astype(np.float32) / 255.0
    psf = optics.motion_psf(5, seed=11)
    blurred = optics.blur(sharp[np.newaxis], psf).numpy()[0]
    blurred += 0.005 * np.random.default_rng(1).standard_normal(blurred.shape).astype(np.float32)
    return sharp, np.clip(blurred, 0.0, 1.0), psf


def test_psf_from_npy_png_and_tiff(tmp_path, capsys, pair):
    sharp, blurred, psf = pair
    np.save(tmp_path / "sharp.npy", sharp)
    np.save(tmp_path / "blurred.npy", blurred)
    Image.fromarray(np.round(sharp * 255).astype(np.uint8)).save(tmp_path / "sharp.png")
    tifffile.imwrite(tmp_path / "blurred.tif", np.round(blurred * 65535).astype(np.uint16))
    for sharp_file, blurred_file in (("sharp.npy", "blurred.npy"), ("sharp.png", "blurred.tif")):
        out = tmp_path / f"psf_{sharp_file[-3:]}.npy"
        argv = ["calibrate", "psf", str(tmp_path / sharp_file), str(tmp_path / blurred_file), "--size", "11"]
        assert cli.main(argv + ["--out", str(out)]) == 0
        assert f"wrote {out}: PSF 11x11x3, sum 1 per channel" in capsys.readouterr().out
        estimate = np.load(out)
        assert estimate.shape == (11, 11, 3)
        assert psf_estimation.psf_correlation(estimate, np.stack([psf] * 3, axis=-1)) >= 0.9


def test_psf_bad_input_exits_2(tmp_path, capsys, pair):
    sharp, blurred, _ = pair
    np.save(tmp_path / "sharp.npy", sharp)
    np.save(tmp_path / "half.npy", blurred[:, :128])
    out = str(tmp_path / "psf.npy")
    error = run_with_error(
        ["calibrate", "psf", str(tmp_path / "sharp.npy"), str(tmp_path / "half.npy"), "--size", "11", "--out", out],
        capsys,
    )
    assert "sharp and blurred must have one shape; received (256, 256, 3) and (256, 128, 3)" in error
    error = run_with_error(
        ["calibrate", "psf", str(tmp_path / "sharp.npy"), str(tmp_path / "sharp.npy"), "--size", "10", "--out", out],
        capsys,
    )
    assert "size must be an odd integer >= 1; received 10" in error
    (tmp_path / "notes.txt").write_text("hello")
    error = run_with_error(
        ["calibrate", "psf", str(tmp_path / "notes.txt"), str(tmp_path / "sharp.npy"), "--size", "5", "--out", out],
        capsys,
    )
    assert "SHARP must end in .npy, .png" in error
    (tmp_path / "broken.png").write_bytes(b"not a png")
    error = run_with_error(
        ["calibrate", "psf", str(tmp_path / "broken.png"), str(tmp_path / "sharp.npy"), "--size", "5", "--out", out],
        capsys,
    )
    assert "SHARP: " in error and "is not a readable image" in error
    error = run_with_error(
        ["calibrate", "psf", str(tmp_path / "missing.npy"), str(tmp_path / "sharp.npy"), "--size", "5", "--out", out],
        capsys,
    )
    assert "SHARP must be an existing image file" in error
    assert not (tmp_path / "psf.npy").exists()


@pytest.mark.parametrize("frames", [1, 3])
def test_noise_on_flats_at_one_exposure_is_refused(tmp_path, capsys, frames):
    """Flats all at one level cannot separate alpha from sigma: before this was checked, one flat frame wrote a
    sensor.yaml with alpha ~ 1e-14 and sigma 0.046 (true 0.004, 0.012). Now it exits 2 naming the files."""
    alpha, sigma = 0.004, 0.012
    clean = np.full((1, 256, 256, 1), 0.47, np.float32)
    paths = []
    for k in range(frames):
        paths.append(str(tmp_path / f"flat{k}.npy"))
        np.save(paths[-1], noise.add_noise(clean, alpha, sigma, tf.constant([7, k], tf.int64)).numpy()[0, ..., 0])
    out = tmp_path / "sensor.yaml"
    error = run_with_error(["calibrate", "noise", *paths, "--out", str(out), "--iso", "400"], capsys)
    assert "ISO 400" in error and paths[0] in error and "do not separate alpha from sigma" in error
    assert not out.exists()


@needs_cr2
def test_noise_on_the_real_cr2_records_its_cfa_and_says_it_extrapolates(tmp_path, capsys):
    """The Canon EOS 30D's CFA is RGGB (LibRaw's pattern); one ISO (640) is an extrapolation to other ISOs."""
    out = tmp_path / "sensor.yaml"
    assert cli.main(["calibrate", "noise", str(REAL_CR2), "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "captures at one ISO (640) only: the preset extrapolates to every other ISO" in captured.err
    loaded = sensor_files.load_sensor_preset(out)
    assert loaded.pattern == read_raw(REAL_CR2).source_pattern == "RGGB"
    assert "[one ISO: other ISOs extrapolated]" in loaded.source
    alpha, sigma = loaded.preset.at_iso(640)
    assert 2e-5 < alpha < 1e-3 and 1e-4 < sigma < 2e-3
    forced = tmp_path / "bggr.yaml"
    assert cli.main(["calibrate", "noise", str(REAL_CR2), "--out", str(forced), "--pattern", "BGGR", "--quiet"]) == 0
    assert sensor_files.load_sensor_preset(forced).pattern == "BGGR"


def test_noise_with_dark_frames_writes_the_extended_terms(tmp_path, capsys):
    rng = np.random.default_rng([17, 2])
    lam, row, sigma = rng.uniform(-0.2, -0.05), rng.uniform(0.2, 0.5), rng.uniform(0.004, 0.02)
    terms = noise.NoiseTerms(tukey_lambda=lam, row_noise=row, black_level_bias=(2e-4, -1e-4, 0.0, 3e-4), bit_depth=14)
    sensor = SensorModel(alpha=1e-3, sigma=sigma, noise_terms=terms, clip=False)
    darks = sensor.simulate(tf.zeros([3, 512, 512, 3]), tf.constant([17, 3], tf.int64))["raw"].numpy()[..., 0]
    paths = []
    for k, dark in enumerate(darks):
        paths.append(str(tmp_path / f"dark{k}.npy"))
        np.save(paths[-1], dark)
    flat = tmp_path / "chart.npy"
    np.save(flat, chart_capture(1600, 5, height=256))
    out, plot = tmp_path / "sensor.yaml", tmp_path / "noise.png"
    argv = ["calibrate", "noise", str(flat), "--iso", "1600", "--dark", *paths, "--out", str(out), "--plot", str(plot)]
    assert cli.main(argv + ["--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "dark frames (3): read noise" in printed and f"wrote {tmp_path / 'noise_dark.png'}" in printed
    loaded = sensor_files.load_sensor_preset(out)
    assert loaded.terms.tukey_lambda == pytest.approx(lam, rel=0.1)
    assert loaded.terms.row_noise == pytest.approx(row, rel=0.1)
    assert loaded.terms.bit_depth == 14
    assert SensorModel(preset=str(out)).noise_terms == loaded.terms
    with Image.open(tmp_path / "noise_dark.png") as image:
        assert image.format == "PNG"
    np.save(tmp_path / "bright.npy", np.full((64, 64), 1.5))
    error = run_with_error(argv[:-4] + ["--dark", str(tmp_path / "bright.npy"), "--out", str(out)], capsys)
    assert "--dark ('" in error and "must hold finite values in (-1, 1)" in error


def test_dark_frames_from_camera_raw_files(tmp_path, capsys):
    """Dark DNGs (black level 0, so the frames carry a pedestal of 0.25 that the fit reads as black-level bias)."""
    lam, sigma = -0.12, 0.008
    terms = noise.NoiseTerms(tukey_lambda=lam, row_noise=0.3)
    sensor = SensorModel(alpha=1e-3, sigma=sigma, noise_terms=terms, clip=False)
    darks = sensor.simulate(tf.zeros([2, 512, 512, 3]), tf.constant([21, 4], tf.int64))["raw"].numpy()[..., 0]
    paths = []
    for k, dark in enumerate(darks):
        paths.append(str(tmp_path / f"dark{k}.dng"))
        write_dng(paths[-1], dark + 0.25, "GRBG", bits=16, iso=800)
    flat = tmp_path / "chart.npy"
    np.save(flat, chart_capture(800, 6, height=256))
    out = tmp_path / "sensor.yaml"
    argv = ["calibrate", "noise", str(flat), "--iso", "800", "--dark", *paths, "--out", str(out), "--quiet"]
    assert cli.main(argv) == 0
    loaded = sensor_files.load_sensor_preset(out)
    assert loaded.terms.tukey_lambda == pytest.approx(lam, rel=0.1)
    assert loaded.terms.row_noise == pytest.approx(0.3, rel=0.1)
    assert loaded.terms.bit_depth == 16
    np.testing.assert_allclose(loaded.terms.black_level_bias, 0.25, atol=5e-4)
    assert "read noise 0.00" in capsys.readouterr().out
