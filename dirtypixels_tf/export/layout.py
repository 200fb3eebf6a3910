"""The on-disk layout of exported models, as TF Serving reads it: one place for the names every reader uses.

A base path holds integer-named version directories (BASE/1, BASE/2, ...); a version is complete once its
SavedModel graph file (SAVED_MODEL_FILE) is there. The rule for names (scan_versions): a version is named by a
canonical decimal number from 0 to 2**63 - 1 (TF Serving's int64); names of other characters (such as the hidden
.tmp-N-xxxx directories of an export under way) are not versions and pass unremarked; names of digits that are not
canonical ("0010": which version would it be?) or beyond int64 are ignored with a reason, and so are folders that
cannot be read (permissions, symbolic-link loops). Beside the SavedModel, EXTRA_DIR holds TF Serving's warm-up requests
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
MAX_VERSION = 2**63 - 1  # versions are int64 in TF Serving's protos
_DIGITS = re.compile(r"[0-9]+")
_VERSION_NAME = re.compile(r"0|[1-9][0-9]*")


def is_version_name(name):
    """True for a version directory's name: a canonical decimal number up to MAX_VERSION ("1", "20"; not "0010")."""
    return _VERSION_NAME.fullmatch(name) is not None and int(name) <= MAX_VERSION


def scan_versions(base_path):
    """({version: path} of the complete versions under `base_path`, {folder name: why it is not one}).

    Only names of digits can be problems (others are not meant as versions); a version folder without its
    SAVED_MODEL_FILE yet (a copy under way) is neither. OSError if `base_path` itself cannot be listed.
    """
    versions, problems = {}, {}
    for entry in os.scandir(base_path):
        name = entry.name
        if not _DIGITS.fullmatch(name):
            continue
        if not is_version_name(name):
            problems[name] = (
                "ignored: version numbers are written without leading zeros"
                if _VERSION_NAME.fullmatch(name) is None
                else "ignored: beyond the largest version number, 2**63 - 1"
            )
            continue
        try:
            if not entry.is_dir():
                continue
            os.stat(os.path.join(entry.path, SAVED_MODEL_FILE))
        except FileNotFoundError:
            continue
        except OSError as error:  # permissions, a symbolic-link loop, an I/O error
            problems[name] = f"cannot be read: {error.strerror or error}"
            continue
        versions[int(name)] = entry.path
    return versions, problems


def is_savedmodel(path):
    """True if the directory `path` holds a SavedModel (its SAVED_MODEL_FILE)."""
    return os.path.isfile(os.path.join(path, SAVED_MODEL_FILE))


def saved_versions(base_path):
    """The sorted version numbers under `base_path` whose directory holds a complete SavedModel."""
    return sorted(scan_versions(base_path)[0])


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
