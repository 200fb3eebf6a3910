"""Frames to send to a model server, read from files (what `dirtypixels classify` sends).

- .npy, floating: a RAW mosaic [H, W] or [H, W, 1] in [0, 1] at the model's size, sent to "serving_default" with
  its noise: alpha and sigma given, or those of a fixed light profile (3lux, 6lux) for the sensor (a preset name
  or a sensor.yaml), or, with neither, alpha and sigma estimated from the frame itself
  (physics.noise_estimation.estimate_frame_noise; the frame's description says so).
- .npy, integer: sensor values [H, W] or [H, W, 1] at the model's size, sent as uint16 to "raw_uint16" with the
  black level, white level and ISO given.
- ordinary images (PNG, JPEG, ...): a clean scene. Its central 87.5 % is resized to the model's size (as the
  evaluation preprocessing does), then SensorModel simulates the RAW frame at the light profile (a range profile is
  sampled with the seed) or at the alpha and sigma given; sent to "serving_default".
- camera RAW (DNG, CR2, NEF, ARW, ...), read by data/camera_raw.py (rawpy; per-channel black levels subtracted,
  the file's Bayer phase moved onto the model's, ISO from the EXIF tags): the central crop of the model's size,
  at even offsets, is sent to "raw_uint16" as uint16 codes round(v * (white - black) + black) over the mean black
  level, which the signature maps back to v (to within 0.5 / (white - black)); the exported model's sensor preset
  turns the ISO (the file's, or the one given) into the noise level. A file without an ISO (and no --iso) is sent
  to "serving_default" as its normalized crop with alpha and sigma estimated from the frame itself. The levels
  given for .npy frames do not apply. Only 2x2 Bayer sensors are read.
  For a model that takes alpha and sigma per colour ([B, 3], exported with per-channel noise), a camera RAW file
  goes through the real-capture front end instead (data/camera_raw.prepare_capture with the `capture` options:
  white balance, the release's crop and subsample, exposure, per-colour noise) to "serving_default".
Pixel budget: a .npy frame or an image larger than `max_pixels` (DEFAULT_MAX_PIXELS, 64 megapixels: about 0.8 GB
as float32 RGB) is refused from its header, before its pixels are read (Pillow's own ceiling, 2 x 89.5
megapixels, applies on top of a larger budget). Camera RAW files are not checked here (data/camera_raw.py).
"""

import dataclasses
import os
import warnings

import numpy as np

from dirtypixels_tf.catalog import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_PRESET,
    DEFAULT_PROFILE,
    LIGHT_PROFILES,
    RELEASE_PATTERN,
    SERVING_SIGNATURE,
    UINT16_SIGNATURE,
)
from dirtypixels_tf.data.camera_raw import CAMERA_RAW_EXTENSIONS
from dirtypixels_tf.physics import noise
from dirtypixels_tf.physics.sensor_files import resolve_sensor

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def check_pixels(path, width, height, max_pixels):
    """ValueError naming the file if width x height is over the pixel budget."""
    if width * height > max_pixels:
        raise ValueError(
            f"{path}: {width} x {height} = {width * height / 1e6:.1f} megapixels, more than the budget of "
            f"{max_pixels / 1e6:g} (--max-megapixels); not decoded"
        )


@dataclasses.dataclass
class Frame:
    """One frame and the signature that takes it: inputs maps the signature's input names to batch-1 arrays."""

    path: str
    signature: str  # "serving_default" or "raw_uint16"
    inputs: dict
    description: str


def central_crop(values, image_size):
    """The central [H, W] window of a mosaic, at even offsets so its Bayer phase is the mosaic's."""
    height, width = image_size
    rows, cols = values.shape[:2]
    if rows < height or cols < width:
        raise ValueError(f"the frame ({rows}x{cols}) is smaller than the model's {height}x{width}")
    top, left = (rows - height) // 4 * 2, (cols - width) // 4 * 2
    return values[top : top + height, left : left + width]


def _estimated_noise(mosaic, path):
    """(alpha, sigma, description) estimated from the frame itself (physics.noise_estimation.estimate_frame_noise), for
    frames that come with neither a light profile nor an ISO."""
    from dirtypixels_tf.physics.noise_estimation import estimate_frame_noise

    try:
        fit = estimate_frame_noise(np.clip(mosaic, 0.0, 1.0))
    except ValueError as error:
        raise ValueError(f"{path}: no noise level given (--alpha/--sigma, --profile or an ISO) and {error}") from None
    note = f"estimated from the frame itself ({fit.blocks_used} of {fit.blocks_total} blocks)"
    return fit.alpha, fit.sigma, note


