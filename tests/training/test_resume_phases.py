"""Runs interrupted outside the training loop: killed during the compare_isps phase (resumed there, nothing
lost), and refused before training by a bad data path (no params.yaml left behind to refuse the corrected run)."""

import json
import signal
import time

import pytest
from training_jobs import run_jobs, tiny

from dirtypixels_tf.training import from_dict, run_experiment


def test_a_config_refused_for_its_data_path_leaves_no_params_and_the_corrected_run_starts(tmp_path, fashion_mnist):
    run_dir = tmp_path / "run"
    broken = tiny(data={"source": "folder", "train_path": str(tmp_path / "no_such_folder")})
    with pytest.raises((ValueError, OSError), match="no_such_folder"):
        run_experiment(from_dict(broken), str(run_dir), verbose=0, log=lambda line: None)
    assert not (run_dir / "params.yaml").exists()
    corrected = tiny(data={"epochs": 1, "train_examples": 32, "eval_examples": 16})
    results = run_experiment(from_dict(corrected), str(run_dir), verbose=0, log=lambda line: None)
    assert results["test"]["examples"] == 16 and (run_dir / "model.keras").is_file()


@pytest.mark.slow
def test_a_run_killed_during_compare_isps_resumes_the_comparison(tmp_path, fashion_mnist):
    """SIGKILL once the comparison's run directory has its params.yaml (its training has begun); the rerun with the
    same config keeps the trained main model (not retrained: its file is untouched), trains the comparison and
    writes both into metrics.json."""
    config = tiny(data={"epochs": 1, "train_examples": 64, "eval_examples": 16}, compare_isps=["anscombe"])
    run_dir = tmp_path / "run"
    process = run_jobs([{"config": config, "run_dir": str(run_dir), "out": None}], tmp_path, wait=False)
    marker = run_dir / "compare" / "anscombe" / "params.yaml"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None and not marker.is_file():
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, process.stdout.read()[-3000:]
    assert marker.is_file() and not (run_dir / "compare" / "anscombe" / "metrics.json").exists()
    main_model = (run_dir / "model.keras").stat().st_mtime_ns
    main_test = json.loads((run_dir / "metrics.json").read_text())["test"]

    run_jobs([{"config": config, "run_dir": str(run_dir), "out": None}], tmp_path)
    assert (run_dir / "model.keras").stat().st_mtime_ns == main_model
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"] == main_test
    assert metrics["comparisons"]["anscombe"]["test"]["examples"] == 16
    assert (run_dir / "compare" / "anscombe" / "model.keras").is_file()
    # now everything is finished: a third run is refused
    with pytest.raises(ValueError, match="already holds a finished run"):
        run_experiment(from_dict(config), str(run_dir), verbose=0, log=lambda line: None)
