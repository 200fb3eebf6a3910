"""Fashion-MNIST, the default data set: where its files are found, downloading them once, reading them.

The four IDX files (gzip-compressed, as published) are looked for, in this order:
1. the folder named by the environment variable DIRTYPIXELS_FASHION_MNIST, when it is set (used as it is: a
   smaller copy for tests, say);
2. FASHION_MNIST_DIR, where Debian's and Ubuntu's `dataset-fashion-mnist` package puts them;
3. the user cache, `cache_dir()`: $DIRTYPIXELS_CACHE, else $XDG_CACHE_HOME/dirtypixels_tf, else
   ~/.cache/dirtypixels_tf, with a `fashion-mnist` folder inside;
4. else they are downloaded once into the user cache from FASHION_MNIST_URL (the data set's official address;
   the environment variable DIRTYPIXELS_FASHION_MNIST_URL replaces it) with a progress bar. Each download is
   checked against the SHA-256 of its decompressed content (the same for the official files and Debian's
   recompressed copy) before it is moved into place, so the cache never holds a partial or corrupted file.
With no copy and no network, the error names both ways to get the files.
"""

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# SHA-256 of each file's decompressed content (IDX bytes).
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DOWNLOAD_TIMEOUT_S = 30


class DataNotFoundError(RuntimeError):
    """The data set is in none of its places and could not be downloaded; the message says how to get it."""


def cache_dir():
    """The user cache of the package: $DIRTYPIXELS_CACHE, else $XDG_CACHE_HOME/dirtypixels_tf, else
    ~/.cache/dirtypixels_tf."""
    if os.environ.get("DIRTYPIXELS_CACHE"):
        return os.environ["DIRTYPIXELS_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dirtypixels_tf")


def _has_files(folder, names):
    return all(os.path.isfile(os.path.join(folder, name)) for name in names)


def content_sha256(path):
    """SHA-256 of a gzip file's decompressed content."""
    digest = hashlib.sha256()
    with gzip.open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(name, folder, base_url, progress):
    """Download one file into `folder`, verified before it is renamed into place."""
    url = base_url.rstrip("/") + "/" + name
    os.makedirs(folder, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            from tqdm import tqdm

            with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
        try:
            received = content_sha256(partial)
        except (OSError, EOFError) as error:
            raise DataNotFoundError(f"{url}: the download is not a gzip file ({error})") from None
        if received != FASHION_MNIST_SHA256[name]:
            raise DataNotFoundError(
                f"{url}: checksum mismatch (content SHA-256 {received}, expected {FASHION_MNIST_SHA256[name]}); "
                "the file was not kept"
            )
        os.replace(partial, os.path.join(folder, name))
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def locate_fashion_mnist(split="train", download=True, progress=True):
    """The folder holding `split`'s two files (see the module docstring for the order), downloading them into
    the user cache if they are nowhere else. Raises DataNotFoundError naming the ways to get them."""
    if split not in FASHION_MNIST_FILES:
        raise ValueError(f"split must be one of {', '.join(FASHION_MNIST_FILES)}; received {split!r}")
    names = FASHION_MNIST_FILES[split]
    override = os.environ.get("DIRTYPIXELS_FASHION_MNIST")
    if override:
        if not _has_files(override, names):
            raise DataNotFoundError(
                f"DIRTYPIXELS_FASHION_MNIST={override!r} must be a folder holding {', '.join(names)}"
            )
        return override
    cached = os.path.join(cache_dir(), "fashion-mnist")
    for folder in (FASHION_MNIST_DIR, cached):
        if _has_files(folder, names):
            return folder
    base_url = os.environ.get("DIRTYPIXELS_FASHION_MNIST_URL") or FASHION_MNIST_URL
    how = (
        f"Get it either way: install Debian's package (`apt-get install dataset-fashion-mnist`, which puts the files "
        f"in {FASHION_MNIST_DIR}), or download {', '.join(names)} from {base_url} into {cached}."
    )
    if not download:
        raise DataNotFoundError(f"Fashion-MNIST ({split}) is not in {FASHION_MNIST_DIR} or {cached}. {how}")
    if progress:
        print(f"Fashion-MNIST ({split}) is not on this machine: downloading it once into {cached}")
    try:
        for name in names:
            if not os.path.isfile(os.path.join(cached, name)):
                _download(name, cached, base_url, progress)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise DataNotFoundError(
            f"Fashion-MNIST ({split}) is not in {FASHION_MNIST_DIR} or {cached}, and downloading it from {base_url} "
            f"failed ({error}). {how}"
        ) from None
    return cached


def load_fashion_mnist(split="train", directory=None):
    """Fashion-MNIST as NumPy arrays: (images uint8 [N, 28, 28], labels int64 [N]), N = 60000 (train), 10000 (test).

    Reads the IDX files from `directory`, or from where `locate_fashion_mnist` finds (or downloads) them.
    """
    from dirtypixels_tf.data.sources import read_idx

    if split not in FASHION_MNIST_FILES:
        raise ValueError(f"split must be one of {', '.join(FASHION_MNIST_FILES)}; received {split!r}")
    folder = locate_fashion_mnist(split) if directory is None else os.fspath(directory)
    image_path, label_path = (os.path.join(folder, name) for name in FASHION_MNIST_FILES[split])
    images = read_idx(image_path, expected_magic=0x00000803)
    labels = read_idx(label_path, expected_magic=0x00000801)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{image_path!r} must hold 28x28 images; received shape {images.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{image_path!r} holds {len(images)} images but {label_path!r} holds {len(labels)} labels")
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"{label_path!r} must hold labels 0..9; received a maximum of {labels.max()}")
    return images, labels.astype(np.int64)


def fashion_mnist_source(split="train", directory=None):
    """(dataset of (image, label), class names) of Fashion-MNIST: 28x28 grayscale repeated to RGB, in [0, 1].

    The model's input size is set by preprocessing (resize). See `load_fashion_mnist` for where the files are read.
    """
    from dirtypixels_tf.data.sources import array_source

    images, labels = load_fashion_mnist(split, directory)
    return array_source(images, labels), list(FASHION_MNIST_CLASSES)


def write_idx_gz(path, array):
    """Write a uint8 array ([N] labels or [N, H, W] images) as a gzip-compressed IDX file (the format of the
    published files): for small stand-in copies of the data set."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise ValueError(f"array must be uint8 [N] or [N, H, W]; received {array.dtype} {array.shape}")
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as stream:
        stream.write(header + array.tobytes())
