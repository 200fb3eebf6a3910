"""SavedModel export: every signature reloads and matches the Keras model; versions appear atomically."""

import os
import re
import shutil
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_models import CLASS_NAMES, SIZE

from dirtypixels_tf import cli
from dirtypixels_tf.export import export_savedmodel, make_example, read_export_metadata
from dirtypixels_tf.export.tflite import simulated_inputs
from dirtypixels_tf.models.components import IspModel
from dirtypixels_tf.models.isp import build_isp
from dirtypixels_tf.models.loading import load_model
from dirtypixels_tf.physics import noise

TOLERANCE = 1e-5
pytestmark = pytest.mark.usefixtures("exact_graphs")  # see tests/tiny_models.py: Grappler off, so eager and graph agree


@pytest.fixture(scope="module")
def signatures(exported):
    return tf.saved_model.load(exported[1]).signatures


@pytest.fixture(scope="module")
def frames():
    return simulated_inputs((SIZE, SIZE), 6, profile="2to20lux", seed=3)


def test_serving_default_matches_keras(tiny_model, signatures, frames):
    expected = tiny_model(frames)
    outputs = signatures["serving_default"](**frames)
    np.testing.assert_allclose(outputs["logits"], expected["logits"], atol=TOLERANCE)
    probabilities = tf.nn.softmax(expected["logits"]).numpy()
    np.testing.assert_allclose(outputs["probabilities"], probabilities, atol=TOLERANCE)
    order = np.argsort(-probabilities, axis=1)[:, :5]
    np.testing.assert_array_equal(outputs["top_k_classes"], order)
    np.testing.assert_allclose(outputs["top_k_scores"], np.take_along_axis(probabilities, order, 1), atol=TOLERANCE)
    labels = np.array(CLASS_NAMES, dtype=object)[order].astype(bytes)
    np.testing.assert_array_equal(outputs["top_k_labels"].numpy().astype(bytes), labels)
    assert outputs["top_k_classes"].dtype == tf.int32
    assert len(set(order[:, 0].tolist())) > 1, "the test frames should not all have the same top class"


def test_raw_uint16_applies_levels_and_the_sensor_preset_at_iso(tiny_model, signatures):
    rng = np.random.default_rng(0)
    black, white, iso = np.array([64.0, 512.0]), np.array([1023.0, 16383.0]), np.array([400.0, 3200.0])
    raw = rng.integers(0, 16384, (2, SIZE, SIZE, 1)).astype(np.uint16)
    raw[0] = np.minimum(raw[0], 1100)  # some values below black and above white: clipped to [0, 1]
    outputs = signatures["raw_uint16"](
        raw=tf.constant(raw),
        black_level=tf.constant(black, tf.float32),
        white_level=tf.constant(white, tf.float32),
        iso=tf.constant(iso, tf.float32),
    )
    normalized = np.clip((raw - black[:, None, None, None]) / (white - black)[:, None, None, None], 0, 1)
    alpha, sigma = noise.get_noise_preset("Nexus_6P_rear").at_iso(iso[0])
    alpha_1, sigma_1 = noise.get_noise_preset("Nexus_6P_rear").at_iso(iso[1])
    expected = tiny_model(
        {
            "raw": normalized.astype(np.float32),
            "alpha": np.float32([alpha, alpha_1]),
            "sigma": np.float32([sigma, sigma_1]),
        }
    )
    np.testing.assert_allclose(outputs["logits"], expected["logits"], atol=TOLERANCE)


def test_classify_reads_float_lists_and_bytes(tiny_model, signatures, frames):
    examples = [
        make_example(frames["raw"][i], frames["alpha"][i], frames["sigma"][i], "bytes" if i % 2 else "float_list")
        for i in range(len(frames["raw"]))
    ]
    outputs = signatures["classify"](inputs=tf.constant(examples))
    probabilities = tf.nn.softmax(tiny_model(frames)["logits"]).numpy()
    np.testing.assert_allclose(outputs["scores"], probabilities, atol=TOLERANCE)
    assert outputs["classes"].shape == (len(examples), len(CLASS_NAMES))
    assert [c.decode() for c in outputs["classes"][0].numpy()] == CLASS_NAMES


