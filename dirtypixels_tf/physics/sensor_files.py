"""Sensor preset files (sensor.yaml): the NoisePreset at ISO 100, the Bayer phase and the measurements behind them.

Per-ISO presets: under the package's linear ISO model alpha = poisson ISO / 100 and sigma = gauss ISO / 100,
`fit_iso_model` takes poisson and gauss as the means of alpha * 100 / ISO and sigma * 100 / ISO over the ISOs
(least squares on the relative error, each ISO weighted equally).

Sensor preset file (YAML, `save_sensor_preset` / `load_sensor_preset`), keys:
    poisson, gauss   the NoisePreset at ISO 100, [0, 1] units (required)
    pattern          the Bayer phase the calibration's mosaics had and simulations should use (required)
    iso_table        list of {iso, alpha, sigma}: the measurements behind the preset (optional)
    source           free text: where the numbers come from (optional)
    tukey_lambda, row_noise, black_level_bias, bit_depth
                     the extended low-light terms (physics/noise.py NoiseTerms; optional, absent = off): read-noise
                     shape, row-noise std relative to sigma, 4 Bayer-position offsets, ADC bits

`resolve_sensor` is the one place a sensor spec (a preset name or a sensor.yaml path) is interpreted: simulate,
evaluate, training, export, classify and SensorModel take the complete SensorCalibration it returns.

Presets come from `noise_estimation.calibrate_sensor` (RAW captures), `dark_noise.estimate_dark_noise` (the
extended terms) or `darktable_to_preset` (darktable's profiles).
"""

import dataclasses
import os

import numpy as np
import yaml

from dirtypixels_tf.catalog import RELEASE_PATTERN, SENSOR_PRESETS, check_sensor_spec
from dirtypixels_tf.physics.mosaic import check_pattern
from dirtypixels_tf.physics.noise import NoisePreset, NoiseTerms, get_noise_preset
from dirtypixels_tf.physics.validation import check_positive_number

TERM_KEYS = ("tukey_lambda", "row_noise", "black_level_bias", "bit_depth")
PRESET_KEYS = ("poisson", "gauss", "pattern", "iso_table", "source") + TERM_KEYS


@dataclasses.dataclass(frozen=True)
class SensorCalibration:
    """A sensor preset: the NoisePreset at ISO 100, the Bayer phase, the per-ISO (iso, alpha, sigma) measurements,
    a free-text source and the extended noise terms (the content of a sensor.yaml; see the module docstring)."""

    preset: NoisePreset
    pattern: str = RELEASE_PATTERN
    iso_table: tuple = ()
    source: str = ""
    terms: NoiseTerms = NoiseTerms()


def resolve_sensor(spec):
    """The complete SensorCalibration of a sensor spec: a preset name (catalog.SENSOR_PRESETS: its noise, the
    release's Bayer phase, no extended terms), the path of a calibrated sensor.yaml (`load_sensor_preset`: all of
    it), a NoisePreset (with the release's phase) or a SensorCalibration (returned as it is)."""
    if isinstance(spec, SensorCalibration):
        return spec
    if isinstance(spec, NoisePreset):
        return SensorCalibration(preset=spec)
    name = check_sensor_spec(spec)
    if name in SENSOR_PRESETS:
        return SensorCalibration(preset=get_noise_preset(name), source=f"sensor preset {name}")
    return load_sensor_preset(name)


def check_iso(iso):
    """float(iso) for a finite number > 0, else ValueError naming the received value."""
    try:
        return check_positive_number(iso, "iso")
    except ValueError:
        raise ValueError(f"iso must be a number > 0; received {iso!r}") from None


def fit_iso_model(iso_table):
    """The NoisePreset (ISO 100) of the linear ISO model fitted to [(iso, alpha, sigma), ...] (module docstring)."""
    rows = [(check_iso(iso), float(alpha), float(sigma)) for iso, alpha, sigma in iso_table]
    if not rows:
        raise ValueError("iso_table must hold at least one (iso, alpha, sigma); received none")
    poisson = float(np.mean([alpha * 100.0 / iso for iso, alpha, _ in rows]))
    gauss = float(np.mean([sigma * 100.0 / iso for iso, _, sigma in rows]))
    return NoisePreset(poisson=poisson, gauss=gauss)


