"""Exact resume: a run killed mid-epoch (SIGKILL) resumes from its backup and ends with the weights of an
uninterrupted run."""

import keras
import numpy as np
from training_jobs import kill_inside_epoch, run_jobs, tiny

import dirtypixels_tf.models.isp  # noqa: F401  (registers the ISP layers for loading)
import dirtypixels_tf.models.joint  # noqa: F401


def test_run_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path, fashion_mnist):
    """3 epochs x 8 steps, backups every 3 steps and at epoch ends, op determinism on. The interrupted run is
    killed once its backup is in the middle of epoch 2; resumed, it runs the rest of epoch 2, then epoch 3. Final
    weights (model.keras) equal the uninterrupted run's within 1e-6 (both runs execute the same ops in the same
    order on the same batches; dropout draws are restored with the backup)."""
    config = tiny(data={"epochs": 3, "steps_per_epoch": 8}, checkpoint={"every_steps": 3}, deterministic=True)
    reference = tmp_path / "reference"
    interrupted = tmp_path / "interrupted"
    process = run_jobs([{"config": config, "run_dir": str(interrupted), "out": None}], tmp_path, wait=False)
    state = kill_inside_epoch(process, interrupted, epoch=1, seconds=180)
    assert not (interrupted / "model.keras").exists()
    assert 0 < state["batch"] < 8, state

    # The resumed run, then the uninterrupted reference, in one fresh process.
    jobs = [{"config": config, "run_dir": str(run), "out": None} for run in (interrupted, reference)]
    run_jobs(jobs, tmp_path)
    expected = keras.models.load_model(reference / "model.keras").get_weights()
    resumed = keras.models.load_model(interrupted / "model.keras").get_weights()
    assert len(expected) == len(resumed)
    for a, b in zip(expected, resumed):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
    assert not (interrupted / "backup").exists()
    rows = (interrupted / "training_log.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # header, epoch 1 (first process), epochs 2 and 3 (resumed)
