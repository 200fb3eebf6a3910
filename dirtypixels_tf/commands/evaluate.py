"""`dirtypixels evaluate`: top-1 / top-5 (or, for a segmentation model, mean IoU, pixel accuracy and IoU per class)
over light levels x PSFs (Diamond et al. 2017 Table 1), with PSNR / SSIM of the intermediate image,
conventional-ISP baselines and an example figure (with colour-coded label maps for segmentation).

    dirtypixels evaluate MODEL [--profiles 3,6,12,24,48,96,none] [--psf none,center,offaxis,periphery]
                         [--data fashion-mnist|fashion-mnist-composite|VOC_FOLDER|FOLDER|TFRECORDS] [--limit N]
                         [--size S] [--out DIR]
                         [--baseline malvar_nlm,...] [--examples 4]
    dirtypixels evaluate MODEL --data captured:FOLDER [--labels synset_labels.txt] [--white-balance as_shot]
                         [--exposure percentile98] [--noise sensor|release|estimate] [--sensor S] [--out DIR]

MODEL: a training run directory (RUN_DIR/model.keras; its params.yaml gives the default sensor preset, Bayer phase,
centre crop and label offset), a .keras file, a SavedModel (version directory or base path; the sensor preset it
was exported with is the default) or a model preset name (random weights, for smoke tests). Writes
OUT/evaluation.{csv,md,json}, OUT/accuracy.png, OUT/examples.png and, per baseline, OUT/baseline-NAME/ (the
conventional ISP followed by the model's own head; image quality only for a model without a separable head, such
as a SavedModel). Details of every convention: dirtypixels_tf/evaluation/ (axes.py, predictors.py, grid.py).
With --data captured:FOLDER (one folder of camera RAW files per class) the real captures are scored instead, through
the real-capture front end (data/camera_raw.py), as evaluation/captured.py describes (its outputs in OUT).
"""

import os
import sys

from dirtypixels_tf.catalog import (
    CAPTURED_DATA_PREFIX,
    DEFAULT_PRESET,
    LIGHT_PROFILES,
    NO_NOISE,
    NO_PSF,
    PATTERNS,
    PSF_NAMES,
    SENSOR_PRESETS,
)
from dirtypixels_tf.commands.common import (
    UsageError,
    add_capture_arguments,
    capture_options,
    non_negative_int,
    path_or_name,
    positive_float,
    positive_int,
    sensor_spec,
)
from dirtypixels_tf.commands.simulate import _open_source, check_data_source
from dirtypixels_tf.data.source_spec import COMPOSITE, FASHION_MNIST

DEFAULT_PROFILES = f"3,6,12,24,48,96,{NO_NOISE}"


def _split_list(text, option):
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UsageError(f"{option} must list at least one entry; received {text!r}")
    return items


def _run_defaults(model_spec):
    """Defaults from the model's own records: a run directory's params.yaml (sensor, Bayer phase, centre crop,
    label offset) or an exported SavedModel's metadata (export/layout.py: its sensor preset); {} otherwise."""
    from dirtypixels_tf.export import layout
    from dirtypixels_tf.training import config as config_lib

    params = os.path.join(model_spec, config_lib.PARAMS_FILE)
    if os.path.isfile(params):
        data = config_lib.load_config(params).data
        return {
            "sensor": data.sensor,
            "pattern": data.pattern,
            "central_fraction": data.central_fraction,
            "label_offset": data.label_offset,
        }
    savedmodel = layout.find_savedmodel(model_spec)
    metadata = None if savedmodel is None else layout.read_export_metadata(savedmodel)
    if metadata is not None:
        sensor = metadata.get("sensor", {}).get("name")
        return {"sensor": sensor} if sensor in SENSOR_PRESETS else {}
    return {}


def _open_data(spec, split, label_offset):
    """(dataset of (image, label), class names or None) for --data."""
    dataset, classes, kind = _open_source(spec, split, label_offset, "--data")
    return dataset, classes, f"{spec} ({kind})"


def _parse_grid(args):
    from dirtypixels_tf.evaluation import axes

    levels = _split_list(args.profiles, "--profiles")
    psfs = _split_list(args.psf, "--psf")
    for spec in levels:
        try:
            axes.parse_light_level(spec)
        except ValueError as error:
            raise UsageError(f"--profiles: {error}") from None
    for spec in psfs:
        try:
            axes.parse_psf(spec, seed=args.seed)
        except ValueError as error:
            raise UsageError(f"--psf: {error}") from None
    return levels, psfs


