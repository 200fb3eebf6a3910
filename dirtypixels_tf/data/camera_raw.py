"""Real camera RAW input (any format LibRaw reads: DNG, CR2, NEF, ARW, ...) and simulated RAW output as DNG.

Reading (`read_raw`, through rawpy, the optional extra [raw]):
- The mosaic is the sensor's visible area (LibRaw's `raw_image_visible`, optical-black margins dropped), float32
  [H, W] in [0, 1]: clip((raw - black) / (white - black), 0, 1), with the black level of the pixel's colour.
- Bayer phase: the file's phase (LibRaw's `raw_pattern` through `color_desc`) is moved onto the requested one by
  dropping the first column (columns swapped, RGGB<->GRBG, GBRG<->BGGR), the first row (rows swapped, RGGB<->GBRG,
  GRBG<->BGGR) or both (RGGB<->BGGR, GRBG<->GBRG); then an odd height or width loses its last row or column, so the
  mosaic holds whole 2x2 blocks. Only Bayer sensors are read (X-Trans, Foveon and CYGM files are refused).
- ISO and exposure time: EXIF ISOSpeedRatings (34855) and ExposureTime (33434), read with tifffile from IFD0 or its
  EXIF IFD for TIFF-based files; otherwise LibRaw's parsed metadata (rawpy's `other`, where present and > 0); else None.
- White balance: the DNG tag AsShotNeutral (50728, the camera-RGB value of a neutral grey, (R, G, B)); for other
  formats LibRaw's as-shot multipliers m give the neutral m_G / m (rawpy's `camera_whitebalance`); else None.

The real-capture front end (`prepare_capture`, `load_capture`), shared by `classify`, `evaluate --data captured:`
and the Python API, turns a RawFrame into what a model takes, as the release's test_captured_images.py does with
its phone DNGs (Diamond et al. 2021, "is_real_data"):
1. white balance: each colour divided by its neutral (the file's AsShotNeutral, or given; or none);
2. crop and subsample (`crop_and_subsample`, the release's rule): each of the four half-resolution planes of the 2x2
   Bayer blocks (at the package's phase, see read_raw) is cropped about its centre to factor x (H/2, W/2), factor =
   floor(min(plane height / (H/2), plane width / (W/2))), and every factor-th pixel kept; the planes are put back
   in the same phase, so the frame is [H, W]. (Unlike the release, a plane that fits exactly is kept whole, where
   its slicing img[0:-0] would be empty; and any even H, W is taken, where the release asks for squares.)
3. exposure: multiplied by one factor e and clipped to [0, 1]. "percentile98" (the release's rule): e = 1 / the
   98th percentile of the four planes after steps 1-2 (linear interpolation, NumPy's default). "metering": e sets
   the frame's mean to catalog.CAPTURE_METERING_TARGET, the mean of the images the models are trained on (for
   frames whose highlights are no reference: a lamp in the picture, or a scene without bright parts). "none":
   e = 1; or a number.
4. noise: alpha, sigma of the file's own [0, 1] range: the sensor calibration's at the file's ISO (NoisePreset.at_iso;
   a preset name or a calibrated sensor.yaml), the release's fixed values for its phone ("release_phone": 0.0153 and
   0.0328 in units of (raw - black) / 1023, the release's normalization, converted to (raw - black) / (white -
   black)), numbers given, or estimated from the frame ("from_frame"); then per colour c, scaled like the image:
   alpha_c = alpha e / neutral_c and sigma_c = sigma e / neutral_c ([3], R, G, B), the release's
   alpha_val * scale_factor / awb. Clipping at 1 after scaling is ignored by these parameters, as in the release.

Writing (`write_dng`, with tifffile): one uncompressed CFA image in IFD0 (PhotometricInterpretation 32803) with the
tags a raw reader needs (DNGVersion 1.4, CFARepeatPatternDim 2x2, CFAPattern, BlackLevel, WhiteLevel, an identity
ColorMatrix1 under D65 and the AsShotNeutral given, neutral by default, so "camera RGB" is taken as is). Values are stored as uint16
codes round(black + v * (white - black)); rawpy reads the codes back bit for bit and `read_raw` returns v to within
0.5 / (white - black). ISO and exposure time go into IFD0 as the TIFF/EP tags 34855 and 33434 (where `read_raw`
finds them; LibRaw itself does not read ISO from IFD0).
"""

import dataclasses
import fractions
import os

import numpy as np

