"""The README's phone commands end to end: `export --per-channel-noise`, the local server, `classify` of a DNG
through the real-capture front end, answered as the SavedModel answers the front end's frame."""

import numpy as np
import pytest
import tensorflow as tf
from tiny_models import SIZE, build_tiny_model

from dirtypixels_tf import cli
from dirtypixels_tf.data import camera_raw
from dirtypixels_tf.export import read_export_metadata
from dirtypixels_tf.serving.server import LocalModelServer

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("exact_graphs")]  # an export and a server: minutes


def test_classify_sends_a_dng_through_the_front_end_to_a_per_colour_model(tmp_path, capsys):
    model_file = tmp_path / "tiny.keras"
    build_tiny_model(seed=2).save(model_file)
    base = tmp_path / "models" / "tiny"
    argv = ["export", str(model_file), "--out", str(base), "--per-channel-noise", "--fold-batch-norm", "none"]
    assert cli.main([*argv, "--quiet"]) == 0
    assert read_export_metadata(base / "1")["per_channel_noise"] is True
    rng = np.random.default_rng(5)
    dng = tmp_path / "phone.dng"
    camera_raw.write_dng(dng, rng.uniform(0, 0.1, (80, 96)), "RGGB", iso=1600, as_shot_neutral=(0.55, 1.0, 0.75))
    with LocalModelServer(base, model_name="tiny", port=0, rest_port=0, poll_seconds=0.5) as server:
        classify = ["classify", str(dng), "--server", server.address, "--model", "tiny", "--sensor", "Pixel"]
        assert cli.main(classify) == 0
    printed = capsys.readouterr().out
    assert "white balance 0.55/1/0.75" in printed and "Pixel at ISO 1600" in printed
    frame = camera_raw.load_capture(dng, (SIZE, SIZE), sensor="Pixel")
    outputs = tf.saved_model.load(str(base / "1")).signatures["serving_default"](**frame.inputs())
    best = outputs["top_k_labels"][0, 0].numpy().decode()
    assert f"1. {best}" in printed
