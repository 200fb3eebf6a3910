import pytest

from dirtypixels_tf.models import presets

QUICK = [name for name in presets.PRESETS if name not in ("liu_vgg16", "joint_inception_v4_shrinkage_deblur_299")]


@pytest.mark.parametrize("name", QUICK)
def test_preset_builds_to_its_recorded_counts(name):
    preset = presets.get_preset(name)
    counts = presets.count_preset(name)
    assert counts["total"]["trainable"] == preset.expected_params
    assert counts["total"]["multiply_adds"] == preset.expected_macs
    parts = [part for part in ("isp", "head") if part in counts]
    assert parts == [part for part, given in (("isp", preset.isp), ("head", preset.head)) if given is not None]
    assert sum(counts[part]["multiply_adds"] for part in parts) == counts["total"]["multiply_adds"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["liu_vgg16", "joint_inception_v4_shrinkage_deblur_299"])
def test_large_preset_builds_to_its_recorded_counts(name):
    counts = presets.count_preset(name)
    assert counts["total"]["trainable"] == presets.get_preset(name).expected_params
    assert counts["total"]["multiply_adds"] == presets.get_preset(name).expected_macs


def test_counts_against_the_papers():
    release = presets.count_preset("joint_mobilenet_v1_128")["total"]
    assert abs(release["trainable"] / 4.28e6 - 1) < 0.01  # seed 001 Table 1: 4.28 M
    chen = presets.count_preset("chen_unet_mobilenet_v1_128")["total"]
    assert abs(chen["trainable"] / 11.99e6 - 1) < 0.01  # seed 001 Table 1: 11.99 M
    # Multiply-adds: the paper's 282 M is 181 M (its MobileNet-v1) + 101 M (the Anscombe network). Counted here:
    # 186.4 M (the MobileNet-v1 at 128 of slim's table) + 116.3 M, 7.3 % above the paper's total.
    assert release["multiply_adds"] == 302_662_656


def test_liu_preset_freezes_its_head():
    assert presets.get_preset("liu_vgg16").freeze == "head"


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="preset must be one of joint_mobilenet_v1_128, .*received 'mobilenet'"):
        presets.build_preset("mobilenet")


def test_release_presets_use_slim_batch_norm_decay_in_the_head():
    # slim's mobilenet_v1_arg_scope: batch_norm decay 0.9997 (Keras' MobileNet default is 0.99)
    from dirtypixels_tf.models import heads

    head = presets.build_preset("joint_mobilenet_v1_128", num_classes=10).get_layer("mobilenet_v1")
    momenta = {layer.momentum for layer in head.layers if hasattr(layer, "moving_mean")}
    assert momenta == {heads.SLIM_BN_MOMENTUM}
    assert presets.get_preset("joint_mobilenet_v1_128").head_bn_momentum == 0.9997
