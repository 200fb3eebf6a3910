"""LiteRT export of the joint model: float32, float16, dynamic-range and int8, with the parity report."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_models import SIZE, calibrate_batch_norm
from tolerances import decided, model_bound

from dirtypixels_tf.catalog import DEFAULT_PRESET
from dirtypixels_tf.export import export_savedmodel, export_tflite, tflite_parity
from dirtypixels_tf.export.savedmodel import _check_sensor, from_sensor_codes
from dirtypixels_tf.export.tflite import (
    _psnr,
    as_sensor_codes,
    make_interpreter,
    parity_frames,
    per_colour,
    simulated_inputs,
    write_parity_report,
)
from dirtypixels_tf.models.heads import build_head
from dirtypixels_tf.models.isp import build_isp
from dirtypixels_tf.models.joint import JointClassifier
from dirtypixels_tf.physics.sensor import SensorModel

# tf.lite.Interpreter (the fallback without ai-edge-litert, and the int8 converter's calibration) warns that it moves
# to the ai_edge_litert package; TF 2.21 still ships it.
pytestmark = pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")


@pytest.fixture(scope="module")
def float_tflite(tiny_model, tmp_path_factory):
    return export_tflite(tiny_model, tmp_path_factory.mktemp("tflite") / "tiny.tflite")


def test_float_tflite_matches_the_savedmodel(tiny_model, float_tflite, exported):
    info = float_tflite
    assert info["select_tf_ops"] is False  # the Anscombe network and MobileNet need TFLite's built-in ops only
    report = tflite_parity(info["path"], exported[1], parity_frames((SIZE, SIZE), 16, light_levels=("3",)))
    print("float TFLite parity:", report)
    parity = report["levels"]["3 lux"]
    assert parity["count"] == 16 and parity["top1_savedmodel"] is None  # simulated frames have no labels
    # TFLite's kernels sum in other orders than TensorFlow's: round-off only, far below a wrong model's O(1) change
    logits = tiny_model(simulated_inputs((SIZE, SIZE), 16))["logits"].numpy()  # the frames tflite_parity compares
    bound = model_bound(tiny_model, logits)
    assert parity["max_abs_delta_logits"] < bound
    # a decision may flip only on a near-tie: in-process logits are within the bound of the SavedModel's, so
    # TFLite and SavedModel are within 2 * bound of each other and of these
    clear = decided(logits, 2 * bound)
    assert clear.sum() >= 12, np.diff(np.sort(logits)[:, -2:]).ravel()  # most frames are decided
    assert (1 - parity["top1_agreement"]) * 16 <= 16 - clear.sum()


# float16 runs in test_export_command_writes_..., dynamic in the trained test below: the slow run covers the rest
@pytest.mark.parametrize(
    "quantize, size_ratio",
    [
        pytest.param("float16", 0.6, marks=pytest.mark.slow),
        pytest.param("dynamic", 0.5, marks=pytest.mark.slow),
        pytest.param("int8", None, marks=pytest.mark.slow),  # int8's report: the run-directory and trained tests
    ],
)
def test_quantized_tflite_is_smaller_and_writes_its_report(
    tiny_model, float_tflite, exported, tmp_path, quantize, size_ratio
):
    calibration = simulated_inputs((SIZE, SIZE), 8, seed=7) if quantize == "int8" else None
    info = export_tflite(tiny_model, tmp_path / f"{quantize}.tflite", quantize=quantize, calibration=calibration)
    if quantize == "int8":
        # the head's weights go from 4 bytes to 1; the float ISP's weights are stored once per signature (two)
        expected_saving = 3 * tiny_model.head.count_params() - 4 * tiny_model.isp.count_params()
        assert float_tflite["bytes"] - info["bytes"] > 0.9 * expected_saving
    else:
        assert info["bytes"] < size_ratio * float_tflite["bytes"]  # float16 or int8 weights
    report = tflite_parity(info["path"], exported[1], parity_frames((SIZE, SIZE), 4, light_levels=("3", "48")))
    path = write_parity_report(report, info)
    assert path == f"{info['path']}.parity.json"
    with open(path, encoding="utf-8") as file:
        written = json.load(file)
    # Random weights are a worst case for quantization (the random head amplifies any error): no agreement bound
    # here; the trained model below is held to one.
    print(f"{quantize} TFLite parity (random weights):", written)
    assert written["export"]["quantize"] == quantize and list(written["levels"]) == ["3 lux", "48 lux"]
    assert written["min_top1_agreement"] == min(level["top1_agreement"] for level in written["levels"].values())
    assert all(
        level["count"] == 4 and np.isfinite(level["max_abs_delta_logits"]) for level in written["levels"].values()
    )


def test_bad_arguments_are_refused(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="quantize must be one of"):
        export_tflite(tiny_model, tmp_path / "x.tflite", quantize="int4")
    with pytest.raises(ValueError, match="must end with .tflite"):
        export_tflite(tiny_model, tmp_path / "x.bin")
    with pytest.raises(ValueError, match="float_ops applies to quantize='int8'"):
        export_tflite(tiny_model, tmp_path / "x.tflite", quantize="float16", float_ops=("SQRT",))


# Dynamic-range quantization (int8 weights) changes some decisions of a model that has learned the task (80 % to
# 84 % top-1 agreement seen on 256 frames); a broken quantized model agrees only by chance, at most as often as the
# reference's most frequent class (sum_k p_k q_k <= max_k p_k). The bound: that, plus 4 binomial standard deviations
# over the frames, which an unrelated model passes with p < 1e-4.
FRAMES = 256
CHANCE = 0.1  # 10 classes


def _above_chance(decisions):
    """The agreement with `decisions` that an unrelated model reaches with p < 1e-4 (see above)."""
    most_frequent = np.bincount(decisions, minlength=10).max() / len(decisions)
    return most_frequent + 4 * np.sqrt(most_frequent * (1 - most_frequent) / len(decisions))


def _synthetic_task(count, seed):
    """Smooth scenes whose dominant hue is the class (10 classes), simulated at 6 lux."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    phase = labels[:, None] * 0.63 + np.array([0.0, 2.1, 4.2])
    hues = np.cos(phase) * 0.35 + 0.5
    scenes = rng.uniform(0.6, 1.0, (count, 8, 8, 1)) * hues[:, None, None, :]
    scenes = tf.image.resize(scenes.astype(np.float32), [SIZE, SIZE])
    frames = SensorModel(light_levels="6lux").simulate(scenes, tf.constant([seed, 0], tf.int64))
    return {k: v.numpy() for k, v in frames.items()}, labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained shortly on a synthetic task (48 steps, then batch-norm statistics of the training frames),
    more accurate than chance, so its decisions depend on the frame: (model, SavedModel version, the task's fresh
    frames with their labels, 64 training frames for int8 calibration)."""
    keras.utils.set_random_seed(1)
    head = build_head("mobilenet_v1", (SIZE, SIZE, 3), 10, width=0.25)
    model = JointClassifier(build_isp("anscombe"), head, "mobilenet_v1", (SIZE, SIZE))
    frames, labels = _synthetic_task(512, seed=0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(3e-3), {"logits": loss, "image": None})
    model.fit(
        frames,
        {"logits": labels, "image": np.zeros((len(labels), SIZE, SIZE, 3), np.float32)},
        batch_size=64,
        epochs=6,
        verbose=0,
    )
    calibrate_batch_norm(model, frames)  # 48 steps barely move the moving statistics (momentum 0.99)
    test_frames, test_labels = _synthetic_task(FRAMES, seed=1)
    predicted = np.argmax(model.predict(test_frames, batch_size=64, verbose=0)["logits"], axis=1)
    accuracy = float(np.mean(predicted == test_labels))
    print(f"synthetic task accuracy after 48 steps: {accuracy:.2f} (chance 0.10)")
    # The premise, not a score (training's round-off differs between CPUs: 0.46 and 0.24 seen): above chance by 4
    # binomial standard deviations of the test set, which a model that learned nothing passes with p < 1e-4.
    assert accuracy >= CHANCE + 4 * np.sqrt(CHANCE * (1 - CHANCE) / len(test_labels))
    assert len(set(predicted.tolist())) >= 3  # decisions that depend on the frame
    path = export_savedmodel(model, tmp_path_factory.mktemp("trained") / "trained")
    calibration = {key: value[:64] for key, value in frames.items()}  # the task's own frames (docs/mobile.md)
    return model, path, {**test_frames, "label": test_labels}, calibration


# dynamic range is the weaker setting of the two that quantize weights; int8 (the phone's) runs by default
@pytest.mark.parametrize(
    "quantize",
    [pytest.param("float16", marks=pytest.mark.slow), pytest.param("dynamic", marks=pytest.mark.slow), "int8"],
)
def test_quantized_tflite_of_a_trained_model_keeps_its_decisions(trained, tmp_path, quantize):
    """The quantized model must agree with the SavedModel's decisions far above chance on FRAMES of the task's
    fresh frames (with labels: its top-1 is reported) and of simulated_inputs at 6 lux; int8 is calibrated on 64 of
    the task's training frames."""
    model, path, task_frames, calibration = trained
    calibration = calibration if quantize == "int8" else None
    info = export_tflite(model, tmp_path / f"{quantize}.tflite", quantize=quantize, calibration=calibration)
    frames = {"task": task_frames, **parity_frames((SIZE, SIZE), FRAMES, light_levels=("6",))}
    report = tflite_parity(info["path"], path, frames)
    print(f"{quantize} LiteRT parity (trained):", json.dumps(report["levels"]))
    task = report["levels"]["task"]
    assert task["count"] == FRAMES and task["top1_savedmodel"] is not None and task["top1_litert"] is not None
    # the decisions on the simulated frames, in-process (a near-tie may differ from the SavedModel's: the bound
    # moves by 1 / FRAMES per frame, far less than its 4 standard deviations)
    simulated = model.predict(simulated_inputs((SIZE, SIZE), FRAMES, "6lux"), batch_size=64, verbose=0)["logits"]
    inputs = {key: task_frames[key] for key in ("raw", "alpha", "sigma")}
    saved = np.argmax(model.predict(inputs, batch_size=64, verbose=0)["logits"], axis=1)
    bounds = _above_chance(saved), _above_chance(np.argmax(simulated, axis=1))
    print(f"chance bounds {bounds[0]:.2f}, {bounds[1]:.2f}")
    assert task["top1_agreement"] >= bounds[0]
    assert report["levels"]["6 lux"]["top1_agreement"] >= bounds[1]
    if quantize == "int8":
        # int8 quantizes the head only: the ISP runs in float, so its image is the SavedModel's up to float32
        # round-off (an int8 ISP gives 26-50 dB; docs/mobile.md)
        image = model.predict(inputs, batch_size=64, verbose=0)["image"]
        floor = -20 * np.log10(model_bound(model.isp, image))
        assert min(level["image_psnr_db"] for level in report["levels"].values()) >= floor, floor
        # and so in the raw_uint16 signature, its sensor-code normalization included
        litert, keras_outputs = _run_uint16(info["path"], model, {key: value[:16] for key, value in inputs.items()})
        assert _psnr(litert["image"], keras_outputs["image"]) >= floor


