"""`dirtypixels export SOURCE --out BASE`: a SavedModel version for TF Serving (and optionally a TFLite file).

SOURCE is a preset name (models/presets.py; random weights, --num-classes overrides the class count), a .keras file,
or a training run directory holding RUN_DIR/model.keras (training folds EMA weights in before it writes it). The
version is written as BASE/N (next free integer unless --version), atomically; see export/savedmodel.py for the
signatures and export/README.md for which client uses which. A model holding NaN or Inf weights is refused, naming
them, unless --allow-nonfinite; an --out that is a file or cannot be written is a one-line error.
"""

import json
import os

from dirtypixels_tf.catalog import DEFAULT_PRESET, INT8, TFLITE_QUANTIZE, UINT16_SIGNATURE
from dirtypixels_tf.commands.common import (
    UsageError,
    check_finite_weights,
    output_error,
    path_or_name,
    positive_int,
    sensor_spec,
)
from dirtypixels_tf.commands.simulate import check_data_source


def read_class_names(path):
    """Class names from a text file (one per line) or JSON (a list, or an object with "class_names" such as the
    simulation.json that `dirtypixels simulate` writes)."""
    with open(path, encoding="utf-8") as file:
        text = file.read()
    if path.endswith(".json"):
        document = json.loads(text)
        names = document.get("class_names") if isinstance(document, dict) else document
        if not isinstance(names, list):
            raise UsageError(f"--class-names {path!r}: expected a JSON list or an object with 'class_names'")
        return [str(name) for name in names]
    return [line.strip() for line in text.splitlines() if line.strip()]


def validate(args):
    """Checks that need no TensorFlow."""
    if args.quantize != "none" and not args.tflite:
        raise UsageError("--quantize applies to --tflite; give --tflite PATH.tflite")
    if args.onnx is not None and not args.onnx.endswith(".onnx"):
        raise UsageError(f"--onnx must name a .onnx file; received {args.onnx!r}")
    if args.tflite is not None and not args.tflite.endswith(".tflite"):
        raise UsageError(f"--tflite must name a .tflite file; received {args.tflite!r}")
    if args.class_names and not os.path.isfile(args.class_names):
        raise UsageError(f"--class-names: no such file {args.class_names!r}")
    if not args.out.strip():
        raise UsageError(f"--out must name the model's base path (a directory); received {args.out!r}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out must name the model's base path (a directory); {args.out!r} is a file")
    for flag, given in (
        ("--calibration-source", args.calibration_source),
        ("--calibration-files", args.calibration_files),
        ("--int8-isp", args.int8_isp),
    ):
        if given and args.quantize != INT8:
            raise UsageError(f"{flag} applies to --quantize int8; received --quantize {args.quantize}")
    if args.calibration_source and args.calibration_files:
        raise UsageError("give --calibration-source or --calibration-files, not both")
    for path in args.calibration_files or ():
        if not os.path.isfile(path):
            raise UsageError(f"--calibration-files: no such file {path!r}")
    for name in ("calibration_source", "parity_source"):
        if getattr(args, name):
            check_data_source(getattr(args, name), "--" + name.replace("_", "-"))


def default_class_names(source):
    """The class names a training run recorded (RUN_DIR/class_names.json, also beside a .keras file), or None."""
    from dirtypixels_tf.training.fit import CLASS_NAMES_FILE

    if os.path.isdir(source):
        path = os.path.join(source, CLASS_NAMES_FILE)
    elif source.endswith(".keras"):
        path = os.path.join(os.path.dirname(os.path.abspath(source)), CLASS_NAMES_FILE)
    else:
        return None  # a preset name
    return read_class_names(path) if os.path.isfile(path) else None


def _frames_source(spec, split, model_source):
    """(dataset of (image, label) or None for simulated scenes, its description) of the frames of a LiteRT export:
    data source `spec` (its `split`: fashion-mnist's "train" or "test"); without a spec, the data of the run
    directory `model_source` (its params.yaml's data.source with data.train_path or data.eval_path); else None."""
    from dirtypixels_tf.data.source_spec import open_source, resolve_source

    if spec is not None:
        return open_source(*resolve_source(spec), split=split)[0], f"{spec} {split}"
    from dirtypixels_tf.training import config as config_lib
    from dirtypixels_tf.training import data as training_data

    params = os.path.join(model_source, config_lib.PARAMS_FILE)
    if not os.path.isfile(params):
        return None, "simulated"

    config = config_lib.load_config(params)
    dataset = training_data.source_split(config, split)[0]
    if dataset is None:
        return None, f"simulated (the run's data.source {config.data.source!r} has no {split} path)"
    return dataset, f"the run's {config.data.source} {split}"


