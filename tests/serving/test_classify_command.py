"""`dirtypixels classify` against the local server: .npy RAW, uint16 sensor values, images, camera RAW."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tiny_models import SIZE

from dirtypixels_tf import cli
from dirtypixels_tf.data import camera_raw
from dirtypixels_tf.physics import mosaic, noise
from dirtypixels_tf.serving import frames as frames_module
from dirtypixels_tf.serving.client import PredictionClient

pytestmark = pytest.mark.usefixtures("exact_graphs")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAMERA_RAW = glob.glob(os.path.join(REPO_ROOT, ".cache", "rawtran", "usr", "share", "doc", "rawtran", "*.CR2"))


def _printed(output):
    """{file: [(label, score)]} from the command's output."""
    results, current = {}, None
    for line in output.splitlines():
        if not line.startswith("  ") and ": " in line:
            current = line.split(": ")[0]
            results[current] = []
        elif line.strip()[:1].isdigit():
            _, label, score = line.split()
            results[current].append((label, float(score)))
    return results


def _top(signatures, frame):
    outputs = signatures[frame.signature](**frame.inputs)
    return [v.decode() for v in outputs["top_k_labels"][0].numpy()], outputs["top_k_scores"][0].numpy()


@pytest.fixture(scope="module")
def signatures(exported):
    return tf.saved_model.load(exported[1]).signatures


def test_classify_npy_uint16_and_image_files(server, signatures, tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "frame.npy", rng.uniform(0, 1, (SIZE, SIZE)).astype(np.float32))
    np.save(tmp_path / "sensor.npy", rng.integers(64, 1023, (SIZE, SIZE, 1)).astype(np.uint16))
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "scene.png")
    files = [str(tmp_path / name) for name in ("frame.npy", "sensor.npy", "scene.png")]
    argv = ["classify", *files, "--server", server.address, "--model", "tiny", "--profile", "6lux"]
    assert cli.main(argv + ["--black-level", "64", "--white-level", "1023", "--iso", "800", "--seed", "4"]) == 0
    printed = _printed(capsys.readouterr().out)
    assert list(printed) == files and all(len(pairs) == 5 for pairs in printed.values())
    options = {"profile": "6lux", "black_level": 64, "white_level": 1023, "iso": 800}
    for index, path in enumerate(files):
        frame = frames_module.read_frame(path, (SIZE, SIZE), seed=(4, index), **options)
        labels, scores = _top(signatures, frame)
        assert [label for label, _ in printed[path]] == labels
        np.testing.assert_allclose([score for _, score in printed[path]], scores, atol=1e-4)
    assert frames_module.read_frame(files[1], (SIZE, SIZE), **options).signature == "raw_uint16"
    alpha, sigma = noise.noise_at_lux(6)
    inputs = frames_module.read_frame(files[0], (SIZE, SIZE), **options).inputs
    assert inputs["alpha"][0] == pytest.approx(alpha) and inputs["sigma"][0] == pytest.approx(sigma)


def test_classify_signature_uses_the_classify_api(server, signatures, tmp_path, capsys):
    np.save(tmp_path / "frame.npy", np.full((SIZE, SIZE), 0.3, np.float32))
    argv = ["classify", str(tmp_path / "frame.npy"), "--server", server.address, "--model", "tiny"]
    assert cli.main(argv + ["--signature", "classify", "--alpha", "0.01", "--sigma", "0.02", "--top-k", "3"]) == 0
    output = capsys.readouterr().out
    assert "signature classify" in output
    (pairs,) = _printed(output).values()
    frame = frames_module.read_frame(tmp_path / "frame.npy", (SIZE, SIZE), alpha=0.01, sigma=0.02)
    labels, scores = _top(signatures, frame)
    assert [label for label, _ in pairs] == labels[:3]
    np.testing.assert_allclose([score for _, score in pairs], scores[:3], atol=1e-4)


