"""`dirtypixels train`: train an experiment config (a bundled name or a YAML file) into a run directory.

    dirtypixels train [--config NAME|FILE] [--run-dir DIR] [--set section.key=VALUE ...] [--quiet]

Without --config it runs the bundled `default` config (dirtypixels_tf/configs/default.yaml, a few minutes on a CPU). The run directory (default
runs/<config name>) receives params.yaml, model.keras, metrics.json, logs and checkpoints (training/callbacks.py);
running the same command again after an interruption resumes from its backup. Prints the test metrics.

With compare_isps (the default experiment), the final report evaluates the trained model and each comparison on the
whole evaluation split at REPORT_LIGHT_LEVELS (evaluation/report.py over grid.py, the run's sensor, Bayer phase, PSF, seed + 1 and
centre crop): top-1, the intermediate image's PSNR, its Bayer-period energy ratio (metrics.bayer_artifact_ratio,
which residual noise raises too), its Bayer-frequency peak (metrics.bayer_peak_ratio, a periodic pattern only) and
the amplitude of the Bayer-period pattern in its error (grid.py's "bayer_error", in 8-bit code values), printed as
one table and written under RUN_DIR/report/ (each model's evaluation.csv/.md/.json and report.png: accuracy and
PSNR against light above example images at 3 and 48 lux). The same command on a finished run with the
same config writes the report again without training.
"""

import importlib.util
import os
import sys
import time

from dirtypixels_tf.catalog import MOTION_PSF_PREFIX, NO_NOISE
from dirtypixels_tf.commands.common import UsageError


def _describe(metrics):
    test = metrics.get("test") or {}
    parts = []
    if "top1" in test:
        parts.append(f"top-1 {100 * test['top1']:.2f} %")
    if "top5" in test:
        parts.append(f"top-5 {100 * test['top5']:.2f} %")
    if "miou" in test:
        parts.append(f"mIoU {100 * test['miou']:.2f} %, pixel accuracy {100 * test['pixel_accuracy']:.2f} %")
    parts += [f"{k} {v:.2f} dB" for k, v in test.items() if k.endswith("psnr")]
    if "lbfgs" in metrics:
        parts.append(f"training-set PSNR {metrics['lbfgs']['final_psnr']:.2f} dB")
    if test.get("examples"):
        parts.append(f"on {test['examples']} test examples")
    return ", ".join(parts) or "no evaluation split"


REPORT_LIGHT_LEVELS = ("3", "6", "12", "48", NO_NOISE)
REPORT_EXAMPLE_LEVELS = ("3", "48")
REPORT_DIR = "report"


def _report(config, run_dir):
    """The final report of a run with comparisons (module docstring); returns the figure's path, or None when the
    run has no comparison or no evaluation split (no report) or matplotlib is missing (the table only)."""
    from dirtypixels_tf.evaluation import report
    from dirtypixels_tf.training import config as config_lib
    from dirtypixels_tf.training import data as data_lib

    source = data_lib.eval_source(config)
    if not config.compare_isps or source is None:
        return None
    if config.data.psf.startswith(MOTION_PSF_PREFIX):
        print(
            f"report: skipped (data.psf {config.data.psf!r} is a random PSF drawn with the training seed; the report's "
            "cells are seeded seed + 1 and would draw another)"
        )
        return None
    runs = {f"joint ({config_lib.model_spec(config).isp})": run_dir}
    runs.update({isp: os.path.join(run_dir, "compare", isp) for isp in config.compare_isps})
    data = config.data
    options = dict(
        seed=config.seed + 1, sensor=data.sensor, pattern=data.pattern, central_fraction=data.central_fraction
    )
    names = data_lib.class_names(config)
    out_dir = os.path.join(run_dir, REPORT_DIR)
    comparison = report.compare_runs(
        runs,
        source,
        out_dir,
        REPORT_LIGHT_LEVELS,
        data.psf,
        class_names=names,
        log=print,
        batch_size=250,
        data_description=f"{data.source} evaluation split",
        **options,
    )
    print(comparison.legend())
    print("\n".join(comparison.lines))
    if importlib.util.find_spec("matplotlib") is None:
        print("report: no figure (it needs matplotlib: pip install 'dirtypixels_tf[plots]')")
        return None
    path = os.path.join(out_dir, report.FIGURE_FILE)
    title = config.description or "experiment"
    return report.comparison_figure(
        comparison, source, path, REPORT_EXAMPLE_LEVELS, data.psf, class_names=names, title=title, **options
    )


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
    from dirtypixels_tf.training.fit import TrainingStopped, finished_run, run_experiment

    path, config = args.config_path, args.experiment
    run_dir = args.run_dir or os.path.join("runs", os.path.splitext(os.path.basename(path))[0])
    print(f"dirtypixels train: {config.description or path}")
    print(f"run directory: {run_dir}")
    start = time.perf_counter()
    report_only = config.compare_isps and finished_run(config, run_dir)
    try:
        if report_only:
            print(f"{run_dir}: already trained with this config; writing its report again")
        else:
            results = run_experiment(config, run_dir, verbose=0 if args.quiet else 1)
    except config_lib.ConfigError as error:
        raise UsageError(str(error)) from None
    except TrainingStopped as error:
        print(f"dirtypixels train: {error}", file=sys.stderr)
        return 1
    if not report_only:
        if not results["chief"]:
            return 0  # a non-chief worker of a multi-worker run: the chief reports
        name = config_lib.model_spec(config).isp or config_lib.model_spec(config).head
        if "head" in results:
            print(
                f"head stage ({config_lib.model_spec(config).head} alone on clean images): {_describe(results['head'])}"
            )
        if "stage1" in results:
            print(
                f"stage 1 ({name} alone, loss {config_lib.pretrain_config(config).loss.kind}): "
                f"{_describe(results['stage1'])}"
            )
        print(f"test ({name}): {_describe(results)}")
        for isp_name, metrics in results.get("comparisons", {}).items():
            print(f"test ({isp_name}, same head and budget): {_describe(metrics)}")
    figure = _report(config, run_dir)
    if figure is not None:
        print(f"report figure: {figure}")
    print(f"finished in {time.perf_counter() - start:.0f} s; model: {os.path.join(run_dir, 'model.keras')}")
    return 0


def register(commands):
    train = commands.add_parser(
        "train",
        help="train an experiment config (default: a few-minute Fashion-MNIST joint model vs bilinear ISP)",
        description="Train the experiment described by a YAML config (a bundled name such as release_joint_3lux, "
        "or a file; schema in dirtypixels_tf/training/config/schema.py) into a run directory, resuming from its backup if "
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
