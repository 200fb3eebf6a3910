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

Writing (`write_dng`, with tifffile): one uncompressed CFA image in IFD0 (PhotometricInterpretation 32803) with the
tags a raw reader needs (DNGVersion 1.4, CFARepeatPatternDim 2x2, CFAPattern, BlackLevel, WhiteLevel, an identity
ColorMatrix1 under D65 and a neutral AsShotNeutral, so "camera RGB" is taken as is). Values are stored as uint16
codes round(black + v * (white - black)); rawpy reads the codes back bit for bit and `read_raw` returns v to within
0.5 / (white - black). ISO and exposure time go into IFD0 as the TIFF/EP tags 34855 and 33434 (where `read_raw`
finds them; LibRaw itself does not read ISO from IFD0).
"""

import dataclasses
import fractions
import os

import numpy as np

from dirtypixels_tf.optional import require
from dirtypixels_tf.physics.mosaic import RELEASE_PATTERN, check_pattern
from dirtypixels_tf.physics.validation import check_int, check_mosaic_array

DNG_BITS = (12, 16)

_ISO_TAG = 34855  # EXIF / TIFF-EP ISOSpeedRatings
_EXPOSURE_TAG = 33434  # EXIF / TIFF-EP ExposureTime (seconds)
_EXIF_IFD_TAG = 34665
_CFA_CODES = {"R": 0, "G": 1, "B": 2}  # DNG CFAPattern colour codes


@dataclasses.dataclass(frozen=True, eq=False)
class RawFrame:
    """A camera RAW frame, normalized (see the module docstring).

    mosaic: float32 [H, W] in [0, 1] (H, W even) in Bayer phase `pattern`; source_pattern: the file's own phase;
    crop: (rows, columns) dropped at the top and left to move source_pattern onto pattern; black_level: the black
    level of each position of the file's 2x2 block, row-major (in source_pattern order); white_level: the raw value
    of saturation; sensor_shape: the full raw array's (height, width) including masked margins; iso and
    exposure_time (seconds): from the file's metadata, None when absent.
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
):
    """Write a mosaic [H, W] (or [H, W, 1]) with values in [0, 1] as a Bayer DNG of phase `pattern`.

    bits: 12 or 16, the code range; white_level defaults to 2**bits - 1 and black_level (an integer >= 0) must lie
    below it. A value v is stored as round(black_level + v * (white_level - black_level)). iso and exposure_time
    (seconds), when given, are written as the TIFF/EP tags 34855 and 33434. LibRaw needs at least 22 x 22 pixels.
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
        (50728, 5, 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral: neutral
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
