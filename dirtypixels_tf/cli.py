"""The `dirtypixels` command line (console script; also `python -m dirtypixels_tf.cli`).

    dirtypixels simulate [SOURCE] --out DIR [--profile 3lux] [--sensor Nexus_6P_rear|SENSOR.yaml] [--pattern BGGR]
                         [--psf none|center|offaxis|periphery|FILE.npy] [--size 128] [--seed 0] [--limit N] ...
    dirtypixels count PRESET
    dirtypixels train [--config NAME|FILE.yaml]
    dirtypixels evaluate RUN_DIR|MODEL|PRESET --profiles 3lux,6lux --psf none,center [--baseline NAME] [--out DIR]
    dirtypixels export RUN_DIR|MODEL.keras|PRESET --out MODEL_BASE_PATH [--version N]
    dirtypixels serve MODEL_BASE_PATH [--port 8500]
    dirtypixels serving-config --model-name NAME --base-path PATH --out DIR
    dirtypixels classify FILE... --server HOST:PORT --model NAME
    dirtypixels segment FRAME... --model MODEL_BASE_PATH [--out-dir labels]
    dirtypixels calibrate noise|psf ...
    dirtypixels convert CHECKPOINT --out FILE.keras [--preset NAME]

Each subcommand lives in dirtypixels_tf/commands/<name>.py with a `register(subparsers)` function. Bad arguments
exit with status 2 and a one-line message. Arguments and paths are checked before any work starts (most before
TensorFlow is imported; a config's model names need the model registry, which imports it), so a wrong one is
reported at once; TensorFlow's C++ messages (start-up notices, logs) are hidden unless `--verbose` is given.
"""

import argparse
import contextlib
import sys

from dirtypixels_tf.commands import (
    calibrate,
    classify,
    convert,
    count,
    evaluate,
    export,
    segment,
    serve,
    serving_config,
    simulate,
    train,
)
from dirtypixels_tf.commands.common import UsageError, import_tensorflow, native_logs_hidden

COMMANDS = (simulate, count, train, evaluate, export, serve, serving_config, classify, segment, calibrate, convert)


def build_parser():
    parser = argparse.ArgumentParser(prog="dirtypixels", description="Task-driven camera pipelines (Dirty Pixels).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    for subparser in _all_subparsers(commands):
        subparser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up and C++ logs")
    return parser


def _all_subparsers(action):
    for subparser in action.choices.values():
        nested = [a for a in subparser._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            yield from _all_subparsers(nested[0])
        else:
            yield subparser


def main(argv=None):
    """Run the command line; returns the exit status (argument errors exit with status 2)."""
    args = build_parser().parse_args(argv)
    try:
        with contextlib.nullcontext() if args.verbose else native_logs_hidden():
            if getattr(args, "validate", None) is not None:
                args.validate(args)  # the command's own checks (a config's may load TensorFlow with the model registry)
            import_tensorflow(args.verbose)
            return args.run(args)
    except (UsageError, ValueError) as error:
        args.parser.error(str(error))  # prints usage and "error: ..." to stderr, exits with status 2


if __name__ == "__main__":
    sys.exit(main())
