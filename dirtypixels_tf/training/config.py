"""Experiment configs as data: typed nested dataclasses, loaded from YAML with strict keys, written back as params.yaml.

Conventions:
- A YAML file maps onto `ExperimentConfig`: every key must be a field (an unknown key is refused with its path,
  e.g. `optimizer.learnig_rate: unknown key; valid keys: ...`) and every value must have the field's type
  (`optimizer.learning_rate: expected float, received 'abc'`). Integers are accepted for floats; nothing else is
  converted. Missing keys take the defaults below.
- `base: other.yaml` (a path relative to the file) loads that file first and merges this one over it, key by key
  (nested sections merge; lists and scalars replace). Overrides `a.b=VALUE` (the CLI's --set) are applied last;
  VALUE is read as YAML (`2`, `0.5`, `true`, `null`, `[1, 2]`, `adam`).
- `save_params(config, run_dir)` writes `run_dir/params.yaml`, which `load_config` reads back to an equal config
  (the `base:` chain is resolved; the file is self-contained).
- Numbers derived from the batch size and the dataset size (steps per epoch, total steps, decay steps) are computed
  in one place: `derive_steps`.
- A path that only the user can give (the ImageNet TFRecords, a stage-1 run directory) is written "???" in the
  named configs: such a config loads, validates and builds its model, and `require_complete` (called before
  training) refuses it, naming the key to set with --set.
- Optimizer and schedule settings that only some choices read default to None ("that choice's default"); setting
  one that the chosen optimizer or schedule does not read is an error (no dead settings).
"""

import copy
import dataclasses
import math
import os
import tempfile
import types
import typing
from typing import Literal

import yaml

from dirtypixels_tf.catalog import (
    DEFAULT_PRESET,
    DEFAULT_PROFILE,
    LIGHT_PROFILES,
    NO_PSF,
    PATTERNS,
    check_sensor_spec,
)

PARAMS_FILE = "params.yaml"
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
DEFAULT_CONFIG_NAME = "default"
MISSING = "???"  # a required user setting (a path only the user knows): loads and validates, refused at run time
MISSING_FIELDS = ("data.train_path", "data.eval_path", "stages.isp_weights", "stages.head_weights")


class ConfigError(ValueError):
    """A config value or key that is refused; the message starts with the key's path."""


@dataclasses.dataclass
class ModelConfig:
    """The model: a named preset (models/presets.py), or an ISP and a head by name.

    preset: a preset name; it fixes isp, isp_settings, head, head_width, image_size and freeze (leave those unset);
        num_classes may still override the preset's.
    isp: an ISP name of models/isp.ISP_CLASSES, or None for the head alone trained on the clean images (the head's
        own stage-1 training; the data then provide the noise-free image instead of a RAW frame).
    isp_settings: keyword arguments of the ISP class (e.g. {iterations: 1}).
    head: a head name (models/heads.head_names()), or None for the ISP alone (reconstruction training).
    head_width: MobileNet width multiplier; image_size: side of the square RAW frames (even);
    num_classes: logits of the head (1001 = background + 1000, the release's layout); freeze: None, "isp" or "head".
    """

    preset: str | None = None
    isp: str | None = None
    isp_settings: dict = dataclasses.field(default_factory=dict)
    head: str | None = None
    head_width: float = 1.0
    image_size: int | None = None
    num_classes: int | None = None
    freeze: Literal["isp", "head"] | None = None


