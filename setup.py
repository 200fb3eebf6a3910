"""Installation of dirtypixels_tf: task-driven camera pipelines in TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

BASELINES = ["bm3d>=4.0", "colour-demosaicing>=0.2.6", "scikit-image>=0.22"]
RAW = ["rawpy>=0.21", "tifffile>=2024.1"]
PLOTS = ["matplotlib>=3.8"]
# The LiteRT runtime (export/tflite.py runs .tflite models with it where installed, else with tf.lite).
LITERT = ["ai-edge-litert>=2.0"]
# ONNX export (tf2onnx) and its parity report (ONNX Runtime).
ONNX = ["tf2onnx>=1.17", "onnx>=1.16", "onnxruntime>=1.18"]

setup(
    name="dirtypixels_tf",
    version="0.1.0",
    description="Task-driven camera pipelines: sensor simulation, Anscombe networks and joint ISP + classifier training",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["dirtypixels_tf", "dirtypixels_tf.*"]),
    # The named experiment configs ship inside the package: `dirtypixels train --config NAME` works from a wheel.
    package_data={"dirtypixels_tf": ["configs/*.yaml"]},
    # One TensorFlow wheel for every machine: on Linux the `tensorflow` wheel runs on the CPU as is and on
    # NVIDIA GPUs once the CUDA libraries are present, which the [gpu] extra installs (tensorflow[and-cuda]).
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.12",
        "numpy>=1.26",
        "scipy>=1.11",
        "pyyaml>=6.0",
        "tqdm>=4.66",
        "tensorboard>=2.21",
        # Serving: TF Serving's own gRPC stubs and config protos, pinned to TensorFlow's minor version.
        "tensorflow-serving-api>=2.21,<2.22",
        "grpcio>=1.60",
        "protobuf>=6.31",
        "pillow>=10.0",
        # The local server's REST front end: a maintained HTTP server (body limits, timeouts, chunked bodies, a real
        # listen backlog) that shares one asyncio event loop with grpc.aio.
        "aiohttp>=3.9",
    ],
    extras_require={
        "gpu": ["tensorflow[and-cuda]>=2.21,<2.22"],
        "raw": RAW,
        "baselines": BASELINES,
        "plots": PLOTS,
        "litert": LITERT,
        "onnx": ONNX,
        # Everything the tests exercise, the conventional baselines included (bm3d is free for non-commercial use).
        # h2: raw HTTP/2 for the hostile-client test and benchmark (gRPC messages cut short or stalled).
        "dev": RAW + PLOTS + BASELINES + LITERT + ONNX + ["pytest>=8", "pytest-timeout>=2.2", "ruff>=0.5", "h2>=4.1"],
    },
    entry_points={"console_scripts": ["dirtypixels=dirtypixels_tf.cli:main"]},
)
