"""Point spread functions (PSFs) and blurring: Gaussian, defocus disk, random-walk motion, loaded arrays, and a
radial grid of lens PSFs over the field of view.

Conventions:
- A PSF is a float32 NumPy array [kh, kw] (one kernel for every channel) or [kh, kw, C] (one per channel),
  non-negative and normalized to sum 1 per channel, so blurring keeps the mean intensity. Its centre is the pixel
  (kh // 2, kw // 2) and blurring is convolution (see fourier.py), so a PSF centred there does not shift the image.
  The generated PSFs have odd sides, so the centre is the geometric centre.
- PSF generation is NumPy (it happens once, outside the graph); blurring is TensorFlow through fourier.fft_convolve.
- Gaussians are sampled at pixel centres (not integrated over the pixel): with enough support their second moment
  per axis is sigma^2.
- Field position r of a pixel: its distance from the image centre divided by the half-diagonal, so r = 0 at the
  centre pixel and r = 1 at the centres of the corner pixels. The evaluation of Diamond et al. 2017 (Table 1) uses
  the PSFs at r = 0.5 ("center"), 0.9 ("offaxis") and 1.0 ("periphery") of a Nexus 5 rear camera; that calibration
  was never released, so `default_psf_grid` synthesizes a plausible stand-in and `PsfGrid.load` reads a calibrated one.
"""

import dataclasses
import functools
import math
import os

import numpy as np
import scipy.io
import tensorflow as tf

from dirtypixels_tf.catalog import FIELD_PSFS, MOTION_PSF_PREFIX, NO_PSF, PSF_FILE_EXTENSIONS, PSF_GRAMMAR, PSF_NAMES
from dirtypixels_tf.physics.fourier import check_boundary, fft_convolve
from dirtypixels_tf.physics.validation import check_image, check_int, check_positive_number

FIELD_POSITIONS = dict(zip(FIELD_PSFS, (0.5, 0.9, 1.0)))
INTERPOLATIONS = ("linear", "nearest")
DEFAULT_GRID_POSITIONS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)

# Motion blur half sizes l used by NIDF (Miao and Zhu, NIDF, Sec. 2.3): kernels of side 2l + 1 with 3 <= l <= 24.
NIDF_MOTION_HALF_SIZES = (3, 24)

_SUPERSAMPLES = 17  # per axis and pixel for the disk's area coverage; odd so the exact centre is always sampled


def _describe(array):
    """A short description of a received array for error messages (never the whole array)."""
    array = np.asarray(array)
    text = f"shape {array.shape}, dtype {array.dtype}"
    if array.size and np.issubdtype(array.dtype, np.number):
        with np.errstate(invalid="ignore"):
            text += f", min {np.min(array)!r}, max {np.max(array)!r}"
    return text


def _hat_weights(x, knots):
    """Linear-interpolation weights [..., K] of x (any shape) on increasing knots, clamped outside; sum 1."""
    x, knots = np.asarray(x, dtype=np.float64), np.asarray(knots, dtype=np.float64)
    basis = np.eye(knots.size)
    return np.stack([np.interp(x, knots, basis[k]) for k in range(knots.size)], axis=-1)


