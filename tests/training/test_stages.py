"""Two-stage training: stage-1 weights load by component; Liu et al. keeps its head; NIDF pretraining and joint
training both learn; L-BFGS pretraining raises the PSNR; EMA weights are folded into model.keras."""

import csv

import keras
import numpy as np
import pytest
from training_jobs import tiny

from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training import from_dict, run_experiment
from dirtypixels_tf.training.model_setup import build_experiment_model, load_stage_weights, training_view
from dirtypixels_tf.training.optimizers import build_optimizer

QUIET = {"verbose": 0, "log": lambda line: None}


def losses(run_dir):
    with open(run_dir / "training_log.csv", encoding="utf-8") as stream:
        return [float(row["loss"]) for row in csv.DictReader(stream)]


@pytest.fixture(scope="module")
def trained_head(tmp_path_factory, fashion_mnist):
    """Stage 1 of the head: MobileNet-v1 0.25 trained on clean 32x32 Fashion-MNIST images (model.isp null)."""
    run_dir = tmp_path_factory.mktemp("head")
    config = tiny(
        model={"isp": None, "head": "mobilenet_v1"},
        data={"train_examples": 192, "epochs": 2},
        optimizer={"name": "adam", "learning_rate": 0.003, "momentum": None},
    )
    results = run_experiment(from_dict(config), str(run_dir), **QUIET)
    assert set(results["model"].input) == {"clean"}
    return run_dir


def test_stage_one_isp_and_head_load_by_component(tmp_path, trained_head, fashion_mnist):
    isp_run = tmp_path / "isp"
    stage_one = tiny(
        model={"isp": "anscombe", "head": None, "head_width": 1.0},
        data={"epochs": 1, "steps_per_epoch": 2},
        loss={"kind": "l1"},
    )
    results = run_experiment(from_dict(stage_one), str(isp_run), **QUIET)
    assert "psnr" in results["test"]
    joint = from_dict(
        tiny(model={"isp": "anscombe"}, stages={"isp_weights": str(isp_run), "head_weights": str(trained_head)})
    )
    model = build_experiment_model(joint)
    before = [w.copy() for w in model.get_layer("isp").get_weights()]
    load_stage_weights(model, joint)
    isp_stage = keras.models.load_model(isp_run / "model.keras")
    head_stage = keras.models.load_model(trained_head / "model.keras")
    for a, b in zip(model.get_layer("isp").get_weights(), isp_stage.get_layer("isp").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_layer("isp").get_weights()))
    for a, b in zip(model.get_layer("mobilenet_v1").get_weights(), head_stage.get_layer("mobilenet_v1").get_weights()):
        np.testing.assert_array_equal(a, b)
    wrong = from_dict(tiny(model={"isp": "anscombe"}, stages={"isp_weights": str(trained_head)}))
    with pytest.raises(config_lib.ConfigError, match="stages.isp_weights: .* has no layer named 'isp'"):
        load_stage_weights(build_experiment_model(wrong), wrong)


@pytest.mark.slow
def test_liu_training_leaves_the_trained_head_unchanged(tmp_path, trained_head, fashion_mnist):
    """Liu et al.: frozen (trained) head, loss MSE(image, clean) + 0.25 cross entropy; only the denoiser learns."""
    config = from_dict(
        tiny(
            model={"isp": "liu", "isp_settings": {"encoder_filters": 8, "decoder_filters": 16}, "freeze": "head"},
            data={"epochs": 2, "steps_per_epoch": 3},
            loss={"kind": "liu", "weight": 0.25},
            stages={"head_weights": str(trained_head)},
        )
    )
    keras.utils.set_random_seed(config.seed)  # the initial weights run_experiment starts from
    isp_before = build_experiment_model(config).get_layer("isp").get_weights()
    results = run_experiment(config, str(tmp_path / "liu"), **QUIET)
    trained = results["model"]
    head_stage = keras.models.load_model(trained_head / "model.keras").get_layer("mobilenet_v1")
    for a, b in zip(trained.get_layer("mobilenet_v1").get_weights(), head_stage.get_weights()):
        np.testing.assert_array_equal(a, b)  # includes the batch-norm statistics
    changed = [not np.allclose(a, b) for a, b in zip(isp_before, trained.get_layer("isp").get_weights())]
    assert sum(changed) >= len(changed) // 2
    assert {"top1", "image_psnr"} <= set(results["test"])


