"""The exported-model layout every reader uses: which directories are versions, the highest complete one."""

import json

from dirtypixels_tf.export import layout


def _version(base, name, complete=True):
    (base / name).mkdir(parents=True)
    if complete:
        (base / name / layout.SAVED_MODEL_FILE).write_bytes(b"")


def test_versions_are_integer_names_holding_a_savedmodel(tmp_path):
    base = tmp_path / "model"
    for name in ("1", "3", "12"):
        _version(base, name)
    _version(base, "20", complete=False)  # a copy in progress: not a version yet
    _version(base, ".tmp-21-abcd")  # an export under way
    _version(base, "v30")
    (base / "40").write_text("a file, not a directory")
    assert layout.saved_versions(base) == [1, 3, 12]
    assert layout.find_savedmodel(base) == str(base / "12")
    assert layout.find_savedmodel(base / "3") == str(base / "3")
    assert layout.find_savedmodel(base / "20") is None
    assert layout.find_savedmodel(tmp_path / "missing") is None
    assert layout.is_version_name("7") and not layout.is_version_name("7\n") and not layout.is_version_name("")


def test_metadata_is_read_from_the_extra_assets(tmp_path):
    _version(tmp_path, "1")
    assert layout.read_export_metadata(tmp_path / "1") is None
    (tmp_path / "1" / layout.EXTRA_DIR).mkdir()
    (tmp_path / "1" / layout.EXTRA_DIR / layout.METADATA_FILE).write_text(json.dumps({"class_names": ["a", "b"]}))
    assert layout.read_export_metadata(tmp_path / "1") == {"class_names": ["a", "b"]}


def test_the_rule_for_version_names_and_the_folders_it_reports(tmp_path):
    """Canonical decimal numbers up to 2**63 - 1 are versions; digits with leading zeros or beyond int64 are
    reported and ignored, as is a symbolic-link loop; other names pass unremarked."""
    base = tmp_path / "model"
    for name in ("0", "5", "0010", "9223372036854775807", "9223372036854775808", "notes"):
        _version(base, name)
    (base / "6").symlink_to("6")
    versions, problems = layout.scan_versions(base)
    assert sorted(versions) == [0, 5, 2**63 - 1]
    assert problems == {
        "0010": "ignored: version numbers are written without leading zeros",
        "9223372036854775808": "ignored: beyond the largest version number, 2**63 - 1",
        "6": "cannot be read: Too many levels of symbolic links",
    }
    assert not layout.is_version_name("0010") and not layout.is_version_name("99999999999999999999")
    assert layout.is_version_name("0") and layout.is_version_name("9223372036854775807")
