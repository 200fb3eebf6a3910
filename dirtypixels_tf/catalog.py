"""Every user-facing name and default, spelled once: sensor presets, light profiles, Bayer phases, PSF names, model
presets, SavedModel signatures. Plain data without TensorFlow, so the command line checks names before it imports
TensorFlow. Other modules import these names; none retypes them (tests/test_catalog.py fails on a copy).

Units: a sensor preset is (Poisson scale, Gaussian std) at ISO 100 in units of the [0, 1] pixel range
(physics/noise.py gives it meaning); a light level is lux / LUX_PER_LIGHT_LEVEL.
"""

import os

# Sensor presets: (poisson, gauss std) at ISO 100, from the original release's calibration.
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

# Light profiles: light-level ranges (low, high); a range is sampled log-uniformly per image.
LIGHT_PROFILES = {
    "3lux": (0.0015, 0.0015),
    "6lux": (0.003, 0.003),
    "2to20lux": (0.001, 0.010),
    "2to200lux": (0.001, 0.100),
}
DEFAULT_PROFILE = "3lux"
NO_NOISE = "none"  # the evaluation light level without noise (evaluation/axes.py)

# The real-capture front end (data/camera_raw.prepare_capture): white balance, exposure rule and noise source of a
# camera RAW file; "percentile98" is the release's exposure rule, "release" its phone's fixed noise values.
CAPTURE_AS_SHOT = "as_shot"  # white balance from the file's AsShotNeutral
CAPTURE_PERCENTILE = "percentile98"  # exposure: 1 / the 98th percentile, the release's rule
CAPTURE_METERING = "metering"  # exposure: the mean set to CAPTURE_METERING_TARGET
CAPTURE_NOISE_SENSOR = "sensor_at_iso"  # noise: the sensor calibration at the file's ISO
CAPTURE_NOISE_RELEASE = "release_phone"  # noise: the release's fixed values for its phone
CAPTURE_NOISE_ESTIMATE = "from_frame"  # noise: estimated from the frame itself
CAPTURE_WHITE_BALANCES = (CAPTURE_AS_SHOT, "none")
CAPTURE_EXPOSURES = (CAPTURE_PERCENTILE, CAPTURE_METERING, "none")
CAPTURE_NOISE_SOURCES = (CAPTURE_NOISE_SENSOR, CAPTURE_NOISE_RELEASE, CAPTURE_NOISE_ESTIMATE)
CAPTURED_DATA_PREFIX = "captured:"  # `evaluate --data captured:FOLDER`: labelled real captures
# The "metering" rule's target mean: ImageNet's mean pixel value (0.485, 0.456, 0.406 for R, G, B, the constants of
# keras.applications' "torch" mode), which frames simulated from such images keep (the sensor does not rescale them).
CAPTURE_METERING_TARGET = 0.449

# LiteRT export: float32, float16 weights, dynamic range (int8 weights), int8 head with a float ISP (export/tflite.py)
FLOAT16, INT8 = "float16", "int8"
TFLITE_QUANTIZE = ("none", FLOAT16, "dynamic", INT8)

# Bayer phases, named by the 2x2 top-left block read row by row (physics/mosaic.py); BGGR is the release's.
PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
RELEASE_PATTERN = "BGGR"

# PSFs: no blur, and Diamond et al. 2017's PSFs at three field positions (physics/optics.py).
NO_PSF = "none"
FIELD_PSFS = ("center", "offaxis", "periphery")
PSF_NAMES = (NO_PSF, *FIELD_PSFS)
MOTION_PSF_PREFIX = "motion-"  # "motion-L": a random-walk PSF of side 2L + 1
PSF_FILE_EXTENSIONS = (".npy", ".npz", ".mat")
PSF_GRAMMAR = (
    f"{', '.join(PSF_NAMES)}, {MOTION_PSF_PREFIX}L (a random-walk PSF of side 2L + 1, L an integer >= 1) or a "
    f"{'/'.join(PSF_FILE_EXTENSIONS)} file"
)

# Semantic segmentation: the label of pixels that count nowhere (Pascal VOC's object borders and "void"), in label
# maps, losses and metrics.
IGNORE_LABEL = 255

# Model presets (models/presets.py holds their specifications and counts, in this order).
MODEL_PRESETS = (
    "joint_mobilenet_v1_128",
    "joint_packed_mobilenet_v1_128",
    "joint_mobilenet_v1_128_no_anscombe",
    "mobilenet_v1_128",
    "raw_mobilenet_v1_128",
    "raw_mobilenet_v2_140_128",
    "chen_unet_mobilenet_v1_128",
    "chen_unet_anscombe_mobilenet_v1_128",
    "joint_inception_v4_shrinkage_299",
    "joint_inception_v4_shrinkage_deblur_299",
    "liu_vgg16",
    "nidf",
    "liu_deeplab_largefov_321",
    "liu_mobilenet_v1_aspp_64",
)

# SavedModel signatures (export/savedmodel.py describes each) and TF Serving's method name of the Classify API.
SERVING_SIGNATURE = "serving_default"
UINT16_SIGNATURE = "raw_uint16"
CLASSIFY_SIGNATURE = "classify"
ISP_SIGNATURE = "isp"
SIGNATURES = (SERVING_SIGNATURE, UINT16_SIGNATURE, CLASSIFY_SIGNATURE, ISP_SIGNATURE)
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"


def check_sensor_spec(spec):
    """`spec` as a str if it names a sensor: a name of SENSOR_PRESETS or the path of an existing file (a calibrated
    sensor.yaml; physics/sensor_files.py resolves both); else ValueError listing the presets."""
    text = os.fspath(spec) if isinstance(spec, (str, os.PathLike)) else None
    if text is not None and (text in SENSOR_PRESETS or os.path.isfile(text)):
        return text
    raise ValueError(f"sensor must be one of {', '.join(SENSOR_PRESETS)} or an existing sensor.yaml; received {spec!r}")


# The largest image or .npy frame `dirtypixels classify` reads, in pixels (checked from the file's header).
DEFAULT_MAX_PIXELS = 64_000_000