@pytest.mark.slow
def test_nidf_pretraining_then_joint_training_reduce_their_losses(tmp_path, fashion_mnist):
    small = {
        "isp": "nidf",
        "isp_settings": {"unet_options": {"levels": 2, "base_filters": 4}},
        "head": None,
        "head_width": 1.0,
    }
    data = {"epochs": 6, "steps_per_epoch": 4, "psf": "motion-3", "sensor": "GAUSS", "profile": [6.375, 25.5]}
    adam = {"name": "adam", "learning_rate": 0.003, "momentum": None}
    pretrain = from_dict(tiny(model=small, data=data, optimizer=adam, loss={"kind": "nidf_pretrain"}))
    results = run_experiment(pretrain, str(tmp_path / "pretrain"), **QUIET)
    history = losses(tmp_path / "pretrain")
    assert history[-1] < 0.8 * history[0], history
    assert {"denoised_psnr", "deblurred_psnr"} <= set(results["test"])
    joint = from_dict(
        tiny(
            model=small,
            data=data,
            optimizer={**adam, "learning_rate": 0.001},
            loss={"kind": "nidf", "weight": 0.5},
            stages={"isp_weights": str(tmp_path / "pretrain")},
        )
    )
    model = build_experiment_model(joint)
    load_stage_weights(model, joint)
    stage = keras.models.load_model(tmp_path / "pretrain" / "model.keras")
    for a, b in zip(model.get_layer("isp").denoiser.get_weights(), stage.get_layer("denoiser").get_weights()):
        np.testing.assert_array_equal(a, b)
    run_experiment(joint, str(tmp_path / "joint"), **QUIET)
    history = losses(tmp_path / "joint")
    assert history[-1] < history[0], history


def test_lbfgs_pretraining_raises_the_average_psnr(tmp_path, fashion_mnist):
    config = from_dict(
        tiny(
            model={
                "isp": "shrinkage_fields",
                "isp_settings": {"num_filters": 4, "task": "denoise"},
                "head": None,
                "head_width": 1.0,
                "image_size": 16,
            },
            data={"profile": "6lux", "batch_size": 8, "crop_area": [0.5, 1.0]},
            optimizer={"name": "sgd", "learning_rate": 0.01, "momentum": None},
            loss={"kind": "psnr"},
            trainer="lbfgs",
            lbfgs={"iterations": 5, "examples": 16, "chunk_size": 8},
        )
    )
    results = run_experiment(config, str(tmp_path / "lbfgs"), **QUIET)
    summary = results["lbfgs"]
    assert summary["iterations"] <= 5 and summary["final_psnr"] > summary["initial_psnr"] + 0.1, summary
    assert (tmp_path / "lbfgs" / "model.keras").is_file()


def test_ema_weights_are_folded_into_model_keras(tmp_path, fashion_mnist):
    """model.keras holds the moving averages: the raw weights of the last epoch checkpoint, with the optimizer's
    averages from the same file folded in (optimizer.finalize_variable_values), equal it."""
    config = from_dict(tiny(data={"epochs": 2, "steps_per_epoch": 3}, optimizer={"ema": True, "ema_momentum": 0.5}))
    run_experiment(config, str(tmp_path / "ema"), **QUIET)
    saved = keras.models.load_model(tmp_path / "ema" / "model.keras")
    model = training_view(build_experiment_model(config), {"logits": None})
    optimizer = build_optimizer(config.optimizer, config.schedule, config_lib.derive_steps(config, 128))
    model.compile(optimizer=optimizer, loss={"logits": "mse"})
    optimizer.build(model.trainable_variables)
    model.load_weights(tmp_path / "ema" / "checkpoints" / "epoch-002.weights.h5")
    raw = [v.numpy().copy() for v in model.trainable_variables]
    optimizer.finalize_variable_values(model.trainable_variables)
    folded = {v.path: v.numpy() for v in model.trainable_variables}
    saved_values = {v.path: v.numpy() for v in saved.trainable_variables}
    assert folded.keys() == saved_values.keys()
    for path, value in folded.items():
        np.testing.assert_allclose(saved_values[path], value, rtol=1e-6, atol=1e-7)
    assert any(not np.allclose(a, b) for a, b in zip(raw, folded.values()))
