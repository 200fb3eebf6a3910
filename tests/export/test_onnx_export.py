"""ONNX export of the joint models (tf2onnx), run by ONNX Runtime, with the parity report against the SavedModel."""

import json

import keras
import numpy as np
import pytest
from tiny_models import SIZE, calibrate_batch_norm
from tolerances import decided, model_bound

from dirtypixels_tf.export import export_savedmodel
from dirtypixels_tf.export.onnx import export_onnx, make_session, onnx_parity
from dirtypixels_tf.export.tflite import parity_frames, simulated_inputs, write_parity_report
from dirtypixels_tf.models import isp, segmentation

FRAMES = 16


@pytest.fixture(scope="module")
def onnx_model(tiny_model, tmp_path_factory):
    return export_onnx(tiny_model, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def test_onnx_matches_the_savedmodel_within_round_off(tiny_model, onnx_model, exported):
    report = onnx_parity(onnx_model["path"], exported[1], parity_frames((SIZE, SIZE), FRAMES, light_levels=("3",)))
    parity = report["levels"]["3 lux"]
    assert report["runtime"] == "onnx" and parity["count"] == FRAMES and parity["top1_onnx"] is None
    frames = simulated_inputs((SIZE, SIZE), FRAMES)  # the frames parity_frames draws at 3 lux
    outputs = tiny_model(frames)
    logits, image = outputs["logits"].numpy(), outputs["image"].numpy()
    bound = model_bound(tiny_model, logits)
    assert parity["max_abs_delta_logits"] < bound  # other kernels, other summation orders: round-off only
    assert parity["image_psnr_db"] >= -20 * np.log10(model_bound(tiny_model.isp, image))
    clear = decided(logits, 2 * bound)
    assert clear.sum() >= 12
    assert (1 - parity["top1_agreement"]) * FRAMES <= FRAMES - clear.sum()


def test_onnx_model_takes_any_batch_size_and_gives_each_frame_the_same_answer(tiny_model, onnx_model):
    session = make_session(onnx_model["path"], threads=1)
    assert [(i.name, i.shape[1:]) for i in session.get_inputs()] == [
        ("raw", [SIZE, SIZE, 1]),
        ("alpha", []),
        ("sigma", []),
    ]
    frames = simulated_inputs((SIZE, SIZE), 5, seed=3)
    names = [output.name for output in session.get_outputs()]
    assert sorted(names) == ["image", "logits", "probabilities"]
    whole = dict(zip(names, session.run(names, frames)))
    for index in (0, 4):
        one = dict(zip(names, session.run(names, {k: v[index : index + 1] for k, v in frames.items()})))
        np.testing.assert_allclose(
            one["logits"][0], whole["logits"][index], atol=model_bound(tiny_model, whole["logits"])
        )
    np.testing.assert_allclose(whole["probabilities"].sum(axis=1), 1.0, atol=1e-6)


def test_export_command_writes_the_onnx_model_and_its_parity_report(tiny_model, tmp_path, capsys):
    from dirtypixels_tf.cli import main

    source = tmp_path / "tiny.keras"
    tiny_model.save(source)
    path = tmp_path / "desktop" / "tiny.onnx"
    assert (
        main(
            [
                "export",
                str(source),
                "--out",
                str(tmp_path / "base"),
                "--onnx",
                str(path),
                "--parity-frames",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "desktop" / "tiny.onnx.parity.json").read_text())
    assert report["export"] == {"path": str(path), "opset": 17, "bytes": path.stat().st_size}
    assert report["runtime"] == "onnx" and list(report["levels"]) == ["3 lux", "6 lux", "12 lux", "48 lux"]
    assert all(level["count"] == 2 and 0 <= level["top1_agreement"] <= 1 for level in report["levels"].values())
    printed = capsys.readouterr().out
    assert f"{path}.parity.json" in printed and "top-1 ONNX" in printed and "ONNX opset 17" in printed
    assert not list(path.parent.glob("*.tmp-*"))  # written atomically


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--onnx", "model.pb"], "--onnx must name a .onnx file; received 'model.pb'"),
        (["--onnx", "m.onnx", "--tflite", "m.lite"], "--tflite must name a .tflite file; received 'm.lite'"),
    ],
)
def test_bad_onnx_arguments_are_refused_before_any_work(tmp_path, capsys, flags, message):
    from dirtypixels_tf.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["export", "raw_mobilenet_v1_128", "--out", str(tmp_path / "base"), *flags])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "base").exists()


@pytest.mark.slow  # a second conversion; the classifier's ONNX tests above run by default
def test_segmentation_model_exports_to_onnx(tmp_path):
    keras.utils.set_random_seed(3)
    head = segmentation.build_dense_head("mobilenet_v1_aspp", (SIZE, SIZE, 3), 5, width=0.25)
    calibrate_batch_norm(head, np.random.default_rng(7).random((8, SIZE, SIZE, 3)).astype(np.float32) * 2 - 1)
    model = segmentation.JointSegmenter(isp.build_isp("bilinear"), head, "mobilenet_v1_aspp", (SIZE, SIZE))
    version = export_savedmodel(model, tmp_path / "base")
    info = export_onnx(model, tmp_path / "seg.onnx")
    report = onnx_parity(info["path"], version, parity_frames((SIZE, SIZE), 4, light_levels=("3",)))
    write_parity_report(report, info)
    parity = report["levels"]["3 lux"]
    frames = simulated_inputs((SIZE, SIZE), 4)
    image = model(frames)["image"].numpy()
    assert parity["image_psnr_db"] >= -20 * np.log10(model_bound(model, image))
    assert parity["top1_agreement"] > 0.99  # pixels of the same class (ties within round-off may differ)


@pytest.mark.slow  # the per-colour signature is also run by the LiteRT export's default test
def test_per_channel_model_exports_to_onnx_with_noise_per_colour(tiny_model, tmp_path):
    from dirtypixels_tf.cli import main

    source = tmp_path / "tiny.keras"
    tiny_model.save(source)
    path = tmp_path / "colour.onnx"
    argv = ["export", str(source), "--out", str(tmp_path / "base"), "--onnx", str(path), "--per-channel-noise"]
    assert main([*argv, "--parity-frames", "4", "--quiet"]) == 0
    inputs = {i.name: i.shape[1:] for i in make_session(path).get_inputs()}
    assert inputs == {"raw": [SIZE, SIZE, 1], "alpha": [3], "sigma": [3]}
    report = json.loads((tmp_path / "colour.onnx.parity.json").read_text())
    logits = tiny_model(simulated_inputs((SIZE, SIZE), 4))["logits"].numpy()
    bound = model_bound(tiny_model, logits)  # round-off only, as the scalar model above
    assert all(level["max_abs_delta_logits"] < bound for level in report["levels"].values())
