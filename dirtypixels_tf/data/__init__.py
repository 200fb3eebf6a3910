"""tf.data sources (image folders, ImageNet-style TFRecords, arrays, Fashion-MNIST, segmentation label maps),
preprocessing, the sensor simulation map, and simulated RAW datasets on disk.
See each module's docstring for its conventions."""

from dirtypixels_tf._lazy import lazy_exports

_EXPORTS = {
    "load_capture": "dirtypixels_tf.data.camera_raw",
    "prepare_capture": "dirtypixels_tf.data.camera_raw",
    "FASHION_MNIST_CLASSES": "dirtypixels_tf.data.fashion_mnist",
    "load_fashion_mnist": "dirtypixels_tf.data.fashion_mnist",
    "fashion_mnist_source": "dirtypixels_tf.data.fashion_mnist",
    "locate_fashion_mnist": "dirtypixels_tf.data.fashion_mnist",
    "array_source": "dirtypixels_tf.data.sources",
    "folder_source": "dirtypixels_tf.data.sources",
    "tfrecord_source": "dirtypixels_tf.data.sources",
    "write_tfrecords": "dirtypixels_tf.data.sources",
    "read_idx": "dirtypixels_tf.data.sources",
    "resolve_source": "dirtypixels_tf.data.source_spec",
    "open_source": "dirtypixels_tf.data.source_spec",
    "make_dataset": "dirtypixels_tf.data.pipeline",
    "make_dataset_fn": "dirtypixels_tf.data.pipeline",
    "simulation_map": "dirtypixels_tf.data.pipeline",
    "simulate_batch": "dirtypixels_tf.data.pipeline",
    "IGNORE_LABEL": "dirtypixels_tf.data.segmentation",
    "COMPOSITE_CLASSES": "dirtypixels_tf.data.segmentation",
    "VOC_CLASSES": "dirtypixels_tf.data.segmentation",
    "composite_source": "dirtypixels_tf.data.segmentation",
    "voc_source": "dirtypixels_tf.data.segmentation",
    "palette": "dirtypixels_tf.data.segmentation",
    "colourize": "dirtypixels_tf.data.segmentation",
    "read_raw_tfrecords": "dirtypixels_tf.data.raw_records",
    "simulate_to_tfrecords": "dirtypixels_tf.data.raw_records",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