def _float_frame(path, mosaic, alpha, sigma, kind, source):
    inputs = {
        "raw": np.asarray(mosaic, np.float32)[None, :, :, None],
        "alpha": np.array([alpha], np.float32),
        "sigma": np.array([sigma], np.float32),
    }
    return Frame(path, SERVING_SIGNATURE, inputs, f"{kind}, alpha {alpha:.4g} sigma {sigma:.4g} ({source})")


def _camera_raw_frame(path, image_size, pattern, iso, capture):
    """Read with data/camera_raw.py (per-channel black levels, phase moved onto `pattern`, ISO from EXIF); with
    `capture` options, the real-capture front end's frame for serving_default; else crop, and re-express the
    normalized crop as uint16 codes over the mean black level for the raw_uint16 signature."""
    from dirtypixels_tf.data.camera_raw import prepare_capture, read_raw

    try:
        frame = read_raw(path, pattern)
    except ImportError as error:  # rawpy or tifffile missing: a usage problem, reported without a traceback
        raise ValueError(f"{path}: {error}") from None
    if capture is not None:
        captured = prepare_capture(frame, image_size, iso=iso, **capture)
        return Frame(
            path, SERVING_SIGNATURE, captured.inputs(), f"camera RAW ({frame.source_pattern}), {captured.describe()}"
        )
    iso = frame.iso if iso is None else iso
    if not iso or iso <= 0:  # no ISO to look the noise up by: estimate it from the frame
        crop = central_crop(frame.mosaic, image_size)
        alpha, sigma, note = _estimated_noise(frame.mosaic, path)
        return _float_frame(path, crop, alpha, sigma, f"camera RAW ({frame.source_pattern}) without ISO", note)
    black, white = float(np.mean(frame.black_level)), float(frame.white_level)
    codes = np.round(central_crop(frame.mosaic, image_size) * (white - black) + black)
    kind = f"camera RAW ({frame.source_pattern}), central crop"
    return _uint16_frame(path, codes, black, white, iso, kind)


def _noise_of_profile(profile, sensor):
    low, high = noise.get_light_profile(profile)
    if low != high:
        raise ValueError(
            f"profile {profile!r} is a range of light levels: give the frame's --alpha and --sigma, or a fixed profile "
            f"({', '.join(p for p, (a, b) in LIGHT_PROFILES.items() if a == b)})"
        )
    return resolve_sensor(sensor).preset.at_light_level(low)


def _npy_shape(path):
    """The shape a .npy file's header declares (nothing else is read); None without a readable header (np.load
    then says what is wrong)."""
    with open(path, "rb") as file:
        try:
            version = np.lib.format.read_magic(file)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            return read(file)[0]
        except ValueError:
            return None


def _as_mosaic(array, path):
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2 or not array.size:
        raise ValueError(f"{path}: a RAW .npy must be a mosaic [H, W] or [H, W, 1]; received shape {array.shape}")
    return array