def file_calibration_frames(paths, image_size, sensor=DEFAULT_PRESET, per_channel=False):
    """The int8 representative data set from frame files, each read as `dirtypixels classify` reads it
    (serving/frames.read_frame: a DNG or camera RAW file as its central crop at its ISO, or, for a per-colour model,
    through the real-capture front end; a .npy mosaic with its noise estimated; an image simulated at the default
    light profile). {"raw" [N, H, W, 1], "alpha", "sigma" [N] (or [N, 3])} float32."""
    import numpy as np
    import tensorflow as tf

    from dirtypixels_tf.export.savedmodel import _check_sensor, from_sensor_codes
    from dirtypixels_tf.export.tflite import per_colour
    from dirtypixels_tf.serving.frames import read_frame

    preset = _check_sensor(sensor)[1]
    parts = []
    for path in paths:
        frame = read_frame(path, image_size, sensor=sensor, capture={"sensor": sensor} if per_channel else None)
        inputs = frame.inputs
        if frame.signature == UINT16_SIGNATURE:
            codes = (tf.constant(inputs[key]) for key in ("raw", "black_level", "white_level", "iso"))
            inputs = dict(
                zip(("raw", "alpha", "sigma"), (value.numpy() for value in from_sensor_codes(*codes, preset)))
            )
        parts.append(per_colour(inputs) if per_channel else inputs)
    return {key: np.concatenate([part[key] for part in parts]).astype(np.float32) for key in ("raw", "alpha", "sigma")}


def run(args):
    from tqdm import tqdm

    from dirtypixels_tf.export import export_savedmodel, export_tflite, read_export_metadata, tflite
    from dirtypixels_tf.models.components import with_per_channel_noise
    from dirtypixels_tf.models.loading import load_model

    class_names = read_class_names(args.class_names) if args.class_names else default_class_names(args.source)
    steps = 2 + (2 if args.tflite else 0) + (2 if args.onnx else 0)
    reports = []  # (export info, parity report, report path) of each on-device model
    with tqdm(total=steps, unit="step", disable=args.quiet) as progress:
        progress.set_description(f"loading {args.source}")
        model = load_model(args.source, args.num_classes)
        if args.per_channel_noise:
            model = with_per_channel_noise(model)
        check_finite_weights(model, args.allow_nonfinite)
        progress.update()
        progress.set_description("writing the SavedModel")
        fold = None if args.fold_batch_norm == "none" else args.fold_batch_norm
        try:
            path = export_savedmodel(
                model, args.out, args.version, args.sensor, args.top_k, class_names, fold_batch_norm=fold
            )
        except OSError as error:
            raise output_error("--out", args.out, error) from None
        progress.update()
        if args.tflite or args.onnx:
            source, parity_on = _frames_source(args.parity_source, "test", args.source)
            frames = tflite.parity_frames(model.image_size, args.parity_frames, sensor=args.sensor, source=source)
            if args.per_channel_noise:  # the same noise for the three colours
                frames = {level: tflite.per_colour(level_frames) for level, level_frames in frames.items()}
        if args.tflite:
            progress.set_description("converting to TFLite")
            calibration = None
            if args.quantize == INT8 and args.calibration_files:
                calibration = file_calibration_frames(
                    args.calibration_files, model.image_size, args.sensor, args.per_channel_noise
                )
                calibrated_on = f"{len(args.calibration_files)} files'"
            elif args.quantize == INT8:
                source, calibrated_on = _frames_source(args.calibration_source, "train", args.source)
                calibration = tflite.calibration_frames(model.image_size, args.sensor, source=source)
                calibration = tflite.per_colour(calibration) if args.per_channel_noise else calibration
            info = export_tflite(model, args.tflite, args.quantize, fold, calibration, isp_in_float=not args.int8_isp)
            progress.update()
            progress.set_description("LiteRT parity report")
            parity = tflite.tflite_parity(args.tflite, path, frames)
            reports.append((info, parity, tflite.write_parity_report(parity, info)))
            progress.update()
        if args.onnx:
            from dirtypixels_tf.export.onnx import export_onnx, onnx_parity

            progress.set_description("converting to ONNX")
            info = export_onnx(model, args.onnx, fold)
            progress.update()
            progress.set_description("ONNX parity report")
            parity = onnx_parity(args.onnx, path, frames)
            reports.append((info, parity, tflite.write_parity_report(parity, info)))
            progress.update()
    signatures = ", ".join(read_export_metadata(path)["signatures"])
    named = f"{len(class_names)} class names" if class_names else "no class names (give --class-names)"
    print(f"wrote {path} (signatures {signatures}; sensor {args.sensor} in {UINT16_SIGNATURE}; {named})")
    for info, parity, report_path in reports:
        if "quantize" in info:
            ops = "built-in and SELECT_TF_OPS (needs the Flex delegate)" if info["select_tf_ops"] else "built-in only"
            print(f"wrote {info['path']} ({info['bytes']:,} bytes, quantize={info['quantize']}, ops {ops})")
            if args.quantize == INT8:
                kept = "the ISP kept in float" if info["float_layers"] else "the ISP in int8 too (its physics in float)"
                print(f"int8 ranges calibrated on {calibrated_on} frames; {kept}")
        else:
            print(f"wrote {info['path']} ({info['bytes']:,} bytes, ONNX opset {info['opset']}, float32)")
        print(f"parity against the SavedModel on {parity_on} frames (wrote {report_path}):")
        print(tflite.format_parity_report(parity))
    return 0


