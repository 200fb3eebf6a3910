"""`dirtypixels convert CHECKPOINT --out FILE.keras [--preset NAME]`: the authors' TF1 checkpoints as Keras models.

CHECKPOINT is a checkpoint prefix (e.g. joint128/3lux/model.ckpt-N) or a directory with a `checkpoint` file. It may
hold the release's joint model (Anscombe network + MobileNet-v1), its ISP alone, slim's MobileNet-v1 or slim's
Inception-v4; the architecture is inferred from the variables (models/tf1_checkpoints.py). The .keras file written
is what `dirtypixels train` writes for that kind of model, so `evaluate`, `export` and `serve` take it unchanged, and
a converted head is a `stages.head_weights` of the training configs. A checkpoint holding NaN or Inf is refused,
naming the variables, unless --allow-nonfinite; an unreadable checkpoint or an --out that cannot be written is a
one-line error.
"""

import os

from dirtypixels_tf.commands.common import UsageError, check_finite_weights, output_error, positive_int


def run(args):
    from dirtypixels_tf.models import tf1_checkpoints
    from dirtypixels_tf.models.counting import count_params

    if not args.out.endswith(".keras") or os.path.isdir(args.out):
        raise UsageError(f"--out must name a .keras file; received {args.out!r}")
    if args.image_size is not None and args.image_size % 2:
        raise UsageError(f"--image-size must be even (whole Bayer blocks); received {args.image_size}")
    import tensorflow as tf

    try:
        model, info = tf1_checkpoints.convert_checkpoint(
            args.checkpoint, preset=args.preset, image_size=args.image_size
        )
    except (tf.errors.OpError, OSError, IndexError) as error:  # a corrupt or truncated shard (IndexError: short read)
        message = getattr(error, "message", None) or str(error)
        raise UsageError(f"{args.checkpoint!r}: cannot read the checkpoint: {message.splitlines()[0]}") from None
    check_finite_weights(model, args.allow_nonfinite)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        model.save(args.out)
    except OSError as error:
        raise output_error("--out", args.out, error) from None
    settings = ", ".join(f"{key} {value:g}" for key, value in info["settings"].items())
    params = count_params(model)
    print(
        f"wrote {args.out}: {info['kind']} ({settings}), {info['copied']} of {info['variables']} checkpoint variables "
        f"copied, {params['trainable']:,} trainable parameters; inputs {', '.join(model.input.keys())}, outputs "
        f"{', '.join(model.output.keys())}"
    )
    return 0


def register(commands):
    convert = commands.add_parser(
        "convert",
        help="convert the authors' TF1 checkpoints (joint, ISP, slim MobileNet-v1 / Inception-v4) to .keras",
        description="Read a TF1 checkpoint of the original release or of TF-slim with tf.train.load_checkpoint, "
        "infer its architecture from the variable names and shapes, copy every variable and write a .keras model. "
        "Refuses, listing them, variables that map to no weight and weights with no variable.",
    )
    convert.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint prefix (model.ckpt-N) or its directory")
    convert.add_argument("--out", required=True, metavar="FILE.keras", help="the .keras file to write")
    convert.add_argument("--preset", default=None, help="preset that names the model (its size and settings)")
    convert.add_argument(
        "--image-size", type=positive_int, default=None, help="RAW frame side without --preset (128; 299 Inception-v4)"
    )
    convert.add_argument(
        "--allow-nonfinite", action="store_true", help="write the model even if some weights are NaN or Inf"
    )
    convert.set_defaults(run=run, parser=convert)