@dataclasses.dataclass
class DataConfig:
    """Training and evaluation data, the sensor that simulates the RAW frames, and the training length.

    source: "fashion-mnist" (Debian's IDX files; train split for training, test split for evaluation), "folder"
        (one subfolder per class) or "tfrecords" (ImageNet-style records); train_path / eval_path for the latter two.
    train_examples / eval_examples: use the first N examples of each split (None = all). The dataset size, which sets
        the steps per epoch, is min(N, available); for tfrecords the count cannot be read cheaply, so train_examples
        is required (1,281,167 for ImageNet's training set).
    profile: a light-level profile name (3lux, 6lux, 2to20lux, 2to200lux) or [low, high] light levels (lux / 2000),
        drawn log-uniformly per image; sensor: a noise preset (catalog.SENSOR_PRESETS) or a calibrated sensor.yaml path;
        pattern: the Bayer phase (null: the sensor's: a sensor.yaml's, else the release's BGGR);
    psf: "none", "center", "offaxis", "periphery" (Diamond et al. 2017's PSFs), "motion-L" (a random-walk PSF of side 2L + 1
        drawn with the experiment's seed, NIDF's blur) or a .npy/.npz/.mat file; one PSF for the whole dataset.
    batch_size: the GLOBAL batch, split evenly between the replicas; epochs; steps_per_epoch: None = dataset size //
        batch_size; validation_steps: batches of the evaluation split run at the end of each epoch (None = none).
    crop_area, flip: training augmentation (random crop area fraction, horizontal flip); central_fraction: the
        evaluation centre crop (data/preprocessing.py). shuffle_buffer: examples (after simulation).
    label_offset: subtracted from TFRecord labels (1 for slim's 1001-class records with a 1000-class head).
    unprocess: map the clean sRGB images to linear camera RAW before the mosaic (Brooks et al. 2019's randomized
        inverse camera pipeline, physics/unprocess.py); false (default) keeps the release's mask-only path.
    simulate_on_device: the training stream carries clean images and per-example seeds, and the sensor runs inside
        the training step on each replica (training/data.py), giving the same frames bit for bit; false (default):
        tf.data simulates them on the host.
    """

    source: Literal["fashion-mnist", "folder", "tfrecords"] = "fashion-mnist"
    train_path: str | None = None
    eval_path: str | None = None
    train_examples: int | None = None
    eval_examples: int | None = None
    label_offset: int = 0
    profile: str | list[float] = DEFAULT_PROFILE
    sensor: str = DEFAULT_PRESET
    pattern: Literal[PATTERNS] | None = None
    psf: str = NO_PSF
    batch_size: int = 32
    epochs: int = 1
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    shuffle_buffer: int = 1024
    crop_area: list[float] = dataclasses.field(default_factory=lambda: [0.1, 1.0])
    flip: bool = True
    central_fraction: float = 0.875
    unprocess: bool = False
    simulate_on_device: bool = False


@dataclasses.dataclass
class OptimizerConfig:
    """The optimizer. rho, momentum, epsilon and tf1_rmsprop_init default to None = the Keras default of the chosen
    optimizer (tf1_rmsprop_init: False); each may only be set for an optimizer that reads it: rho and
    tf1_rmsprop_init for rmsprop, momentum for rmsprop and sgd, epsilon for rmsprop and adam.

    tf1_rmsprop_init: start RMSProp's mean-square accumulator at ones, as TF1 did (Keras starts at zero).
    weight_decay: L2 penalty 0.5 * weight_decay * ||w||^2 on conv, transposed-conv and dense kernels, added to the
        loss as slim's l2_regularizer does (optimizers.apply_weight_decay).
    ema: keep exponential moving averages of the trainable weights (decay ema_momentum); they are used for the
        per-epoch validation and folded into the saved model.keras at the end.
    """

    name: Literal["rmsprop", "adam", "sgd"] = "rmsprop"
    learning_rate: float = 0.001
    rho: float | None = None
    momentum: float | None = None
    epsilon: float | None = None
    tf1_rmsprop_init: bool | None = None
    weight_decay: float = 0.0
    ema: bool = False
    ema_momentum: float = 0.9999


@dataclasses.dataclass
class ScheduleConfig:
    """Learning rate schedule. "constant", or "exponential": lr * decay_rate ** (step / decay_steps), with
    decay_steps = decay_epochs * steps per epoch (derive_steps) and the exponent floored when staircase is true."""

    kind: Literal["constant", "exponential"] = "constant"
    decay_rate: float | None = None
    decay_epochs: float | None = None
    staircase: bool | None = None


@dataclasses.dataclass
class LossConfig:
    """The training objective (losses.py).

    kind: "classification" (sparse cross entropy on the logits), "l1" / "mse" (the ISP's image against the clean
        image), "liu" (Liu et al.: MSE(image, clean) + weight * cross entropy), "nidf_pretrain" (NIDF Eq. 3 + Eq. 4:
        the denoiser against the blurred clean image B and the deblurrer, fed B, against the sharp image I, trained
        separately), "nidf" (NIDF Eq. 5: ||B - B1||^2 + weight * ||I - I1||^2) or "psnr" (minus the mean PSNR,
        trainer "lbfgs" only).
    label_smoothing: for the cross-entropy terms; weight: lambda of "liu" (0.25) and the deblurred term of "nidf"
        (0.5); unset for the other kinds. image_loss: the image term of "liu", "mse" (Liu et al., when unset) or "l1"
        (mean absolute error, as the Anscombe network's stage 1); unset for the other kinds.
    """

    kind: Literal["classification", "l1", "mse", "liu", "nidf_pretrain", "nidf", "psnr"] = "classification"
    label_smoothing: float = 0.0
    weight: float | None = None
    image_loss: Literal["mse", "l1"] | None = None


