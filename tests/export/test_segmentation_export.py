"""A segmentation model exported as a SavedModel, loaded back, and served over real gRPC and REST on 127.0.0.1."""

import json
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_models import calibrate_batch_norm
from tolerances import decided, model_bound

from dirtypixels_tf.export import export_savedmodel
from dirtypixels_tf.export.tflite import simulated_inputs
from dirtypixels_tf.models import isp, segmentation
from dirtypixels_tf.serving.client import PredictionClient
from dirtypixels_tf.serving.server import LocalModelServer

SIZE, CLASSES = 32, 5
NAMES = [f"class_{k}" for k in range(CLASSES)]


@pytest.fixture(scope="module")
def segmenter():
    keras.utils.set_random_seed(3)
    head = segmentation.build_dense_head("mobilenet_v1_aspp", (SIZE, SIZE, 3), CLASSES, width=0.25)
    calibrate_batch_norm(head, np.random.default_rng(7).random((8, SIZE, SIZE, 3)).astype(np.float32) * 2 - 1)
    return segmentation.JointSegmenter(isp.build_isp("bilinear"), head, "mobilenet_v1_aspp", (SIZE, SIZE))


@pytest.fixture(scope="module")
def exported(segmenter, tmp_path_factory):
    base = tmp_path_factory.mktemp("segmentation") / "seg"
    return base, export_savedmodel(segmenter, base, class_names=NAMES)


@pytest.fixture(scope="module")
def frames():
    return simulated_inputs((SIZE, SIZE), 3, profile="6lux", seed=5)


def _check_answer(outputs, logits, bound):
    """class_map equals the Keras arg-max where the two best logits are more than 2 bounds apart; probabilities
    are the softmax of the logits within the bound."""
    class_map = np.asarray(outputs["class_map"])
    assert class_map.dtype == np.int32 and class_map.shape == logits.shape[:3]
    sure = decided(logits, bound)
    assert sure.mean() > 0.9
    np.testing.assert_array_equal(class_map[sure], logits.argmax(-1)[sure])
    np.testing.assert_allclose(outputs["probabilities"], tf.nn.softmax(logits).numpy(), atol=bound)


def test_savedmodel_loads_back_with_the_segmentation_signatures(segmenter, exported, frames):
    version = exported[1]
    metadata = json.loads(open(f"{version}/assets.extra/dirtypixels.json").read())
    assert metadata["task"] == "segmentation" and metadata["class_names"] == NAMES
    assert metadata["signatures"] == ["serving_default", "raw_uint16", "isp"]
    loaded = tf.saved_model.load(version).signatures
    assert set(loaded) == {"serving_default", "raw_uint16", "isp"}
    outputs = loaded["serving_default"](**{k: tf.constant(v) for k, v in frames.items()})
    assert set(outputs) == {"class_map", "probabilities"}
    logits = segmenter(frames)["segmentation"].numpy()
    _check_answer({k: v.numpy() for k, v in outputs.items()}, logits, model_bound(segmenter, logits))
    isp_outputs = loaded["isp"](**{k: tf.constant(v) for k, v in frames.items()})
    assert set(isp_outputs) == {"image"}
    rng = np.random.default_rng(0)
    raw = tf.constant(rng.integers(64, 1023, (2, SIZE, SIZE, 1)).astype(np.uint16))
    levels = {"black_level": [64.0, 60.0], "white_level": [1023.0, 1000.0], "iso": [800.0, 400.0]}
    answer = loaded["raw_uint16"](raw=raw, **{k: tf.constant(v) for k, v in levels.items()})
    assert answer["class_map"].shape == (2, SIZE, SIZE) and answer["probabilities"].shape == (2, SIZE, SIZE, CLASSES)


def test_one_segmentation_request_over_grpc_and_rest(segmenter, exported, frames):
    logits = segmenter(frames)["segmentation"].numpy()
    bound = model_bound(segmenter, logits)
    with LocalModelServer(exported[0], model_name="seg", port=0, rest_port=0) as server:
        with PredictionClient(server.address) as client:
            outputs = client.predict(frames["raw"], frames["alpha"], frames["sigma"], model="seg")
        _check_answer(outputs, logits, bound)
        document = {"inputs": {key: value.tolist() for key, value in frames.items()}}
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.rest_port}/v1/models/seg:predict", data=json.dumps(document).encode()
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())["outputs"]
    _check_answer(
        {k: np.asarray(v, np.int32 if k == "class_map" else np.float32) for k, v in answer.items()}, logits, bound
    )