def normalize_psf(psf, name="psf"):
    """Validate a PSF [kh, kw] or [kh, kw, C] and scale it to sum 1 per channel; returns float32.

    Raises ValueError naming `name` if the PSF has the wrong rank, is empty, holds NaN/infinity or negative values, or
    sums to zero in some channel.
    """
    try:
        array = np.asarray(psf, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array [kh, kw] or [kh, kw, C]; received {psf!r}") from None
    if array.ndim not in (2, 3) or array.size == 0:
        raise ValueError(f"{name} must be a non-empty array [kh, kw] or [kh, kw, C]; received {_describe(array)}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite; received NaN or infinity ({_describe(array)})")
    if np.any(array < 0):
        raise ValueError(f"{name} must be non-negative; received {_describe(array)}")
    sums = array.sum(axis=(0, 1))
    if np.any(sums <= 0):
        raise ValueError(f"{name} must have a positive sum in every channel; received sums {np.atleast_1d(sums)}")
    return (array / sums).astype(np.float32)


def _check_odd_size(size, name="size"):
    if check_int(size, name) % 2 == 0:
        raise ValueError(f"{name} must be an odd integer >= 1; received {size!r}")
    return int(size)


def _centred_grid(size):
    """Row and column offsets from the centre pixel, each [size, size]."""
    offsets = np.arange(size, dtype=np.float64) - size // 2
    return np.meshgrid(offsets, offsets, indexing="ij")


def _oriented_gaussian(size, sigma_u, sigma_v, angle):
    """Gaussian [size, size] with std sigma_u along the direction `angle` (radians from the +column axis towards
    +row) and sigma_v across it, sampled at pixel centres and normalized."""
    rows, cols = _centred_grid(size)
    u = cols * math.cos(angle) + rows * math.sin(angle)
    v = -cols * math.sin(angle) + rows * math.cos(angle)
    kernel = np.exp(-0.5 * ((u / sigma_u) ** 2 + (v / sigma_v) ** 2))
    return kernel / kernel.sum()


def gaussian_psf(size, sigma, channels=None):
    """Isotropic Gaussian PSF of odd side `size`, sampled at pixel centres, sum 1 per channel.

    `sigma` (pixels, > 0) is one number, or one per channel for chromatic blur. Returns [size, size] for a single
    number without `channels`, else [size, size, C] with C = len(sigma) or `channels`.
    """
    size = _check_odd_size(size)
    sigmas = np.atleast_1d(np.asarray(sigma, dtype=object))
    if sigmas.ndim != 1 or sigmas.size == 0:
        raise ValueError(f"sigma must be a number or a 1-D sequence of numbers; received {sigma!r}")
    sigmas = [check_positive_number(s, "sigma") for s in sigmas]
    per_channel = np.ndim(sigma) == 1
    if channels is not None:
        channels = check_int(channels, "channels")
        if per_channel and len(sigmas) != channels:
            raise ValueError(f"channels must equal len(sigma) = {len(sigmas)}; received {channels!r}")
        if not per_channel:
            sigmas = sigmas * int(channels)
            per_channel = True
    kernels = [_oriented_gaussian(size, s, s, 0.0) for s in sigmas]
    if not per_channel:
        return kernels[0].astype(np.float32)
    return normalize_psf(np.stack(kernels, axis=-1))


def disk_psf(size, radius):
    """Defocus (pillbox) PSF [size, size]: the area of each pixel covered by a disk of `radius` pixels centred on the
    centre pixel (estimated with 17 x 17 samples per pixel), normalized to sum 1. `size` is odd and the disk must fit
    (radius <= size / 2); a radius below half a pixel gives (nearly) a delta."""
    size = _check_odd_size(size)
    radius = check_positive_number(radius, "radius")
    if radius > size / 2:
        raise ValueError(f"radius must be <= size / 2 = {size / 2} so the disk fits the kernel; received {radius!r}")
    sub = (np.arange(_SUPERSAMPLES) + 0.5) / _SUPERSAMPLES - 0.5
    rows, cols = _centred_grid(size)
    dy = rows[:, :, None, None] + sub[None, None, :, None]
    dx = cols[:, :, None, None] + sub[None, None, None, :]
    coverage = np.mean(dy**2 + dx**2 <= radius**2, axis=(2, 3))
    return normalize_psf(coverage)


def _check_seed(seed):
    """An int >= 0 or a sequence of them (e.g. (epoch, example index)), as numpy.random.default_rng takes."""
    values = np.atleast_1d(np.asarray(seed, dtype=object))
    ok = seed is not None and values.ndim == 1 and values.size > 0
    ok = ok and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in values)
    if not ok:
        raise ValueError(f"seed must be an integer >= 0 or a sequence of them; received {seed!r}")
    return [int(v) for v in values]


