"""TFLite export of the packed-Bayer Anscombe network (the on-phone model): built-in ops only, same image."""

import numpy as np
import pytest
import tensorflow as tf
from tiny_models import randomize_weights

from dirtypixels_tf.export import export_tflite
from dirtypixels_tf.export.tflite import simulated_inputs
from dirtypixels_tf.models.components import IspModel
from dirtypixels_tf.models.isp import AnscombeNetwork

pytestmark = pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")


def test_packed_isp_exports_to_tflite_with_builtin_ops_and_the_same_image(tmp_path):
    isp = AnscombeNetwork(domain="packed", first_conv="plain", prior_width=8)
    model = IspModel(isp, (32, 32))
    randomize_weights(model, seed=0, scale=0.1)
    info = export_tflite(model, tmp_path / "packed.tflite")
    assert info["select_tf_ops"] is False
    runner = tf.lite.Interpreter(model_path=info["path"]).get_signature_runner("serving_default")
    frames = simulated_inputs((32, 32), 3)
    for index in range(3):
        frame = {key: value[index : index + 1] for key, value in frames.items()}
        expected = model(frame, training=False)["image"].numpy()
        np.testing.assert_allclose(runner(**frame)["image"], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
