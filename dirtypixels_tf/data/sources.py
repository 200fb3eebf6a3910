"""Data sources: each gives a tf.data.Dataset of (image, label) before preprocessing.

Conventions:
- image: float32 [H, W, 3] (R, G, B) in [0, 1], sizes may differ between examples; 8-bit values v become v / 255
  (tf.image.convert_image_dtype). Grayscale input is repeated into three channels; an alpha channel is dropped.
- label: int64 scalar.
- The order of the examples is fixed (sorted file names, record order, array order): the pipeline keys each
  example's randomness by its position, so a source must give the same order on every run.

Sources: `folder_source` (one subfolder per class), `tfrecord_source` (ImageNet-style records, written by
`write_tfrecords`), `array_source` (in-memory arrays) and `read_idx` (IDX files); Fashion-MNIST, the default data set, is in
fashion_mnist.py.
"""

import glob
import gzip
import os
import struct

import numpy as np
import tensorflow as tf

from dirtypixels_tf.physics.validation import check_int

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

# ImageNet-style record keys (the layout of the original release and TF-slim's build_imagenet_data.py).
ENCODED_KEY = "image/encoded"
LABEL_KEY = "image/class/label"

# File signatures of the formats tf.io.decode_image reads (checked first so a bad file is named in the error).
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")


def _decode(contents, name):
    """Encoded JPEG/PNG/GIF/BMP bytes -> float32 [H, W, 3] in [0, 1]; `name` (a string tensor) labels errors."""
    head = tf.strings.substr(contents, 0, 4)
    known = tf.reduce_any([tf.strings.substr(head, 0, len(s)) == s for s in _SIGNATURES])
    check = tf.debugging.Assert(known, ["not a JPEG, PNG, GIF or BMP image:", name, "starts with bytes", head])
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return tf.image.convert_image_dtype(image, tf.float32)


def _to_float_rgb(image):
    """uint8 or float [H, W, C] with C in (1, 3) -> float32 [H, W, 3] in [0, 1]."""
    if image.shape[-1] == 1:
        image = tf.tile(image, [1, 1, 3])
    return tf.image.convert_image_dtype(image, tf.float32)


# ---------------------------------------------------------------------------------------------------------------
# Folder of class subfolders


