import json

import numpy as np
import pytest

from dirtypixels_tf.physics import darktable
from dirtypixels_tf.physics.sensor import SensorModel

REAL_FILE = darktable.default_profiles_path()
needs_real_file = pytest.mark.skipif(
    REAL_FILE is None,
    reason="darktable's noiseprofiles.json is absent: set DIRTYPIXELS_DARKTABLE_PROFILES (.ci/run extracts it from Debian)",
)


def write_profiles(path, profiles):
    data = {"version": 1, "noiseprofiles": [{"maker": "Acme", "models": [{"model": "Cam 1", "profiles": profiles}]}]}
    path.write_text(json.dumps(data))
    darktable.load_profiles.cache_clear()
    return str(path)


def test_conversion_interpolation_and_clamping(tmp_path):
    path = write_profiles(
        tmp_path / "profiles.json",
        [
            {"name": "iso 100", "iso": 100, "a": [1e-4, 2e-4, 3e-4], "b": [4e-6, 4e-6, 4e-6]},
            {"name": "iso 400", "iso": 400, "a": [4e-4, 8e-4, 12e-4], "b": [-1e-6, -2e-6, 0.0]},
        ],
    )
    assert darktable.noise_at_iso("acme", "CAM 1", 100, path) == pytest.approx((2e-4, 2e-3))
    assert darktable.noise_at_iso("Acme", "Cam 1", 400, path) == pytest.approx((8e-4, 0.0))  # negative b floored
    # Between measured ISOs the variance b is interpolated (as darktable does), not sigma: at ISO 250 b is the
    # mean of 4e-6 and -1e-6, sigma sqrt(1.5e-6) (interpolating sigma would give 1e-3).
    assert darktable.noise_at_iso("Acme", "Cam 1", 250, path) == pytest.approx((5e-4, np.sqrt(1.5e-6)))
    # Outside the measured range darktable keeps the nearest profile (no ISO scaling), and says so.
    with pytest.warns(UserWarning, match=r"iso 800 is outside the ISOs darktable measured for Acme Cam 1 \(100 to"):
        assert darktable.noise_at_iso("Acme", "Cam 1", 800, path) == pytest.approx((8e-4, 0.0))
    with pytest.warns(UserWarning, match="the profile at ISO 100 is used as is"):
        assert darktable.noise_at_iso("Acme", "Cam 1", 50, path) == pytest.approx((2e-4, 2e-3))
    preset = darktable.preset_from_darktable("Acme", "Cam 1", 100, path)
    assert (preset.poisson, preset.gauss) == pytest.approx((2e-4, 2e-3))


def test_duplicates_are_averaged_with_a_warning_and_skipped_entries_ignored(tmp_path):
    path = write_profiles(
        tmp_path / "profiles.json",
        [
            {"name": "iso 200", "iso": 200, "a": [3e-4, 3e-4, 3e-4], "b": [1e-6, 1e-6, 1e-6]},
            {"name": "iso 200", "iso": 200, "a": [5e-4, 5e-4, 5e-4], "b": [3e-6, 3e-6, 3e-6]},
            {"skip": True, "name": "iso 200", "iso": 200, "a": [9e-2, -1e-2, 0.0], "b": [1e-2, 1e-2, 1e-2]},
            {"name": "iso 800", "iso": 800, "a": [1e-3, 1e-3, 1e-3], "b": [4e-6, 4e-6, 4e-6]},
        ],
    )
    with pytest.warns(UserWarning, match=r"more than one profile of Acme Cam 1 at ISO 200 \(2\).*averaged"):
        assert darktable.noise_at_iso("Acme", "Cam 1", 200, path) == pytest.approx((4e-4, np.sqrt(2e-6)))
    profiles = darktable.load_profiles(path)[("Acme", "Cam 1")]
    assert [(p.iso, p.merged) for p in profiles] == [(200.0, 2), (800.0, 1)]