def register(commands):
    export = commands.add_parser(
        "export",
        help="export a model as a SavedModel version for TF Serving (and TFLite)",
        description="Write SOURCE as BASE/N, a SavedModel with RAW-input signatures (serving_default: float RAW + "
        "alpha, sigma; raw_uint16: sensor values + black/white level + ISO; classify: tf.Examples for TF Serving's "
        "Classify API; isp: the intermediate image). The version directory appears only once complete.",
    )
    export.add_argument(
        "source",
        metavar="SOURCE",
        type=path_or_name("a model preset name"),
        help="preset name, .keras file, or run directory with model.keras",
    )
    export.add_argument("--out", required=True, help="the model's base path (versions are BASE/1, BASE/2, ...)")
    export.add_argument("--version", type=positive_int, default=None, help="version number (default: next free)")
    export.add_argument("--num-classes", type=positive_int, default=None, help="class count of a preset")
    export.add_argument(
        "--class-names",
        default=None,
        help="text file (one per line) or JSON list of class names (default: the training run's class_names.json)",
    )
    export.add_argument(
        "--sensor",
        type=sensor_spec,
        default=DEFAULT_PRESET,
        help=f"sensor noise preset or calibrated sensor.yaml baked into {UINT16_SIGNATURE}",
    )
    export.add_argument("--top-k", type=positive_int, default=5, help="classes in the top-k outputs (5)")
    export.add_argument(
        "--fold-batch-norm",
        choices=("head", "all", "none"),
        default="head",
        help="fold batch norms into the convolutions before them in the exported graphs: the head's (default; "
        "within the release parity bound), also the ISP prior's (all; faster, 1.1e-4 of the logits' scale from the "
        "release's own outputs), or none",
    )
    export.add_argument(
        "--per-channel-noise",
        action="store_true",
        help="alpha and sigma [B, 3] (one per colour) in the signatures: for white-balanced real captures "
        "(data/camera_raw.py); the weights are the same",
    )
    export.add_argument("--tflite", default=None, metavar="PATH.tflite", help="also write a TFLite model")
    export.add_argument(
        "--onnx",
        default=None,
        metavar="PATH.onnx",
        help="also write an ONNX model (float32, any batch size; needs the [onnx] extra) and its parity report",
    )
    export.add_argument(
        "--quantize",
        default="none",
        choices=TFLITE_QUANTIZE,
        help="TFLite weights and activations: float32 (none), float16 weights, dynamic range (int8 weights), or "
        "int8 (the head; the ISP stays float) calibrated on RAW frames simulated through --sensor (docs/mobile.md)",
    )
    export.add_argument(
        "--int8-isp",
        action="store_true",
        help="int8: quantize the ISP's convolutions too (its physics stays float): faster on the phone, but the "
        "image and some decisions move (docs/mobile.md); the parity report shows by how much",
    )
    export.add_argument(
        "--calibration-source",
        default=None,
        metavar="SOURCE",
        help="int8: calibrate on this data source (fashion-mnist's train split, an image folder or TFRecords) "
        "simulated through --sensor at 3, 6, 12 and 48 lux (default: a run directory's own training data, else "
        "smooth random scenes)",
    )
    export.add_argument(
        "--calibration-files",
        nargs="+",
        default=None,
        metavar="FILE",
        help="int8: calibrate on these frame files instead (DNG / camera RAW, .npy, PNG), each read as "
        "`dirtypixels classify` reads it (a DNG at its ISO through --sensor; per colour with --per-channel-noise)",
    )
    export.add_argument(
        "--parity-source",
        default=None,
        metavar="SOURCE",
        help="the parity reports' frames from this data source (fashion-mnist's test split, ...), with top-1 "
        "against its labels (default: a run directory's own test data, else smooth random scenes, agreement only)",
    )
    export.add_argument(
        "--parity-frames", type=positive_int, default=64, help="frames per light level of the parity reports"
    )
    export.add_argument("--quiet", action="store_true", help="no progress bar")
    export.add_argument(
        "--allow-nonfinite", action="store_true", help="export the model even if some weights are NaN or Inf"
    )
    export.set_defaults(run=run, validate=validate, parser=export)
