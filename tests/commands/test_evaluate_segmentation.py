"""`dirtypixels evaluate` of a segmentation model on the Fashion-MNIST composites: mIoU per cell in every file, a
conventional baseline through the model's dense head, and the example figure with label maps."""

import csv
import json
import os

import pytest

from dirtypixels_tf import cli
from dirtypixels_tf.data.segmentation import COMPOSITE_CLASSES


@pytest.mark.slow
def test_evaluate_a_segmentation_preset_writes_miou_per_cell(tmp_path, capsys):
    out = str(tmp_path / "evaluation")
    argv = ["evaluate", "liu_mobilenet_v1_aspp_64", "--data", "fashion-mnist-composite", "--limit", "3"]
    argv += ["--profiles", "3,none", "--psf", "none,center", "--baseline", "bilinear", "--examples", "2"]
    assert cli.main([*argv, "--out", out, "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "### Mean IoU (%)" in printed and "### IoU per class (%)" in printed
    for folder in (out, os.path.join(out, "baseline-bilinear")):
        evaluation = json.load(open(os.path.join(folder, "evaluation.json")))
        assert len(evaluation["cells"]) == 4
        for cell in evaluation["cells"]:
            assert cell["examples"] == 3 and cell["top1"] is None
            assert 0 <= cell["miou"] <= 1 and 0 <= cell["pixel_accuracy"] <= 1 and len(cell["iou"]) == 11
        rows = list(csv.DictReader(open(os.path.join(folder, "evaluation.csv"))))
        assert [row["light_level"] for row in rows] == ["3 lux", "3 lux", "none", "none"]
        assert all(f"iou:{name}" in rows[0] for name in COMPOSITE_CLASSES)
    assert evaluation["metadata"]["class_names"] == list(COMPOSITE_CLASSES)
    for name in ("accuracy.png", "examples.png"):
        with open(os.path.join(out, name), "rb") as stream:
            assert stream.read(4) == b"\x89PNG"
