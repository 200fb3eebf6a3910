"""The two-stage mechanism (config `pretrain`): stage 1 into RUN_DIR/stage1 feeds the ISP weights of stage 2, is
resumed or read back like the rest, and its settings are checked with their path."""

import json

import numpy as np
import pytest
from training_jobs import tiny

from dirtypixels_tf.models.loading import load_model
from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training import from_dict, run_experiment

PRETRAIN = {"loss": {"kind": "l1"}, "data": {"epochs": 1, "profile": "2to200lux"}}


def two_stage(**sections):
    base = {
        "model": {"isp": "anscombe"},
        "data": {"epochs": 1, "train_examples": 32, "eval_examples": 16},
        "pretrain": PRETRAIN,
        "compare_isps": ["bilinear"],
    }
    return tiny(
        **{
            key: {**base.get(key, {}), **value} if isinstance(value, dict) else value
            for key, value in {**base, **sections}.items()
        }
    )


def test_stage_1_is_the_config_with_the_pretrain_settings_merged_over_it():
    config = from_dict(two_stage())
    stage1 = config_lib.pretrain_config(config)
    assert stage1.loss.kind == "l1" and stage1.data.profile == "2to200lux" and stage1.data.epochs == 1
    assert stage1.model == config.model and stage1.optimizer == config.optimizer
    assert stage1.compare_isps == [] and stage1.pretrain == {} and stage1.stages == config_lib.StagesConfig()
    assert config_lib.pretrain_config(from_dict(tiny())) is None
    # A loss section replaces stage 2's whole loss (liu's weight is not carried into l1, which refuses it).
    joint = from_dict(two_stage(loss={"kind": "liu", "weight": 0.25}))
    assert config_lib.pretrain_config(joint).loss == config_lib.LossConfig(kind="l1")


@pytest.mark.parametrize(
    "pretrain, message",
    [
        ({"loss": {"kind": "l2"}}, "pretrain.loss.kind: expected one of"),
        ({"data": {"epocs": 1}}, "pretrain.data.epocs: unknown key"),
        ({"loss": {"kind": "l1"}, "compare_isps": []}, "pretrain.compare_isps: not allowed"),
        ({"model": {"isp": "bilinear"}, "loss": {"kind": "l1"}}, "pretrain.model: stage 1 must train this model's ISP"),
    ],
)
def test_bad_pretrain_settings_are_refused_with_their_path(pretrain, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        from_dict(two_stage(pretrain=pretrain))


def test_pretrain_and_stages_isp_weights_exclude_each_other():
    with pytest.raises(config_lib.ConfigError, match="stages.isp_weights: set together with pretrain"):
        from_dict(two_stage(stages={"isp_weights": "somewhere"}))


def test_two_stages_in_one_run_and_the_rerun_is_refused(tmp_path, fashion_mnist):
    config = from_dict(two_stage())
    run_dir = tmp_path / "run"
    lines = []
    results = run_experiment(config, str(run_dir), verbose=0, log=lines.append)
    stage1 = load_model(str(run_dir / "stage1"))
    # stage 2 started from the stage-1 ISP: loaded (the log says so) and then trained away from it
    assert f"loaded stage-1 weights: isp <- {run_dir / 'stage1'}" in lines
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(stage1.get_layer("isp").get_weights(), results["model"].get_layer("isp").get_weights())
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["stage1"]["test"]["examples"] == 16 and "psnr" in metrics["stage1"]["test"]
    assert metrics["comparisons"]["bilinear"]["test"]["examples"] == 16
    # params.yaml is the config as given (with pretrain, without the derived stage-1 path)
    assert config_lib.load_config(str(run_dir / "params.yaml")) == config
    with pytest.raises(ValueError, match="already holds a finished run"):
        run_experiment(config, str(run_dir), verbose=0, log=lines.append)


@pytest.mark.slow
def test_a_finished_stage_1_is_read_back_not_retrained(tmp_path, fashion_mnist):
    config = from_dict(two_stage(compare_isps=[]))
    run_dir = tmp_path / "run"
    run_experiment(config_lib.pretrain_config(config), str(run_dir / "stage1"), verbose=0, log=lambda line: None)
    stamp = (run_dir / "stage1" / "model.keras").stat().st_mtime_ns
    lines = []
    results = run_experiment(config, str(run_dir), verbose=0, log=lines.append)
    assert f"stage 1: already trained in {run_dir / 'stage1'}" in lines
    assert (run_dir / "stage1" / "model.keras").stat().st_mtime_ns == stamp
    assert results["stage1"]["test"]["examples"] == 16