def motion_psf(half_size, seed, num_steps=64, shake=0.3, impulse_probability=0.05):
    """Random-walk camera-shake PSF of side 2 * half_size + 1 (Miao and Zhu, NIDF, Sec. 2.3), deterministic per `seed`.

    The camera moves for `num_steps` equal time steps. Its velocity starts as a unit vector in a random direction and
    follows a random walk: each step adds Gaussian noise of std `shake`, and with probability `impulse_probability`
    a sudden jerk (Gaussian of std 2). The path is centred on its time average, scaled so it reaches the kernel's
    border (largest offset = half_size pixels along some axis), sampled every <= 0.25 px and splatted bilinearly
    with weight proportional to time, so slow parts of the path are brighter. The PSF's centre of mass is therefore
    the centre pixel: the blur does not shift the image.

    The path's shape depends on the seed (and the walk parameters) only; `half_size` scales it to the kernel.
    NIDF draws half sizes 3 <= l <= 24 (`NIDF_MOTION_HALF_SIZES`); any integer l >= 1 is accepted. `seed` is an
    integer >= 0 or a sequence of them (numpy.random.default_rng). Returns float32 [2l + 1, 2l + 1], sum 1.
    """
    half_size = check_int(half_size, "half_size")
    num_steps = check_int(num_steps, "num_steps")
    shake = check_positive_number(shake, "shake", allow_zero=True)
    impulse_probability = check_positive_number(impulse_probability, "impulse_probability", allow_zero=True)
    if impulse_probability > 1:
        raise ValueError(f"impulse_probability must be in [0, 1]; received {impulse_probability!r}")
    rng = np.random.default_rng(_check_seed(seed))
    half_size, size = int(half_size), 2 * int(half_size) + 1

    angle = rng.uniform(0.0, 2.0 * np.pi)
    changes = shake * rng.standard_normal((num_steps, 2))
    jerks = rng.random(num_steps) < impulse_probability
    changes += jerks[:, None] * 2.0 * rng.standard_normal((num_steps, 2))
    velocity = np.array([math.sin(angle), math.cos(angle)]) + np.cumsum(changes, axis=0)  # (row, col)
    path = np.concatenate([np.zeros((1, 2)), np.cumsum(velocity, axis=0)])  # num_steps + 1 vertices

    # Each segment lasts one time step, so the time average of the path is the mean of the segment midpoints.
    path -= np.mean(0.5 * (path[1:] + path[:-1]), axis=0)
    extent = np.max(np.abs(path))
    kernel = np.zeros((size, size))
    if extent == 0:
        kernel[half_size, half_size] = 1.0
        return kernel.astype(np.float32)
    path *= half_size / extent

    # Sample each segment at the midpoints of n equal pieces (n from its length), each with weight 1 / n.
    points, weights = [], []
    for start, end in zip(path[:-1], path[1:], strict=True):
        pieces = max(1, math.ceil(np.max(np.abs(end - start)) / 0.25))
        fractions = (np.arange(pieces) + 0.5) / pieces
        points.append(start + fractions[:, None] * (end - start))
        weights.append(np.full(pieces, 1.0 / pieces))
    points, weights = np.concatenate(points) + half_size, np.concatenate(weights)

    # Bilinear splatting keeps the first moment; offsets lie in [0, 2l], so the lower corner is clipped to 2l - 1.
    corner = np.clip(np.floor(points), 0, size - 2).astype(int)
    frac = points - corner
    for drow in (0, 1):
        for dcol in (0, 1):
            wrow = frac[:, 0] if drow else 1.0 - frac[:, 0]
            wcol = frac[:, 1] if dcol else 1.0 - frac[:, 1]
            np.add.at(kernel, (corner[:, 0] + drow, corner[:, 1] + dcol), weights * wrow * wcol)
    return normalize_psf(np.maximum(kernel, 0.0))


def _pick_key(arrays, key, path):
    """The array stored under `key`, or the only array when key is None."""
    names = sorted(arrays)
    if key is not None:
        if key not in arrays:
            raise ValueError(f"key must name an array in {path}: one of {names}; received {key!r}")
        return arrays[key]
    if len(names) != 1:
        raise ValueError(f"key must be given: {path} holds {len(names)} arrays {names}; received key=None")
    return arrays[names[0]]


