"""Write the ops of the release joint model's training step, as model.fit builds it, to a JSON file.

    python train_step_graph.py OUT.json

The config is release_joint_3lux with data.simulate_on_device: true and distribution mirrored over two logical
CPUs, on a few Fashion-MNIST images (stage weights and ImageNet paths dropped; the graph does not depend on them).
One fit step builds the model and its optimizer; then the next distributed batch and strategy.run(train_step) on
it, as Keras' train function runs them (the simulation, forward, backward, all-reduce, optimizer, per replica), is traced and its
ops are written as {op type: [node names]}, the functions of its library (loop bodies, calls) included.
"""

import json
import sys

import tensorflow as tf

from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training import fit, losses, model_setup, optimizers, strategy
from dirtypixels_tf.training.data import ExperimentData

OVERRIDES = (
    "data.source=fashion-mnist",
    "data.train_path=null",
    "data.eval_path=null",
    "data.train_examples=8",
    "data.batch_size=4",
    "data.epochs=1",
    "data.validation_steps=null",
    "data.simulate_on_device=true",
    "stages.isp_weights=null",
    "stages.head_weights=null",
    "distribution.logical_cpus=2",
)


def main(out):
    config = config_lib.load_config(config_lib.resolve_config("release_joint_3lux"), OVERRIDES)
    strategy.configure_logical_cpus(config.distribution.logical_cpus)
    fit._setup(config)
    mirrored = strategy.make_strategy(config.distribution)
    model, _ = fit._build(config, mirrored)
    data = ExperimentData(config, model_setup.model_input_names(model))
    loss, weights = losses.build_losses(config.loss)
    with mirrored.scope():
        trained = data.training_model(model_setup.training_view(model, loss))
        optimizer = optimizers.build_optimizer(config.optimizer, config.schedule, data.steps)
        trained.compile(optimizer=optimizer, loss=loss, loss_weights=weights)
    stream = data.train_dataset(0)
    trained.fit(stream, epochs=1, steps_per_epoch=1, verbose=0)
    # Keras' train function takes the next distributed batch and runs strategy.run(train_step) on it: trace that.
    step = tf.function(lambda iterator: mirrored.run(trained.train_step, args=(next(iterator),)))
    iterator = iter(mirrored.experimental_distribute_dataset(stream))
    graph = step.get_concrete_function(iterator).graph.as_graph_def()
    ops = {}
    for name, op in [(n.name, n.op) for n in graph.node] + [
        (f"{f.signature.name}/{n.name}", n.op) for f in graph.library.function for n in f.node_def
    ]:
        ops.setdefault(op, []).append(name)
    library = sorted(f.signature.name for f in graph.library.function)
    with open(out, "w", encoding="utf-8") as stream_out:
        json.dump({"ops": ops, "functions": library, "replicas": mirrored.num_replicas_in_sync}, stream_out)


if __name__ == "__main__":
    main(sys.argv[1])
