"""Optional dependencies: `require(module, purpose)` imports one, or raises an ImportError that names the extra of
setup.py that installs it (pip install 'dirtypixels_tf[EXTRA]')."""

import importlib

EXTRAS = {
    "rawpy": "raw",
    "tifffile": "raw",
    "matplotlib": "plots",
    "bm3d": "baselines",
    "colour_demosaicing": "baselines",
    "skimage": "baselines",
    "tf2onnx": "onnx",
    "onnxruntime": "onnx",
}


def require(module, purpose):
    """The module `module` (dotted names allowed); `purpose` says what needs it, e.g. "reading camera RAW files"."""
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{purpose} needs the optional package {top!r}: pip install 'dirtypixels_tf[{EXTRAS[top]}]'"
        ) from None


def pyplot():
    """matplotlib.pyplot with the Agg backend (files only, no display)."""
    require("matplotlib", "plotting").use("Agg")
    return require("matplotlib.pyplot", "plotting")
