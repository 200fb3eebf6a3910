"""Which ops of a graph have no GPU kernel, by TensorFlow's kernel registry (readable on a CPU-only build)."""

import functools

from tensorflow.python.framework import kernels

# Kernels registered for DEVICE_DEFAULT run on any device (control flow, function calls, TensorList ops).
GPU_CAPABLE = {"GPU", "DEFAULT"}
# Graph-only nodes that are never placed as kernels: inputs and outputs of functions.
NOT_KERNELS = {"_Arg", "_Retval", "NoOp"}


@functools.cache
def has_gpu_kernel(op_type):
    devices = {kernel.device_type for kernel in kernels.get_registered_kernels_for_op(op_type).kernel}
    return bool(devices & GPU_CAPABLE)


def op_types(graph_def):
    """{op type: [node names]} of a GraphDef, functions of its library (while bodies, conditions, calls) included."""
    found = {}
    nodes = [(node.name, node.op) for node in graph_def.node]
    for function in graph_def.library.function:
        nodes += [(f"{function.signature.name}/{node.name}", node.op) for node in function.node_def]
    for name, op in nodes:
        found.setdefault(op, []).append(name)
    return found


def ops_without_gpu_kernel(graph_def):
    """{op type: [node names]} of the ops that only a CPU (or another non-GPU device) can run."""
    library = {function.signature.name for function in graph_def.library.function}
    return {
        op: names
        for op, names in op_types(graph_def).items()
        if op not in NOT_KERNELS and op not in library and not has_gpu_kernel(op)
    }
