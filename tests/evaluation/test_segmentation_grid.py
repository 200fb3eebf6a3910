"""The evaluation grid for segmentation: mIoU, pixel accuracy and IoU per class in every cell, checked against IoUs
counted here pixel by pixel; the files (JSON, CSV, Markdown, plot) and the example figure with colour-coded label
maps."""

import csv
import io
import json

import numpy as np
import pytest

from dirtypixels_tf.data import preprocessing
from dirtypixels_tf.data.segmentation import COMPOSITE_CLASSES, IGNORE_LABEL, colourize, composite_source
from dirtypixels_tf.evaluation import axes, figures, grid, predictors
from dirtypixels_tf.physics.sensor import SensorModel

SIZE = 32
CLASSES = len(COMPOSITE_CLASSES)


def _source(count=6):
    """Composites with a band of ignored pixels (255) along the top, as VOC's borders."""

    def with_border(image, label_map):
        import tensorflow as tf

        rows = tf.range(tf.shape(label_map)[0])[:, tf.newaxis] < 6
        return image, tf.where(rows, tf.constant(IGNORE_LABEL, tf.uint8), label_map)

    return composite_source("test", seed=2, count=count).map(with_border)


def _scores(features, psf):
    """One-hot scores of a fixed rule on the RAW frame: brighter pixels, higher classes (some classes never)."""
    raw = features["raw"][..., 0]
    predicted = np.clip((raw * 14).astype(np.int64) - 1, 0, CLASSES - 3)
    return {"segmentation": np.eye(CLASSES, dtype=np.float32)[predicted], "image": np.repeat(features["raw"], 3, -1)}


def _reference_ious(labels, predicted):
    """Per-class IoU by boolean masks over all labelled pixels (None where a class is in neither)."""
    keep = labels != IGNORE_LABEL
    ious = []
    for k in range(CLASSES):
        truth, guess = (labels == k) & keep, (predicted == k) & keep
        union = np.count_nonzero(truth | guess)
        ious.append(np.count_nonzero(truth & guess) / union if union else None)
    return ious, np.count_nonzero((labels == predicted) & keep) / np.count_nonzero(keep)


def test_cells_hold_miou_pixel_accuracy_and_iou_per_class_as_counted_pixel_by_pixel():
    predictor = predictors.FunctionPredictor(_scores, SIZE, list(COMPOSITE_CLASSES), "brightness rule")
    table = grid.evaluate(predictor, _source(), ("3", "none"), ("none",), batch_size=4, progress=False)
    for spec in ("3", "none"):
        level = axes.parse_light_level(spec)
        sensor = SensorModel(light_levels=(level.low, level.high) if level.noisy else (1.0, 1.0))
        fraction = preprocessing.DEFAULT_CENTRAL_FRACTION
        dataset = grid.cell_dataset(_source(), sensor, (SIZE, SIZE), 4, 0, fraction, not level.noisy)
        labels, predicted = [], []
        for features, label_maps in dataset:
            labels.append(label_maps.numpy())
            predicted.append(np.argmax(_scores({"raw": features["raw"].numpy()}, None)["segmentation"], -1))
        ious, accuracy = _reference_ious(np.concatenate(labels), np.concatenate(predicted))
        cell = table.cells[(level.label, "none")]
        assert cell["examples"] == 6 and cell["top1"] is None and cell["top5"] is None
        present = [v for v in ious if v is not None]
        assert len(present) >= 3
        for got, want in zip(cell["iou"], ious, strict=True):
            assert (got is None) == (want is None)
            if want is not None:
                assert abs(got - want) < 1e-12
        assert abs(cell["miou"] - np.mean(present)) < 1e-12
        assert abs(cell["pixel_accuracy"] - accuracy) < 1e-12
    assert table.metadata["class_names"] == list(COMPOSITE_CLASSES)


def test_the_task_must_match_the_labels():
    classifier = predictors.FunctionPredictor(lambda f, p: {"logits": np.zeros((len(f["raw"]), CLASSES))}, SIZE)
    with pytest.raises(ValueError, match=r"source holds label maps \(segmentation\) but the model gives class logits"):
        grid.evaluate(classifier, _source(2), ("3",), ("none",), progress=False)


def test_files_carry_the_segmentation_scores(tmp_path):
    predictor = predictors.FunctionPredictor(_scores, SIZE, list(COMPOSITE_CLASSES), "brightness rule")
    table = grid.evaluate(predictor, _source(4), ("3", "12"), ("none", "center"), progress=False)
    paths = table.save(str(tmp_path))
    text = open(paths["json"]).read()
    assert "NaN" not in text  # absent classes are null, so strict JSON readers accept the file
    cells = json.loads(text)["cells"]
    assert len(cells) == 4 and all(len(c["iou"]) == CLASSES and 0 < c["miou"] <= 1 for c in cells)
    rows = list(csv.DictReader(io.StringIO(open(paths["csv"]).read())))
    assert float(rows[0]["miou"]) == table.value("3 lux", "none", "miou") and rows[0]["top1"] == ""
    assert rows[0]["iou:background"] == repr(table.cells[("3 lux", "none")]["iou"][0])
    last = table.cells[("3 lux", "none")]["iou"][-1]
    assert rows[0]["iou:Ankle boot"] == ("" if last is None else repr(last))
    markdown = open(paths["markdown"]).read()
    assert "### Mean IoU (%)" in markdown and "### Pixel accuracy (%)" in markdown
    assert "| Light level | PSF | background | T-shirt/top |" in markdown
    assert "Top-1" not in markdown
    with open(paths["plot"], "rb") as stream:
        assert stream.read(4) == b"\x89PNG"