def save_sensor_preset(path, calibration):
    """Write a SensorCalibration as YAML (keys in the module docstring); returns the path."""
    if not isinstance(calibration, SensorCalibration):
        raise ValueError(f"calibration must be a SensorCalibration; received {type(calibration).__name__}")
    content = {
        "poisson": float(calibration.preset.poisson),
        "gauss": float(calibration.preset.gauss),
        "pattern": calibration.pattern,
        "iso_table": [
            {"iso": float(iso), "alpha": float(alpha), "sigma": float(sigma)}
            for iso, alpha, sigma in calibration.iso_table
        ],
        "source": calibration.source,
    }
    terms = calibration.terms
    if terms.tukey_lambda is not None:
        content["tukey_lambda"] = terms.tukey_lambda
    if terms.row_noise > 0:
        content["row_noise"] = terms.row_noise
    if any(terms.black_level_bias):
        content["black_level_bias"] = list(terms.black_level_bias)
    if terms.bit_depth is not None:
        content["bit_depth"] = terms.bit_depth
    header = (
        "# dirtypixels_tf sensor preset: Poisson-Gaussian noise at ISO 100 in [0, 1] units;\n"
        "# alpha = poisson * ISO / 100, sigma = gauss * ISO / 100 (physics/sensor_files.py).\n"
    )
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(header)
        yaml.safe_dump(content, handle, sort_keys=False, width=1000)
    return path


def load_sensor_preset(path):
    """Read a sensor.yaml into a SensorCalibration; use `.preset` and `.pattern` with SensorModel.

    Unknown or missing keys and bad values raise ValueError naming the file and the key.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path must be an existing sensor preset file; received {path!r} (not found)")
    try:
        with open(path, encoding="utf-8") as handle:
            content = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise ValueError(f"path {path!r} is not valid YAML: {error}") from None
    if not isinstance(content, dict):
        raise ValueError(f"path {path!r} must hold a mapping with keys {', '.join(PRESET_KEYS)}; received {content!r}")
    unknown = sorted(set(content) - set(PRESET_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; the keys are {', '.join(PRESET_KEYS)}")
    missing = [key for key in ("poisson", "gauss", "pattern") if key not in content]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}")
    try:
        preset = NoisePreset(poisson=float(content["poisson"]), gauss=float(content["gauss"]))
        pattern = check_pattern(content["pattern"])
        rows = content.get("iso_table") or []
        table = tuple((check_iso(row["iso"]), float(row["alpha"]), float(row["sigma"])) for row in rows)
        terms = NoiseTerms(**{key: content[key] for key in TERM_KEYS if content.get(key) is not None})
    except (TypeError, KeyError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
    source = str(content.get("source", ""))
    return SensorCalibration(preset=preset, pattern=pattern, iso_table=table, source=source, terms=terms)


def darktable_to_preset(maker, model, isos=None, pattern=RELEASE_PATTERN, path=None):
    """A SensorCalibration from darktable's profiles of one camera (see physics/darktable.py for the conversion).

    isos: None uses every measured ISO; a list uses those ISOs (interpolated as darktable does). The preset is the
    linear ISO model fitted to them, as `calibrate_sensor` does; darktable does not record the Bayer phase, so
    `pattern` is the phase to simulate with.
    """
    from dirtypixels_tf.physics import darktable

    profiles = darktable.find_camera(maker, model, path)
    if isos is None:
        table = tuple((p.iso, p.alpha, p.sigma) for p in profiles)
    else:
        table = tuple((float(iso), *darktable.noise_at_iso(maker, model, iso, path)) for iso in isos)
    if not table:
        raise ValueError(f"isos must name at least one ISO; received {isos!r}")
    source = f"darktable noise profiles: {profiles[0].maker} {profiles[0].model}"
    return SensorCalibration(
        preset=fit_iso_model(table), pattern=check_pattern(pattern), iso_table=table, source=source
    )
