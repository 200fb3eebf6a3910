"""The relations between a config's settings, checked section by section (ConfigError names the key), and the
stage-1 config of `pretrain`."""

from dirtypixels_tf.catalog import LIGHT_PROFILES, check_sensor_spec
from dirtypixels_tf.training.config.derived import frames_pattern, model_spec
from dirtypixels_tf.training.config.schema import (
    MISSING,
    MISSING_FIELDS,
    ConfigError,
    ExperimentConfig,
    ModelConfig,
    OptimizerConfig,
    from_plain,
    merge,
    to_dict,
)


def from_dict(data):
    """An ExperimentConfig from plain data (strict keys and types), validated."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of sections; received {type(data).__name__}")
    config = from_plain(ExperimentConfig, data)
    validate(config)
    return config


def _require(condition, message):
    if not condition:
        raise ConfigError(message)


def _positive(value, path, allow_zero=False):
    if value is not None:
        _require(
            value > 0 or (allow_zero and value == 0),
            f"{path}: must be {'>= 0' if allow_zero else '> 0'}, received {value!r}",
        )


def validate(config):
    """Check the relations between settings, section by section; raises ConfigError naming the key. Returns the
    config."""
    _validate_model(config)
    spec = model_spec(config)
    _validate_data(config)
    _validate_optimizer(config)
    _validate_loss(config, spec)
    _validate_run(config, spec)
    return config


def _validate_model(config):
    """The model section: a preset or an ISP and/or a head, and their sizes."""
    from dirtypixels_tf.models import heads, isp, presets, segmentation

    model = config.model
    if model.preset is not None:
        _require(
            model.preset in presets.PRESETS,
            f"model.preset: expected one of {', '.join(presets.PRESETS)}, received {model.preset!r}",
        )
        defaults = ModelConfig()
        for name in ("isp", "isp_settings", "head", "head_width", "image_size", "freeze", "task"):
            _require(
                getattr(model, name) == getattr(defaults, name),
                f"model.{name}: set by model.preset {model.preset!r}; leave it unset or drop the preset",
            )
    else:
        _require(model.isp is not None or model.head is not None, "model: set model.preset, model.isp or model.head")
        _require(model.image_size is not None, "model.image_size: required without model.preset")
        _require(
            model.image_size % 2 == 0 and model.image_size > 0,
            f"model.image_size: must be even and > 0 (whole Bayer blocks), received {model.image_size!r}",
        )
        if model.isp is not None:
            _require(
                model.isp in isp.ISP_CLASSES,
                f"model.isp: expected one of {', '.join(isp.ISP_CLASSES)} or null, received {model.isp!r}",
            )
        else:
            _require(not model.isp_settings, "model.isp_settings: set without an ISP (model.isp is null)")
        if model.head is not None and model.task == segmentation.TASK:
            _require(
                model.head in segmentation.dense_head_names(),
                f"model.head: unknown dense head {model.head!r} for task 'segmentation' (see models/segmentation.py)",
            )
        elif model.head is not None:
            _require(model.head in heads.head_names(), f"model.head: unknown head {model.head!r} (see models/heads.py)")
        else:
            _require(model.head_width == 1.0, "model.head_width: set without a head (model.head is null)")
        _require(
            model.freeze is None or (model.isp is not None and model.head is not None),
            "model.freeze: only for a model with an ISP and a head",
        )
    _positive(model.num_classes, "model.num_classes")
    _positive(model.head_width, "model.head_width")


def _validate_data(config):
    """The data section: sources and their paths, counts, light profile, sensor, augmentation, PSF."""
    from dirtypixels_tf.physics import optics

    data = config.data
    if data.source in ("folder", "tfrecords", "voc"):
        _require(data.train_path is not None, f"data.train_path: required for source {data.source!r}")
    else:
        _require(
            data.train_path is None and data.eval_path is None,
            "data.train_path / data.eval_path: only for sources 'folder', 'tfrecords' and 'voc'",
        )
    if data.source == "tfrecords":
        _require(
            data.train_examples is not None,
            "data.train_examples: required for tfrecords (the dataset size sets the steps per epoch)",
        )
    _require(data.source == "tfrecords" or data.label_offset == 0, "data.label_offset: only for source 'tfrecords'")
    has_eval = data.source in ("fashion-mnist", "fashion-mnist-composite") or data.eval_path is not None
    _require(
        has_eval or data.validation_steps is None, "data.validation_steps: needs an evaluation split (data.eval_path)"
    )
    for name in ("train_examples", "eval_examples", "batch_size", "epochs", "steps_per_epoch", "validation_steps"):
        _positive(getattr(data, name), f"data.{name}")
    _positive(data.shuffle_buffer, "data.shuffle_buffer", allow_zero=True)
    if isinstance(data.profile, str):
        _require(
            data.profile in LIGHT_PROFILES,
            f"data.profile: expected one of {', '.join(LIGHT_PROFILES)} or [low, high], received {data.profile!r}",
        )
    else:
        _require(
            len(data.profile) == 2 and 0 < data.profile[0] <= data.profile[1],
            f"data.profile: [low, high] light levels need 0 < low <= high, received {data.profile!r}",
        )
    try:
        check_sensor_spec(data.sensor)
    except ValueError as error:
        raise ConfigError(f"data.{error}") from None
    _require(
        len(data.crop_area) == 2 and 0 < data.crop_area[0] <= data.crop_area[1] <= 1,
        f"data.crop_area: expected [low, high] with 0 < low <= high <= 1, received {data.crop_area!r}",
    )
    _require(
        0 < data.central_fraction <= 1, f"data.central_fraction: must be in (0, 1], received {data.central_fraction!r}"
    )
    try:
        optics.check_psf_spec(data.psf)
    except ValueError as error:
        raise ConfigError(f"data.psf: {error}") from None


def _validate_optimizer(config):
    """The optimizer and its schedule: no setting the chosen ones do not read."""
    opt, schedule = config.optimizer, config.schedule
    rmsprop_only = {"rho": opt.rho, "tf1_rmsprop_init": opt.tf1_rmsprop_init}
    readers = {
        "rho": ("rmsprop",),
        "tf1_rmsprop_init": ("rmsprop",),
        "momentum": ("rmsprop", "sgd"),
        "epsilon": ("rmsprop", "adam"),
    }
    for name, value in {**rmsprop_only, "momentum": opt.momentum, "epsilon": opt.epsilon}.items():
        _require(
            value is None or opt.name in readers[name],
            f"optimizer.{name}: not read by optimizer {opt.name!r} (only by {', '.join(readers[name])}); remove it",
        )
    _positive(opt.learning_rate, "optimizer.learning_rate")
    _positive(opt.epsilon, "optimizer.epsilon")
    _positive(opt.weight_decay, "optimizer.weight_decay", allow_zero=True)
    for name in ("rho", "momentum"):
        value = getattr(opt, name)
        _require(value is None or 0 <= value < 1, f"optimizer.{name}: must be in [0, 1), received {value!r}")
    _require(0 < opt.ema_momentum < 1, f"optimizer.ema_momentum: must be in (0, 1), received {opt.ema_momentum!r}")
    _require(
        opt.ema or opt.ema_momentum == OptimizerConfig().ema_momentum,
        "optimizer.ema_momentum: set while optimizer.ema is false",
    )

    if schedule.kind == "exponential":
        _require(
            schedule.decay_rate is not None and 0 < schedule.decay_rate <= 1,
            f"schedule.decay_rate: exponential decay needs a rate in (0, 1], received {schedule.decay_rate!r}",
        )
        _require(
            schedule.decay_epochs is not None and schedule.decay_epochs > 0,
            f"schedule.decay_epochs: exponential decay needs decay_epochs > 0, received {schedule.decay_epochs!r}",
        )
    else:
        for name in ("decay_rate", "decay_epochs", "staircase"):
            _require(getattr(schedule, name) is None, f"schedule.{name}: not read by a constant schedule; remove it")


def _validate_loss(config, spec):
    """The objective: the outputs it reads, its weight and label smoothing, the trainer it goes with."""
    from dirtypixels_tf.training import losses

    loss = config.loss
    outputs = spec.outputs(loss.kind)
    needs = set(losses.loss_outputs(loss.kind, spec.task))
    _require(
        needs <= outputs,
        f"loss.kind: {loss.kind!r} needs model outputs {sorted(needs)}; this model has {sorted(outputs)}",
    )
    if loss.kind in ("liu", "nidf"):
        _require(
            loss.weight is not None and loss.weight >= 0,
            f"loss.weight: {loss.kind!r} needs weight >= 0 (Liu et al.: 0.25 classifying, 0.5 segmenting; NIDF: 0.5), "
            f"received {loss.weight!r}",
        )
    else:
        _require(loss.weight is None, f"loss.weight: not read by loss {loss.kind!r}; remove it")
    _require(
        loss.image_loss is None or loss.kind == "liu",
        f"loss.image_loss: read by loss 'liu' only, not by {loss.kind!r}; remove it",
    )
    _require(
        0 <= loss.label_smoothing < 1, f"loss.label_smoothing: must be in [0, 1), received {loss.label_smoothing!r}"
    )
    _require(
        loss.label_smoothing == 0 or (loss.kind in ("classification", "liu") and spec.task == "classification"),
        f"loss.label_smoothing: not read by loss {loss.kind!r} on a {spec.task} model",
    )
    _require(
        (loss.kind == "psnr") == (config.trainer == "lbfgs"),
        "loss.kind: 'psnr' goes with trainer 'lbfgs' and trainer 'lbfgs' with loss 'psnr'",
    )
    if config.trainer == "lbfgs":
        _require(config.distribution.strategy == "default", "distribution.strategy: trainer 'lbfgs' runs on one device")
        for name in ("iterations", "examples", "chunk_size"):
            _positive(getattr(config.lbfgs, name), f"lbfgs.{name}")


def _validate_run(config, spec):
    """The Bayer phase, stage weights, distribution, checkpoints, seed, comparisons and the stage-1 settings."""
    from dirtypixels_tf.models import isp
    from dirtypixels_tf.physics import mosaic

    loss = config.loss
    if spec.isp is not None:
        isp_pattern = str(spec.isp_settings.get("pattern", mosaic.RELEASE_PATTERN)).upper()
        frames = frames_pattern(config)
        _require(
            isp_pattern == frames,
            f"data.pattern: the frames are {frames} mosaics but the ISP reads {isp_pattern} "
            f"(model.isp_settings.pattern or the preset's); give them one Bayer phase",
        )
    _require(config.stages.isp_weights is None or spec.isp is not None, "stages.isp_weights: this model has no ISP")
    _require(config.stages.head_weights is None or spec.head is not None, "stages.head_weights: this model has no head")
    dist = config.distribution
    _require(
        dist.sync_batch_norm or dist.strategy != "multi_worker",
        "distribution.sync_batch_norm: must be true for strategy 'multi_worker' (with per-worker batch statistics each "
        "worker would end with its own batch-norm moving averages)",
    )
    _require(not dist.devices or dist.strategy == "mirrored", "distribution.devices: only for strategy 'mirrored'")
    _require(
        dist.logical_cpus is None or dist.strategy == "mirrored",
        "distribution.logical_cpus: only for strategy 'mirrored'",
    )
    _require(not (dist.devices and dist.logical_cpus), "distribution.devices / logical_cpus: give one of them")
    _positive(dist.logical_cpus, "distribution.logical_cpus")
    _positive(config.checkpoint.every_steps, "checkpoint.every_steps")
    _positive(config.checkpoint.image_summaries_every, "checkpoint.image_summaries_every", allow_zero=True)
    _positive(config.seed, "seed", allow_zero=True)
    _positive(config.precise_bn_batches, "precise_bn_batches", allow_zero=True)
    for name in config.compare_isps:
        _require(
            name in isp.ISP_CLASSES,
            f"compare_isps: expected ISP names ({', '.join(isp.ISP_CLASSES)}), received {name!r}",
        )
    _require(
        not config.compare_isps or (spec.head is not None and loss.kind in ("classification", "segmentation", "liu")),
        "compare_isps: only for models with a head trained with loss 'classification', 'segmentation' or 'liu'",
    )
    if config.pretrain:
        _require(spec.isp is not None, "pretrain: this model has no ISP to pretrain")
        _require(
            config.stages.isp_weights is None,
            "stages.isp_weights: set together with pretrain (stage 1 provides the ISP weights); give one of them",
        )
        pretrain_config(config)
    if config.head_pretrain:
        _require(
            spec.isp is not None and spec.head is not None, "head_pretrain: only for a model with an ISP and a head"
        )
        _require(
            config.stages.head_weights is None,
            "stages.head_weights: set together with head_pretrain (it provides the head weights); give one of them",
        )
        head_pretrain_config(config)


PRETRAIN_DIR = "stage1"
HEAD_PRETRAIN_DIR = "head"
_NOT_IN_PRETRAIN = ("pretrain", "head_pretrain", "compare_isps", "stages")


def pretrain_config(config):
    """The stage-1 ExperimentConfig of `config.pretrain` (see ExperimentConfig), validated; ConfigError messages
    start with "pretrain.". None when config.pretrain is empty."""
    if not config.pretrain:
        return None
    for key in _NOT_IN_PRETRAIN:
        _require(key not in config.pretrain, f"pretrain.{key}: not allowed in the stage-1 settings (stage 1 has none)")
    base = to_dict(config)
    for key in _NOT_IN_PRETRAIN:
        base.pop(key)
    if "loss" in config.pretrain:  # a loss is one choice: its settings are not merged with stage 2's
        base.pop("loss")
    try:
        stage1 = from_plain(ExperimentConfig, merge(base, config.pretrain))
        validate(stage1)
    except ConfigError as error:
        raise ConfigError(f"pretrain.{error}") from None
    _require(
        model_spec(stage1).isp == model_spec(config).isp,
        f"pretrain.model: stage 1 must train this model's ISP {model_spec(config).isp!r}; "
        f"received {model_spec(stage1).isp!r}",
    )
    return stage1


def head_pretrain_config(config):
    """The head's stage-1 ExperimentConfig of `config.head_pretrain` (see ExperimentConfig): the head alone (model:
    no ISP; the head, width, size, classes and task of this model) on the clean images with the task's loss, then
    the settings of head_pretrain merged over it, validated; ConfigError messages start with "head_pretrain.". None
    when config.head_pretrain is empty."""
    if not config.head_pretrain:
        return None
    for key in _NOT_IN_PRETRAIN + ("model",):
        _require(key not in config.head_pretrain, f"head_pretrain.{key}: not allowed in the head's stage-1 settings")
    spec = model_spec(config)
    base = to_dict(config)
    for key in _NOT_IN_PRETRAIN:
        base.pop(key)
    base["model"] = {
        "head": spec.head,
        "head_width": spec.head_width,
        "image_size": spec.image_size,
        "num_classes": spec.num_classes,
        "task": spec.task,
    }
    base["loss"] = {"kind": spec.task}
    if "loss" in config.head_pretrain:
        base.pop("loss")
    try:
        stage = from_plain(ExperimentConfig, merge(base, config.head_pretrain))
        validate(stage)
    except ConfigError as error:
        raise ConfigError(f"head_pretrain.{error}") from None
    return stage


def require_complete(config):
    """Refuse a config that still has a required user setting ("???"), naming the keys."""
    missing = []
    for dotted in MISSING_FIELDS:
        section, name = dotted.split(".")
        if getattr(getattr(config, section), name) == MISSING:
            missing.append(dotted)
    if missing:
        raise ConfigError(
            f"{missing[0]}: a required user setting is not given ({', '.join(missing)}); "
            f"set it in the config or with --set {missing[0]}=PATH"
        )
    return config