def test_example_rows_show_true_and_predicted_label_maps_in_palette_colours():
    predictor = predictors.FunctionPredictor(_scores, SIZE, list(COMPOSITE_CLASSES), "brightness rule")
    rows, title = figures.comparison_panels(predictor, _source(2), light_level="12", count=2, image_size=SIZE)
    assert title == "12 lux, PSF none"
    assert [p.title for p in rows[0]] == [
        "Clean",
        "True labels",
        "Noisy RAW (bilinear)",
        "Joint model",
        "Joint model: labels",
    ]
    level = axes.parse_light_level("12")
    sensor = SensorModel(light_levels=(level.low, level.high))
    dataset = grid.cell_dataset(_source(2), sensor, (SIZE, SIZE), 2, 0, preprocessing.DEFAULT_CENTRAL_FRACTION, False)
    features, labels = next(iter(dataset))
    np.testing.assert_array_equal(rows[1][1].image, colourize(labels.numpy()[1].astype(np.uint8)) / 255.0)
    predicted = np.argmax(_scores({"raw": features["raw"].numpy()}, None)["segmentation"], -1)[1]
    np.testing.assert_array_equal(rows[1][4].image, colourize(predicted.astype(np.uint8)) / 255.0)
    assert rows[1][3].caption.startswith("mIoU ") and rows[1][3].caption.endswith(" dB")


@pytest.mark.slow
def test_a_segmentation_savedmodel_scores_as_its_keras_model(tmp_path):
    """The SavedModel's per-pixel probabilities give the Keras model's classes except on pixels whose two best
    logits lie within 2 float32 bounds (tolerances.decided): the pixel accuracies differ by at most their share."""
    import keras
    from tiny_models import calibrate_batch_norm
    from tolerances import decided, model_bound

    from dirtypixels_tf.export import export_savedmodel
    from dirtypixels_tf.models import isp, segmentation

    keras.utils.set_random_seed(3)
    head = segmentation.build_dense_head("mobilenet_v1_aspp", (SIZE, SIZE, 3), CLASSES, width=0.25)
    calibrate_batch_norm(head, np.random.default_rng(7).random((8, SIZE, SIZE, 3)).astype(np.float32) * 2 - 1)
    model = segmentation.JointSegmenter(isp.build_isp("bilinear"), head, "mobilenet_v1_aspp", (SIZE, SIZE))
    export_savedmodel(model, tmp_path / "seg", class_names=list(COMPOSITE_CLASSES))
    options = {"light_levels": ("6",), "psfs": ("none",), "progress": False, "quality": False}
    keras_table = grid.evaluate(model, _source(4), **options)
    saved_table = grid.evaluate(str(tmp_path / "seg"), _source(4), **options)
    level = axes.parse_light_level("6")
    sensor = SensorModel(light_levels=(level.low, level.high))
    fraction = preprocessing.DEFAULT_CENTRAL_FRACTION
    features, labels = next(iter(grid.cell_dataset(_source(4), sensor, (SIZE, SIZE), 4, 0, fraction, False)))
    logits = model({k: features[k] for k in ("raw", "alpha", "sigma")})["segmentation"].numpy()
    labelled = labels.numpy() != IGNORE_LABEL
    undecided = np.count_nonzero(~decided(logits, model_bound(model, logits)) & labelled) / np.count_nonzero(labelled)
    keras_cell, saved_cell = keras_table.cells[("6 lux", "none")], saved_table.cells[("6 lux", "none")]
    assert saved_cell["miou"] is not None and saved_table.metadata["class_names"] == list(COMPOSITE_CLASSES)
    assert abs(saved_cell["pixel_accuracy"] - keras_cell["pixel_accuracy"]) <= undecided


def test_run_comparison_reports_miou_for_segmentation_tables():
    from dirtypixels_tf.evaluation import report
    from dirtypixels_tf.evaluation.table import METRICS, EvaluationTable

    def table(miou):
        cell = {m: 0.5 for m in METRICS} | {"top1": None, "top5": None, "miou": miou, "iou": [miou], "examples": 3}
        return EvaluationTable(("3 lux",), ("none",), {("3 lux", "none"): cell}, {"3 lux": 3.0}, {"examples": 3})

    lines = report.comparison_lines({"joint run": table(0.625), "separate run": table(0.25)})
    assert lines[0].startswith("| light | joint run mIoU | separate run mIoU | joint PSNR |")
    assert lines[2].startswith("| 3 lux | 62.5 % | 25.0 % |")