@pytest.mark.skipif(not CAMERA_RAW, reason="the Canon CR2 of Debian's rawtran-doc is not in .cache/rawtran")
def test_classify_a_camera_raw_file(server, signatures, capsys):
    """The real Canon EOS 30D frame (RGGB, black 128/127, white 4095, ISO 640): central crop through raw_uint16."""
    assert cli.main(["classify", CAMERA_RAW[0], "--server", server.address, "--model", "tiny"]) == 0
    output = capsys.readouterr().out
    assert (
        "camera RAW (RGGB), central crop, black 127.75 white 4095 ISO 640; tiny version 1, signature raw_uint16"
        in output
    )
    frame = frames_module.read_frame(CAMERA_RAW[0], (SIZE, SIZE))
    labels, _ = _top(signatures, frame)
    assert [label for label, _ in _printed(output)[CAMERA_RAW[0]]] == labels
    # The codes sent map back, in the signature, to camera_raw.read_raw's normalized mosaic (per-channel blacks).
    normalized = camera_raw.read_raw(CAMERA_RAW[0], "BGGR").mosaic
    codes = frame.inputs["raw"][0, :, :, 0].astype(np.float64)
    back = np.clip((codes - 127.75) / (4095 - 127.75), 0, 1)
    np.testing.assert_allclose(back, frames_module.central_crop(normalized, (SIZE, SIZE)), atol=0.5 / (4095 - 127.75))


def test_central_crop_keeps_the_bayer_phase():
    colours = np.argmax(mosaic.bayer_masks_numpy(22, 30, "BGGR"), axis=-1)  # 0, 1, 2 = R, G, B at each photosite
    for rows, cols in ((22, 30), (20, 26), (10, 14)):
        crop = frames_module.central_crop(colours[:rows, :cols], (8, 12))
        np.testing.assert_array_equal(crop, np.argmax(mosaic.bayer_masks_numpy(8, 12, "BGGR"), axis=-1))
    with pytest.raises(ValueError, match="smaller than the model's 32x32"):
        frames_module.central_crop(colours, (32, 32))


def test_bad_files_and_options_exit_with_a_message(server, tmp_path, capsys):
    np.save(tmp_path / "frame.npy", np.zeros((SIZE, SIZE), np.float32))
    base = ["--server", server.address, "--model", "tiny"]
    with pytest.raises(SystemExit) as error:
        cli.main(["classify", str(tmp_path / "frame.npy"), "--alpha", "0.1", *base])
    assert error.value.code == 2 and "--alpha and --sigma must be given together" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("x")
    np.save(tmp_path / "sensor.npy", np.zeros((SIZE, SIZE), np.uint16))
    for argv, message in [  # a problem of one file: reported, exit status 1
        ([str(tmp_path / "frame.npy"), "--profile", "2to20lux"], "profile '2to20lux' is a range of light levels"),
        ([str(tmp_path / "notes.txt")], "unknown kind of file"),
        ([str(tmp_path / "sensor.npy")], "need --black-level, --white-level and --iso"),
    ]:
        assert cli.main(["classify", *argv, *base]) == 1
        assert message in capsys.readouterr().err
    fixed = ["--profile", "3lux"]  # a noise level for the all-zero frames, which cannot be estimated from them
    assert (
        cli.main(["classify", str(tmp_path / "frame.npy"), *fixed, "--server", server.address, "--model", "other"]) == 1
    )
    assert "NOT_FOUND: Servable not found for request: Latest(other)" in capsys.readouterr().err
    np.save(tmp_path / "odd.npy", np.zeros((SIZE - 1, SIZE), np.float32))
    assert cli.main(["classify", str(tmp_path / "odd.npy"), *fixed, *base]) == 1
    assert "INVALID_ARGUMENT: input 'raw' must have even height and width" in capsys.readouterr().err


def test_client_refuses_a_version_and_a_label_together(server):
    with PredictionClient(server.address) as client:
        with pytest.raises(ValueError, match="version or version_label, not both"):
            client.predict(np.zeros((SIZE, SIZE)), 0.1, 0.1, model="tiny", version=1, version_label="stable")
        with pytest.raises(ValueError, match=r"alpha must be a number or have shape \[2\]"):
            client.predict(np.zeros((2, SIZE, SIZE, 1)), [0.1, 0.2, 0.3], 0.1, model="tiny")


