"""Training: experiment configs (bundled in dirtypixels_tf/configs), optimizers and schedules, losses,
tf.distribute strategies, callbacks and the runner.

    from dirtypixels_tf.training import load_config, resolve_config, run_experiment
    results = run_experiment(load_config(resolve_config("default")), "runs/default")

See each module's docstring: config/ (the YAML schema), optimizers.py, losses.py, data.py, model_setup.py,
strategy.py, callbacks.py (run directory layout), loop.py (multi-worker), lbfgs.py, fit.py (the runner).
"""

from dirtypixels_tf._lazy import lazy_exports

_EXPORTS = {
    "ConfigError": "dirtypixels_tf.training.config",
    "ExperimentConfig": "dirtypixels_tf.training.config",
    "load_config": "dirtypixels_tf.training.config",
    "resolve_config": "dirtypixels_tf.training.config",
    "named_configs": "dirtypixels_tf.training.config",
    "save_params": "dirtypixels_tf.training.config",
    "from_dict": "dirtypixels_tf.training.config",
    "to_dict": "dirtypixels_tf.training.config",
    "derive_steps": "dirtypixels_tf.training.config",
    "run_experiment": "dirtypixels_tf.training.fit",
    "build_experiment_model": "dirtypixels_tf.training.model_setup",
    "Tf1RMSprop": "dirtypixels_tf.training.optimizers",
    "build_optimizer": "dirtypixels_tf.training.optimizers",
    "build_schedule": "dirtypixels_tf.training.optimizers",
    "make_strategy": "dirtypixels_tf.training.strategy",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
