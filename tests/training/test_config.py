"""Experiment configs: every named config loads, validates and builds; strict keys and types; params.yaml round trip."""

import dataclasses
import glob
import os

import pytest

from dirtypixels_tf.models import presets
from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training.model_setup import build_experiment_model

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


# The papers' and the release's training recipes (reference_facts.md, "Training recipes"), checked on every config
# of a family: a number changed in one member (e.g. a decay rate) fails for that member.
LIGHT_PROFILES = ("3lux", "6lux", "2to20lux", "2to200lux")
RELEASE_RMSPROP = {"name": "rmsprop", "learning_rate": 4.5e-4, "rho": 0.9, "momentum": 0.9, "epsilon": 1.0}
RELEASE_SCHEDULE = {"kind": "exponential", "decay_rate": 0.94, "decay_epochs": 2.0, "staircase": True}
PAPER_2017_RMSPROP = {"name": "rmsprop", "learning_rate": 4.5e-3, "rho": 0.9, "epsilon": 1.0}
PAPER_2017_SCHEDULE = {"kind": "exponential", "decay_rate": 0.94, "decay_epochs": 1.0, "staircase": True}
# Diamond et al. 2017 Table 2 settings: (profile, PSF)
SETTINGS_2017 = {
    "3lux": ("3lux", "none"),
    "6lux": ("6lux", "none"),
    "6lux_offaxis": ("6lux", "offaxis"),
    "6lux_periphery": ("6lux", "periphery"),
}
LIU_SIGMAS = (15, 30, 45, 60)


def _assert_fields(section, expected, name):
    actual = {key: getattr(section, key) for key in expected}
    assert actual == pytest.approx(expected), name


def _release_families():
    for profile in LIGHT_PROFILES:
        for family in ("release_joint", "raw_mobilenet_v1", "raw_mobilenet_v2_140", "bilinear_finetune_mobilenet_v1"):
            yield f"{family}_{profile}.yaml", profile, 4e-5
        yield f"release_stage1_isp_{profile}.yaml", profile, 0.0  # the release builds its ISP with weight_decay=0
    yield "release_stage1_head.yaml", None, 4e-5


@pytest.mark.parametrize("name, profile, weight_decay", list(_release_families()), ids=lambda v: str(v))
def test_release_recipe_in_every_config_of_the_2021_families(name, profile, weight_decay):
    """Seed 001 / the release: RMSProp (decay 0.9, momentum 0.9, epsilon 1.0, TF1's accumulator at ones), lr 4.5e-4,
    staircase exponential decay 0.94 every 2 epochs, at the light level the name says, 128x128 input."""
    config = load(name)
    _assert_fields(config.optimizer, RELEASE_RMSPROP, name)
    _assert_fields(config.schedule, RELEASE_SCHEDULE, name)
    assert config.optimizer.tf1_rmsprop_init is True and config.optimizer.weight_decay == weight_decay, name
    assert config_lib.model_spec(config).image_size == 128, name
    if profile is not None:
        assert (config.data.profile, config.data.sensor, config.data.psf) == (profile, "Nexus_6P_rear", "none"), name
    if config.loss.kind == "classification":  # the release's 256 per clone x 4 clones, 1001 classes
        assert config.data.batch_size == 1024 and config_lib.model_spec(config).num_classes == 1001, name
    else:
        spec = config_lib.model_spec(config)
        assert (config.loss.kind, spec.isp, spec.isp_settings["iterations"]) == ("l1", "anscombe", 1), name


@pytest.mark.parametrize("setting", SETTINGS_2017)
@pytest.mark.parametrize("family", ["shrinkage2017_joint", "inception_v4_finetune"])
def test_2017_recipe_in_every_joint_and_finetune_config(family, setting):
    """Seed 000: RMSProp (decay 0.9, epsilon 1.0), lr 4.5e-3 decayed by 0.94 every epoch, 2 epochs, at the Table 2
    setting the name says."""
    name = f"{family}_{setting}.yaml"
    config = load(name)
    _assert_fields(config.optimizer, PAPER_2017_RMSPROP, name)
    _assert_fields(config.schedule, PAPER_2017_SCHEDULE, name)
    assert config.data.epochs == 2 and config.loss.kind == "classification", name
    assert (config.data.profile, config.data.psf) == SETTINGS_2017[setting], name


@pytest.mark.parametrize("setting", SETTINGS_2017)
def test_2017_pretraining_in_every_shrinkage_config(setting):
    """Seed 000 Sec. 6: 400 L-BFGS iterations for average PSNR; 2000 100x100 patches for denoising, 200 180x180
    colour patches for joint deblurring and denoising."""
    name = f"shrinkage2017_pretrain_{setting}.yaml"
    config = load(name)
    profile, psf = SETTINGS_2017[setting]
    assert (config.trainer, config.lbfgs.iterations, config.loss.kind) == ("lbfgs", 400, "psnr"), name
    assert (config.data.profile, config.data.psf) == (profile, psf), name
    task, examples, size = ("denoise", 2000, 100) if psf == "none" else ("deblur_denoise", 200, 180)
    spec = config_lib.model_spec(config)
    assert (spec.isp_settings["task"], config.lbfgs.examples, spec.image_size) == (task, examples, size), name


