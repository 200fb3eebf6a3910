"""`dirtypixels segment FRAME... --model M`: label maps of frames by an exported segmentation model, as PNGs.

M is an exported segmentation SavedModel (a version directory, or a base path: its highest version), run in this
process. Each FRAME is read as `dirtypixels classify` reads it (serving/frames.py: camera RAW / DNG at its ISO,
ordinary images simulated at --profile, .npy RAW mosaics) at the model's size and sent to the signature its kind
takes ("serving_default" or "raw_uint16"); the class map comes back and is written as OUT_DIR/<frame name>.png in
the VOC palette (data/segmentation.colourize: class k in colour k, ignored pixels white). Prints each file's class
shares. A file that cannot be read or is over the pixel budget (--max-megapixels, checked from its header) is
reported on stderr in one line and the others are still segmented; the exit status is then 1.
"""

import os

from dirtypixels_tf.catalog import DEFAULT_PRESET, DEFAULT_PROFILE, PATTERNS, RELEASE_PATTERN
from dirtypixels_tf.commands.common import (
    FILE_ERRORS,
    UsageError,
    add_max_megapixels,
    non_negative_int,
    report_file_error,
    sensor_spec,
)


def validate(args):
    from dirtypixels_tf.export.layout import find_savedmodel, read_export_metadata

    args.version_dir = find_savedmodel(args.model)
    if args.version_dir is None:
        raise UsageError(f"--model: no SavedModel at {args.model!r} (a version directory or a base path)")
    metadata = read_export_metadata(args.version_dir) or {}
    if metadata.get("task") != "segmentation":
        raise UsageError(
            f"--model: {args.version_dir!r} is not a segmentation model (its task is {metadata.get('task')!r}); "
            "export a JointSegmenter (models/segmentation.py)"
        )
    args.metadata = metadata
    for path in args.files:
        if not os.path.isfile(path):
            raise UsageError(f"FRAME: no such file: {path!r}")


def output_path(out_dir, frame_path):
    """OUT_DIR/<frame file name without its extension>.png."""
    return os.path.join(out_dir, os.path.splitext(os.path.basename(frame_path))[0] + ".png")


def run(args):
    import numpy as np
    import tensorflow as tf

    from dirtypixels_tf.data.segmentation import colourize
    from dirtypixels_tf.serving.frames import read_frame

    signatures = tf.saved_model.load(args.version_dir).signatures
    image_size = tuple(args.metadata["image_size"])
    names = args.metadata.get("class_names") or []
    os.makedirs(args.out_dir, exist_ok=True)
    status = 0
    for index, path in enumerate(args.files):
        try:
            frame = read_frame(
                path,
                image_size,
                profile=args.profile,
                sensor=args.sensor,
                pattern=args.pattern,
                seed=(args.seed, index),
                max_pixels=int(args.max_megapixels * 1e6),
            )
            outputs = signatures[frame.signature](**{k: tf.constant(v) for k, v in frame.inputs.items()})
        except (*FILE_ERRORS, tf.errors.InvalidArgumentError) as error:
            report_file_error(path, error)
            status = 1
            continue
        class_map = outputs["class_map"].numpy()[0]
        target = output_path(args.out_dir, path)
        tf.io.write_file(target, tf.io.encode_png(colourize(class_map)))
        counts = np.bincount(class_map.ravel(), minlength=len(names))
        shares = ", ".join(
            f"{names[k] if k < len(names) else k} {100 * counts[k] / class_map.size:.1f} %"
            for k in np.argsort(-counts)[:3]
            if counts[k]
        )
        print(f"{path}: {frame.description}; label map {target} ({shares})")
    return status


def register(commands):
    parser = commands.add_parser(
        "segment",
        help="write a colour label-map PNG per frame with an exported segmentation model",
        description="Run an exported segmentation SavedModel on each FRAME (DNG / camera RAW at its ISO, PNG/JPEG "
        "simulated at --profile, .npy RAW mosaics) and write OUT_DIR/<name>.png, its class map in the VOC palette.",
    )
    parser.add_argument("files", nargs="+", metavar="FRAME", help="DNG / camera RAW, image or .npy files")
    parser.add_argument("--model", required=True, help="exported segmentation SavedModel (version dir or base path)")
    parser.add_argument("--out-dir", default="labels", help="where the label-map PNGs go (default: labels)")
    parser.add_argument("--profile", default=None, help=f"light profile of ordinary images (default {DEFAULT_PROFILE})")
    parser.add_argument(
        "--sensor",
        type=sensor_spec,
        default=DEFAULT_PRESET,
        help=f"sensor noise preset or sensor.yaml of the simulation ({DEFAULT_PRESET})",
    )
    parser.add_argument(
        "--pattern", default=RELEASE_PATTERN, choices=PATTERNS, help=f"model's Bayer phase ({RELEASE_PATTERN})"
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the simulated noise")
    add_max_megapixels(parser)
    parser.set_defaults(run=run, validate=validate, parser=parser)
