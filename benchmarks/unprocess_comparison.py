"""The joint model trained with and without unprocessing (Brooks et al. 2019), each tested on both simulations.

    PYTHONPATH=. python benchmarks/unprocess_comparison.py [--config default] [--train-examples 20000] [--epochs 5]
        [--eval-examples 2000] [--out runs/unprocess_comparison] [--set section.key=VALUE ...]

Trains the config twice, identical but for data.unprocess (false: the release's mask-only path, sRGB mosaicked as
linear data; true: the randomized inverse camera pipeline of physics/unprocess.py), with compare_isps off and batch-norm statistics re-estimated over 50 batches, then
tests both models on the evaluation split simulated both ways (same seeds) and prints a 2 x 2 table of top-1
accuracy and the ratio of each model's accuracy on the unprocessed test set to its accuracy on the mask-only one.
"""

import argparse
import os
import sys

from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training import data as data_lib
from dirtypixels_tf.training import fit, model_setup


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--train-examples", type=int, default=20000)
    parser.add_argument("--eval-examples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default="runs/unprocess_comparison")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="more config overrides")
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds (the tests run it)")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_examples, args.eval_examples, args.epochs = 128, 64, 1
    path = config_lib.resolve_config(args.config)
    overrides = [
        f"data.train_examples={args.train_examples}",
        f"data.eval_examples={args.eval_examples}",
        f"data.epochs={args.epochs}",
        "compare_isps=[]",
        "precise_bn_batches=50",
    ] + args.overrides
    models = {}
    for trained_with in (False, True):
        config = config_lib.load_config(path, overrides + [f"data.unprocess={str(trained_with).lower()}"])
        run_dir = os.path.join(args.out, "unprocessed" if trained_with else "mask_only")
        if os.path.exists(os.path.join(run_dir, "model.keras")):
            raise SystemExit(f"{run_dir} already holds a finished run; remove it or give another --out")
        results = fit.run_experiment(config, run_dir, verbose=0, log=lambda line: print(line, file=sys.stderr))
        models[trained_with] = (results["model"], results["train_seconds"])
    table = {}
    for trained_with, (model, _) in models.items():
        for tested_with in (False, True):
            config = config_lib.load_config(path, overrides + [f"data.unprocess={str(tested_with).lower()}"])
            data = data_lib.ExperimentData(config, model_setup.model_input_names(model))
            metrics = fit.evaluate(model, data.eval_dataset(), config_lib.model_spec(config).num_classes)
            table[trained_with, tested_with] = metrics["top1"]
    print(f"{args.config}: {args.train_examples} training examples x {args.epochs} epochs, {args.eval_examples} test")
    print(f"{'trained on':<14}{'test mask-only':>16}{'test unprocessed':>18}{'ratio':>8}{'train s':>9}")
    for trained_with, (_, seconds) in models.items():
        mask, unprocessed = table[trained_with, False], table[trained_with, True]
        name = "unprocessed" if trained_with else "mask-only"
        print(f"{name:<14}{100 * mask:>15.2f}%{100 * unprocessed:>17.2f}%{unprocessed / mask:>8.3f}{seconds:>9.0f}")


if __name__ == "__main__":
    main()
