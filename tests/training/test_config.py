"""Experiment configs: every named config loads, validates and builds; strict keys and types; params.yaml round trip."""

import dataclasses
import glob
import os

import pytest

from dirtypixels_tf.models import presets
from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training.models import build_model

CONFIG_DIR = config_lib.CONFIG_DIR
NAMED = sorted(os.path.basename(p) for p in glob.glob(os.path.join(CONFIG_DIR, "*.yaml")))
# Models whose build takes long on 2 cores (Inception-v4 at 300x300, VGG-16 at 224, the NIDF U-Nets at 256).
BIG = ("inception_v4", "VGG16", "nidf")


def load(name, overrides=()):
    return config_lib.load_config(os.path.join(CONFIG_DIR, name), overrides)


def model_key(config):
    spec = config_lib.model_spec(config)
    return (
        repr({k: getattr(spec, k) for k in ("isp", "isp_settings", "head", "head_width", "image_size", "num_classes")})
        + config.loss.kind
        + config.data.psf
    )


def is_big(config):
    spec = config_lib.model_spec(config)
    return spec.head in BIG or spec.isp in BIG


def test_every_recipe_of_the_papers_has_a_named_config():
    expected = {"default.yaml", "release_stage1_head.yaml", "nidf_pretrain.yaml", "nidf_joint.yaml"}
    for profile in ("3lux", "6lux", "2to20lux", "2to200lux"):
        expected |= {f"release_joint_{profile}.yaml", f"release_stage1_isp_{profile}.yaml"}
        expected |= {f"raw_mobilenet_v1_{profile}.yaml", f"raw_mobilenet_v2_140_{profile}.yaml"}
        expected |= {f"bilinear_finetune_mobilenet_v1_{profile}.yaml"}
    for setting in ("3lux", "6lux", "6lux_offaxis", "6lux_periphery"):  # Diamond et al. 2017 Table 2
        expected |= {f"shrinkage2017_pretrain_{setting}.yaml", f"shrinkage2017_joint_{setting}.yaml"}
        expected |= {f"inception_v4_finetune_{setting}.yaml"}
    for sigma in (15, 30, 45, 60):
        expected |= {f"liu_pretrain_sigma{sigma}.yaml", f"liu_joint_sigma{sigma}.yaml"}
    assert expected <= set(NAMED), sorted(expected - set(NAMED))


@pytest.mark.parametrize("name", NAMED)
def test_named_config_loads_validates_and_round_trips(name, tmp_path):
    config = load(name)
    assert config.description
    config_lib.save_params(config, tmp_path)
    assert config_lib.load_config(tmp_path / "params.yaml") == config


def test_release_recipe_numbers():
    config = load("release_joint_3lux.yaml")
    assert config.model.preset == "joint_mobilenet_v1_128" and config_lib.model_spec(config).num_classes == 1001
    opt = config.optimizer
    assert (opt.name, opt.learning_rate, opt.rho, opt.momentum, opt.epsilon) == ("rmsprop", 4.5e-4, 0.9, 0.9, 1.0)
    assert opt.tf1_rmsprop_init and opt.weight_decay == 4e-5 and config.data.batch_size == 1024
    assert (config.schedule.decay_rate, config.schedule.decay_epochs, config.schedule.staircase) == (0.94, 2.0, True)
    assert config.data.train_path == config_lib.MISSING  # a required user setting
    with pytest.raises(config_lib.ConfigError, match="data.train_path: a required user setting"):
        config_lib.require_complete(config)
    liu = load("liu_joint_sigma30.yaml")
    assert liu.loss.kind == "liu" and liu.loss.weight == 0.25 and config_lib.model_spec(liu).freeze == "head"
    nidf = load("nidf_joint.yaml")
    assert nidf.loss.weight == 0.5 and nidf.optimizer.learning_rate == 1e-5 and nidf.data.batch_size == 16
    table2 = load("shrinkage2017_joint_6lux_periphery.yaml")
    assert table2.data.psf == "periphery" and table2.data.profile == "6lux" and table2.optimizer.learning_rate == 4.5e-3
    assert load("shrinkage2017_pretrain_3lux.yaml").lbfgs.iterations == 400


def _build_groups(big):
    groups = {}
    for name in NAMED:
        config = load(name)
        if is_big(config) == big:
            groups.setdefault(model_key(config), []).append(name)
    return sorted(groups.values())


def _check_builds(names):
    config = load(names[0])
    model = build_model(config)
    spec = config_lib.model_spec(config)
    assert set(model.output) == spec.outputs(config.loss.kind)
    if config.model.preset is not None:
        assert (
            sum(int(w.numpy().size) for w in model.trainable_weights)
            == presets.get_preset(config.model.preset).expected_params
        )


