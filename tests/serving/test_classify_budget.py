"""`dirtypixels classify` given files that attack the client: images and .npy frames over the pixel budget are
refused from their header (one line each, nothing decoded) and the other files are still classified."""

import resource
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from tiny_models import SIZE

from dirtypixels_tf import cli
from dirtypixels_tf.serving import frames as frames_module

pytestmark = pytest.mark.usefixtures("exact_graphs")


def _png_header(path, width, height):
    """A PNG that declares width x height RGB pixels and holds one compressed row: a 70-byte 'image'."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    )


def _npy_header(path, shape):
    """A .npy file whose header declares `shape` float32 values but that holds none."""
    with open(path, "wb") as file:
        np.lib.format.write_array_header_1_0(file, {"descr": "<f4", "fortran_order": False, "shape": shape})


def test_files_over_the_pixel_budget_are_refused_one_line_each_and_the_others_classified(server, tmp_path, capsys):
    _png_header(tmp_path / "bomb.png", 20000, 20000)  # beyond Pillow's own ceiling too
    _png_header(tmp_path / "large.png", 10000, 10000)  # 100 Mpx: under Pillow's ceiling, over the budget
    _npy_header(tmp_path / "large.npy", (12000, 12000))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "scene.png")
    files = [str(tmp_path / name) for name in ("bomb.png", "large.png", "large.npy", "scene.png")]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    argv = ["classify", *files, "--server", server.address, "--model", "tiny", "--profile", "6lux"]
    assert cli.main(argv) == 1  # some files failed
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 3 and "Traceback" not in captured.err
    assert errors[0].startswith(files[0] + ": Image size (400000000 pixels) exceeds limit")
    assert errors[1] == (
        f"{files[1]}: 10000 x 10000 = 100.0 megapixels, more than the budget of 64 (--max-megapixels); not decoded"
    )
    assert errors[2].startswith(f"{files[2]}: 12000 x 12000 = 144.0 megapixels")
    assert f"{files[3]}: 8-bit image simulated" in captured.out
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 300  # MB: nothing was decoded


def test_the_pixel_budget_is_overridable(tmp_path):
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "scene.png")
    with pytest.raises(ValueError, match="64 x 48 = 0.0 megapixels, more than the budget of 0.003 "):
        frames_module.read_frame(tmp_path / "scene.png", (SIZE, SIZE), max_pixels=3000)
    assert frames_module.read_frame(tmp_path / "scene.png", (SIZE, SIZE), max_pixels=3072).inputs["raw"].shape == (
        1,
        SIZE,
        SIZE,
        1,
    )