def load_psf(path, key=None):
    """Load a PSF from .npy, .npz or .mat (MATLAB v5/v7, via scipy.io.loadmat) and return it validated and
    normalized (see `normalize_psf`).

    For .npz and .mat, `key` names the array; without it the file must hold exactly one array (MATLAB's `__header__`
    style entries are ignored). A missing file, unknown extension or unreadable file raises ValueError naming `path`.
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".npy", ".npz", ".mat"):
        raise ValueError(f"path must end in .npy, .npz or .mat; received {path!r}")
    if not os.path.isfile(path):
        raise ValueError(f"path must be an existing file; received {path!r} (not found)")
    if extension == ".npy":
        if key is not None:
            raise ValueError(f"key applies to .npz and .mat files only; received key={key!r} for {path!r}")
        array = np.load(path, allow_pickle=False)
    elif extension == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            array = _pick_key({name: archive[name] for name in archive.files}, key, path)
    else:
        try:
            contents = scipy.io.loadmat(path)
        except NotImplementedError:
            raise ValueError(f"path {path!r} is a MATLAB v7.3 (HDF5) file; save it with -v7 or as .npy") from None
        arrays = {name: value for name, value in contents.items() if not name.startswith("__")}
        array = _pick_key(arrays, key, path)
    return normalize_psf(array, name=f"the PSF in {path}")


@dataclasses.dataclass(frozen=True, eq=False)
class PsfGrid:
    """Lens PSFs at increasing radial field positions (0 = image centre, 1 = image corner; see module docstring).

    positions: strictly increasing floats in [0, 1]; psfs: [P, kh, kw, C] (or [P, kh, kw], stored with C = 1), each
    validated and normalized to sum 1 per channel. The arrays are stored read-only. The grid is radial only: the PSF
    at a field position is used at every azimuth (its orientation does not rotate around the image).
    """

    positions: tuple
    psfs: np.ndarray = dataclasses.field(repr=False)

    def __post_init__(self):
        try:
            positions = tuple(float(p) for p in np.atleast_1d(self.positions))
        except (TypeError, ValueError):
            raise ValueError(f"positions must be a sequence of numbers; received {self.positions!r}") from None
        if not positions or any(not 0 <= p <= 1 for p in positions) or np.any(np.diff(positions) <= 0):
            raise ValueError(f"positions must be strictly increasing numbers in [0, 1]; received {self.positions!r}")
        psfs = np.asarray(self.psfs)
        if psfs.ndim == 3:
            psfs = psfs[..., np.newaxis]
        if psfs.ndim != 4 or psfs.shape[0] != len(positions):
            raise ValueError(
                f"psfs must be [P, kh, kw, C] with P = len(positions) = {len(positions)}; received {_describe(psfs)}"
            )
        psfs = np.stack([normalize_psf(p, name=f"psfs[{i}]") for i, p in enumerate(psfs)])
        psfs.flags.writeable = False
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "psfs", psfs)

    @property
    def psf_shape(self):
        """(kh, kw, C) of every PSF in the grid."""
        return self.psfs.shape[1:]

    def at(self, position, interpolation="linear"):
        """The PSF [kh, kw, C] at a field position in [0, 1].

        "linear" blends the two neighbouring grid PSFs with weights linear in position (a convex combination, so the
        result is still non-negative with sum 1 per channel); "nearest" takes the closest grid PSF (the lower one on
        a tie). Positions outside the grid's range take the first or last PSF.
        """
        position = check_positive_number(position, "position", allow_zero=True)
        if position > 1:
            raise ValueError(f"position must be in [0, 1]; received {position!r}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}; received {interpolation!r}")
        positions = np.asarray(self.positions)
        if interpolation == "nearest":
            return self.psfs[int(np.argmin(np.abs(positions - position)))].copy()
        blended = np.tensordot(_hat_weights(position, positions), self.psfs.astype(np.float64), axes=1)
        return normalize_psf(blended)

    def save(self, path):
        """Write the grid as .npz with arrays `positions` [P] and `psfs` [P, kh, kw, C] (NumPy adds .npz if absent)."""
        np.savez(os.fspath(path), positions=np.asarray(self.positions), psfs=self.psfs)

    @classmethod
    def load(cls, path):
        """Read a grid written by `save` (or any .npz with `positions` and `psfs`); validates it."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ValueError(f"path must be an existing .npz file; received {path!r} (not found)")
        with np.load(path, allow_pickle=False) as archive:
            missing = {"positions", "psfs"} - set(archive.files)
            if missing:
                raise ValueError(f"path {path!r} must hold arrays 'positions' and 'psfs'; missing {sorted(missing)}")
            return cls(positions=archive["positions"], psfs=archive["psfs"])


