"""Serving: a local TF Serving-compatible model server, its Python client, and the TF Serving deployment files.

server.py (LocalModelServer: one asyncio loop serving gRPC through grpc.aio and REST through aiohttp, a pool of
--max-workers threads for complete requests), core.py (PredictionCore: requests checked from their declared shapes,
then run), grpc_api.py (PredictionService, ModelService), rest.py (RestApi), repository.py (versions on disk,
polling, labels), frames.py (files to requests), client.py (PredictionClient), config.py (models.config,
batching, monitoring, compose)."""

from dirtypixels_tf._lazy import lazy_exports

_EXPORTS = {
    "LocalModelServer": "dirtypixels_tf.serving.server",
    "PredictionCore": "dirtypixels_tf.serving.core",
    "RestApi": "dirtypixels_tf.serving.rest",
    "PredictionClient": "dirtypixels_tf.serving.client",
    "ModelRepository": "dirtypixels_tf.serving.repository",
    "ServingError": "dirtypixels_tf.serving.repository",
    "read_frame": "dirtypixels_tf.serving.frames",
    "read_image": "dirtypixels_tf.serving.frames",
    "write_serving_config": "dirtypixels_tf.serving.config",
    "check_serving_config": "dirtypixels_tf.serving.config",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
