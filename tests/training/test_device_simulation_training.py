"""data.simulate_on_device: the training stream carries clean images and seeds, the sensor runs inside the step, and
training sees bit for bit the frames of the tf.data path (same losses and weights), on one device and mirrored."""

import csv

import keras
import numpy as np
import pytest
import tensorflow as tf
from training_jobs import kill_inside_epoch, run_jobs, tiny

from dirtypixels_tf.physics.sensor import SensorModel
from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training import from_dict
from dirtypixels_tf.training.data import ExperimentData, SimulatingModel, simulating_view
from dirtypixels_tf.training.model_setup import build_experiment_model, model_input_names


def _data(**sections):
    config = from_dict(tiny(**sections))
    return config, ExperimentData(config, model_input_names(build_experiment_model(config)))


def _frames_model(size=32):
    """{"raw", "alpha", "sigma"} -> the same tensors: what a model receives, as its outputs."""
    inputs = {"raw": keras.Input((size, size, 1), name="raw")}
    inputs.update(alpha=keras.Input((), name="alpha"), sigma=keras.Input((), name="sigma"))
    return keras.Model(inputs, {name: keras.layers.Identity(name=f"{name}_out")(x) for name, x in inputs.items()})


@pytest.mark.parametrize("sections", [{}, {"model": {"head": None, "head_width": 1.0}, "loss": {"kind": "l1"}}])
def test_on_device_stream_and_view_give_the_frames_and_targets_of_the_host_stream(sections, fashion_mnist):
    """The on-device stream holds clean images and seeds only; the view simulates from them the host stream's frames
    bit for bit, and the targets (labels, or the clean image of an L1 stage) are the host's."""
    data = {"train_examples": 64, "simulate_on_device": True}
    config, experiment = _data(data=data, **sections)
    device = experiment.train_dataset(0, 0, 1)
    host = experiment.train_dataset(0, 0, 1, on_device=False)
    assert set(device.element_spec[0]) == {"clean", "sensor_seed"}
    assert set(host.element_spec[0]) == {"raw", "alpha", "sigma"}
    view = simulating_view(_frames_model(), experiment.sensor)
    step = tf.function(lambda inputs: view(inputs, training=True))
    batches = 0
    for (inputs, targets), (host_inputs, host_targets) in zip(device, host):
        frames = step(inputs)
        for name in ("raw", "alpha", "sigma"):
            assert frames[name].numpy().tobytes() == host_inputs[name].numpy().tobytes(), name
        assert set(targets) == set(host_targets)
        for name in targets:
            assert targets[name].numpy().tobytes() == host_targets[name].numpy().tobytes(), name
        batches += 1
    assert batches == 64 // config.data.batch_size


def test_model_fit_on_the_view_matches_fit_on_the_host_stream(fashion_mnist):
    """Two SGD steps of model.fit (default strategy): the view on the on-device stream and the model on the host
    stream, from the same initial weights, give the same losses and weights (the same frames, the same ops)."""
    _, experiment = _data(data={"train_examples": 32, "simulate_on_device": True})
    keras.utils.set_random_seed(0)
    inputs = {"raw": keras.Input((32, 32, 1), name="raw")}
    inputs.update(alpha=keras.Input((), name="alpha"), sigma=keras.Input((), name="sigma"))
    hidden = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv")(inputs["raw"])
    scaled = keras.layers.Concatenate()(
        [keras.layers.GlobalAveragePooling2D()(hidden), keras.ops.stack([inputs["alpha"], inputs["sigma"]], axis=1)]
    )
    model = keras.Model(inputs, {"logits": keras.layers.Dense(10, name="dense")(scaled)})
    initial = model.get_weights()
    histories, weights = [], []
    for on_device in (False, True):
        model.set_weights(initial)
        trained = simulating_view(model, experiment.sensor) if on_device else model
        trained.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
        )
        stream = experiment.train_dataset(0, 0, 1, on_device=on_device)
        history = trained.fit(stream, epochs=2, steps_per_epoch=1, verbose=0, shuffle=False)
        histories.append(history.history["loss"])
        weights.append(model.get_weights())
    np.testing.assert_allclose(histories[1], histories[0], rtol=1e-6)
    for a, b in zip(*weights):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


