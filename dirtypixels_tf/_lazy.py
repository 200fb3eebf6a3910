"""Lazy public names for the subpackages (PEP 562): `from dirtypixels_tf.physics import SensorModel` imports
physics/sensor.py (and so TensorFlow) only when the name is first used, so the command line starts quickly."""

import importlib


def lazy_exports(package, exports):
    """(__getattr__, __dir__) for `package`, whose public names map to the modules that define them."""

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__():
        return sorted(exports)

    return __getattr__, __dir__
