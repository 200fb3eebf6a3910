"""Sensor preset files round-trip (with the extended terms) and load into SensorModel; darktable profiles convert;
the linear ISO model is fitted in closed form."""

import json

import numpy as np
import pytest

from dirtypixels_tf.physics import darktable, noise, sensor_files
from dirtypixels_tf.physics.sensor import SensorModel


def test_fit_iso_model_is_the_mean_of_the_normalized_values():
    preset = sensor_files.fit_iso_model([(100, 1e-4, 1e-3), (400, 8e-4, 2e-3)])
    assert (preset.poisson, preset.gauss) == pytest.approx((1.5e-4, 0.75e-3))
    with pytest.raises(ValueError, match="iso must be a number > 0; received -1"):
        sensor_files.fit_iso_model([(-1, 1e-4, 1e-3)])


# ---------------------------------------------------------------------------------------------- preset files


def test_preset_file_errors(tmp_path):
    path = tmp_path / "sensor.yaml"
    path.write_text("poisson: 1.0e-4\ngauss: 1.0e-3\npattern: BGGR\nexposure: 3\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['exposure'\]"):
        sensor_files.load_sensor_preset(path)
    path.write_text("poisson: 1.0e-4\npattern: BGGR\n")
    with pytest.raises(ValueError, match=r"missing key\(s\) \['gauss'\]"):
        sensor_files.load_sensor_preset(path)
    path.write_text("poisson: 1.0e-4\ngauss: 1.0e-3\npattern: RGBG\n")
    with pytest.raises(ValueError, match="pattern must be one of RGGB, BGGR, GRBG, GBRG; received 'RGBG'"):
        sensor_files.load_sensor_preset(path)
    path.write_text("poisson: -1\ngauss: 1.0e-3\npattern: BGGR\n")
    with pytest.raises(ValueError, match="poisson must be finite and >= 0"):
        sensor_files.load_sensor_preset(path)
    with pytest.raises(ValueError, match="must be an existing sensor preset file"):
        sensor_files.load_sensor_preset(tmp_path / "missing.yaml")
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text("poisson: 1.0e-4\ngauss: 1.0e-3\npattern: grbg\n")
    loaded = sensor_files.load_sensor_preset(minimal)
    assert (loaded.preset.poisson, loaded.pattern, loaded.iso_table, loaded.source) == (1e-4, "GRBG", (), "")


def test_darktable_profiles_convert_to_a_preset(tmp_path):
    profiles = [
        {"name": "iso 100", "iso": 100, "a": [1e-4, 2e-4, 3e-4], "b": [4e-6, 4e-6, 4e-6]},
        {"name": "iso 400", "iso": 400, "a": [4e-4, 8e-4, 12e-4], "b": [-1e-6, 1.6e-5, 4.9e-5]},
    ]
    data = {"version": 1, "noiseprofiles": [{"maker": "Acme", "models": [{"model": "Cam 1", "profiles": profiles}]}]}
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(data))
    darktable.load_profiles.cache_clear()
    result = sensor_files.darktable_to_preset("acme", "cam 1", path=str(path))
    np.testing.assert_allclose(result.iso_table, [(100.0, 2e-4, 2e-3), (400.0, 8e-4, np.sqrt(64e-6 / 3))], rtol=1e-12)
    assert result.preset.poisson == pytest.approx(2e-4)
    assert result.preset.gauss == pytest.approx((2e-3 + np.sqrt(64e-6 / 3) / 4) / 2)
    assert result.source == "darktable noise profiles: Acme Cam 1"
    one = sensor_files.darktable_to_preset("Acme", "Cam 1", isos=[250], path=str(path))
    np.testing.assert_allclose(one.iso_table, [(250.0, *darktable.noise_at_iso("Acme", "Cam 1", 250, str(path)))])
    assert one.iso_table[0][1] == pytest.approx(5e-4)
    assert sensor_files.load_sensor_preset(sensor_files.save_sensor_preset(tmp_path / "s.yaml", result)) == result


@pytest.mark.skipif(darktable.default_profiles_path() is None, reason="darktable's noiseprofiles.json is absent")
def test_real_darktable_camera_converts_to_a_preset():
    result = sensor_files.darktable_to_preset("Canon", "EOS 30D")
    isos = [row[0] for row in result.iso_table]
    assert 640.0 in isos and isos == sorted(isos)
    assert result.iso_table[isos.index(640.0)][1:] == pytest.approx(darktable.noise_at_iso("Canon", "EOS 30D", 640))
    assert result.preset.poisson > 0 and result.source == "darktable noise profiles: Canon EOS 30D"


def test_sensor_model_loads_a_calibrated_preset_file(tmp_path):
    preset_file = tmp_path / "sensor.yaml"
    sensor_files.save_sensor_preset(
        preset_file,
        sensor_files.SensorCalibration(noise.NoisePreset(2e-4, 5e-4), "GRBG", ((800.0, 1.6e-3, 4e-3),), "test"),
    )
    sensor = SensorModel.from_preset_file(preset_file, light_levels=(0.01, 0.01))
    assert sensor.pattern == "GRBG"
    alpha, sigma = sensor.noise_params(2, seed=[0, 0])
    np.testing.assert_allclose(alpha.numpy(), 2e-4 / 0.01, rtol=1e-6)
    np.testing.assert_allclose(sigma.numpy(), 5e-4 / 0.01, rtol=1e-6)


def test_extended_terms_round_trip_through_sensor_yaml(tmp_path):
    terms = noise.NoiseTerms(tukey_lambda=-0.12, row_noise=0.25, black_level_bias=(1e-4, 0, -2e-4, 0), bit_depth=14)
    result = sensor_files.SensorCalibration(
        noise.NoisePreset(3e-4, 6e-4), "RGGB", ((400.0, 1.2e-3, 2.4e-3),), "t", terms
    )
    path = sensor_files.save_sensor_preset(tmp_path / "sensor.yaml", result)
    assert sensor_files.load_sensor_preset(path) == result
    sensor = SensorModel(preset=str(path), alpha=0.001, sigma=0.01)
    assert sensor.noise_terms == terms
    assert SensorModel.from_preset_file(path).noise_terms == terms
    plain = sensor_files.save_sensor_preset(tmp_path / "plain.yaml", sensor_files.SensorCalibration(result.preset))
    assert "tukey_lambda" not in plain.read_text() and SensorModel(preset=str(plain)).noise_terms == noise.NoiseTerms()
    path.write_text(path.read_text().replace("tukey_lambda: -0.12", "tukey_lambda: -0.7"))
    with pytest.raises(ValueError, match=r"tukey_lambda must be None or a number in \(-0.4, 1.0\); received -0.7"):
        sensor_files.load_sensor_preset(path)
