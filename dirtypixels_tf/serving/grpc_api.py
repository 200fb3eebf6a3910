"""The gRPC front end of the local model server: TF Serving's PredictionService and ModelService on grpc.aio.

Why asyncio: with grpc.aio a call is a coroutine until its request message has arrived whole, so a client that opens
a call and never sends its message holds no worker; the request then runs in the server's worker pool (shared with
REST, see server.py), which only ever sees complete requests.
Every method is served as a stream of requests of which the first is read, so that the server, not the client,
decides how long a message may take to arrive: a message not whole within `read_timeout` seconds (stalled, or cut
short by the client ending its stream) is answered DEADLINE_EXCEEDED and its bytes are dropped; a call that ends
without a message, or whose message is not a valid proto, is INVALID_ARGUMENT; a whole message then reserves its
working memory from the server's byte budget (limits.py) or waits for it, and is RESOURCE_EXHAUSTED if none frees up
in time. Regress, MultiInference and HandleReloadConfigRequest are UNIMPLEMENTED (gRPC's answer to a method not
served). A message over --max-message-mb is refused by gRPC itself with RESOURCE_EXHAUSTED ("Received message larger
than max"); more than --max-calls open calls likewise ("Concurrent RPC limit exceeded").
"""

import asyncio
import logging

import grpc
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)

from dirtypixels_tf.serving.limits import GRPC_EXPANSION, MIB, release_free_memory
from dirtypixels_tf.serving.repository import ServingError

LOGGER = logging.getLogger("dirtypixels_tf.serving")


def _release_soon():
    """Trim the heap once gRPC has freed what it held of a message that never became whole (after the abort)."""
    asyncio.get_running_loop().call_later(0.5, release_free_memory)


def _parse_and_run(method, request_class, data):
    try:
        request = request_class.FromString(data)
    except DecodeError as error:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, f"malformed {request_class.__name__} message: {error}"
        ) from None
    return method(request)


def _method_handler(method, request_class, executor, budget, read_timeout):
    """One unary method: read the request message within the read timeout, reserve its memory, answer in a worker."""

    async def handle(unused_request_iterator, context):
        try:
            data = await asyncio.wait_for(context.read(), read_timeout)
        except asyncio.TimeoutError:
            _release_soon()
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the request message did not arrive whole within {read_timeout:g} s (--read-timeout)",
            )
        if data is grpc.aio.EOF:  # the client ended its stream (or went) before a whole message
            _release_soon()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the call ended without a whole request message")
        reserved = len(data) * GRPC_EXPANSION
        if not await budget.acquire(reserved, read_timeout):
            del data
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the server is busy: a request of {reserved / MIB:.1f} MiB working memory does not fit in the "
                f"{budget.limit / MIB:g} MiB of --max-inflight-mb within {read_timeout:g} s",
            )
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, _parse_and_run, method, request_class, data)
        except ServingError as error:
            await context.abort(error.code, error.message)
        except Exception as error:  # a bug answers INTERNAL and the server keeps serving
            LOGGER.exception("internal error")
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
        finally:
            del data
            await budget.release(reserved)

    return grpc.stream_unary_rpc_method_handler(
        handle, response_serializer=lambda response: response.SerializeToString()
    )


def add_services(server, core, executor, budget, read_timeout):
    """Register PredictionService and ModelService of `core` on a grpc.aio server; requests run in `executor`."""
    services = {
        "tensorflow.serving.PredictionService": {
            "Predict": (core.predict, predict_pb2.PredictRequest),
            "Classify": (core.classify, classification_pb2.ClassificationRequest),
            "GetModelMetadata": (core.get_model_metadata, get_model_metadata_pb2.GetModelMetadataRequest),
        },
        "tensorflow.serving.ModelService": {
            "GetModelStatus": (core.get_model_status, get_model_status_pb2.GetModelStatusRequest),
        },
    }
    for service, methods in services.items():
        handlers = {
            name: _method_handler(method, request_class, executor, budget, read_timeout)
            for name, (method, request_class) in methods.items()
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
