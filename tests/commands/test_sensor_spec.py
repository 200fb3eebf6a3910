"""One sensor.yaml, one seed: simulate, evaluate and training simulate the same frames bit for bit (each command
resolves the sensor spec through physics.sensor_files.resolve_sensor, extended noise terms and Bayer phase included)."""

import numpy as np
import pytest
import skimage.io

from dirtypixels_tf import cli
from dirtypixels_tf.data import raw_records
from dirtypixels_tf.evaluation import grid
from dirtypixels_tf.physics import noise, sensor_files
from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training.data import ExperimentData

SIZE = 8
SEED = 5
PROFILE = "3lux"


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Two classes of two 12 x 12 random colour images (PNG)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for label in range(2):
        (root / f"class_{label}").mkdir()
        for i in range(2):
            image = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            skimage.io.imsave(root / f"class_{label}" / f"{i}.png", image, check_contrast=False)
    return str(root)


@pytest.fixture(scope="module")
def sensor_yaml(tmp_path_factory):
    """A calibrated sensor with every extended noise term on and a Bayer phase other than the release's."""
    terms = noise.NoiseTerms(tukey_lambda=-0.2, row_noise=0.5, black_level_bias=(0.01, -0.01, 0.02, 0.0), bit_depth=10)
    calibration = sensor_files.SensorCalibration(
        noise.NoisePreset(2e-4, 5e-4), "RGGB", ((800.0, 1.6e-3, 4e-3),), "test sensor", terms
    )
    return str(sensor_files.save_sensor_preset(tmp_path_factory.mktemp("sensor") / "sensor.yaml", calibration))


def _simulate_frames(image_folder, sensor_yaml, out):
    argv = ["simulate", image_folder, "--out", str(out), "--sensor", sensor_yaml, "--profile", PROFILE]
    assert cli.main([*argv, "--size", str(SIZE), "--seed", str(SEED), "--quiet"]) == 0
    return np.stack([features["raw"].numpy() for features, _ in raw_records.read_raw_tfrecords(str(out))])


def _evaluate_frames(image_folder, sensor_yaml):
    from dirtypixels_tf.commands.simulate import _open_source

    frames = []

    def recorder(batch, psf):
        frames.append(batch["raw"])
        return {"logits": None, "image": None}

    source, _, _ = _open_source(image_folder, "test", 0)
    grid.evaluate(
        recorder,
        source,
        light_levels=[PROFILE],
        psfs=["none"],
        image_size=SIZE,
        seed=SEED,
        sensor=sensor_yaml,
        central_fraction=1.0,
        quality=False,
        progress=False,
    )
    return np.concatenate(frames)


def _training_frames(image_folder, sensor_yaml):
    overrides = [
        "data.source=folder",
        f"data.train_path={image_folder}",
        f"data.eval_path={image_folder}",
        f"data.sensor={sensor_yaml}",
        f"data.profile={PROFILE}",
        "data.central_fraction=1.0",
        "data.batch_size=2",
        "model.isp=bilinear",
        "model.head=mobilenet_v1",
        f"model.image_size={SIZE}",
        "model.num_classes=2",
        f"seed={SEED - 1}",  # the evaluation split is simulated with seed + 1
    ]
    config = config_lib.load_config(None, overrides)
    features = ExperimentData(config, ("raw", "alpha", "sigma")).eval_features(include_clean=False)
    return np.concatenate([batch["raw"].numpy() for batch, _ in features])


def test_simulate_evaluate_and_training_make_the_same_frames_from_one_sensor_yaml(image_folder, sensor_yaml, tmp_path):
    simulated = _simulate_frames(image_folder, sensor_yaml, tmp_path / "records")
    evaluated = _evaluate_frames(image_folder, sensor_yaml)
    trained = _training_frames(image_folder, sensor_yaml)
    assert simulated.shape == evaluated.shape == trained.shape == (4, SIZE, SIZE, 1)
    np.testing.assert_array_equal(evaluated, trained, err_msg="evaluate and training disagree")
    np.testing.assert_array_equal(simulated, evaluated, err_msg="simulate and evaluate disagree")