def _load(args, class_names):
    from dirtypixels_tf.evaluation import predictors
    from dirtypixels_tf.models import presets

    num_classes = args.num_classes
    if args.model in presets.PRESETS and num_classes is None and class_names is not None:
        num_classes = len(class_names)
    try:
        predictor = predictors.load_predictor(args.model, num_classes)
    except ValueError as error:
        raise UsageError(f"MODEL: {error}") from None
    if predictor.class_names is None:
        predictor.class_names = class_names
    return predictor


def validate(args):
    """Checks that need no TensorFlow."""
    if args.data.startswith(CAPTURED_DATA_PREFIX):
        folder = args.data[len(CAPTURED_DATA_PREFIX) :]
        if not os.path.isdir(folder):
            raise UsageError(f"--data captured:FOLDER needs a folder of class folders; received {folder!r}")
        if args.labels is not None and not os.path.isfile(args.labels):
            raise UsageError(f"--labels: no such file {args.labels!r}")
        capture_options(args)
        return
    check_data_source(args.data, "--data")
    for spec in _split_list(args.psf, "--psf"):
        if os.path.splitext(spec)[1] and not os.path.isfile(spec):
            raise UsageError(f"--psf: no such PSF file {spec!r}")


def _run_captured(args):
    from dirtypixels_tf.evaluation.captured import evaluate_captured, to_markdown

    defaults = _run_defaults(args.model) if os.path.isdir(args.model) else {}
    predictor = _load(args, None)
    try:
        summary = evaluate_captured(
            predictor,
            args.data[len(CAPTURED_DATA_PREFIX) :],
            args.out,
            labels_file=args.labels,
            pattern=args.pattern or defaults.get("pattern"),
            samples=args.examples,
            progress=not args.quiet,
            sensor=args.sensor or defaults.get("sensor", DEFAULT_PRESET),
            **capture_options(args),
        )
    except ValueError as error:
        raise UsageError(f"--data {args.data}: {error}") from None
    print(to_markdown(summary))
    for line in summary["failed"]:
        print(f"skipped {line}", file=sys.stderr)
    print(f"wrote {os.path.join(args.out, 'captured.json')} (and captured.md, correct.txt, wrong.txt, input/, isp/)")
    return 0


def run(args):
    import tensorflow as tf

    from dirtypixels_tf.evaluation import baselines, grid, predictors

    if args.data.startswith(CAPTURED_DATA_PREFIX):
        return _run_captured(args)
    from dirtypixels_tf.evaluation.figures import comparison_figure
    from dirtypixels_tf.physics.sensor_files import resolve_sensor

    levels, psfs = _parse_grid(args)
    defaults = _run_defaults(args.model) if os.path.isdir(args.model) else {}
    sensor = args.sensor or defaults.get("sensor", DEFAULT_PRESET)
    pattern = args.pattern or defaults.get("pattern") or resolve_sensor(sensor).pattern
    pipelines = []
    for name in _split_list(args.baseline, "--baseline") if args.baseline else []:
        try:
            pipelines.append(baselines.get_pipeline(name, pattern))
        except ValueError as error:
            raise UsageError(f"--baseline: {error}") from None
        if pipelines[-1].denoise == "bm3d" and not baselines.bm3d_available():
            raise UsageError(f"--baseline {name} needs the optional bm3d package ({baselines.BM3D_INSTALL_HINT})")
    settings = {
        "sensor": sensor,
        "pattern": pattern,
        "central_fraction": args.central_fraction or defaults.get("central_fraction", 0.875),
    }
    label_offset = args.label_offset if args.label_offset is not None else defaults.get("label_offset", 0)
    source, class_names, description = _open_data(args.data, args.split, label_offset)
    predictor = _load(args, class_names)
    size = None if args.size is None else (args.size, args.size)
    options = {
        "light_levels": levels,
        "psfs": psfs,
        "image_size": size,
        "batch_size": args.batch_size,
        "limit": args.limit,
        "seed": args.seed,
        "quality": not args.no_quality,
        "progress": not args.quiet,
        "data_description": description,
        **settings,
    }
    try:
        table = grid.evaluate(predictor, source, **options)
        print(table.to_markdown())
        written = table.save(args.out)
        head = getattr(predictor, "model", None)
        if head is not None:
            try:
                predictors.head_function(head)
            except ValueError:
                head = None  # an ISP model without a classifier: the baselines get PSNR / SSIM only
        size = size or predictor.image_size
        for pipeline in pipelines:
            baseline = predictors.ConventionalIspPredictor(pipeline, head, size, predictor.class_names)
            baseline_table = grid.evaluate(baseline, source, **{**options, "image_size": size})
            print(baseline_table.to_markdown())
            paths = baseline_table.save(os.path.join(args.out, f"baseline-{pipeline.name}"))
            written.update({f"{pipeline.name} {kind}": path for kind, path in paths.items()})
        if args.examples:
            written["examples"] = comparison_figure(
                predictor,
                source,
                os.path.join(args.out, "examples.png"),
                conventional=pipelines or [baselines.get_pipeline("malvar_nlm", settings["pattern"])],
                head=head,
                light_level=levels[0],
                psf=psfs[0],
                count=args.examples,
                image_size=size,
                seed=args.seed,
                class_names=predictor.class_names,
                **settings,
            )
    except tf.errors.OpError as error:  # a file that fails while it is read (a corrupt image or record)
        print(f"dirtypixels evaluate: error while reading {args.data}: {error.message}", file=sys.stderr)
        return 1
    for kind, path in written.items():
        print(f"wrote {kind}: {path}")
    return 0


