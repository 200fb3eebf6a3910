"""Real cameras' noise from darktable's `noiseprofiles.json`, converted to the package's NoisePreset.

darktable measures, per camera model and ISO, variance = a * x + b for each colour channel (R, G, B), x the raw value
in [0, 1]: `a` is the Poisson scale (alpha) and `b` the Gaussian variance (sigma^2) at that ISO. The file is not
shipped (it is GPL-3+): it is read from /usr/share/darktable/noiseprofiles.json, DIRTYPIXELS_DARKTABLE_PROFILES or a
given path.

Conversions (darktable's own rules where it has one: `common/noiseprofiles.c` and its profiled-denoise modules):
- Entries marked `"skip": true` (failed fits kept for the record) are ignored, as darktable ignores them.
- Several profiles for one ISO of one camera: `a` and `b` are averaged per channel, with a warning naming them.
- One (alpha, sigma) per image: a profile gives the mean of its three channels' `a` and of their `b`.
- Between measured ISOs, `a` and `b` (the variance, not sigma) are interpolated linearly in ISO; outside the range
  the nearest profile is kept, with a warning.
- Negative `b` (a fit artefact where read noise is tiny): the variance is floored at 0, sigma = sqrt(max(b, 0))
  after interpolation.
- To the ISO-100 preset: poisson = alpha * 100 / ISO, gauss = sigma * 100 / ISO.
Caveat: darktable measures noise after its white balance, not on the RAW data; treat these profiles as a plausible
range of real cameras' noise and calibrate from captures (`dirtypixels calibrate noise`) where the RAW noise itself
matters. The file's counts and the evidence: docs/cameras.md, "darktable's noise profiles".
"""

import dataclasses
import functools
import json
import os
import warnings

import numpy as np

from dirtypixels_tf.physics.noise import NoisePreset
from dirtypixels_tf.physics.validation import check_positive_number

DEFAULT_PATHS = ("/usr/share/darktable/noiseprofiles.json",)
ENV_PATH = "DIRTYPIXELS_DARKTABLE_PROFILES"


@dataclasses.dataclass(frozen=True)
class DarktableProfile:
    """One camera's profile at `iso`: per-channel (R, G, B) Poisson scale `a` and Gaussian variance `b` (the mean
    of `merged` duplicate entries of the file when it has more than one for this ISO)."""

    maker: str
    model: str
    iso: float
    a: tuple
    b: tuple
    merged: int = 1

    @property
    def alpha(self):
        return float(np.mean(self.a))

    @property
    def sigma(self):
        return _sigma(float(np.mean(self.b)))


def _sigma(variance):
    """sigma from the variance b at x = 0, floored at 0 (see the module docstring)."""
    return float(np.sqrt(max(variance, 0.0)))


def _resolve(maker, model, entries):
    """One DarktableProfile per ISO from a model's entries: "skip" entries dropped, duplicates averaged."""
    by_iso = {}
    for entry in entries:
        if entry.get("skip"):
            continue
        by_iso.setdefault(float(entry["iso"]), []).append(entry)
    return [
        DarktableProfile(
            maker,
            model,
            iso,
            tuple(np.mean([e["a"] for e in group], axis=0).tolist()),
            tuple(np.mean([e["b"] for e in group], axis=0).tolist()),
            merged=len(group),
        )
        for iso, group in sorted(by_iso.items())
    ]


def default_profiles_path():
    """The first existing of $DIRTYPIXELS_DARKTABLE_PROFILES and the darktable install path, or None."""
    candidates = ([os.environ[ENV_PATH]] if os.environ.get(ENV_PATH) else []) + list(DEFAULT_PATHS)
    return next((path for path in candidates if os.path.isfile(path)), None)


@functools.lru_cache(maxsize=4)
def load_profiles(path=None):
    """All profiles of a noiseprofiles.json: {(maker, model): [DarktableProfile sorted by ISO, one per ISO]}
    ("skip" entries dropped, duplicates averaged; cameras with no profile left are omitted)."""
    path = path or default_profiles_path()
    if path is None or not os.path.isfile(path):
        raise FileNotFoundError(
            f"path must name darktable's noiseprofiles.json; received {path!r} (install darktable, or set {ENV_PATH})"
        )
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        table = {}
        for maker in data["noiseprofiles"]:
            for model in maker["models"]:
                profiles = _resolve(maker["maker"], model["model"], model["profiles"])
                if profiles:
                    table[(maker["maker"], model["model"])] = profiles
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"path {path!r} is not a darktable noiseprofiles.json: {error!r}") from None
    return table


def find_camera(maker, model, path=None):
    """The profiles of one camera; maker and model match case-insensitively (e.g. "Canon", "EOS 30D")."""
    table = load_profiles(path)
    for (known_maker, known_model), profiles in table.items():
        if known_maker.lower() == str(maker).lower() and known_model.lower() == str(model).lower():
            merged = [f"{p.iso:g} ({p.merged})" for p in profiles if p.merged > 1]
            if merged:
                warnings.warn(
                    f"darktable lists more than one profile of {known_maker} {known_model} at ISO "
                    f"{', '.join(merged)} (count in brackets); their a and b are averaged",
                    stacklevel=2,
                )
            return profiles
    models = sorted(m for k, m in table if k.lower() == str(maker).lower())
    if not models:
        makers = sorted({k for k, _ in table})
        raise ValueError(f"maker must be one of {', '.join(makers)}; received {maker!r}")
    raise ValueError(f"model must be one of {maker}'s {len(models)} models ({', '.join(models)}); received {model!r}")


def noise_at_iso(maker, model, iso, path=None):
    """(alpha, sigma) of a camera at `iso`: a and b interpolated linearly between measured ISOs, the nearest
    profile kept outside the measured range (with a warning); see the module conventions."""
    iso = check_positive_number(iso, "iso")
    profiles = find_camera(maker, model, path)
    isos = np.array([p.iso for p in profiles])
    if iso < isos[0] or iso > isos[-1]:
        warnings.warn(
            f"iso {iso:g} is outside the ISOs darktable measured for {profiles[0].maker} {profiles[0].model} "
            f"({isos[0]:g} to {isos[-1]:g}): the profile at ISO {isos[0] if iso < isos[0] else isos[-1]:g} is "
            "used as is, as darktable does",
            stacklevel=2,
        )
    alpha = float(np.interp(iso, isos, [p.alpha for p in profiles]))
    variance = float(np.interp(iso, isos, [float(np.mean(p.b)) for p in profiles]))
    return alpha, _sigma(variance)


def preset_from_darktable(maker, model, iso, path=None):
    """The NoisePreset (at ISO 100, linear ISO model) equivalent to a camera's profile at `iso`."""
    alpha, sigma = noise_at_iso(maker, model, iso, path)
    return NoisePreset(poisson=alpha * 100.0 / iso, gauss=sigma * 100.0 / iso)
