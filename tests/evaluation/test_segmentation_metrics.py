"""Mean IoU, per-class IoU and pixel accuracy: the Keras metric and the NumPy functions against a float64 reference
written pixel by pixel (VOC devkit rules: 255 ignored, classes absent from truth and prediction left out)."""

import numpy as np
import pytest

from dirtypixels_tf.evaluation import metrics
from dirtypixels_tf.training.losses import PixelAccuracy

CLASSES = 6


def reference_scores(labels, predictions, num_classes):
    """Per-class IoU by counting pixels one at a time, in Python floats."""
    iou = []
    for k in range(num_classes):
        tp = fp = fn = 0
        for t, p in zip(labels.ravel().tolist(), predictions.ravel().tolist()):
            if t == 255:
                continue
            tp += t == k and p == k
            fp += t != k and p == k
            fn += t == k and p != k
        iou.append(tp / (tp + fp + fn) if tp + fp + fn else None)
    present = [v for v in iou if v is not None]
    labelled = [(t, p) for t, p in zip(labels.ravel().tolist(), predictions.ravel().tolist()) if t != 255]
    accuracy = sum(t == p for t, p in labelled) / len(labelled)
    return sum(present) / len(present), accuracy, iou


def random_case(seed, batch=3, size=12):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES - 1, (batch, size, size))  # the last class never occurs in truth...
    labels[rng.random(labels.shape) < 0.1] = 255
    logits = rng.normal(size=(batch, size, size, CLASSES)).astype(np.float32)
    logits[..., CLASSES - 1] -= 100.0  # ...nor in prediction: it has no IoU and is left out of the mean
    logits[..., 0] += 3.0 * (labels == 0)  # some agreement, so the IoUs are not all near chance
    return labels, logits


@pytest.mark.parametrize("seed", [0, 1])
def test_keras_metric_and_numpy_scores_equal_the_reference(seed):
    labels, logits = random_case(seed)
    predictions = logits.argmax(-1)
    miou, accuracy, iou = reference_scores(labels, predictions, CLASSES)
    assert iou[-1] is None and 0.1 < miou < 0.9
    confusion = metrics.confusion_matrix(labels, predictions, CLASSES)
    scores = metrics.segmentation_scores(confusion)
    assert abs(scores["miou"] - miou) < 1e-12 and abs(scores["pixel_accuracy"] - accuracy) < 1e-12
    assert np.isnan(scores["iou"][-1]) and np.allclose(scores["iou"][:-1], iou[:-1], rtol=0, atol=1e-12)
    keras_metric, keras_accuracy = metrics.MeanIoU(CLASSES), PixelAccuracy()
    for i in range(len(labels)):  # accumulated over batches
        keras_metric.update_state(labels[i : i + 1], logits[i : i + 1])
        keras_accuracy.update_state(labels[i : i + 1], logits[i : i + 1])
    np.testing.assert_array_equal(keras_metric.confusion(), confusion)
    assert abs(float(keras_metric.result()) - miou) < 1e-6  # float32 result
    assert abs(float(keras_accuracy.result()) - accuracy) < 1e-6


def test_ignored_pixels_count_nowhere():
    labels = np.array([[0, 1, 255, 255]])
    confusion = metrics.confusion_matrix(labels, np.array([[0, 0, 1, 0]]), 2)
    np.testing.assert_array_equal(confusion, [[1, 0], [1, 0]])
    # class 0: 1 / (2 + 1 - 1) = 0.5; class 1: 0 / (0 + 1) = 0
    assert metrics.segmentation_scores(confusion) == {"miou": 0.25, "pixel_accuracy": 0.5, "iou": [0.5, 0.0]}


def test_bad_labels_are_refused_with_what_was_received():
    with pytest.raises(
        ValueError, match=r"labels must be class indices in \[0, 3\) or 255 \(ignored\); received values from 0 to 7"
    ):
        metrics.confusion_matrix(np.array([0, 7]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="confusion must be a square matrix"):
        metrics.segmentation_scores(np.zeros((2, 3)))
