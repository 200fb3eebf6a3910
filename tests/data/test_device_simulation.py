"""On-device simulation (simulate_on_device=True + simulate_batch): bit for bit the frames of the tf.data path."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from dirtypixels_tf.data import array_source, make_dataset
from dirtypixels_tf.data.pipeline import simulate_batch
from dirtypixels_tf.physics.sensor import SensorModel

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _source(n=10):
    images = np.random.default_rng(0).integers(0, 256, (n, 20, 24, 3), dtype=np.uint8)
    return array_source(images, np.arange(n))


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("light_levels", ["3lux", "2to200lux"])
def test_device_path_gives_the_frames_of_the_tf_data_path_bit_for_bit(training, light_levels):
    sensor = SensorModel(light_levels=light_levels)
    host = make_dataset(_source(), sensor, 8, 4, training, seed=5, epochs=1, include_clean=True)
    device = make_dataset(_source(), sensor, 8, 4, training, seed=5, epochs=1, simulate_on_device=True)
    step = tf.function(lambda features: simulate_batch(sensor, features))
    batches = 0
    for (expected, labels), (features, device_labels) in zip(host, device):
        assert set(features) == {"clean", "sensor_seed"}
        measured = step(features)
        np.testing.assert_array_equal(labels.numpy(), device_labels.numpy())
        for key in ("raw", "alpha", "sigma", "clean"):
            assert measured[key].numpy().tobytes() == expected[key].numpy().tobytes(), key
        batches += 1
    assert batches == (2 if training else 3)


def test_simulate_batch_names_missing_features():
    with pytest.raises(ValueError, match="features must hold 'clean' and 'sensor_seed'.*received \\['raw'\\]"):
        simulate_batch(SensorModel(light_levels="3lux"), {"raw": tf.zeros([1, 8, 8, 1])})


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from dirtypixels_tf.data import array_source, make_dataset
    from dirtypixels_tf.data.pipeline import simulate_batch
    from dirtypixels_tf.physics.sensor import SensorModel

    images = np.random.default_rng(0).integers(0, 256, (12, 20, 24, 3), dtype=np.uint8)
    source = array_source(images, np.arange(12))
    sensor = SensorModel(light_levels="2to20lux")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    host = make_dataset(source, sensor, 8, 4, True, seed=5, epochs=1)
    device = strategy.experimental_distribute_dataset(
        make_dataset(source, sensor, 8, 4, True, seed=5, epochs=1, simulate_on_device=True)
    )
    step = tf.function(lambda features: strategy.run(lambda f: simulate_batch(sensor, f)["raw"], args=(features,)))
    same, batches = True, 0
    for (expected, _), (features, _) in zip(host, device):
        raw = np.concatenate([t.numpy() for t in strategy.experimental_local_results(step(features))])
        same = same and raw.tobytes() == expected["raw"].numpy().tobytes()
        batches += 1
    print("RESULT" + json.dumps({"replicas": strategy.num_replicas_in_sync, "same": bool(same), "batches": batches}))
    """
)


def test_device_path_under_mirrored_strategy_matches_the_tf_data_path(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(_MIRRORED_SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    assert json.loads(lines[0][len("RESULT") :]) == {"replicas": 2, "same": True, "batches": 3}