from dirtypixels_tf.catalog import (
    CAPTURE_AS_SHOT,
    CAPTURE_EXPOSURES,
    CAPTURE_METERING,
    CAPTURE_METERING_TARGET,
    CAPTURE_NOISE_ESTIMATE,
    CAPTURE_NOISE_RELEASE,
    CAPTURE_NOISE_SENSOR,
    CAPTURE_NOISE_SOURCES,
    CAPTURE_PERCENTILE,
    CAPTURE_WHITE_BALANCES,
)
from dirtypixels_tf.optional import require
from dirtypixels_tf.physics.mosaic import RELEASE_PATTERN, check_pattern
from dirtypixels_tf.physics.validation import check_int, check_mosaic_array

DNG_BITS = (12, 16)
CAMERA_RAW_EXTENSIONS = (".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw", ".raw")

_ISO_TAG = 34855  # EXIF / TIFF-EP ISOSpeedRatings
_EXPOSURE_TAG = 33434  # EXIF / TIFF-EP ExposureTime (seconds)
_EXIF_IFD_TAG = 34665
_AS_SHOT_NEUTRAL_TAG = 50728
_CFA_CODES = {"R": 0, "G": 1, "B": 2}  # DNG CFAPattern colour codes


@dataclasses.dataclass(frozen=True, eq=False)
class RawFrame:
    """A camera RAW frame, normalized (see the module docstring).

    mosaic: float32 [H, W] in [0, 1] (H, W even) in Bayer phase `pattern`; source_pattern: the file's own phase;
    crop: (rows, columns) dropped at the top and left to move source_pattern onto pattern; black_level: the black
    level of each position of the file's 2x2 block, row-major (in source_pattern order); white_level: the raw value
    of saturation; sensor_shape: the full raw array's (height, width) including masked margins; iso and
    exposure_time (seconds): from the file's metadata, None when absent; as_shot_neutral: the camera-RGB (R, G, B) of
    a neutral grey under the scene's light (module docstring), None when the file has none; path: the file read.
    """

    mosaic: np.ndarray
    pattern: str
    source_pattern: str
    crop: tuple
    black_level: tuple
    white_level: float
    sensor_shape: tuple
    iso: float | None
    exposure_time: float | None
    as_shot_neutral: tuple | None = None
    path: str = ""


def phase_crop(source_pattern, pattern):
    """(rows, columns) to drop at the top-left so a mosaic of phase `source_pattern` has phase `pattern`."""
    source, target = check_pattern(source_pattern), check_pattern(pattern)
    for rows in (0, 1):
        for cols in (0, 1):
            shifted = "".join(source[2 * ((i + rows) % 2) + (j + cols) % 2] for i in (0, 1) for j in (0, 1))
            if shifted == target:
                return rows, cols
    raise AssertionError(f"no crop maps {source} onto {target}")  # every Bayer phase is a shift of every other


def _rational(value):
    """A float from an EXIF value: a number, a (numerator, denominator) pair, or a sequence whose first entry is."""
    if isinstance(value, (tuple, list)):
        if len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value):
            return float(value[0]) / float(value[1]) if value[1] else None
        return _rational(value[0]) if value else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and number > 0 else None


def exif_iso_and_exposure(path):
    """(ISO, exposure time in seconds) from the EXIF tags of a TIFF-based file (IFD0, then its EXIF IFD).

    Either is None when the tag is absent or the file is not TIFF-based (e.g. a Fujifilm RAF or an old CRW).
    """
    tifffile = require("tifffile", "reading and writing DNG metadata")
    try:
        with tifffile.TiffFile(os.fspath(path)) as tiff:
            tags = tiff.pages[0].tags
            values = {code: tags[code].value for code in (_ISO_TAG, _EXPOSURE_TAG) if code in tags}
            if _EXIF_IFD_TAG in tags and isinstance(tags[_EXIF_IFD_TAG].value, dict):
                exif = tags[_EXIF_IFD_TAG].value
                values.setdefault(_ISO_TAG, exif.get("ISOSpeedRatings"))
                values.setdefault(_EXPOSURE_TAG, exif.get("ExposureTime"))
    except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError):
        return None, None
    iso, exposure = values.get(_ISO_TAG), values.get(_EXPOSURE_TAG)
    return (None if iso is None else _rational(iso)), (None if exposure is None else _rational(exposure))