def default_psf_grid(size=25, sigma_scale=1.0, positions=DEFAULT_GRID_POSITIONS):
    """A SYNTHETIC phone-lens PSF grid (the calibrated Nexus 5 grid of Diamond et al. 2017 was never released).

    Each PSF is an oriented Gaussian sampled at pixel centres, [size, size, 3] (R, G, B), for a field point on the
    diagonal towards the bottom-right corner. In pixels, times `sigma_scale`:
    - radial std      s_r(r) = 0.6 + 0.9 r^4   (sharp in the middle, degrading quickly towards the corners)
    - tangential std  s_t(r) = s_r(r) * (1 + 0.8 r^4)   (elongated across the radius off-axis, as astigmatism does)
    - chromatic: R is wider by a factor 1 + 0.08 r and B by 1 + 0.15 r, G unchanged (growing with field position).
    At r = 1 the blue tangential std is 3.1 px; the default size 25 keeps 3.9 std on each side. Cached per arguments
    (the grid's arrays are read-only).
    """
    size = _check_odd_size(size)
    sigma_scale = check_positive_number(sigma_scale, "sigma_scale")
    try:
        positions = tuple(float(p) for p in positions)
    except (TypeError, ValueError):
        raise ValueError(f"positions must be a sequence of numbers; received {positions!r}") from None
    return _synthetic_grid(size, sigma_scale, positions)


@functools.lru_cache(maxsize=8)
def _synthetic_grid(size, sigma_scale, positions):
    radial = math.pi / 4  # the diagonal direction (+row, +col)
    psfs = []
    for r in positions:
        sigma_r = sigma_scale * (0.6 + 0.9 * r**4)
        sigma_t = sigma_r * (1 + 0.8 * r**4)
        channels = [1 + 0.08 * r, 1.0, 1 + 0.15 * r]
        psfs.append(np.stack([_oriented_gaussian(size, sigma_r * c, sigma_t * c, radial) for c in channels], -1))
    return PsfGrid(positions=tuple(positions), psfs=np.stack(psfs))


def get_psf(name, grid=None):
    """The PSF of an evaluation condition of Diamond et al. 2017: "none" -> None (no blur); "center", "offaxis",
    "periphery" -> the grid's PSF [kh, kw, C] at field position 0.5, 0.9, 1.0 (`grid` defaults to
    `default_psf_grid()`)."""
    if name not in PSF_NAMES:
        raise ValueError(f"name must be one of {', '.join(PSF_NAMES)}; received {name!r}")
    if name == NO_PSF:
        return None
    grid = default_psf_grid() if grid is None else grid
    if not isinstance(grid, PsfGrid):
        raise ValueError(f"grid must be a PsfGrid or None; received {type(grid).__name__}")
    return grid.at(FIELD_POSITIONS[name])


def check_psf_spec(spec):
    """Check a PSF spec's grammar without loading anything (see resolve_psf); returns it, or raises ValueError."""
    text = str(spec).strip()
    if text in PSF_NAMES or os.path.splitext(text)[1].lower() in PSF_FILE_EXTENSIONS:
        return text
    length = text.removeprefix(MOTION_PSF_PREFIX)
    if text.startswith(MOTION_PSF_PREFIX) and length.isdigit() and int(length) >= 1:
        return text
    raise ValueError(f"psf must be {PSF_GRAMMAR}; received {spec!r}")


