"""The on-disk layout of exported models, as TF Serving reads it: one place for the names every reader uses.

A base path holds integer-named version directories (BASE/1, BASE/2, ...); a version is complete once its
SavedModel graph file (SAVED_MODEL_FILE) is there. Other names (such as the hidden .tmp-N-xxxx directories of an
export under way) are not versions. Beside the SavedModel, EXTRA_DIR holds TF Serving's warm-up requests
(WARMUP_FILE) and this package's metadata (METADATA_FILE: JSON with the image size, classes and sensor).
export/savedmodel.py writes versions; serving/repository.py and evaluation/predictors.py read them. No TensorFlow is imported here.
"""

import json
import os
import re

SAVED_MODEL_FILE = "saved_model.pb"
EXTRA_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
METADATA_FILE = "dirtypixels.json"
_VERSION_NAME = re.compile(r"[0-9]+")


def is_version_name(name):
    """True for a version directory's name: decimal digits only ("1", "20")."""
    return _VERSION_NAME.fullmatch(name) is not None


def is_savedmodel(path):
    """True if the directory `path` holds a SavedModel (its SAVED_MODEL_FILE)."""
    return os.path.isfile(os.path.join(path, SAVED_MODEL_FILE))


def saved_versions(base_path):
    """The sorted version numbers under `base_path` whose directory holds a complete SavedModel."""
    return sorted(
        int(entry.name)
        for entry in os.scandir(base_path)
        if entry.is_dir() and is_version_name(entry.name) and is_savedmodel(entry.path)
    )


def find_savedmodel(path):
    """The SavedModel directory of `path`: itself if it holds a SavedModel, else its highest complete version
    (a TF Serving base path); None if neither."""
    path = os.fspath(path)
    if is_savedmodel(path):
        return path
    if not os.path.isdir(path):
        return None
    versions = saved_versions(path)
    return os.path.join(path, str(versions[-1])) if versions else None


def read_export_metadata(version_dir):
    """The metadata dict of an exported version (EXTRA_DIR/METADATA_FILE), or None if it has none."""
    path = os.path.join(version_dir, EXTRA_DIR, METADATA_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as file:
        return json.load(file)
