"""Models: ISPs (RAW mosaic in, image out), classifier and dense (segmentation) heads, the joint models, and named presets with their
parameter and multiply-add counts.

    from dirtypixels_tf.models import build_preset
    model = build_preset("joint_mobilenet_v1_128")   # inputs raw, alpha, sigma; outputs logits, image
"""

from dirtypixels_tf._lazy import lazy_exports

_EXPORTS = {
    "PRESETS": "dirtypixels_tf.models.presets",
    "Preset": "dirtypixels_tf.models.presets",
    "build_preset": "dirtypixels_tf.models.presets",
    "count_preset": "dirtypixels_tf.models.presets",
    "AnscombeNetwork": "dirtypixels_tf.models.isp",
    "BilinearIsp": "dirtypixels_tf.models.isp",
    "ChenUNet": "dirtypixels_tf.models.isp",
    "ShrinkageFieldsIsp": "dirtypixels_tf.models.isp",
    "LiuDenoiser": "dirtypixels_tf.models.isp",
    "NidfCascade": "dirtypixels_tf.models.isp",
    "build_isp": "dirtypixels_tf.models.isp",
    "Isp": "dirtypixels_tf.models.isp",
    "ISP_CLASSES": "dirtypixels_tf.models.isp",
    "ModelSpec": "dirtypixels_tf.models.spec",
    "build_model": "dirtypixels_tf.models.spec",
    "JointClassifier": "dirtypixels_tf.models.joint",
    "IspModel": "dirtypixels_tf.models.components",
    "with_per_channel_noise": "dirtypixels_tf.models.components",
    "HeadClassifier": "dirtypixels_tf.models.joint",
    "JointSegmenter": "dirtypixels_tf.models.segmentation",
    "HeadSegmenter": "dirtypixels_tf.models.segmentation",
    "build_dense_head": "dirtypixels_tf.models.segmentation",
    "dense_head_names": "dirtypixels_tf.models.segmentation",
    "get_preset": "dirtypixels_tf.models.presets",
    "build_head": "dirtypixels_tf.models.heads",
    "head_names": "dirtypixels_tf.models.heads",
    "load_model": "dirtypixels_tf.models.loading",
    "convert_checkpoint": "dirtypixels_tf.models.tf1_checkpoints",
    "CheckpointError": "dirtypixels_tf.models.tf1_checkpoints",
    "read_checkpoint": "dirtypixels_tf.models.tf1_checkpoints",
    "count_params": "dirtypixels_tf.models.counting",
    "count_multiply_adds": "dirtypixels_tf.models.counting",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