def test_the_view_shares_the_weight_file_layout_of_the_model(tmp_path):
    """A backup or checkpoint written by the view (RunBackup, ModelCheckpoint) loads into the model itself."""
    keras.utils.set_random_seed(1)
    inputs = {"raw": keras.Input((8, 8, 1), name="raw")}
    inputs.update(alpha=keras.Input((), name="alpha"), sigma=keras.Input((), name="sigma"))
    model = keras.Model(inputs, {"image": keras.layers.Conv2D(3, 3, padding="same", name="conv")(inputs["raw"])})
    view = simulating_view(model, SensorModel(light_levels="3lux"))
    assert isinstance(view, SimulatingModel) and view.layers == model.layers
    view.save_weights(tmp_path / "view.weights.h5")
    expected = [w.copy() for w in model.get_weights()]
    model.set_weights([np.zeros_like(w) for w in expected])
    model.load_weights(tmp_path / "view.weights.h5")
    for a, b in zip(expected, model.get_weights()):
        np.testing.assert_array_equal(b, a)


def test_simulate_on_device_needs_a_model_that_takes_raw_frames(fashion_mnist):
    with pytest.raises(config_lib.ConfigError, match=r"data.simulate_on_device: the model takes \['clean'\]"):
        _data(model={"isp": None}, data={"simulate_on_device": True})


def _losses(run_dir):
    with open(run_dir / "training_log.csv", encoding="utf-8") as stream:
        return [float(row["loss"]) for row in csv.DictReader(stream)]


@pytest.mark.slow
def test_training_on_device_matches_host_simulation_on_one_device_and_mirrored(tmp_path, fashion_mnist):
    """run_experiment with data.simulate_on_device false and true, on the default strategy and mirrored over two
    logical CPUs, 2 epochs x 2 steps, op determinism: the per-epoch losses agree within 1e-6 relative and the final
    weights within 1e-6 (float round-off; on this CPU they are equal bit for bit, as the frames are)."""
    jobs = []
    for name, distribution in (("single", {}), ("mirrored", {"strategy": "mirrored", "logical_cpus": 2})):
        for on_device in (False, True):
            config = tiny(
                distribution=distribution,
                data={"epochs": 2, "steps_per_epoch": 2, "simulate_on_device": on_device},
                deterministic=True,
            )
            run = f"{name}-{on_device}"
            jobs.append(
                {
                    "config": config,
                    "run_dir": str(tmp_path / run),
                    "out": str(tmp_path / f"{run}.npz"),
                    "logical_cpus": 2,
                }
            )
    run_jobs(jobs, tmp_path, timeout=600)
    for name in ("single", "mirrored"):
        host, device = np.load(tmp_path / f"{name}-False.npz"), np.load(tmp_path / f"{name}-True.npz")
        assert len(host["loss"]) == 2
        np.testing.assert_allclose(device["loss"], host["loss"], rtol=1e-6)
        names = [key for key in host.files if key.startswith("w")]
        assert len(names) > 100
        for key in names:
            np.testing.assert_allclose(device[key], host[key], rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_on_device_run_killed_mid_epoch_resumes_to_the_host_runs_weights(tmp_path, fashion_mnist):
    """As tests/training/test_resume.py, with data.simulate_on_device: the run killed in epoch 2 resumes from its
    backup (written by the view) and ends with the weights of an uninterrupted run that simulates on the host."""
    config = tiny(data={"epochs": 3, "steps_per_epoch": 8}, checkpoint={"every_steps": 3}, deterministic=True)
    device_config = tiny(
        data={"epochs": 3, "steps_per_epoch": 8, "simulate_on_device": True},
        checkpoint={"every_steps": 3},
        deterministic=True,
    )
    interrupted = tmp_path / "interrupted"
    process = run_jobs([{"config": device_config, "run_dir": str(interrupted), "out": None}], tmp_path, wait=False)
    state = kill_inside_epoch(process, interrupted, epoch=1, seconds=240)
    assert 0 < state["batch"] < 8, state

    reference = tmp_path / "reference"
    jobs = [
        {"config": device_config, "run_dir": str(interrupted), "out": str(tmp_path / "resumed.npz")},
        {"config": config, "run_dir": str(reference), "out": str(tmp_path / "reference.npz")},
    ]
    run_jobs(jobs, tmp_path, timeout=600)
    resumed, expected = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "reference.npz")
    names = [key for key in expected.files if key.startswith("w")]
    assert len(names) > 100
    for key in names:
        np.testing.assert_allclose(resumed[key], expected[key], rtol=1e-6, atol=1e-6)
    assert not (interrupted / "backup").exists()
    losses, reference_losses = _losses(interrupted), _losses(reference)
    assert len(losses) == 3  # epoch 2's row averages the resumed batches only
    np.testing.assert_allclose([losses[0], losses[2]], [reference_losses[0], reference_losses[2]], rtol=1e-6)
