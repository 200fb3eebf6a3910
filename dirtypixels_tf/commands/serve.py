"""`dirtypixels serve MODEL_BASE_PATH`: the local TF Serving-compatible server (serving/server.py) until Ctrl-C."""

import argparse
import logging
import signal
import sys
import threading

from dirtypixels_tf.commands.common import UsageError, positive_float, positive_int
from dirtypixels_tf.commands.serving_config import parse_labels


def run(args):
    from dirtypixels_tf.serving.server import LocalModelServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        server = LocalModelServer(
            args.base_path,
            model_name=args.model_name,
            host=args.host,
            port=args.port,
            rest_port=args.rest_port,
            poll_seconds=args.poll_seconds,
            max_workers=args.max_workers,
            max_message_mb=args.max_message_mb,
            max_batch=args.max_batch,
            read_timeout=args.read_timeout,
            max_calls=args.max_calls,
            max_inflight_mb=args.max_inflight_mb,
            num_versions=args.num_versions,
            version_labels=parse_labels(args.version_label),
            batching=_batching(args),
        )
        server.start()
    except (OSError, ValueError) as error:
        raise UsageError(str(error)) from None
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    rest = f", REST {server.host}:{server.rest_port}" if server.rest_port is not None else ""
    versions = server.repository.available_versions() or "none yet"
    print(
        f"serving model {server.model_name!r} (versions {versions}) from {args.base_path}: gRPC {server.address}"
        f"{rest}; polling every {args.poll_seconds:g} s; requests may add at most "
        f"{server.memory_bound_bytes / 2**20:.0f} MiB of memory; Ctrl-C stops",
        flush=True,
    )
    while not stop.wait(0.5):
        pass
    print("stopping: letting requests in flight finish", flush=True)
    batcher = server.core.batcher
    server.stop(grace=5.0)
    if batcher is not None and batcher.calls:
        calls, examples = sum(batcher.calls.values()), sum(size * n for size, n in batcher.calls.items())
        print(
            f"batching: {examples} examples in {calls} calls (mean {examples / calls:.1f}, largest "
            f"{max(batcher.calls)})",
            flush=True,
        )
    return 0


def _batching(args):
    """BatchingParameters from --enable-batching and --batching-parameters-file (TF Serving's defaults without
    one), or None."""
    from dirtypixels_tf.serving.batching import BatchingParameters

    if not args.enable_batching:
        return None
    if args.batching_parameters_file is None:
        return BatchingParameters()
    return BatchingParameters.from_file(args.batching_parameters_file)


def validate(args):
    if args.batching_parameters_file is not None and not args.enable_batching:
        raise UsageError(
            f"--batching-parameters-file is read only with --enable-batching; received "
            f"{args.batching_parameters_file!r} without it"
        )


def _port(text):
    value = int(text) if text.isdigit() else -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 65535] (0 picks a free one); received {text!r}")
    return value


def register(commands):
    from dirtypixels_tf.serving.limits import BOUND_TEXT

    parser = commands.add_parser(
        "serve",
        help="serve exported SavedModels with TF Serving's gRPC API (and REST :predict)",
        description="Serve the versions under MODEL_BASE_PATH (export --out) with TF Serving's PredictionService "
        "(Predict, Classify, GetModelMetadata) and ModelService (GetModelStatus) on gRPC, and optionally REST "
        "POST /v1/models/NAME:predict. Requests over --max-message-mb or --max-batch are refused before they are "
        "expanded; calls that stall hold no worker. New versions are picked up every --poll-seconds; the latest is "
        f"served. Memory: {BOUND_TEXT} (MiB; base: the loaded model after one request), whatever clients send or "
        "withhold: at most --max-calls gRPC calls, each holding one message of at most --max-message-mb for at most "
        "--read-timeout s, and whole requests reserving their working memory (4x a gRPC message, 12x a REST body) "
        "from --max-inflight-mb (or waiting up to --read-timeout s, then RESOURCE_EXHAUSTED / 429).",
    )
    parser.add_argument("base_path", metavar="MODEL_BASE_PATH", help="directory of integer-named versions")
    parser.add_argument("--model-name", default=None, help="name clients ask for (default: the directory's name)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1: this machine only)")
    parser.add_argument("--port", type=_port, default=8500, help="gRPC port (8500; 0 picks a free one)")
    parser.add_argument("--rest-port", type=_port, default=None, help="also serve REST on this port (e.g. 8501)")
    parser.add_argument("--poll-seconds", type=positive_float, default=2.0, help="version polling interval (2)")
    parser.add_argument("--max-workers", type=positive_int, default=4, help="requests handled at once (4)")
    parser.add_argument("--max-message-mb", type=positive_float, default=64.0, help="largest message in MiB (64)")
    parser.add_argument(
        "--max-batch", type=positive_int, default=64, help="largest batch a request may hold (64; more: refused)"
    )
    parser.add_argument(
        "--read-timeout",
        type=positive_float,
        default=30.0,
        help="seconds a client may take to send its request (30; REST: 408, gRPC: DEADLINE_EXCEEDED)",
    )
    parser.add_argument(
        "--max-calls", type=positive_int, default=64, help="gRPC calls open at once (64; more: RESOURCE_EXHAUSTED)"
    )
    parser.add_argument(
        "--max-inflight-mb",
        type=positive_float,
        default=1024.0,
        help="MiB of working memory whole requests may reserve together (1024)",
    )
    parser.add_argument("--num-versions", type=positive_int, default=1, help="latest versions kept loaded (1)")
    parser.add_argument("--version-label", action="append", metavar="LABEL=VERSION", help="a version label")
    parser.add_argument(
        "--enable-batching",
        action="store_true",
        help="merge concurrent Predict requests of one version and signature into batches (TF Serving's batching)",
    )
    parser.add_argument(
        "--batching-parameters-file",
        default=None,
        metavar="FILE",
        help="TF Serving's BatchingParameters in text format (serving/batching_parameters.txt); TF Serving's "
        "defaults without it",
    )
    parser.set_defaults(run=run, parser=parser, validate=validate)
