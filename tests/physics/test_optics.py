"""PSFs, PSF files, the field-position grid, and (spatially varying) blur."""

import numpy as np
import pytest
import scipy.io
import scipy.ndimage
from tolerances import float32_bound

from dirtypixels_tf.physics import optics
from dirtypixels_tf.physics.fourier import fft_convolve
from dirtypixels_tf.physics.optics import (
    FIELD_POSITIONS,
    PsfGrid,
    blur,
    default_psf_grid,
    disk_psf,
    field_positions,
    gaussian_psf,
    get_psf,
    load_psf,
    motion_psf,
    normalize_psf,
    ring_weights,
    spatially_varying_blur,
)

SUM_TOL = 1e-6  # every PSF sums to 1 per channel within this (sums taken in float64)


def assert_is_psf(psf, shape):
    assert psf.shape == shape and psf.dtype == np.float32
    assert np.all(psf >= 0)
    np.testing.assert_allclose(np.sum(psf, axis=(0, 1), dtype=np.float64), 1.0, atol=SUM_TOL)


def moments(kernel):
    """Centroid (row, col) and the second central moments along rows, columns, diagonal and anti-diagonal."""
    kernel = np.asarray(kernel, np.float64)
    rows, cols = np.indices(kernel.shape)
    mass = kernel.sum()
    cr, cc = (kernel * rows).sum() / mass, (kernel * cols).sum() / mass
    dr, dc = rows - cr, cols - cc
    second = {
        "row": (kernel * dr**2).sum() / mass,
        "col": (kernel * dc**2).sum() / mass,
        "diagonal": (kernel * ((dr + dc) / np.sqrt(2)) ** 2).sum() / mass,
        "antidiagonal": (kernel * ((dr - dc) / np.sqrt(2)) ** 2).sum() / mass,
    }
    return (cr, cc), second


# ---- normalize_psf -------------------------------------------------------------------------------------------------


def test_normalize_psf_scales_each_channel_to_one():
    rng = np.random.default_rng(0)
    raw = rng.random((5, 4, 3)) * np.array([1.0, 10.0, 0.01])
    psf = normalize_psf(raw)
    assert_is_psf(psf, (5, 4, 3))
    np.testing.assert_allclose(psf, raw / raw.sum(axis=(0, 1)), rtol=1e-6)
    assert_is_psf(normalize_psf(np.ones((3, 3), int)), (3, 3))


@pytest.mark.parametrize(
    "bad, what",
    [
        (np.zeros((3, 3)), "sum"),
        (np.stack([np.ones((3, 3)), np.zeros((3, 3))], -1), "sum"),  # zero in one channel only
        (np.array([[0.5, -0.1], [0.3, 0.3]]), "non-negative"),
        (np.array([[np.nan, 1.0], [1.0, 1.0]]), "finite"),
        (np.array([[np.inf, 1.0], [1.0, 1.0]]), "finite"),
        (np.ones(5), "shape"),
        (np.ones((2, 2, 2, 2)), "shape"),
        (np.ones((0, 3)), "shape"),
        ("abc", "numeric"),
    ],
)
def test_normalize_psf_rejects_bad_input(bad, what):
    with pytest.raises(ValueError, match="psf") as info:
        normalize_psf(bad)
    assert what in str(info.value)