def test_bad_names_and_files_are_reported(tmp_path):
    path = write_profiles(tmp_path / "profiles.json", [{"name": "x", "iso": 100, "a": [1, 1, 1], "b": [0, 0, 0]}])
    with pytest.raises(ValueError, match="maker must be one of Acme; received 'Nikon'"):
        darktable.find_camera("Nikon", "D1", path)
    with pytest.raises(ValueError, match=r"model must be one of Acme's 1 models \(Cam 1\); received 'Cam 2'"):
        darktable.find_camera("Acme", "Cam 2", path)
    with pytest.raises(ValueError, match="iso must be finite and > 0"):
        darktable.noise_at_iso("Acme", "Cam 1", -100, path)
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 1}')
    with pytest.raises(ValueError, match="is not a darktable noiseprofiles.json"):
        darktable.load_profiles(str(broken))
    with pytest.raises(FileNotFoundError, match="path must name darktable's noiseprofiles.json"):
        darktable.load_profiles(str(tmp_path / "missing.json"))


@needs_real_file
def test_real_darktable_file():
    # Structural properties checked against the JSON itself, so they hold for any darktable version (counts of one
    # Debian release, e.g. 374 models and 7,045 entries in darktable 4.2, are not pinned: the package is not).
    table = darktable.load_profiles(REAL_FILE)
    with open(REAL_FILE) as file:
        raw = json.load(file)["noiseprofiles"]
    kept, skipped = {}, {}
    for maker in raw:
        for model in maker["models"]:
            for entry in model["profiles"]:
                target = skipped if entry.get("skip") else kept
                target.setdefault((maker["maker"], model["model"], float(entry["iso"])), []).append(entry)
    assert len(table) >= 100 and len(kept) >= 1000  # a real file, not a stub
    loaded = {(p.maker, p.model, p.iso): p for camera in table.values() for p in camera}
    assert set(loaded) == set(kept)  # every non-skip (camera, ISO) once; skip-only ISOs dropped
    for camera in table.values():
        isos = [p.iso for p in camera]
        assert isos == sorted(set(isos))  # sorted by ISO, no duplicates left
    for key, entries in kept.items():
        profile = loaded[key]
        assert profile.merged == len(entries)  # duplicates averaged, skip entries ignored
        np.testing.assert_allclose(profile.a, np.mean([e["a"] for e in entries], axis=0), rtol=1e-12)
        np.testing.assert_allclose(profile.b, np.mean([e["b"] for e in entries], axis=0), rtol=1e-12)
        assert profile.alpha > 0 and np.isfinite(profile.sigma) and profile.sigma >= 0
    # At an ISO with a skipped (failed) fit next to a kept one, the kept one is used.
    both = [key for key in kept if key in skipped and len(kept[key]) == 1]
    for maker, model, iso in both[:20]:
        expected = np.mean(kept[(maker, model, iso)][0]["a"])
        assert darktable.noise_at_iso(maker, model, iso, REAL_FILE)[0] == pytest.approx(expected)
    canon = {p.iso: p for p in darktable.find_camera("Canon", "EOS 30D", REAL_FILE)}
    assert 640 in canon  # the camera of the real CR2 the calibration tests read
    assert darktable.noise_at_iso("Canon", "EOS 30D", 640, REAL_FILE)[0] == pytest.approx(np.mean(canon[640].a))


@needs_real_file
def test_sensor_from_a_real_camera_has_its_measured_noise():
    alpha, sigma = darktable.noise_at_iso("Canon", "EOS 30D", 640, REAL_FILE)
    light_level = 100.0 / 640  # the light level whose ISO is 640 under the linear ISO model
    sensor = SensorModel.from_darktable(
        "Canon", "EOS 30D", 640, path=REAL_FILE, light_levels=(light_level, light_level)
    )
    a, s = sensor.noise_params(3, seed=[0, 0])
    np.testing.assert_allclose(a.numpy(), alpha, rtol=1e-5)
    np.testing.assert_allclose(s.numpy(), sigma, rtol=1e-5)