@pytest.mark.slow  # about 30 s on 2 shared cores
def test_segment_command_writes_a_label_map_png_per_dng_and_png_frame(segmenter, exported, tmp_path, capsys):
    """`dirtypixels segment`: a real DNG (rawpy reads it) and a PNG; each PNG written is the colourized class map of
    the signature's answer for that frame, read back from disk."""
    from dirtypixels_tf import cli
    from dirtypixels_tf.data.camera_raw import write_dng
    from dirtypixels_tf.data.segmentation import colourize
    from dirtypixels_tf.serving.frames import read_frame

    rng = np.random.default_rng(2)
    dng, png = tmp_path / "night.dng", tmp_path / "scene.png"
    write_dng(dng, rng.random((SIZE + 8, SIZE + 8)) * 0.2, "BGGR", bits=12, black_level=64, iso=1600)
    png.write_bytes(tf.io.encode_png((rng.random((48, 48, 3)) * 255).astype(np.uint8)).numpy())
    out = tmp_path / "labels"
    assert cli.main(["segment", str(dng), str(png), "--model", str(exported[0]), "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    loaded = tf.saved_model.load(exported[1]).signatures
    for index, frame_path in enumerate((dng, png)):
        assert f"label map {out / frame_path.stem}.png" in printed
        frame = read_frame(str(frame_path), (SIZE, SIZE), seed=(0, index))
        class_map = loaded[frame.signature](**{k: tf.constant(v) for k, v in frame.inputs.items()})["class_map"]
        written = tf.io.decode_png(tf.io.read_file(str(out / f"{frame_path.stem}.png"))).numpy()
        np.testing.assert_array_equal(written, colourize(class_map.numpy()[0]))
    assert read_frame(str(dng), (SIZE, SIZE)).signature == "raw_uint16"  # the DNG went through its ISO


def test_segment_command_reports_bad_files_in_one_line_each_and_segments_the_others(exported, tmp_path, capsys):
    """A PNG whose header declares 10000 x 10000 pixels is refused before decoding (the --max-megapixels budget), a
    file that is no image is named, and the good frame is still segmented; exit status 1. A budget raised above the
    large file's size lets it through to Pillow's reader."""
    import struct
    import zlib

    from dirtypixels_tf import cli

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    large, broken, good = tmp_path / "large.png", tmp_path / "broken.png", tmp_path / "good.png"
    header = struct.pack(">IIBBBBB", 10000, 10000, 8, 2, 0, 0, 0)
    large.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")))
    broken.write_bytes(b"not an image")
    good.write_bytes(tf.io.encode_png(np.full((40, 40, 3), 90, np.uint8)).numpy())
    out = tmp_path / "labels"
    args = ["segment", str(large), str(broken), str(good), "--model", str(exported[0]), "--out-dir", str(out)]
    assert cli.main(args) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in captured.err, captured.err
    assert errors[0] == (
        f"{large}: 10000 x 10000 = 100.0 megapixels, more than the budget of 64 (--max-megapixels); not decoded"
    )
    assert errors[1].startswith(f"{broken}: ")
    assert f"label map {out / 'good'}.png" in captured.out and not (out / "large.png").exists()
    assert cli.main(["segment", str(large), "--model", str(exported[0]), "--max-megapixels", "101"]) == 1
    assert "budget" not in capsys.readouterr().err  # read past the budget; the truncated file fails in the decoder


def test_segment_command_refuses_a_classifier(exported, tmp_path, capsys):
    from dirtypixels_tf import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["segment", str(tmp_path / "x.png"), "--model", str(tmp_path)])
    assert exit_info.value.code == 2 and "--model: no SavedModel at" in capsys.readouterr().err


@pytest.mark.slow  # a TFLite conversion, about a minute on 2 shared cores
def test_tflite_export_agrees_with_the_savedmodel(segmenter, exported, tmp_path):
    from dirtypixels_tf.export import export_tflite, tflite_parity
    from dirtypixels_tf.export.tflite import parity_frames

    info = export_tflite(segmenter, tmp_path / "seg.tflite")
    frames = parity_frames((SIZE, SIZE), 4, light_levels=("3",))
    parity = tflite_parity(info["path"], exported[1], frames)["levels"]["3 lux"]
    image = segmenter({key: frames["3 lux"][key] for key in ("raw", "alpha", "sigma")})["image"].numpy()
    # the ISP image of both within the float32 bound of two summation orders (as a PSNR, peak 1)
    assert parity["image_psnr_db"] >= -20 * np.log10(model_bound(segmenter, image))
    assert parity["top1_agreement"] > 0.99  # pixels with the same class (ties within round-off may differ)
