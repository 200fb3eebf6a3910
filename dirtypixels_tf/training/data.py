"""Training and evaluation datasets of an experiment config, built on dirtypixels_tf.data.

Conventions:
- The training stream is a concatenation of per-epoch datasets: epoch e is data.make_dataset over the training
  split with seed epoch_seed(seed, e) (its own crops, noise and shuffle order), one pass, the last partial batch
  dropped, cut to steps_per_epoch batches. Every batch is therefore a function of (seed, epoch, batch index) only,
  so a run resumed from a backup at (epoch, batch) rebuilds exactly the batches the interrupted run would have
  seen: `train_dataset(start_epoch, start_batch)` skips the first start_batch batches of that epoch (they are
  simulated and dropped: resuming mid-epoch costs the simulation of the skipped part of that epoch).
- Each epoch's dataset is built inside Dataset.flat_map, so every iteration of the stream yields the same batches
  (a dataset's own shuffle would otherwise reshuffle on its second iteration).
- Batches are (model inputs, targets) dicts (losses.make_targets); the batch size is the GLOBAL batch.
  `train_dataset_fn` gives the same stream for strategy.distribute_datasets_from_function (data.make_dataset_fn:
  each input pipeline keeps every num_input_pipelines-th example and batches with the per-replica size).
- The evaluation split (Fashion-MNIST's test split, or data.eval_path) is simulated with the evaluation
  preprocessing (centre crop) and seed `seed + 1`, one pass, the same noisy set on every run.
- data.simulate_on_device: the training stream stops before the sensor (pipeline.make_dataset(...,
  simulate_on_device=True)): its inputs are {"clean", "sensor_seed"} plus the model's inputs that are not simulated
  ("psf"; NIDF pretraining's "blurred"), its targets as usual (the clean image is in the batch). fit.py trains
  `simulating_view(model, sensor)`, which runs the sensor on them inside the training step, on each replica's
  share of the batch, with the same per-example seeds: the same frames bit for bit. The evaluation split, L-BFGS's
  training set and precise-BN batches stay simulated by tf.data (`train_dataset(..., on_device=False)`).
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from dirtypixels_tf.data import pipeline, source_spec
from dirtypixels_tf.physics import optics
from dirtypixels_tf.physics.sensor import SensorModel
from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training.losses import make_targets, needs_clean_image


def epoch_seed(seed, epoch):
    """The base seed of training epoch `epoch` (an integer >= 0)."""
    return seed * 1_000_003 + epoch


def make_sensor(config):
    """The SensorModel of config.data (sensor spec, light levels, Bayer phase or the sensor's, PSF, unprocessing)."""
    data = config.data
    profile = data.profile if isinstance(data.profile, str) else tuple(data.profile)
    return SensorModel(
        preset=data.sensor,
        light_levels=profile,
        pattern=data.pattern,
        psf=optics.resolve_psf(data.psf, config.seed),  # "motion-L" drawn with the experiment's seed
        unprocess=data.unprocess or None,
        front_end=None if data.front_end == "none" else data.front_end,
    )


def class_names(config):
    """The class names of the training data, index = label: Fashion-MNIST's, an image folder's subfolder names,
    or None for TFRecords (which carry numbers only)."""
    return source_spec.class_names(config.data.source, config.data.train_path)


def _open(config, split):
    """(dataset of (image, label), size or None) of the training or evaluation split (None if there is none)."""
    limit = config.data.train_examples if split == "train" else config.data.eval_examples
    return source_split(config, "train" if split == "train" else "test", limit)


def source_split(config, split, limit=None):
    """(dataset of (clean image, label) before simulation, its size or None) of the "train" or "test" split of the
    config's data source, its first `limit` examples (None: all); (None, None) if the config names no path for it."""
    data = config.data
    path = None
    if data.source not in source_spec.PATHLESS_KINDS:
        path = data.train_path if split == "train" else data.eval_path
        if path is None:
            return None, None
    dataset, _, count = source_spec.open_source(
        data.source, path, split=split, label_offset=data.label_offset, limit=limit
    )
    return dataset, count


def eval_source(config):
    """The evaluation split as a dataset of (clean image, label) before simulation (data.sources), or None."""
    return _open(config, "eval")[0]


SIMULATED_INPUTS = ("raw", "alpha", "sigma")  # what the sensor gives the model


class SimulatingModel(keras.Model):
    """A functional model over the layers of another (same variables, same weight-file layout) whose call first runs
    `sensor` on batches of {"clean", "sensor_seed", ...} (pipeline.simulate_batch: "raw", "alpha", "sigma" per
    example with its own seed), then the graph: the simulation happens inside the training step, on each replica
    under tf.distribute. Batches that already hold the frames ("raw") go straight to the graph. The step is not
    XLA-compiled: the Poisson sampler's loops gather the undecided values (shapes known only at run time). A
    training-time view only, never saved."""

    def __init__(self, inputs, outputs, sensor, **kwargs):
        super().__init__(inputs, outputs, **kwargs)
        self.sensor = sensor
        self.input_spec = None  # the batches' keys differ from the graph's inputs; the graph checks what it receives
        self.supports_jit = False

    def call(self, inputs, training=None, mask=None):
        if "raw" not in inputs:
            # Integer seeds are a no-op cast; under a strategy, Keras builds the model from a batch averaged over the
            # replicas (Trainer._symbolic_build), whose seeds come out float64.
            seeds = tf.cast(inputs["sensor_seed"], tf.int64)
            features = pipeline.simulate_batch(self.sensor, {**inputs, "sensor_seed": seeds})
            inputs = {name: features[name] for name in self.input}
        return super().call(inputs, training=training, mask=mask)


def simulating_view(model, sensor):
    """`model` (a functional model with a dict of inputs among which "raw", "alpha", "sigma") fed by the
    simulate_on_device stream: a SimulatingModel over its inputs, outputs and layers."""
    if not isinstance(model.input, dict) or not set(SIMULATED_INPUTS) <= set(model.input):
        raise ValueError(f"model must take {list(SIMULATED_INPUTS)} by name; it takes {model.input}")
    return SimulatingModel(model.input, model.output, sensor, name=f"{model.name}_simulating")


@dataclasses.dataclass
class _Plan:
    include_clean: bool
    include_psf: bool


class ExperimentData:
    """The datasets of one experiment (see the module docstring).

    Attributes: sensor, train_size, eval_size (None without an evaluation split), steps (config.Steps),
    input_names (what the model takes).
    """

    def __init__(self, config, input_names):
        self.config = config
        self.spec = config_lib.model_spec(config)
        self.sensor = make_sensor(config)
        self.input_names = tuple(input_names)
        self._train_source, self.train_size = _open(config, "train")
        self._eval_source, self.eval_size = _open(config, "eval")
        self.steps = config_lib.derive_steps(config, self.train_size)
        kind = config.loss.kind
        self.plan = _Plan(
            include_clean=needs_clean_image(kind) or "clean" in self.input_names,
            include_psf="psf" in self.input_names,
        )
        if self.plan.include_psf and self.spec.psf_size is not None:
            psf = pipeline.sensor_psf(self.sensor)
            if tuple(psf.shape[:2]) != tuple(self.spec.psf_size):
                raise config_lib.ConfigError(
                    f"data.psf: the model takes {self.spec.psf_size} PSFs; data.psf {config.data.psf!r} is {psf.shape[:2]}"
                )
        self.on_device = config.data.simulate_on_device
        if self.on_device and not set(SIMULATED_INPUTS) <= set(self.input_names):
            raise config_lib.ConfigError(
                f"data.simulate_on_device: the model takes {list(self.input_names)}, no RAW frames to simulate"
            )
        self._targets = make_targets(kind, self.input_names, self.sensor, self.spec.task)
        device_names = ("clean", "sensor_seed") + tuple(n for n in self.input_names if n not in SIMULATED_INPUTS)
        self._device_targets = make_targets(kind, device_names, self.sensor, self.spec.task)

    def _map_options(self, training, include_clean=None, on_device=False):
        data = self.config.data
        options = {
            "include_clean": self.plan.include_clean if include_clean is None else include_clean,
            "include_psf": self.plan.include_psf,
            "central_fraction": data.central_fraction,
            "simulate_on_device": on_device,
        }
        if training:
            options.update(crop_area=tuple(data.crop_area), flip=data.flip)
        return options

    def training_model(self, model):
        """The model fit trains: `model` itself, or with data.simulate_on_device its simulating_view."""
        return simulating_view(model, self.sensor) if self.on_device else model

    def _epoch(self, make, epoch, skip):
        def build(_):
            dataset = make(epoch).take(self.steps.steps_per_epoch)
            return dataset.skip(skip) if skip else dataset

        # Built inside flat_map, the epoch's shuffle is created anew on every iteration of the returned dataset, so
        # iterating it again (Keras reads one batch before training under a strategy) gives the same batches.
        return tf.data.Dataset.range(1).flat_map(build)

    def _stream(self, make, start_epoch, start_batch, end_epoch, on_device):
        end_epoch = self.config.data.epochs if end_epoch is None else end_epoch
        if not 0 <= start_epoch < end_epoch:
            raise ValueError(f"start_epoch must be in [0, {end_epoch}); received {start_epoch}")
        dataset = self._epoch(make, start_epoch, start_batch)
        for epoch in range(start_epoch + 1, end_epoch):
            dataset = dataset.concatenate(self._epoch(make, epoch, 0))
        targets = self._device_targets if on_device else self._targets
        return dataset.map(targets, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def _make_epoch(self, batch_size, on_device):
        data = self.config.data

        def make(epoch):
            return pipeline.make_dataset(
                self._train_source,
                self.sensor,
                self.spec.image_size,
                batch_size,
                training=True,
                seed=epoch_seed(self.config.seed, epoch),
                epochs=1,
                shuffle_buffer=data.shuffle_buffer,
                drop_remainder=True,
                **self._map_options(True, on_device=on_device),
            )

        return make

    def train_dataset(self, start_epoch=0, start_batch=0, end_epoch=None, on_device=None):
        """Batches of (inputs, targets) from (start_epoch, start_batch) to the end of epoch end_epoch - 1 (default:
        the last epoch), global batch size. `on_device` (default data.simulate_on_device): inputs for the
        training_model's on-device simulation instead of the simulated frames."""
        on_device = self.on_device if on_device is None else on_device
        make = self._make_epoch(self.config.data.batch_size, on_device)
        return self._stream(make, start_epoch, start_batch, end_epoch, on_device)

    def train_dataset_fn(self, start_epoch=0, start_batch=0, end_epoch=None):
        """The same stream (data.simulate_on_device decides its form) as a dataset_fn(input_context) for
        strategy.distribute_datasets_from_function."""
        data = self.config.data

        def dataset_fn(context):
            def make(epoch):
                return pipeline.make_dataset_fn(
                    self._train_source,
                    self.sensor,
                    self.spec.image_size,
                    data.batch_size,
                    training=True,
                    seed=epoch_seed(self.config.seed, epoch),
                    epochs=1,
                    shuffle_buffer=data.shuffle_buffer,
                    drop_remainder=True,
                    **self._map_options(True, on_device=self.on_device),
                )(context)

            return self._stream(make, start_epoch, start_batch, end_epoch, self.on_device)

        return dataset_fn

    def eval_dataset(self, batch_size=None, include_clean=None, steps=None):
        """Batches of (inputs, targets) of the evaluation split (one pass; `steps` batches at most), or None."""
        features = self.eval_features(batch_size, include_clean)
        if features is None:
            return None
        dataset = features.map(self._targets, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return dataset if steps is None else dataset.take(steps)

    def eval_features(self, batch_size=None, include_clean=None):
        """Batches of (features, label) of the evaluation split straight from the pipeline, or None."""
        if self._eval_source is None:
            return None
        return pipeline.make_dataset(
            self._eval_source,
            self.sensor,
            self.spec.image_size,
            batch_size or self.config.data.batch_size,
            training=False,
            seed=self.config.seed + 1,
            **self._map_options(False, include_clean),
        )

    def summary_batch(self, count=4):
        """A fixed batch of evaluation (or training) features with "clean", as NumPy arrays, for image summaries."""
        source = self._eval_source if self._eval_source is not None else self._train_source
        dataset = pipeline.make_dataset(
            source,
            self.sensor,
            self.spec.image_size,
            count,
            training=False,
            seed=self.config.seed + 2,
            **self._map_options(False, include_clean=True),
        )
        features, label = next(iter(dataset))
        return {k: np.asarray(v) for k, v in features.items()}, np.asarray(label)