@dataclasses.dataclass
class StagesConfig:
    """Stage-1 weights loaded into this model by component before training.

    isp_weights: a stage-1 run directory (its model.keras) or a .keras file; its layer "isp" is copied into this
        model's "isp" layer (for NIDF pretraining runs, its "denoiser" and "deblurrer" layers).
    head_weights: a run directory or .keras file whose layer named after the head is copied into this model's head,
        or a .weights.h5 file of the head model alone (heads.build_head's `weights`).
    """

    isp_weights: str | None = None
    head_weights: str | None = None


@dataclasses.dataclass
class LbfgsConfig:
    """L-BFGS pretraining (trainer "lbfgs", Diamond et al. 2017 Sec. 6): `iterations` of scipy's L-BFGS-B on minus the mean PSNR
    of the first `examples` training examples (simulated once, fixed), evaluated in chunks of `chunk_size`."""

    iterations: int = 400
    examples: int = 2000
    chunk_size: int = 50


@dataclasses.dataclass
class DistributionConfig:
    """tf.distribute (strategy.py): "default" (one device), "mirrored" (all local GPUs, the listed `devices`, or the
    `logical_cpus` CPU devices this process splits its CPU into) or "multi_worker" (MultiWorkerMirroredStrategy
    from the TF_CONFIG environment variable). sync_batch_norm: batch statistics over the global batch (required
    for multi_worker, so every worker updates the batch-norm moving averages alike)."""

    strategy: Literal["default", "mirrored", "multi_worker"] = "default"
    devices: list[str] = dataclasses.field(default_factory=list)
    logical_cpus: int | None = None
    sync_batch_norm: bool = False


@dataclasses.dataclass
class CheckpointConfig:
    """Checkpoints and logs under the run directory (callbacks.py).

    every_steps: save the backup (resume point) and checkpoints/latest.weights.h5 every N steps, besides each epoch
        end (None = epoch ends only). tensorboard: scalars in logs/; image_summaries_every: epochs between image
        summaries of RAW input, ISP output and clean target (0 = none).
    """

    every_steps: int | None = 1000
    tensorboard: bool = True
    image_summaries_every: int = 1


@dataclasses.dataclass
class ExperimentConfig:
    """One experiment. trainer: "fit" (Keras model.fit; a custom loop under multi_worker) or "lbfgs".
    pretrain: the papers' stage 1, run first in the same command (empty: none). Its settings are merged over this
    config's own (nested sections merge, lists and scalars replace, as in `base:`; a `loss` section replaces
    this config's whole loss) to give the stage-1 config
    (`pretrain_config`), trained into RUN_DIR/stage1; its model.keras then provides this model's ISP weights, as
    stages.isp_weights would. E.g. {loss: {kind: l1}, data: {profile: 2to200lux}}: the ISP trained alone for
    reconstruction over a range of light levels, then the joint model fine-tuned from it. Keys pretrain,
    compare_isps and stages are refused inside it (stage 1 has none of its own).
    compare_isps: also train the same head behind each of these ISPs with the same data, optimizer and budget as
    this (stage-2) run, and report their test accuracy next to this model's (under RUN_DIR/compare/<isp>/). They
    train on the classification loss (with this run's label smoothing): with loss "liu" the image term has nothing
    to fit in a fixed ISP.
    mixed_precision: a Keras dtype policy; "float64" computes and keeps weights in double precision (slow; layers
    that pin float32, as the Anscombe transform, keep it): for checking numerics, e.g. a strategy against one
    device, where float32 round-off amplified through a deep network would hide a small error.
    deterministic: enable TensorFlow's op determinism (bit-identical reruns, slower). precise_bn_batches: after
    training, re-estimate every batch-norm layer's statistics over this many training batches with the final
    weights (0: keep Keras' moving averages, which lag the weights on short runs)."""

    description: str = ""
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    stages: StagesConfig = dataclasses.field(default_factory=StagesConfig)
    trainer: Literal["fit", "lbfgs"] = "fit"
    lbfgs: LbfgsConfig = dataclasses.field(default_factory=LbfgsConfig)
    distribution: DistributionConfig = dataclasses.field(default_factory=DistributionConfig)
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    mixed_precision: Literal["float32", "float64", "mixed_float16", "mixed_bfloat16"] = "float32"
    seed: int = 0
    deterministic: bool = False
    compare_isps: list[str] = dataclasses.field(default_factory=list)
    precise_bn_batches: int = 0
    pretrain: dict = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------
