"""`dirtypixels train`: train an experiment config (a bundled name or a YAML file) into a run directory.

    dirtypixels train [--config NAME|FILE] [--run-dir DIR] [--set section.key=VALUE ...] [--quiet]

Without --config it runs the bundled `default` config (dirtypixels_tf/configs/default.yaml, a few minutes on a CPU). The run directory (default
runs/<config name>) receives params.yaml, model.keras, metrics.json, logs and checkpoints (training/callbacks.py);
running the same command again after an interruption resumes from its backup. Prints the test metrics.

With compare_isps (the default experiment), the final report evaluates the trained model and each comparison on the
whole evaluation split at REPORT_LIGHT_LEVELS (evaluation/grid.py, the run's sensor, Bayer phase, PSF, seed + 1 and
centre crop): top-1, the intermediate image's PSNR, its Bayer-period energy ratio (metrics.bayer_artifact_ratio,
which residual noise raises too), its Bayer-frequency peak (metrics.bayer_peak_ratio, a periodic pattern only) and
the amplitude of the Bayer-period pattern in its error (grid.py's "bayer_error", in 8-bit code values), printed as
one table and written under RUN_DIR/report/ (each model's evaluation.csv/.md/.json and report.png: accuracy and
PSNR against light above example images at 3 and 48 lux). The same command on a finished run with the
same config writes the report again without training.
"""

import dataclasses
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
    from dirtypixels_tf.evaluation import axes, figures, grid
    from dirtypixels_tf.evaluation.predictors import head_function, load_predictor
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
    spec = config_lib.model_spec(config)
    runs = {f"joint ({spec.isp})": run_dir}
    runs.update({isp: os.path.join(run_dir, "compare", isp) for isp in config.compare_isps})
    data = config.data
    options = dict(
        seed=config.seed + 1, sensor=data.sensor, pattern=data.pattern, central_fraction=data.central_fraction
    )
    names = data_lib.class_names(config)
    tables, predictors = {}, {}
    out_dir = os.path.join(run_dir, REPORT_DIR)
    for name, path in runs.items():
        print(f"report: evaluating {name} at {', '.join(REPORT_LIGHT_LEVELS)} lux")
        predictors[name] = load_predictor(path)
        predictors[name].class_names = names
        tables[name] = grid.evaluate(
            predictors[name],
            source,
            light_levels=REPORT_LIGHT_LEVELS,
            psfs=(data.psf,),
            batch_size=250,
            data_description=f"{data.source} evaluation split",
            **options,
        )
        tables[name].save(os.path.join(out_dir, name.split()[0]), plot=False)
    joint_name, joint = next(iter(tables.items()))
    header = ["light", f"{joint_name} top-1"] + [f"{n} top-1" for n in list(tables)[1:]]
    header += [f"{n.split()[0]} PSNR" for n in tables] + [f"{n.split()[0]} Bayer" for n in tables]
    header += [f"{n.split()[0]} Bayer peak" for n in tables] + [f"{n.split()[0]} Bayer error" for n in tables]
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for row in joint.rows:
        label = "no noise" if row == axes.NO_NOISE else f"{row}"
        column = joint.columns[0]
        cells = [f"{100 * t.value(row, column, 'top1'):.1f} %" for t in tables.values()]
        cells += [f"{t.value(row, column, 'psnr'):.1f} dB" for t in tables.values()]
        cells += [f"{t.value(row, column, 'bayer'):.2f}" for t in tables.values()]
        cells += [f"{t.value(row, column, 'bayer_peak'):.2f}" for t in tables.values()]
        cells += [f"{t.value(row, column, 'bayer_error'):.2f}" for t in tables.values()]
        lines.append("| " + " | ".join([label] + cells) + " |")
    examples = joint.metadata["examples"]
    print(f"report: top-1 and intermediate-image PSNR on {examples} test images; Bayer = luminance energy at the")
    print(
        "2x2-period frequencies over the clean image's (metrics.bayer_artifact_ratio; a checkerboard is well above 1;"
    )
    print("residual noise raises it too); Bayer peak = that energy over the neighbouring frequencies', over the clean")
    print("image's (metrics.bayer_peak_ratio: about 1 or below without a periodic pattern, well above 1 with one;")
    print("it also moves with what the image keeps of the clean content there); Bayer error = RMS amplitude of the")
    print("2x2-period pattern in the luminance error (image - clean), in 8-bit code values (residual noise counts too)")
    print("\n".join(lines))
    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as stream:
        stream.write("\n".join(lines) + "\n")
    if importlib.util.find_spec("matplotlib") is None:
        print("report: no figure (it needs matplotlib: pip install 'dirtypixels_tf[plots]')")
        return None
    bilinear = next((predictors[n] for n in list(predictors)[1:]), None)
    head = head_function(bilinear.model) if bilinear is not None else None
    rows = []
    for level in REPORT_EXAMPLE_LEVELS:
        panels, _ = figures.comparison_panels(
            predictors[joint_name],
            source,
            head=head,
            light_level=level,
            psf=data.psf,
            count=2,
            class_names=names,
            **options,
        )
        for row in panels:
            rows += [[dataclasses.replace(p, title=f"{p.title}, {level} lux") for p in row]]
    path = figures.plot_light_comparison(
        tables, rows, os.path.join(out_dir, "report.png"), title=config.description or "experiment"
    )
    return path


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