@pytest.mark.parametrize("names", _build_groups(big=False), ids=lambda names: names[0])
def test_named_config_builds_its_model(names):
    _check_builds(names)


@pytest.mark.slow
@pytest.mark.parametrize("names", _build_groups(big=True), ids=lambda names: names[0])
def test_named_config_builds_its_big_model(names):
    _check_builds(names)


def test_unknown_key_is_refused_with_its_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optimizer:\n  learnig_rate: 0.1\n")
    with pytest.raises(
        config_lib.ConfigError, match=r"^optimizer\.learnig_rate: unknown key; valid keys: name, learning_rate"
    ):
        config_lib.load_config(path)
    with pytest.raises(config_lib.ConfigError, match=r"^optimiser: unknown key"):
        config_lib.from_dict({"optimiser": {}})


def test_wrong_type_is_refused_with_its_path():
    with pytest.raises(config_lib.ConfigError, match=r"^optimizer\.learning_rate: expected float, received 'abc'"):
        load("default.yaml", ["optimizer.learning_rate=abc"])
    with pytest.raises(config_lib.ConfigError, match=r"^data\.batch_size: expected int, received 2\.5"):
        load("default.yaml", ["data.batch_size=2.5"])
    with pytest.raises(
        config_lib.ConfigError, match=r"^optimizer\.name: expected one of 'rmsprop', 'adam', 'sgd', received 'lbfgs'"
    ):
        load("default.yaml", ["optimizer.name=lbfgs"])
    with pytest.raises(config_lib.ConfigError, match=r"^data\.crop_area\[1\]: expected float, received 'x'"):
        load("default.yaml", ["data.crop_area=[0.5, x]"])


def test_relations_between_settings_are_checked():
    with pytest.raises(config_lib.ConfigError, match=r"^optimizer\.rho: not read by optimizer 'adam'"):
        load("default.yaml", ["optimizer.rho=0.9"])
    with pytest.raises(config_lib.ConfigError, match=r"^loss\.kind: 'l1' needs model outputs \['image'\]"):
        load("release_stage1_head.yaml", ["loss.kind=l1"])
    with pytest.raises(config_lib.ConfigError, match=r"^model\.isp: set by model\.preset"):
        load("release_joint_3lux.yaml", ["model.isp=bilinear"])
    with pytest.raises(config_lib.ConfigError, match=r"^loss\.image_loss: read by loss 'liu' only, not by 'nidf'"):
        load("nidf_joint.yaml", ["loss.image_loss=l1"])
    with pytest.raises(config_lib.ConfigError, match=r"^loss\.image_loss: expected one of 'mse', 'l1'"):
        load("default.yaml", ["loss.image_loss=l2"])
    with pytest.raises(config_lib.ConfigError, match=r"^schedule\.decay_rate: not read by a constant schedule"):
        load("default.yaml", ["schedule.kind=constant"])
    with pytest.raises(config_lib.ConfigError, match=r"^distribution\.sync_batch_norm: must be true"):
        load("default.yaml", ["distribution.strategy=multi_worker"])


def test_overrides_and_base_chain(tmp_path):
    (tmp_path / "parent.yaml").write_text(
        "model: {isp: bilinear, head: mobilenet_v1, image_size: 32, num_classes: 10}\ndata: {epochs: 3}\n"
    )
    (tmp_path / "child.yaml").write_text("base: parent.yaml\ndata: {batch_size: 8}\n")
    config = config_lib.load_config(tmp_path / "child.yaml", ["data.epochs=5", "model.isp_settings={pattern: RGGB}"])
    assert (config.data.epochs, config.data.batch_size, config.model.isp) == (5, 8, "bilinear")
    assert config.model.isp_settings == {"pattern": "RGGB"}
    config_lib.save_params(config, tmp_path / "run")
    assert config_lib.load_config(tmp_path / "run" / "params.yaml") == config
    assert dataclasses.replace(config, seed=1) != config


def test_steps_are_derived_from_the_global_batch_and_the_dataset_size():
    config = load("release_joint_3lux.yaml")
    steps = config_lib.derive_steps(config, 1_281_167)
    # the release's 256 per clone x 4 clones; its decay_steps = int(N / 1024 * 2) = 2502
    assert steps.steps_per_epoch == 1_281_167 // 1024 == 1251
    assert steps.decay_steps == 2 * 1251 == int(1_281_167 / 1024 * 2) and steps.total_steps == 30 * 1251
    halved = config_lib.derive_steps(load("release_joint_3lux.yaml", ["data.batch_size=128"]), 1_281_167)
    assert halved.steps_per_epoch == 10009 and halved.decay_steps == 20018
