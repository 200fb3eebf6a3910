"""Versions on disk: a version that failed to load is retried once its files change, the next export is loaded,
two exports at once both publish, version directories are readable by other users, statuses show no server paths."""

import os
import shutil
import stat
import threading

import numpy as np
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
