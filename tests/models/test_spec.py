"""ModelSpec: presets and training configs resolve to one spec and one builder."""

import dataclasses

import pytest

from dirtypixels_tf.models import presets
from dirtypixels_tf.models.components import IspModel
from dirtypixels_tf.models.isp import ISP_CLASSES, NidfCascade
from dirtypixels_tf.models.joint import HeadClassifier, JointClassifier
from dirtypixels_tf.models.spec import ModelSpec, build_model
from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training.model_setup import build_experiment_model


def _shapes(model):
    return sorted((w.path.split("/", 1)[-1], tuple(w.shape)) for w in model.weights)


def test_a_config_naming_a_preset_and_one_spelling_it_out_build_the_same_model():
    preset = presets.get_preset("joint_mobilenet_v1_128")
    by_name = config_lib.from_dict({"model": {"preset": preset.name, "num_classes": 10}})
    spelled = config_lib.from_dict(
        {"model": {"isp": "anscombe", "head": "mobilenet_v1", "image_size": 128, "num_classes": 10}}
    )
    assert config_lib.model_spec(by_name) == dataclasses.replace(preset.spec, num_classes=10)
    # Spelled out, the ISP reads the frames' Bayer phase (data.pattern, else the sensor's: BGGR here) explicitly.
    settings = {**preset.spec.isp_settings, "pattern": "BGGR"}
    expected = dataclasses.replace(preset.spec, num_classes=10, head_bn_momentum=None, isp_settings=settings)
    assert config_lib.model_spec(spelled) == expected
    a, b = build_experiment_model(by_name), build_experiment_model(spelled)
    assert type(a) is type(b) is JointClassifier and _shapes(a) == _shapes(b)
    assert a.count_params() == b.count_params() == presets.build_preset(preset.name, 10).count_params()


def test_the_builder_makes_the_model_the_spec_names():
    assert type(build_model(ModelSpec(32, "bilinear"))) is IspModel
    assert type(build_model(ModelSpec(32, head="mobilenet_v1", num_classes=10, head_width=0.25))) is HeadClassifier
    joint = build_model(ModelSpec(32, "bilinear", "mobilenet_v1", 10, head_width=0.25, freeze="head"))
    assert type(joint) is JointClassifier and not joint.head.trainable and set(joint.output) == {"image", "logits"}


def test_outputs_and_pretraining_come_from_the_isp_class():
    nidf = ModelSpec(32, "nidf")
    assert nidf.outputs("nidf") == set(NidfCascade.output_names) == {"image", "denoised"}
    assert nidf.pretrains(NidfCascade.pretraining_loss) and nidf.outputs("nidf_pretrain") == {"denoised", "deblurred"}
    assert set(build_model(nidf, pretraining=True).output) == {"denoised", "deblurred"}
    for name, isp_class in ISP_CLASSES.items():
        if isp_class.pretraining_outputs is None:  # stage 1 trains the model itself
            assert not ModelSpec(32, name).pretrains(isp_class.pretraining_loss)
            assert ModelSpec(32, name, "mobilenet_v1").outputs("l1") == set(isp_class.output_names) | {"logits"}


def test_bad_specs_are_refused_naming_the_field():
    with pytest.raises(ValueError, match="isp must be one of .* received 'fancy'"):
        ModelSpec(32, "fancy")
    with pytest.raises(ValueError, match="needs an isp, a head or both"):
        ModelSpec(32)
    with pytest.raises(ValueError, match="freeze must be one of"):
        ModelSpec(32, "bilinear", "mobilenet_v1", freeze="all")


def test_an_isp_that_deblurs_needs_the_datas_psf():
    model = {"isp": "shrinkage_fields", "isp_settings": {"task": "deblur_denoise"}, "image_size": 32}
    with pytest.raises(config_lib.ConfigError, match="data.psf: model.isp 'shrinkage_fields' deblurs with a PSF"):
        build_experiment_model(config_lib.from_dict({"model": model, "loss": {"kind": "l1"}}))
    built = build_experiment_model(
        config_lib.from_dict({"model": model, "loss": {"kind": "l1"}, "data": {"psf": "center"}})
    )
    assert "psf" in built.input and type(built) is IspModel
