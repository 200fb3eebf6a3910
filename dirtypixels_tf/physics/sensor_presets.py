"""The release's sensor calibrations and light profiles as plain data (no TensorFlow, so the command line can
check a name before it imports TensorFlow). noise.py gives them meaning (NoisePreset, the linear ISO model).

Units: (Poisson scale, Gaussian std) at ISO 100 in units of the [0, 1] pixel range; light level = lux / 2000.
"""

# (poisson, gauss std) at ISO 100, from the original release's calibration.
SENSOR_PRESETS = {
    "Nexus_6P_rear": (0.00018724, 0.0004733),
    "Nexus_6P_front": (0.00015, 0.0003875),
    "SEMCO": (0.000388, 0.0025),
    "OV2740": (0.000088021, 0.00022673),
    "Pixel": (0.0153, 0.0328),
    "Pixel3x3": (2.2682e-4, 0.0017),
    "Pixel5x5": (1.2361e-4, 0.0043),
    "Pixel7x7": (7.3344e-05, 0.0077),
    "GAUSS": (0.0, 1.0),
    "POISSON": (1.0, 0.0),
}
DEFAULT_PRESET = "Nexus_6P_rear"

LUX_PER_LIGHT_LEVEL = 2000.0

# Light-level ranges (low, high); a range is sampled log-uniformly per image.
LIGHT_PROFILES = {
    "3lux": (0.0015, 0.0015),
    "6lux": (0.003, 0.003),
    "2to20lux": (0.001, 0.010),
    "2to200lux": (0.001, 0.100),
}
