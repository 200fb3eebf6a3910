"""A local model server with TF Serving's gRPC API (and its REST API), on top of exported SavedModels.

TF Serving itself runs from its container image (see serving/ at the repository root); this server implements the
same PredictionService (Predict, Classify, GetModelMetadata) and ModelService (GetModelStatus) from the
tensorflow-serving-api protos, so clients and tests talk to it exactly as they would to TF Serving. It serves one
model from one base path (repository.py: versions, polling, labels, warm-up).

The parts: core.py answers requests (protos in, protos out; the request semantics and status codes are listed
there), grpc_api.py (grpc.aio) and rest.py (aiohttp) move bytes. Both front ends run in one asyncio event loop on
a thread of their own; requests whose message has arrived whole run in one pool of `max_workers` threads. A call
or upload that stalls (headers and no body, a gRPC stream without its message) holds a coroutine, never a worker,
so it cannot slow the others; a REST body that does not arrive within `read_timeout` seconds is answered 408, and
a connection idle (or stuck in its headers) for `read_timeout` seconds is closed; a gRPC message not whole within
`read_timeout` seconds is answered DEADLINE_EXCEEDED.
Limits: a message over --max-message-mb (gRPC: RESOURCE_EXHAUSTED from gRPC itself; REST: 413 from the
Content-Length, before the body is read), a REST body larger than the signature's largest request allows (413,
before it is read), a tensor declared over it (RESOURCE_EXHAUSTED, from the TensorProto's shape before any array is
built), a batch over --max-batch (INVALID_ARGUMENT), more than --max-calls open gRPC calls (RESOURCE_EXHAUSTED), more
working memory than --max-inflight-mb (waits, then RESOURCE_EXHAUSTED or 429). Together they bound the server's
memory: limits.py states the bound as a formula of these settings.
"""

import asyncio
import os
import socket
import threading
from concurrent import futures

import grpc
from aiohttp import web

from dirtypixels_tf.serving.batching import Batcher
from dirtypixels_tf.serving.core import PredictionCore, call_signature
from dirtypixels_tf.serving.grpc_api import add_services
from dirtypixels_tf.serving.limits import MIB, ByteBudget, memory_bound_bytes
from dirtypixels_tf.serving.repository import ModelRepository
from dirtypixels_tf.serving.rest import ProtocolLog, RestApi, make_app

LISTEN_BACKLOG = 1024  # the REST socket's accept queue (http.server's default of 5 reset concurrent clients)


def _address(host, port):
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _positive(value, label):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{label} must be a positive number; received {value!r}")
    return value