def test_isp_signature_returns_the_intermediate_image(tiny_model, signatures, frames):
    outputs = signatures["isp"](**frames)
    assert sorted(outputs) == ["image"]
    np.testing.assert_allclose(outputs["image"], tiny_model(frames)["image"], atol=TOLERANCE)


@pytest.mark.parametrize("batch", [1, 5])
def test_batch_dimension_is_dynamic(signatures, frames, batch):
    subset = {key: np.repeat(value[:1], batch, axis=0) for key, value in frames.items()}
    assert signatures["serving_default"](**subset)["logits"].shape == (batch, len(CLASS_NAMES))


def _invalid(function, **inputs):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        function(**inputs)
    return error.value.message


def test_noise_of_every_release_preset_is_accepted(signatures, frames):
    # The release's "Pixel" preset at 3 lux: alpha 10.2, sigma 21.9 (far above full scale, still a real setting of
    # the papers' simulation); a bound at 1 refused it and made `evaluate` of a SavedModel fail at 12 lux.
    alpha, sigma = noise.noise_at_lux(3, "Pixel")
    outputs = signatures["serving_default"](
        raw=frames["raw"], alpha=np.full_like(frames["alpha"], alpha), sigma=np.full_like(frames["sigma"], sigma)
    )
    assert np.all(np.isfinite(outputs["logits"].numpy()))


def test_bad_values_fail_inside_the_graph_with_clear_messages(signatures, frames):
    serving = signatures["serving_default"]
    nan = frames["raw"].copy()
    nan[0, 3, 3, 0] = np.nan
    assert "raw must be finite" in _invalid(serving, raw=nan, alpha=frames["alpha"], sigma=frames["sigma"])
    assert "raw must be in [0, 1]" in _invalid(
        serving, raw=frames["raw"] * 300, alpha=frames["alpha"], sigma=frames["sigma"]
    )
    assert "alpha must be finite, > 0 and <= 1000" in _invalid(
        serving, raw=frames["raw"], alpha=-frames["alpha"], sigma=frames["sigma"]
    )
    zero = np.zeros_like(frames["alpha"])  # the model's own assertion fired first, naming no input
    assert "alpha must be finite, > 0 and <= 1000" in _invalid(
        serving, raw=frames["raw"], alpha=zero, sigma=frames["sigma"]
    )
    huge = np.full_like(frames["sigma"], 1e30)  # answered NaN logits with status OK before
    assert "sigma must be finite, >= 0 and <= 1000" in _invalid(
        serving, raw=frames["raw"], alpha=frames["alpha"], sigma=huge
    )
    uint16 = {
        "raw": np.zeros((1, SIZE, SIZE, 1), np.uint16),
        "black_level": np.float32([100]),
        "iso": np.float32([100]),
    }
    assert "white_level must be finite and > black_level" in _invalid(
        signatures["raw_uint16"], white_level=np.float32([50]), **uint16
    )
    no_alpha = tf.train.Example(
        features=tf.train.Features(
            feature={
                "raw": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5] * SIZE * SIZE)),
                "sigma": tf.train.Feature(float_list=tf.train.FloatList(value=[0.1])),
            }
        )
    ).SerializeToString()
    assert "alpha" in _invalid(signatures["classify"], inputs=tf.constant([no_alpha]))
    short = make_example(frames["raw"][0, :30], 0.1, 0.1)
    assert "feature raw (a float_list of H*W = 1024 values)" in _invalid(
        signatures["classify"], inputs=tf.constant([short])
    )


