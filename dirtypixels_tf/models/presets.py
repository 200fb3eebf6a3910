"""Named model configurations of the papers, each with the parameter and multiply-add counts it builds to.

`expected_params` (trainable) and `expected_macs` (one image, models/counting.py) are what this package's models
measure; `paper` quotes the paper's figures for the same row (parameters in millions, "FLOPs" = multiply-adds in
millions), which the tests compare against where the architecture is fully specified. 1001 classes means
background first (the original release and TF-slim). Bayer frames need even sizes, so the "299" Inception-v4
presets take 300x300 RAW frames (past its first valid stride-2 convolution Inception-v4 has the same feature map
sizes at 300 as at 299), and the "321" DeepLab-LargeFOV preset takes 324x324 frames (Liu et al.'s denoiser needs
sides divisible by 4; DeepLab-LargeFOV's feature maps are 41x41 at 321 and at 324 alike). Where the counts differ from the papers' and why: docs/models.md.
"""

import dataclasses

from dirtypixels_tf.catalog import MODEL_PRESETS
from dirtypixels_tf.models import heads
from dirtypixels_tf.models.components import IspModel
from dirtypixels_tf.models.counting import count_multiply_adds, count_params
from dirtypixels_tf.models.spec import ModelSpec, build_model


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named model (its ModelSpec) with the parameter and multiply-add counts it builds to (module docstring)."""

    name: str
    spec: ModelSpec
    expected_params: int
    expected_macs: int
    paper: str = ""

    def __post_init__(self):
        if self.expected_params <= 0 or self.expected_macs <= 0:
            raise ValueError(f"preset {self.name!r} must record its measured parameter and multiply-add counts")


_SLIM_MOBILENET = {"head": "mobilenet_v1", "head_bn_momentum": heads.SLIM_BN_MOMENTUM}

# (spec, expected_params, expected_macs, paper) of each preset, in the order of catalog.MODEL_PRESETS, which names them.
_PRESET_FIELDS = (
    (  # joint_mobilenet_v1_128
        ModelSpec(128, "anscombe", **_SLIM_MOBILENET),
        4_280_662,
        302_662_656,
        "Diamond et al. 2021 Table 1, joint Anscombe network + MobileNet-v1: 4.28 M, 282 M",
    ),
    (  # joint_packed_mobilenet_v1_128
        ModelSpec(
            128,
            "anscombe",
            isp_settings={"domain": "packed", "first_conv": "plain", "prior_width": 8},
            **_SLIM_MOBILENET,
        ),
        4_281_967,
        220_775_424,
        "beyond the papers: the release's Anscombe network with its prior on the packed Bayer planes",
    ),
    (  # joint_mobilenet_v1_128_no_anscombe
        ModelSpec(128, "anscombe", isp_settings={"anscombe": False}, **_SLIM_MOBILENET),
        4_280_662,
        302_662_656,
        "Diamond et al. 2021 Table 2, proposed joint architecture (no Anscombe layers): 4.28 M, 282 M",
    ),
    (  # mobilenet_v1_128
        ModelSpec(128, **_SLIM_MOBILENET),
        4_233_001,
        186_401_792,
        "Diamond et al. 2021 Table 1, MobileNet-v1 (the release's stage 1 on clean images, slim's 128 model): "
        "4.23 M, 181 M",
    ),
    (  # raw_mobilenet_v1_128
        ModelSpec(128, "bilinear", **_SLIM_MOBILENET),
        4_233_001,
        186_844_160,
        "Diamond et al. 2021 Table 1, MobileNet-v1 from scratch on RAW: 4.23 M, 181 M",
    ),
    (  # raw_mobilenet_v2_140_128
        ModelSpec(128, "bilinear", "mobilenet_v2", head_width=1.4),
        6_110_569,
        191_755_776,
        "Diamond et al. 2021 Table 2, MobileNet-v2 from scratch: 6.90 M, 320 M",
    ),
    (  # chen_unet_mobilenet_v1_128
        ModelSpec(128, "chen_unet", "mobilenet_v1"),
        11_993_269,
        943_473_664,
        "Diamond et al. 2021 Table 1, U-Net of Chen et al. 2018 + MobileNet-v1: 11.99 M, 537 M",
    ),
    (  # chen_unet_anscombe_mobilenet_v1_128
        ModelSpec(128, "chen_unet", "mobilenet_v1", isp_settings={"anscombe": True}),
        11_993_269,
        943_473_664,
        "Diamond et al. 2021 Table 2, U-Net + Anscombe layers + MobileNet-v1: 11.99 M, 537 M",
    ),
    (  # joint_inception_v4_shrinkage_299
        ModelSpec(300, "shrinkage_fields", "inception_v4"),
        42_652_171,
        12_722_966_160,
        "Diamond et al. 2017 Table 2, shrinkage fields denoising + Inception-v4",
    ),
    (  # joint_inception_v4_shrinkage_deblur_299
        ModelSpec(300, "shrinkage_fields", "inception_v4", isp_settings={"task": "deblur_denoise"}, psf_size=(25, 25)),
        42_652_171,
        12_411_926_160,
        "Diamond et al. 2017 Table 1, joint deblurring and denoising + Inception-v4 (per-image PSF input)",
    ),
    (  # liu_vgg16
        ModelSpec(224, "liu", "VGG16", num_classes=1000, freeze="head"),
        3_582_723,
        91_896_491_008,
        "Liu et al. 2018, denoiser + frozen VGG-16 (joint loss lambda 0.25)",
    ),
    (  # nidf
        ModelSpec(256, "nidf"),
        3_851_334,
        18_448_318_464,
        "Miao and Zhu (NIDF), denoiser + deblurrer cascade (no classifier)",
    ),
    (  # liu_deeplab_largefov_321
        ModelSpec(324, "liu", "deeplab_largefov", num_classes=21, freeze="head", task="segmentation"),
        3_582_723,
        214_496_910_256,
        "Liu et al. 2018, denoiser + frozen DeepLab-LargeFOV (Chen et al. 2015: 20.5 M) on Pascal VOC's 21 classes "
        "(joint loss lambda 0.5)",
    ),
    (  # liu_mobilenet_v1_aspp_64
        ModelSpec(
            64,
            "liu",
            "mobilenet_v1_aspp",
            num_classes=11,
            isp_settings={"encoder_filters": 16, "decoder_filters": 32},
            head_width=0.25,
            freeze="head",
            task="segmentation",
        ),
        57_747,
        120_850_432,
        "beyond the papers: Liu et al.'s recipe at CPU scale, an eighth-width denoiser + frozen MobileNet-v1 0.25 "
        "with atrous stages and a light ASPP, 64x64, background + the 10 Fashion-MNIST classes",
    ),
)
PRESETS = {name: Preset(name, *fields) for name, fields in zip(MODEL_PRESETS, _PRESET_FIELDS, strict=True)}


def get_preset(name):
    """The Preset called `name`, or a ValueError listing the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}; received {name!r}")
    return PRESETS[name]


def build_preset(name, num_classes=None):
    """The Keras model of a preset (models/spec.build_model), named after it. num_classes overrides the preset's
    (e.g. 10 for Fashion-MNIST); the counts are for the preset's own."""
    return build_model(get_preset(name).spec.with_num_classes(num_classes), name=name)


def count_preset(name):
    """Parameters and multiply-adds per part: {"isp": {...}, "head": {...}, "total": {...}} with keys
    "trainable", "non_trainable", "total" (parameters) and "multiply_adds"."""
    spec = get_preset(name).spec
    model = build_preset(name)
    parts = {}
    if spec.isp is not None:
        parts["isp"] = IspModel(model.isp, (spec.image_size,) * 2, spec.psf_size)
    if spec.head is not None:
        parts["head"] = model.head
    parts["total"] = model
    result = {}
    for part, part_model in parts.items():
        result[part] = {**count_params(part_model), "multiply_adds": count_multiply_adds(part_model)}
    return result
