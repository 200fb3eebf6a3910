"""Export: SavedModels with RAW-input signatures for TF Serving, written atomically as numbered versions, and
TFLite and ONNX (see savedmodel.py, layout.py for the on-disk layout, tflite.py and onnx.py); fold.py makes inference copies with
batch norms folded into convolutions."""

from dirtypixels_tf._lazy import lazy_exports

_EXPORTS = {
    "SIGNATURES": "dirtypixels_tf.export.savedmodel",
    "export_savedmodel": "dirtypixels_tf.export.savedmodel",
    "read_export_metadata": "dirtypixels_tf.export.layout",
    "make_example": "dirtypixels_tf.export.savedmodel",
    "find_savedmodel": "dirtypixels_tf.export.layout",
    "export_tflite": "dirtypixels_tf.export.tflite",
    "export_onnx": "dirtypixels_tf.export.onnx",
    "onnx_parity": "dirtypixels_tf.export.onnx",
    "fold_batch_norm": "dirtypixels_tf.export.fold",
    "tflite_parity": "dirtypixels_tf.export.tflite",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