# ---- generated PSFs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.5])
def test_gaussian_second_moment_is_sigma_squared(sigma):
    # Support of +-5 sigma: truncation and sampling change the variance by less than 1e-4 relative.
    size = 2 * int(np.ceil(5 * sigma)) + 1
    psf = gaussian_psf(size, sigma)
    assert_is_psf(psf, (size, size))
    centre, second = moments(psf)
    np.testing.assert_allclose(centre, (size // 2, size // 2), atol=1e-9)
    np.testing.assert_allclose([second["row"], second["col"]], sigma**2, rtol=1e-3)


def test_gaussian_truncated_support_has_smaller_variance():
    # A +-2 sigma support keeps about 0.86 sigma^2: the 1e-3 tolerance above would catch such a truncation.
    _, second = moments(gaussian_psf(9, 2.0))
    assert second["row"] < 0.9 * 4.0


def test_gaussian_per_channel_sigma_is_chromatic():
    psf = gaussian_psf(25, [1.0, 1.5, 2.5])
    assert_is_psf(psf, (25, 25, 3))
    for c, sigma in enumerate([1.0, 1.5, 2.5]):
        np.testing.assert_allclose(moments(psf[..., c])[1]["row"], sigma**2, rtol=1e-3)
    shared = gaussian_psf(7, 1.2, channels=3)
    assert_is_psf(shared, (7, 7, 3))
    np.testing.assert_array_equal(shared[..., 0], shared[..., 2])
    np.testing.assert_allclose(shared[..., 1], gaussian_psf(7, 1.2), atol=1e-8)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"size": 4, "sigma": 1.0}, "size"),
        ({"size": 0, "sigma": 1.0}, "size"),
        ({"size": 5.0, "sigma": 1.0}, "size"),
        ({"size": 5, "sigma": 0.0}, "sigma"),
        ({"size": 5, "sigma": [1.0, -1.0]}, "sigma"),
        ({"size": 5, "sigma": float("nan")}, "sigma"),
        ({"size": 5, "sigma": [1.0, 2.0], "channels": 3}, "channels"),
        ({"size": 5, "sigma": 1.0, "channels": 0}, "channels"),
    ],
)
def test_gaussian_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        gaussian_psf(**kwargs)


def test_disk_psf_is_an_area_weighted_disk():
    radius, size = 4.5, 11
    psf = disk_psf(size, radius)
    assert_is_psf(psf, (size, size))
    np.testing.assert_allclose(psf, psf.T, atol=1e-9)
    np.testing.assert_allclose(psf, psf[::-1, ::-1], atol=1e-9)
    distance = np.hypot(*np.indices((size, size)) - size // 2)
    inside = distance + np.sqrt(0.5) < radius  # pixels wholly inside the disk
    outside = distance - np.sqrt(0.5) > radius  # pixels wholly outside
    np.testing.assert_allclose(psf[inside], psf.max(), rtol=1e-6)
    assert np.all(psf[outside] == 0)
    edge = ~inside & ~outside
    assert np.all(psf[edge] <= psf.max()) and np.any((psf[edge] > 0) & (psf[edge] < 0.9 * psf.max()))
    # A uniform disk has E[x^2] = R^2 / 4 per axis; binning it into unit pixels adds 1/12 (Sheppard's correction).
    # Measured: 5.116 against 5.146 (the 17 x 17 coverage samples per pixel), so rtol 1e-2.
    np.testing.assert_allclose(moments(psf)[1]["row"], radius**2 / 4 + 1 / 12, rtol=1e-2)


def test_disk_psf_small_radius_and_bad_arguments():
    assert_is_psf(disk_psf(3, 0.01), (3, 3))
    assert disk_psf(3, 0.01)[1, 1] == 1.0
    with pytest.raises(ValueError, match="radius"):
        disk_psf(5, 2.6)
    with pytest.raises(ValueError, match="radius"):
        disk_psf(5, 0)
    with pytest.raises(ValueError, match="size"):
        disk_psf(6, 2)


@pytest.mark.parametrize("half_size", [1, 3, 10, 24])
def test_motion_psf_shape_sum_and_centre(half_size):
    size = 2 * half_size + 1
    psf = motion_psf(half_size, seed=7)
    assert_is_psf(psf, (size, size))
    # Time-weighted bilinear splatting keeps the path's time average at the centre pixel.
    centre, _ = moments(psf)
    np.testing.assert_allclose(centre, (half_size, half_size), atol=1e-4)
    # The path is scaled to reach the border of the kernel along some axis.
    border = np.concatenate([psf[0], psf[-1], psf[:, 0], psf[:, -1]])
    assert border.max() > 0
    # A blur trajectory, not a point: mass is spread over several pixels.
    assert np.count_nonzero(psf > 1e-4) >= size


def test_motion_psf_is_deterministic_per_seed():
    first = motion_psf(12, seed=3)
    np.testing.assert_array_equal(first, motion_psf(12, seed=3))
    np.testing.assert_array_equal(motion_psf(5, seed=(4, 17)), motion_psf(5, seed=[4, 17]))
    others = [motion_psf(12, seed=s) for s in range(4, 10)]
    assert all(np.abs(first - other).max() > 1e-3 for other in others)
    assert np.abs(motion_psf(5, seed=(4, 17)) - motion_psf(5, seed=(4, 18))).max() > 1e-3


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"half_size": 0, "seed": 1}, "half_size"),
        ({"half_size": 2.5, "seed": 1}, "half_size"),
        ({"half_size": 3, "seed": None}, "seed"),
        ({"half_size": 3, "seed": -1}, "seed"),
        ({"half_size": 3, "seed": 1.5}, "seed"),
        ({"half_size": 3, "seed": 1, "num_steps": 0}, "num_steps"),
        ({"half_size": 3, "seed": 1, "impulse_probability": 1.5}, "impulse_probability"),
        ({"half_size": 3, "seed": 1, "shake": -0.1}, "shake"),
    ],
)
def test_motion_psf_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        motion_psf(**kwargs)