def test_saved_model_cli_shows_the_signatures(exported):
    tool = shutil.which("saved_model_cli")  # the console script TensorFlow installs
    command = [tool] if tool else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    result = subprocess.run(
        command + ["show", "--all", "--dir", str(exported[1])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    blocks = dict(re.findall(r"signature_def\['(\w+)'\]:(.*?)(?=signature_def\[|\Z)", text, re.S))
    assert {"serving_default", "raw_uint16", "classify", "isp"} <= set(blocks)
    assert re.search(r"inputs\['raw'\].*?DT_FLOAT.*?shape: \(-1, 32, 32, 1\)", blocks["serving_default"], re.S)
    assert re.search(r"inputs\['raw'\].*?DT_UINT16.*?shape: \(-1, 32, 32, 1\)", blocks["raw_uint16"], re.S)
    assert re.search(r"outputs\['top_k_classes'\].*?DT_INT32.*?shape: \(-1, 5\)", blocks["serving_default"], re.S)
    assert re.search(r"inputs\['inputs'\].*?DT_STRING.*?shape: \(-1\)", blocks["classify"], re.S)
    assert "Method name is: tensorflow/serving/classify" in blocks["classify"]
    assert "Method name is: tensorflow/serving/predict" in blocks["serving_default"]
    assert re.search(r"outputs\['image'\].*?shape: \(-1, 32, 32, 3\)", blocks["isp"], re.S)


@pytest.mark.parametrize("top_k, columns", [(3, 3), (20, 10)])
def test_top_k_outputs_hold_the_k_best_classes_at_most_every_class(tiny_model, frames, top_k, columns):
    """The signatures' top-k outputs for top_k 3 and 20 on 10 classes: the 3 best, or all 10, best first."""
    from dirtypixels_tf.export.savedmodel import _Signatures

    logits = tiny_model(frames)["logits"]
    outputs = _Signatures(tiny_model, (SIZE, SIZE), True, None, top_k, CLASS_NAMES).predictions({"logits": logits})
    probabilities = tf.nn.softmax(logits).numpy()
    order = np.argsort(-probabilities, axis=1)[:, :columns]
    np.testing.assert_array_equal(outputs["top_k_classes"], order)
    np.testing.assert_allclose(outputs["top_k_scores"], np.take_along_axis(probabilities, order, 1), atol=TOLERANCE)


def test_metadata_and_warmup_file(exported):
    metadata = read_export_metadata(exported[1])
    assert metadata["class_names"] == CLASS_NAMES and metadata["image_size"] == [SIZE, SIZE]
    assert metadata["sensor"] == {"name": "Nexus_6P_rear", "poisson": 0.00018724, "gauss": 0.0004733}
    records = list(tf.data.TFRecordDataset(os.path.join(exported[1], "assets.extra", "tf_serving_warmup_requests")))
    assert len(records) == 4  # one batch-1 request per signature


def test_versions_count_up_and_never_overwrite(tmp_path):
    model = IspModel(build_isp("bilinear"), (8, 8))
    base = tmp_path / "bilinear"
    assert export_savedmodel(model, base).endswith(os.sep + "1")
    assert export_savedmodel(model, base).endswith(os.sep + "2")
    assert export_savedmodel(model, base, version=7).endswith(os.sep + "7")
    assert export_savedmodel(model, base).endswith(os.sep + "8")
    with pytest.raises(ValueError, match="version 7 already exists"):
        export_savedmodel(model, base, version=7)
    assert sorted(os.listdir(base)) == ["1", "2", "7", "8"]
    # A model without a classifier: the image from serving_default, raw_uint16 and isp; no classify signature.
    loaded = tf.saved_model.load(str(base / "1")).signatures
    assert sorted(loaded) == ["isp", "raw_uint16", "serving_default"]
    raw = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 1)).astype(np.float32)
    expected = model({"raw": raw, "alpha": np.ones(2, np.float32), "sigma": np.ones(2, np.float32)})["image"]
    np.testing.assert_allclose(
        loaded["serving_default"](raw=raw, alpha=np.ones(2, np.float32), sigma=np.ones(2, np.float32))["image"],
        expected,
        atol=TOLERANCE,
    )


