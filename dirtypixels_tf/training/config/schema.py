"""The experiment config's schema: typed nested dataclasses, and plain data (YAML's) mapped onto them.

Every key must be a field (an unknown key is refused with its path, e.g. `optimizer.learnig_rate: unknown key;
valid keys: ...`) and every value must have the field's type (`optimizer.learning_rate: expected float, received
'abc'`). Integers are accepted for floats; nothing else is converted. Missing keys take the defaults below.
"""

import copy
import dataclasses
import math
import os
import types
import typing
from typing import Literal

from dirtypixels_tf.catalog import (
    DEFAULT_PRESET,
    DEFAULT_PROFILE,
    NO_PSF,
    PATTERNS,
)

PARAMS_FILE = "params.yaml"
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")
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
    task: "classification" (a classifier head, output "logits") or "segmentation" (a dense head of
        models/segmentation.py, output "segmentation": per-pixel logits; the data give label maps); a preset fixes it.
    """

    preset: str | None = None
    isp: str | None = None
    isp_settings: dict = dataclasses.field(default_factory=dict)
    head: str | None = None
    head_width: float = 1.0
    image_size: int | None = None
    num_classes: int | None = None
    freeze: Literal["isp", "head"] | None = None
    task: Literal["classification", "segmentation"] = "classification"


@dataclasses.dataclass
class DataConfig:
    """Training and evaluation data, the sensor that simulates the RAW frames, and the training length.

    source: "fashion-mnist" (Debian's IDX files; train split for training, test split for evaluation), "folder"
        (one subfolder per class) or "tfrecords" (ImageNet-style records); train_path / eval_path for the latter two.
        Segmentation: "fashion-mnist-composite" (synthetic composites of Fashion-MNIST items, train and test splits)
        or "voc" (a Pascal VOC 2012 folder as train_path and eval_path: its train and val lists).
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

    source: Literal["fashion-mnist", "folder", "tfrecords", "fashion-mnist-composite", "voc"] = "fashion-mnist"
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

    kind: "classification" (sparse cross entropy on the logits), "segmentation" (per-pixel cross entropy, label 255
        ignored), "l1" / "mse" (the ISP's image against the clean image), "liu" (Liu et al.: MSE(image, clean) +
        weight * cross entropy of the model's task: 0.25 for classification, 0.5 for segmentation), "nidf_pretrain" (NIDF Eq. 3 + Eq. 4:
        the denoiser against the blurred clean image B and the deblurrer, fed B, against the sharp image I, trained
        separately), "nidf" (NIDF Eq. 5: ||B - B1||^2 + weight * ||I - I1||^2) or "psnr" (minus the mean PSNR,
        trainer "lbfgs" only).
    label_smoothing: for the cross-entropy terms; weight: lambda of "liu" (0.25) and the deblurred term of "nidf"
        (0.5); unset for the other kinds. image_loss: the image term of "liu", "mse" (Liu et al., when unset) or "l1"
        (mean absolute error, as the Anscombe network's stage 1); unset for the other kinds.
    """

    kind: Literal["classification", "segmentation", "l1", "mse", "liu", "nidf_pretrain", "nidf", "psnr"] = (
        "classification"
    )
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
    head_pretrain, compare_isps and stages are refused inside it (stage 1 has none of its own).
    head_pretrain: the head's stage 1, run first in the same command: the head alone on the clean images (the
    papers' "network trained on noise-free images"), its settings merged over this config's as for `pretrain` (the
    loss defaults to the task's: "classification" or "segmentation"), trained into RUN_DIR/head; its model.keras
    then provides this model's head weights, as stages.head_weights would (empty: none).
    compare_isps: also train the same head behind each of these ISPs with the same data, optimizer and budget as
    this (stage-2) run, and report their test accuracy next to this model's (under RUN_DIR/compare/<isp>/). They
    train on the classification loss (with this run's label smoothing): with loss "liu" the image term has nothing
    to fit in a fixed ISP.
    mixed_precision: a Keras dtype policy; "float64" computes and keeps weights in double precision (slow; layers
    that pin float32, as the Anscombe transform, keep it): for checking numerics, e.g. a strategy against one
    device, where float32 round-off amplified through a deep network would hide a small error.
    deterministic: enable TensorFlow's op determinism, for bit-identical reruns on GPUs (slower); on a CPU runs
    with one seed and config are bit-identical without it. precise_bn_batches: after training, re-estimate every
    batch-norm layer's statistics over this many training batches with the final weights (0: keep Keras' moving
    averages, which lag the weights on short runs)."""

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
    head_pretrain: dict = dataclasses.field(default_factory=dict)


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
            return from_plain(kind, value, path)
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


def from_plain(cls, data, path=""):
    """An instance of dataclass `cls` from plain data: strict keys and types (module docstring)."""
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


def merge(base, override):
    """`override` merged over `base` key by key: nested sections merge, lists and scalars replace."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "isp_settings":
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
