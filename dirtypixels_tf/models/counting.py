"""Parameter and multiply-add counts of any Keras model, however its layers are nested.

Multiply-adds (MACs, the papers' "FLOPs") are read off the TensorFlow graph of one forward pass at batch size 1:
the kernel products of Conv2D / Conv3D, DepthwiseConv2dNative, transposed convolutions (Conv2DBackpropInput),
MatMul and BatchMatMul ops, each over its whole output including the batch axis. That matters for dilated
convolutions: TensorFlow builds one as SpaceToBatchND, then a Conv2D on a batch rate^2 times larger (of images
rate times smaller), then BatchToSpaceND; the Conv2D's batch axis carries the factor rate^2. Not counted: biases, batch norm, activations, pooling, element-wise arithmetic, and FFTs
(the Fourier-domain data steps cost O(N log N) per image, small beside the convolutions).
"""

import numpy as np
import tensorflow as tf


def count_params(model):
    """dict(trainable=, non_trainable=, total=) of `model` (non-trainable: mostly batch-norm statistics)."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return {"trainable": trainable, "non_trainable": non_trainable, "total": trainable + non_trainable}


def _static(shape, op):
    dims = shape.as_list() if shape.rank is not None else None
    if dims is None or any(d is None for d in dims[1:]):
        raise ValueError(f"op {op.name!r} has an unknown shape {shape}: build the model with a static input size")
    return dims


def _elements(shape, op):
    """Number of elements of an op's tensor, batch axis included (1 for the model's own batch; rate^2 inside a
    dilated convolution's SpaceToBatchND)."""
    dims = _static(shape, op)
    if dims[0] is None:
        raise ValueError(f"op {op.name!r} has an unknown batch size {shape}: count at a static batch size")
    return int(np.prod(dims))


def _op_multiply_adds(op):
    if op.type in ("Conv2D", "Conv3D"):
        kernel = _static(op.inputs[1].shape, op)  # [kh, kw, (kd,) in, out]
        return _elements(op.outputs[0].shape, op) * int(np.prod(kernel[:-1]))
    if op.type == "DepthwiseConv2dNative":
        kh, kw, _, _ = _static(op.inputs[1].shape, op)
        return _elements(op.outputs[0].shape, op) * kh * kw
    if op.type == "Conv2DBackpropInput":  # transposed convolution: every input value scatters through the kernel
        kh, kw, out_channels, _ = _static(op.inputs[1].shape, op)
        return _elements(op.inputs[2].shape, op) * kh * kw * out_channels
    if op.type in ("MatMul", "BatchMatMulV2", "BatchMatMulV3"):
        a, b = _static(op.inputs[0].shape, op), _static(op.inputs[1].shape, op)
        rows = a[-1] if op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x") else a[-2]
        inner = a[-2] if op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x") else a[-1]
        cols = b[-2] if op.get_attr("transpose_b" if op.type == "MatMul" else "adj_y") else b[-1]
        return int(np.prod(a[:-2])) * rows * inner * cols
    return 0


def count_multiply_adds(model):
    """Multiply-adds of one image through `model` (a Keras model with static input sizes).

    Each input's batch dimension is set to 1; dict inputs are fed by name. Every op of the traced forward pass is
    counted, so nested models and layers that call other layers are all included.
    """
    specs = [tf.TensorSpec([1, *x.shape[1:]], x.dtype, name=x.name) for x in model.inputs]
    for spec in specs:
        if None in spec.shape[1:]:
            raise ValueError(f"model input {spec.name!r} must have a static shape to count; received {spec.shape}")
    names = [x.name for x in model.inputs]

    def forward(*tensors):
        if isinstance(model.input, dict):
            return model(dict(zip(names, tensors)), training=False)
        return model(tensors[0] if len(tensors) == 1 else list(tensors), training=False)

    graph = tf.function(forward).get_concrete_function(*specs).graph
    return sum(_op_multiply_adds(op) for op in graph.get_operations())
