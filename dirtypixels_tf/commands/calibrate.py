"""`dirtypixels calibrate noise|psf`: a sensor preset from RAW captures, or a lens PSF from a sharp/blurred pair.

    dirtypixels calibrate noise FRAMES... --out sensor.yaml [--iso N] [--plot noise.png] [--method spatial]
        [--dark DARK...] [--pattern P]
    dirtypixels calibrate psf SHARP BLURRED --size K --out psf.npy [--regularization 1e-3]

The methods are in dirtypixels_tf/physics/noise_estimation.py, dark_noise.py and psf_estimation.py, the sensor.yaml
format in sensor_files.py; RAW reading (and the Bayer phase crop) in dirtypixels_tf/data/camera_raw.py.
"""

import dataclasses
import os
import sys
import warnings

from dirtypixels_tf.catalog import PATTERNS, RELEASE_PATTERN
from dirtypixels_tf.commands.common import UsageError, positive_float, positive_int

IMAGE_EXTENSIONS = (".npy", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _load_frame(path, pattern, iso):
    """(mosaic [H, W] float in [0, 1], ISO, the file's own Bayer phase or None for .npy) from a .npy mosaic or a
    camera RAW file. With `pattern` None a RAW mosaic keeps the camera's own phase."""
    import numpy as np

    from dirtypixels_tf.data import camera_raw

    if not os.path.isfile(path):
        raise UsageError(f"FRAMES must be existing files; received {path!r} (not found)")
    if path.lower().endswith(".npy"):
        if iso is None:
            raise UsageError(f"--iso is required for .npy frames (they carry no metadata); received none for {path!r}")
        try:
            mosaic = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise UsageError(f"FRAMES: {path!r} is not a readable .npy array: {error}") from None
        if mosaic.ndim != 2 or not np.issubdtype(mosaic.dtype, np.floating):
            raise UsageError(
                f"FRAMES: {path!r} must hold a floating mosaic [H, W] in [0, 1]; received shape {mosaic.shape}, "
                f"dtype {mosaic.dtype}"
            )
        return mosaic, iso, None
    try:
        frame = camera_raw.read_raw(path, pattern or RELEASE_PATTERN)
    except ImportError as error:
        raise UsageError(str(error)) from None
    if iso is None and frame.iso is None:
        raise UsageError(f"FRAMES: {path!r} has no ISO in its metadata; give --iso")
    mosaic = frame.mosaic
    if pattern is None:  # the camera's own colour filter array: shift the release phase back onto it
        rows, cols = camera_raw.phase_crop(frame.pattern, frame.source_pattern)
        mosaic = mosaic[rows:, cols:]
        mosaic = mosaic[: mosaic.shape[0] // 2 * 2, : mosaic.shape[1] // 2 * 2]
    return mosaic, iso if iso is not None else frame.iso, frame.source_pattern


def _load_dark(path, pattern):
    """A dark frame [H, W]: black level subtracted, NOT clipped, [0, 1] units (white - black = 1), in `pattern`'s
    phase (None: the file's own). From a .npy array as is, or from a camera RAW file through rawpy."""
    import numpy as np

    if not os.path.isfile(path):
        raise UsageError(f"--dark must name existing files; received {path!r} (not found)")
    if path.lower().endswith(".npy"):
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise UsageError(f"--dark: {path!r} is not a readable .npy array: {error}") from None
    from dirtypixels_tf.data import camera_raw

    try:
        frame = camera_raw.read_raw(path, pattern or RELEASE_PATTERN)  # checks the file; its values are clipped
        import rawpy

        with rawpy.imread(path) as raw:
            counts = np.array(raw.raw_image_visible, np.float64)
    except ImportError as error:
        raise UsageError(str(error)) from None
    height, width = counts.shape
    blacks = np.tile(np.reshape(frame.black_level, (2, 2)), ((height + 1) // 2, (width + 1) // 2))[:height, :width]
    values = (counts - blacks) / (frame.white_level - blacks)
    rows, cols = camera_raw.phase_crop(frame.source_pattern, pattern or frame.source_pattern)
    values = values[rows:, cols:]
    return values[: values.shape[0] // 2 * 2, : values.shape[1] // 2 * 2]


def run_noise(args):
    from tqdm import tqdm

    from dirtypixels_tf.physics import dark_noise, noise_estimation, sensor_files

    captures, names, shape, patterns = {}, {}, None, {}
    for path in tqdm(args.frames, desc="reading frames", unit="frame", disable=args.quiet, file=sys.stderr):
        mosaic, iso, source_pattern = _load_frame(path, args.pattern, args.iso)
        patterns[path] = source_pattern or args.pattern or RELEASE_PATTERN
        if shape is not None and mosaic.shape != shape:
            raise UsageError(
                f"FRAMES must all have one size; received {shape} for {args.frames[0]!r} and {mosaic.shape} "
                f"for {path!r}"
            )
        shape = mosaic.shape
        captures.setdefault(float(iso), []).append(mosaic)
        names.setdefault(float(iso), []).append(path)
    pattern = args.pattern
    if pattern is None:
        if len(set(patterns.values())) > 1:
            raise UsageError(
                "FRAMES must share one colour filter array pattern (or give --pattern to crop all to one); received "
                + ", ".join(f"{pattern} for {path!r}" for path, pattern in patterns.items())
            )
        pattern = next(iter(patterns.values()))
    source = args.source or (
        f"dirtypixels calibrate noise: {len(args.frames)} frame(s) at ISO "
        f"{', '.join(f'{iso:g}' for iso in sorted(captures))}, method {args.method}, block {args.block}"
    )
    if not args.quiet:
        print(f"fitting {len(captures)} ISO(s)...", file=sys.stderr)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result, fits = noise_estimation.calibrate_sensor(
                captures, pattern=pattern, method=args.method, block=args.block, source=source
            )
    except noise_estimation.CalibrationError as error:
        files = ", ".join(repr(name) for name in names[error.iso])
        raise UsageError(f"FRAMES at ISO {error.iso:g} ({files}): {error}") from None
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    dark = None
    if args.dark:
        darks = [_load_dark(path, args.pattern) for path in args.dark]
        try:
            dark = dark_noise.estimate_dark_noise(darks)
        except ValueError as error:
            raise UsageError(f"--dark ({', '.join(map(repr, args.dark))}): {error}") from None
        result = dataclasses.replace(result, terms=dark.terms)
    sensor_files.save_sensor_preset(args.out, result)
    print(f"{'ISO':>8}{'frames':>8}{'alpha':>14}{'sigma':>14}{'blocks used':>20}")
    for iso, fit in fits.items():
        print(
            f"{iso:>8g}{len(names[iso]):>8}{fit.alpha:>14.6g}{fit.sigma:>14.6g}{fit.blocks_used:>11} / "
            f"{fit.blocks_total}"
        )
    if dark is not None:
        terms = dark.terms
        print(
            f"dark frames ({len(args.dark)}): read noise {dark.sigma:.6g}, Tukey lambda {terms.tukey_lambda:.4f} "
            f"(probability-plot correlation {dark.ppcc:.5f}, Gaussian {dark.gaussian_ppcc:.5f}), row noise "
            f"{dark.row_std:.6g} ({terms.row_noise:.3f} sigma), black-level bias "
            f"{', '.join(f'{b:+.3g}' for b in terms.black_level_bias)}, ADC {terms.bit_depth or 'not quantized'} bits"
        )
    print(f"wrote {args.out}: poisson {result.preset.poisson:.6g}, gauss {result.preset.gauss:.6g} at ISO 100")
    if args.plot:
        try:
            noise_estimation.plot_noise_fits({f"ISO {iso:g}": fit for iso, fit in fits.items()}, args.plot)
            print(f"wrote {args.plot}")
            if dark is not None:
                stem, extension = os.path.splitext(args.plot)
                dark_plot = f"{stem}_dark{extension or '.png'}"
                dark_noise.plot_dark_fit(dark, dark_plot)
                print(f"wrote {dark_plot}")
        except ImportError as error:
            raise UsageError(str(error)) from None
    return 0


def _load_image(path, name):
    """An image [H, W] or [H, W, C] as floats: uint8 / 255, uint16 / 65535, floats as stored."""
    import numpy as np

    if not os.path.isfile(path):
        raise UsageError(f"{name} must be an existing image file; received {path!r} (not found)")
    extension = os.path.splitext(path)[1].lower()
    if extension not in IMAGE_EXTENSIONS:
        raise UsageError(f"{name} must end in {', '.join(IMAGE_EXTENSIONS)}; received {path!r}")
    try:
        if extension == ".npy":
            array = np.load(path, allow_pickle=False)
        elif extension in (".tif", ".tiff"):
            import tifffile

            array = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as image:
                array = np.asarray(image)
    except (OSError, ValueError) as error:
        raise UsageError(f"{name}: {path!r} is not a readable image: {error}") from None
    if array.ndim == 3 and array.shape[-1] in (2, 4):  # drop an alpha channel
        array = array[..., :-1]
    if array.dtype == np.uint8:
        return array / 255.0
    if array.dtype == np.uint16:
        return array / 65535.0
    if not np.issubdtype(array.dtype, np.floating):
        raise UsageError(f"{name} must hold uint8, uint16 or floating pixels; received dtype {array.dtype}")
    return array


def run_psf(args):
    import numpy as np

    from dirtypixels_tf.physics.psf_estimation import estimate_psf

    sharp, blurred = _load_image(args.sharp, "SHARP"), _load_image(args.blurred, "BLURRED")
    psf = estimate_psf(
        sharp,
        blurred,
        args.size,
        regularization=args.regularization,
        penalty=args.penalty,
        boundary=args.boundary,
    )
    np.save(args.out, psf)
    rows, cols = np.mgrid[: psf.shape[0], : psf.shape[1]] - args.size // 2
    kernel = psf if psf.ndim == 2 else psf.mean(axis=-1)
    offset = (float((kernel * rows).sum()), float((kernel * cols).sum()))
    print(
        f"wrote {args.out}: PSF {'x'.join(map(str, psf.shape))}, sum 1 per channel, centre of mass "
        f"({offset[0]:+.2f}, {offset[1]:+.2f}) px from the centre"
    )
    return 0


def register(commands):
    calibrate = commands.add_parser(
        "calibrate",
        help="calibrate a sensor's noise or a lens PSF from real captures",
        description="Calibrate the image formation model from captures: the Poisson-Gaussian noise (alpha, sigma) "
        "per ISO and the ISO-100 preset ('noise'), or the PSF from a registered sharp/blurred pair ('psf').",
    )
    calibrate.set_defaults(parser=calibrate)
    kinds = calibrate.add_subparsers(dest="kind", required=True, metavar="KIND")

    noise = kinds.add_parser(
        "noise",
        help="fit alpha and sigma per ISO and write a sensor.yaml",
        description="Fit the clipped Poisson-Gaussian noise to RAW captures (flat fields or gray charts at several "
        "exposures work best; natural scenes work less well), one fit per ISO, then the linear ISO model, and "
        "write the sensor preset YAML (load it with dirtypixels_tf.physics.load_sensor_preset).",
    )
    noise.add_argument("frames", nargs="+", metavar="FRAMES", help="camera RAW files (DNG, CR2, ...) or .npy mosaics")
    noise.add_argument("--out", required=True, help="the sensor preset YAML to write")
    noise.add_argument(
        "--iso", type=positive_float, default=None, help="ISO of all FRAMES (default: each RAW file's metadata)"
    )
    noise.add_argument(
        "--dark",
        nargs="+",
        default=None,
        metavar="DARK",
        help="dark frames (lens capped): fit the extended terms of Wei et al. 2020 (Tukey-lambda read noise, row "
        "noise, black-level bias, ADC bits) into the sensor.yaml; .npy mosaics black-subtracted and NOT clipped, "
        "or camera RAW files",
    )
    noise.add_argument(
        "--plot", default=None, help="also plot std against mean with the fits (PNG; with --dark also NAME_dark.png)"
    )
    noise.add_argument(
        "--pattern",
        default=None,
        choices=PATTERNS,
        help="Bayer phase to read RAW files in and to record (default: the camera's own, from the RAW metadata; "
        f"{RELEASE_PATTERN}, the release's, for .npy frames)",
    )
    noise.add_argument(
        "--method",
        default="spatial",
        choices=("spatial", "temporal"),
        help="spatial (any frames) or temporal (several frames of one static scene per ISO)",
    )
    noise.add_argument("--block", type=positive_int, default=8, help="block side in Bayer-plane pixels (even; 8)")
    noise.add_argument("--source", default=None, help="free text recorded as the preset's source")
    noise.add_argument("--quiet", action="store_true", help="no progress bars")
    noise.set_defaults(run=run_noise, parser=noise)

    psf = kinds.add_parser(
        "psf",
        help="estimate a PSF from a registered sharp/blurred image pair",
        description="Estimate the blur kernel k with BLURRED = k * SHARP by regularized least squares in the "
        "Fourier domain, per colour channel, and save it as .npy (non-negative, sum 1 per channel). Images: .npy, "
        "PNG, JPEG, BMP or TIFF; 8- and 16-bit images are scaled to [0, 1].",
    )
    psf.add_argument("sharp", metavar="SHARP", help="the sharp image (or the chart's ideal rendering)")
    psf.add_argument("blurred", metavar="BLURRED", help="the blurred capture, registered to SHARP")
    psf.add_argument("--size", type=positive_int, required=True, help="kernel side K (odd)")
    psf.add_argument("--out", required=True, help="the .npy file to write")
    psf.add_argument("--regularization", type=positive_float, default=1e-3, help="relative weight (1e-3)")
    psf.add_argument("--penalty", default="gradient", choices=("gradient", "identity"), help="regularizer")
    psf.add_argument("--boundary", default="taper", choices=("taper", "circular"), help="boundary handling")
    psf.set_defaults(run=run_psf, parser=psf)
