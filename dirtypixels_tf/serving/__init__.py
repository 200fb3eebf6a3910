"""Serving: a local TF Serving-compatible model server (gRPC PredictionService and ModelService, REST), its
Python client, and the TF Serving deployment files (models.config, batching, monitoring, compose)."""

from dirtypixels_tf._lazy import lazy_exports

_EXPORTS = {
    "LocalModelServer": "dirtypixels_tf.serving.server",
    "PredictionClient": "dirtypixels_tf.serving.client",
    "ModelRepository": "dirtypixels_tf.serving.repository",
    "ServingError": "dirtypixels_tf.serving.repository",
    "read_frame": "dirtypixels_tf.serving.frames",
    "write_serving_config": "dirtypixels_tf.serving.config",
    "check_serving_config": "dirtypixels_tf.serving.config",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
