"""Accuracy over a grid of light levels x PSFs (seed 000 Table 1), with PSNR and SSIM of the intermediate image.

    table = evaluate(model_or_predictor, source, light_levels=("3", "6", "12", "none"), psfs=("none", "periphery"))
    table.save("out/")   # evaluation.csv, evaluation.md, evaluation.json, accuracy.png

Conventions:
- Rows are light levels: a profile name of physics.noise.LIGHT_PROFILES ("3lux", "2to20lux": a range is sampled
  log-uniformly per image), a number of lux ("12", "12lux", "0.5": light level = lux / 2000, noise from the sensor
  preset), or "none": no noise at all (the RAW mosaic of the blurred clean image, clipped to [0, 1]); a model is
  then told alpha = NO_NOISE_ALPHA (1e-6: the GAT divides by alpha) and sigma = 0. Columns are PSFs: "none",
  "center", "offaxis", "periphery" (physics.optics.get_psf, the synthetic stand-in grid unless `psf_grid` is
  given) or a .npy/.npz/.mat PSF file.
- Every cell simulates the same examples with the same seeds: example i gets example_seed(seed, i) (data.pipeline,
  evaluation preprocessing = central crop + resize), so repeated runs give identical tables bit for bit and cells
  differ only by light level and PSF (common random numbers). The inputs do not depend on the batch size; the
  model's float rounding may (another batch size can move PSNR in the 6th decimal).
- A model that takes a per-image PSF input gets the cell's PSF, zero-padded around its centre to the model's PSF
  size (a delta for "none").
- Top-k accuracies (metrics.top_k_correct) need a "logits" output; PSNR and SSIM (metrics.psnr / metrics.ssim,
  peak 1, the estimate clipped to [0, 1], averaged per image) compare the intermediate image (the model's "image"
  output, or a SavedModel's "isp" signature, or a conventional ISP's output) with the SHARP clean image: the
  preprocessed image before optics, mosaic and noise; "bayer" (metrics.bayer_artifact_ratio) is the image's
  luminance energy at the Bayer frequencies over the clean images' (a checkerboard shows well above 1). A metric a
  model cannot give is None.

Models are wrapped as Predictors: a callable features -> {"logits", "image"} (each [B, ...] NumPy or None) with
the RAW frame size it takes. `load_predictor` opens a training run directory (RUN_DIR/model.keras), a .keras file,
a SavedModel (a version directory, or a base path whose highest numbered version is used) or a model preset name
(random weights); `ConventionalIspPredictor` runs a conventional ISP (baselines.py) and optionally a classifier
head on its output ("ISP + pretrained head", or a head fine-tuned on that ISP's output).
"""

import abc
import csv
import dataclasses
import io
import json
import math
import os
import re

import numpy as np
import tensorflow as tf

from dirtypixels_tf.data import pipeline, preprocessing
from dirtypixels_tf.evaluation import metrics
from dirtypixels_tf.evaluation.baselines import ConventionalIsp
from dirtypixels_tf.models.loading import load_model
from dirtypixels_tf.physics import mosaic, noise, optics
from dirtypixels_tf.physics.sensor import SensorModel
from dirtypixels_tf.physics.validation import check_int

NO_NOISE = "none"
NO_NOISE_ALPHA = 1e-6
NO_NOISE_SIGMA = 0.0
DEFAULT_LIGHT_LEVELS = ("3", "6", "12", "24", "48", "96", NO_NOISE)
DEFAULT_PSFS = ("none",)
METRICS = ("top1", "top5", "psnr", "ssim", "bayer")
METRIC_TITLES = {
    "top1": "Top-1 accuracy (%)",
    "top5": "Top-5 accuracy (%)",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "bayer": "Bayer-period luminance energy / the clean image's",
}
PSF_TITLES = {"none": "No blur", "center": "Center PSF", "offaxis": "Offaxis PSF", "periphery": "Periphery PSF"}
PARAMS_FILE = "params.yaml"
_LUX = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(lux)?\s*$")


