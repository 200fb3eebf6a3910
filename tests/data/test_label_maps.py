"""Label maps through preprocessing and the pipeline: aligned with the image (and the RAW mosaic) after every crop,
flip, resize and the on-device simulation.

The images here encode their labels: class k is the colour VERTICES[k], a point on the sphere of radius 1/2 about
(1/2, 1/2, 1/2). A bilinear resize mixes at most four source pixels; a mixture of distinct points of a sphere lies
strictly inside it, so an output pixel within TOLERANCE of a vertex was mixed from pixels of that one class (the
other weights are below TOLERANCE / (the smallest distance from a vertex to the hull of the others)), and the
nearest-neighbour label, the source pixel of largest weight, must be that class. Those pixels are checked exactly;
the others lie across a class boundary.
"""

import numpy as np
import pytest
import tensorflow as tf

from dirtypixels_tf.data import make_dataset, make_dataset_fn, preprocessing
from dirtypixels_tf.data.pipeline import simulate_batch
from dirtypixels_tf.data.segmentation import IGNORE_LABEL
from dirtypixels_tf.physics.sensor import SensorModel

CLASSES = np.array([0, 1, 2, 3, 4, 5, 6, IGNORE_LABEL])
# Eight points spread over the sphere (a cube's vertices, turned so no coordinate repeats), radius 1/2.
_cube = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float64) / np.sqrt(3)
_turn = np.linalg.qr(np.random.default_rng(7).normal(size=(3, 3)))[0]
VERTICES = (0.5 + 0.5 * _cube @ _turn.T).astype(np.float32)
# Summing four float32 products of equal values: a few ulps of 1.
TOLERANCE = 1e-5


