"""What the subcommands share: the usage error and argument types."""

import argparse

from dirtypixels_tf.catalog import LIGHT_PROFILES, check_sensor_spec


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
    """Import TensorFlow; unless `verbose`, without its C++ start-up messages (absl's pre-initialisation lines,
    the oneDNN and CUDA notices, 'failed call to cuInit' on a machine without a GPU). Captured messages are
    shown if the import fails."""
    import os
    import sys
    import tempfile

    if verbose or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # device discovery prints the CUDA notices: do it while captured
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    tf.get_logger().setLevel("ERROR")


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
