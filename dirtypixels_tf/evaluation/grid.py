"""Accuracy over a grid of light levels x PSFs (Diamond et al. 2017 Table 1), with PSNR and SSIM of the
intermediate image.

    table = evaluate(model_or_predictor, source, light_levels=("3", "6", "12", "none"), psfs=("none", "periphery"))
    table.save("out/")   # evaluation.csv, evaluation.md, evaluation.json, accuracy.png

The parts: axes.py (what the rows and columns mean), predictors.py (the models, behind one call), table.py (the
results and their files); this module simulates the cells and measures them.

Conventions:
- Every cell simulates the same examples with the same seeds (example_seed(seed, i), data.pipeline's evaluation
  preprocessing: central crop + resize), so runs give identical tables and cells differ only by light level and PSF
  (common random numbers). Inputs do not depend on the batch size, though the model's float rounding may (the 6th
  decimal of PSNR). A "motion-L" PSF column is drawn with `seed` too.
- Top-k accuracies (metrics.top_k_correct) need a "logits" output and a source of class labels.
- Segmentation (a source of label maps, data/segmentation.py, and a model with a "segmentation" output): one
  confusion matrix per cell over all its pixels (metrics.confusion_matrix: IGNORE_LABEL pixels left out), and
  from it "miou", "pixel_accuracy" and "iou" (one per class; None for a class absent from truth and prediction,
  which the mean leaves out: metrics.segmentation_scores, the VOC devkit's rules). The predicted class is the
  arg-max of the per-pixel scores. A classifier on label maps, or a segmentation model on class labels, is refused.
- PSNR, SSIM and the Bayer metrics (metrics.py: "bayer" = bayer_artifact_ratio, "bayer_peak" =
  bayer_peak_ratio, "bayer_error" = the RMS over images of bayer_error_amplitudes in 8-bit code values) compare
  the intermediate image (the model's "image" output, a SavedModel's "isp" signature or a conventional ISP's
  output) with the SHARP clean image: the preprocessed image before optics, mosaic and noise. A metric a model
  cannot give is None.
"""

import math
import os

import numpy as np
import tensorflow as tf

from dirtypixels_tf.catalog import DEFAULT_PRESET
from dirtypixels_tf.data import pipeline, preprocessing
from dirtypixels_tf.evaluation import metrics
from dirtypixels_tf.evaluation.axes import (
    DEFAULT_LIGHT_LEVELS,
    DEFAULT_PSFS,
    NO_NOISE_ALPHA,
    NO_NOISE_SIGMA,
    parse_light_level,
    parse_psf,
)
from dirtypixels_tf.evaluation.predictors import as_predictor
from dirtypixels_tf.evaluation.table import EvaluationTable
from dirtypixels_tf.physics import mosaic
from dirtypixels_tf.physics.sensor import SensorModel
from dirtypixels_tf.physics.sensor_files import resolve_sensor
from dirtypixels_tf.physics.validation import check_int


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
    sensor=DEFAULT_PRESET,
    pattern=None,
    central_fraction=preprocessing.DEFAULT_CENTRAL_FRACTION,
    quality=True,
    psf_grid=None,
    progress=True,
    data_description="dataset",
):
    """Evaluate `model` on `source` over light_levels x psfs; returns an EvaluationTable.

    model: a Predictor, keras.Model, path / preset name (load_predictor) or function (features, psf) -> dict.
    source: a tf.data.Dataset of (image float32 [H, W, 3] in [0, 1], label int64) (data.sources), or of (image,
    label map [H, W]) for a segmentation model (data.segmentation); `limit` keeps its first N examples.
    image_size: the RAW frame size (even int or (H, W)); None = the model's. A model that takes another size is
    refused (ValueError naming both). quality: measure PSNR/SSIM of the intermediate image.
    sensor / pattern: the sensor (a spec of physics.sensor_files.resolve_sensor: a preset name, a sensor.yaml path, a
    NoisePreset) and the Bayer phase (None: the sensor's); central_fraction: the evaluation centre crop. psf_grid: the PsfGrid of the named PSFs (default: optics.default_psf_grid()).
    """
    predictor = as_predictor(model)
    if not isinstance(source, tf.data.Dataset):
        raise ValueError(f"source must be a tf.data.Dataset of (image, label); received {type(source).__name__}")
    levels = [parse_light_level(spec) for spec in _as_list(light_levels, "light_levels")]
    columns = [parse_psf(spec, psf_grid, seed) for spec in _as_list(psfs, "psfs")]
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
    calibration = resolve_sensor(sensor)
    pattern = calibration.pattern if pattern is None else mosaic.check_pattern(pattern)
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
                cell_sensor = SensorModel(preset=calibration, light_levels=light, pattern=pattern, psf=psf)
                dataset = cell_dataset(
                    source, cell_sensor, image_size, batch_size, seed, central_fraction, not level.noisy
                )
                cells[(level.label, label)] = _evaluate_cell(predictor, dataset, psf, quality, bar)
    count = cells[(levels[0].label, columns[0][0])]["examples"] if cells else 0
    segmentation = any(cell["iou"] is not None for cell in cells.values())
    notes = [
        "Segmentation: one confusion matrix per cell over its pixels, ignore label 255 left out; mIoU over the "
        "classes present in truth or prediction (VOC devkit); pixel accuracy = correct / labelled pixels."
    ]
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
        ]
        + (notes if segmentation else []),
    }
    if segmentation:
        metadata["class_names"] = predictor.class_names
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


