"""`convert` and `export` given weights, checkpoints and output paths that attack: NaN weights are refused with the
variables named (unless --allow-nonfinite), a truncated checkpoint shard and impossible --out paths are one-line
errors, never tracebacks."""

import glob
import os

import numpy as np
import pytest
from test_convert import SIZE, checkpoint_arrays, randomized_joint, write_checkpoint

from dirtypixels_tf.cli import main


def _refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    return error.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def nan_checkpoint(tmp_path_factory):
    arrays = checkpoint_arrays(randomized_joint(seed=6))
    arrays["MobilenetV1/Conv2d_0/weights"] = arrays["MobilenetV1/Conv2d_0/weights"].copy()
    arrays["MobilenetV1/Conv2d_0/weights"][0, 0, 0, 0] = np.nan
    arrays["gauss_den/lambda"] = np.float32(np.inf)
    return write_checkpoint(tmp_path_factory.mktemp("nan") / "model.ckpt-1", arrays)


def test_convert_refuses_non_finite_weights_naming_them_unless_allowed(nan_checkpoint, tmp_path, capsys):
    out = tmp_path / "joint.keras"
    line = _refused(["convert", nan_checkpoint, "--out", str(out), "--image-size", str(SIZE)], capsys)
    assert line.endswith(
        "2 variable(s) hold NaN or Inf: isp/lambda, conv1/kernel; the model would answer NaN scores "
        "(--allow-nonfinite writes it anyway)"
    )
    assert not out.exists()
    assert main(["convert", nan_checkpoint, "--out", str(out), "--image-size", str(SIZE), "--allow-nonfinite"]) == 0
    assert out.exists()
    # export refuses the model the same way
    line = _refused(["export", str(out), "--out", str(tmp_path / "base"), "--quiet"], capsys)
    assert "2 variable(s) hold NaN or Inf: isp/lambda, conv1/kernel" in line
    assert not (tmp_path / "base").exists() or not os.listdir(tmp_path / "base")


def test_convert_of_a_truncated_shard_is_a_one_line_error(tmp_path, capsys):
    prefix = write_checkpoint(tmp_path / "model.ckpt-1", checkpoint_arrays(randomized_joint(seed=7)))
    (shard,) = glob.glob(prefix + ".data-*")
    with open(shard, "r+b") as file:
        file.truncate(os.path.getsize(shard) // 2)
    line = _refused(["convert", prefix, "--out", str(tmp_path / "m.keras"), "--image-size", str(SIZE)], capsys)
    assert f"{prefix!r}: cannot read the checkpoint: " in line


@pytest.mark.parametrize("kind", ["a file", "empty", "under /proc"])
def test_export_to_an_impossible_out_is_a_one_line_error(kind, tmp_path, capsys):
    if kind == "a file":
        out = tmp_path / "taken"
        out.write_text("x")
        expected = f"--out must name the model's base path (a directory); {str(out)!r} is a file"
    elif kind == "empty":
        out, expected = "", "--out must name the model's base path (a directory); received ''"
    else:
        out, expected = "/proc/dirtypixels/base", "--out '/proc/dirtypixels/base': cannot write there: "
    line = _refused(["export", "raw_mobilenet_v1_128", "--out", str(out), "--quiet"], capsys)
    assert expected in line
