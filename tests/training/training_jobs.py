"""Helpers of the training tests: a tiny experiment (bilinear ISP + MobileNet-v1 0.25 at 32x32 on a few
Fashion-MNIST images) and a runner for experiments in a fresh Python process."""

import copy
import json
import os
import signal
import subprocess
import sys
import time

WORKER = os.path.join(os.path.dirname(__file__), "run_worker.py")

TINY = {
    "model": {"isp": "bilinear", "head": "mobilenet_v1", "head_width": 0.25, "image_size": 32, "num_classes": 10},
    "data": {
        "source": "fashion-mnist",
        "train_examples": 128,
        "eval_examples": 32,
        "batch_size": 16,
        "epochs": 2,
        "crop_area": [0.6, 1.0],
        "central_fraction": 1.0,
        "shuffle_buffer": 64,
    },
    "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9},
    "checkpoint": {"every_steps": 4, "tensorboard": False, "image_summaries_every": 0},
    "seed": 3,
}


def merge(base, override):
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def tiny(**sections):
    """The tiny experiment's plain config data with `sections` merged in (e.g. data={"epochs": 3})."""
    return merge(TINY, sections)


def run_jobs(jobs, tmp_path, env=None, timeout=240, wait=True):
    """Run `jobs` ([{"config": data, "run_dir": path, "out": path.npz}]) in a fresh Python process with run_worker.py.
    Returns the CompletedProcess (wait=True) or the Popen."""
    spec = tmp_path / f"jobs-{len(list(tmp_path.glob('jobs-*')))}.json"
    spec.write_text(json.dumps(jobs))
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    command = [sys.executable, WORKER, str(spec)]
    if not wait:
        return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def kill_inside_epoch(process, run_dir, epoch=1, seconds=180):
    """SIGKILL `process` (a run_jobs(wait=False) training run) once its backup (run_dir/backup) is inside epoch
    `epoch` (0-based) past its first batch; returns the backup's state {"epoch", "batch", ...} after the kill."""
    metadata = os.path.join(run_dir, "backup", "training_metadata.json")
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with open(metadata, encoding="utf-8") as stream:
                    state = json.load(stream)
            except (OSError, ValueError):  # not written yet, or replaced while read
                state = None
            if state and state["epoch"] == epoch and state["batch"] > 0:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, process.stdout.read()[-3000:]
    with open(metadata, encoding="utf-8") as stream:
        return json.load(stream)
