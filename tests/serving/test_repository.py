"""Versions on disk: a version that failed to load is retried once its files change, the next export is loaded,
two exports at once both publish, version directories are readable by other users, statuses show no server paths."""

import os
import shutil
import stat
import threading

import numpy as np
import pytest
from tiny_models import CLASS_NAMES, SIZE

from dirtypixels_tf.export import export_savedmodel
from dirtypixels_tf.export.tflite import simulated_inputs
from dirtypixels_tf.serving.repository import ModelRepository


def _copy_saved_model_pb_first(source, target):
    """A non-atomic copy, interrupted: saved_model.pb is there, the variables are not yet."""
    os.makedirs(target)
    shutil.copy(os.path.join(source, "saved_model.pb"), target)


def test_a_failed_version_is_retried_when_its_files_change_and_the_next_export_loads(exported, tiny_model, tmp_path):
    base = tmp_path / "tiny"
    shutil.copytree(exported[1], base / "1")
    repository = ModelRepository("tiny", base)
    assert repository.refresh() == ([1], [])
    _copy_saved_model_pb_first(exported[1], base / "2")
    assert repository.refresh() == ([], [])  # 2 fails; 1 stays served
    state, error = repository.states()[2]
    assert state == "END" and error
    assert str(tmp_path) not in error and "version 2" in error  # clients are not shown server paths
    assert repository.refresh() == ([], [])  # unchanged files: not loaded again on every poll
    shutil.rmtree(base / "2")
    shutil.copytree(exported[1], base / "2")  # the copy completes
    assert repository.refresh() == ([2], [1])
    assert repository.states()[2] == ("AVAILABLE", "")
    _copy_saved_model_pb_first(exported[1], base / "3")
    repository.refresh()
    assert repository.states()[3][0] == "END"
    assert export_savedmodel(tiny_model, base, class_names=CLASS_NAMES).endswith(os.sep + "4")
    assert repository.refresh() == ([4], [2])
    frames = simulated_inputs((SIZE, SIZE), 2)
    servable = repository.get(_spec("tiny"))
    np.testing.assert_allclose(
        servable.functions["serving_default"](**frames)["logits"], tiny_model(frames)["logits"], atol=1e-3
    )


def _spec(name):
    from tensorflow_serving.apis import model_pb2

    return model_pb2.ModelSpec(name=name)


def test_two_exports_at_once_both_publish_and_versions_are_world_readable(tiny_model, tmp_path):
    base = tmp_path / "tiny"
    results, errors = [], []

    def export():
        try:
            results.append(export_savedmodel(tiny_model, base, class_names=CLASS_NAMES))
        except Exception as error:  # noqa: BLE001 (the test reports it)
            errors.append(error)

    threads = [threading.Thread(target=export) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(os.path.basename(path) for path in results) == ["1", "2"]
    assert sorted(os.listdir(base)) == ["1", "2"]
    umask = os.umask(0)
    os.umask(umask)
    for version in ("1", "2"):
        for root, _, files in os.walk(base / version):
            for name in [root] + [os.path.join(root, f) for f in files]:
                mode = stat.S_IMODE(os.stat(name).st_mode)
                expected = (0o777 if os.path.isdir(name) else 0o666) & ~umask
                assert mode & 0o444 == expected & 0o444, f"{name}: mode {oct(mode)}"
            assert stat.S_IMODE(os.stat(root).st_mode) & 0o111 == 0o777 & ~umask & 0o111


def test_folder_names_that_are_not_versions_and_unreadable_folders_are_reported_and_polling_goes_on(
    exported, tmp_path, caplog
):
    """The rule for names (export/layout.py): canonical decimal numbers up to 2**63 - 1. "0010" and a 20-digit
    number are ignored with a logged reason; a symbolic-link loop BASE/6 -> 6 is reported in the log and in
    states() while version 1 is served and a new version 8 is still loaded; removing it clears its status."""
    base = tmp_path / "tiny"
    shutil.copytree(exported[1], base / "1")
    for name in ("0010", "99999999999999999999"):
        shutil.copytree(exported[1], base / name)
    os.symlink("6", base / "6")
    repository = ModelRepository("tiny", base)
    with caplog.at_level("INFO", logger="dirtypixels_tf.serving"):
        assert repository.refresh() == ([1], [])
        shutil.copytree(exported[1], base / "8")
        assert repository.refresh() == ([8], [1])
    assert repository.states()[6] == ("END", "version 6 cannot be read: Too many levels of symbolic links")
    assert sorted(repository.states()) == [1, 6, 8]  # no 10, no 20-digit version: the status proto can hold them
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3  # each problem logged once, not at every poll
    assert "folder '0010' under the base path: ignored: version numbers are written without leading zeros" in (
        " ".join(warnings)
    )
    assert "'99999999999999999999' under the base path: ignored: beyond the largest version number" in (
        " ".join(warnings)
    )
    os.remove(base / "6")
    repository.refresh()
    assert sorted(repository.states()) == [1, 8]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their permissions")
def test_an_unreadable_version_folder_is_reported(exported, tmp_path):
    base = tmp_path / "tiny"
    shutil.copytree(exported[1], base / "1")
    shutil.copytree(exported[1], base / "2")
    os.chmod(base / "2", 0)
    try:
        repository = ModelRepository("tiny", base)
        assert repository.refresh() == ([1], [])
        assert repository.states()[2] == ("END", "version 2 cannot be read: Permission denied")
    finally:
        os.chmod(base / "2", stat.S_IRWXU)
