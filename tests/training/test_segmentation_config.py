"""The segmentation configs: task, loss, sources and the head's stage 1, checked without training; the bundled
small job end to end (slow)."""

import json

import pytest

from dirtypixels_tf import cli
from dirtypixels_tf.training import config as config_lib

SIGMAS = (15, 30, 45, 60)


def load(name, overrides=()):
    return config_lib.load_config(config_lib.resolve_config(name), overrides)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_liu_segmentation_recipe_in_every_voc_config(sigma):
    """Liu et al.: DeepLab-LargeFOV on VOC's 21 classes, frozen, joint loss lambda 0.5, Gaussian noise sigma / 255."""
    config = load(f"liu_segmentation_voc_sigma{sigma}")
    spec = config_lib.model_spec(config)
    assert (spec.task, spec.head, spec.num_classes, spec.freeze) == ("segmentation", "deeplab_largefov", 21, "head")
    assert (config.loss.kind, config.loss.weight) == ("liu", 0.5)
    assert config.data.source == "voc" and config.data.sensor == "GAUSS"
    assert config.data.profile == pytest.approx([255 / sigma] * 2, rel=1e-4)
    with pytest.raises(config_lib.ConfigError, match="data.train_path: a required user setting"):
        config_lib.require_complete(config)


def test_small_config_trains_the_head_first_on_clean_images():
    config = load("liu_segmentation_small")
    spec = config_lib.model_spec(config)
    assert (spec.task, spec.num_classes, spec.freeze, config.loss.weight) == ("segmentation", 11, "head", 0.5)
    head = config_lib.head_pretrain_config(config)
    head_spec = config_lib.model_spec(head)
    assert head_spec.isp is None and (head_spec.head, head_spec.head_width) == (spec.head, spec.head_width)
    assert head.loss.kind == "segmentation" and head.data.epochs == 15 and head.optimizer.learning_rate == 0.003
    assert config_lib.pretrain_config(config).loss.kind == "mse"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["loss.kind=classification", "loss.weight=null"],
            r"loss.kind: 'classification' needs model outputs \['logits'\]",
        ),
        (["loss.label_smoothing=0.1"], "loss.label_smoothing: not read by loss 'liu' on a segmentation model"),
        (["stages.head_weights=x.weights.h5"], "stages.head_weights: set together with head_pretrain"),
        (["head_pretrain.model={}"], "head_pretrain.model: not allowed"),
    ],
)
def test_bad_segmentation_settings_are_refused_naming_the_key(overrides, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        load("liu_segmentation_small", overrides)


def test_a_classifier_head_name_is_refused_for_segmentation():
    data = {"model": {"isp": "liu", "head": "mobilenet_v1", "image_size": 64, "task": "segmentation"}}
    with pytest.raises(config_lib.ConfigError, match="model.head: unknown dense head 'mobilenet_v1'"):
        config_lib.from_dict(data)


@pytest.mark.slow
@pytest.mark.timeout(2400)  # three stages' graph building: 15 minutes and more on 2 heavily shared cores
def test_small_segmentation_job_runs_end_to_end(tmp_path, capsys):
    """The three stages at a tiny size (a few minutes on 2 shared cores): the head on clean composites, the
    denoiser, the joint model; mIoU, pixel accuracy and per-class IoU in metrics.json."""
    overrides = [
        "data.train_examples=64",
        "data.eval_examples=32",
        "data.epochs=1",
        "head_pretrain.data.epochs=1",
        "pretrain.data.epochs=1",
        "head_pretrain.precise_bn_batches=1",
    ]
    run_dir = tmp_path / "run"
    args = ["train", "--config", "liu_segmentation_small", "--run-dir", str(run_dir), "--quiet"]
    assert cli.main(args + [a for item in overrides for a in ("--set", item)]) == 0
    out = capsys.readouterr().out
    assert "head stage (mobilenet_v1_aspp alone on clean images): mIoU" in out and "test (liu): mIoU" in out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for results in (metrics["test"], metrics["head"]["test"]):
        assert 0 <= results["miou"] <= 1 and 0 <= results["pixel_accuracy"] <= 1 and len(results["iou"]) == 11
    for part in ("head/model.keras", "stage1/model.keras", "model.keras"):
        assert (run_dir / part).is_file(), part