@pytest.mark.parametrize("sigma", LIU_SIGMAS)
def test_liu_recipe_in_every_config_of_the_family(sigma):
    """Liu et al.: Gaussian noise sigma / 255 (GAUSS at light level 255 / sigma); pretraining with SGD, batch 32,
    48x48 patches, MSE; joint training with lambda 0.25 and the classifier frozen."""
    light = 255 / sigma
    pretrain = load(f"liu_pretrain_sigma{sigma}.yaml")
    joint = load(f"liu_joint_sigma{sigma}.yaml")
    for config in (pretrain, joint):
        assert config.data.sensor == "GAUSS" and config.data.profile == pytest.approx([light, light], rel=1e-4)
    assert (pretrain.optimizer.name, pretrain.data.batch_size, pretrain.loss.kind) == ("sgd", 32, "mse")
    assert config_lib.model_spec(pretrain).image_size == 48
    assert (joint.loss.kind, joint.loss.weight, config_lib.model_spec(joint).freeze) == ("liu", 0.25, "head")


def test_nidf_recipe_in_both_configs():
    """NIDF: Adam, lr 1e-4 pretraining then 1e-5 joint with weight 0.5, batch 16, AWGN sigma in [10, 40] / 255."""
    pretrain, joint = load("nidf_pretrain.yaml"), load("nidf_joint.yaml")
    for config, rate in ((pretrain, 1e-4), (joint, 1e-5)):
        assert (config.optimizer.name, config.optimizer.learning_rate, config.data.batch_size) == ("adam", rate, 16)
        assert config.data.sensor == "GAUSS" and config.data.profile == pytest.approx([255 / 40, 255 / 10])
    assert (joint.loss.kind, joint.loss.weight) == ("nidf", 0.5)


def _build_groups(big):
    groups = {}
    for name in NAMED:
        config = load(name)
        if is_big(config) == big:
            groups.setdefault(model_key(config), []).append(name)
    return sorted(groups.values())


def _check_builds(names):
    config = load(names[0])
    model = build_experiment_model(config)
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
    with pytest.raises(
        config_lib.ConfigError, match=r"^data\.pattern: the frames are BGGR mosaics but the ISP reads RGGB"
    ):
        load("default.yaml", ["model.isp_settings={pattern: RGGB}"])
    with pytest.raises(
        config_lib.ConfigError, match=r"^data\.pattern: the frames are GRBG mosaics but the ISP reads BGGR"
    ):
        load("release_joint_3lux.yaml", ["data.pattern=GRBG"])  # a preset's ISP is BGGR


@pytest.mark.parametrize("pattern", ["RGGB", "BGGR", "GRBG", "GBRG"])
def test_the_isp_and_its_comparison_read_the_frames_bayer_phase(pattern):
    """data.pattern sets the phase of the simulated mosaics: the ISP built, and the ISP of each comparison run,
    read that phase unless model.isp_settings names it."""
    from dirtypixels_tf.training.fit import comparison_config

    config = load("default.yaml", [f"data.pattern={pattern}"])
    assert build_experiment_model(config).get_layer("isp").pattern == pattern
    assert config_lib.model_spec(comparison_config(config, "bilinear")).isp_settings["pattern"] == pattern
    assert config_lib.pretrain_config(config).data.pattern == pattern
    assert config_lib.model_spec(config_lib.pretrain_config(config)).isp_settings["pattern"] == pattern


@pytest.mark.parametrize("pattern", ["RGGB", "GRBG"])
def test_without_data_pattern_the_isp_reads_the_sensor_files_phase(tmp_path, pattern):
    """data.pattern unset: the frames take a calibrated sensor.yaml's phase, and so do the ISP and the
    comparison's ISP (not the release's BGGR)."""
    from dirtypixels_tf.physics import noise, sensor_files
    from dirtypixels_tf.training.fit import comparison_config

    calibration = sensor_files.SensorCalibration(noise.NoisePreset(2e-4, 5e-4), pattern)
    path = sensor_files.save_sensor_preset(tmp_path / "sensor.yaml", calibration)
    config = load("default.yaml", [f"data.sensor={path}"])
    assert config.data.pattern is None
    assert config_lib.frames_pattern(config) == pattern
    assert build_experiment_model(config).get_layer("isp").pattern == pattern
    assert config_lib.model_spec(comparison_config(config, "bilinear")).isp_settings["pattern"] == pattern


def test_overrides_and_base_chain(tmp_path):
    (tmp_path / "parent.yaml").write_text(
        "model: {isp: bilinear, head: mobilenet_v1, image_size: 32, num_classes: 10}\ndata: {epochs: 3}\n"
    )
    (tmp_path / "child.yaml").write_text("base: parent.yaml\ndata: {batch_size: 8}\n")
    overrides = ["data.epochs=5", "model.isp_settings={pattern: RGGB}", "data.pattern=RGGB"]
    config = config_lib.load_config(tmp_path / "child.yaml", overrides)
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
