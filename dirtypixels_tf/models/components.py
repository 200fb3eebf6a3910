"""What every component model shares, and the ISP alone (models/isp.py and models/joint.py both import it).

- ComponentModel: a functional keras.Model over component layers (`COMPONENTS`, e.g. "isp", "head"), exposed as
  attributes; its config holds the serialized components and the settings.
- IspModel: the ISP alone (reconstruction, its stage 1): {"raw", "alpha", "sigma"[, "psf"]} -> the ISP's outputs.
  Inputs by name: "raw" [B, H, W, 1] float32 in [0, 1], "alpha" and "sigma" [B], and "psf" [B, kh, kw, 3] for an
  ISP that deblurs with per-image PSFs (Isp.takes_psf). The ISP layer keeps the name "isp".
"""

import keras


def _raw_inputs(image_size, psf_size=None):
    height, width = image_size
    inputs = {
        "raw": keras.Input((height, width, 1), name="raw"),
        "alpha": keras.Input((), name="alpha"),
        "sigma": keras.Input((), name="sigma"),
    }
    if psf_size is not None:
        inputs["psf"] = keras.Input((*psf_size, 3), name="psf")
    return inputs


class PsfSizeError(ValueError):
    """An ISP that takes per-image PSFs (Isp.takes_psf) was given no PSF size."""


def isp_outputs(isp, image_size, psf_size):
    """(inputs, outputs dict) of `isp` on symbolic RAW inputs."""
    if isp.takes_psf and psf_size is None:
        raise PsfSizeError(f"psf_size must be given for an ISP that takes per-image PSFs; received {psf_size!r}")
    inputs = _raw_inputs(image_size, psf_size if isp.takes_psf else None)
    outputs = isp(*(inputs[name] for name in ("raw", "alpha", "sigma", "psf") if name in inputs))
    return inputs, dict(outputs)


def check_size(value, name):
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(isinstance(v, int) and v > 0 for v in value):
        raise ValueError(f"{name} must be (height, width) of positive integers; received {value!r}")
    return tuple(value)


class ComponentModel(keras.Model):
    """A functional model over component layers; its config holds the serialized components and the settings."""

    COMPONENTS = ()

    def _settings(self):
        return {}

    def get_config(self):
        config = {"name": self.name, **self._settings()}
        for key in self.COMPONENTS:
            config[key] = keras.saving.serialize_keras_object(getattr(self, key))
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in cls.COMPONENTS:
            config[key] = keras.saving.deserialize_keras_object(config[key], custom_objects=custom_objects)
        return cls(**config)


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class IspModel(ComponentModel):
    """The ISP layer `isp` alone: {"raw", "alpha", "sigma"[, "psf"]} -> its outputs (Isp.output_names).
    image_size: (H, W) of the RAW frames; psf_size: (kh, kw) of per-image PSFs, for ISPs that take them."""

    COMPONENTS = ("isp",)

    def __init__(self, isp, image_size, psf_size=None, name="isp_model"):
        image_size, psf_size = check_size(image_size, "image_size"), check_size(psf_size, "psf_size")
        inputs, outputs = isp_outputs(isp, image_size, psf_size)
        super().__init__(inputs, outputs, name=name)
        self.isp, self.image_size, self.psf_size = isp, image_size, psf_size

    def _settings(self):
        return {"image_size": self.image_size, "psf_size": self.psf_size}