# ---------------------------------------------------------------------------------------------------------------
# Grid axes


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
    if text in noise.LIGHT_PROFILES:
        low, high = noise.LIGHT_PROFILES[text]
        return LightLevel(text, low, high)
    match = _LUX.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(
            f"light level must be a profile ({', '.join(noise.LIGHT_PROFILES)}), a positive number of lux (e.g. 12) "
            f"or '{NO_NOISE}'; received {spec!r}"
        )
    lux = float(match.group(1))
    level = noise.lux_to_light_level(lux)
    return LightLevel(f"{lux:g} lux", level, level)


def parse_psf(spec, grid=None):
    """(label, PSF [kh, kw, C] or None) for a PSF name (optics.PSF_NAMES) or a .npy/.npz/.mat file."""
    text = str(spec).strip()
    if text in optics.PSF_NAMES:
        return text, optics.get_psf(text, grid)
    if os.path.splitext(text)[1].lower() in (".npy", ".npz", ".mat"):
        return text, optics.load_psf(text)
    raise ValueError(f"psf must be one of {', '.join(optics.PSF_NAMES)} or a .npy/.npz/.mat file; received {spec!r}")


# ---------------------------------------------------------------------------------------------------------------
# Predictors


class Predictor(abc.ABC):
    """Base of the wrappers: `image_size` (H, W) of the RAW frames it takes (None: any), `class_names` (or None),
    `description`, and __call__(features, psf) -> {"logits": [B, C] or None, "image": [B, H, W, 3] or None}.
    features: "raw" [B, H, W, 1], "alpha", "sigma" [B] (NumPy); psf: the cell's PSF [kh, kw, C] or None."""

    image_size = None
    class_names = None
    description = "predictor"

    @abc.abstractmethod
    def __call__(self, features, psf):
        """{"logits", "image"} of one batch of features under the PSF `psf`."""


def _numpy(value):
    return None if value is None else np.asarray(value)


def _pad_psf(psf, size):
    """A PSF [kh, kw, 3] (None = a delta) zero-padded around its centre to `size` (kh', kw') >= its own."""
    psf = np.ones((1, 1, 3), np.float32) if psf is None else np.asarray(psf, np.float32)
    if psf.ndim == 2:
        psf = np.repeat(psf[..., np.newaxis], 3, axis=-1)
    kh, kw = psf.shape[:2]
    if kh > size[0] or kw > size[1]:
        raise ValueError(f"the model takes PSFs of size {size[0]}x{size[1]}; received a {kh}x{kw} PSF")
    top, left = size[0] // 2 - kh // 2, size[1] // 2 - kw // 2
    padded = np.zeros((*size, psf.shape[-1]), np.float32)
    padded[top : top + kh, left : left + kw] = psf
    return padded


class KerasPredictor(Predictor):
    """A Keras model with inputs {"raw", "alpha", "sigma"[, "psf"]} and outputs {"logits", "image", ...}, a plain
    ISP model (output = the image), or a model whose outputs lack one of them (that metric is None)."""

    def __init__(self, model, description=None, class_names=None):
        import keras

        if not isinstance(model, keras.Model):
            raise ValueError(f"model must be a keras.Model; received {type(model).__name__}")
        try:
            model_input = model.input
        except (AttributeError, ValueError):  # a subclassed model never called has no input
            raise ValueError(f"model {model.name!r} must be a functional model with named inputs") from None
        inputs = model_input if isinstance(model_input, dict) else {}
        if not {"raw", "alpha", "sigma"} <= set(inputs):
            received = sorted(inputs) if inputs else [t.name for t in model.inputs]
            hint = " (a head alone: wrap it in ConventionalIspPredictor with a conventional ISP)" if inputs else ""
            raise ValueError(f"model must take the inputs raw, alpha and sigma; received inputs {received}{hint}")
        self.image_size = _model_image_size(model)
        self.psf_size = tuple(int(v) for v in inputs["psf"].shape[1:3]) if "psf" in inputs else None
        self.model = model
        self.class_names = class_names
        self.description = description or f"keras model {model.name}"
        self._predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self, features, psf):
        inputs = {key: tf.constant(features[key]) for key in ("raw", "alpha", "sigma")}
        if self.psf_size is not None:
            padded = _pad_psf(psf, self.psf_size)
            inputs["psf"] = tf.constant(np.broadcast_to(padded, (len(features["raw"]), *padded.shape)))
        outputs = self._predict(inputs)
        outputs = outputs if isinstance(outputs, dict) else {"image": outputs}
        return {"logits": _numpy(outputs.get("logits")), "image": _numpy(outputs.get("image"))}


