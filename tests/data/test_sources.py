"""Sources: exact pixels and labels back from folders, TFRecords, arrays and IDX files; errors name the culprit."""

import gzip
import os
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dirtypixels_tf.data import sources


def _collect(dataset):
    images, labels = [], []
    for image, label in dataset:
        images.append(image.numpy())
        labels.append(int(label))
    return images, labels


def _as_8bit(image):
    """Float image in [0, 1] back to 8-bit values; exact when the image came from v / 255."""
    return np.round(image * 255.0).astype(np.uint8)


def _solid(colour, height=4, width=6):
    return np.broadcast_to(np.asarray(colour, np.uint8), (height, width, 3)).copy()


def test_folder_source_gives_exact_pixels_labels_and_sorted_classes(tmp_path):
    # Class folders created out of order: class index follows the sorted names.
    pictures = {
        "zebra": [("b.png", _solid((255, 0, 0))), ("a.png", _solid((0, 0, 255)))],
        "apple": [("x.bmp", _solid((10, 200, 30))), ("y.gif", _solid((0, 0, 0)))],
        "mango": [("gray.png", None)],
    }
    gray = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    for cls, files in pictures.items():
        os.makedirs(tmp_path / cls)
        for name, pixels in files:
            Image.fromarray(gray if pixels is None else pixels).save(tmp_path / cls / name)
    (tmp_path / "apple" / "notes.txt").write_text("not an image")
    os.makedirs(tmp_path / ".hidden")

    dataset, classes = sources.folder_source(tmp_path)
    assert classes == ["apple", "mango", "zebra"]
    images, labels = _collect(dataset)
    assert labels == [0, 0, 1, 2, 2]
    expected = [
        _solid((10, 200, 30)),  # apple/x.bmp
        _solid((0, 0, 0)),  # apple/y.gif
        np.repeat(gray[..., None], 3, axis=-1),  # mango/gray.png: grayscale repeated to RGB
        _solid((0, 0, 255)),  # zebra/a.png
        _solid((255, 0, 0)),  # zebra/b.png
    ]
    for image, want in zip(images, expected, strict=True):
        assert image.dtype == np.float32 and image.shape == (4, 6, 3)
        np.testing.assert_array_equal(_as_8bit(image), want)
        assert image.min() >= 0.0 and image.max() <= 1.0


def test_folder_source_errors_name_the_path(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        sources.folder_source(tmp_path / "missing")
    with pytest.raises(ValueError, match="no subfolders"):
        sources.folder_source(tmp_path)
    os.makedirs(tmp_path / "cls")
    (tmp_path / "cls" / "readme.txt").write_text("text")
    with pytest.raises(ValueError, match="no image files"):
        sources.folder_source(tmp_path)
    (tmp_path / "cls" / "fake.png").write_bytes(b"this is not a png file at all")
    dataset, _ = sources.folder_source(tmp_path)
    with pytest.raises(tf.errors.InvalidArgumentError, match="fake.png"):
        _collect(dataset)


def test_tfrecords_round_trip_is_exact_across_shards(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(4, 6), (5, 3), (8, 8), (2, 2), (3, 7)]]
    images[3] = images[3][..., :1]  # a grayscale record
    labels = [3, 1, 4, 1, 5]
    paths = sources.write_tfrecords(images, labels, tmp_path / "set", shards=2)
    assert [os.path.basename(p) for p in paths] == ["set-00000-of-00002", "set-00001-of-00002"]

    read, read_labels = _collect(sources.tfrecord_source(tmp_path / "set-*"))
    order = [0, 2, 4, 1, 3]  # example k is in shard k % 2; files are read in sorted order
    assert read_labels == [labels[k] for k in order]
    for image, k in zip(read, order, strict=True):
        want = np.repeat(images[k], 3, axis=-1) if images[k].shape[-1] == 1 else images[k]
        np.testing.assert_array_equal(_as_8bit(image), want)
    # A folder and a list of files name the same set.
    assert _collect(sources.tfrecord_source(tmp_path))[1] == read_labels
    assert _collect(sources.tfrecord_source(paths))[1] == read_labels


def test_tfrecords_label_offset(tmp_path):
    images = np.zeros((3, 2, 2, 3), np.uint8)
    path = sources.write_tfrecords(images, [1, 2, 1000], tmp_path / "slim.tfrecord")[0]
    assert _collect(sources.tfrecord_source(path))[1] == [1, 2, 1000]
    assert _collect(sources.tfrecord_source(path, label_offset=1))[1] == [0, 1, 999]
    with pytest.raises(tf.errors.InvalidArgumentError, match="slim.tfrecord.*label_offset 2"):
        _collect(sources.tfrecord_source(path, label_offset=2))
    with pytest.raises(ValueError, match="label_offset must be an integer"):
        sources.tfrecord_source(path, label_offset=0.5)