def _check_neutral(value, name):
    """A white balance as float64 [3] (R, G, B) of finite positive numbers."""
    array = np.asarray(value, np.float64).ravel() if value is not None else None
    if array is None or array.shape != (3,) or not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name} must be 3 finite numbers > 0 (R, G, B); received {value!r}")
    return array


def as_shot_neutral(path, raw=None):
    """The file's white balance as (R, G, B) of a neutral grey: the DNG tag AsShotNeutral, else LibRaw's as-shot
    multipliers m (rawpy's `camera_whitebalance`, open as `raw`) as m_G / m; None when neither is usable."""
    tifffile = require("tifffile", "reading and writing DNG metadata")
    try:
        with tifffile.TiffFile(os.fspath(path)) as tiff:
            tags = tiff.pages[0].tags
            if _AS_SHOT_NEUTRAL_TAG in tags:
                values = [_rational(v) for v in np.reshape(tags[_AS_SHOT_NEUTRAL_TAG].value, (-1, 2)).tolist()]
                if len(values) == 3 and None not in values:
                    return tuple(values)
    except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError):
        pass
    multipliers = None if raw is None else np.asarray(getattr(raw, "camera_whitebalance", [])[:3], np.float64)
    if multipliers is None or multipliers.shape != (3,) or not np.all(multipliers > 0):
        return None
    return tuple(float(multipliers[1] / m) for m in multipliers)


def _libraw_iso_and_exposure(raw):
    """(ISO, exposure time) from rawpy's `other` (LibRaw's parsed metadata), None where absent or 0."""
    other = getattr(raw, "other", None)
    if other is None:
        return None, None
    return _rational(getattr(other, "iso_speed", None)), _rational(getattr(other, "shutter_speed", None))


