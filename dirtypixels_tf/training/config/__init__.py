"""Experiment configs as data: typed nested dataclasses, loaded from YAML with strict keys, written back as params.yaml.

Modules: schema.py (the dataclasses and strict typed conversion), files.py (YAML, `base:` chains, overrides,
params.yaml), validation.py (relations between settings; the stage-1 config), derived.py (the ModelSpec, the
frames' Bayer phase, steps from the batch size). Import the names from here. No TensorFlow is imported.

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

from dirtypixels_tf.training.config.derived import Steps, derive_steps, frames_pattern, model_spec
from dirtypixels_tf.training.config.files import (
    apply_override,
    load_config,
    named_configs,
    read_yaml,
    resolve_config,
    save_params,
)
from dirtypixels_tf.training.config.schema import (
    CONFIG_DIR,
    DEFAULT_CONFIG_NAME,
    MISSING,
    MISSING_FIELDS,
    PARAMS_FILE,
    CheckpointConfig,
    ConfigError,
    DataConfig,
    DistributionConfig,
    ExperimentConfig,
    LbfgsConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    ScheduleConfig,
    StagesConfig,
    to_dict,
)
from dirtypixels_tf.training.config.validation import (
    HEAD_PRETRAIN_DIR,
    PRETRAIN_DIR,
    from_dict,
    head_pretrain_config,
    pretrain_config,
    require_complete,
    validate,
)

__all__ = [
    "CONFIG_DIR",
    "DEFAULT_CONFIG_NAME",
    "MISSING",
    "MISSING_FIELDS",
    "PARAMS_FILE",
    "HEAD_PRETRAIN_DIR",
    "PRETRAIN_DIR",
    "CheckpointConfig",
    "ConfigError",
    "DataConfig",
    "DistributionConfig",
    "ExperimentConfig",
    "LbfgsConfig",
    "LossConfig",
    "ModelConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "StagesConfig",
    "Steps",
    "apply_override",
    "derive_steps",
    "frames_pattern",
    "from_dict",
    "head_pretrain_config",
    "load_config",
    "model_spec",
    "named_configs",
    "pretrain_config",
    "read_yaml",
    "require_complete",
    "resolve_config",
    "save_params",
    "to_dict",
    "validate",
]