def test_corrupt_or_foreign_record_files_raise_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.tfrecord"
    garbage.write_bytes(b"definitely not a tfrecord file" * 10)
    with pytest.raises(ValueError, match="garbage.tfrecord.*not a TFRecord file"):
        sources.tfrecord_source(garbage)

    good = sources.write_tfrecords(np.zeros((4, 6, 6, 3), np.uint8), [0, 1, 2, 3], tmp_path / "good.tfrecord")[0]
    truncated = tmp_path / "truncated.tfrecord"
    truncated.write_bytes(open(good, "rb").read()[:-10])
    sources.tfrecord_source(truncated)  # the first record is intact: the damage shows when it is read
    with pytest.raises(ValueError, match="truncated.tfrecord.*corrupt"):
        sources.tfrecord_source(truncated, verify=True)

    other = tmp_path / "other.tfrecord"
    with tf.io.TFRecordWriter(str(other)) as writer:
        feature = {"image/raw": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))}
        writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    with pytest.raises(ValueError, match=r"other.tfrecord.*missing \['image/encoded', 'image/class/label'\]"):
        sources.tfrecord_source(other)

    # A later record without the label: named at iteration with its file and key.
    mixed = tmp_path / "mixed.tfrecord"
    with tf.io.TFRecordWriter(str(mixed)) as writer:
        for with_label in (True, False):
            feature = {
                "image/encoded": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[tf.io.encode_png(np.zeros((2, 2, 3), np.uint8)).numpy()])
                )
            }
            if with_label:
                feature["image/class/label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[7]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    with pytest.raises(tf.errors.InvalidArgumentError, match="mixed.tfrecord.*has no image/class/label feature"):
        _collect(sources.tfrecord_source(mixed))

    with pytest.raises(ValueError, match="not found"):
        sources.tfrecord_source(tmp_path / "nothing-here.tfrecord")
    with pytest.raises(ValueError, match="matches none"):
        sources.tfrecord_source(tmp_path / "nothing-*")


def test_array_source_converts_gray_and_uint8():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 7
    read, labels = _collect(sources.array_source(images, [5, 6]))
    assert labels == [5, 6]
    for image, want in zip(read, images, strict=True):
        assert image.shape == (3, 4, 3)
        np.testing.assert_array_equal(_as_8bit(image), np.repeat(want[..., None], 3, axis=-1))
    floats = np.linspace(0, 1, 2 * 2 * 2 * 3).reshape(2, 2, 2, 3)
    np.testing.assert_allclose(_collect(sources.array_source(floats, [0, 1]))[0][1], floats[1], atol=1e-7)
    with pytest.raises(ValueError, match=r"values in \[0.0, 2.0\]"):
        sources.array_source(floats * 2, [0, 1])
    with pytest.raises(ValueError, match="labels must be 2 integers"):
        sources.array_source(floats, [0, 1, 2])


def _write_idx(path, array, magic=None):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = magic if magic is not None else (codes[array.dtype] << 8) | array.ndim
    data = struct.pack(">I", header) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    with gzip.open(path, "wb") as stream:
        stream.write(data)


def test_read_idx_parses_and_validates(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "ok.gz", images)
    np.testing.assert_array_equal(sources.read_idx(tmp_path / "ok.gz", expected_magic=0x00000803), images)
    ints = np.array([-5, 70000, 3], ">i4")
    _write_idx(tmp_path / "ints.gz", ints)
    np.testing.assert_array_equal(sources.read_idx(tmp_path / "ints.gz"), [-5, 70000, 3])

    _write_idx(tmp_path / "badmagic.gz", images, magic=0x12340803)
    with pytest.raises(ValueError, match="badmagic.gz.*not an IDX file: magic number 0x12340803"):
        sources.read_idx(tmp_path / "badmagic.gz")
    with pytest.raises(ValueError, match="ok.gz.*0x00000803; expected 0x00000801"):
        sources.read_idx(tmp_path / "ok.gz", expected_magic=0x00000801)
    with gzip.open(tmp_path / "short.gz", "wb") as stream:
        stream.write(struct.pack(">IIII", 0x0803, 2, 3, 4) + b"\x00" * 5)
    with pytest.raises(ValueError, match="short.gz.*has 5 bytes of data.*needs 24"):
        sources.read_idx(tmp_path / "short.gz")
    (tmp_path / "broken.gz").write_bytes(b"\x1f\x8b" + b"junk")
    with pytest.raises(ValueError, match="broken.gz.*gzip"):
        sources.read_idx(tmp_path / "broken.gz")
