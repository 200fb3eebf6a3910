"""Data sources by name: the one place that turns a source spec into a dataset.

A source is one of SOURCE_KINDS: "fashion-mnist" (Debian's IDX files, or the tests' stand-in; its "train" or "test"
split), "folder" (a folder of class subfolders, sources.folder_source) or "tfrecords" (ImageNet-style records: a
file, a folder of them or a glob, sources.tfrecord_source); for segmentation, "fashion-mnist-composite" (synthetic
composites of Fashion-MNIST items, segmentation.composite_source, seed 0) and "voc" (a Pascal VOC 2012 folder,
segmentation.voc_source; its "test" split is VOC's val list, on which Liu et al. 2018 report). The training configs
name the kind and a path (data.source, data.train_path / data.eval_path); the commands take one spec string, whose
kind `resolve_source` finds from the disk: "fashion-mnist" or "fashion-mnist-composite", else a folder holding
JPEGImages and SegmentationClass is a VOC folder, else a folder holding subfolders is a folder source, else an
existing path or a glob is TFRecords. This module imports no TensorFlow until `open_source` runs, so the command line checks a spec
before TensorFlow starts.
"""

import glob
import os

FASHION_MNIST = "fashion-mnist"
COMPOSITE = "fashion-mnist-composite"
VOC = "voc"
SOURCE_KINDS = (FASHION_MNIST, "folder", "tfrecords", COMPOSITE, VOC)
PATHLESS_KINDS = (FASHION_MNIST, COMPOSITE)
VOC_FOLDERS = ("JPEGImages", "SegmentationClass")
VOC_SPLITS = {"train": "train", "test": "val"}


def resolve_source(spec, name="source"):
    """(kind, path) of a source spec string (see the module docstring); path is None for fashion-mnist. Raises
    ValueError naming `name` and the spec if it is none of them (a missing path, a glob that matches nothing)."""
    spec = os.fspath(spec)
    if spec in PATHLESS_KINDS:
        return spec, None
    if all(os.path.isdir(os.path.join(spec, folder)) for folder in VOC_FOLDERS):
        return VOC, spec
    if os.path.isdir(spec) and any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(spec)):
        return "folder", spec
    if os.path.exists(spec) or (glob.has_magic(spec) and glob.glob(spec)):
        return "tfrecords", spec
    raise ValueError(
        f"{name} must be '{FASHION_MNIST}', '{COMPOSITE}', a Pascal VOC folder, a folder of class subfolders or "
        f"TFRecord files; received {spec!r} (not found)"
    )


def class_names(kind, path=None):
    """The class names of a source, index = label: Fashion-MNIST's, a folder's subfolder names, the composites' and
    VOC's (data/segmentation.py), None for TFRecords."""
    if kind in (COMPOSITE, VOC):
        from dirtypixels_tf.data.segmentation import COMPOSITE_CLASSES, VOC_CLASSES

        return list(COMPOSITE_CLASSES if kind == COMPOSITE else VOC_CLASSES)
    if kind == FASHION_MNIST:
        from dirtypixels_tf.data.fashion_mnist import FASHION_MNIST_CLASSES

        return list(FASHION_MNIST_CLASSES)
    if kind == "folder":
        from dirtypixels_tf.data.sources import list_image_folder

        return list_image_folder(path)[2]
    return None


def open_source(kind, path=None, split="test", label_offset=0, limit=None):
    """(dataset of (image, label), class names or None, examples or None) of a source (data/sources.py conventions).

    kind: one of SOURCE_KINDS; path: the folder or TFRecords (not for the PATHLESS_KINDS); split: "train" or "test"
    (fashion-mnist's and the composites'; VOC's train and val lists); label_offset: subtracted from TFRecord labels;
    limit: keep the first N examples (None = all). Segmentation sources give (image, label map) (data/segmentation.py).
    examples is the dataset's length (min(limit, available)), or `limit` for TFRecords, whose length is not read.
    Class names are Fashion-MNIST's or the folder's subfolder names (index = label); None for TFRecords.
    """
    from dirtypixels_tf.data import fashion_mnist, segmentation, sources

    if kind not in SOURCE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SOURCE_KINDS)}; received {kind!r}")
    if (path is None) != (kind in PATHLESS_KINDS):
        raise ValueError(f"path must be given for a {kind} source, and only then; received {path!r}")
    if kind in (COMPOSITE, VOC) and split not in VOC_SPLITS:
        raise ValueError(f"split must be one of {', '.join(VOC_SPLITS)}; received {split!r}")
    if kind == COMPOSITE:
        dataset = segmentation.composite_source(split, count=limit)
        return dataset, class_names(kind), int(dataset.cardinality())
    if kind == VOC:
        dataset = segmentation.voc_source(path, VOC_SPLITS[split])
        available = int(dataset.cardinality())
        count = available if limit is None else min(limit, available)
        return dataset.take(count), class_names(kind), count
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
