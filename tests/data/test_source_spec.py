"""The one data-source resolver: a spec string's kind, and the same examples whether a command or a config asks."""

import os
import re

import numpy as np
import pytest
from PIL import Image

from dirtypixels_tf.data import source_spec, sources, write_tfrecords
from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training import data as data_lib


def _folder(root, counts=(2, 3)):
    rng = np.random.default_rng(0)
    for index, count in enumerate(counts):
        os.makedirs(root / f"class{index}")
        for k in range(count):
            Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).save(root / f"class{index}" / f"{k}.png")
    return str(root)


def _collect(dataset):
    return [(image.numpy(), int(label)) for image, label in dataset]


def test_resolve_source_finds_the_kind_from_the_disk(tmp_path):
    folder = _folder(tmp_path / "images")
    write_tfrecords(np.zeros((2, 4, 4, 3), np.uint8), [0, 1], tmp_path / "records" / "set.tfrecord")
    assert source_spec.resolve_source("fashion-mnist") == ("fashion-mnist", None)
    assert source_spec.resolve_source(folder) == ("folder", folder)
    assert source_spec.resolve_source(str(tmp_path / "records")) == ("tfrecords", str(tmp_path / "records"))
    pattern = str(tmp_path / "records" / "set*")
    assert source_spec.resolve_source(pattern) == ("tfrecords", pattern)
    for missing in (str(tmp_path / "nowhere"), str(tmp_path / "records" / "other*")):
        with pytest.raises(
            ValueError, match=f"--data must be 'fashion-mnist', .*; received {re.escape(repr(missing))} \\(not found\\)"
        ):
            source_spec.resolve_source(missing, "--data")


def test_open_source_limits_counts_and_names_the_classes(tmp_path):
    folder = _folder(tmp_path / "images")
    dataset, classes, count = source_spec.open_source("folder", folder, limit=4)
    assert classes == ["class0", "class1"] and count == 4
    assert [label for _, label in _collect(dataset)] == [0, 0, 1, 1]
    records = tmp_path / "set.tfrecord"
    write_tfrecords(np.zeros((3, 4, 4, 3), np.uint8), [1, 2, 3], records)
    dataset, classes, count = source_spec.open_source("tfrecords", str(records), label_offset=1)
    assert classes is None and count is None and [label for _, label in _collect(dataset)] == [0, 1, 2]
    with pytest.raises(
        ValueError,
        match="kind must be one of fashion-mnist, folder, tfrecords, fashion-mnist-composite, voc; received 'images'",
    ):
        source_spec.open_source("images", folder)
    with pytest.raises(ValueError, match="path must be given for a folder source, and only then; received None"):
        source_spec.open_source("folder")


def test_a_config_and_a_command_spec_read_the_same_examples(tmp_path):
    folder = _folder(tmp_path / "images")
    config = config_lib.from_dict(
        {
            "model": {"preset": "joint_mobilenet_v1_128"},
            "data": {"source": "folder", "train_path": folder, "eval_path": folder, "eval_examples": 3},
        }
    )
    from_config = _collect(data_lib.eval_source(config))
    kind, path = source_spec.resolve_source(folder)
    from_spec = _collect(source_spec.open_source(kind, path, limit=3)[0])
    direct = _collect(sources.folder_source(folder)[0].take(3))
    assert len(from_config) == 3 and [label for _, label in from_config] == [0, 0, 1]
    for a, b, c in zip(from_config, from_spec, direct):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[0], c[0])
    assert data_lib.class_names(config) == ["class0", "class1"]
