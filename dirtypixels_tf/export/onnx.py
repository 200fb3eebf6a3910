"""ONNX export of a joint model (tf2onnx) and its parity report against the SavedModel (ONNX Runtime).

The model has the LiteRT export's signature at any batch size: raw float32 [B, H, W, 1] in [0, 1], alpha and sigma
float32 [B] (or [B, 3] for per-channel noise) -> logits and probabilities [B, C] and the ISP's image [B, H, W, 3]
(class_map int32 [B, H, W], probabilities [B, H, W, K] and the image for a segmentation model). Float32 throughout;
opset OPSET. Needs the [onnx] extra (tf2onnx, onnx, onnxruntime).
"""

import os

from dirtypixels_tf.optional import require

OPSET = 17


def export_onnx(model, path, fold_batch_norm="head", opset=OPSET):
    """Convert `model` (inputs {"raw", "alpha", "sigma"}) to an .onnx file at `path`, written atomically.

    fold_batch_norm: "head", "all" or None, as export_tflite. Returns {"path", "opset", "bytes"}.
    """
    from dirtypixels_tf.export import fold
    from dirtypixels_tf.export.tflite import signature_function, write_atomically

    path = os.fspath(path)
    if not path.endswith(".onnx"):
        raise ValueError(f"path must end with .onnx; received {path!r}")
    tf2onnx = require("tf2onnx", "ONNX export")
    function = signature_function(fold.export_copy(model, fold_batch_norm), batch_size=None)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=function.input_signature, opset=opset)
    content = proto.SerializeToString()
    write_atomically(path, content)
    return {"path": path, "opset": opset, "bytes": len(content)}


def make_session(path, threads=None):
    """An ONNX Runtime session of the .onnx file at `path` on the CPU; threads: None = the runtime's default."""
    onnxruntime = require("onnxruntime", "running ONNX models")
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


def onnx_parity(onnx_path, savedmodel_dir, frames, batch_size=256):
    """The parity report of an .onnx model against an exported SavedModel version (tflite.runtime_parity; the ONNX
    model runs `batch_size` frames at a time)."""
    import numpy as np

    from dirtypixels_tf.export.tflite import runtime_parity

    session = make_session(onnx_path)
    names = [output.name for output in session.get_outputs()]

    def run(inputs):
        batches = [
            session.run(names, {key: value[start : start + batch_size] for key, value in inputs.items()})
            for start in range(0, len(inputs["raw"]), batch_size)
        ]
        return {name: np.concatenate([batch[index] for batch in batches]) for index, name in enumerate(names)}

    return runtime_parity(onnx_path, savedmodel_dir, frames, run)
