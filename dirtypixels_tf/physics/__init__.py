"""The image formation model: sensor noise, Bayer mosaic, optics and the SensorModel that composes them; noise
and PSF calibration from real captures. Pure TensorFlow / NumPy functions (see each module's docstring).

    from dirtypixels_tf.physics import SensorModel
    raw, alpha, sigma = SensorModel("Nexus_6P_rear", light_levels="3lux").simulate(images, seed=[0, 0])
"""

from dirtypixels_tf._lazy import lazy_exports

_EXPORTS = {
    "SensorModel": "dirtypixels_tf.physics.sensor",
    "UnprocessSettings": "dirtypixels_tf.physics.unprocess",
    "NoiseTerms": "dirtypixels_tf.physics.noise",
    "add_sensor_noise": "dirtypixels_tf.physics.noise",
    "estimate_dark_noise": "dirtypixels_tf.physics.dark_noise",
    "estimate_frame_noise": "dirtypixels_tf.physics.noise_estimation",
    "CalibrationError": "dirtypixels_tf.physics.noise_estimation",
    "resolve_sensor": "dirtypixels_tf.physics.sensor_files",
    "NoisePreset": "dirtypixels_tf.physics.noise",
    "SENSOR_PRESETS": "dirtypixels_tf.catalog",
    "LIGHT_PROFILES": "dirtypixels_tf.catalog",
    "DEFAULT_PRESET": "dirtypixels_tf.catalog",
    "add_noise": "dirtypixels_tf.physics.noise",
    "stateless_poisson": "dirtypixels_tf.physics.poisson",
    "noise_at_lux": "dirtypixels_tf.physics.noise",
    "lux_to_light_level": "dirtypixels_tf.physics.noise",
    "light_level_to_lux": "dirtypixels_tf.physics.noise",
    "light_level_to_iso": "dirtypixels_tf.physics.noise",
    "light_level_for_noise": "dirtypixels_tf.physics.noise",
    "sample_light_levels": "dirtypixels_tf.physics.noise",
    "example_seed": "dirtypixels_tf.physics.noise",
    "RELEASE_PATTERN": "dirtypixels_tf.catalog",
    "mosaic_adjoint": "dirtypixels_tf.physics.mosaic",
    "bayer_masks": "dirtypixels_tf.physics.mosaic",
    "demosaic_bilinear": "dirtypixels_tf.physics.mosaic",
    "PsfGrid": "dirtypixels_tf.physics.optics",
    "PSF_NAMES": "dirtypixels_tf.catalog",
    "gaussian_psf": "dirtypixels_tf.physics.optics",
    "disk_psf": "dirtypixels_tf.physics.optics",
    "motion_psf": "dirtypixels_tf.physics.optics",
    "load_psf": "dirtypixels_tf.physics.optics",
    "get_psf": "dirtypixels_tf.physics.optics",
    "blur": "dirtypixels_tf.physics.optics",
    "spatially_varying_blur": "dirtypixels_tf.physics.optics",
    "fft_convolve": "dirtypixels_tf.physics.fourier",
    "SensorCalibration": "dirtypixels_tf.physics.sensor_files",
    "calibrate_sensor": "dirtypixels_tf.physics.noise_estimation",
    "estimate_noise": "dirtypixels_tf.physics.noise_estimation",
    "fit_iso_model": "dirtypixels_tf.physics.sensor_files",
    "load_sensor_preset": "dirtypixels_tf.physics.sensor_files",
    "save_sensor_preset": "dirtypixels_tf.physics.sensor_files",
    "darktable_to_preset": "dirtypixels_tf.physics.sensor_files",
    "estimate_psf": "dirtypixels_tf.physics.psf_estimation",
    "preset_from_darktable": "dirtypixels_tf.physics.darktable",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
