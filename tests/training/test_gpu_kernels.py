"""Every op of the training step (release joint model, data.simulate_on_device: true, MirroredStrategy) has a GPU
kernel by TensorFlow's kernel registry, so the whole step, the simulation included, can run on the accelerators."""

import json
import os
import subprocess
import sys

import pytest
from gpu_kernels import GPU_CAPABLE, NOT_KERNELS, has_gpu_kernel

SCRIPT = os.path.join(os.path.dirname(__file__), "train_step_graph.py")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Ops allowed without a GPU kernel, on purpose, with the reason. (On 2 CPU replicas the step reads its batch with
# IteratorGetNext, which has a GPU kernel; on several GPUs the distributed iterator may prefetch to each device with
# this op, which is the input pipeline's and runs on the host.)
HOST_OPS = {
    "MultiDeviceIteratorGetNextFromShard": "input pipeline: tf.data hands each replica its shard from the host",
}


def test_kernel_registry_reading_is_right():
    # the facts the test rests on: Poisson has a CPU kernel only, the uniforms and convolutions have GPU ones
    assert not has_gpu_kernel("StatelessRandomPoisson") and not has_gpu_kernel("RandomPoissonV2")
    assert all(has_gpu_kernel(op) for op in ("StatelessRandomUniformV2", "Conv2D", "Lgamma", "StatelessWhile"))
    assert GPU_CAPABLE == {"GPU", "DEFAULT"}
    assert not any(has_gpu_kernel(op) for op in HOST_OPS)  # an exception that is not needed is not kept


@pytest.mark.slow
def test_every_op_of_the_on_device_training_step_has_a_gpu_kernel(tmp_path):
    out = tmp_path / "ops.json"
    # the sampler a GPU machine uses ("auto" picks it where TensorFlow sees a GPU; this machine may have none)
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2", DIRTYPIXELS_POISSON_SAMPLER="portable")
    run = subprocess.run([sys.executable, SCRIPT, str(out)], capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    graph = json.loads(out.read_text())
    ops, functions = graph["ops"], set(graph["functions"])
    assert graph["replicas"] == 2
    # the step holds the simulation (the sampler's uniforms and lgamma), the model (convolutions) and the all-reduce
    for op in ("StatelessRandomUniformV2", "Lgamma", "Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropFilter"):
        assert op in ops, op
    assert any(op.startswith(("Collective", "Nccl")) for op in ops), sorted(ops)  # the gradients' all-reduce
    cpu_only = {
        op: names[:3]
        for op, names in ops.items()
        if op not in NOT_KERNELS and op not in functions and op not in HOST_OPS and not has_gpu_kernel(op)
    }
    assert cpu_only == {}, f"ops without a GPU kernel in the training step: {cpu_only}"
