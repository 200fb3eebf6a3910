"""The axes of an evaluation grid: light levels (rows) and PSFs (columns).

Conventions:
- A light level is a profile name of catalog.LIGHT_PROFILES ("3lux", "2to20lux": a range is sampled
  log-uniformly per image), a number of lux ("12", "12lux", "0.5": light level = lux / 2000, noise from the sensor
  preset), or "none": no noise at all (the RAW mosaic of the blurred clean image, clipped to [0, 1]); a model is
  then told alpha = NO_NOISE_ALPHA (1e-6: the GAT divides by alpha) and sigma = 0.
- A PSF is a spec of physics.optics.resolve_psf, the grammar `dirtypixels simulate` and the training configs take:
  "none", "center", "offaxis", "periphery" (the synthetic stand-in grid unless `grid` is given), "motion-L" (a
  random-walk PSF drawn with the evaluation seed, so the same one `dirtypixels simulate --seed` draws) or a
  .npy/.npz/.mat file.
"""

import dataclasses
import math
import re

from dirtypixels_tf.catalog import LIGHT_PROFILES, NO_NOISE, NO_PSF
from dirtypixels_tf.physics import noise, optics

NO_NOISE_ALPHA = 1e-6
NO_NOISE_SIGMA = 0.0
DEFAULT_LIGHT_LEVELS = ("3", "6", "12", "24", "48", "96", NO_NOISE)
DEFAULT_PSFS = (NO_PSF,)
_LUX = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(lux)?\s*$")


@dataclasses.dataclass(frozen=True)
class LightLevel:
    """One row: `label` as written in tables; light levels low..high (lux / 2000), both None for no noise."""

    label: str
    low: float | None
    high: float | None

    @property
    def noisy(self):
        return self.low is not None

    @property
    def lux(self):
        """The row's lux (the geometric mean of a range), or None without noise."""
        return None if self.low is None else noise.LUX_PER_LIGHT_LEVEL * math.sqrt(self.low * self.high)


def parse_light_level(spec):
    """A LightLevel from a profile name, a number of lux ("12", "12lux") or "none" (see the module docstring)."""
    text = str(spec).strip()
    if text == NO_NOISE:
        return LightLevel(NO_NOISE, None, None)
    if text in LIGHT_PROFILES:
        low, high = LIGHT_PROFILES[text]
        return LightLevel(text, low, high)
    match = _LUX.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(
            f"light level must be a profile ({', '.join(LIGHT_PROFILES)}), a positive number of lux (e.g. 12) "
            f"or '{NO_NOISE}'; received {spec!r}"
        )
    lux = float(match.group(1))
    level = noise.lux_to_light_level(lux)
    return LightLevel(f"{lux:g} lux", level, level)


def parse_psf(spec, grid=None, seed=0):
    """(label, PSF [kh, kw] or [kh, kw, C], or None for no blur) of a PSF spec (optics.resolve_psf; "motion-L" is
    drawn with `seed`)."""
    text = optics.check_psf_spec(spec)
    return text, optics.resolve_psf(text, seed=seed, grid=grid)
