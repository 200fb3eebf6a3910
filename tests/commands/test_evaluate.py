import csv
import json
import os
import re

import keras
import pytest
import skimage.data
import skimage.io

from dirtypixels_tf import cli
from dirtypixels_tf.models import heads
from dirtypixels_tf.models.isp import build_isp
from dirtypixels_tf.models.joint import JointClassifier
from dirtypixels_tf.training import config as config_lib

SIZE = 32
DEFAULT_CONFIG = config_lib.resolve_config("default")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """A folder of two classes of 40 x 40 PNG crops of skimage photographs (3 each)."""
    root = tmp_path_factory.mktemp("data")
    for label, name in enumerate(("astronaut", "coffee")):
        os.makedirs(root / f"class_{label}")
        photo = getattr(skimage.data, name)()
        for i in range(3):
            skimage.io.imsave(
                root / f"class_{label}" / f"{i}.png", photo[40 * i : 40 * i + 40, 60 : 60 + 40], check_contrast=False
            )
    return str(root)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    keras.utils.set_random_seed(1)
    head = heads.build_head("mobilenet_v1", (SIZE, SIZE, 3), 2, width=0.25)
    model = JointClassifier(build_isp("anscombe"), head, "mobilenet_v1", (SIZE, SIZE))
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    model.save(path)
    return path


def run(*argv):
    return cli.main(["evaluate", *argv, "--quiet"])


def test_evaluate_writes_the_grid_and_repeats_exactly(tmp_path, image_folder, model_file, capsys):
    args = [model_file, "--data", image_folder, "--profiles", "3lux,12,none", "--psf", "none,periphery"]
    assert (
        run(*args, "--out", str(tmp_path / "a"), "--baseline", "malvar_nlm", "--examples", "2", "--batch-size", "4")
        == 0
    )
    printed = capsys.readouterr().out
    assert "| Light level | No blur | Periphery PSF |" in printed and "wrote examples:" in printed
    assert run(*args, "--out", str(tmp_path / "b"), "--examples", "0", "--batch-size", "4") == 0
    assert run(*args, "--out", str(tmp_path / "c"), "--examples", "0") == 0
    first = open(tmp_path / "a" / "evaluation.csv").read()
    assert first == open(tmp_path / "b" / "evaluation.csv").read()  # same noise, model and batches: same numbers
    # Another batch size gives the same noisy inputs; the model's float rounding may differ in the last bits.
    for row_a, row_c in zip(
        csv.DictReader(first.splitlines()), csv.DictReader(open(tmp_path / "c" / "evaluation.csv"))
    ):
        assert (row_a["top1"], row_a["top5"]) == (row_c["top1"], row_c["top5"])
        assert float(row_a["psnr"]) == pytest.approx(float(row_c["psnr"]), abs=1e-5)
    rows = list(csv.DictReader(first.splitlines()))
    assert [(r["light_level"], r["psf"]) for r in rows] == [
        (level, psf) for level in ("3lux", "12 lux", "none") for psf in ("none", "periphery")
    ]
    assert {r["examples"] for r in rows} == {"6"}
    assert all(0.0 <= float(r["top1"]) <= float(r["top5"]) <= 1.0 for r in rows)
    for name in ("evaluation.md", "evaluation.json", "accuracy.png", "examples.png"):
        assert os.path.isfile(tmp_path / "a" / name)
    assert not os.path.exists(tmp_path / "b" / "examples.png")
    # The baseline: malvar_nlm + the model's own head, on the same grid; it denoises, so its PSNR beats the
    # untrained Anscombe network's.
    baseline = list(csv.DictReader(open(tmp_path / "a" / "baseline-malvar_nlm" / "evaluation.csv")))
    assert len(baseline) == 6 and all(r["top1"] != "" for r in baseline)
    assert float(baseline[2]["psnr"]) > float(rows[2]["psnr"])


def test_run_directory_settings_become_the_defaults(tmp_path, image_folder, model_file):

    run_dir = tmp_path / "run"
    os.makedirs(run_dir)
    os.link(model_file, run_dir / "model.keras")
    config = config_lib.load_config(DEFAULT_CONFIG, ["data.sensor=Pixel", "data.pattern=RGGB"])
    config_lib.save_params(config, str(run_dir))
    assert (
        run(str(run_dir), "--data", image_folder, "--profiles", "6", "--out", str(tmp_path / "out"), "--examples", "0")
        == 0
    )
    metadata = json.load(open(tmp_path / "out" / "evaluation.json"))["metadata"]
    assert (metadata["sensor"], metadata["pattern"]) == ("Pixel", "RGGB")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--profiles", "3,dusk"], "--profiles: light level must be a profile .*; received 'dusk'"),
        (
            ["--psf", "none,blurry"],
            "--psf: psf must be none, center, offaxis, periphery, motion-L .*; received 'blurry'",
        ),
        (["--size", "64"], "image_size 64x64 does not fit .*tiny.keras, which takes 32x32 RAW frames"),
        (["--baseline", "darktable"], "--baseline: pipeline must be one of bilinear, .*; received 'darktable'"),
        (["--sensor", "Nexus_9"], "--sensor: must be one of .*; received 'Nexus_9'"),
    ],
)
def test_bad_arguments_exit_2_with_the_message(argv, message, tmp_path, image_folder, model_file, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(model_file, "--data", image_folder, "--out", str(tmp_path), *argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("dirtypixels evaluate: error: ") and re.search(message, error), error


def test_unknown_model_exits_2(tmp_path, image_folder, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(str(tmp_path / "missing.keras"), "--data", image_folder)
    assert exit_info.value.code == 2
    assert "argument MODEL: no such file or folder" in capsys.readouterr().err


def test_evaluate_a_savedmodel(tmp_path, image_folder, model_file, capsys):
    from dirtypixels_tf.export import export_savedmodel

    base = str(tmp_path / "served")
    export_savedmodel(keras.saving.load_model(model_file, compile=False), base, sensor="Pixel")
    out = tmp_path / "out"
    assert run(base, "--data", image_folder, "--profiles", "12", "--baseline", "bilinear_nlm", "--out", str(out)) == 0
    table = json.load(open(out / "evaluation.json"))
    assert table["metadata"]["sensor"] == "Pixel"  # the preset the SavedModel was exported with
    assert table["metadata"]["model"] == f"SavedModel {os.path.join(base, '1')}"
    assert all(table["cells"][0][m] is not None for m in ("top1", "top5", "psnr", "ssim"))
    # A SavedModel has no separable head: the baseline reports image quality only; the figure has no labels.
    baseline = json.load(open(out / "baseline-bilinear_nlm" / "evaluation.json"))
    assert baseline["cells"][0]["top1"] is None and baseline["cells"][0]["psnr"] > 0
    assert os.path.isfile(out / "examples.png")
