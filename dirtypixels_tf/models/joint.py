"""The joint model: RAW frames in, the ISP's task image and the classifier's logits out, as one Keras model.

Inputs (by name): "raw" [B, H, W, 1] float32 in [0, 1], "alpha" and "sigma" [B], and "psf" [B, kh, kw, 3] for an
ISP that deblurs with per-image PSFs. Outputs: {"logits": [B, classes], "image": [B, H, W, 3]} (plus
"denoised" for the NIDF cascade). "image" is the ISP's linear output in about [0, 1], not clipped. Before the head,
a HeadPreprocessing layer clips it to [0, 1] (as the release's nets/mobilenet_isp.py does with tf.maximum /
tf.minimum; clip=False is the unclipped variant) and applies the head's own input normalization (e.g. [-1, 1] for
MobileNet and Inception-v4, see heads.preprocess_for_head), so callers always feed RAW values in [0, 1]. The clip
passes no gradient to pixels outside [0, 1], as in the release. The sub-layers are named "isp",
"head_preprocessing" and the head's own name, so stage-1 weights load by component.
"""

import keras

from dirtypixels_tf.models import heads
from dirtypixels_tf.models.isp import isp_model

FREEZE_CHOICES = (None, "isp", "head")


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class HeadPreprocessing(keras.layers.Layer):
    """Clip images to [0, 1] (clip=True, the release's wiring), then map them to what the head named `head_name`
    expects (heads.preprocess_for_head)."""

    def __init__(self, head_name, clip=True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(clip, bool):
            raise ValueError(f"clip must be True or False; received {clip!r}")
        self.head_name = head_name
        self.clip = clip
        self.preprocess = heads.preprocess_for_head(head_name)

    def call(self, images):
        if self.clip:
            images = keras.ops.minimum(keras.ops.maximum(images, 0.0), 1.0)
        return self.preprocess(images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "head_name": self.head_name, "clip": self.clip}


def joint_classifier(
    isp, head, head_name, image_size, psf_size=None, freeze=None, name="joint_classifier", clip_image=True
):
    """One Keras model: ISP layer `isp` then the head model `head` (built by heads.build_head as `head_name`).

    image_size: (H, W) of the RAW frames, which is also the size of the head's input (no resizing: a head built
    for another size is refused with the size it expects). freeze: None, "isp" or "head" (made non-trainable;
    a frozen head also keeps its batch-norm statistics, as Liu et al. train only the denoiser). clip_image: clip
    the ISP's image to [0, 1] before the head (the release's wiring; False feeds it unclipped).
    """
    if freeze not in FREEZE_CHOICES:
        raise ValueError(f"freeze must be one of {FREEZE_CHOICES}; received {freeze!r}")
    expected = tuple(head.inputs[0].shape[1:3])
    if None not in expected and expected != tuple(image_size):
        raise ValueError(
            f"raw frames of size {tuple(image_size)} do not fit head {head_name!r}, which expects {expected[0]}x"
            f"{expected[1]} images: simulate or crop the RAW input at {expected[0]}x{expected[1]}"
        )
    standalone = isp_model(isp, image_size, psf_size)
    outputs = dict(standalone.output) if isinstance(standalone.output, dict) else {"image": standalone.output}
    scaled = HeadPreprocessing(head_name, clip=clip_image, name="head_preprocessing")(outputs["image"])
    outputs["logits"] = head(scaled)
    if freeze == "isp":
        isp.trainable = False
    elif freeze == "head":
        head.trainable = False
    return keras.Model(standalone.input, outputs, name=name)


def clean_image_classifier(head, head_name, image_size):
    """The head alone on clean images (its stage-1 training): {"clean"} [B, H, W, 3] in [0, 1] -> {"logits"}, through
    the same HeadPreprocessing layer as the joint model, the head as the layer named after it (what a training
    config's stages.head_weights reads)."""
    clean = keras.Input((*image_size, 3), name="clean")
    logits = head(HeadPreprocessing(head_name, name="head_preprocessing")(clean))
    return keras.Model({"clean": clean}, {"logits": logits}, name=f"{head_name}_clean")