def resolve_psf(spec, seed=0, grid=None):
    """The PSF [kh, kw] or [kh, kw, C] (or None for no blur) of a PSF spec, the one grammar every command and config
    takes: "none"; "center", "offaxis", "periphery" (the grid's PSFs, Diamond et al. 2017's evaluation conditions);
    "motion-L" (a random-walk PSF of side 2L + 1 drawn with `seed`, Miao and Zhu's blur); or a .npy/.npz/.mat file."""
    text = check_psf_spec(spec)
    if text in PSF_NAMES:
        return get_psf(text, grid)
    if text.startswith(MOTION_PSF_PREFIX):
        return motion_psf(int(text.removeprefix(MOTION_PSF_PREFIX)), seed)
    return load_psf(text)


def blur(images, psf, boundary="reflect"):
    """Blur images [B, H, W, C] (float, NHWC) with a PSF [kh, kw] or [kh, kw, C]; `psf=None` returns the images.

    Convolution with the PSF centre at (kh // 2, kw // 2), output the input's size; boundary "reflect" (default),
    "zero" or "circular" as in fourier.fft_convolve. The PSF is used as given: normalize it with `normalize_psf`.
    """
    images = check_image(images, "images")
    check_boundary(boundary)
    if psf is None:
        return images
    return fft_convolve(images, psf, boundary)


def field_positions(height, width):
    """Field position r of every pixel, float64 [height, width]: distance from the image centre ((H - 1) / 2,
    (W - 1) / 2) over the half-diagonal, so r = 0 at the centre and 1 at the corner pixels (0 everywhere for 1x1)."""
    rows = np.arange(height) - (height - 1) / 2
    cols = np.arange(width) - (width - 1) / 2
    distance = np.hypot(rows[:, None], cols[None, :])
    half_diagonal = math.hypot((height - 1) / 2, (width - 1) / 2)
    return distance / half_diagonal if half_diagonal > 0 else distance


def ring_weights(height, width, rings):
    """Per-pixel blending weights [H, W, K] for ring positions `rings` (increasing, K >= 1): hat functions of r,
    i.e. linear interpolation between the two rings around the pixel's r, clamped outside; they sum to 1."""
    return _hat_weights(field_positions(height, width), rings)


def spatially_varying_blur(images, grid, boundary="reflect", num_rings=None):
    """Blur images [B, H, W, C] with a PSF that depends on each pixel's field position r (see `field_positions`).

    The images are blurred with the grid's PSF at each ring position and the results are blended per pixel with
    `ring_weights`. Rings: `num_rings=None` uses the grid's own positions plus 0 and 1 if absent; an integer K >= 2
    uses K evenly spaced positions from 0 to 1. Output pixel p is sum_q k_p(p - q) x(q), with k_p the PSF linearly
    interpolated in r between the two rings around p (the PSF is chosen by the output pixel). The grid is radial
    only, so PSF orientation does not rotate with azimuth. Costs one FFT blur per ring.
    """
    images = check_image(images, "images")
    check_boundary(boundary)
    if not isinstance(grid, PsfGrid):
        raise ValueError(f"grid must be a PsfGrid; received {type(grid).__name__}")
    if num_rings is None:
        rings = sorted(set(grid.positions) | {0.0, 1.0})
    else:
        num_rings = check_int(num_rings, "num_rings", 2)
        rings = np.linspace(0.0, 1.0, int(num_rings)).tolist()
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None:
        raise ValueError(f"images must have a static height and width; received shape {images.shape}")
    weights = ring_weights(height, width, rings)
    result = None
    for k, ring in enumerate(rings):
        if not weights[..., k].any():
            continue
        weight = tf.constant(weights[np.newaxis, :, :, k, np.newaxis], dtype=images.dtype)
        term = weight * blur(images, grid.at(ring), boundary)
        result = term if result is None else result + term
    return result
