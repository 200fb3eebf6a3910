"""Segmentation data: sources of (image, label map), the VOC palette, and colour-coded label maps.

Conventions (the element structure of every source here):
- image: float32 [H, W, 3] (R, G, B) in [0, 1], as data/sources.py;
- label map: uint8 [H, W], the class index of each pixel; IGNORE_LABEL (255, as Pascal VOC) marks pixels that count
  in no loss and no metric (VOC's object borders and "difficult" regions; the padding of a crop).
- The order of the examples is fixed, so the pipeline's per-example seeds (data/pipeline.py) give the same crops
  on every run.

Sources:
- `composite_source`: a small synthetic data set made from Fashion-MNIST (the package's default data). Each
  example is a canvas with one to `max_items` Fashion-MNIST items pasted at random positions, each tinted with a
  random colour; a pixel is labelled with its item's class + 1 where the item covers it (item intensity >
  COVER_THRESHOLD of full scale), else 0 (background). Items are pasted in order, so later items occlude earlier
  ones, in the image and the label map alike. Everything is drawn from stateless seeds keyed by (seed, index):
  example i is the same on every run. Items come from the Fashion-MNIST split of the same name, so "train" and
  "test" composites share no item. It is synthetic: its scores are no stand-in for Pascal VOC's.
- `voc_source`: the Pascal VOC 2012 layout (Everingham et al.): JPEGImages/<id>.jpg, SegmentationClass/<id>.png
  (palette PNGs whose indices are the classes, 255 on object borders), ImageSets/Segmentation/<split>.txt (one id a
  line). SBD's augmented training set (Hariharan et al. 2011, 10,582 images as DeepLab's train_aug list) is read
  through `list_file`.
"""

import os

import numpy as np

from dirtypixels_tf.catalog import IGNORE_LABEL  # re-exported: the label of pixels that count nowhere

COVER_THRESHOLD = 0.25
BACKGROUND_MAX = 0.2
VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def _composite_classes():
    from dirtypixels_tf.data.fashion_mnist import FASHION_MNIST_CLASSES

    return ("background",) + tuple(FASHION_MNIST_CLASSES)


COMPOSITE_CLASSES = _composite_classes()


def palette(num_classes):
    """uint8 [num_classes, 3]: Pascal VOC's colour map (the bits of the class index interleaved into the high bits
    of R, G, B: 0 black, 1 (128, 0, 0), 2 (0, 128, 0), ...); index IGNORE_LABEL, where present, is white."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or not 0 < num_classes <= 256:
        raise ValueError(f"num_classes must be an int in [1, 256]; received {num_classes!r}")
    colours = np.zeros((num_classes, 3), np.uint8)
    for index in range(num_classes):
        bits = index
        for shift in range(7, -1, -1):
            for channel in range(3):
                colours[index, channel] |= ((bits >> channel) & 1) << shift
            bits >>= 3
    if num_classes > IGNORE_LABEL:
        colours[IGNORE_LABEL] = 255
    return colours


def colourize(label_map):
    """uint8 [H, W, 3]: the label map (integers [H, W] in [0, 255]) in `palette(256)`'s colours (IGNORE_LABEL white)."""
    label_map = np.asarray(label_map)
    if label_map.ndim != 2 or not np.issubdtype(label_map.dtype, np.integer):
        raise ValueError(f"label_map must be integers [H, W]; received {label_map.dtype} {label_map.shape}")
    if label_map.size and (label_map.min() < 0 or label_map.max() > 255):
        raise ValueError(f"label_map must hold values in [0, 255]; received [{label_map.min()}, {label_map.max()}]")
    return palette(256)[label_map]


def _check_positive(value, name, low=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}; received {value!r}")
    return int(value)