def find_savedmodel(path):
    """The SavedModel directory of `path`: itself if it holds saved_model.pb, else its highest numbered version
    subdirectory that does (a TF Serving base path); None if neither."""
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    if not os.path.isdir(path):
        return None
    versions = [
        int(name)
        for name in os.listdir(path)
        if name.isdigit() and os.path.isfile(os.path.join(path, name, "saved_model.pb"))
    ]
    return os.path.join(path, str(max(versions))) if versions else None


class SavedModelPredictor(Predictor):
    """A SavedModel exported by dirtypixels_tf.export: signature "serving_default" (raw, alpha, sigma -> "logits"
    or, for an ISP alone, "image") and, when present, "isp" (-> "image")."""

    def __init__(self, path):
        directory = find_savedmodel(path)
        if directory is None:
            raise ValueError(f"path must be a SavedModel directory (or a base path of versions); received {path!r}")
        self.loaded = tf.saved_model.load(directory)
        signatures = self.loaded.signatures
        if "serving_default" not in signatures:
            raise ValueError(f"SavedModel {directory!r} has no serving_default signature; it has {list(signatures)}")
        self.serving = signatures["serving_default"]
        self.isp = signatures.get("isp")
        self.metadata = {}
        specs = self.serving.structured_input_signature[1]
        if not {"raw", "alpha", "sigma"} <= set(specs):
            raise ValueError(
                f"SavedModel {directory!r}: serving_default must take raw, alpha and sigma; it takes {sorted(specs)}"
            )
        shape = tuple(specs["raw"].shape)
        self.image_size = None if None in shape[1:3] else tuple(int(v) for v in shape[1:3])
        metadata_file = os.path.join(directory, "assets.extra", "dirtypixels.json")
        if os.path.isfile(metadata_file):
            with open(metadata_file, encoding="utf-8") as file:
                self.metadata = json.load(file)
            self.class_names = self.metadata.get("class_names")
        self.description = f"SavedModel {directory}"

    def __call__(self, features, psf):
        inputs = {key: tf.constant(features[key], tf.float32) for key in ("raw", "alpha", "sigma")}
        outputs = self.serving(**inputs)
        image = outputs.get("image")
        if image is None and self.isp is not None:
            image = self.isp(**inputs)["image"]
        return {"logits": _numpy(outputs.get("logits")), "image": _numpy(image)}


def head_function(model):
    """images [B, H, W, 3] in [0, 1] -> logits, through the classifier head of `model`: a joint model
    (models/joint.py: its "head_preprocessing" layer and the head after it) or a head-alone model with the single
    input "clean" (training/models.py). Raises ValueError for a model without a head."""
    inputs = model.input if isinstance(model.input, dict) else {}
    if set(inputs) == {"clean"}:
        predict = tf.function(lambda images: model({"clean": images}, training=False)["logits"], reduce_retracing=True)
        return lambda images: predict(tf.constant(images, tf.float32)).numpy()
    names = [layer.name for layer in model.layers]
    if "head_preprocessing" not in names:
        raise ValueError(f"model {model.name!r} has no classifier head (no 'head_preprocessing' layer); layers {names}")
    skip = {"head_preprocessing", "isp", *inputs}
    heads = [layer for layer in model.layers if layer.name not in skip and not layer.name.startswith("input")]
    if len(heads) != 1:
        raise ValueError(f"model {model.name!r}: expected one head layer after head_preprocessing; found {heads}")
    preprocess, head = model.get_layer("head_preprocessing"), heads[0]
    predict = tf.function(lambda images: head(preprocess(images), training=False), reduce_retracing=True)
    return lambda images: predict(tf.constant(images, tf.float32)).numpy()


