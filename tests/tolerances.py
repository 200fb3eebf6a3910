"""Float32 tolerances derived from the computation, so that comparisons hold on any x86-64 CPU TensorFlow supports.

Two float32 evaluations of one network differ when the order of their sums differs: batch size, oneDNN on or off
(TF_ENABLE_ONEDNN_OPTS), AVX2 or AVX-512 blocking (ONEDNN_MAX_CPU_ISA), fused multiply-adds, Grappler's fusions in a
SavedModel or the model server. The bound below covers that and nothing more: a real bug (an image seeing another
image of its batch, a wrong version's answer) moves values by a large fraction of their scale.
"""

import math

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)  # 2**-23


def float32_bound(n, scale, depth=1):
    """Bound on |a - b| for two float32 evaluations of `depth` chained stages, each a sum of `n` products of size up
    to `scale`, that differ only in summation order. Rounding errors of a sum of n terms grow like sqrt(n) * eps *
    scale when they are independent (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., sec. 3.1 and
    2.8); the errors of successive stages add. The factor 4: 2 for the two evaluations, 2 for the random walk's tail
    (a deviation of twice its standard size)."""
    return 4.0 * EPS32 * math.sqrt(n) * depth * scale


def reduction_size_and_depth(model):
    """(n, depth) of a Keras model or layer for `float32_bound`: n, the longest sum of its kernels (the larger of a
    kernel's fan-in and fan-out, so that transposed convolutions are covered too); depth, its number of kernels (an
    upper bound on the stages one value passes through)."""
    shapes = [tuple(w.shape) for w in model.weights if w.path.endswith("kernel")]
    n = max(int(np.prod(shape)) // min(shape[-2:]) for shape in shapes)
    return n, len(shapes)


def model_bound(model, outputs):
    """`float32_bound` for a model whose largest values are its outputs' (batch-normalised nets with inputs in
    [0, 1]: the outputs' magnitude, at least 1, stands for the activations' scale)."""
    n, depth = reduction_size_and_depth(model)
    return float32_bound(n, max(1.0, float(np.abs(outputs).max())), depth)


def decided(logits, bound):
    """Rows of `logits` whose two largest values are more than 2 * bound apart: there, two evaluations within
    `bound` of each other pick the same arg-max; a nearer tie may flip on round-off alone."""
    top_two = np.sort(np.asarray(logits), axis=-1)[..., -2:]
    return top_two[..., 1] - top_two[..., 0] > 2 * bound