# ---- loading -------------------------------------------------------------------------------------------------------


def test_load_npy_round_trip(tmp_path):
    raw = np.random.default_rng(1).random((7, 5, 3))
    np.save(tmp_path / "psf.npy", raw)
    loaded = load_psf(tmp_path / "psf.npy")
    assert_is_psf(loaded, (7, 5, 3))
    np.testing.assert_allclose(loaded, raw / raw.sum(axis=(0, 1)), rtol=1e-6)


def test_load_mat_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    psf, other = normalize_psf(rng.random((9, 9, 3))), normalize_psf(rng.random((5, 5)))
    scipy.io.savemat(tmp_path / "single.mat", {"kernel": psf})
    np.testing.assert_allclose(load_psf(tmp_path / "single.mat"), psf, rtol=1e-6)
    scipy.io.savemat(tmp_path / "two.mat", {"kernel": psf, "small": other})
    np.testing.assert_allclose(load_psf(tmp_path / "two.mat", key="small"), other, rtol=1e-6)
    with pytest.raises(ValueError, match="key") as info:
        load_psf(tmp_path / "two.mat")
    assert "kernel" in str(info.value) and "small" in str(info.value)
    with pytest.raises(ValueError, match="key"):
        load_psf(tmp_path / "two.mat", key="missing")


def test_load_npz_with_key(tmp_path):
    psf = gaussian_psf(5, 1.0)
    np.savez(tmp_path / "psfs.npz", a=psf, b=np.ones((3, 3)))
    np.testing.assert_allclose(load_psf(tmp_path / "psfs.npz", key="a"), psf, rtol=1e-6)


