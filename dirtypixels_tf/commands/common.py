"""What the subcommands share: the usage error and argument types."""

import argparse
import contextlib
import sys

from dirtypixels_tf.catalog import (
    CAPTURE_AS_SHOT,
    CAPTURE_EXPOSURES,
    CAPTURE_NOISE_SENSOR,
    CAPTURE_NOISE_SOURCES,
    CAPTURE_PERCENTILE,
    CAPTURE_WHITE_BALANCES,
    DEFAULT_MAX_PIXELS,
    LIGHT_PROFILES,
    check_sensor_spec,
)


class UsageError(Exception):
    """A bad command-line value: reported as `error: ...` with exit status 2, without a traceback."""


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; received {text!r}")
    return value


def non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0; received {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0; received {text!r}")
    return value


def positive_float(text):
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0; received {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0; received {text!r}")
    return value


def path_or_name(names_hint):
    """argparse type for a value that is a path or a name (a preset, a data set): a value that looks like a path
    (it has a folder separator or a file extension) must exist; a bare name is checked by the command."""
    import os

    def check(text):
        looks_like_path = os.sep in text or "/" in text or os.path.splitext(text)[1] != ""
        if looks_like_path and not os.path.exists(text):
            import glob

            if not (glob.has_magic(text) and glob.glob(text)):
                raise argparse.ArgumentTypeError(f"no such file or folder: {text!r} (or give {names_hint})")
        return text

    return check


def import_tensorflow(verbose=False):
    """Import TensorFlow; unless `verbose`, with its Python logger at ERROR and its C++ logger at FATAL (what the
    C++ logs write before that takes effect is hidden by `native_logs_hidden`)."""
    import os

    if verbose or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")


@contextlib.contextmanager
def native_logs_hidden():
    """Send what native code writes to file descriptor 2 into a temporary file while Python's `sys.stderr` keeps
    its destination. TensorFlow's C++ messages ignore TF_CPP_MIN_LOG_LEVEL until absl is initialised: each of its
    shared libraries prints absl's 'All log messages before absl::InitializeLog()' line and the oneDNN and CUDA
    notices when it is loaded, and some are loaded only when first used, so they are hidden for the whole command,
    not only around `import tensorflow`. The hidden text is shown if the command fails other than by a usage error."""
    import os
    import tempfile

    python_stderr = sys.stderr
    python_stderr.flush()
    saved = os.dup(2)
    if python_stderr is sys.__stderr__:  # the process's own stderr (not one a caller replaced): keep it on fd 2's copy
        sys.stderr = open(
            saved, "w", buffering=1, encoding=python_stderr.encoding, errors=python_stderr.errors, closefd=False
        )
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except (SystemExit, KeyboardInterrupt, UsageError, ValueError):  # ValueError: a bad value, as in cli.main
            raise
        except BaseException:
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sys.stderr = python_stderr


def sensor_spec(text):
    """argparse type: a sensor preset name or the path of a calibrated sensor.yaml (catalog.check_sensor_spec;
    physics.sensor_files.resolve_sensor reads it)."""
    try:
        return check_sensor_spec(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("sensor ")) from None


def light_profile(text):
    """argparse type: a light profile name (catalog.LIGHT_PROFILES)."""
    if text in LIGHT_PROFILES:
        return text
    raise argparse.ArgumentTypeError(f"must be one of {', '.join(LIGHT_PROFILES)}; received {text!r}")


def even_positive_int(text):
    """argparse type: an even integer > 0 (a Bayer frame's side)."""
    value = positive_int(text)
    if value % 2:
        raise argparse.ArgumentTypeError(f"must be an even positive integer (a Bayer frame); received {text!r}")
    return value


def add_capture_arguments(parser, applies_to):
    """--white-balance, --exposure, --noise: the real-capture front end's options (data/camera_raw.py), which apply
    to `applies_to` (e.g. "camera RAW files")."""
    parser.add_argument(
        "--white-balance",
        default=CAPTURE_AS_SHOT,
        help=f"{applies_to}: as_shot (the file's AsShotNeutral), none, or the neutral R,G,B (as_shot)",
    )
    parser.add_argument(
        "--exposure",
        default=CAPTURE_PERCENTILE,
        help=f"{applies_to}: percentile98 (the release's rule: 1 / the 98th percentile), metering (the mean set to "
        "that of the training images), none, or a factor (percentile98)",
    )
    parser.add_argument(
        "--noise",
        default=CAPTURE_NOISE_SENSOR,
        help=f"{applies_to}: sensor_at_iso (--sensor at the file's ISO), release_phone (the release's phone values), "
        "from_frame (estimated from the frame itself), or ALPHA,SIGMA in the file's [0, 1] units (sensor_at_iso)",
    )


def capture_options(args):
    """{white_balance, exposure, noise} for data.camera_raw.prepare_capture from add_capture_arguments' options."""

    def numbers(text, option, count):
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            values = []
        if len(values) != count:
            raise UsageError(f"{option} must be a name or {count} comma-separated numbers; received {text!r}")
        return values[0] if count == 1 else tuple(values)

    white_balance = args.white_balance
    if white_balance not in CAPTURE_WHITE_BALANCES:
        white_balance = numbers(white_balance, "--white-balance", 3)
    exposure = args.exposure if args.exposure in CAPTURE_EXPOSURES else numbers(args.exposure, "--exposure", 1)
    noise = args.noise if args.noise in CAPTURE_NOISE_SOURCES else numbers(args.noise, "--noise", 2)
    return {"white_balance": white_balance, "exposure": exposure, "noise": noise}


# What reading one input file may raise (serving/frames.read_frame): reported in one line, the other files go on.
FILE_ERRORS = (ValueError, OSError, MemoryError)


def add_max_megapixels(parser):
    """--max-megapixels: the pixel budget of read_frame, checked from a file's header before it is decoded."""
    parser.add_argument(
        "--max-megapixels",
        type=positive_float,
        default=DEFAULT_MAX_PIXELS / 1e6,
        help=f"largest image or .npy frame read, checked from its header ({DEFAULT_MAX_PIXELS / 1e6:g})",
    )


def report_file_error(path, error):
    """Print `error` about input file `path` as one line on stderr, starting with the path."""
    message = (str(error).splitlines() or [type(error).__name__])[0]
    print(message if message.startswith(path) else f"{path}: {message}", file=sys.stderr)


def check_finite_weights(model, allow, flag="--allow-nonfinite"):
    """UsageError naming the variables of `model` that hold NaN or Inf (unless `allow`): such a model answers NaN
    scores with status OK."""
    import numpy as np

    bad = [weight.path for weight in model.weights if not np.all(np.isfinite(np.asarray(weight.numpy())))]
    if bad and not allow:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise UsageError(
            f"{len(bad)} variable(s) hold NaN or Inf: {shown}; the model would answer NaN scores ({flag} writes it anyway)"
        )


def output_error(flag, path, error):
    """The one-line UsageError of an output path that cannot be written."""
    return UsageError(f"{flag} {path!r}: cannot write there: {error.strerror or error}")
