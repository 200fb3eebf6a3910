import csv
import io
import json
import os
import shutil

import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from skimage.util import img_as_float32

from dirtypixels_tf.data import fashion_mnist, sources
from dirtypixels_tf.evaluation import axes, baselines, figures, grid, predictors
from dirtypixels_tf.evaluation.table import METRICS, SEGMENTATION_METRICS
from dirtypixels_tf.models import heads
from dirtypixels_tf.models.isp import build_isp
from dirtypixels_tf.models.joint import JointClassifier
from dirtypixels_tf.physics import noise

SIZE = 32


def photo_source(count=12, side=40):
    """`count` crops of skimage photographs, labels 0..9 cycling: a tiny real-image source."""
    photos = [img_as_float32(getattr(skimage.data, name)()) for name in ("astronaut", "chelsea", "coffee", "rocket")]
    crops = [photos[i % 4][10 * i : 10 * i + side, 20 * i : 20 * i + side, :3] for i in range(count)]
    return sources.array_source(np.stack(crops), np.arange(count) % 10)


def constant_source(count=12):
    """Flat grey images whose value encodes the label: (label + 1) / 11."""
    labels = np.arange(count) % 10
    images = np.broadcast_to(((labels + 1) / 11.0)[:, None, None, None], (count, 36, 36, 3)).astype(np.float32)
    return sources.array_source(images, labels)


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    head = heads.build_head("mobilenet_v1", (SIZE, SIZE, 3), 10, width=0.25)
    return JointClassifier(build_isp("anscombe"), head, "mobilenet_v1", (SIZE, SIZE))


def test_evaluation_is_repeatable_bit_for_bit(tiny_model):
    options = {"light_levels": ("3", "2to20lux", "none"), "psfs": ("none", "offaxis"), "batch_size": 5}
    first = grid.evaluate(tiny_model, photo_source(), progress=False, **options)
    second = grid.evaluate(tiny_model, photo_source(), progress=False, **options)
    assert first.cells == second.cells
    assert first.to_csv() == second.to_csv()
    cell = first.cells[("3 lux", "none")]
    assert cell["examples"] == 12
    assert all(cell[m] is not None for m in METRICS if m not in SEGMENTATION_METRICS)
    # The grid really changes the input: more light, better intermediate images.
    assert first.value("none", "none", "psnr") > first.value("3 lux", "none", "psnr")


def test_noise_parameters_reach_the_model():
    seen = {}

    def record(features, psf):
        seen.setdefault(float(features["alpha"][0]), []).append(float(features["sigma"][0]))
        return {"image": None, "logits": None}

    table = grid.evaluate(
        predictors.FunctionPredictor(record, SIZE), photo_source(4), light_levels=("12", "none"), progress=False
    )
    alpha_12, sigma_12 = noise.get_noise_preset("Nexus_6P_rear").at_light_level(0.006)
    assert sorted(seen) == pytest.approx(sorted([alpha_12, axes.NO_NOISE_ALPHA]), rel=1e-6)
    assert seen[min(seen)] == [0.0]  # no noise: sigma 0
    assert table.value("12 lux", "none", "top1") is None and table.value("12 lux", "none", "psnr") is None
    assert table.available() == []
    np.testing.assert_allclose(next(v for k, v in seen.items() if k != min(seen)), [sigma_12], rtol=1e-6)


def test_no_noise_row_is_the_exact_clean_mosaic():
    # Bilinear demosaicking of a flat field's noise-free mosaic gives the field back: PSNR at the 100 dB cap,
    # with and without blur (the reflect boundary keeps a flat field flat); noise at 3 lux costs more than 80 dB.
    bilinear = predictors.ConventionalIspPredictor(baselines.get_pipeline("bilinear"))
    table = grid.evaluate(
        bilinear, constant_source(), ("none", "3"), ("none", "periphery"), image_size=SIZE, progress=False
    )
    assert table.value("none", "none", "psnr") == pytest.approx(100.0, abs=1e-6)
    assert table.value("none", "periphery", "psnr") > 90.0
    assert table.value("3 lux", "none", "psnr") < 20.0
    assert table.value("none", "none", "ssim") == pytest.approx(1.0, abs=1e-6)