# Typed conversion from plain data


def _type_name(kind):
    if kind is type(None):
        return "null"
    origin = typing.get_origin(kind)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(kind))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(k) for k in typing.get_args(kind))
    if origin is list:
        return f"list of {_type_name(typing.get_args(kind)[0])}"
    if dataclasses.is_dataclass(kind):
        return "a mapping"
    return kind.__name__


def _convert(value, kind, path):
    """`value` as type `kind`, or ConfigError naming `path`."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(kind):
            try:
                return _convert(value, option, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: expected {_type_name(kind)}, received {value!r}")
    if origin is Literal:
        if value in typing.get_args(kind) and isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected {_type_name(kind)}, received {value!r}")
    if kind is type(None):
        if value is None:
            return None
    elif dataclasses.is_dataclass(kind):
        if isinstance(value, dict):
            return _from_dict(kind, value, path)
    elif origin is list:
        if isinstance(value, (list, tuple)):
            (item,) = typing.get_args(kind)
            return [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is dict:
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return copy.deepcopy(value)
    elif isinstance(value, kind):
        return value
    raise ConfigError(f"{path}: expected {_type_name(kind)}, received {value!r}")


def _from_dict(cls, data, path=""):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in hints:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(f"{where}: unknown key; valid keys: {', '.join(names)}")
    values = {}
    for name in names:
        if name in data:
            values[name] = _convert(data[name], hints[name], f"{path}.{name}" if path else name)
    return cls(**values)


def to_dict(config):
    """Plain data (dicts, lists, scalars) of a config, in field order."""
    return dataclasses.asdict(config)


def from_dict(data):
    """An ExperimentConfig from plain data (strict keys and types), validated."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of sections; received {type(data).__name__}")
    config = _from_dict(ExperimentConfig, data)
    validate(config)
    return config


# ---------------------------------------------------------------------------------------------------------------
# YAML files, base chains and overrides


def _merge(base, override):
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "isp_settings":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_yaml(path, _chain=()):
    """The plain data of a YAML config file with its `base:` chain merged in."""
    path = os.path.abspath(os.fspath(path))
    if path in _chain:
        raise ConfigError(f"base: circular chain of config files: {' -> '.join(_chain + (path,))}")
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path!r}")
    with open(path, encoding="utf-8") as stream:
        try:
            data = yaml.safe_load(stream)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections; received {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"base: expected the path of another config file, received {base!r}")
    return _merge(read_yaml(os.path.join(os.path.dirname(path), base), _chain + (path,)), data)


def named_configs():
    """The names of the experiment configs that ship with the package (dirtypixels_tf/configs/NAME.yaml)."""
    return sorted(os.path.splitext(name)[0] for name in os.listdir(CONFIG_DIR) if name.endswith(".yaml"))


def resolve_config(name_or_path=None):
    """The path of a config: an existing YAML file, or the name of a bundled one (`release_joint_3lux`, with or
    without `.yaml`); None is the default experiment. Raises ConfigError naming the argument otherwise."""
    if name_or_path is None:
        name_or_path = DEFAULT_CONFIG_NAME
    if os.path.isfile(name_or_path):
        return os.path.abspath(name_or_path)
    if "/" not in name_or_path and os.sep not in name_or_path:
        name = name_or_path[: -len(".yaml")] if name_or_path.endswith(".yaml") else name_or_path
        bundled = os.path.join(CONFIG_DIR, name + ".yaml")
        if os.path.isfile(bundled):
            return bundled
    raise ConfigError(
        f"--config: no such file or bundled config {name_or_path!r}; bundled configs: {', '.join(named_configs())}"
    )


