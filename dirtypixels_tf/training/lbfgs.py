"""L-BFGS pretraining of an ISP for average PSNR (Diamond et al. 2017 Sec. 6: shrinkage fields, 400 iterations).

scipy.optimize.minimize(method="L-BFGS-B", jac=True) drives the ISP's trainable weights flattened into one float64
vector: for a vector w, the weights are assigned, the objective minus the mean PSNR (dB) over a fixed set of
examples is evaluated in chunks (the set is simulated once, so the objective is deterministic, as L-BFGS needs),
and its gradient is TensorFlow's, summed over the chunks with the chunk sizes as weights. One iteration may
evaluate the objective more than once (line search); `maxiter` counts iterations. Non-trainable state (batch-norm
statistics) is not touched: the ISP runs in inference mode.
"""

import numpy as np
import scipy.optimize
import tensorflow as tf

from dirtypixels_tf.training.losses import psnr_per_image


def _flatten(variables):
    return np.concatenate([np.asarray(v.numpy(), np.float64).ravel() for v in variables])


def _assign(variables, vector):
    offset = 0
    for v in variables:
        size = int(np.prod(v.shape))
        v.assign(vector[offset : offset + size].reshape(v.shape).astype(np.dtype(v.dtype)))
        offset += size


def lbfgs_pretrain(model, inputs, targets, iterations, chunk_size=50, output="image", callback=None):
    """Minimize minus the mean PSNR of model(inputs)[output] against `targets` (clean images in [0, 1]) over the
    model's trainable weights with L-BFGS-B for at most `iterations` iterations.

    inputs: dict of NumPy arrays (the model's inputs, N examples); targets: [N, H, W, 3]. callback(iteration, psnr)
    is called after each iteration with the PSNR of the last evaluation (L-BFGS-B's accepted point). Returns {"initial_psnr", "final_psnr", "iterations", "evaluations", "message"}.
    """
    variables = list(model.trainable_variables)
    if not variables:
        raise ValueError(f"model {model.name!r} has no trainable weights to pretrain")
    count = len(targets)
    chunks = [(start, min(start + chunk_size, count)) for start in range(0, count, chunk_size)]
    inputs = {k: tf.constant(v) for k, v in inputs.items()}
    targets = tf.constant(targets)

    @tf.function
    def chunk_value_and_gradients(chunk_inputs, chunk_targets):
        with tf.GradientTape() as tape:
            outputs = model(chunk_inputs, training=False)
            value = -tf.reduce_sum(psnr_per_image(chunk_targets, outputs[output]))
        return value, tape.gradient(value, variables)

    evaluations = [0]
    last_value = [None]

    def objective(vector):
        _assign(variables, vector)
        total, gradient = 0.0, np.zeros_like(vector)
        for start, end in chunks:
            chunk = {k: v[start:end] for k, v in inputs.items()}
            value, gradients = chunk_value_and_gradients(chunk, targets[start:end])
            total += float(value)
            gradient += np.concatenate(
                [
                    np.zeros(int(np.prod(v.shape))) if g is None else np.asarray(g, np.float64).ravel()
                    for v, g in zip(variables, gradients)
                ]
            )
        evaluations[0] += 1
        last_value[0] = total / count
        return total / count, gradient / count

    start = _flatten(variables)
    initial = -objective(start)[0]
    iteration = [0]

    def report(vector):
        iteration[0] += 1
        if callback is not None:
            callback(iteration[0], -last_value[0])

    result = scipy.optimize.minimize(
        objective, start, method="L-BFGS-B", jac=True, options={"maxiter": int(iterations)}, callback=report
    )
    _assign(variables, result.x)
    return {
        "initial_psnr": float(initial),
        "final_psnr": float(-result.fun),
        "iterations": int(result.nit),
        "evaluations": evaluations[0],
        "message": str(result.message),
    }