def test_accuracy_counts_every_example_across_partial_batches():
    def oracle(features, psf):
        # The label is encoded in the brightness: (label + 1) / 11.
        labels = np.clip(np.round(features["raw"].mean(axis=(1, 2, 3)) * 11 - 1), 0, 9).astype(int)
        return {"logits": np.eye(10)[labels]}

    def wrong(features, psf):
        logits = oracle(features, psf)["logits"]
        return {"logits": -logits + np.arange(10) * 1e-3}  # the true class is ranked last

    kwargs = {"light_levels": ("none", "96"), "batch_size": 5, "progress": False}
    right = grid.evaluate(predictors.FunctionPredictor(oracle, SIZE), constant_source(), **kwargs)
    assert [right.cells[c]["top1"] for c in right.cells] == [1.0, 1.0]
    assert {right.cells[c]["examples"] for c in right.cells} == {12}
    wrong_table = grid.evaluate(predictors.FunctionPredictor(wrong, SIZE), constant_source(), **kwargs)
    assert wrong_table.value("none", "none", "top1") == 0.0 and wrong_table.value("none", "none", "top5") == 0.0


def test_head_function_reproduces_the_joint_models_logits(tiny_model):
    raw = tf.random.stateless_uniform([2, SIZE, SIZE, 1], [0, 1])
    outputs = tiny_model({"raw": raw, "alpha": tf.fill([2], 0.1), "sigma": tf.fill([2], 0.2)}, training=False)
    logits = predictors.head_function(tiny_model)(outputs["image"].numpy())
    np.testing.assert_allclose(logits, outputs["logits"].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="has no classifier head"):
        predictors.head_function(keras.Model(tiny_model.input, tiny_model.output["image"]))


def test_savedmodel_predictor_matches_the_keras_model(tmp_path, tiny_model):
    from dirtypixels_tf.export import export_savedmodel

    base = tmp_path / "models" / "tiny"
    export_savedmodel(tiny_model, str(base), class_names=[f"class {i}" for i in range(10)])
    shutil.copytree(base / "1", base / "2")  # a TF Serving base path: the highest version is used
    predictor = predictors.load_predictor(str(base))
    assert predictor.image_size == (SIZE, SIZE) and predictor.description.endswith(os.path.join("tiny", "2"))
    assert predictor.class_names[:2] == ["class 0", "class 1"]
    options = {"light_levels": ("6",), "psfs": ("none",), "progress": False}
    from_savedmodel = grid.evaluate(predictor, photo_source(8), **options)
    from_keras = grid.evaluate(tiny_model, photo_source(8), **options)
    for metric in ("top1", "top5"):
        assert from_savedmodel.value("6 lux", "none", metric) == from_keras.value("6 lux", "none", metric)
    for metric in ("psnr", "ssim"):
        assert from_savedmodel.value("6 lux", "none", metric) == pytest.approx(
            from_keras.value("6 lux", "none", metric), abs=1e-4
        )


def test_bad_input_is_named(tiny_model):
    source = photo_source(4)
    with pytest.raises(ValueError, match="image_size 64x64 does not fit keras model .* which takes 32x32 RAW frames"):
        grid.evaluate(tiny_model, source, image_size=64, progress=False)
    with pytest.raises(ValueError, match="light level must be a profile"):
        grid.evaluate(tiny_model, source, light_levels=("3", "dusk"), progress=False)
    with pytest.raises(
        ValueError, match="psf must be none, center, offaxis, periphery, motion-L .*; received 'blurry'"
    ):
        grid.evaluate(tiny_model, source, psfs=("blurry",), progress=False)
    with pytest.raises(ValueError, match=r"light_levels must not repeat an entry; received \['12 lux'\]"):
        grid.evaluate(tiny_model, source, light_levels=("12", "12lux"), progress=False)
    with pytest.raises(ValueError, match="image_size must be given for function, which takes any frame size"):
        grid.evaluate(lambda features, psf: {}, source, progress=False)
    with pytest.raises(ValueError, match="model must take the inputs raw, alpha and sigma"):
        features = keras.Input((4,))
        predictors.KerasPredictor(keras.Model(features, keras.layers.Dense(2)(features)))
    with pytest.raises(ValueError, match="model must be a run directory with model.keras, a .keras file"):
        predictors.load_predictor("no_such_model")


