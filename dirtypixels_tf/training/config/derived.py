"""What a config resolves to: the frames' Bayer phase, the model's ModelSpec, and the numbers derived from the batch
size and the dataset size (steps per epoch, total steps, decay steps), each computed here only."""

import dataclasses

from dirtypixels_tf.training.config.schema import ConfigError


def frames_pattern(config):
    """The Bayer phase of the run's frames: data.pattern, else its sensor's (a sensor.yaml's, else BGGR)."""
    from dirtypixels_tf.physics.sensor_files import resolve_sensor

    return config.data.pattern or resolve_sensor(config.data.sensor).pattern


def model_spec(config):
    """The models.ModelSpec of `config.model`: its preset's (num_classes may override it) or the explicit fields."""
    from dirtypixels_tf.models import presets
    from dirtypixels_tf.models.spec import ModelSpec

    model = config.model
    if model.preset is not None:
        return presets.get_preset(model.preset).spec.with_num_classes(model.num_classes)
    isp_settings = dict(model.isp_settings)
    if model.isp is not None:
        isp_settings.setdefault("pattern", frames_pattern(config))  # the ISP reads the frames' Bayer phase
    return ModelSpec(
        model.image_size,
        model.isp,
        model.head,
        num_classes=model.num_classes or 1000,
        isp_settings=isp_settings,
        head_width=model.head_width,
        freeze=model.freeze,
        task=model.task,
    )


@dataclasses.dataclass(frozen=True)
class Steps:
    """steps_per_epoch = data.steps_per_epoch or dataset_size // global batch; total = epochs * steps_per_epoch;
    decay_steps = round(schedule.decay_epochs * steps_per_epoch) (None for a constant schedule)."""

    dataset_size: int
    global_batch_size: int
    steps_per_epoch: int
    total_steps: int
    decay_steps: int | None


def derive_steps(config, dataset_size):
    """The Steps of `config` for a training set of `dataset_size` examples."""
    batch = config.data.batch_size
    if config.data.steps_per_epoch is not None:
        per_epoch = config.data.steps_per_epoch
    else:
        per_epoch = dataset_size // batch
        if per_epoch < 1:
            raise ConfigError(f"data.batch_size: {batch} is larger than the training set ({dataset_size} examples)")
    decay = None
    if config.schedule.kind == "exponential":
        decay = max(1, round(config.schedule.decay_epochs * per_epoch))
    return Steps(dataset_size, batch, per_epoch, per_epoch * config.data.epochs, decay)
