import published_counts as published
import pytest

from dirtypixels_tf.models import presets

_MOBILENET_V1, _, _MOBILENET_V1_MACS = published.mobilenet_v1(128, 1001)
_MOBILENET_V2, _, _MOBILENET_V2_MACS = published.mobilenet_v2(128, 1001, 1.4)
_INCEPTION_V4 = published.inception_v4(1001)
_ANSCOMBE, _ANSCOMBE_MACS = published.release_anscombe_network(), published.release_anscombe_multiply_adds(128)
_BILINEAR_MACS = published.bilinear_demosaic_multiply_adds(128)
_CHEN, _CHEN_MACS = published.chen_unet(), published.chen_unet_multiply_adds(128)
_VGG16_FROZEN = 0  # liu_vgg16 freezes its head: only the denoiser trains
_DEEPLAB, _DEEPLAB_MACS = published.deeplab_largefov(324, 21)
_SMALL_DENSE, _SMALL_DENSE_STATISTICS, _SMALL_DENSE_MACS = published.mobilenet_v1_aspp(64, 11, 0.25)

# Trainable parameters and multiply-adds of each preset from the papers' layer tables (published_counts.py);
# None where no closed form of the multiply-adds is written here (then only the parts' sum is checked).
CLOSED_FORMS = {
    "joint_mobilenet_v1_128": (_ANSCOMBE + _MOBILENET_V1, _ANSCOMBE_MACS + _MOBILENET_V1_MACS),
    "joint_mobilenet_v1_128_no_anscombe": (_ANSCOMBE + _MOBILENET_V1, _ANSCOMBE_MACS + _MOBILENET_V1_MACS),
    "joint_packed_mobilenet_v1_128": (
        published.packed_anscombe_network() + _MOBILENET_V1,
        published.packed_anscombe_multiply_adds(128) + _MOBILENET_V1_MACS,
    ),
    "mobilenet_v1_128": (_MOBILENET_V1, _MOBILENET_V1_MACS),
    "raw_mobilenet_v1_128": (_MOBILENET_V1, _BILINEAR_MACS + _MOBILENET_V1_MACS),
    "raw_mobilenet_v2_140_128": (_MOBILENET_V2, _BILINEAR_MACS + _MOBILENET_V2_MACS),
    "chen_unet_mobilenet_v1_128": (_CHEN + _MOBILENET_V1, _CHEN_MACS + _MOBILENET_V1_MACS),
    "chen_unet_anscombe_mobilenet_v1_128": (_CHEN + _MOBILENET_V1, _CHEN_MACS + _MOBILENET_V1_MACS),
    "joint_inception_v4_shrinkage_299": (published.shrinkage_fields() + _INCEPTION_V4, None),
    "joint_inception_v4_shrinkage_deblur_299": (published.shrinkage_fields() + _INCEPTION_V4, None),
    "liu_vgg16": (published.liu_denoiser() + _VGG16_FROZEN, None),
    "nidf": (2 * published.nidf_unet(), None),
    # the segmentation presets freeze their dense heads: only the denoiser trains (the heads are checked below)
    "liu_deeplab_largefov_321": (published.liu_denoiser(), None),
    "liu_mobilenet_v1_aspp_64": (published.liu_denoiser(16, 32), None),
}


def test_every_preset_has_a_closed_form():
    assert set(CLOSED_FORMS) == set(presets.PRESETS)


def _check_counts(name):
    counts = presets.count_preset(name)
    params, macs = CLOSED_FORMS[name]
    assert counts["total"]["trainable"] == params
    if macs is not None:
        assert counts["total"]["multiply_adds"] == macs
    preset = presets.get_preset(name)
    parts = [part for part in ("isp", "head") if part in counts]
    assert parts == [
        part for part, given in (("isp", preset.spec.isp), ("head", preset.spec.head)) if given is not None
    ]
    assert sum(counts[part]["multiply_adds"] for part in parts) == counts["total"]["multiply_adds"]
    # the numbers a preset records for users are the closed forms too
    assert preset.expected_params == params and preset.expected_macs in (macs, counts["total"]["multiply_adds"])


