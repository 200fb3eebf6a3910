"""The models built from an ISP and a classifier head: each a functional keras.Model subclass that exposes its
components as attributes (`.isp`, `.head`), so that nothing has to find them by layer names.

- JointClassifier: RAW frames in, the ISP's outputs and the classifier's logits out. Inputs (by name): "raw"
  [B, H, W, 1] float32 in [0, 1], "alpha" and "sigma" [B] (or [B, 3] per colour with per_channel_noise=True), and "psf" [B, kh, kw, 3] for an ISP that deblurs with
  per-image PSFs (Isp.takes_psf). Outputs: {"logits": [B, classes], "image": [B, H, W, 3]} plus the ISP's other
  outputs (Isp.output_names, e.g. "denoised" for the NIDF cascade). "image" is the ISP's linear output in about
  [0, 1], not clipped. Before the head, `head_preprocessing` (a HeadPreprocessing layer) clips it to [0, 1] (as the
  release's nets/mobilenet_isp.py does with tf.maximum / tf.minimum; clip_image=False is the unclipped variant) and
  applies the head's own input normalization (e.g. [-1, 1] for MobileNet and Inception-v4, see
  heads.preprocess_for_head), so callers always feed RAW values in [0, 1]. The clip passes no gradient to pixels
  outside [0, 1], as in the release.
- HeadClassifier: the head alone on clean images (its stage 1): {"clean"} [B, H, W, 3] in [0, 1] -> {"logits"},
  through the same HeadPreprocessing as the joint model.
The ISP alone is models/components.py: IspModel. The layers keep the names "isp", "head_preprocessing" and the
head's own name (what TF1 checkpoint conversion and earlier runs refer to).
"""

import keras

from dirtypixels_tf.models import heads
from dirtypixels_tf.models.components import ComponentModel, check_size, isp_outputs

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


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class JointClassifier(ComponentModel):
    """ISP layer `isp` (models/isp.Isp) then head model `head` (heads.build_head named `head_name`), one model.

    image_size: (H, W) of the RAW frames, which is also the size of the head's input (no resizing: a head built for
    another size is refused with the size it expects); psf_size: (kh, kw) of per-image PSFs for an ISP that takes
    them. freeze: None, "isp" or "head" (made non-trainable; a frozen head also keeps its batch-norm statistics, as
    Liu et al. train only the denoiser). clip_image: clip the ISP's image to [0, 1] before the head (the release's
    wiring; False feeds it unclipped). per_channel_noise: alpha and sigma [B, 3] (one per colour R, G, B, as real
    captures have them after white balance) instead of [B]; components.with_per_channel_noise switches a built model.
    """

    COMPONENTS = ("isp", "head")

    def __init__(
        self,
        isp,
        head,
        head_name,
        image_size,
        psf_size=None,
        freeze=None,
        clip_image=True,
        per_channel_noise=False,
        name="joint_classifier",
    ):
        if freeze not in FREEZE_CHOICES:
            raise ValueError(f"freeze must be one of {FREEZE_CHOICES}; received {freeze!r}")
        image_size, psf_size = check_size(image_size, "image_size"), check_size(psf_size, "psf_size")
        expected = tuple(head.inputs[0].shape[1:3])
        if None not in expected and expected != image_size:
            raise ValueError(
                f"raw frames of size {image_size} do not fit head {head_name!r}, which expects {expected[0]}x"
                f"{expected[1]} images: simulate or crop the RAW input at {expected[0]}x{expected[1]}"
            )
        inputs, outputs = isp_outputs(isp, image_size, psf_size, per_channel_noise)
        preprocessing = HeadPreprocessing(head_name, clip=clip_image, name="head_preprocessing")
        outputs["logits"] = head(preprocessing(outputs["image"]))
        if freeze == "isp":
            isp.trainable = False
        elif freeze == "head":
            head.trainable = False
        super().__init__(inputs, outputs, name=name)
        self.isp, self.head, self.head_preprocessing = isp, head, preprocessing
        self.head_name, self.image_size, self.psf_size = head_name, image_size, psf_size
        self.freeze, self.clip_image, self.per_channel_noise = freeze, clip_image, per_channel_noise

    def _settings(self):
        return {
            "head_name": self.head_name,
            "image_size": self.image_size,
            "psf_size": self.psf_size,
            "freeze": self.freeze,
            "clip_image": self.clip_image,
            "per_channel_noise": self.per_channel_noise,
        }


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class HeadClassifier(ComponentModel):
    """The head model `head` (named `head_name`) alone on clean images: {"clean"} [B, H, W, 3] in [0, 1] ->
    {"logits"}, through the same HeadPreprocessing layer as the joint model (the head's stage-1 training)."""

    COMPONENTS = ("head",)

    def __init__(self, head, head_name, image_size, name=None):
        image_size = check_size(image_size, "image_size")
        clean = keras.Input((*image_size, 3), name="clean")
        preprocessing = HeadPreprocessing(head_name, name="head_preprocessing")
        super().__init__({"clean": clean}, {"logits": head(preprocessing(clean))}, name=name or f"{head_name}_clean")
        self.head, self.head_preprocessing = head, preprocessing
        self.head_name, self.image_size = head_name, image_size

    def _settings(self):
        return {"head_name": self.head_name, "image_size": self.image_size}
