"""`dirtypixels train`: train an experiment config (a bundled name or a YAML file) into a run directory.

    dirtypixels train [--config NAME|FILE] [--run-dir DIR] [--set section.key=VALUE ...] [--quiet]

Without --config it runs the bundled `default` config (dirtypixels_tf/configs/default.yaml, a few minutes on a CPU). The run directory (default
runs/<config name>) receives params.yaml, model.keras, metrics.json, logs and checkpoints (training/callbacks.py);
running the same command again after an interruption resumes from its backup. Prints the test metrics.
"""

import os
import sys
import time

from dirtypixels_tf.commands.common import UsageError


def _describe(metrics):
    test = metrics.get("test") or {}
    parts = []
    if "top1" in test:
        parts.append(f"top-1 {100 * test['top1']:.2f} %")
    if "top5" in test:
        parts.append(f"top-5 {100 * test['top5']:.2f} %")
    parts += [f"{k} {v:.2f} dB" for k, v in test.items() if k.endswith("psnr")]
    if "lbfgs" in metrics:
        parts.append(f"training-set PSNR {metrics['lbfgs']['final_psnr']:.2f} dB")
    if test.get("examples"):
        parts.append(f"on {test['examples']} test examples")
    return ", ".join(parts) or "no evaluation split"


def validate(args):
    """The config is found and read before TensorFlow is imported."""
    from dirtypixels_tf.training import config as config_lib

    try:
        args.config_path = config_lib.resolve_config(args.config)
        args.experiment = config_lib.load_config(args.config_path, args.overrides)
        config_lib.require_complete(args.experiment)
    except config_lib.ConfigError as error:
        raise UsageError(str(error)) from None


def run(args):
    from dirtypixels_tf.training import config as config_lib
    from dirtypixels_tf.training.fit import TrainingStopped, run_experiment

    path, config = args.config_path, args.experiment
    run_dir = args.run_dir or os.path.join("runs", os.path.splitext(os.path.basename(path))[0])
    print(f"dirtypixels train: {config.description or path}")
    print(f"run directory: {run_dir}")
    start = time.perf_counter()
    try:
        results = run_experiment(config, run_dir, verbose=0 if args.quiet else 1)
    except config_lib.ConfigError as error:
        raise UsageError(str(error)) from None
    except TrainingStopped as error:
        print(f"dirtypixels train: {error}", file=sys.stderr)
        return 1
    if not results["chief"]:
        return 0  # a non-chief worker of a multi-worker run: the chief reports
    name = config_lib.model_spec(config)["isp"] or config_lib.model_spec(config)["head"]
    print(f"test ({name}): {_describe(results)}")
    for isp_name, metrics in results.get("comparisons", {}).items():
        print(f"test ({isp_name}, same head and budget): {_describe(metrics)}")
    print(f"finished in {time.perf_counter() - start:.0f} s; model: {os.path.join(run_dir, 'model.keras')}")
    return 0


def register(commands):
    train = commands.add_parser(
        "train",
        help="train an experiment config (default: a few-minute Fashion-MNIST joint model vs bilinear ISP)",
        description="Train the experiment described by a YAML config (a bundled name such as release_joint_3lux, "
        "or a file; schema in dirtypixels_tf/training/config.py) into a run directory, resuming from its backup if "
        "one is there, then evaluate on the held-out split. Without --config: the bundled default.",
    )
    train.add_argument("--config", default=None, help="bundled config name or experiment YAML file (default: default)")
    train.add_argument("--run-dir", default=None, help="run directory (default: runs/<config name>)")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set data.epochs=2 --set optimizer.learning_rate=0.001 (repeatable)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(run=run, validate=validate, parser=train)
