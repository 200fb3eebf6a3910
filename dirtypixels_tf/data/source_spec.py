"""Data sources by name: the one place that turns a source spec into a dataset.

A source is one of SOURCE_KINDS: "fashion-mnist" (Debian's IDX files, or the tests' stand-in; its "train" or "test"
split), "folder" (a folder of class subfolders, sources.folder_source) or "tfrecords" (ImageNet-style records: a
file, a folder of them or a glob, sources.tfrecord_source). The training configs name the kind and a path
(data.source, data.train_path / data.eval_path); the commands take one spec string, whose kind `resolve_source`
finds from the disk: "fashion-mnist", else a folder holding subfolders is a folder source, else an existing path or
a glob is TFRecords. This module imports no TensorFlow until `open_source` runs, so the command line checks a spec
before TensorFlow starts.
"""

import glob
import os

FASHION_MNIST = "fashion-mnist"
SOURCE_KINDS = (FASHION_MNIST, "folder", "tfrecords")


def resolve_source(spec, name="source"):
    """(kind, path) of a source spec string (see the module docstring); path is None for fashion-mnist. Raises
    ValueError naming `name` and the spec if it is none of them (a missing path, a glob that matches nothing)."""
    spec = os.fspath(spec)
    if spec == FASHION_MNIST:
        return FASHION_MNIST, None
    if os.path.isdir(spec) and any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(spec)):
        return "folder", spec
    if os.path.exists(spec) or (glob.has_magic(spec) and glob.glob(spec)):
        return "tfrecords", spec
    raise ValueError(
        f"{name} must be '{FASHION_MNIST}', a folder of class subfolders or TFRecord files; received {spec!r} "
        "(not found)"
    )


def class_names(kind, path=None):
    """The class names of a source, index = label: Fashion-MNIST's, a folder's subfolder names, None for TFRecords."""
    if kind == FASHION_MNIST:
        from dirtypixels_tf.data.fashion_mnist import FASHION_MNIST_CLASSES

        return list(FASHION_MNIST_CLASSES)
    if kind == "folder":
        from dirtypixels_tf.data.sources import list_image_folder

        return list_image_folder(path)[2]
    return None


def open_source(kind, path=None, split="test", label_offset=0, limit=None):
    """(dataset of (image, label), class names or None, examples or None) of a source (data/sources.py conventions).

    kind: one of SOURCE_KINDS; path: the folder or TFRecords (not for fashion-mnist); split: fashion-mnist's "train"
    or "test"; label_offset: subtracted from TFRecord labels; limit: keep the first N examples (None = all).
    examples is the dataset's length (min(limit, available)), or `limit` for TFRecords, whose length is not read.
    Class names are Fashion-MNIST's or the folder's subfolder names (index = label); None for TFRecords.
    """
    from dirtypixels_tf.data import fashion_mnist, sources

    if kind not in SOURCE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SOURCE_KINDS)}; received {kind!r}")
    if (path is None) != (kind == FASHION_MNIST):
        raise ValueError(f"path must be given for a {kind} source, and only then; received {path!r}")
    if kind == FASHION_MNIST:
        images, labels = fashion_mnist.load_fashion_mnist(split)
        count = len(labels) if limit is None else min(limit, len(labels))
        return sources.array_source(images[:count], labels[:count]), class_names(kind), count
    if kind == "folder":
        dataset, classes = sources.folder_source(path)
        available = int(dataset.cardinality())
        count = available if limit is None else min(limit, available)
        return dataset.take(count), classes, count
    dataset = sources.tfrecord_source(path, label_offset=label_offset)
    return (dataset if limit is None else dataset.take(limit)), None, limit