def _run_uint16(path, model, frames):
    """(LiteRT outputs, in-process outputs) of the raw_uint16 signature on `frames` as 10-bit sensor codes of the
    export's default sensor, one frame at a time."""
    preset = _check_sensor(DEFAULT_PRESET)[1]
    codes = as_sensor_codes(frames, preset)
    runner = make_interpreter(path).get_signature_runner("raw_uint16")
    outputs = [runner(**{key: value[i : i + 1] for key, value in codes.items()}) for i in range(len(codes["raw"]))]
    litert = {key: np.concatenate([output[key] for output in outputs]) for key in outputs[0]}
    raw, alpha, sigma = from_sensor_codes(
        *(tf.constant(codes[key]) for key in ("raw", "black_level", "white_level", "iso")), preset
    )
    return litert, {key: value.numpy() for key, value in model({"raw": raw, "alpha": alpha, "sigma": sigma}).items()}


def test_raw_uint16_signature_takes_sensor_codes(tiny_model, float_tflite):
    """The LiteRT model's second signature: 10-bit codes, black and white level and ISO give the logits of the mosaic
    (codes - black) / (white - black) with the sensor's noise at that ISO, within float32 round-off."""
    interpreter = make_interpreter(float_tflite["path"])
    signatures = interpreter.get_signature_list()
    assert sorted(signatures["raw_uint16"]["inputs"]) == ["black_level", "iso", "raw", "white_level"]
    assert interpreter.get_signature_runner("raw_uint16").get_input_details()["raw"]["dtype"] == np.uint16
    frames = simulated_inputs((SIZE, SIZE), 8, "6lux", seed=4)
    litert, expected = _run_uint16(float_tflite["path"], tiny_model, frames)
    assert np.abs(litert["logits"] - expected["logits"]).max() < model_bound(tiny_model, expected["logits"])
    # the codes are the frames to 1/1023 and the ISO reproduces alpha: the same scene as the float signature
    preset = _check_sensor(DEFAULT_PRESET)[1]
    codes = as_sensor_codes(frames, preset)
    np.testing.assert_allclose(codes["raw"] / 1023, np.clip(frames["raw"], 0, 1), atol=0.5 / 1023 + 1e-7)
    alpha = from_sensor_codes(*(tf.constant(codes[k]) for k in ("raw", "black_level", "white_level", "iso")), preset)[1]
    np.testing.assert_allclose(alpha, frames["alpha"], rtol=1e-6)