def _model_image_size(model):
    """(H, W) of a model's "raw" or "clean" input (else its first input), or None if not fixed."""
    inputs = model.input if isinstance(model.input, dict) else {}
    tensor = inputs.get("raw", inputs.get("clean")) if inputs else model.inputs[0]
    shape = tuple(tensor.shape)
    return None if len(shape) != 4 or None in shape[1:3] else (int(shape[1]), int(shape[2]))


class ConventionalIspPredictor(Predictor):
    """A conventional ISP (baselines.ConventionalIsp) and, optionally, a classifier `head` on its output: a Keras
    model (see `head_function`) or a callable images [B, H, W, 3] in [0, 1] -> logits. Without a head only PSNR
    and SSIM are measured. The ISP gets the cell's PSF (for its deconvolution stage)."""

    def __init__(self, isp, head=None, image_size=None, class_names=None, description=None):
        import keras

        if not isinstance(isp, ConventionalIsp):
            raise ValueError(f"isp must be a ConventionalIsp (baselines.get_pipeline); received {type(isp).__name__}")
        self.isp = isp
        self.head = head_function(head) if isinstance(head, keras.Model) else head
        if head is not None and not callable(self.head):
            raise ValueError(f"head must be a Keras model or a callable; received {type(head).__name__}")
        if image_size is None and isinstance(head, keras.Model):
            image_size = _model_image_size(head)
        self.image_size = None if image_size is None else preprocessing.check_image_size(image_size)
        self.class_names = class_names
        head_name = "" if head is None else f" + head of {getattr(head, 'name', 'a function')}"
        self.description = description or f"conventional ISP {isp.name or isp}{head_name}"

    def __call__(self, features, psf):
        images = self.isp.process_batch(features["raw"], features["alpha"], features["sigma"], psf)
        logits = None if self.head is None else _numpy(self.head(images))
        return {"logits": logits, "image": images}


class FunctionPredictor(Predictor):
    """Any function (features, psf) -> {"logits", "image"} (missing keys = None), for a fixed `image_size` or any."""

    def __init__(self, function, image_size=None, class_names=None, description="function"):
        if not callable(function):
            raise ValueError(f"function must be callable; received {type(function).__name__}")
        self.function = function
        self.image_size = None if image_size is None else preprocessing.check_image_size(image_size)
        self.class_names = class_names
        self.description = description

    def __call__(self, features, psf):
        outputs = self.function(features, psf)
        return {"logits": _numpy(outputs.get("logits")), "image": _numpy(outputs.get("image"))}


def load_predictor(source, num_classes=None):
    """A Predictor for a SavedModel directory (or base path), a run directory, a .keras file or a preset name.
    `num_classes` sets a preset's number of classes (its own otherwise)."""
    if isinstance(source, Predictor):
        return source
    if hasattr(source, "predict") and hasattr(source, "input"):
        return KerasPredictor(source)
    is_preset = isinstance(source, str) and not os.path.exists(source) and not source.endswith(".keras")
    if num_classes is not None and not is_preset:
        raise ValueError(f"num_classes applies to preset names only; received {num_classes} with {source!r}")
    if isinstance(source, (str, os.PathLike)) and find_savedmodel(source) is not None:
        return SavedModelPredictor(source)
    description = f"preset {source} (random weights)" if is_preset else os.fspath(source)
    return KerasPredictor(load_model(source, num_classes), description)


