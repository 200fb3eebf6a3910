"""`dirtypixels simulate`: writes readable RAW records; bad arguments exit 2 with a message, no traceback."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dirtypixels_tf import cli
from dirtypixels_tf.data import read_raw_tfrecords, write_tfrecords
from dirtypixels_tf.physics import noise, optics

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _folder(tmp_path, counts=(2, 3)):
    rng = np.random.default_rng(0)
    for index, count in enumerate(counts):
        os.makedirs(tmp_path / "images" / f"class{index}")
        for k in range(count):
            pixels = rng.integers(0, 256, (10 + k, 14, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / f"class{index}" / f"{k}.png")
    return str(tmp_path / "images")


def test_simulate_folder_writes_records_that_read_back(tmp_path, capsys):
    out = str(tmp_path / "raw")
    status = cli.main(["simulate", _folder(tmp_path), "--out", out, "--size", "8", "--seed", "3", "--quiet"])
    assert status == 0
    assert "wrote 5 RAW records" in capsys.readouterr().out
    examples = list(read_raw_tfrecords(out))
    assert len(examples) == 5
    assert [int(label) for _, label in examples] == [0, 0, 1, 1, 1]
    alpha, sigma = noise.noise_at_lux(3)
    for features, _ in examples:
        assert features["raw"].shape == (8, 8, 1)
        assert float(features["alpha"]) == pytest.approx(alpha, rel=1e-6)
        assert float(features["sigma"]) == pytest.approx(sigma, rel=1e-6)
    metadata = json.load(open(os.path.join(out, "simulation.json")))
    assert metadata["class_names"] == ["class0", "class1"] and metadata["count"] == 5
    assert metadata["source_kind"] == "image folder" and metadata["profile"] == "3lux"


def test_simulate_tfrecords_with_limit_offset_and_psf_file(tmp_path):
    images = np.random.default_rng(2).integers(0, 256, (6, 12, 12, 3), dtype=np.uint8)
    write_tfrecords(images, [1, 2, 3, 4, 5, 6], tmp_path / "slim.tfrecord")
    np.save(tmp_path / "psf.npy", optics.gaussian_psf(5, 1.0))
    out = str(tmp_path / "raw")
    argv = ["simulate", str(tmp_path / "slim.tfrecord"), "--out", out, "--size", "6", "--limit", "4"]
    argv += ["--label-offset", "1", "--psf", str(tmp_path / "psf.npy"), "--profile", "6lux", "--dtype", "uint16"]
    assert cli.main(argv + ["--shards", "2", "--quiet"]) == 0
    examples = list(read_raw_tfrecords(out))
    assert sorted(int(label) for _, label in examples) == [0, 1, 2, 3]
    assert all(f["raw"].shape == (6, 6, 1) for f, _ in examples)
    assert float(examples[0][0]["alpha"]) == pytest.approx(noise.noise_at_lux(6)[0], rel=1e-6)
    metadata = json.load(open(os.path.join(out, "simulation.json")))
    assert metadata["blur"] is True and metadata["dtype"] == "uint16" and len(metadata["files"]) == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--profile", "4lux"], "--profile: must be one of 3lux, 6lux, 2to20lux, 2to200lux; received '4lux'"),
        (["--sensor", "Nexus_7"], "--sensor: must be one of Nexus_6P_rear, Nexus_6P_front"),
        (["--sensor", "missing.yaml"], "or an existing sensor.yaml; received 'missing.yaml'"),
        (["--size", "31"], "--size: must be an even positive integer"),
        (["--psf", "missing.npy"], "--psf: no such file or folder: 'missing.npy'"),
        (["--psf", "blurry"], "--psf: psf must be none, center, offaxis, periphery, motion-L"),
        (["/no/such/folder"], "SOURCE must be 'fashion-mnist'"),
        (["fashion-mnist-composite"], "SOURCE: the RAW records hold one class label per frame"),
    ],
)
def test_bad_arguments_exit_2_with_the_message(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["simulate", "--out", str(tmp_path / "out")] + argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["simulate", "--out", "OUT", "--profile", "dark"], "argument --profile: must be one of 3lux"),
        (["evaluate", "/no/such/run"], "argument MODEL: no such file or folder: '/no/such/run'"),
        (["export", "/no/such/model.keras", "--out", "OUT"], "no such file or folder: '/no/such/model.keras'"),
        (["train", "--config", "no/such.yaml"], "--config: no such file or bundled config"),
        (["simulate", "/no/such/folder", "--out", "OUT"], "SOURCE must be 'fashion-mnist'"),
    ],
)
def test_bad_arguments_are_reported_before_tensorflow_is_imported(tmp_path, argv, message):
    # TensorFlow prints its start-up lines (oneDNN, CUDA) whenever it is imported: none here means the argument was
    # refused before the import (in a fraction of a second instead of 3-10 s).
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0", PYTHONPATH=REPO_ROOT)
    argv = [str(tmp_path / "out") if arg == "OUT" else arg for arg in argv]
    run = subprocess.run([sys.executable, "-m", "dirtypixels_tf.cli", *argv], capture_output=True, text=True, env=env)
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr and "oneDNN" not in run.stderr and "cuda" not in run.stderr.lower()
    assert not os.listdir(tmp_path)


def test_tensorflow_start_up_logs_are_hidden_unless_verbose(tmp_path):
    # The C++ lines ("[IWEF]MMDD hh:mm:ss ..." from absl, the oneDNN and CUDA notices) vary with the machine and
    # TF_ENABLE_ONEDNN_OPTS, so the check is on their form: --verbose shows some, without it none is left.
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    command = [sys.executable, "-m", "dirtypixels_tf.cli", "count", "bilinear_mobilenet_v1_32_test"]
    quiet = subprocess.run(command, capture_output=True, text=True, env=env)
    loud = subprocess.run(command + ["--verbose"], capture_output=True, text=True, env=env)
    assert quiet.returncode == loud.returncode == 2  # a preset that does not exist, named after TensorFlow starts
    assert "bilinear_mobilenet_v1_32_test" in quiet.stderr and "Traceback" not in quiet.stderr
    native_line = re.compile(
        r"^[IWEF]\d{4} \d\d:\d\d:\d\d|absl::InitializeLog|oneDNN|cuda", re.IGNORECASE | re.MULTILINE
    )
    assert native_line.search(loud.stderr), loud.stderr  # TensorFlow prints some here, so hiding them is tested
    assert not native_line.search(quiet.stderr), quiet.stderr


def test_start_up_logs_are_hidden_while_a_config_is_checked():
    # train's checks read the model registries (models.heads imports Keras, hence TensorFlow) before the command
    # runs: a config refused there must not show TensorFlow's start-up lines either.
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    command = [sys.executable, "-m", "dirtypixels_tf.cli", "train", "--set", "model.head=no_such_head"]
    run = subprocess.run(command, capture_output=True, text=True, env=env)
    assert run.returncode == 2 and "model.head: unknown head 'no_such_head'" in run.stderr, run.stderr
    native_line = re.compile(
        r"^[IWEF]\d{4} \d\d:\d\d:\d\d|absl::InitializeLog|oneDNN|cuda", re.IGNORECASE | re.MULTILINE
    )
    assert not native_line.search(run.stderr), run.stderr