def composite_source(split="train", seed=0, count=None, canvas=64, max_items=4, directory=None):
    """Dataset of (image float32 [canvas, canvas, 3] in [0, 1], label map uint8 [canvas, canvas]) of Fashion-MNIST
    composites (see the module docstring); `count` examples (None: as many as the split has items), labels in
    0..10 (COMPOSITE_CLASSES). The background is grey at a level drawn in [0, BACKGROUND_MAX]; each item is its
    28x28 intensity times a colour drawn in [0.5, 1]^3, pasted whole inside the canvas. `directory`: where the
    Fashion-MNIST files are (None: where data/fashion_mnist.py finds them)."""
    import tensorflow as tf

    from dirtypixels_tf.data.fashion_mnist import load_fashion_mnist
    from dirtypixels_tf.physics import noise

    images, labels = load_fashion_mnist(split, directory)
    seed = _check_positive(seed, "seed", 0)
    canvas = _check_positive(canvas, "canvas", images.shape[1])
    max_items = _check_positive(max_items, "max_items")
    count = len(labels) if count is None else _check_positive(count, "count")
    items = tf.constant(images)
    classes = tf.constant(labels.astype(np.int32) + 1)
    side = images.shape[1]

    def compose(index):
        keys = tf.random.experimental.stateless_split(noise.example_seed(seed, index), 6)
        number = tf.random.stateless_uniform([], keys[0], 1, max_items + 1, tf.int32)
        picks = tf.random.stateless_uniform([max_items], keys[1], 0, len(labels), tf.int32)
        corners = tf.random.stateless_uniform([max_items, 2], keys[2], 0, canvas - side + 1, tf.int32)
        tints = tf.random.stateless_uniform([max_items, 3], keys[3], 0.5, 1.0)
        level = tf.random.stateless_uniform([], keys[4], 0.0, BACKGROUND_MAX)
        image = tf.fill([canvas, canvas, 3], level)
        label = tf.zeros([canvas, canvas], tf.int32)
        for k in range(max_items):
            intensity = tf.cast(tf.gather(items, picks[k]), tf.float32) / 255.0
            padding = tf.stack([corners[k], canvas - side - corners[k]], axis=1)
            intensity = tf.pad(intensity, padding)
            covers = (intensity > COVER_THRESHOLD) & (k < number)
            image = tf.where(covers[..., tf.newaxis], intensity[..., tf.newaxis] * tints[k], image)
            label = tf.where(covers, tf.gather(classes, picks[k]), label)
        return image, tf.cast(label, tf.uint8)

    indices = tf.data.Dataset.range(count)
    return indices.map(compose, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _read_indices(path):
    """The index image of a PNG (palette PNG: its indices; grayscale: its values) as uint8 [H, W]."""
    from PIL import Image

    name = path.decode() if isinstance(path, bytes) else path
    with Image.open(name) as png:
        if png.mode not in ("P", "L"):
            raise ValueError(f"{name!r} must be a palette or grayscale PNG of class indices; received mode {png.mode}")
        return np.asarray(png, np.uint8)


def voc_list(root, split="train", list_file=None):
    """[(image path, label path)] of a Pascal VOC 2012 layout under `root`, in the list's order.

    The list is ImageSets/Segmentation/<split>.txt, or `list_file`: lines of one id (VOC's lists, SBD's
    train_aug.txt) or of two paths relative to `root` (DeepLab's "/JPEGImages/x.jpg /SegmentationClassAug/x.png").
    Raises ValueError naming the list or the first missing file.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise ValueError(f"root must be a Pascal VOC 2012 folder (JPEGImages, SegmentationClass); received {root!r}")
    listed = (
        os.fspath(list_file) if list_file is not None else os.path.join(root, "ImageSets/Segmentation", f"{split}.txt")
    )
    if not os.path.isfile(listed):
        raise ValueError(f"list_file must be a list of image ids; received {listed!r} (not found)")
    pairs = []
    with open(listed, encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) == 1:
                pair = (f"JPEGImages/{fields[0]}.jpg", f"SegmentationClass/{fields[0]}.png")
            elif len(fields) == 2:
                pair = tuple(field.lstrip("/") for field in fields)
            else:
                raise ValueError(f"{listed!r} line {number} must hold an id or two paths; received {line.strip()!r}")
            pairs.append(tuple(os.path.join(root, p) for p in pair))
    if not pairs:
        raise ValueError(f"{listed!r} lists no images")
    for pair in pairs:
        for path in pair:
            if not os.path.isfile(path):
                raise ValueError(f"{listed!r} lists {path!r}, which does not exist")
    return pairs


def voc_source(root, split="train", list_file=None):
    """Dataset of (image float32 [H, W, 3] in [0, 1], label map uint8 [H, W]) of a Pascal VOC 2012 layout (see
    `voc_list`); labels 0..20 (VOC_CLASSES) and IGNORE_LABEL. An image and its label map of different sizes fail at
    iteration naming the image."""
    import tensorflow as tf

    images, labels = zip(*voc_list(root, split, list_file))

    def load(image_path, label_path):
        image = tf.io.decode_jpeg(tf.io.read_file(image_path), channels=3)
        label = tf.numpy_function(_read_indices, [label_path], tf.uint8, stateful=False)
        label.set_shape([None, None])
        same = tf.reduce_all(tf.shape(image)[:2] == tf.shape(label))
        check = tf.debugging.Assert(same, ["image and label map differ in size:", image_path])
        with tf.control_dependencies([check]):
            return tf.image.convert_image_dtype(image, tf.float32), tf.identity(label)

    dataset = tf.data.Dataset.from_tensor_slices((list(images), list(labels)))
    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
