import numpy as np
import pytest

from dirtypixels_tf.data import sources
from dirtypixels_tf.evaluation import axes, grid, predictors
from dirtypixels_tf.physics import optics


def test_parse_light_level():
    assert axes.parse_light_level("3lux") == axes.LightLevel("3lux", 0.0015, 0.0015)
    assert axes.parse_light_level("12") == axes.LightLevel("12 lux", 0.006, 0.006)
    assert axes.parse_light_level("12lux") == axes.parse_light_level(12)
    assert axes.parse_light_level("0.5").low == pytest.approx(0.00025)
    assert axes.parse_light_level("none") == axes.LightLevel("none", None, None)
    assert axes.parse_light_level("2to20lux").lux == pytest.approx(2000 * np.sqrt(0.001 * 0.01))
    for bad in ("bright", "-3", "0", "3 candela", ""):
        with pytest.raises(ValueError, match="light level must be a profile .* or 'none'; received"):
            axes.parse_light_level(bad)


def test_parse_psf(tmp_path):
    assert axes.parse_psf("none") == ("none", None)
    label, psf = axes.parse_psf("periphery")
    assert label == "periphery" and psf.shape == (25, 25, 3)
    np.save(tmp_path / "psf.npy", psf)
    np.testing.assert_allclose(axes.parse_psf(str(tmp_path / "psf.npy"))[1], psf, rtol=1e-6)
    with pytest.raises(
        ValueError, match="psf must be none, center, offaxis, periphery, motion-L .*; received 'blurry'"
    ):
        axes.parse_psf("blurry")


def test_a_motion_psf_column_is_the_one_simulate_draws_with_the_same_seed():
    """A "motion-L" PSF (the spec `dirtypixels simulate --psf` and data.psf take) is a column too, drawn with the
    evaluation seed: the same array optics.resolve_psf gives simulate for that seed, and another seed draws another."""
    label, psf = axes.parse_psf("motion-4", seed=3)
    assert label == "motion-4" and psf.shape[:2] == (9, 9)
    np.testing.assert_array_equal(psf, optics.resolve_psf("motion-4", seed=3))
    np.testing.assert_array_equal(psf, optics.motion_psf(4, 3))
    assert np.sum(psf) == pytest.approx(1.0, abs=1e-5)
    assert not np.array_equal(psf, axes.parse_psf("motion-4", seed=4)[1])
    with pytest.raises(ValueError, match="psf must be none, .*; received 'motion-0'"):
        axes.parse_psf("motion-0")

    seen = []

    def record(features, psf):
        seen.append(psf)
        return {"image": np.zeros((len(features["raw"]), 16, 16, 3), np.float32)}

    images = np.full((2, 16, 16, 3), 0.5, np.float32)
    table = grid.evaluate(
        predictors.FunctionPredictor(record, 16),
        sources.array_source(images, np.arange(2)),
        light_levels=("none",),
        psfs=("motion-4",),
        seed=3,
        central_fraction=1.0,
        progress=False,
    )
    assert table.columns == ("motion-4",) and len(seen) == 1
    np.testing.assert_array_equal(seen[0], optics.motion_psf(4, 3))