@pytest.mark.parametrize("name", list(presets.PRESETS))  # about 4 s for the largest (Inception-v4 at 300, VGG-16)
def test_preset_builds_to_the_closed_form_counts(name):
    _check_counts(name)


def test_counts_against_the_papers():
    # Diamond et al. 2021 Table 1: 4.28 M for the joint Anscombe model, 11.99 M with the U-Net of Chen et al.
    assert abs(CLOSED_FORMS["joint_mobilenet_v1_128"][0] / 4.28e6 - 1) < 0.005
    assert abs(CLOSED_FORMS["chen_unet_mobilenet_v1_128"][0] / 11.99e6 - 1) < 0.005
    # Multiply-adds: the paper's 282 M is 181 M (its MobileNet-v1) + 101 M (the Anscombe network). By the layer
    # tables: 186.4 M (MobileNet-v1 at 128, as Howard et al. 2017 Table 7's 186 M) + 116.3 M, 7.3 % above.
    assert abs(_MOBILENET_V1_MACS / 186e6 - 1) < 0.005
    assert abs(CLOSED_FORMS["joint_mobilenet_v1_128"][1] / 282e6 - 1) < 0.08


def test_liu_preset_freezes_its_head():
    assert presets.get_preset("liu_vgg16").spec.freeze == "head"


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="preset must be one of joint_mobilenet_v1_128, .*received 'mobilenet'"):
        presets.build_preset("mobilenet")


def test_release_presets_use_slim_batch_norm_decay_in_the_head():
    # slim's mobilenet_v1_arg_scope: batch_norm decay 0.9997 (Keras' MobileNet default is 0.99)
    from dirtypixels_tf.models import heads

    head = presets.build_preset("joint_mobilenet_v1_128", num_classes=10).get_layer("mobilenet_v1")
    momenta = {layer.momentum for layer in head.layers if hasattr(layer, "moving_mean")}
    assert momenta == {heads.SLIM_BN_MOMENTUM}
    assert presets.get_preset("joint_mobilenet_v1_128").spec.head_bn_momentum == 0.9997


def test_dense_heads_of_the_segmentation_presets_build_to_the_closed_forms():
    from dirtypixels_tf.models.counting import count_multiply_adds, count_params
    from dirtypixels_tf.models.segmentation import build_dense_head

    deeplab = build_dense_head("deeplab_largefov", (324, 324, 3), 21)  # the preset's head (frozen there)
    assert count_params(deeplab)["trainable"] == _DEEPLAB and count_multiply_adds(deeplab) == _DEEPLAB_MACS
    small = build_dense_head("mobilenet_v1_aspp", (64, 64, 3), 11, width=0.25)
    assert count_params(small) == {
        "trainable": _SMALL_DENSE,
        "non_trainable": _SMALL_DENSE_STATISTICS,
        "total": _SMALL_DENSE + _SMALL_DENSE_STATISTICS,
    }
    assert count_multiply_adds(small) == _SMALL_DENSE_MACS


def test_deeplab_largefov_against_the_paper():
    # Chen et al. 2015: DeepLab-LargeFOV has 20.5 M parameters (VGG-16's convolutions 14,714,688 + fc6 4,719,616 +
    # fc7 1,049,600 + fc8 21,525).
    assert _DEEPLAB == 20_505_429
    assert abs(_DEEPLAB / 20.5e6 - 1) < 0.005


def test_segmentation_presets_freeze_their_heads():
    for name in ("liu_deeplab_largefov_321", "liu_mobilenet_v1_aspp_64"):
        spec = presets.get_preset(name).spec
        assert spec.task == "segmentation" and spec.freeze == "head"
