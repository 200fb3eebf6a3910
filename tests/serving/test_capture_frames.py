"""`classify`'s frames for a model served with per-colour noise: camera RAW files through the real-capture front end."""

import numpy as np

from dirtypixels_tf.catalog import SERVING_SIGNATURE, UINT16_SIGNATURE
from dirtypixels_tf.data import camera_raw
from dirtypixels_tf.serving.frames import read_frame


def test_a_per_colour_model_gets_the_front_ends_frame_and_others_the_sensor_values(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "frame.dng"
    camera_raw.write_dng(path, rng.uniform(0, 0.2, (64, 96)), "RGGB", iso=400, as_shot_neutral=(0.5, 1.0, 0.8))
    options = {"white_balance": "as_shot", "exposure": "percentile98", "noise": "sensor_at_iso", "sensor": "Pixel"}
    frame = read_frame(str(path), (32, 32), capture=options)
    expected = camera_raw.load_capture(path, (32, 32), **options).inputs()
    assert frame.signature == SERVING_SIGNATURE and frame.inputs["alpha"].shape == (1, 3)
    for key in ("raw", "alpha", "sigma"):
        np.testing.assert_array_equal(frame.inputs[key], expected[key])
    assert "white balance 0.5/1/0.8" in frame.description and "Pixel at ISO 400" in frame.description
    assert read_frame(str(path), (32, 32)).signature == UINT16_SIGNATURE  # a per-image model: as before
