"""Segmentation sources: the Fashion-MNIST composites (checked item by item against the IDX data), the Pascal VOC
2012 reader on small files written here, the VOC palette and colourize."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dirtypixels_tf.data import fashion_mnist, make_dataset, segmentation, source_spec
from dirtypixels_tf.data.segmentation import IGNORE_LABEL, colourize, composite_source, palette, voc_source
from dirtypixels_tf.physics.sensor import SensorModel


def test_palette_is_vocs_colour_map_with_white_ignore():
    colours = palette(256)
    # Pascal VOC 2012's colours of background, aeroplane, bicycle, bird, boat, person, tvmonitor.
    expected = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128), 15: (192, 128, 128)}
    expected[20] = (0, 64, 128)
    for index, colour in expected.items():
        assert tuple(colours[index]) == colour, index
    assert tuple(colours[IGNORE_LABEL]) == (255, 255, 255)
    assert len({tuple(c) for c in colours}) == 256  # one colour per index
    np.testing.assert_array_equal(palette(21), colours[:21])
    with pytest.raises(ValueError, match="num_classes must be an int in"):
        palette(0)


def test_colourize_maps_each_pixel_to_its_class_colour():
    label_map = np.array([[0, 1, 255], [2, 15, 0]], np.uint8)
    coloured = colourize(label_map)
    assert coloured.shape == (2, 3, 3) and coloured.dtype == np.uint8
    assert tuple(coloured[0, 1]) == (128, 0, 0) and tuple(coloured[0, 2]) == (255, 255, 255)
    assert tuple(coloured[1, 1]) == (192, 128, 128)
    with pytest.raises(ValueError, match=r"label_map must be integers \[H, W\]"):
        colourize(np.zeros((2, 2, 3), np.uint8))


def _items(split):
    images, labels = fashion_mnist.load_fashion_mnist(split)
    return images.astype(np.float32) / 255.0, labels


@pytest.mark.parametrize("split", ["train", "test"])
def test_one_item_composite_is_an_item_of_its_split_tinted_over_grey(split):
    """canvas 28 and one item: the label map is (item > threshold) * (class + 1), the image is the item times one
    colour there and one grey level elsewhere; the item is found in the split of the same name."""
    intensities, labels = _items(split)
    covers = intensities > segmentation.COVER_THRESHOLD
    for image, label_map in composite_source(split, seed=3, count=4, canvas=28, max_items=1).as_numpy_iterator():
        assert image.shape == (28, 28, 3) and image.dtype == np.float32 and label_map.dtype == np.uint8
        candidates = np.flatnonzero(np.all(covers == (label_map > 0), axis=(1, 2)))
        matched = False
        for j in candidates:
            mask = covers[j]
            if not np.all(label_map[mask] == labels[j] + 1):
                continue
            tint = image[mask] / intensities[j][mask][:, np.newaxis]
            # float32: one product and one division, each within half an ulp.
            if np.allclose(tint, tint[0], rtol=4 * np.finfo(np.float32).eps, atol=0):
                matched = True
                assert np.all((tint[0] >= 0.5) & (tint[0] <= 1.0))
                background = image[~mask]
                assert np.all(background == background[0, 0])
                assert 0 <= background[0, 0] <= segmentation.BACKGROUND_MAX
                break
        assert matched, "the composite is no tinted item of the split"


def test_composites_are_deterministic_per_seed_and_occlude_in_order():
    first = list(composite_source("test", seed=5, count=6).as_numpy_iterator())
    again = list(composite_source("test", seed=5, count=6).as_numpy_iterator())
    other = list(composite_source("test", seed=6, count=6).as_numpy_iterator())
    for (a, la), (b, lb) in zip(first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    assert not all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, other))
    for image, label_map in first:
        assert image.shape == (64, 64, 3) and 0 <= image.min() and image.max() <= 1
        assert label_map.max() <= 10
        # Background pixels are grey, item pixels brighter than the tint's floor times the threshold.
        background = image[label_map == 0]
        assert np.all(background == background[0, 0])
        assert np.all(image[label_map > 0].max(axis=-1) > 0.5 * segmentation.COVER_THRESHOLD)


def test_composite_labels_cover_every_class():
    counts = np.zeros(256, np.int64)
    for _, label_map in composite_source("train", seed=0, count=200).as_numpy_iterator():
        counts += np.bincount(label_map.ravel(), minlength=256)
    assert np.all(counts[: len(segmentation.COMPOSITE_CLASSES)] > 0) and counts[11:].sum() == 0


def test_composite_rejects_bad_arguments():
    with pytest.raises(ValueError, match="canvas must be an int >= 28"):
        composite_source("test", canvas=16)
    with pytest.raises(ValueError, match="max_items must be an int >= 1"):
        composite_source("test", max_items=0)
    with pytest.raises(ValueError, match="split must be one of"):
        composite_source("validation")


def _write_voc(root, names, size=(12, 16)):
    """A tiny VOC 2012 layout: flat-coloured JPEGs, palette PNGs with a class rectangle and a 255 border, and the
    train list. Returns {name: (rgb uint8 [3], label map)}."""
    height, width = size
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    written = {}
    for k, name in enumerate(names):
        rgb = np.array([40 + 50 * k, 120, 200 - 30 * k], np.uint8)
        Image.fromarray(np.broadcast_to(rgb, (height, width, 3)).copy()).save(
            root / f"JPEGImages/{name}.jpg", quality=95
        )
        label_map = np.zeros((height, width), np.uint8)
        label_map[2:8, 3 + k : 10 + k] = 1 + 7 * k
        label_map[1, 2 : 11 + k] = IGNORE_LABEL
        png = Image.fromarray(label_map, mode="P")
        png.putpalette(palette(256).ravel().tolist())
        png.save(root / f"SegmentationClass/{name}.png")
        written[name] = (rgb, label_map)
    (root / "ImageSets/Segmentation/train.txt").write_text("".join(f"{n}\n" for n in names))
    return written


def test_voc_source_reads_images_and_palette_indices_in_list_order(tmp_path):
    written = _write_voc(tmp_path, ["2007_000032", "2007_000039", "2008_000001"])
    examples = list(voc_source(tmp_path, "train").as_numpy_iterator())
    assert len(examples) == 3
    for (image, label_map), (rgb, expected) in zip(examples, written.values()):
        assert image.dtype == np.float32 and image.shape == (12, 16, 3)
        np.testing.assert_array_equal(label_map, expected)  # indices, not colours; 255 kept
        # A flat JPEG decodes to its colour within JPEG's rounding of the DC term (a few levels at quality 95).
        np.testing.assert_allclose(image, np.broadcast_to(rgb / 255.0, image.shape), atol=3 / 255)


def test_voc_source_reads_an_sbd_style_list_of_paths_and_grayscale_labels(tmp_path):
    _write_voc(tmp_path, ["a", "b"])
    (tmp_path / "SegmentationClassAug").mkdir()
    label_map = np.full((12, 16), 3, np.uint8)
    Image.fromarray(label_map, mode="L").save(tmp_path / "SegmentationClassAug/b.png")
    listed = tmp_path / "train_aug.txt"
    listed.write_text("/JPEGImages/b.jpg /SegmentationClassAug/b.png\n")
    (example,) = list(voc_source(tmp_path, list_file=listed).as_numpy_iterator())
    np.testing.assert_array_equal(example[1], label_map)


def test_voc_source_errors_name_the_problem(tmp_path):
    _write_voc(tmp_path, ["a"])
    with pytest.raises(ValueError, match="list_file must be a list of image ids; received .*val.txt"):
        voc_source(tmp_path, "val")
    (tmp_path / "ImageSets/Segmentation/val.txt").write_text("missing\n")
    with pytest.raises(ValueError, match="lists .*missing.jpg', which does not exist"):
        voc_source(tmp_path, "val")
    Image.fromarray(np.zeros((5, 5), np.uint8), mode="L").save(tmp_path / "SegmentationClass/a.png")
    with pytest.raises(tf.errors.InvalidArgumentError, match="image and label map differ in size"):
        list(voc_source(tmp_path, "train"))


def test_source_specs_name_the_segmentation_sources(tmp_path):
    _write_voc(tmp_path / "voc", ["a", "b"])
    (tmp_path / "voc/ImageSets/Segmentation/val.txt").write_text("b\n")
    assert source_spec.resolve_source("fashion-mnist-composite") == ("fashion-mnist-composite", None)
    assert source_spec.resolve_source(str(tmp_path / "voc")) == ("voc", str(tmp_path / "voc"))
    dataset, classes, count = source_spec.open_source("voc", str(tmp_path / "voc"), split="test")
    assert classes == list(segmentation.VOC_CLASSES) and count == 1
    ((image, label_map),) = list(dataset.as_numpy_iterator())
    assert set(np.unique(label_map)) == {0, 8, IGNORE_LABEL}  # b's class, 1 + 7 * 1: VOC's val list is "test"
    dataset, classes, count = source_spec.open_source("fashion-mnist-composite", split="test", limit=3)
    assert classes == list(segmentation.COMPOSITE_CLASSES) and count == 3
    expected = list(composite_source("test", count=3).as_numpy_iterator())
    for (image, label_map), (want_image, want_labels) in zip(dataset.as_numpy_iterator(), expected, strict=True):
        np.testing.assert_array_equal(image, want_image)
        np.testing.assert_array_equal(label_map, want_labels)
    with pytest.raises(ValueError, match="split must be one of train, test; received 'val'"):
        source_spec.open_source("voc", str(tmp_path / "voc"), split="val")


def test_composites_go_through_the_pipeline_as_label_maps():
    sensor = SensorModel(light_levels="3lux")
    ((features, labels),) = make_dataset(composite_source("test", count=4), sensor, 32, 4, training=False)
    assert features["raw"].shape == (4, 32, 32, 1)
    assert labels.dtype == tf.int32 and labels.shape == (4, 32, 32)
    assert 0 < np.count_nonzero(labels) < labels.numpy().size and labels.numpy().max() <= 10
