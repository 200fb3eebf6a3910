"""`dirtypixels simulate`: a fixed noisy RAW copy of a dataset as TFRecords (the release's simulate_raw_images.py).

The record layout is in dirtypixels_tf/data/raw_records.py; read it back with dirtypixels_tf.data.read_raw_tfrecords.
"""

import sys

from dirtypixels_tf.catalog import (
    DEFAULT_PRESET,
    DEFAULT_PROFILE,
    LIGHT_PROFILES,
    NO_PSF,
    PATTERNS,
    PSF_GRAMMAR,
    PSF_NAMES,
)
from dirtypixels_tf.commands.common import (
    UsageError,
    even_positive_int,
    light_profile,
    non_negative_int,
    path_or_name,
    positive_int,
    sensor_spec,
)
from dirtypixels_tf.data.source_spec import COMPOSITE, FASHION_MNIST, VOC, open_source, resolve_source


def check_data_source(spec, name="SOURCE"):
    """The data source of simulate and evaluate (data.source_spec.resolve_source, no TensorFlow); returns (kind,
    path) or raises UsageError naming `name`."""
    try:
        return resolve_source(spec, name)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _open_source(spec, split, label_offset, name="SOURCE"):
    """(dataset, class names or None, kind description) for a data source spec."""
    kind, path = check_data_source(spec, name)
    dataset, classes, _ = open_source(kind, path, split=split, label_offset=label_offset)
    description = {FASHION_MNIST: f"{FASHION_MNIST}/{split}", "folder": "image folder"}.get(kind, kind)
    return dataset, classes, description


def validate(args):
    """Checks that need no TensorFlow (the sensor, profile, size and PSF file are checked by their types)."""
    kind, _ = check_data_source(args.source)
    if kind in (COMPOSITE, VOC):
        raise UsageError(
            f"SOURCE: the RAW records hold one class label per frame; received the segmentation source {kind!r} "
            "(train and evaluate simulate its frames on the fly)"
        )


def run(args):
    import tensorflow as tf

    from dirtypixels_tf.data import raw_records
    from dirtypixels_tf.physics import optics
    from dirtypixels_tf.physics.sensor import SensorModel

    try:
        psf = optics.resolve_psf(args.psf, seed=args.seed)
    except ValueError as error:
        raise UsageError(f"--psf: {error}") from None
    sensor = SensorModel(preset=args.sensor, light_levels=args.profile, pattern=args.pattern, psf=psf)
    dataset, classes, kind = _open_source(args.source, args.split, args.label_offset)
    metadata = {
        "source": args.source,
        "source_kind": kind,
        "class_names": classes,
        "sensor": args.sensor,
        "profile": args.profile,
        "psf": args.psf,
    }
    try:
        info = raw_records.simulate_to_tfrecords(
            dataset,
            sensor,
            args.out,
            (args.size, args.size),
            seed=args.seed,
            limit=args.limit,
            shards=args.shards,
            dtype=args.dtype,
            central_fraction=args.central_fraction,
            progress=not args.quiet,
            metadata=metadata,
        )
    except tf.errors.OpError as error:  # a file that fails while it is read (a corrupt image or record)
        print(f"dirtypixels simulate: error while reading {args.source}: {error.message}", file=sys.stderr)
        return 1
    print(
        f"wrote {info['count']} RAW records to {args.out} ({len(info['files'])} file(s), {raw_records.METADATA_FILE})"
    )
    return 0


def register(commands):
    simulate = commands.add_parser(
        "simulate",
        help="write a noisy RAW copy of a dataset as TFRecords",
        description="Simulate the sensor on every image of SOURCE (central crop, resize, blur, Bayer mosaic, "
        "Poisson-Gaussian noise; seeded per example) and write the RAW mosaics with alpha, sigma and the label as "
        "TFRecords (layout: dirtypixels_tf/data/raw_records.py).",
    )
    simulate.add_argument(
        "source",
        nargs="?",
        default=FASHION_MNIST,
        metavar="SOURCE",
        help=f"'{FASHION_MNIST}' (default), a folder of class subfolders, or TFRecord files (file, folder, glob)",
    )
    simulate.add_argument("--out", required=True, help="output folder")
    simulate.add_argument(
        "--profile",
        type=light_profile,
        default=DEFAULT_PROFILE,
        help=f"light-level profile ({', '.join(LIGHT_PROFILES)}; default {DEFAULT_PROFILE})",
    )
    simulate.add_argument(
        "--sensor",
        type=sensor_spec,
        default=DEFAULT_PRESET,
        help=f"sensor noise preset or a calibrated sensor.yaml (default {DEFAULT_PRESET})",
    )
    simulate.add_argument(
        "--pattern",
        default=None,
        choices=PATTERNS,
        help="Bayer phase (default: the sensor's: a sensor.yaml's, else the release's)",
    )
    simulate.add_argument(
        "--psf",
        type=path_or_name(", ".join(PSF_NAMES)),
        default=NO_PSF,
        help=PSF_GRAMMAR,
    )
    simulate.add_argument("--size", type=even_positive_int, default=128, help="output height and width (even; 128)")
    simulate.add_argument("--seed", type=non_negative_int, default=0, help="base seed of the per-example noise")
    simulate.add_argument("--limit", type=positive_int, default=None, help="simulate only the first N images")
    simulate.add_argument("--shards", type=positive_int, default=1, help="number of output files (default 1)")
    simulate.add_argument("--dtype", default="float32", choices=("float32", "uint16"), help="storage of the mosaic")
    simulate.add_argument(
        "--central-fraction", type=float, default=1.0, help="central crop before the resize (1.0 = whole image)"
    )
    simulate.add_argument("--split", default="test", choices=("train", "test"), help="fashion-mnist split (test)")
    simulate.add_argument(
        "--label-offset", type=int, default=0, help="subtracted from TFRecord labels (1 for slim's 1001-class files)"
    )
    simulate.add_argument("--quiet", action="store_true", help="no progress bar")
    simulate.set_defaults(run=run, validate=validate, parser=simulate)
