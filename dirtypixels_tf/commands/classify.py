"""`dirtypixels classify FILE... --server HOST:PORT --model NAME`: classify frames with a model server.

Each FILE is a .npy RAW frame, an ordinary image (simulated at --profile) or a camera RAW / DNG file; see
dirtypixels_tf/serving/frames.py for how each is turned into a request. Prints the top-k labels with scores. A file
that cannot be read, is over the pixel budget (--max-megapixels, checked from its header) or is refused by the server
is reported on stderr in one line and the others are still classified; the exit status is then 1. A model served
with per-colour noise (exported with --per-channel-noise) gets camera RAW files through the real-capture front end
(--white-balance, --exposure, --noise; data/camera_raw.py).
"""

import sys

from dirtypixels_tf.catalog import (
    CLASSIFY_SIGNATURE,
    DEFAULT_PRESET,
    DEFAULT_PROFILE,
    ISP_SIGNATURE,
    PATTERNS,
    RELEASE_PATTERN,
    SERVING_SIGNATURE,
    SIGNATURES,
    UINT16_SIGNATURE,
)
from dirtypixels_tf.commands.common import (
    FILE_ERRORS,
    UsageError,
    add_capture_arguments,
    add_max_megapixels,
    capture_options,
    non_negative_int,
    positive_int,
    report_file_error,
    sensor_spec,
)


def _top_k(outputs, k):
    """[(label, score)] best first, from the top-k outputs of the export (or from probabilities)."""
    import numpy as np

    if "top_k_labels" in outputs and "top_k_scores" in outputs:
        labels = [v.decode("utf-8", "replace") for v in outputs["top_k_labels"][0]]
        return list(zip(labels, outputs["top_k_scores"][0].tolist()))[:k]
    if "probabilities" in outputs:
        order = np.argsort(-outputs["probabilities"][0])[:k]
        return [(str(i), float(outputs["probabilities"][0][i])) for i in order]
    raise UsageError(f"the signature's outputs {sorted(outputs)} hold no class scores; use {SERVING_SIGNATURE}")


def run(args):
    import grpc

    from dirtypixels_tf.export.savedmodel import make_example
    from dirtypixels_tf.serving.client import PredictionClient
    from dirtypixels_tf.serving.frames import read_frame

    if (args.alpha is None) != (args.sigma is None):
        raise UsageError(f"--alpha and --sigma must be given together; received {args.alpha!r} and {args.sigma!r}")
    status = 0
    with PredictionClient(args.server, timeout=args.timeout) as client:
        try:
            image_size = client.image_size(args.model, args.version)
            signatures, _ = client.metadata(args.model, args.version)
        except grpc.RpcError as error:
            print(f"dirtypixels classify: {args.server}: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
        alpha_shape = signatures[SERVING_SIGNATURE].inputs["alpha"].tensor_shape.dim
        capture = dict(capture_options(args), sensor=args.sensor) if len(alpha_shape) == 2 else None
        for index, path in enumerate(args.files):
            try:
                frame = read_frame(
                    path,
                    image_size,
                    profile=args.profile,
                    sensor=args.sensor,
                    pattern=args.pattern,
                    alpha=args.alpha,
                    sigma=args.sigma,
                    black_level=args.black_level,
                    white_level=args.white_level,
                    iso=args.iso,
                    seed=(args.seed, index),
                    capture=capture,
                    max_pixels=int(args.max_megapixels * 1e6),
                )
            except FILE_ERRORS as error:  # one unreadable file is reported; the others are classified
                report_file_error(path, error)
                status = 1
                continue
            signature = args.signature or frame.signature
            try:
                if signature == CLASSIFY_SIGNATURE:
                    if frame.signature != SERVING_SIGNATURE:
                        raise UsageError(f"{path}: signature 'classify' takes float RAW frames, not sensor values")
                    inputs = frame.inputs
                    example = make_example(inputs["raw"][0], inputs["alpha"][0], inputs["sigma"][0])
                    scores = client.classify([example], args.model, CLASSIFY_SIGNATURE, args.version)[0]
                    best = sorted(scores, key=lambda pair: -pair[1])[: args.top_k]
                    version = "latest" if args.version is None else args.version
                else:
                    outputs, spec = client.request(frame.inputs, args.model, signature, args.version)
                    best = _top_k(outputs, args.top_k)
                    version = spec.version.value
            except grpc.RpcError as error:
                print(f"{path}: {error.code().name}: {error.details()}", file=sys.stderr)
                status = 1
                continue
            print(f"{path}: {frame.description}; {args.model} version {version}, signature {signature}")
            for rank, (label, score) in enumerate(best, 1):
                print(f"  {rank}. {label:<30} {score:.4f}")
    return status


def register(commands):
    parser = commands.add_parser(
        "classify",
        help="classify RAW frames, images or camera RAW files with a model server",
        description="Send each FILE to a TF Serving (or `dirtypixels serve`) model over gRPC and print the top "
        "labels. .npy: a RAW mosaic in [0, 1] (noise from --alpha/--sigma, a fixed --profile, or else estimated from "
        f"the frame itself) or integer sensor values (--black-level, --white-level, --iso; signature {UINT16_SIGNATURE}). "
        "PNG/JPEG: simulated at --profile with the sensor model at the model's size. DNG/camera RAW: central crop, "
        f"levels and ISO from the file ({UINT16_SIGNATURE}; without an ISO, the noise is estimated from the frame).",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help=".npy, image or camera RAW files")
    parser.add_argument("--server", required=True, metavar="HOST:PORT", help="gRPC address, e.g. 127.0.0.1:8500")
    parser.add_argument("--model", required=True, help="model name on the server")
    parser.add_argument("--version", type=positive_int, default=None, help="model version (default: latest)")
    parser.add_argument(
        "--signature",
        default=None,
        help=f"{', '.join(s for s in SIGNATURES if s != ISP_SIGNATURE)} (default: by kind of file)",
    )
    parser.add_argument(
        "--profile",
        default=None,
        help=f"light profile of images (default {DEFAULT_PROFILE}) and of .npy mosaics without --alpha/--sigma (default: their "
        "noise is estimated from the frame itself)",
    )
    parser.add_argument(
        "--sensor",
        type=sensor_spec,
        default=DEFAULT_PRESET,
        help=f"sensor noise preset or calibrated sensor.yaml of the simulation ({DEFAULT_PRESET})",
    )
    parser.add_argument(
        "--pattern", default=RELEASE_PATTERN, choices=PATTERNS, help=f"model's Bayer phase ({RELEASE_PATTERN})"
    )
    parser.add_argument("--alpha", type=float, default=None, help="Poisson scale of the frames ([0, 1] units)")
    parser.add_argument("--sigma", type=float, default=None, help="Gaussian std of the frames ([0, 1] units)")
    parser.add_argument("--black-level", type=float, default=None, help="black level of integer .npy sensor values")
    parser.add_argument("--white-level", type=float, default=None, help="white level of integer .npy sensor values")
    parser.add_argument("--iso", type=float, default=None, help="ISO of integer .npy values; overrides a RAW file's")
    add_capture_arguments(parser, "camera RAW files for a model served with per-colour noise")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the simulated noise")
    parser.add_argument("--top-k", type=positive_int, default=5, help="labels printed per file (5)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (30)")
    add_max_megapixels(parser)
    parser.set_defaults(run=run, parser=parser)