def test_load_psf_errors(tmp_path):
    with pytest.raises(ValueError, match="path") as info:
        load_psf(tmp_path / "absent.npy")
    assert "absent.npy" in str(info.value)
    (tmp_path / "psf.png").write_bytes(b"not a psf")
    with pytest.raises(ValueError, match="path"):
        load_psf(tmp_path / "psf.png")
    np.save(tmp_path / "negative.npy", -np.ones((3, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        load_psf(tmp_path / "negative.npy")
    np.save(tmp_path / "flat.npy", np.ones(4))
    with pytest.raises(ValueError, match="shape"):
        load_psf(tmp_path / "flat.npy")
    with pytest.raises(ValueError, match="key"):
        load_psf(tmp_path / "flat.npy", key="x")


# ---- the field-position grid ---------------------------------------------------------------------------------------


def small_grid():
    """Three field positions with distinct PSFs of size 5."""
    psfs = [gaussian_psf(5, s, channels=3) for s in (0.5, 1.0, 1.5)]
    return PsfGrid(positions=(0.0, 0.5, 1.0), psfs=np.stack(psfs))


def test_grid_at_interpolates_linearly_and_clamps():
    grid = small_grid()
    for k, position in enumerate(grid.positions):
        np.testing.assert_allclose(grid.at(position), grid.psfs[k], atol=1e-7)
    np.testing.assert_allclose(grid.at(0.25), 0.5 * (grid.psfs[0] + grid.psfs[1]), atol=1e-7)
    np.testing.assert_allclose(grid.at(0.9), 0.2 * grid.psfs[1] + 0.8 * grid.psfs[2], atol=1e-7)
    np.testing.assert_array_equal(grid.at(0.3, interpolation="nearest"), grid.psfs[1])
    np.testing.assert_array_equal(grid.at(0.2, interpolation="nearest"), grid.psfs[0])
    assert_is_psf(grid.at(0.37), (5, 5, 3))
    clamped = PsfGrid(positions=(0.5, 0.9), psfs=grid.psfs[1:])
    np.testing.assert_allclose(clamped.at(0.0), grid.psfs[1], atol=1e-7)
    np.testing.assert_allclose(clamped.at(1.0), grid.psfs[2], atol=1e-7)


def test_grid_validates_and_is_read_only():
    grid = small_grid()
    with pytest.raises(ValueError):
        grid.psfs[0, 0, 0, 0] = 1.0
    with pytest.raises(ValueError, match="positions"):
        PsfGrid(positions=(0.0, 0.0, 1.0), psfs=grid.psfs)
    with pytest.raises(ValueError, match="positions"):
        PsfGrid(positions=(0.0, 0.5, 1.5), psfs=grid.psfs)
    with pytest.raises(ValueError, match="psfs"):
        PsfGrid(positions=(0.0, 1.0), psfs=grid.psfs)
    bad = np.array(grid.psfs)
    bad[1, 2, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"psfs\[1\]"):
        PsfGrid(positions=grid.positions, psfs=bad)
    with pytest.raises(ValueError, match="position"):
        grid.at(1.2)
    with pytest.raises(ValueError, match="interpolation"):
        grid.at(0.5, interpolation="cubic")


def test_grid_save_load_round_trip(tmp_path):
    grid = small_grid()
    grid.save(tmp_path / "grid.npz")
    loaded = PsfGrid.load(tmp_path / "grid.npz")
    assert loaded.positions == grid.positions
    np.testing.assert_array_equal(loaded.psfs, grid.psfs)
    with pytest.raises(ValueError, match="path"):
        PsfGrid.load(tmp_path / "absent.npz")
    np.savez(tmp_path / "wrong.npz", positions=np.zeros(1))
    with pytest.raises(ValueError, match="psfs"):
        PsfGrid.load(tmp_path / "wrong.npz")


def test_default_grid_is_a_plausible_lens():
    grid = default_psf_grid()
    assert set(FIELD_POSITIONS.values()) <= set(grid.positions)
    for k in range(len(grid.positions)):
        assert_is_psf(grid.psfs[k], (25, 25, 3))
    green = [moments(grid.at(r)[..., 1])[1] for r in (0.0, 0.5, 0.9, 1.0)]
    widths = [m["row"] + m["col"] for m in green]
    assert all(a < b for a, b in zip(widths, widths[1:], strict=False))  # blur grows towards the periphery
    # Isotropic at the centre; elongated tangentially (across the diagonal radius) at the periphery.
    np.testing.assert_allclose(green[0]["diagonal"], green[0]["antidiagonal"], rtol=1e-6)
    assert green[3]["antidiagonal"] > 2.5 * green[3]["diagonal"]
    # No chromatic difference at the centre; blue wider than red wider than green at the periphery.
    centre, edge = grid.at(0.0), grid.at(1.0)
    np.testing.assert_allclose(centre[..., 0], centre[..., 2], atol=1e-7)
    rgb = [moments(edge[..., c])[1]["row"] for c in range(3)]
    assert rgb[2] > rgb[0] > rgb[1]
    assert default_psf_grid() is grid  # cached


def test_get_psf_names():
    assert get_psf("none") is None
    grid = small_grid()
    for name, position in FIELD_POSITIONS.items():
        np.testing.assert_array_equal(get_psf(name, grid), grid.at(position))
    np.testing.assert_array_equal(get_psf("periphery"), default_psf_grid().psfs[-1])
    with pytest.raises(ValueError, match="name") as info:
        get_psf("corner")
    assert all(valid in str(info.value) for valid in ("none", "center", "offaxis", "periphery"))
    with pytest.raises(ValueError, match="grid"):
        get_psf("center", grid="grid.npz")


def _blur_bound(images, psf_size, blended=False):
    """`float32_bound` of an FFT blur (tests/physics/test_fourier.py): a forward and an inverse transform over the
    padded image, on images in [0, 1] and PSFs that sum to 1; a spatially varying blur blends ring blurs, one more
    rounded stage. A wrong PSF, flip or ring moves pixels by > 1e-3, the figure these tests check the blur varies by."""
    n = (images.shape[1] + psf_size - 1) * (images.shape[2] + psf_size - 1)
    return float32_bound(n, 1.0, depth=3 if blended else 2)


# ---- blur ----------------------------------------------------------------------------------------------------------


def test_blur_none_is_identity_and_psf_matches_scipy():
    images = np.random.default_rng(3).random((2, 12, 12, 3)).astype(np.float32)
    np.testing.assert_array_equal(blur(images, None).numpy(), images)
    psf = gaussian_psf(5, [0.6, 1.0, 1.4])
    got = blur(images, psf).numpy()
    for c in range(3):
        expected = scipy.ndimage.convolve(images[1, ..., c].astype(np.float64), psf[..., c], mode="reflect")
        np.testing.assert_allclose(got[1, ..., c], expected, rtol=0, atol=_blur_bound(images, 5))
    with pytest.raises(ValueError, match="images"):
        blur(images[0], psf)
    with pytest.raises(ValueError, match="boundary"):
        blur(images, None, boundary="wrap")


def test_field_positions_and_ring_weights():
    r = field_positions(7, 11)
    assert r[3, 5] == 0.0
    np.testing.assert_allclose([r[0, 0], r[0, -1], r[-1, 0], r[-1, -1]], 1.0, atol=1e-12)
    assert r.max() <= 1.0 + 1e-12
    rings = [0.0, 0.3, 0.5, 1.0]
    weights = ring_weights(7, 11, rings)
    assert weights.shape == (7, 11, 4) and np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-12)
    # Linear interpolation: the weighted ring positions reproduce r exactly.
    np.testing.assert_allclose(weights @ np.array(rings), r, atol=1e-12)
    np.testing.assert_array_equal(weights[3, 5], [1, 0, 0, 0])


def test_spatially_varying_blur_with_equal_psfs_is_plain_blur():
    psf = gaussian_psf(5, [0.7, 1.0, 1.3])
    grid = PsfGrid(positions=(0.0, 0.5, 0.9, 1.0), psfs=np.stack([psf] * 4))
    images = np.random.default_rng(4).random((2, 13, 15, 3)).astype(np.float32)
    for boundary in ("reflect", "zero"):
        varying = spatially_varying_blur(images, grid, boundary=boundary).numpy()
        expected = blur(images, psf, boundary).numpy()
        np.testing.assert_allclose(varying, expected, rtol=0, atol=_blur_bound(images, 5, blended=True))


def test_spatially_varying_blur_uses_the_psf_of_each_pixel():
    grid = small_grid()
    images = np.random.default_rng(5).random((1, 15, 17, 3)).astype(np.float32)
    out = spatially_varying_blur(images, grid, boundary="zero").numpy()
    at_centre = blur(images, grid.at(0.0), "zero").numpy()
    at_edge = blur(images, grid.at(1.0), "zero").numpy()
    bound = _blur_bound(images, 5, blended=True)
    np.testing.assert_allclose(out[0, 7, 8], at_centre[0, 7, 8], rtol=0, atol=bound)
    np.testing.assert_allclose(out[0, -1, 0], at_edge[0, -1, 0], rtol=0, atol=bound)
    assert np.abs(out - at_centre).max() > 1e-3  # the blur really varies
    # Any pixel: direct convolution with the grid's PSF interpolated at that pixel's r (rings = grid positions).
    padded = np.pad(images[0].astype(np.float64), [(2, 2), (2, 2), (0, 0)])
    r = field_positions(15, 17)
    for row, col in [(2, 3), (5, 12), (11, 9), (0, 8)]:
        kernel = grid.at(r[row, col]).astype(np.float64)
        window = padded[row : row + 5, col : col + 5]
        expected = np.sum(kernel[::-1, ::-1] * window, axis=(0, 1))  # convolution flips the kernel
        np.testing.assert_allclose(out[0, row, col], expected, rtol=0, atol=bound)


def test_spatially_varying_blur_rings_and_errors():
    grid = small_grid()
    images = np.random.default_rng(6).random((1, 11, 11, 3)).astype(np.float32)
    # The grid's PSFs are linear in position between 0 and 0.5 and between 0.5 and 1, so rings at 0, 0.25, 0.5, 0.75,
    # 1 give the same per-pixel PSFs as the grid's own rings.
    np.testing.assert_allclose(
        spatially_varying_blur(images, grid, num_rings=5).numpy(),
        spatially_varying_blur(images, grid).numpy(),
        rtol=0,
        atol=_blur_bound(images, 5, blended=True),
    )
    with pytest.raises(ValueError, match="num_rings"):
        spatially_varying_blur(images, grid, num_rings=1)
    with pytest.raises(ValueError, match="grid"):
        spatially_varying_blur(images, gaussian_psf(3, 1.0))
    with pytest.raises(ValueError, match="images"):
        spatially_varying_blur(images[0], grid)


def test_module_constants():
    assert FIELD_POSITIONS == {"center": 0.5, "offaxis": 0.9, "periphery": 1.0}
    assert optics.PSF_NAMES == ("none", "center", "offaxis", "periphery")
    assert optics.NIDF_MOTION_HALF_SIZES == (3, 24)
    np.testing.assert_allclose(
        fft_convolve(np.ones((1, 5, 5, 1), np.float32), motion_psf(2, 0)).numpy(), 1.0, atol=1e-6
    )


def test_one_psf_grammar_for_every_command_and_config(tmp_path):
    assert optics.resolve_psf("none") is None
    np.testing.assert_array_equal(optics.resolve_psf("periphery"), optics.get_psf("periphery"))
    np.testing.assert_array_equal(optics.resolve_psf("motion-4", seed=7), optics.motion_psf(4, 7))
    assert optics.resolve_psf("motion-4", seed=7).shape[:2] == (9, 9)
    kernel = optics.gaussian_psf(5, 1.0)
    np.save(tmp_path / "lens.npy", kernel)
    np.testing.assert_allclose(optics.resolve_psf(str(tmp_path / "lens.npy")), kernel)
    for bad in ("blurry", "motion-0", "motion-x", "lens.png"):
        with pytest.raises(ValueError, match=f"psf must be none, center, .*motion-L.*; received '{bad}'"):
            optics.check_psf_spec(bad)
