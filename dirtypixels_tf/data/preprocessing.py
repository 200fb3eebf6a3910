"""Per-example preprocessing: crop, flip and resize to the model size. Stateless and seeded.

Conventions:
- Input: float32 [H, W, 3] in [0, 1] (any size); output: float32 [height, width, 3] in [0, 1] with a static shape.
  The model size is even in both directions (whole Bayer blocks).
- Training (`preprocess_for_training`): a random crop whose area is a fraction in `crop_area` of the image and whose
  aspect ratio (width / height) is in `aspect_ratio_range`, then a random horizontal flip, then a bilinear resize.
  The defaults are TF-slim's Inception preprocessing, which the original release used for MobileNet: slim samples
  areas in (0.05, 1) and keeps crops covering at least 10 % of the image, i.e. areas in (0.1, 1); aspect ratios
  (3/4, 4/3). (Slim's colour distortions are not applied: they would change the scene radiance the sensor model
  is calibrated for.)
- Evaluation (`preprocess_for_eval`): the central `central_fraction` of each side (slim's 0.875), then a bilinear
  resize.
- Randomness: a stateless seed [2] per example (see physics.noise.example_seed), so example i gets the same crop
  and flip on every run, in any batch, on any number of replicas.
- Label maps (segmentation): given `label_map` (integers [H, W], the image's size), both functions return
  (image, label map int32 [height, width]). The label map is cropped and flipped together with the image (one
  tensor, so the same box and the same flip, and the image bit for bit as without it) and resized by nearest
  neighbour, never interpolated. The crops lie inside the image, so no pixel is padded.
"""

import tensorflow as tf

DEFAULT_CROP_AREA = (0.1, 1.0)
DEFAULT_ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
DEFAULT_CENTRAL_FRACTION = 0.875


def check_image_size(image_size):
    """An int or (height, width) of even positive integers -> (height, width)."""
    size = (image_size, image_size) if isinstance(image_size, int) and not isinstance(image_size, bool) else image_size
    try:
        height, width = size
        ok = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 and v % 2 == 0 for v in (height, width))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"image_size must be an even positive int or (height, width) of even positive ints (whole Bayer "
            f"blocks); received {image_size!r}"
        )
    return height, width


def _check_range(value, name, low_bound, high_bound):
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of numbers; received {value!r}") from None
    if not low_bound < low <= high <= high_bound:
        raise ValueError(f"{name} must satisfy {low_bound} < low <= high <= {high_bound}; received {value!r}")
    return low, high


def _resize(image, size):
    resized = tf.image.resize(image, size, method="bilinear")
    return tf.clip_by_value(resized, 0.0, 1.0)


def _stack(image, label_map):
    """The image with the label map as a last channel (exact in float32 for labels up to 2**24)."""
    if label_map is None:
        return image
    image, label_map = tf.convert_to_tensor(image), tf.convert_to_tensor(label_map)
    if label_map.shape.rank != 2:
        raise ValueError(f"label_map must be [H, W]; received shape {label_map.shape}")
    return tf.concat([image, tf.cast(label_map, image.dtype)[..., tf.newaxis]], axis=-1)


def _unstack_and_resize(stacked, size, label_map):
    """Inverse of `_stack`, resizing the image bilinearly and the label map by nearest neighbour."""
    if label_map is None:
        return _resize(stacked, size)
    labels = tf.image.resize(stacked[..., -1:], size, method="nearest")
    return _resize(stacked[..., :-1], size), tf.cast(labels[..., 0], tf.int32)


def preprocess_for_training(
    image,
    image_size,
    seed,
    crop_area=DEFAULT_CROP_AREA,
    aspect_ratio_range=DEFAULT_ASPECT_RATIO_RANGE,
    flip=True,
    label_map=None,
):
    """Random crop, random horizontal flip, bilinear resize to `image_size`; deterministic per `seed` [2]. With a
    `label_map`, returns (image, label map) (see the module docstring)."""
    size = check_image_size(image_size)
    crop_area = _check_range(crop_area, "crop_area", 0.0, 1.0)
    aspect_ratio_range = _check_range(aspect_ratio_range, "aspect_ratio_range", 0.0, float("inf"))
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=crop_seed,
        min_object_covered=0.0,
        aspect_ratio_range=aspect_ratio_range,
        area_range=crop_area,
        max_attempts=100,
        use_image_if_no_bounding_boxes=True,
    )
    stacked = _stack(image, label_map)
    channels = stacked.shape[-1]
    stacked = tf.slice(stacked, begin, extent)
    stacked.set_shape([None, None, channels])
    if flip:
        stacked = tf.image.stateless_random_flip_left_right(stacked, flip_seed)
    return _unstack_and_resize(stacked, size, label_map)


def preprocess_for_eval(image, image_size, central_fraction=DEFAULT_CENTRAL_FRACTION, label_map=None):
    """Central crop keeping `central_fraction` of each side (1.0 keeps all), bilinear resize to `image_size`. With a
    `label_map`, returns (image, label map) (see the module docstring)."""
    size = check_image_size(image_size)
    fraction = float(central_fraction) if isinstance(central_fraction, (int, float)) else None
    if fraction is None or not 0 < fraction <= 1:
        raise ValueError(f"central_fraction must be a number in (0, 1]; received {central_fraction!r}")
    stacked = _stack(image, label_map)
    if fraction < 1:
        stacked = tf.image.central_crop(stacked, fraction)
    return _unstack_and_resize(stacked, size, label_map)