def register(commands):
    evaluate = commands.add_parser(
        "evaluate",
        help="top-1/top-5 (or mIoU) and PSNR/SSIM of a model over light levels x PSFs",
        description="Simulate the evaluation data at every light level and PSF (seeded per example, so runs agree "
        "exactly), run the model, and write top-1/top-5 accuracy (a segmentation model: mean IoU, pixel accuracy "
        "and IoU per class) and the PSNR/SSIM of its intermediate image "
        "against the sharp clean image as CSV, Markdown, JSON and a plot (Diamond et al. 2017 Table 1 layout).",
    )
    evaluate.add_argument(
        "model",
        metavar="MODEL",
        type=path_or_name("a model preset name"),
        help="run directory (model.keras), .keras file, SavedModel directory or base path, or a preset name",
    )
    evaluate.add_argument(
        "--profiles",
        default=DEFAULT_PROFILES,
        help=f"comma-separated light levels: profiles ({', '.join(LIGHT_PROFILES)}), lux numbers (12), {NO_NOISE} "
        f"(no noise); default {DEFAULT_PROFILES}",
    )
    evaluate.add_argument("--psf", default=NO_PSF, help=f"comma-separated PSFs: {', '.join(PSF_NAMES)} or PSF files")
    evaluate.add_argument(
        "--data",
        default=FASHION_MNIST,
        help=f"'{FASHION_MNIST}' (default), a folder of class subfolders, TFRecords, or {CAPTURED_DATA_PREFIX}FOLDER (real "
        f"camera RAW captures in one folder per class); for segmentation '{COMPOSITE}' or a Pascal VOC 2012 folder",
    )
    evaluate.add_argument(
        "--labels", default=None, help="captured: 'folder:index' lines (the release's synset_labels.txt)"
    )
    add_capture_arguments(evaluate, "captured")
    evaluate.add_argument(
        "--split", default="test", choices=("train", "test"), help="split (test; a VOC folder's test is its val)"
    )
    evaluate.add_argument("--limit", type=positive_int, default=None, help="evaluate the first N examples only")
    evaluate.add_argument("--size", type=positive_int, default=None, help="RAW frame size (default: the model's)")
    evaluate.add_argument("--batch-size", type=positive_int, default=32, help="examples per batch (32)")
    evaluate.add_argument("--seed", type=non_negative_int, default=0, help="base seed of the per-example noise (0)")
    evaluate.add_argument(
        "--sensor",
        type=sensor_spec,
        default=None,
        help=f"sensor noise preset or a calibrated sensor.yaml (run's, else {DEFAULT_PRESET})",
    )
    evaluate.add_argument("--pattern", default=None, choices=PATTERNS, help="Bayer phase (run's, else the sensor's)")
    evaluate.add_argument(
        "--central-fraction", type=positive_float, default=None, help="evaluation centre crop (run's, else 0.875)"
    )
    evaluate.add_argument("--num-classes", type=positive_int, default=None, help="classes of a preset model")
    evaluate.add_argument(
        "--label-offset", type=int, default=None, help="subtracted from TFRecord labels (run's, else 0)"
    )
    evaluate.add_argument(
        "--baseline",
        default=None,
        help="comma-separated conventional ISPs (e.g. malvar_nlm, menon_bm3d_hqs) evaluated with the model's head",
    )
    evaluate.add_argument(
        "--examples", type=non_negative_int, default=4, help="examples in OUT/examples.png (0 = no figure)"
    )
    evaluate.add_argument("--no-quality", action="store_true", help="skip PSNR / SSIM")
    evaluate.add_argument("--out", default="evaluation", help="output folder (default ./evaluation)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(run=run, validate=validate, parser=evaluate)