def test_table_files(tmp_path, tiny_model):
    table = grid.evaluate(
        tiny_model,
        photo_source(6),
        ("3lux", "24", "none"),
        ("none", "periphery"),
        progress=False,
        data_description="photos",
    )
    paths = table.save(str(tmp_path))
    assert sorted(paths) == ["csv", "json", "markdown", "plot"]
    with open(paths["plot"], "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(io.StringIO(open(paths["csv"]).read())))
    assert [(r["light_level"], r["psf"]) for r in rows] == [
        (level, psf) for level in ("3lux", "24 lux", "none") for psf in ("none", "periphery")
    ]
    assert float(rows[0]["top1"]) == table.value("3lux", "none", "top1") and rows[-1]["lux"] == ""
    assert float(rows[2]["lux"]) == 24.0
    markdown = open(paths["markdown"]).read()
    assert "| Light level | No blur | Periphery PSF |" in markdown
    assert "### Top-1 accuracy (%)" in markdown and "### SSIM" in markdown and "| No noise |" in markdown
    assert json.load(open(paths["json"]))["metadata"]["data"] == "photos"


def test_comparison_figure(tmp_path, tiny_model):
    conventional = [baselines.get_pipeline("malvar_nlm")]
    rows, title = figures.comparison_panels(
        tiny_model, photo_source(3), conventional=conventional, head=tiny_model, light_level="12", count=3
    )
    assert title == "12 lux, PSF none"
    assert [[p.title for p in row] for row in rows] == [
        ["Clean", "Noisy RAW (bilinear)", "malvar_nlm", "Joint model"]
    ] * 3
    assert rows[0][0].caption == "true: 0" and rows[0][2].caption.endswith(" dB")
    # The conventional ISP's PSNR in its caption is the metric of its image against the clean one.
    path = figures.plot_panels(rows, str(tmp_path / "examples.png"), title)
    with open(path, "rb") as file:
        assert file.read(4) == b"\x89PNG"


def test_seed_000_grid_on_fashion_mnist_orders_the_conditions():
    # The full Table 1 grid (6 light levels + no noise, x 4 PSFs) with a conventional ISP on 32 real images: image
    # quality rises with light in every column, and falls from no blur to the periphery PSF without noise.
    dataset, _ = fashion_mnist.fashion_mnist_source("test")  # the real data set, or the tests' stand-in
    table = grid.evaluate(
        predictors.ConventionalIspPredictor(baselines.get_pipeline("malvar_nlm")),
        dataset,
        psfs=("none", "center", "offaxis", "periphery"),
        image_size=SIZE,
        limit=32,
        central_fraction=1.0,
        progress=False,
    )
    assert table.rows == ("3 lux", "6 lux", "12 lux", "24 lux", "48 lux", "96 lux", "none")
    for column in table.columns:
        psnrs = [table.value(row, column, "psnr") for row in table.rows]
        assert psnrs == sorted(psnrs), (column, psnrs)
    no_noise = [table.value("none", column, "psnr") for column in table.columns]
    assert no_noise == sorted(no_noise, reverse=True), no_noise
    assert table.available() == ["psnr", "ssim", "bayer", "bayer_peak", "bayer_error"]
    # Malvar demosaicking of noise-free frames leaves a zipper of a fraction of one 8-bit code value.
    assert 0.0 < table.value("none", "none", "bayer_error") < 2.0, table.value("none", "none", "bayer_error")


def test_models_with_a_psf_input_get_the_cells_psf_padded_to_their_size():
    inputs = {
        "raw": keras.Input((SIZE, SIZE, 1), name="raw"),
        "alpha": keras.Input((), name="alpha"),
        "sigma": keras.Input((), name="sigma"),
        "psf": keras.Input((31, 31, 3), name="psf"),
    }
    # logits = [the PSF's centre tap (green), its total (green)]
    centre = keras.layers.Lambda(lambda p: p[:, 15, 15, 1])(inputs["psf"])
    total = keras.layers.Lambda(lambda p: keras.ops.sum(p[..., 1], axis=(1, 2)))(inputs["psf"])
    logits = keras.layers.Lambda(lambda t: keras.ops.stack(t, axis=1))([centre, total])
    predictor = predictors.KerasPredictor(keras.Model(inputs, {"logits": logits}))
    seen = {}
    for label in ("none", "periphery"):
        psf = axes.parse_psf(label)[1]
        seen[label] = predictor(
            {
                "raw": np.zeros((2, SIZE, SIZE, 1), np.float32),
                "alpha": np.ones(2, np.float32),
                "sigma": np.ones(2, np.float32),
            },
            psf,
        )["logits"]
    np.testing.assert_allclose(seen["none"], [[1.0, 1.0]] * 2)
    periphery = axes.parse_psf("periphery")[1]
    np.testing.assert_allclose(seen["periphery"][0], [periphery[12, 12, 1], 1.0], rtol=1e-5)
    with pytest.raises(ValueError, match="the model takes PSFs of size 31x31; received a 41x41 PSF"):
        predictor(
            {"raw": np.zeros((1, SIZE, SIZE, 1), np.float32), "alpha": np.ones(1), "sigma": np.ones(1)},
            np.ones((41, 41, 3), np.float32) / 41**2,
        )
