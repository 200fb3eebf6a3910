"""Fashion-MNIST, the default data set: found in Debian's folder or the user cache, else downloaded once (verified)
from a server; here a loopback HTTP server serving the real files (or the stand-in when they are absent)."""

import functools
import gzip
import http.server
import os
import shutil
import struct
import threading

import numpy as np
import pytest
import tensorflow as tf
from stand_in_data import using_stand_in, write_stand_in

from dirtypixels_tf.data import fashion_mnist

ALL_FILES = [name for pair in fashion_mnist.FASHION_MNIST_FILES.values() for name in pair]
DEBIAN_COPY = all(os.path.isfile(os.path.join(fashion_mnist.FASHION_MNIST_DIR, f)) for f in ALL_FILES)


def _write_idx(path, array, magic=None):
    header = magic if magic is not None else (0x08 << 8) | array.ndim
    data = struct.pack(">I", header) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    with gzip.open(path, "wb") as stream:
        stream.write(data)


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A loopback HTTP server of the four files (the real ones where Debian's copy exists, else the stand-in whose
    checksums then replace the real ones), and a machine without any local copy. Yields (folder, request log)."""
    folder = tmp_path / "served"
    if DEBIAN_COPY:
        folder.mkdir()
        for name in ALL_FILES:
            shutil.copy(os.path.join(fashion_mnist.FASHION_MNIST_DIR, name), folder / name)
    else:
        write_stand_in(str(folder))
        checksums = {name: fashion_mnist.content_sha256(folder / name) for name in ALL_FILES}
        monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_SHA256", checksums)
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.delenv("DIRTYPIXELS_FASHION_MNIST", raising=False)
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_DIR", str(tmp_path / "no-debian-copy"))
    monkeypatch.setenv("DIRTYPIXELS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DIRTYPIXELS_FASHION_MNIST_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    yield folder, requests
    server.shutdown()
    server.server_close()


def test_downloaded_once_verified_and_then_read_from_the_cache(served, tmp_path, capsys):
    folder, requests = served
    images, labels = fashion_mnist.load_fashion_mnist("test")
    cached = tmp_path / "cache" / "fashion-mnist"
    assert sorted(os.listdir(cached)) == sorted(fashion_mnist.FASHION_MNIST_FILES["test"])  # no partial files
    for name in fashion_mnist.FASHION_MNIST_FILES["test"]:
        assert (cached / name).read_bytes() == (folder / name).read_bytes()
    assert len(requests) == 2 and "downloading it once" in capsys.readouterr().out
    again, _ = fashion_mnist.load_fashion_mnist("test")
    np.testing.assert_array_equal(again, images)
    assert len(requests) == 2  # the second load reads the cache
    assert images.shape[1:] == (28, 28) and len(images) == len(labels)


def test_a_corrupted_download_is_refused_and_not_kept(served, tmp_path):
    folder, _ = served
    name = fashion_mnist.FASHION_MNIST_FILES["test"][1]
    with gzip.open(folder / name, "rb") as stream:
        data = bytearray(stream.read())
    data[-1] ^= 1  # one label changed
    with gzip.open(folder / name, "wb") as stream:
        stream.write(bytes(data))
    with pytest.raises(fashion_mnist.DataNotFoundError, match=f"{name}: checksum mismatch"):
        fashion_mnist.locate_fashion_mnist("test", progress=False)
    assert not (tmp_path / "cache" / "fashion-mnist" / name).exists()
    assert not [f for f in os.listdir(tmp_path / "cache" / "fashion-mnist") if f.endswith(".part")]


def test_without_a_copy_or_a_network_the_error_names_both_ways(served, monkeypatch):
    monkeypatch.setenv("DIRTYPIXELS_FASHION_MNIST_URL", "http://127.0.0.1:9/")  # the discard port: nothing listens
    with pytest.raises(fashion_mnist.DataNotFoundError) as error:
        fashion_mnist.locate_fashion_mnist("train", progress=False)
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message and "download" in message
    assert "http://127.0.0.1:9/" in message and os.environ["DIRTYPIXELS_CACHE"] in message
    with pytest.raises(fashion_mnist.DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist.locate_fashion_mnist("train", download=False)


def test_fashion_mnist_folder_with_bad_magic_is_named(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8), magic=0x00000801)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz.*expected 0x00000803"):
        fashion_mnist.load_fashion_mnist("test", directory=tmp_path)
    with pytest.raises(ValueError, match="split must be one of train, test"):
        fashion_mnist.load_fashion_mnist("validation")


def test_the_stand_in_reads_like_the_real_files(tmp_path):
    write_stand_in(str(tmp_path))
    images, labels = fashion_mnist.load_fashion_mnist("train", directory=tmp_path)
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), [len(labels) // 10] * 10)


@pytest.mark.skipif(
    not DEBIAN_COPY or using_stand_in(),
    reason="the real Fashion-MNIST is not on this machine (apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_from_debian_files():
    for name in ALL_FILES:  # the recorded checksums are those of the real content
        path = os.path.join(fashion_mnist.FASHION_MNIST_DIR, name)
        assert fashion_mnist.content_sha256(path) == fashion_mnist.FASHION_MNIST_SHA256[name], name
    for split, count in (("train", 60000), ("test", 10000)):
        images, labels = fashion_mnist.load_fashion_mnist(split)
        assert images.shape == (count, 28, 28) and images.dtype == np.uint8
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(np.bincount(labels, minlength=10), [count // 10] * 10)
        assert images.min() == 0 and images.max() == 255
    dataset, classes = fashion_mnist.fashion_mnist_source("test")
    assert classes[9] == "Ankle boot" and int(dataset.cardinality()) == 10000
    image, label = next(iter(dataset))
    assert image.shape == (28, 28, 3) and image.dtype == tf.float32
    np.testing.assert_array_equal(np.round(image.numpy() * 255).astype(np.uint8)[..., 0], images[0])
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
    assert int(label) == labels[0]