def test_make_interpreter_runs_a_model_with_litert_where_installed(float_tflite):
    interpreter = make_interpreter(float_tflite["path"], threads=1)
    try:
        import ai_edge_litert.interpreter as litert
    except ImportError:
        assert isinstance(interpreter, tf.lite.Interpreter)
    else:
        assert isinstance(interpreter, litert.Interpreter)
    assert set(interpreter.get_signature_list()["serving_default"]["outputs"]) == {"image", "logits", "probabilities"}


def test_export_command_writes_the_quantized_model_and_its_parity_report(tiny_model, tmp_path, capsys):
    from dirtypixels_tf.cli import main

    source = tmp_path / "tiny.keras"
    tiny_model.save(source)
    path = tmp_path / "phone" / "tiny.tflite"
    argv = ["export", str(source), "--out", str(tmp_path / "base"), "--tflite", str(path), "--quantize", "float16"]
    assert main([*argv, "--parity-frames", "2", "--quiet"]) == 0
    with open(f"{path}.parity.json", encoding="utf-8") as file:
        report = json.load(file)
    assert report["export"]["quantize"] == "float16" and report["export"]["bytes"] == path.stat().st_size
    assert list(report["levels"]) == ["3 lux", "6 lux", "12 lux", "48 lux"]  # tflite.LIGHT_LEVELS
    assert all(level["count"] == 2 and 0 <= level["top1_agreement"] <= 1 for level in report["levels"].values())
    printed = capsys.readouterr().out
    assert f"{path}.parity.json" in printed and "48 lux" in printed