def as_predictor(model):
    """A Predictor from a Predictor, a keras.Model, a path or preset name, or a function (features, psf) -> dict."""
    if isinstance(model, (Predictor, str, os.PathLike)) or hasattr(model, "input"):
        return load_predictor(model)
    if callable(model):
        return FunctionPredictor(model)
    raise ValueError(
        f"model must be a Predictor, a keras.Model, a path, a preset name or a function; received {model!r}"
    )


# ---------------------------------------------------------------------------------------------------------------
# The table


@dataclasses.dataclass
class EvaluationTable:
    """Results per (light level label, PSF label): {"top1", "top5", "psnr", "ssim", "bayer" (float or None),
    "examples"}.

    rows and columns keep the order they were asked in; `lux` maps each row label to its lux (None without noise);
    metadata records how the table was made (model, data, seed, sensor, conventions).
    """

    rows: tuple
    columns: tuple
    cells: dict
    lux: dict
    metadata: dict

    def value(self, row, column, metric):
        return self.cells[(row, column)][metric]

    def available(self):
        """The metrics that at least one cell has."""
        return [m for m in METRICS if any(cell[m] is not None for cell in self.cells.values())]

    def to_csv(self):
        """CSV text, one line per cell: light_level, lux, psf, examples, top1, top5, psnr, ssim, bayer (full precision;
        accuracies as fractions; empty for a metric the model does not give)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["light_level", "lux", "psf", "examples", *METRICS])
        for row in self.rows:
            for column in self.columns:
                cell = self.cells[(row, column)]
                lux = "" if self.lux[row] is None else repr(self.lux[row])
                values = ["" if cell[m] is None else repr(cell[m]) for m in METRICS]
                writer.writerow([row, lux, column, cell["examples"], *values])
        return buffer.getvalue()

    def to_markdown(self):
        """One table per available metric in seed 000 Table 1's layout: rows = light levels, columns = PSFs."""
        lines = [
            f"Model: {self.metadata.get('model', '?')}. Data: {self.metadata.get('data', '?')}, "
            f"{self.metadata.get('examples', '?')} examples per cell."
        ]
        for metric in self.available():
            lines += ["", f"### {METRIC_TITLES[metric]}", ""]
            header = ["Light level"] + [PSF_TITLES.get(c, c) for c in self.columns]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("| " + " | ".join(["---"] + ["---:"] * len(self.columns)) + " |")
            for row in self.rows:
                label = "No noise" if row == NO_NOISE else row
                values = [_format(metric, self.cells[(row, c)][metric]) for c in self.columns]
                lines.append("| " + " | ".join([label] + values) + " |")
        notes = self.metadata.get("notes")
        if notes:
            lines += ["", *notes]
        return "\n".join(lines) + "\n"

    def to_dict(self):
        return {
            "rows": list(self.rows),
            "columns": list(self.columns),
            "lux": self.lux,
            "cells": [{"light_level": r, "psf": c, **self.cells[(r, c)]} for r in self.rows for c in self.columns],
            "metadata": self.metadata,
        }

    def save(self, out_dir, plot=True):
        """Write evaluation.csv, evaluation.md, evaluation.json and (plot=True, with accuracies) accuracy.png into
        out_dir; returns {kind: path}."""
        os.makedirs(out_dir, exist_ok=True)
        paths = {
            "csv": os.path.join(out_dir, "evaluation.csv"),
            "markdown": os.path.join(out_dir, "evaluation.md"),
            "json": os.path.join(out_dir, "evaluation.json"),
        }
        with open(paths["csv"], "w", encoding="utf-8") as file:
            file.write(self.to_csv())
        with open(paths["markdown"], "w", encoding="utf-8") as file:
            file.write(self.to_markdown())
        with open(paths["json"], "w", encoding="utf-8") as file:
            json.dump(self.to_dict(), file, indent=1)
        if plot and "top1" in self.available():
            from dirtypixels_tf.evaluation.figures import plot_accuracy

            paths["plot"] = plot_accuracy(self, os.path.join(out_dir, "accuracy.png"))
        return paths


