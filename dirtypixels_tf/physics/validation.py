"""Argument checks shared by the physics functions: each error names the argument and what was received."""

import numpy as np
import tensorflow as tf


def check_image(x, name, channels=None, rank=4):
    """Convert `x` to a floating tensor and check its rank (default 4, NHWC) and channel count.

    Raises ValueError naming `name` and the received shape. Integer input is refused: pixel values are floats in
    [0, 1] everywhere in the package.
    """
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise ValueError(f"{name} must be a floating tensor with values in [0, 1]; received dtype {x.dtype.name}")
    if x.shape.rank != rank:
        raise ValueError(f"{name} must have rank {rank} ([batch, height, width, channels]); received shape {x.shape}")
    if channels is not None and x.shape[-1] != channels:
        raise ValueError(f"{name} must have {channels} channel(s) in the last axis; received shape {x.shape}")
    return x


def check_finite(x, name):
    """Fail with a message naming `name` if `x` holds NaN or infinity (eagerly or inside a graph)."""
    return tf.debugging.assert_all_finite(x, f"{name} must be finite; received NaN or infinity")


def check_positive_number(value, name, allow_zero=False):
    """Return float(value) if it is a finite number > 0 (or >= 0 with allow_zero), else raise ValueError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; received {value!r}") from None
    if not np.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}; received {value!r}")
    return number


def check_int(value, name, minimum=1):
    """Return int(value) if it is an integer (Python or NumPy, not a bool) >= minimum (None: any integer), else raise
    ValueError naming `name` and the received value."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        bound = "" if minimum is None else f" >= {minimum}"
        raise ValueError(f"{name} must be an integer{bound}; received {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; received {value!r}")
    return int(value)


def check_bool(value, name):
    """Return `value` if it is True or False, else raise ValueError naming `name`."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False; received {value!r}")
    return value


def check_mosaic_array(value, name):
    """A NumPy RAW mosaic [H, W] (or [H, W, 1], squeezed) of floats in [0, 1]; ValueError naming `name` otherwise."""
    array = np.asarray(value)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2 or array.size == 0 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"{name} must be a floating mosaic [H, W] in [0, 1]; received shape {array.shape}, dtype {array.dtype}"
        )
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
        raise ValueError(
            f"{name} must hold finite values in [0, 1]; received min {float(np.min(array))!r}, "
            f"max {float(np.max(array))!r}"
        )
    return array
