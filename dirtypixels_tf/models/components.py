"""What every component model shares, and the ISP alone (models/isp.py and models/joint.py both import it).

- ComponentModel: a functional keras.Model over component layers (`COMPONENTS`, e.g. "isp", "head"), exposed as
  attributes; its config holds the serialized components and the settings.
- IspModel: the ISP alone (reconstruction, its stage 1): {"raw", "alpha", "sigma"[, "psf"]} -> the ISP's outputs.
  Inputs by name: "raw" [B, H, W, 1] float32 in [0, 1], "alpha" and "sigma" [B] (or [B, 3], one per colour R, G, B,
  with per_channel_noise=True: real captures after white balance, data/camera_raw.py), and "psf" [B, kh, kw, 3] for
  an ISP that deblurs with per-image PSFs (Isp.takes_psf). The ISP layer keeps the name "isp".
- with_per_channel_noise: the same model (same weights) rebuilt with the other noise input shape.
"""

import keras


def _raw_inputs(image_size, psf_size=None, per_channel_noise=False):
    height, width = image_size
    noise_shape = (3,) if per_channel_noise else ()
    inputs = {
        "raw": keras.Input((height, width, 1), name="raw"),
        "alpha": keras.Input(noise_shape, name="alpha"),
        "sigma": keras.Input(noise_shape, name="sigma"),
    }
    if psf_size is not None:
        inputs["psf"] = keras.Input((*psf_size, 3), name="psf")
    return inputs


class PsfSizeError(ValueError):
    """An ISP that takes per-image PSFs (Isp.takes_psf) was given no PSF size."""


def isp_outputs(isp, image_size, psf_size, per_channel_noise=False):
    """(inputs, outputs dict) of `isp` on symbolic RAW inputs (alpha, sigma [B], or [B, 3] per_channel_noise)."""
    if isp.takes_psf and psf_size is None:
        raise PsfSizeError(f"psf_size must be given for an ISP that takes per-image PSFs; received {psf_size!r}")
    if not isinstance(per_channel_noise, bool):
        raise ValueError(f"per_channel_noise must be True or False; received {per_channel_noise!r}")
    inputs = _raw_inputs(image_size, psf_size if isp.takes_psf else None, per_channel_noise)
    outputs = isp(*(inputs[name] for name in ("raw", "alpha", "sigma", "psf") if name in inputs))
    return inputs, dict(outputs)


def check_size(value, name):
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(isinstance(v, int) and v > 0 for v in value):
        raise ValueError(f"{name} must be (height, width) of positive integers; received {value!r}")
    return tuple(value)


def takes_per_channel_noise(model):
    """Whether a model with inputs {"raw", "alpha", ...} takes alpha and sigma per colour ([B, 3]) or per image."""
    return len(model.input["alpha"].shape) == 2


def with_per_channel_noise(model, per_channel_noise=True):
    """`model` (a ComponentModel) itself when its alpha and sigma already have that shape, else the same model with
    the same weights rebuilt to take alpha and sigma [B, 3] (per_channel_noise=True) or [B]."""
    if takes_per_channel_noise(model) == per_channel_noise:
        return model
    if not isinstance(model, ComponentModel) or "per_channel_noise" not in model._settings():
        raise ValueError(f"model {model.name!r} cannot be rebuilt with per-colour noise inputs (not a component model)")
    config = {**model.get_config(), "per_channel_noise": per_channel_noise}
    rebuilt = type(model).from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


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
    image_size: (H, W) of the RAW frames; psf_size: (kh, kw) of per-image PSFs, for ISPs that take them;
    per_channel_noise: alpha and sigma [B, 3] (one per colour) instead of [B]."""

    COMPONENTS = ("isp",)

    def __init__(self, isp, image_size, psf_size=None, per_channel_noise=False, name="isp_model"):
        image_size, psf_size = check_size(image_size, "image_size"), check_size(psf_size, "psf_size")
        inputs, outputs = isp_outputs(isp, image_size, psf_size, per_channel_noise)
        super().__init__(inputs, outputs, name=name)
        self.isp, self.image_size, self.psf_size = isp, image_size, psf_size
        self.per_channel_noise = per_channel_noise

    def _settings(self):
        return {"image_size": self.image_size, "psf_size": self.psf_size, "per_channel_noise": self.per_channel_noise}