def read_raw(path, pattern=RELEASE_PATTERN):
    """Read a camera RAW file into a normalized mosaic of Bayer phase `pattern` (see the module docstring).

    Returns a RawFrame. Raises ValueError naming `path` for a missing, unreadable or non-RAW file and for
    non-Bayer sensors, ImportError (with the pip command) when rawpy is not installed.
    """
    pattern = check_pattern(pattern)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path must be an existing camera RAW file; received {path!r} (not found)")
    rawpy = require("rawpy", "reading camera RAW files")
    try:
        with rawpy.imread(path) as raw:
            colours = raw.color_desc.decode("ascii", "replace")
            block = np.asarray(raw.raw_colors_visible[:2, :2])
            indices = np.asarray(raw.raw_pattern) if raw.raw_pattern is not None else None
            if indices is None or indices.shape != (2, 2) or raw.num_colors != 3:
                raise ValueError(
                    f"path {path!r} is not a Bayer RAW file (colour filter {colours!r}, pattern "
                    f"{None if indices is None else indices.tolist()}); only 2x2 Bayer sensors are supported"
                )
            source_pattern = "".join(colours[int(c)] for c in block.ravel())
            if sorted(source_pattern) != ["B", "G", "G", "R"]:
                raise ValueError(f"path {path!r} has colour filter {source_pattern!r}, not a Bayer RGGB-type pattern")
            blacks = np.asarray(raw.black_level_per_channel, np.float64)[block]
            white = float(raw.white_level)
            counts = np.array(raw.raw_image_visible, dtype=np.float32)
            sensor_shape = tuple(int(n) for n in raw.raw_image.shape)
            libraw_metadata = _libraw_iso_and_exposure(raw)
            neutral = as_shot_neutral(path, raw)
    except (rawpy.LibRawError, OSError) as error:
        raise ValueError(f"path {path!r} is not a readable camera RAW file: {error}") from None
    if np.any(white <= blacks):
        raise ValueError(f"path {path!r} has white level {white} not above its black levels {blacks.ravel().tolist()}")
    height, width = counts.shape
    black_map = np.tile(blacks, ((height + 1) // 2, (width + 1) // 2))[:height, :width].astype(np.float32)
    scale = (white - black_map).astype(np.float32)
    mosaic = np.clip((counts - black_map) / scale, 0.0, 1.0)
    rows, cols = phase_crop(source_pattern, pattern)
    mosaic = mosaic[rows:, cols:]
    mosaic = mosaic[: mosaic.shape[0] // 2 * 2, : mosaic.shape[1] // 2 * 2]
    iso, exposure = exif_iso_and_exposure(path)
    iso = iso if iso is not None else libraw_metadata[0]
    exposure = exposure if exposure is not None else libraw_metadata[1]
    return RawFrame(
        mosaic=np.ascontiguousarray(mosaic, dtype=np.float32),
        pattern=pattern,
        source_pattern=source_pattern,
        crop=(rows, cols),
        black_level=tuple(float(b) for b in blacks.ravel()),
        white_level=white,
        sensor_shape=sensor_shape,
        iso=iso,
        exposure_time=exposure,
        as_shot_neutral=neutral,
        path=path,
    )


def _as_rational(value, denominator=1_000_000):
    fraction = fractions.Fraction(value).limit_denominator(denominator)
    return fraction.numerator, fraction.denominator


def write_dng(
    path,
    mosaic,
    pattern=RELEASE_PATTERN,
    bits=16,
    black_level=0,
    white_level=None,
    iso=None,
    exposure_time=None,
    as_shot_neutral=(1.0, 1.0, 1.0),
):
    """Write a mosaic [H, W] (or [H, W, 1]) with values in [0, 1] as a Bayer DNG of phase `pattern`.

    bits: 12 or 16, the code range; white_level defaults to 2**bits - 1 and black_level (an integer >= 0) must lie
    below it. A value v is stored as round(black_level + v * (white_level - black_level)). iso and exposure_time
    (seconds), when given, are written as the TIFF/EP tags 34855 and 33434; as_shot_neutral (R, G, B > 0, the camera
    values of a neutral grey) as AsShotNeutral, in rationals of denominator up to 10^6. LibRaw needs at least 22 x 22
    pixels.
    Returns the uint16 codes written.
    """
    tifffile = require("tifffile", "reading and writing DNG metadata")
    pattern = check_pattern(pattern)
    array = check_mosaic_array(mosaic, "mosaic")
    if bits not in DNG_BITS or isinstance(bits, bool):
        raise ValueError(f"bits must be one of {DNG_BITS}; received {bits!r}")
    if white_level is None:
        white_level = 2**bits - 1
    white_level = check_int(white_level, "white_level", None)
    black_level = check_int(black_level, "black_level", 0)
    if not black_level < white_level <= 2**bits - 1:
        raise ValueError(
            f"white_level must satisfy black_level ({black_level}) < white_level <= {2**bits - 1} for {bits} bits; "
            f"received {white_level!r}"
        )
    neutral = _check_neutral(as_shot_neutral, "as_shot_neutral")
    codes = np.round(black_level + array.astype(np.float64) * (white_level - black_level)).astype(np.uint16)
    tags = [
        (50706, 1, 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, 1, 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, 2, None, "dirtypixels_tf simulated sensor", True),  # UniqueCameraModel
        (271, 2, None, "dirtypixels_tf", True),  # Make
        (272, 2, None, "simulated sensor", True),  # Model
        (33421, 3, 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, 1, 4, tuple(_CFA_CODES[c] for c in pattern), True),  # CFAPattern
        (50710, 1, 3, (0, 1, 2), True),  # CFAPlaneColor: R, G, B
        (50711, 3, 1, 1, True),  # CFALayout: rectangular
        (50713, 3, 2, (1, 1), True),  # BlackLevelRepeatDim
        (50714, 4, 1, int(black_level), True),  # BlackLevel
        (50717, 4, 1, int(white_level), True),  # WhiteLevel
        (50721, 10, 9, (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1), True),  # ColorMatrix1: identity
        (50778, 3, 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, 5, 3, sum((_as_rational(v) for v in neutral), ()), True),  # AsShotNeutral
    ]
    if iso is not None:
        iso = float(iso)
        if not np.isfinite(iso) or iso <= 0 or iso > 65535:
            raise ValueError(f"iso must be a number in (0, 65535]; received {iso!r}")
        tags.append((_ISO_TAG, 3, 1, int(round(iso)), True))
    if exposure_time is not None:
        exposure = float(exposure_time)
        if not np.isfinite(exposure) or exposure <= 0:
            raise ValueError(f"exposure_time must be a number > 0 (seconds); received {exposure_time!r}")
        tags.append((_EXPOSURE_TAG, 5, 1, _as_rational(exposure), True))
    tifffile.imwrite(
        os.fspath(path),
        codes,
        photometric=tifffile.PHOTOMETRIC.CFA,
        subfiletype=0,
        metadata=None,
        software="dirtypixels_tf",
        extratags=tags,
    )
    return codes


# The real-capture front end (module docstring).
RELEASE_PERCENTILE = 98.0
# The release's phone (test_captured_images.py): alpha and sigma in units of (raw - black) / RELEASE_CODE_SCALE.
RELEASE_PHONE_NOISE = (0.0153, 0.0328)
RELEASE_CODE_SCALE = 1023.0


@dataclasses.dataclass(frozen=True, eq=False)
class CaptureFrame:
    """A real capture as a model takes it (module docstring, steps 1-4).

    mosaic: float32 [H, W] in [0, 1], Bayer phase `pattern`; alpha, sigma: float32 [3] (R, G, B) in the units of
    `mosaic`; neutral: the white balance divided out, (R, G, B) (ones for none); exposure: the factor e;
    noise_source: where alpha and sigma came from, in words; path: the file.
    """

    mosaic: np.ndarray
    alpha: np.ndarray
    sigma: np.ndarray
    pattern: str
    neutral: np.ndarray
    exposure: float
    noise_source: str
    path: str = ""

    def inputs(self):
        """A batch of one: {"raw" [1, H, W, 1], "alpha" [1, 3], "sigma" [1, 3]} float32 (a per-colour model's)."""
        return {
            "raw": self.mosaic[None, :, :, None],
            "alpha": self.alpha[None].astype(np.float32),
            "sigma": self.sigma[None].astype(np.float32),
        }

    def describe(self):
        def values(array):
            return "/".join(f"{v:.4g}" for v in array)

        return (
            f"white balance {values(self.neutral)}, exposure x{self.exposure:.4g}, alpha {values(self.alpha)} "
            f"sigma {values(self.sigma)} (R/G/B; {self.noise_source})"
        )


def crop_and_subsample(plane, size):
    """The release's crop_and_subsample of one half-resolution plane to `size` (h, w): factor = floor(min(plane
    height / h, plane width / w)); the central factor h x factor w window (the extra row or column of an odd margin
    dropped at the end), every factor-th pixel. Raises ValueError when the plane is smaller than `size`."""
    height, width = size
    factor = int(min(plane.shape[0] // height, plane.shape[1] // width))
    if factor < 1:
        raise ValueError(
            f"a {plane.shape[0]}x{plane.shape[1]} Bayer plane is smaller than the {height}x{width} asked for"
        )
    top = (plane.shape[0] - factor * height) // 2
    left = (plane.shape[1] - factor * width) // 2
    return plane[top : top + factor * height : factor, left : left + factor * width : factor]


def _colour_index(pattern):
    """The colour (0 R, 1 G, 2 B) at each position of the 2x2 block of `pattern`, row-major."""
    return [{"R": 0, "G": 1, "B": 2}[c] for c in pattern]


def _noise_at_unit(frame, noise, sensor, iso):
    """(alpha, sigma, description) for one colour in the [0, 1] units of `frame` (module docstring, step 4)."""
    if isinstance(noise, (tuple, list)) and len(noise) == 2:
        alpha, sigma = (float(v) for v in noise)
        if not (np.isfinite(alpha) and np.isfinite(sigma) and alpha > 0 and sigma >= 0):
            raise ValueError(f"noise (alpha, sigma) must be finite with alpha > 0, sigma >= 0; received {noise!r}")
        return alpha, sigma, "given"
    if noise == CAPTURE_NOISE_RELEASE:
        unit = RELEASE_CODE_SCALE / (frame.white_level - float(np.mean(frame.black_level)))
        return RELEASE_PHONE_NOISE[0] * unit, RELEASE_PHONE_NOISE[1] * unit, "the release's phone values"
    if noise == CAPTURE_NOISE_SENSOR:
        from dirtypixels_tf.physics.sensor_files import resolve_sensor

        iso = frame.iso if iso is None else float(iso)
        if iso is None or not np.isfinite(iso) or iso <= 0:
            raise ValueError(
                f"iso: the file {frame.path} records no ISO; give one, or take the noise from the frame "
                f"(noise={CAPTURE_NOISE_ESTIMATE!r}) or the release's values (noise={CAPTURE_NOISE_RELEASE!r})"
            )
        calibration = resolve_sensor(sensor)
        alpha, sigma = calibration.preset.at_iso(iso)
        label = sensor if isinstance(sensor, str) else "the sensor calibration"
        return alpha, sigma, f"{label} at ISO {iso:g}"
    if noise == CAPTURE_NOISE_ESTIMATE:
        from dirtypixels_tf.physics.noise_estimation import estimate_frame_noise

        fit = estimate_frame_noise(frame.mosaic)
        return fit.alpha, fit.sigma, f"estimated from the frame ({fit.blocks_used} of {fit.blocks_total} blocks)"
    raise ValueError(f"noise must be one of {', '.join(CAPTURE_NOISE_SOURCES)} or (alpha, sigma); received {noise!r}")


def prepare_capture(
    frame,
    image_size,
    white_balance=CAPTURE_AS_SHOT,
    exposure=CAPTURE_PERCENTILE,
    noise=CAPTURE_NOISE_SENSOR,
    sensor=None,
    iso=None,
    metering_target=CAPTURE_METERING_TARGET,
):
    """A RawFrame (read_raw) as a model of `image_size` (H, W, even) takes it: a CaptureFrame (module docstring).

    white_balance: "as_shot" (the file's AsShotNeutral; a ValueError when it has none), "none", or a neutral (R, G,
    B). exposure: "percentile98" (the release's rule), "metering" (mean -> metering_target), "none", or a factor.
    noise: "sensor_at_iso" (`sensor`, a preset name or sensor.yaml, at `iso` or the file's ISO), "release_phone",
    "from_frame", or (alpha, sigma) in the file's [0, 1] units.
    """
    from dirtypixels_tf.catalog import DEFAULT_PRESET

    height, width = (int(v) for v in image_size)
    if height < 2 or width < 2 or height % 2 or width % 2:
        raise ValueError(f"image_size must be an even (height, width); received {image_size!r}")
    if isinstance(white_balance, str):
        if white_balance not in CAPTURE_WHITE_BALANCES:
            raise ValueError(
                f"white_balance must be one of {', '.join(CAPTURE_WHITE_BALANCES)} or (R, G, B); received {white_balance!r}"
            )
        if white_balance == "none":
            neutral = np.ones(3)
        elif frame.as_shot_neutral is None:
            raise ValueError(
                f"white_balance: {frame.path} records no AsShotNeutral; give the neutral (R, G, B) or 'none'"
            )
        else:
            neutral = _check_neutral(frame.as_shot_neutral, "the file's AsShotNeutral")
    else:
        neutral = _check_neutral(white_balance, "white_balance")
    colours = _colour_index(frame.pattern)
    planes = []
    for position, colour in enumerate(colours):
        row, col = divmod(position, 2)
        plane = frame.mosaic[row::2, col::2].astype(np.float64) / neutral[colour]
        planes.append(crop_and_subsample(plane, (height // 2, width // 2)))
    if isinstance(exposure, str):
        if exposure not in CAPTURE_EXPOSURES:
            raise ValueError(
                f"exposure must be one of {', '.join(CAPTURE_EXPOSURES)} or a number; received {exposure!r}"
            )
        if exposure == CAPTURE_PERCENTILE:
            level = float(np.percentile(np.stack(planes, axis=2), RELEASE_PERCENTILE))
        elif exposure == CAPTURE_METERING:
            level = float(np.mean(planes)) / float(metering_target)
        else:
            level = 1.0
        if not level > 0:
            raise ValueError(f"exposure: {frame.path} is black after white balance; its {exposure} level is {level}")
        factor = 1.0 / level
    else:
        factor = float(exposure)
        if not (np.isfinite(factor) and factor > 0):
            raise ValueError(
                f"exposure must be one of {', '.join(CAPTURE_EXPOSURES)} or a number > 0; received {exposure!r}"
            )
    mosaic = np.empty((height, width), np.float64)
    for position, plane in enumerate(planes):
        row, col = divmod(position, 2)
        mosaic[row::2, col::2] = plane
    alpha, sigma, source = _noise_at_unit(frame, noise, DEFAULT_PRESET if sensor is None else sensor, iso)
    gains = factor / neutral
    return CaptureFrame(
        mosaic=np.clip(mosaic * factor, 0.0, 1.0).astype(np.float32),
        alpha=(alpha * gains).astype(np.float32),
        sigma=(sigma * gains).astype(np.float32),
        pattern=frame.pattern,
        neutral=neutral,
        exposure=factor,
        noise_source=source,
        path=frame.path,
    )


def load_capture(path, image_size, pattern=RELEASE_PATTERN, **options):
    """read_raw(path, pattern), then prepare_capture(frame, image_size, **options): a CaptureFrame."""
    return prepare_capture(read_raw(path, pattern), image_size, **options)
