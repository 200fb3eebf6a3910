"""Training: experiment configs, optimizers and schedules, losses, tf.distribute strategies, callbacks, the runner.

    from dirtypixels_tf.training import load_config, run_experiment
    results = run_experiment(load_config(resolve_config("default")), "runs/default")

See each module's docstring: config.py (the YAML schema), optimizers.py, losses.py, data.py, models.py,
strategy.py, callbacks.py (run directory layout), loop.py (multi-worker), lbfgs.py, fit.py (the runner).
"""

from dirtypixels_tf.training.config import (
    ConfigError,
    ExperimentConfig,
    derive_steps,
    from_dict,
    load_config,
    model_spec,
    save_params,
    to_dict,
    validate,
)
from dirtypixels_tf.training.fit import evaluate, run_experiment
from dirtypixels_tf.training.models import build_model, load_stage_weights
from dirtypixels_tf.training.optimizers import Tf1RMSprop, apply_weight_decay, build_optimizer, build_schedule
from dirtypixels_tf.training.strategy import make_strategy

__all__ = [
    "ConfigError",
    "ExperimentConfig",
    "Tf1RMSprop",
    "apply_weight_decay",
    "build_model",
    "build_optimizer",
    "build_schedule",
    "derive_steps",
    "evaluate",
    "from_dict",
    "load_config",
    "load_stage_weights",
    "make_strategy",
    "model_spec",
    "run_experiment",
    "save_params",
    "to_dict",
    "validate",
]
