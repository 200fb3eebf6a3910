"""The gRPC front end of the local model server: TF Serving's PredictionService and ModelService on grpc.aio.

Why asyncio: with grpc.aio a call is a coroutine until its request message has arrived whole, so a client that opens
a call and never sends its message holds no worker; the request then runs in the server's worker pool (shared with
REST, see server.py), which only ever sees complete requests. Regress, MultiInference and HandleReloadConfigRequest
are UNIMPLEMENTED (the generated base classes' answer). A message over --max-message-mb is refused by gRPC itself
with RESOURCE_EXHAUSTED ("Received message larger than max").
"""

import asyncio
import logging

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from dirtypixels_tf.serving.repository import ServingError

LOGGER = logging.getLogger("dirtypixels_tf.serving")


async def _answer(context, executor, method, request):
    """Run `method(request)` in the worker pool; ServingErrors become their status, bugs INTERNAL."""
    try:
        return await asyncio.get_running_loop().run_in_executor(executor, method, request)
    except ServingError as error:
        await context.abort(error.code, error.message)
    except Exception as error:  # a bug answers INTERNAL and the server keeps serving
        LOGGER.exception("internal error")
        await context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core, executor):
        self.core, self.executor = core, executor

    async def Predict(self, request, context):
        return await _answer(context, self.executor, self.core.predict, request)

    async def Classify(self, request, context):
        return await _answer(context, self.executor, self.core.classify, request)

    async def GetModelMetadata(self, request, context):
        return await _answer(context, self.executor, self.core.get_model_metadata, request)


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core, executor):
        self.core, self.executor = core, executor

    async def GetModelStatus(self, request, context):
        return await _answer(context, self.executor, self.core.get_model_status, request)


def add_services(server, core, executor):
    """Register both services of `core` on a grpc.aio server; requests run in `executor`."""
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(core, executor), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(core, executor), server)