class LocalModelServer:
    """Serve the SavedModel versions under `base_path` over gRPC (and REST if rest_port is not None).

    Args:
        base_path: directory of integer-named versions (export/savedmodel.py writes them).
        model_name: the name clients ask for (default: the base path's last component, as TF Serving's image).
        host: interface to bind (127.0.0.1 by default: only this machine can connect).
        port, rest_port: TCP ports; 0 picks a free one (read `port` and `rest_port` after start()).
        poll_seconds: how often the base path is scanned for new versions.
        max_workers: requests (gRPC and REST together) computed at once; more wait their turn.
        max_message_mb: the largest request and response, in MiB, and the largest tensor a request may declare.
        max_batch: the largest batch a request may hold.
        read_timeout: seconds a request may take to send its body (REST: 408 after; gRPC: DEADLINE_EXCEEDED); REST
            connections idle or stuck in their headers that long are closed; a request waits at most that long for
            room in the --max-inflight-mb budget.
        max_calls: gRPC calls open at once (and HTTP/2 streams per connection); more are RESOURCE_EXHAUSTED.
        max_inflight_mb: MiB of working memory that whole requests (gRPC and REST) may reserve together (limits.py).
        num_versions, version_labels: see repository.ModelRepository.
        batching: a batching.BatchingParameters to merge concurrent Predict requests (TF Serving's
            --enable_batching), or None; request threads grow by its max_batch_size, as they only wait for a batch.
    Use as a context manager, or start() / stop(); stop lets requests in flight finish (grace seconds).
    """

    def __init__(
        self,
        base_path,
        model_name=None,
        host="127.0.0.1",
        port=8500,
        rest_port=None,
        poll_seconds=2.0,
        max_workers=4,
        max_message_mb=64,
        max_batch=64,
        read_timeout=30.0,
        max_calls=64,
        max_inflight_mb=1024,
        num_versions=1,
        version_labels=None,
        batching=None,
    ):
        base_path = os.fspath(base_path)
        name = model_name or os.path.basename(os.path.normpath(os.path.abspath(base_path)))
        for value, label in (
            (max_workers, "max_workers"),
            (max_message_mb, "max_message_mb"),
            (max_batch, "max_batch"),
            (read_timeout, "read_timeout"),
            (max_calls, "max_calls"),
            (max_inflight_mb, "max_inflight_mb"),
            (poll_seconds, "poll_seconds"),
        ):
            _positive(value, label)
        for value, label in ((max_batch, "max_batch"), (max_calls, "max_calls")):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"{label} must be a positive integer; received {value!r}")
        self.host = host
        self.port = port
        self.rest_port = rest_port
        self.poll_seconds = float(poll_seconds)
        self.max_workers = int(max_workers)
        self.max_message_bytes = int(max_message_mb * 1024 * 1024)
        self.read_timeout = float(read_timeout)
        self.max_calls = int(max_calls)
        self.budget = ByteBudget(int(max_inflight_mb * MIB))
        self.repository = ModelRepository(name, base_path, num_versions, version_labels)
        self.core = PredictionCore(self.repository, max_batch=int(max_batch), max_bytes=self.max_message_bytes)
        self.repository.warmup = self.core.warmup
        self.batching = batching
        self._executor = None
        self._loop = None
        self._thread = None
        self._grpc = None
        self._rest = None

    @property
    def model_name(self):
        return self.repository.name

    @property
    def memory_bound_bytes(self):
        """The most resident memory requests may add to the loaded, warmed-up server (limits.py)."""
        return memory_bound_bytes(self.max_calls, self.max_message_bytes, self.budget.limit)

    @property
    def address(self):
        """HOST:PORT of the gRPC endpoint."""
        return _address(self.host, self.port)

    def start(self):
        """Load the current versions, then serve; returns self once both endpoints accept requests."""
        self.repository.refresh()  # (warm-up runs unbatched, before the batcher starts)
        threads = self.max_workers + (self.batching.max_batch_size if self.batching else 0)
        self._executor = futures.ThreadPoolExecutor(threads, thread_name_prefix="serve")
        if self.batching is not None:
            self.core.batcher = Batcher(self.batching, call_signature)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="serving-loop", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        except BaseException:
            self.stop(grace=0)
            raise
        self.repository.start_polling(self.poll_seconds)
        return self

    async def _start(self):
        options = [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_concurrent_streams", self.max_calls),
        ]
        self._grpc = grpc.aio.server(
            migration_thread_pool=self._executor, options=options, maximum_concurrent_rpcs=self.max_calls
        )
        add_services(self._grpc, self.core, self._executor, self.budget, self.read_timeout)
        address = _address(self.host, self.port)
        try:
            port = self._grpc.add_insecure_port(address)
        except RuntimeError as error:
            raise OSError(f"cannot bind gRPC to {address}: {error}") from None
        if port == 0:
            raise OSError(f"cannot bind gRPC to {address}: address unavailable")
        self.port = port
        await self._grpc.start()
        if self.rest_port is not None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            try:
                sock = socket.create_server((self.host, self.rest_port), family=family, backlog=LISTEN_BACKLOG)
            except OSError as error:
                raise OSError(f"cannot bind REST to {_address(self.host, self.rest_port)}: {error}") from None
            self.rest_port = sock.getsockname()[1]
            app = make_app(RestApi(self.core), self._executor, self.max_message_bytes, self.read_timeout, self.budget)
            self._rest = web.AppRunner(
                app,
                access_log=None,
                handle_signals=False,
                logger=ProtocolLog(),
                keepalive_timeout=self.read_timeout,  # also closes connections whose headers never end
            )
            await self._rest.setup()
            await web.SockSite(self._rest, sock, backlog=LISTEN_BACKLOG).start()

    async def _stop(self, grace):
        if self._rest is not None:
            await self._rest.cleanup()
            self._rest = None
        if self._grpc is not None:
            await self._grpc.stop(grace)
            self._grpc = None
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:  # connections still open (e.g. stalled uploads)
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def stop(self, grace=5.0):
        """Stop accepting requests, let those in flight finish (up to `grace` seconds), stop polling."""
        if self._loop is not None:
            if self._thread.is_alive():
                asyncio.run_coroutine_threadsafe(self._stop(grace), self._loop).result()
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join()
            self._loop.close()
            self._loop = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self.core.batcher is not None:
            self.core.batcher.stop()
            self.core.batcher = None
        self.repository.stop_polling()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