def test_a_crash_while_writing_leaves_no_version(tmp_path, monkeypatch):
    model = IspModel(build_isp("bilinear"), (8, 8))
    base = tmp_path / "crash"
    export_savedmodel(model, base)
    original = tf.saved_model.save

    def save_then_fail(obj, export_dir, *args, **kwargs):
        original(obj, export_dir, *args, **kwargs)  # the files are written...
        assert os.path.isfile(os.path.join(export_dir, "saved_model.pb"))
        raise OSError("No space left on device")  # ...and then the write fails

    monkeypatch.setattr(tf.saved_model, "save", save_then_fail)
    with pytest.raises(OSError, match="No space left"):
        export_savedmodel(model, base)
    assert os.listdir(base) == ["1"]  # neither version 2 nor its temporary directory


@pytest.mark.slow
def test_a_killed_export_leaves_no_version(tmp_path):
    """SIGKILL an export subprocess once the whole SavedModel is written but before it is renamed into place: no
    version directory appears (only its .tmp-* directory, which a server ignores)."""
    base = tmp_path / "killed"
    script = (
        "import os, time\n"
        "from dirtypixels_tf.export import export_savedmodel\n"
        "from dirtypixels_tf.models.isp import build_isp\nfrom dirtypixels_tf.models.components import IspModel\n"
        "rename = os.rename\n"
        "def slow_rename(source, target):\n"
        "    print('written', flush=True)\n"
        "    time.sleep(60)\n"
        "    rename(source, target)\n"
        "os.rename = slow_rename\n"
        f"export_savedmodel(IspModel(build_isp('bilinear'), (8, 8)), {str(base)!r})\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "written"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    names = os.listdir(base)
    assert len(names) == 1 and names[0].startswith(".tmp-1-")
    assert os.path.isfile(base / names[0] / "saved_model.pb")  # complete, but never published
    from dirtypixels_tf.serving.repository import ModelRepository

    repository = ModelRepository("killed", base)
    assert repository.refresh() == ([], []) and repository.available_versions() == []


def test_load_model_source_reads_keras_files_and_run_directories(tmp_path, tiny_model):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    tiny_model.save(run_dir / "model.keras")
    frames = simulated_inputs((SIZE, SIZE), 2)
    for source in (run_dir, run_dir / "model.keras"):
        loaded = load_model(source)
        np.testing.assert_allclose(loaded(frames)["logits"], tiny_model(frames)["logits"], atol=TOLERANCE)
    with pytest.raises(ValueError, match="has no model.keras"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="preset name .* received 'no_such_model'"):
        load_model("no_such_model")
    with pytest.raises(ValueError, match="must take the inputs"):
        export_savedmodel(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_export_command_writes_a_version_with_class_names(tmp_path, tiny_model, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    tiny_model.save(run_dir / "model.keras")
    names = tmp_path / "names.txt"
    names.write_text("\n".join(CLASS_NAMES) + "\n")
    base = tmp_path / "models" / "tiny"
    assert cli.main(["export", str(run_dir), "--out", str(base), "--class-names", str(names), "--quiet"]) == 0
    assert "wrote " + str(base / "1") in capsys.readouterr().out
    assert read_export_metadata(base / "1")["class_names"] == CLASS_NAMES
    with pytest.raises(SystemExit) as error:
        cli.main(["export", str(run_dir), "--out", str(base), "--sensor", "NoSuchPhone"])
    assert error.value.code == 2
    assert "argument --sensor: must be one of" in capsys.readouterr().err


@pytest.mark.slow
def test_export_command_builds_a_preset(tmp_path):
    base = tmp_path / "preset"
    argv = ["export", "joint_mobilenet_v1_128", "--out", str(base), "--num-classes", "10", "--quiet"]
    assert cli.main(argv) == 0
    outputs = tf.saved_model.load(str(base / "1")).signatures["serving_default"](**simulated_inputs((128, 128), 1))
    assert outputs["probabilities"].shape == (1, 10)
