"""Keras layers built from the physics of the sensor: generalized Anscombe transform, soft projection onto the
measurements, shrinkage fields, learned priors and Bayer helpers (conventions and how to extend them:
docs/layers.md)."""

from dirtypixels_tf._lazy import lazy_exports

_EXPORTS = {
    "GeneralizedAnscombe": "dirtypixels_tf.layers.anscombe",
    "InverseAnscombe": "dirtypixels_tf.layers.anscombe",
    "SoftProjection": "dirtypixels_tf.layers.projection",
    "ShrinkageFields": "dirtypixels_tf.layers.shrinkage",
    "ShrinkageFieldsStage": "dirtypixels_tf.layers.shrinkage",
    "RbfShrinkage": "dirtypixels_tf.layers.shrinkage",
    "CnnProximal": "dirtypixels_tf.layers.shrinkage",
    "ResidualUNetPrior": "dirtypixels_tf.layers.priors",
    "LiuEncodingModule": "dirtypixels_tf.layers.priors",
    "LiuDecodingModule": "dirtypixels_tf.layers.priors",
    "NidfUNet": "dirtypixels_tf.layers.priors",
    "BilinearDemosaic": "dirtypixels_tf.layers.bayer",
    "MosaicAdjoint": "dirtypixels_tf.layers.bayer",
    "PackBayer": "dirtypixels_tf.layers.bayer",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