def test_unreadable_files_are_reported_and_the_others_classified(server, tmp_path, capsys):
    """An empty .png and .npy, a pickled .npy and a truncated PNG among good frames: each bad one is named on
    stderr without a traceback, every good one is classified, the exit status is 1."""
    np.save(tmp_path / "good.npy", np.full((SIZE, SIZE), 0.3, np.float32))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "whole.png")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "whole.png").read_bytes()[:40])
    names = ["empty.png", "good.npy", "empty.npy", "objects.npy", "truncated.png", "whole.png"]
    argv = ["classify", *[str(tmp_path / n) for n in names], "--server", server.address, "--model", "tiny"]
    assert cli.main([*argv, "--profile", "3lux"]) == 1  # a flat frame's noise cannot be estimated: give it
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert sorted(_printed(captured.out)) == sorted(str(tmp_path / n) for n in ("good.npy", "whole.png"))
    errors = captured.err.splitlines()
    for name in ("empty.png", "empty.npy", "objects.npy", "truncated.png"):
        assert any(line.startswith(str(tmp_path / name) + ": ") for line in errors), captured.err
    assert any("empty.npy: the file is empty or truncated" in line for line in errors)


def test_a_16_bit_greyscale_png_is_read_with_its_16_bits(server, tmp_path, capsys):
    """Pillow's RGB conversion clipped 16-bit grey to 255 (0.996 everywhere); the values are scaled by 65535."""
    values = (np.linspace(0, 1, 48 * 64).reshape(48, 64) * 65535).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode == "I;16"
    pixels, depth = frames_module.read_image(tmp_path / "grey16.png")
    assert depth == "16-bit" and pixels.shape == (48, 64, 3)
    np.testing.assert_allclose(pixels[..., 1], values / 65535.0, atol=1e-6)
    assert pixels.min() == 0.0 and pixels.max() == 1.0 and 0.45 < pixels.mean() < 0.55
    argv = ["classify", str(tmp_path / "grey16.png"), "--server", server.address, "--model", "tiny"]
    assert cli.main(argv) == 0
    assert "16-bit image simulated at" in capsys.readouterr().out


def test_a_mosaic_without_noise_level_gets_it_estimated_from_the_frame(tmp_path):
    # A 256 x 256 smooth scene simulated at 12 lux on the Nexus 6P rear sensor (alpha 0.0312, sigma 0.0789), sent
    # with neither --alpha/--sigma nor --profile: the noise comes from the frame itself and the description says so.
    rows, cols = np.mgrid[0:256, 0:256] / 255.0
    scene = np.stack([0.1 + 0.8 * rows, 0.1 + 0.8 * cols, 0.5 + 0.3 * rows * cols], -1)[None].astype(np.float32)
    alpha, sigma = noise.noise_at_lux(12)
    raw = mosaic.mosaic(scene)
    noisy = noise.add_noise(raw, np.float32([alpha]), np.float32([sigma]), seed=[5, 0]).numpy()[0, :, :, 0]
    np.save(tmp_path / "frame.npy", noisy)
    frame = frames_module.read_frame(tmp_path / "frame.npy", (256, 256))
    assert "estimated from the frame itself" in frame.description
    assert frame.inputs["alpha"][0] == pytest.approx(alpha, rel=0.25)
    assert frame.inputs["sigma"][0] == pytest.approx(sigma, rel=0.25)
    given = frames_module.read_frame(tmp_path / "frame.npy", (256, 256), profile="6lux")
    assert "6lux on Nexus_6P_rear" in given.description  # a profile, when given, is used as before
    np.save(tmp_path / "tiny.npy", noisy[:16, :16])
    with pytest.raises(ValueError, match="tiny.npy: no noise level given .* at least 32 x 32"):
        frames_module.read_frame(tmp_path / "tiny.npy", (16, 16))