def apply_override(data, assignment):
    """Apply one `a.b.c=VALUE` override to plain config data (VALUE read as YAML); returns new data."""
    if not isinstance(assignment, str) or "=" not in assignment:
        raise ConfigError(f"an override must look like section.key=value; received {assignment!r}")
    key, text = assignment.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"an override must look like section.key=value; received {assignment!r}")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"{key}: the value {text!r} is not valid YAML ({error})") from None
    nested = value
    for part in reversed(parts):
        nested = {part: nested}
    return _merge(data, nested)


def load_config(path=None, overrides=()):
    """The ExperimentConfig of YAML file `path` (None = all defaults) with `overrides` ("a.b=VALUE") applied."""
    data = {} if path is None else read_yaml(path)
    for assignment in overrides:
        data = apply_override(data, assignment)
    return from_dict(data)


def save_params(config, run_dir):
    """Write `run_dir/params.yaml` (self-contained; load_config reads it back to an equal config), whole or not at
    all: through a temporary file and a rename, so a run killed while writing it still resumes. Returns the path."""
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, PARAMS_FILE)
    handle, partial = tempfile.mkstemp(prefix=".params-", suffix=".yaml", dir=run_dir)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            yaml.safe_dump(to_dict(config), stream, sort_keys=False, default_flow_style=None)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Validation


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
    from dirtypixels_tf.models import heads, isp, presets

    model = config.model
    if model.preset is not None:
        _require(
            model.preset in presets.PRESETS,
            f"model.preset: expected one of {', '.join(presets.PRESETS)}, received {model.preset!r}",
        )
        defaults = ModelConfig()
        for name in ("isp", "isp_settings", "head", "head_width", "image_size", "freeze"):
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
        if model.head is not None:
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
    if data.source in ("folder", "tfrecords"):
        _require(data.train_path is not None, f"data.train_path: required for source {data.source!r}")
    else:
        _require(
            data.train_path is None and data.eval_path is None,
            "data.train_path / data.eval_path: only for sources 'folder' and 'tfrecords'",
        )
    if data.source == "tfrecords":
        _require(
            data.train_examples is not None,
            "data.train_examples: required for tfrecords (the dataset size sets the steps per epoch)",
        )
    _require(data.source == "tfrecords" or data.label_offset == 0, "data.label_offset: only for source 'tfrecords'")
    has_eval = data.source == "fashion-mnist" or data.eval_path is not None
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
    needs = set(losses.LOSS_OUTPUTS[loss.kind])
    _require(
        needs <= outputs,
        f"loss.kind: {loss.kind!r} needs model outputs {sorted(needs)}; this model has {sorted(outputs)}",
    )
    if loss.kind in ("liu", "nidf"):
        _require(
            loss.weight is not None and loss.weight >= 0,
            f"loss.weight: {loss.kind!r} needs weight >= 0 (0.25 for Liu et al., 0.5 for NIDF), received {loss.weight!r}",
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
        loss.label_smoothing == 0 or loss.kind in ("classification", "liu"),
        f"loss.label_smoothing: not read by loss {loss.kind!r}",
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
        not config.compare_isps or (spec.head is not None and loss.kind in ("classification", "liu")),
        "compare_isps: only for classifiers trained with loss 'classification' or 'liu'",
    )
    if config.pretrain:
        _require(spec.isp is not None, "pretrain: this model has no ISP to pretrain")
        _require(
            config.stages.isp_weights is None,
            "stages.isp_weights: set together with pretrain (stage 1 provides the ISP weights); give one of them",
        )
        pretrain_config(config)


PRETRAIN_DIR = "stage1"
_NOT_IN_PRETRAIN = ("pretrain", "compare_isps", "stages")


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
        stage1 = _from_dict(ExperimentConfig, _merge(base, config.pretrain))
        validate(stage1)
    except ConfigError as error:
        raise ConfigError(f"pretrain.{error}") from None
    _require(
        model_spec(stage1).isp == model_spec(config).isp,
        f"pretrain.model: stage 1 must train this model's ISP {model_spec(config).isp!r}; "
        f"received {model_spec(stage1).isp!r}",
    )
    return stage1


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
    )


# ---------------------------------------------------------------------------------------------------------------
# Numbers derived from the batch size and the dataset size (the one place)


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
        _require(per_epoch >= 1, f"data.batch_size: {batch} is larger than the training set ({dataset_size} examples)")
    decay = None
    if config.schedule.kind == "exponential":
        decay = max(1, round(config.schedule.decay_epochs * per_epoch))
    return Steps(dataset_size, batch, per_epoch, per_epoch * config.data.epochs, decay)