def _format(metric, value):
    if value is None:
        return "-"
    if metric in ("top1", "top5"):
        return f"{100 * value:.2f}%"
    return f"{value:.2f}" if metric == "psnr" else f"{value:.4f}"


# ---------------------------------------------------------------------------------------------------------------
# Evaluation


def _cardinality(dataset):
    count = int(dataset.cardinality())
    return count if count >= 0 else None


def cell_dataset(source, sensor, image_size, batch_size, seed, central_fraction, no_noise):
    """Batches of (features with "clean", label) for one cell; for no noise, raw is the noiseless clipped mosaic
    of the blurred clean image and alpha, sigma are NO_NOISE_ALPHA, NO_NOISE_SIGMA."""
    dataset = pipeline.make_dataset(
        source,
        sensor,
        image_size,
        batch_size,
        training=False,
        seed=seed,
        include_clean=True,
        central_fraction=central_fraction,
    )
    if not no_noise:
        return dataset

    def noiseless(features, label):
        raw = tf.clip_by_value(mosaic.mosaic(sensor.optics(features["clean"]), sensor.pattern), 0.0, 1.0)
        count = tf.shape(raw)[:1]
        alpha = tf.fill(count, tf.constant(NO_NOISE_ALPHA, tf.float32))
        sigma = tf.fill(count, tf.constant(NO_NOISE_SIGMA, tf.float32))
        return {**features, "raw": raw, "alpha": alpha, "sigma": sigma}, label

    return dataset.map(noiseless)


def evaluate(
    model,
    source,
    light_levels=DEFAULT_LIGHT_LEVELS,
    psfs=DEFAULT_PSFS,
    image_size=None,
    batch_size=32,
    limit=None,
    seed=0,
    sensor=noise.DEFAULT_PRESET,
    pattern=mosaic.RELEASE_PATTERN,
    central_fraction=preprocessing.DEFAULT_CENTRAL_FRACTION,
    quality=True,
    psf_grid=None,
    progress=True,
    data_description="dataset",
):
    """Evaluate `model` on `source` over light_levels x psfs; returns an EvaluationTable.

    model: a Predictor, keras.Model, path / preset name (load_predictor) or function (features, psf) -> dict.
    source: a tf.data.Dataset of (image float32 [H, W, 3] in [0, 1], label int64) (data.sources); `limit` keeps
    its first N examples. image_size: the RAW frame size (even int or (H, W)); None = the model's. A model that
    takes another size is refused (ValueError naming both). quality: measure PSNR/SSIM of the intermediate image.
    sensor / pattern: the sensor (a preset name, a sensor.yaml path or a NoisePreset) and the Bayer phase; central_fraction: the evaluation
    centre crop. psf_grid: the PsfGrid of the named PSFs (default: optics.default_psf_grid()).
    """
    predictor = as_predictor(model)
    if not isinstance(source, tf.data.Dataset):
        raise ValueError(f"source must be a tf.data.Dataset of (image, label); received {type(source).__name__}")
    levels = [parse_light_level(spec) for spec in _as_list(light_levels, "light_levels")]
    columns = [parse_psf(spec, psf_grid) for spec in _as_list(psfs, "psfs")]
    _check_unique([level.label for level in levels], "light_levels")
    _check_unique([label for label, _ in columns], "psfs")
    batch_size = check_int(batch_size, "batch_size")
    seed = check_int(seed, "seed", 0)
    if image_size is None:
        if predictor.image_size is None:
            raise ValueError(f"image_size must be given for {predictor.description}, which takes any frame size")
        image_size = predictor.image_size
    image_size = preprocessing.check_image_size(image_size)
    if predictor.image_size is not None and tuple(predictor.image_size) != image_size:
        height, width = predictor.image_size
        raise ValueError(
            f"image_size {image_size[0]}x{image_size[1]} does not fit {predictor.description}, which takes "
            f"{height}x{width} RAW frames: evaluate at size {height}"
        )
    if limit is not None:
        source = source.take(check_int(limit, "limit"))
    examples = _cardinality(source)
    batches = None if examples is None else math.ceil(examples / batch_size)
    total = None if batches is None else batches * len(levels) * len(columns)

    from tqdm.auto import tqdm

    cells = {}
    with tqdm(total=total, desc="evaluate", unit="batch", disable=not progress) as bar:
        for level in levels:
            light = (level.low, level.high) if level.noisy else (1.0, 1.0)
            for label, psf in columns:
                bar.set_postfix_str(f"{level.label}, psf {label}")
                cell_sensor = SensorModel(preset=sensor, light_levels=light, pattern=pattern, psf=psf)
                dataset = cell_dataset(
                    source, cell_sensor, image_size, batch_size, seed, central_fraction, not level.noisy
                )
                cells[(level.label, label)] = _evaluate_cell(predictor, dataset, psf, quality, bar)
    count = cells[(levels[0].label, columns[0][0])]["examples"] if cells else 0
    metadata = {
        "model": predictor.description,
        "data": data_description,
        "examples": count,
        "image_size": list(image_size),
        "seed": seed,
        "sensor": os.fspath(sensor) if isinstance(sensor, (str, os.PathLike)) else repr(sensor),
        "pattern": pattern,
        "central_fraction": central_fraction,
        "no_noise": {"alpha": NO_NOISE_ALPHA, "sigma": NO_NOISE_SIGMA},
        "notes": [
            "Accuracies: ties count as correct (in_top_k). PSNR (peak 1) and SSIM (Gaussian window 11, std 1.5) of "
            "the intermediate image clipped to [0, 1] against the sharp clean image, averaged per image.",
            f"Noise: sensor {sensor}, Bayer {pattern}; light level = lux / 2000; example i seeded "
            f"example_seed({seed}, i) in every cell.",
        ],
    }
    return EvaluationTable(
        rows=tuple(level.label for level in levels),
        columns=tuple(label for label, _ in columns),
        cells=cells,
        lux={level.label: level.lux for level in levels},
        metadata=metadata,
    )


