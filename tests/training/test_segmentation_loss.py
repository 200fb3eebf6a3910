"""The per-pixel cross entropy with the ignore label and the joint loss of Liu et al. on a segmentation model,
against float64 NumPy references."""

import numpy as np

from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training import losses


def numpy_pixel_cross_entropy(labels, logits):
    """Per example: the mean over the labelled pixels of -log softmax(logits)[label], float64."""
    logits = logits.astype(np.float64)
    log_probabilities = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
    log_probabilities -= logits.max(-1, keepdims=True)
    values = []
    for example_labels, example_log_p in zip(labels, log_probabilities):
        keep = example_labels != 255
        picked = np.take_along_axis(example_log_p[keep], example_labels[keep][:, None], axis=-1)
        values.append(-picked.mean() if keep.any() else 0.0)
    return np.array(values)


def test_pixel_cross_entropy_ignores_255_and_averages_per_example():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (3, 5, 6))
    labels[rng.random(labels.shape) < 0.3] = 255
    labels[2] = 255  # an image without any labelled pixel contributes 0
    logits = rng.normal(size=(3, 5, 6, 4)).astype(np.float32) * 3
    expected = numpy_pixel_cross_entropy(labels, logits)
    per_example = losses.PixelCrossEntropy().call(labels, logits).numpy()
    np.testing.assert_allclose(per_example, expected, rtol=1e-5)
    assert per_example[2] == 0.0
    assert abs(float(losses.PixelCrossEntropy()(labels, logits)) - expected.mean()) < 1e-5 * expected.mean()
    changed = labels.copy()
    changed_logits = logits.copy()
    changed_logits[labels == 255] = 50.0  # whatever the network says on ignored pixels changes nothing
    np.testing.assert_array_equal(losses.PixelCrossEntropy().call(changed, changed_logits).numpy(), per_example)


def test_the_joint_loss_reads_the_segmentation_output_with_lambda():
    loss = config_lib.LossConfig(kind="liu", weight=0.5)
    objects, weights = losses.build_losses(loss, task="segmentation")
    assert set(objects) == {"image", "segmentation"} and weights == {"image": 1.0, "segmentation": 0.5}
    assert isinstance(objects["segmentation"], losses.PixelCrossEntropy)
    assert losses.loss_outputs("liu", "segmentation") == ("image", "segmentation")
    objects, weights = losses.build_losses(config_lib.LossConfig(kind="segmentation"), task="segmentation")
    assert weights == {"segmentation": 1.0}
    rng = np.random.default_rng(1)
    clean, image = rng.random((2, 2, 4, 4, 3)).astype(np.float32)
    labels, logits = rng.integers(0, 3, (2, 4, 4)), rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    objects, weights = losses.build_losses(loss, task="segmentation")
    total = losses.per_example_loss(
        objects, weights, {"image": clean, "segmentation": labels}, {"image": image, "segmentation": logits}
    ).numpy()
    expected = ((clean.astype(np.float64) - image) ** 2).mean(axis=(1, 2, 3)) + 0.5 * numpy_pixel_cross_entropy(
        labels, logits
    )
    np.testing.assert_allclose(total, expected, rtol=1e-5)