def _scene(seed, height=30, width=40, block=5):
    """(image float32 [H, W, 3], label map uint8 [H, W]): blocks of random classes, each in its class's colour."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, len(CLASSES), (height // block, width // block))
    index = np.kron(coarse, np.ones((block, block), np.int64))
    return VERTICES[index], CLASSES[index].astype(np.uint8)


def _decode(image):
    """(class of each pixel within TOLERANCE of a vertex, else -1) for float [..., 3] images."""
    distance = np.linalg.norm(image[..., np.newaxis, :] - VERTICES, axis=-1)
    nearest = np.argmin(distance, axis=-1)
    return np.where(distance.min(axis=-1) < TOLERANCE, CLASSES[nearest], -1)


def _check_aligned(image, label_map):
    """All unmixed pixels carry the label of their colour; returns how many there are."""
    assert label_map.dtype == np.int32 and label_map.shape == image.shape[:2]
    assert set(np.unique(label_map)) <= set(CLASSES)  # never a value between two classes
    decoded = _decode(image)
    unmixed = decoded >= 0
    mismatched = np.count_nonzero(unmixed & (decoded != label_map))
    assert mismatched == 0, f"{mismatched} pixels whose label is not their colour's class"
    return np.count_nonzero(unmixed)


@pytest.mark.parametrize("size", [(8, 10), (24, 32), (64, 48)])
def test_training_crops_flips_and_resizes_keep_labels_aligned(size):
    image, label_map = _scene(0)
    checked = total = 0
    for s in range(12):
        out, labels = preprocessing.preprocess_for_training(image, size, tf.constant([3, s]), label_map=label_map)
        checked += _check_aligned(out.numpy(), labels.numpy())
        total += labels.numpy().size
        # The image is bit for bit the one preprocessed without a label map.
        alone = preprocessing.preprocess_for_training(image, size, tf.constant([3, s]))
        assert alone.numpy().tobytes() == out.numpy().tobytes()
    assert checked > 0.4 * total  # most pixels are inside a block, so the check is not vacuous


def test_eval_central_crop_and_resize_keep_labels_aligned():
    image, label_map = _scene(1)
    for size, fraction in (((16, 20), 0.875), ((30, 40), 1.0), ((60, 80), 0.5)):
        out, labels = preprocessing.preprocess_for_eval(image, size, fraction, label_map=label_map)
        checked = _check_aligned(out.numpy(), labels.numpy())
        assert checked > 0.4 * labels.numpy().size
    # At the source size without a crop, the label map comes back exactly; at twice the size, each label twice
    # in each direction (nearest neighbour with half-pixel centres).
    _, labels = preprocessing.preprocess_for_eval(image, (30, 40), 1.0, label_map=label_map)
    np.testing.assert_array_equal(labels, label_map)
    _, labels = preprocessing.preprocess_for_eval(image, (60, 80), 1.0, label_map=label_map)
    np.testing.assert_array_equal(labels, np.repeat(np.repeat(label_map, 2, axis=0), 2, axis=1))


def test_flip_alone_moves_labels_with_pixels_and_keeps_every_count():
    image, label_map = _scene(2)
    flipped = set()
    for s in range(10):
        out, labels = preprocessing.preprocess_for_training(
            image,
            (30, 40),
            tf.constant([0, s]),
            crop_area=(1.0, 1.0),
            aspect_ratio_range=(0.5, 2.0),
            label_map=label_map,
        )
        labels = labels.numpy()
        is_flipped = np.array_equal(labels, label_map[:, ::-1])
        assert is_flipped or np.array_equal(labels, label_map)
        np.testing.assert_array_equal(out, image[:, ::-1] if is_flipped else image)
        np.testing.assert_array_equal(
            np.bincount(labels.ravel(), minlength=256), np.bincount(label_map.ravel(), minlength=256)
        )
        flipped.add(is_flipped)
    assert flipped == {False, True}


def _source(n=6):
    scenes = [_scene(10 + k) for k in range(n)]
    return tf.data.Dataset.from_tensor_slices((np.stack([s[0] for s in scenes]), np.stack([s[1] for s in scenes])))


def _rggb(height, width):
    """Index of the colour sampled at each pixel of an RGGB mosaic."""
    channel = np.ones((height, width), np.int64)
    channel[0::2, 0::2], channel[1::2, 1::2] = 0, 2
    return channel


@pytest.mark.parametrize("training", [False, True])
def test_label_maps_stay_aligned_with_the_raw_mosaic(training):
    """Without noise, the mosaic samples the preprocessed image: at unmixed pixels raw(i, j) is channel c(i, j) of
    the colour of label(i, j)."""
    sensor = SensorModel(alpha=0.0, sigma=1e-12, pattern="RGGB")
    dataset = make_dataset(_source(), sensor, (16, 20), 3, training, seed=4, epochs=1, include_clean=True)
    cfa = _rggb(16, 20)
    batches = 0
    for features, labels in dataset:
        assert labels.dtype == tf.int32 and labels.shape == (3, 16, 20)
        for clean, raw, label_map in zip(features["clean"].numpy(), features["raw"].numpy(), labels.numpy()):
            _check_aligned(clean, label_map)
            unmixed = _decode(clean) >= 0
            colour = VERTICES[np.searchsorted(CLASSES, label_map)]
            expected = np.take_along_axis(colour, cfa[..., np.newaxis], axis=-1)[..., 0]
            np.testing.assert_allclose(raw[..., 0][unmixed], expected[unmixed], atol=TOLERANCE)
        batches += 1
    assert batches == 2


def test_device_simulation_and_dataset_fn_carry_the_same_label_maps():
    sensor = SensorModel(light_levels="3lux")
    host = list(make_dataset(_source(), sensor, 8, 3, True, seed=2, epochs=1))
    device = list(make_dataset(_source(), sensor, 8, 3, True, seed=2, epochs=1, simulate_on_device=True))
    per_pipeline = make_dataset_fn(_source(), sensor, 8, 3, True, seed=2, epochs=1)(tf.distribute.InputContext())
    for (expected, labels), (features, device_labels), (_, fn_labels) in zip(host, device, per_pipeline):
        np.testing.assert_array_equal(labels, device_labels)
        np.testing.assert_array_equal(labels, fn_labels)
        raw = simulate_batch(sensor, features)["raw"]
        assert raw.numpy().tobytes() == expected["raw"].numpy().tobytes()
    assert len(host) == 2


def test_scalar_labels_are_unchanged_and_other_ranks_are_refused():
    images = np.zeros((2, 8, 8, 3), np.float32)
    sensor = SensorModel(light_levels="3lux")
    scalar = tf.data.Dataset.from_tensor_slices((images, np.array([3, 7])))
    ((_, labels),) = make_dataset(scalar, sensor, 8, 2, False)
    assert labels.dtype == tf.int64 and labels.numpy().tolist() == [3, 7]
    vectors = tf.data.Dataset.from_tensor_slices((images, np.zeros((2, 8), np.int64)))
    with pytest.raises(
        ValueError, match=r"source labels must be scalars or label maps \[H, W\]; received shape \(8,\)"
    ):
        make_dataset(vectors, sensor, 8, 2, False)