def test_int8_export_of_a_run_directory_calibrates_and_reports_on_the_runs_own_data(trained, tmp_path, capsys):
    """A run directory (model.keras and params.yaml of the default config: Fashion-MNIST) exported with --quantize
    int8 and no --calibration-source / --parity-source: calibrated on the run's training data and reported on its test
    data, with top-1 against the labels; the ISP stays float (its image within the float32 round-off floor)."""
    from dirtypixels_tf.cli import main
    from dirtypixels_tf.training import config as config_lib

    model = trained[0]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model.save(run_dir / "model.keras")
    config_lib.save_params(config_lib.load_config(config_lib.resolve_config("default")), str(run_dir))
    path = tmp_path / "phone.tflite"
    args = ["export", str(run_dir), "--out", str(tmp_path / "base"), "--tflite", str(path), "--quantize", "int8"]
    assert main([*args, "--parity-frames", "8", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "int8 ranges calibrated on the run's fashion-mnist train frames; the ISP kept in float" in printed
    assert "parity against the SavedModel on the run's fashion-mnist test frames" in printed
    report = json.loads((tmp_path / "phone.tflite.parity.json").read_text())
    assert report["export"]["float_layers"] == ["isp"]
    levels = report["levels"].values()
    assert all(level["count"] == 8 and level["top1_savedmodel"] is not None for level in levels)
    image = model.predict(simulated_inputs((SIZE, SIZE), 8, "6lux"), verbose=0)["image"]
    assert min(level["image_psnr_db"] for level in levels) >= -20 * np.log10(model_bound(model.isp, image))


def test_quantize_without_tflite_is_refused(tmp_path, capsys):
    from dirtypixels_tf.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["export", "raw_mobilenet_v1_128", "--out", str(tmp_path / "base"), "--quantize", "int8"])
    assert exit_info.value.code == 2
    assert "--quantize applies to --tflite" in capsys.readouterr().err


@pytest.mark.slow  # a third int8 conversion; the default int8 export runs in the tests above
def test_int8_isp_flag_quantizes_the_isp_too(tiny_model, tmp_path, capsys):
    """--int8-isp: no layer kept float whole, so the ISP image leaves the float32 round-off floor that the default int8
    export (ISP in float) stays within; the printed line says so."""
    from dirtypixels_tf.cli import main

    source = tmp_path / "tiny.keras"
    tiny_model.save(source)
    path = tmp_path / "isp8.tflite"
    args = ["export", str(source), "--out", str(tmp_path / "base"), "--tflite", str(path), "--quantize", "int8"]
    assert main([*args, "--int8-isp", "--parity-frames", "4", "--quiet"]) == 0
    assert "the ISP in int8 too (its physics in float)" in capsys.readouterr().out
    report = json.loads((tmp_path / "isp8.tflite.parity.json").read_text())
    assert report["export"]["float_layers"] == [] and report["export"]["float_ops"]  # the physics stays float
    image = tiny_model.predict(simulated_inputs((SIZE, SIZE), 4, "6lux"), verbose=0)["image"]
    floor = -20 * np.log10(model_bound(tiny_model.isp, image))
    assert max(level["image_psnr_db"] for level in report["levels"].values()) < floor


def test_int8_isp_without_int8_is_refused(tmp_path, capsys):
    from dirtypixels_tf.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["export", "raw_mobilenet_v1_128", "--out", str(tmp_path / "b"), "--tflite", "m.tflite", "--int8-isp"])
    assert exit_info.value.code == 2
    assert "--int8-isp applies to --quantize int8; received --quantize none" in capsys.readouterr().err


