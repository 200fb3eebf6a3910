"""ModelSpec: what a model is, and `build_model`, the one path from a spec to a Keras model.

Presets (models/presets.py) embed a ModelSpec; a training config's `model` section resolves to one
(training/config.model_spec). Three kinds of model come out (models/joint.py, models/components.py):
- isp and head: a JointClassifier (RAW frames -> the ISP's outputs and "logits");
- isp alone: an IspModel (reconstruction; with pretraining=True, the ISP's own pretraining_model);
- head alone: a HeadClassifier on clean images (the head's stage 1).
With task "segmentation" the head is a dense head (models/segmentation.py) and the two models with a head are a
JointSegmenter and a HeadSegmenter, whose task output is "segmentation" (per-pixel logits) instead of "logits".
"""

import dataclasses

from dirtypixels_tf.models import heads, segmentation
from dirtypixels_tf.models.components import IspModel
from dirtypixels_tf.models.isp import ISP_CLASSES, build_isp
from dirtypixels_tf.models.joint import FREEZE_CHOICES, HeadClassifier, JointClassifier

TASKS = ("classification", segmentation.TASK)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model by its parts.

    image_size: side of the square RAW frames (even; also the head's input size). isp: a name of
    models/isp.ISP_CLASSES, or None for the head alone on clean images; isp_settings: keyword arguments of that ISP
    class. head: a head name (heads.head_names()), or None for the ISP alone. num_classes: logits of the head (1001 =
    background + 1000, the release's layout); head_width: MobileNet width multiplier; head_bn_momentum: the head's
    batch-norm decay (None: the head's default). psf_size: (kh, kw) of per-image PSF inputs, for an ISP that takes
    them. freeze: None, "isp" or "head". clip_image: clip the ISP's image to [0, 1] before the head (the release).
    task: "classification" (head: a classifier of heads.head_names(), output "logits") or "segmentation" (head: a
    dense head of segmentation.dense_head_names(), output "segmentation").
    """

    image_size: int
    isp: str | None = None
    head: str | None = None
    num_classes: int = 1001
    isp_settings: dict = dataclasses.field(default_factory=dict)
    head_width: float = 1.0
    head_bn_momentum: float | None = None
    psf_size: tuple | None = None
    freeze: str | None = None
    clip_image: bool = True
    task: str = "classification"

    def __post_init__(self):
        if self.isp is None and self.head is None:
            raise ValueError("a model needs an isp, a head or both; received isp=None and head=None")
        if self.isp is not None and self.isp not in ISP_CLASSES:
            raise ValueError(f"isp must be one of {', '.join(ISP_CLASSES)}; received {self.isp!r}")
        if self.freeze not in FREEZE_CHOICES:
            raise ValueError(f"freeze must be one of {FREEZE_CHOICES}; received {self.freeze!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}; received {self.task!r}")
        names = segmentation.dense_head_names() if self.task == segmentation.TASK else heads.head_names()
        if self.head is not None and self.head not in names:
            raise ValueError(f"head: unknown {self.task} head {self.head!r}; valid names are {', '.join(names)}")

    @property
    def task_output(self):
        """The output name of the head: "logits" (classification) or "segmentation"."""
        return segmentation.OUTPUT if self.task == segmentation.TASK else "logits"

    @property
    def isp_class(self):
        """The models/isp.Isp subclass of `isp` (None without an ISP)."""
        return None if self.isp is None else ISP_CLASSES[self.isp]

    def pretrains(self, loss_kind):
        """True when `loss_kind` trains the ISP's own pretraining model (Isp.pretraining_outputs) rather than this
        model, e.g. NIDF's "nidf_pretrain"."""
        isp = self.isp_class
        return isp is not None and isp.pretraining_outputs is not None and loss_kind == isp.pretraining_loss

    def outputs(self, loss_kind=None):
        """The output names of the model `build_model` makes for a run trained with `loss_kind`."""
        if self.pretrains(loss_kind):
            return set(self.isp_class.pretraining_outputs)
        names = set() if self.isp is None else set(self.isp_class.output_names)
        return names | ({self.task_output} if self.head is not None else set())

    def with_num_classes(self, num_classes):
        return self if num_classes is None else dataclasses.replace(self, num_classes=num_classes)


def build_model(spec, name=None, pretraining=False, psf_size=None):
    """The uncompiled Keras model of `spec` (see the module docstring). pretraining: the ISP's pretraining model
    (Isp.pretraining_model). psf_size: the per-image PSF size when the spec leaves it to the data (spec.psf_size
    None for an ISP that takes PSFs)."""
    size = (spec.image_size, spec.image_size)
    psf_size = spec.psf_size or psf_size
    if spec.task == segmentation.TASK:
        return _build_segmenter(spec, size, name, pretraining, psf_size)
    head = None
    if spec.head is not None and not pretraining:
        head = heads.build_head(
            spec.head,
            (*size, 3),
            spec.num_classes,
            width=spec.head_width,
            bn_momentum=spec.head_bn_momentum,
        )
    if spec.isp is None:
        return HeadClassifier(head, spec.head, size, **({"name": name} if name else {}))
    isp = build_isp(spec.isp, **spec.isp_settings)
    if pretraining:
        return isp.pretraining_model(size, psf_size)
    if head is None:
        return IspModel(isp, size, psf_size, **({"name": name} if name else {}))
    return JointClassifier(
        isp, head, spec.head, size, psf_size, spec.freeze, spec.clip_image, name=name or "joint_classifier"
    )


def _build_segmenter(spec, size, name, pretraining, psf_size):
    """build_model for task "segmentation": a JointSegmenter, a HeadSegmenter or the ISP alone."""
    named = {"name": name} if name else {}
    head = None
    if spec.head is not None and not pretraining:
        head = segmentation.build_dense_head(
            spec.head, (*size, 3), spec.num_classes, width=spec.head_width, bn_momentum=spec.head_bn_momentum
        )
    if spec.isp is None:
        return segmentation.HeadSegmenter(head, spec.head, size, **named)
    isp = build_isp(spec.isp, **spec.isp_settings)
    if pretraining:
        return isp.pretraining_model(size, psf_size)
    if head is None:
        return IspModel(isp, size, psf_size, **named)
    return segmentation.JointSegmenter(
        isp, head, spec.head, size, psf_size, spec.freeze, spec.clip_image, name=name or "joint_segmenter"
    )