def list_image_folder(path):
    """(file paths, labels, class names) of a folder holding one subfolder per class.

    Classes are the sorted names of the subfolders (hidden ones skipped); class index = position in that list.
    Image files (extensions in IMAGE_EXTENSIONS, any case) are searched recursively inside each class folder and
    sorted. Raises ValueError naming `path` if it is missing, has no class subfolders or holds no images.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ValueError(f"path must be an existing folder of class subfolders; received {path!r} (not a folder)")
    classes = sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise ValueError(f"path must contain one subfolder per class; received {path!r}, which has no subfolders")
    files, labels = [], []
    for index, name in enumerate(classes):
        found = []
        for root, dirs, names in os.walk(os.path.join(path, name)):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [os.path.join(root, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
        files += sorted(found)
        labels += [index] * len(found)
    if not files:
        raise ValueError(
            f"path must hold images ({', '.join(IMAGE_EXTENSIONS)}) in its class subfolders; received {path!r} "
            f"with subfolders {classes[:10]} and no image files"
        )
    return files, labels, classes


def folder_source(path):
    """(dataset of (image, label), class names) from a folder of class subfolders (see `list_image_folder`).

    JPEG, PNG, GIF (first frame) and BMP are decoded with tf.io.decode_image; grayscale becomes RGB. A file that is
    not an image fails at iteration with an error naming the file.
    """
    files, labels, classes = list_image_folder(path)
    dataset = tf.data.Dataset.from_tensor_slices((files, np.asarray(labels, np.int64)))

    def load(file, label):
        return _decode(tf.io.read_file(file), file), label

    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), classes


# ---------------------------------------------------------------------------------------------------------------
# ImageNet-style TFRecords


def expand_record_paths(path):
    """A file, a folder (its non-hidden files), a glob pattern, or a list of these -> sorted list of files."""
    if isinstance(path, (list, tuple)):
        files = [f for p in path for f in expand_record_paths(p)]
        if not files:
            raise ValueError(f"path must name at least one TFRecord file; received {path!r}")
        return files
    path = os.fspath(path)
    if os.path.isdir(path):
        files = sorted(
            os.path.join(path, e.name) for e in os.scandir(path) if e.is_file() and not e.name.startswith(".")
        )
        if not files:
            raise ValueError(f"path must hold TFRecord files; received folder {path!r}, which has no files")
        return files
    if os.path.isfile(path):
        return [path]
    if glob.has_magic(path):
        files = sorted(f for f in glob.glob(path) if os.path.isfile(f))
        if not files:
            raise ValueError(f"path must match TFRecord files; received pattern {path!r}, which matches none")
        return files
    raise ValueError(f"path must be a TFRecord file, a folder of them or a glob pattern; received {path!r} (not found)")


def first_example(path):
    """The first tf.train.Example of a TFRecord file, or None if the file is empty.

    Reads the record framing in Python (8-byte little-endian length, 4-byte length CRC, data, 4-byte data CRC;
    the CRCs are left to TensorFlow) so a file that is not a TFRecord file is named in a ValueError.
    """
    size = os.path.getsize(path)
    if size == 0:
        return None
    with open(path, "rb") as stream:
        header = stream.read(12)
        length = struct.unpack("<Q", header[:8])[0] if len(header) == 12 else None
        if length is None or 12 + length + 4 > size:
            raise ValueError(
                f"{path!r} is not a TFRecord file or is truncated: its first record header claims "
                f"{length} bytes of data but the file has {size} bytes"
            )
        data = stream.read(length)
    try:
        return tf.train.Example.FromString(data)
    except Exception as error:  # google.protobuf.message.DecodeError
        raise ValueError(f"the first record of {path!r} is not a tf.train.Example ({error})") from None


def check_record_files(files, required_keys):
    """Check that each file's first record has `required_keys` (ValueError naming the file and the keys found).

    Returns the files that hold records; raises if none does.
    """
    nonempty = []
    for file in files:
        example = first_example(file)
        if example is None:
            continue
        keys = set(example.features.feature)
        missing = [k for k in required_keys if k not in keys]
        if missing:
            raise ValueError(
                f"records in {file!r} must have the features {list(required_keys)}; the first record is missing "
                f"{missing} (it has {sorted(keys)})"
            )
        nonempty.append(file)
    if not nonempty:
        raise ValueError(f"the TFRecord files must hold at least one record; received {len(files)} empty file(s)")
    return nonempty


def verify_record_files(files):
    """Read every record of every file with TensorFlow; a corrupt file raises ValueError naming it."""
    for file in files:
        try:
            for _ in tf.data.TFRecordDataset(file):
                pass
        except tf.errors.DataLossError as error:
            raise ValueError(f"TFRecord file {file!r} is corrupt: {error.message.splitlines()[-1]}") from None


def records_with_files(files):
    """Dataset of (file name, serialized record), files in the given order, records in file order."""
    return tf.data.Dataset.from_tensor_slices(files).flat_map(
        lambda file: tf.data.TFRecordDataset(file).map(lambda record: (file, record))
    )


def tfrecord_source(path, label_offset=0, verify=False):
    """Dataset of (image, label) from ImageNet-style TFRecord files (uncompressed).

    Each record is a tf.train.Example with `image/encoded` (JPEG or PNG bytes) and `image/class/label` (int64), the
    layout of the original release and TF-slim. label = stored label - `label_offset`: slim's ImageNet records
    store 1..1000 with 0 meaning background (1001 classes, the release's setting); label_offset=1 gives 0..999 for a
    1000-class head. A label that becomes negative fails at iteration naming the file.

    `path`: a file, a folder of files, a glob pattern or a list (see `expand_record_paths`); files are read in
    sorted order, records in file order. The first record of every file is checked at once (missing keys or a
    non-TFRecord file raise ValueError naming the file); `verify=True` also reads every record now, so a corrupt
    file is named before training starts (otherwise TensorFlow raises DataLossError when it reaches it).
    """
    label_offset = check_int(label_offset, "label_offset", None)
    files = check_record_files(expand_record_paths(path), (ENCODED_KEY, LABEL_KEY))
    if verify:
        verify_record_files(files)
    missing_label = -(2**62)
    spec = {
        ENCODED_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=missing_label),
    }

    def parse(file, record):
        features = tf.io.parse_single_example(record, spec)
        encoded, label = features[ENCODED_KEY], features[LABEL_KEY]
        checks = [
            tf.debugging.Assert(tf.strings.length(encoded) > 0, ["a record in", file, f"has no {ENCODED_KEY} feature"]),
            tf.debugging.Assert(label != missing_label, ["a record in", file, f"has no {LABEL_KEY} feature"]),
            tf.debugging.Assert(
                (label >= label_offset) | (label == missing_label),
                ["a record in", file, f"has {LABEL_KEY} =", label, f"< label_offset {label_offset}"],
            ),
        ]
        with tf.control_dependencies(checks):
            return _decode(encoded, file), label - label_offset

    return records_with_files(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _bytes_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64_feature(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def shard_paths(path, shards):
    """File names of a set of `shards` files: `path` itself for one shard, else `path-00000-of-00004` etc."""
    path = os.fspath(path)
    if shards == 1:
        return [path]
    return [f"{path}-{i:05d}-of-{shards:05d}" for i in range(shards)]


def _check_shards(shards):
    return check_int(shards, "shards")


def _as_uint8(image, index):
    """One image (uint8, or float in [0, 1]) [H, W], [H, W, 1] or [H, W, 3] -> uint8 [H, W, C]."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., np.newaxis]
    if image.ndim != 3 or image.shape[-1] not in (1, 3) or 0 in image.shape:
        raise ValueError(f"images[{index}] must be [H, W], [H, W, 1] or [H, W, 3]; received shape {image.shape}")
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)) or image.min() < 0 or image.max() > 1:
            raise ValueError(f"images[{index}] must be uint8 or float in [0, 1]; received values outside [0, 1]")
        return np.round(image * 255.0).astype(np.uint8)
    raise ValueError(f"images[{index}] must be uint8 or float in [0, 1]; received dtype {image.dtype}")