def _write_dngs(folder, count=2):
    """`count` 12-bit BGGR DNGs (black level 64, ISO 800 and 1600) larger than the model's frames, with a neutral."""
    from dirtypixels_tf.data.camera_raw import write_dng

    rng = np.random.default_rng(5)
    paths = []
    for index in range(count):
        paths.append(folder / f"capture{index}.dng")
        mosaic = rng.random((SIZE + 12, SIZE + 12)) * 0.3
        write_dng(
            paths[-1], mosaic, "BGGR", bits=12, black_level=64, iso=800 * (index + 1), as_shot_neutral=(0.5, 1, 0.7)
        )
    return paths


def test_calibration_files_of_a_scalar_model_are_read_as_raw_uint16_takes_them(tmp_path):
    """A DNG gives the int8 calibration its central crop, normalized by the file's levels, and the sensor's noise at
    its ISO: alpha = poisson * ISO / 100 (the raw_uint16 rule)."""
    from dirtypixels_tf.commands.export import file_calibration_frames

    paths = _write_dngs(tmp_path)
    frames = file_calibration_frames([str(p) for p in paths], (SIZE, SIZE))
    preset = _check_sensor(DEFAULT_PRESET)[1]
    assert frames["raw"].shape == (2, SIZE, SIZE, 1) and 0 <= frames["raw"].min() and frames["raw"].max() <= 1
    np.testing.assert_allclose(frames["alpha"], [preset.poisson * 8, preset.poisson * 16], rtol=1e-6)
    np.testing.assert_allclose(frames["sigma"], [preset.gauss * 8, preset.gauss * 16], rtol=1e-6)


def test_per_channel_model_exports_int8_calibrated_on_dngs(tiny_model, tmp_path, capsys):
    """--per-channel-noise with --tflite: alpha and sigma [1, 3] in the LiteRT model, its int8 ranges from DNGs through
    the real-capture front end (noise per colour), the parity report on per-colour frames, the ISP float."""
    from dirtypixels_tf.cli import main
    from dirtypixels_tf.models.components import with_per_channel_noise

    source = tmp_path / "tiny.keras"
    tiny_model.save(source)
    path = tmp_path / "colour.tflite"
    dngs = [str(p) for p in _write_dngs(tmp_path)]
    args = ["export", str(source), "--out", str(tmp_path / "base"), "--tflite", str(path), "--quantize", "int8"]
    args += ["--per-channel-noise", "--calibration-files", *dngs, "--parity-frames", "4", "--quiet"]
    assert main(args) == 0
    assert "int8 ranges calibrated on 2 files' frames; the ISP kept in float" in capsys.readouterr().out
    runner = make_interpreter(path).get_signature_runner("serving_default")
    assert list(runner.get_input_details()["alpha"]["shape"]) == [1, 3]
    report = json.loads((tmp_path / "colour.tflite.parity.json").read_text())
    model = with_per_channel_noise(tiny_model)
    frames = {key: value[:4] for key, value in simulated_inputs((SIZE, SIZE), 4, "6lux").items()}
    image = model.predict(per_colour(frames), verbose=0)["image"]
    floor = -20 * np.log10(model_bound(model.isp, image))
    assert all(level["count"] == 4 and level["image_psnr_db"] >= floor for level in report["levels"].values())


def test_calibration_files_need_int8_and_exist(tmp_path, capsys):
    from dirtypixels_tf.cli import main

    base = ["export", "raw_mobilenet_v1_128", "--out", str(tmp_path / "b"), "--tflite", str(tmp_path / "m.tflite")]
    for extra, message in (
        (["--calibration-files", "a.dng"], "--calibration-files applies to --quantize int8; received --quantize none"),
        (["--quantize", "int8", "--calibration-files", str(tmp_path / "no.dng")], "--calibration-files: no such file"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main([*base, *extra])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