def _check_task(outputs, dense):
    """Refuse a model whose task does not match the labels (label maps or class labels)."""
    if dense and outputs["logits"] is not None:
        raise ValueError("source holds label maps (segmentation) but the model gives class logits [B, K]")
    if not dense and outputs["segmentation"] is not None:
        raise ValueError("source holds class labels but the model gives per-pixel scores (segmentation)")


def _segmentation_cell(confusion):
    """The cell's "miou", "pixel_accuracy", "iou" (NaN -> None) of its confusion matrix (None: no scores)."""
    if confusion is None:
        return {"miou": None, "pixel_accuracy": None, "iou": None}
    scores = metrics.segmentation_scores(confusion)
    finite = {key: None if math.isnan(scores[key]) else scores[key] for key in ("miou", "pixel_accuracy")}
    return {**finite, "iou": [None if math.isnan(v) else v for v in scores["iou"]]}


def _evaluate_cell(predictor, dataset, psf, quality, bar):
    correct = {1: 0, 5: 0}
    confusion = None
    psnrs, ssims = [], []
    peak_sums = np.zeros(4)  # the estimates' Bayer and neighbour energies (metrics.bayer_peak_energies), the clean's
    squared_amplitudes = 0.0  # of the Bayer-period pattern in each image's error (metrics.bayer_error_amplitudes)
    examples = 0
    has_logits = has_image = True
    for features, labels in dataset:
        batch = {key: features[key].numpy() for key in ("raw", "alpha", "sigma")}
        outputs = predictor(batch, psf)
        labels = labels.numpy()
        dense = labels.ndim == 3
        _check_task(outputs, dense)
        if dense and outputs["segmentation"] is not None:
            scores = outputs["segmentation"]
            batch_confusion = metrics.confusion_matrix(labels, np.argmax(scores, axis=-1), scores.shape[-1])
            confusion = batch_confusion if confusion is None else confusion + batch_confusion
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
                for index, part in enumerate(
                    metrics.bayer_peak_energies(outputs["image"]) + metrics.bayer_peak_energies(clean)
                ):
                    peak_sums[index] += float(part.sum())
                squared_amplitudes += float(np.sum(np.square(metrics.bayer_error_amplitudes(outputs["image"], clean))))
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
        **_segmentation_cell(confusion),
        "psnr": float(np.mean(np.concatenate(psnrs))) if measured else None,
        "ssim": float(np.mean(np.concatenate(ssims))) if measured else None,
        "bayer": float(peak_sums[0] / max(peak_sums[2], metrics.PSNR_MSE_FLOOR)) if measured else None,
        "bayer_peak": metrics.peak_ratio(*peak_sums) if measured else None,
        "bayer_error": metrics.EIGHT_BIT_CODES * math.sqrt(squared_amplitudes / examples) if measured else None,
    }