def read_frame(
    path,
    image_size,
    profile=None,
    sensor=DEFAULT_PRESET,
    pattern=RELEASE_PATTERN,
    alpha=None,
    sigma=None,
    black_level=None,
    white_level=None,
    iso=None,
    seed=(0, 0),
    capture=None,
    max_pixels=DEFAULT_MAX_PIXELS,
):
    """The Frame of file `path` for a model of image_size (H, W); see the module docstring for each kind. capture:
    None, or the options of data.camera_raw.prepare_capture for camera RAW files (a per-colour model's).

    A file that cannot be read raises ValueError or OSError naming it (PIL.UnidentifiedImageError is an OSError).
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if (alpha is None) != (sigma is None):
        raise ValueError(f"alpha and sigma must be given together; received alpha={alpha!r}, sigma={sigma!r}")
    if extension == ".npy":
        try:
            shape = _npy_shape(path)
            if shape is not None and len(shape) >= 2:
                check_pixels(path, shape[1], shape[0], max_pixels)
            array = _as_mosaic(np.load(path, allow_pickle=False), path)
        except EOFError:
            raise ValueError(f"{path}: the file is empty or truncated (not a .npy array)") from None
        if np.issubdtype(array.dtype, np.floating):
            if alpha is not None:
                source = "given"
            elif profile is not None:
                alpha, sigma = _noise_of_profile(profile, sensor)
                source = f"{profile} on {sensor}"
            else:
                alpha, sigma, source = _estimated_noise(array, path)
            return _float_frame(path, array, alpha, sigma, "RAW mosaic", source)
        if np.issubdtype(array.dtype, np.integer):
            if None in (black_level, white_level, iso):
                raise ValueError(f"{path}: integer sensor values need --black-level, --white-level and --iso")
            if array.min() < 0 or array.max() > 65535:
                raise ValueError(f"{path}: sensor values must fit uint16; received {array.min()} to {array.max()}")
            return _uint16_frame(path, array, black_level, white_level, iso, "sensor values")
        raise ValueError(
            f"{path}: a .npy frame must hold floats in [0, 1] or integer sensor values; received {array.dtype}"
        )
    if extension in CAMERA_RAW_EXTENSIONS:
        return _camera_raw_frame(path, image_size, pattern, iso, capture)
    if extension in IMAGE_EXTENSIONS:
        pixels = read_image(path, max_pixels)
        return _simulated_frame(
            path, pixels, image_size, profile or DEFAULT_PROFILE, sensor, pattern, alpha, sigma, seed
        )
    raise ValueError(
        f"{path}: unknown kind of file; classify reads .npy RAW frames, images ({', '.join(IMAGE_EXTENSIONS)}) and "
        f"camera RAW ({', '.join(CAMERA_RAW_EXTENSIONS)})"
    )


def _uint16_frame(path, values, black_level, white_level, iso, kind):
    inputs = {
        "raw": np.asarray(values, np.uint16)[None, :, :, None],
        "black_level": np.array([black_level], np.float32),
        "white_level": np.array([white_level], np.float32),
        "iso": np.array([iso], np.float32),
    }
    description = f"{kind}, black {black_level:g} white {white_level:g} ISO {iso:g}"
    return Frame(path, UINT16_SIGNATURE, inputs, description)


def read_image(path, max_pixels=DEFAULT_MAX_PIXELS):
    """(RGB float32 [H, W, 3] in [0, 1], "8-bit" | "16-bit") of an ordinary image file. 16-bit greyscale (Pillow's
    modes I;16 and I) is scaled by 65535, not clipped to 8 bits; other modes go through Pillow's RGB conversion.
    An image over `max_pixels` is refused from its header (ValueError)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():  # Pillow's warning over 89.5 megapixels: the budget below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)  # reads the header only
    except Image.DecompressionBombError as error:
        raise ValueError(f"{path}: {error}; not decoded") from None
    with opened as image:
        check_pixels(path, image.width, image.height, max_pixels)
        image.load()
        if image.mode.startswith("I;16") or image.mode == "I":
            values = np.asarray(image).astype(np.float64)
            if values.size and (values.min() < 0 or values.max() > 65535):
                raise ValueError(
                    f"{path}: integer image values must be 16-bit; received {values.min():g} to {values.max():g}"
                )
            grey = (values / 65535.0).astype(np.float32)
            return np.repeat(grey[..., None], 3, axis=-1), "16-bit"
        if image.mode == "F":
            raise ValueError(f"{path}: floating-point images are not read (save the scene as 8- or 16-bit)")
        return np.asarray(image.convert("RGB"), np.float32) / 255.0, "8-bit"


def _simulated_frame(path, image, image_size, profile, sensor, pattern, alpha, sigma, seed):
    import tensorflow as tf

    from dirtypixels_tf.data.preprocessing import DEFAULT_CENTRAL_FRACTION, preprocess_for_eval
    from dirtypixels_tf.physics.sensor import SensorModel

    pixels, depth = image
    scene = preprocess_for_eval(tf.constant(pixels), image_size, DEFAULT_CENTRAL_FRACTION)
    simulated = SensorModel(preset=sensor, light_levels=profile, alpha=alpha, sigma=sigma, pattern=pattern)
    frame = simulated.simulate(scene[None], tf.constant(seed, tf.int64))
    inputs = {name: value.numpy().astype(np.float32) for name, value in frame.items()}
    setting = f"alpha {alpha:.4g} sigma {sigma:.4g}" if alpha is not None else f"{profile} on {sensor}"
    description = f"{depth} image simulated at {setting} (alpha {inputs['alpha'][0]:.4g} sigma {inputs['sigma'][0]:.4g}), {pattern}"
    return Frame(path, SERVING_SIGNATURE, inputs, description)