def _as_list(value, name):
    items = [value] if isinstance(value, str) else list(value)
    if not items:
        raise ValueError(f"{name} must name at least one entry; received {value!r}")
    return items


def _check_unique(labels, name):
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"{name} must not repeat an entry; received {duplicates} more than once")


def _evaluate_cell(predictor, dataset, psf, quality, bar):
    correct = {1: 0, 5: 0}
    psnrs, ssims = [], []
    energy, clean_energy = 0.0, 0.0
    examples = 0
    has_logits = has_image = True
    for features, labels in dataset:
        batch = {key: features[key].numpy() for key in ("raw", "alpha", "sigma")}
        outputs = predictor(batch, psf)
        labels = labels.numpy()
        if outputs["logits"] is None:
            has_logits = False
        else:
            for k in correct:
                correct[k] += int(np.sum(metrics.top_k_correct(outputs["logits"], labels, k)))
        if quality:
            if outputs["image"] is None:
                has_image = False
            else:
                clean = features["clean"].numpy()
                psnrs.append(metrics.psnr(outputs["image"], clean))
                ssims.append(metrics.ssim(outputs["image"], clean))
                energy += float(metrics.bayer_energy(outputs["image"]).sum())
                clean_energy += float(metrics.bayer_energy(clean).sum())
        examples += len(labels)
        bar.update(1)
    if examples == 0:
        raise ValueError("source must hold at least one example; received an empty dataset")
    accuracy = has_logits
    measured = quality and has_image
    return {
        "examples": examples,
        "top1": correct[1] / examples if accuracy else None,
        "top5": correct[5] / examples if accuracy else None,
        "psnr": float(np.mean(np.concatenate(psnrs))) if measured else None,
        "ssim": float(np.mean(np.concatenate(ssims))) if measured else None,
        "bayer": energy / max(clean_energy, metrics.PSNR_MSE_FLOOR) if measured else None,
    }
