"""Bayer colour filter arrays: masks, the mosaic y = S x, its adjoint S^T y, and bilinear demosaicking.

Conventions:
- A pattern is named by the 2x2 top-left block of the sensor read row by row: "BGGR" puts B at (row 0, col 0),
  G at (0, 1) and (1, 0), R at (1, 1), counting from 0. BGGR is the original release's phase (R at odd rows and
  odd columns). Supported: RGGB, BGGR, GRBG, GBRG.
- Colour images are [B, H, W, 3] (channels R, G, B); RAW mosaics are [B, H, W, 1]. H and W must be even so every
  2x2 block is complete.
- S keeps, at each pixel, the one colour its filter passes; S^T puts each RAW value back into its colour channel
  and zeros elsewhere, so <S x, y> = <x, S^T y>.
"""

import numpy as np
import tensorflow as tf

from dirtypixels_tf.catalog import PATTERNS, RELEASE_PATTERN
from dirtypixels_tf.physics.validation import check_image

_CHANNEL = {"R": 0, "G": 1, "B": 2}


def check_pattern(pattern):
    """Return the upper-cased pattern name, or raise ValueError listing the valid ones."""
    if not isinstance(pattern, str) or pattern.upper() not in PATTERNS:
        raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}; received {pattern!r}")
    return pattern.upper()


def _check_even(height, width, name):
    if height % 2 or width % 2:
        raise ValueError(f"{name} must have even height and width for a Bayer mosaic; received {height}x{width}")


def bayer_masks_numpy(height, width, pattern=RELEASE_PATTERN):
    """Per-channel masks [H, W, 3] (float32, 0 or 1): mask[i, j, c] = 1 where pixel (i, j) sees colour c."""
    pattern = check_pattern(pattern)
    _check_even(height, width, "the mask")
    masks = np.zeros((height, width, 3), np.float32)
    for index, colour in enumerate(pattern):
        row, col = divmod(index, 2)
        masks[row::2, col::2, _CHANNEL[colour]] = 1.0
    return masks


def bayer_masks(height, width, pattern=RELEASE_PATTERN, dtype=tf.float32):
    """The masks of `bayer_masks_numpy` as a constant tensor [H, W, 3]."""
    return tf.constant(bayer_masks_numpy(height, width, pattern), dtype=dtype)


def mosaic(images, pattern=RELEASE_PATTERN):
    """y = S x: colour images [B, H, W, 3] -> single-channel RAW mosaics [B, H, W, 1]."""
    images = check_image(images, "images", channels=3)
    height, width = images.shape[1], images.shape[2]
    _check_even(height, width, "images")
    masks = bayer_masks(height, width, pattern, images.dtype)
    return tf.reduce_sum(images * masks, axis=-1, keepdims=True)


def mosaic_adjoint(raw, pattern=RELEASE_PATTERN):
    """S^T y: RAW mosaics [B, H, W, 1] -> sparse colour images [B, H, W, 3] (zeros where a colour is not seen)."""
    raw = check_image(raw, "raw", channels=1)
    height, width = raw.shape[1], raw.shape[2]
    _check_even(height, width, "raw")
    return raw * bayer_masks(height, width, pattern, raw.dtype)


# Bilinear interpolation kernels for the sparse channels of S^T y: green has a quincunx lattice, red and
# blue a rectangular one. Each is exact on constant images at every interior and (with reflect padding) edge pixel.
_GREEN_KERNEL = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4.0
_RED_BLUE_KERNEL = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4.0


def demosaic_bilinear(raw, pattern=RELEASE_PATTERN):
    """Bilinear demosaicking: RAW [B, H, W, 1] -> colour [B, H, W, 3].

    Each channel of S^T y is convolved with its bilinear kernel; the image is padded by reflection (without
    repeating the edge pixel, which keeps the Bayer phase) so the edges are interpolated like the interior.
    Measured values are kept as they are.
    """
    sparse = mosaic_adjoint(raw, pattern)
    padded = tf.pad(sparse, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    kernels = np.zeros((3, 3, 3, 1), np.float32)
    kernels[:, :, 0, 0] = _RED_BLUE_KERNEL
    kernels[:, :, 1, 0] = _GREEN_KERNEL
    kernels[:, :, 2, 0] = _RED_BLUE_KERNEL
    kernels = tf.constant(kernels, dtype=sparse.dtype)
    return tf.nn.depthwise_conv2d(padded, kernels, strides=[1, 1, 1, 1], padding="VALID")