def write_tfrecords(images, labels, path, shards=1, image_format="png"):
    """Write images and labels as ImageNet-style TFRecords; returns the list of files written.

    images: a uint8 array [N, H, W(, C)] or float in [0, 1] (rounded to 8 bits), or a sequence of such images of
    any sizes. labels: N integers, stored as they are (add 1 yourself for slim's background-first numbering).
    Each record holds `image/encoded` (PNG, lossless, or JPEG with image_format="jpeg"), `image/format`,
    `image/class/label`, `image/height`, `image/width`, `image/channels`. Example k goes to shard k % shards; file
    names follow `shard_paths`.
    """
    shards = _check_shards(shards)
    if image_format not in ("png", "jpeg"):
        raise ValueError(f"image_format must be 'png' or 'jpeg'; received {image_format!r}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be a 1-D sequence of integers; received shape {labels.shape}, dtype {labels.dtype}"
        )
    if len(images) != len(labels):
        raise ValueError(f"images and labels must have the same length; received {len(images)} and {len(labels)}")
    paths = shard_paths(path, shards)
    os.makedirs(os.path.dirname(os.path.abspath(paths[0])), exist_ok=True)
    writers = [tf.io.TFRecordWriter(p) for p in paths]
    try:
        for k, (image, label) in enumerate(zip(images, labels, strict=True)):
            pixels = _as_uint8(image, k)
            encode = tf.io.encode_png if image_format == "png" else tf.io.encode_jpeg
            feature = {
                ENCODED_KEY: _bytes_feature(encode(pixels).numpy()),
                "image/format": _bytes_feature(image_format.encode()),
                LABEL_KEY: _int64_feature(label),
                "image/height": _int64_feature(pixels.shape[0]),
                "image/width": _int64_feature(pixels.shape[1]),
                "image/channels": _int64_feature(pixels.shape[2]),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writers[k % shards].write(example.SerializeToString())
    finally:
        for writer in writers:
            writer.close()
    return paths


# ---------------------------------------------------------------------------------------------------------------
# In-memory arrays


def array_source(images, labels):
    """Dataset of (image, label) from arrays: images uint8 or float in [0, 1], [N, H, W], [N, H, W, 1] or
    [N, H, W, 3]; labels [N] integers. The arrays are held in the graph as they are (convert per example)."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(
            f"images must be [N, H, W], [N, H, W, 1] or [N, H, W, 3] with N > 0; received shape {images.shape}"
        )
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.floating):
            raise ValueError(f"images must be uint8 or float in [0, 1]; received dtype {images.dtype}")
        if not np.all(np.isfinite(images)) or images.min() < 0 or images.max() > 1:
            raise ValueError(
                f"images must be uint8 or float in [0, 1]; received values in [{images.min()}, {images.max()}]"
            )
        images = images.astype(np.float32)
    if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be {images.shape[0]} integers (one per image); received shape {labels.shape}, "
            f"dtype {labels.dtype}"
        )
    dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64)))
    return dataset.map(lambda x, y: (_to_float_rgb(x), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


# ---------------------------------------------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST)

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path, expected_magic=None):
    """Read an IDX file (gzip-compressed or not) into a NumPy array.

    Layout: magic = 2 zero bytes, a type byte (0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64) and the number of dimensions; then each dimension as big-endian uint32; then the data,
    big-endian, row-major. `expected_magic` (e.g. 0x00000803 for ubyte images [N, H, W], 0x00000801 for ubyte
    labels [N]) is checked if given. Errors name the path and what was found.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path must be an existing IDX file; received {path!r} (not found)")
    with open(path, "rb") as stream:
        compressed = stream.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open if compressed else open)(path, "rb") as stream:
            data = stream.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path!r} could not be decompressed as gzip: {error}") from None
    if len(data) < 4:
        raise ValueError(f"{path!r} is not an IDX file: {len(data)} bytes, shorter than the 4-byte magic number")
    magic = struct.unpack(">I", data[:4])[0]
    type_code, ndim = data[2], data[3]
    if data[:2] != b"\x00\x00" or type_code not in _IDX_TYPES:
        raise ValueError(f"{path!r} is not an IDX file: magic number 0x{magic:08x} (expected 0x0000 + type + ndim)")
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{path!r} has IDX magic number 0x{magic:08x}; expected 0x{expected_magic:08x}")
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path!r} is truncated: {len(data)} bytes cannot hold the {ndim} dimensions of its header")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    received = len(data) - 4 - 4 * ndim
    if received != expected:
        raise ValueError(f"{path!r} has {received} bytes of data; its header (shape {shape}, {dtype}) needs {expected}")
    array = np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(shape)
    return array.astype(dtype.newbyteorder("="))
