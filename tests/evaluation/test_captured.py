"""Top-1 / top-5 on folders of labelled RAW captures (evaluation/captured.py and `dirtypixels evaluate --data
captured:FOLDER`), on DNGs written here through write_dng and on the real Canon CR2 the tests fetch."""

import json
import os
import pathlib
import shutil

import keras
import numpy as np
import pytest

from dirtypixels_tf import cli
from dirtypixels_tf.data import camera_raw
from dirtypixels_tf.evaluation.captured import evaluate_captured, list_captured_folder
from dirtypixels_tf.evaluation.predictors import FunctionPredictor
from dirtypixels_tf.models import heads
from dirtypixels_tf.models.components import with_per_channel_noise
from dirtypixels_tf.models.isp import build_isp
from dirtypixels_tf.models.joint import JointClassifier
from dirtypixels_tf.physics.mosaic import bayer_masks_numpy

REPO_ROOT = pathlib.Path(__file__).parents[2]
REAL_CR2 = REPO_ROOT / ".cache/rawtran/usr/share/doc/rawtran/IMG_5952.CR2"
SIZE = 32
LIGHT = np.array([1.0, 0.5, 0.2])  # AsShotNeutral of a strong reddish light
SCENES = {"red": (0.6, 0.3, 0.25), "green": (0.3, 0.5, 0.35), "blue": (0.2, 0.25, 0.5)}  # class: scene colour


def write_class_folder(root, pattern="RGGB"):
    """Three class folders of two DNGs each: uniform scenes of the class colour seen under LIGHT (so the camera
    sees every scene as reddish), with Poisson-Gaussian noise, ISO 800; synset_labels.txt maps red, green, blue to
    the logits 0, 1, 2."""
    rng = np.random.default_rng(0)
    for name, colour in SCENES.items():
        os.makedirs(root / name)
        for index in range(2):
            clean = (bayer_masks_numpy(64, 80, pattern) * (0.1 * np.array(colour) * LIGHT)).sum(-1)
            noisy = np.clip(0.0005 * rng.poisson(clean / 0.0005) + rng.normal(0, 0.001, clean.shape), 0, 1)
            camera_raw.write_dng(root / name / f"{index}.dng", noisy, pattern, iso=800, as_shot_neutral=tuple(LIGHT))
    (root / "labels.txt").write_text("ignored, as in the release\n")
    (root / "synset_labels.txt").write_text("red:0\ngreen:1\nblue:2\n")
    return root


def colour_classifier(features, psf):
    """Logits = the mean of each colour of the mosaic (R, G, B): a white-balanced scene is classified by its
    colour, an unbalanced one under LIGHT as red."""
    raw = features["raw"][..., 0]
    masks = bayer_masks_numpy(*raw.shape[1:], "BGGR")
    logits = np.einsum("bhw,hwc->bc", raw, masks) / masks.sum(axis=(0, 1))
    return {"logits": logits, "image": None}


def test_white_balanced_captures_are_classified_by_their_colour(tmp_path):
    folder = write_class_folder(tmp_path / "captured")
    classes = list_captured_folder(folder)
    assert [(c.name, c.label, len(c.files)) for c in classes] == [("blue", 2, 2), ("green", 1, 2), ("red", 0, 2)]
    predictor = FunctionPredictor(colour_classifier, (SIZE, SIZE), ["red", "green", "blue"])
    summary = evaluate_captured(predictor, folder, tmp_path / "out", noise="release_phone")
    assert (summary["count"], summary["top1"], summary["top5"]) == (6, 1.0, 1.0)
    wrong = evaluate_captured(predictor, folder, tmp_path / "cast", noise="release_phone", white_balance="none")
    assert wrong["top1"] == pytest.approx(2 / 6)  # without white balance every scene looks red
    assert {r["folder"]: r["top1"] for r in wrong["per_folder"]} == {"blue": 0.0, "green": 0.0, "red": 1.0}
    lines = (tmp_path / "cast" / "wrong.txt").read_text().splitlines()
    assert len(lines) == 4 and lines[0] == f'{folder / "blue" / "0.dng"} "blue" "red"'
    assert (tmp_path / "cast" / "correct.txt").read_text().count("\n") == 2
    assert os.path.isfile(tmp_path / "out" / "input" / "green" / "0.png")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    keras.utils.set_random_seed(3)
    head = heads.build_head("mobilenet_v1", (SIZE, SIZE, 3), 3, width=0.25)
    model = JointClassifier(build_isp("anscombe"), head, "mobilenet_v1", (SIZE, SIZE))
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


def test_the_command_scores_each_frame_as_the_model_does_on_the_front_ends_frame(tmp_path, model_file, capsys):
    folder = write_class_folder(tmp_path / "captured", pattern="GBRG")
    if REAL_CR2.is_file():  # the real Canon CR2 as a fourth class ("label 3" is past the logits: never correct)
        os.makedirs(folder / "canon")
        shutil.copy(REAL_CR2, folder / "canon" / REAL_CR2.name)
        with open(folder / "synset_labels.txt", "a") as file:
            file.write("canon:3\n")
    out = tmp_path / "out"
    argv = [
        "evaluate",
        str(model_file),
        "--data",
        f"captured:{folder}",
        "--out",
        str(out),
        "--quiet",
        "--examples",
        "1",
    ]
    assert cli.main(argv) == 0
    summary = json.loads((out / "captured.json").read_text())
    model = with_per_channel_noise(keras.saving.load_model(model_file))
    expected = {}
    for row in summary["per_folder"]:
        ranks = []
        for path in sorted((folder / row["folder"]).iterdir()):
            frame = camera_raw.load_capture(path, (SIZE, SIZE))
            logits = model(frame.inputs())["logits"].numpy()[0]
            ranks.append(int(np.sum(logits > logits[row["label"]])) if row["label"] < 3 else 3)
        expected[row["folder"]] = (
            len(ranks),
            np.mean([r == 0 for r in ranks]),
            np.mean([r < 5 for r in ranks]) if row["label"] < 3 else 0.0,
        )
    assert {r["folder"]: (r["count"], r["top1"], r["top5"]) for r in summary["per_folder"]} == expected
    lines = (out / "correct.txt").read_text().splitlines() + (out / "wrong.txt").read_text().splitlines()
    assert len(lines) == summary["count"] == sum(e[0] for e in expected.values())
    for name in expected:
        assert len(os.listdir(out / "input" / name)) == 1 and len(os.listdir(out / "isp" / name)) == 1
    assert "| **all** |" in capsys.readouterr().out


def test_bad_captured_folders_are_named(tmp_path, model_file, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", str(model_file), "--data", f"captured:{tmp_path / 'none'}", "--quiet"])
    assert exit_info.value.code == 2
    assert "--data captured:FOLDER needs a folder of class folders" in capsys.readouterr().err
    os.makedirs(tmp_path / "empty" / "a")
    with pytest.raises(ValueError, match="holds no camera RAW files"):
        list_captured_folder(tmp_path / "empty")
    (tmp_path / "empty" / "synset_labels.txt").write_text("b:1\n")
    with pytest.raises(ValueError, match=r"has no entry for the class folders \['a'\]"):
        list_captured_folder(tmp_path / "empty")
