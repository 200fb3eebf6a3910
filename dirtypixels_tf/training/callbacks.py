"""Callbacks of a training run: backup and exact resume, checkpoints, TensorBoard scalars and images, NaN stop, CSV.

Run directory layout (RUN_DIR):
    params.yaml                    the config (config.save_params)
    backup/                        the resume point: step-<S>.weights.h5 + training_metadata.json (RunBackup)
    checkpoints/latest.weights.h5  every checkpoint.every_steps steps; epoch-<E>.weights.h5 at each epoch end
    logs/train, logs/validation    TensorBoard scalars; logs/images: RAW input (bilinear demosaic, for viewing), ISP
                                   output and clean target of a fixed batch every image_summaries_every epochs
    training_log.csv               one row of metrics per epoch
    model.keras                    the final model (fit.py), uncompiled, EMA weights folded in when EMA is on
A multi-worker run writes all of this from the chief only (see strategy.is_chief).
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from dirtypixels_tf.physics import mosaic
from dirtypixels_tf.training.data import make_sensor

BACKUP_DIR = "backup"
METADATA_FILE = "training_metadata.json"


def _seed_states(model):
    """The SeedGenerator states of the model's layers (dropout masks); Keras' weight files leave them out."""
    return {v.path: v for v in model.variables if v.path.endswith("seed_generator_state")}


def read_backup_state(backup_dir):
    """The resume point {"epoch": completed epochs, "batch": batches done in the next one, "step": optimizer steps,
    "weights": file} of a backup directory, or None when there is no backup."""
    path = os.path.join(backup_dir, METADATA_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def _write_atomic(path, text):
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)


class RunBackup(keras.callbacks.BackupAndRestore):
    """keras.callbacks.BackupAndRestore that resumes exactly where the run stopped.

    Keras' callback restores the weights of a mid-epoch backup but restarts that epoch from its first batch. This one
    saves every `save_freq` batches and at each epoch end, recording the completed epochs, the batches done in the
    current epoch, the optimizer step and the dropout seed states; fit.py reads that point (read_backup_state) and
    feeds the batches from there on, so an interrupted run ends with the weights of an uninterrupted one.
    Writes are atomic (weights file first, then the metadata that names it), so a kill at any moment leaves a
    loadable backup. `batch_offset`: batches of the current epoch done before this fit call (a resumed partial
    epoch). `write`: False on non-chief workers (they only restore).
    """

    def __init__(self, backup_dir, save_freq=None, write=True):
        super().__init__(backup_dir, save_freq=save_freq or "epoch", delete_checkpoint=False)
        self.write = write
        self.batch_offset = 0
        self.restore = True

    def on_train_begin(self, logs=None):
        if not self.restore:
            return
        state = read_backup_state(self.backup_dir)
        if state is None:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, state["weights"]))
        variables = _seed_states(self.model)
        for path, value in state.get("seed_states", {}).items():
            if path in variables:
                variables[path].assign(np.asarray(value, variables[path].dtype))
        self._current_epoch = state["epoch"]

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._last_batch_seen = batch
        if self.save_freq != "epoch" and (self.batch_offset + batch + 1) % self.save_freq == 0:
            self._save(self._current_epoch, self.batch_offset + batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        self._save(epoch + 1, 0)
        self.batch_offset = 0

    def on_train_end(self, logs=None):
        pass

    def _save(self, epoch, batch):
        if not self.write:
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        step = int(self.model.optimizer.iterations.numpy())
        weights = f"step-{step:09d}.weights.h5"
        temporary = os.path.join(self.backup_dir, f"tmp-{weights}")
        self.model.save_weights(temporary, overwrite=True)
        os.replace(temporary, os.path.join(self.backup_dir, weights))
        states = {path: np.asarray(v).tolist() for path, v in _seed_states(self.model).items()}
        metadata = {"epoch": epoch, "batch": batch, "step": step, "weights": weights, "seed_states": states}
        _write_atomic(os.path.join(self.backup_dir, METADATA_FILE), json.dumps(metadata))
        for name in os.listdir(self.backup_dir):
            if name.endswith(".weights.h5") and name != weights:
                os.remove(os.path.join(self.backup_dir, name))


class ImageSummaries(keras.callbacks.Callback):
    """Every `every` epochs, write TensorBoard images of a fixed batch: the RAW input (bilinearly demosaicked for
    viewing), the ISP output ("image" of `predictor`, the full model) and the clean target, clipped to [0, 1].
    `features`: NumPy features with "raw", "alpha", "sigma" and "clean"; `input_names`: what the model takes."""

    def __init__(
        self, log_dir, features, input_names, predictor, every=1, pattern=mosaic.RELEASE_PATTERN, max_outputs=4
    ):
        super().__init__()
        self.predictor = predictor
        self.log_dir = log_dir
        self.features = features
        self.input_names = tuple(input_names)
        self.every = every
        self.pattern = pattern
        self.max_outputs = max_outputs
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        inputs = {name: self.features[name] for name in self.input_names if name in self.features}
        outputs = self.predictor(inputs, training=False)
        images = {
            "raw_demosaicked": mosaic.demosaic_bilinear(tf.constant(self.features["raw"]), self.pattern),
            "clean": self.features["clean"],
        }
        if "image" in outputs:
            images["isp_output"] = outputs["image"]
        with self._writer.as_default(step=epoch + 1):
            for name, value in images.items():
                tf.summary.image(
                    name, tf.clip_by_value(tf.cast(value, tf.float32), 0.0, 1.0), max_outputs=self.max_outputs
                )
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _require_tensorboard():
    try:
        import tensorboard  # noqa: F401  (tf.summary writes nothing without it)
    except ImportError:
        from dirtypixels_tf.training.config import ConfigError

        raise ConfigError(
            "checkpoint.tensorboard / checkpoint.image_summaries_every: the tensorboard package is not installed "
            "(pip install tensorboard), or set checkpoint.tensorboard: false and checkpoint.image_summaries_every: 0"
        ) from None


def build_callbacks(config, run_dir, summary_features, input_names, predictor, chief=True):
    """The callbacks of a run: [RunBackup, checkpoints, TerminateOnNaN, CSV log, TensorBoard, image summaries] (the
    files only on the chief). Returns (callbacks, backup)."""
    every = config.checkpoint.every_steps
    if chief and (config.checkpoint.tensorboard or config.checkpoint.image_summaries_every):
        _require_tensorboard()
    backup = RunBackup(os.path.join(run_dir, BACKUP_DIR), save_freq=every, write=chief)
    callbacks = [backup, keras.callbacks.TerminateOnNaN()]
    if not chief:
        return callbacks, backup
    checkpoints = os.path.join(run_dir, "checkpoints")
    os.makedirs(checkpoints, exist_ok=True)
    callbacks.append(
        keras.callbacks.ModelCheckpoint(
            os.path.join(checkpoints, "epoch-{epoch:03d}.weights.h5"), save_weights_only=True
        )
    )
    if every:
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                os.path.join(checkpoints, "latest.weights.h5"), save_weights_only=True, save_freq=every
            )
        )
    callbacks.append(keras.callbacks.CSVLogger(os.path.join(run_dir, "training_log.csv"), append=True))
    if config.checkpoint.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "logs"), update_freq="epoch"))
    if config.checkpoint.image_summaries_every and summary_features is not None:
        callbacks.append(
            ImageSummaries(
                os.path.join(run_dir, "logs", "images"),
                summary_features,
                input_names,
                predictor,
                config.checkpoint.image_summaries_every,
                make_sensor(config).pattern,
            )
        )
    return callbacks, backup
