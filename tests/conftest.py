"""Session set-up shared by every test: quiet TensorFlow, the real data the tests read, and the default data set.

Real data from Debian's archive is fetched once into <repo>/.cache/<package> (`apt-get download` + `dpkg-deb -x`,
which need no root once the package lists exist): darktable's noise profiles and a Canon CR2 from rawtran-doc.
Where that cannot be done (no apt, no package lists, no network) the tests that read those files skip and name the
file. Fashion-MNIST is read where the package finds it (data/fashion_mnist.py); without a local copy the tests use
a small stand-in written here (tests/stand_in_data.py), so no test needs the network. The header of the test run
says which data is used.
"""

import os
import pathlib
import shutil
import subprocess
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from stand_in_data import write_stand_in  # noqa: E402
from tiny_models import exact_graphs, exported, tiny_model  # noqa: E402, F401 (fixtures of the export and serving tests)

from dirtypixels_tf.data import fashion_mnist  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).parents[1]
CACHE = REPO_ROOT / ".cache"
DEBIAN_TEST_FILES = {
    "darktable": "usr/share/darktable/noiseprofiles.json",
    "rawtran-doc": "usr/share/doc/rawtran/IMG_5952.CR2",
}
_CACHE_FOLDERS = {"darktable": "darktable", "rawtran-doc": "rawtran"}
_report = []


def debian_test_file(package):
    """The path of a real data file from a Debian package, fetched into .cache once; None if it cannot be had."""
    target = CACHE / _CACHE_FOLDERS[package]
    path = target / DEBIAN_TEST_FILES[package]
    if path.is_file():
        return path
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        _report.append(f"{package}: not fetched (no apt-get/dpkg-deb on this machine); its tests skip")
        return None
    with tempfile.TemporaryDirectory() as download:
        fetched = subprocess.run(
            ["apt-get", "download", "-qq", package], cwd=download, capture_output=True, text=True, timeout=300
        )
        debs = list(pathlib.Path(download).glob("*.deb"))
        if fetched.returncode != 0 or not debs:
            _report.append(f"{package}: apt-get download failed ({fetched.stderr.strip()[:200]}); its tests skip")
            return None
        target.mkdir(parents=True, exist_ok=True)
        extracted = subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(target)], capture_output=True, text=True)
    if not path.is_file():
        _report.append(f"{package}: {path} not extracted ({extracted.stderr.strip()[:200]}); its tests skip")
        return None
    return path


def _default_data():
    """Point DIRTYPIXELS_FASHION_MNIST at a stand-in when Fashion-MNIST is not on this machine."""
    if os.environ.get("DIRTYPIXELS_FASHION_MNIST"):
        return f"fashion-mnist: DIRTYPIXELS_FASHION_MNIST={os.environ['DIRTYPIXELS_FASHION_MNIST']}"
    try:
        return f"fashion-mnist: the real data set in {fashion_mnist.locate_fashion_mnist('train', download=False)}"
    except fashion_mnist.DataNotFoundError:
        folder = write_stand_in(tempfile.mkdtemp(prefix="fashion-mnist-stand-in-"))
        os.environ["DIRTYPIXELS_FASHION_MNIST"] = folder
        return f"fashion-mnist: not on this machine; the tests use a small stand-in in {folder}"


_report.append(_default_data())
_profiles = debian_test_file("darktable")
if _profiles is not None:
    os.environ.setdefault("DIRTYPIXELS_DARKTABLE_PROFILES", str(_profiles))
debian_test_file("rawtran-doc")


def pytest_report_header(config):
    return _report
