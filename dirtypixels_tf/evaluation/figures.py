"""Figures: example grids like Diamond et al. 2017 Fig. 8 / Diamond et al. 2021 Fig. 5, and accuracy and PSNR against
light level for several models above examples (the accuracy plot of one table is table.plot_accuracy).

Matplotlib with the Agg backend (files only, no display). Images are shown as they are in [0, 1] (clipped), linear
values without a tone curve, the same values the metrics see. Label maps (segmentation) are shown in Pascal VOC's
colours (data.segmentation.colourize; the ignore label white).
"""

import dataclasses
import textwrap

import numpy as np
import tensorflow as tf

from dirtypixels_tf.catalog import DEFAULT_PRESET, NO_PSF
from dirtypixels_tf.data.segmentation import colourize
from dirtypixels_tf.evaluation import metrics
from dirtypixels_tf.evaluation.axes import NO_NOISE, parse_light_level, parse_psf
from dirtypixels_tf.evaluation.baselines import ConventionalIsp
from dirtypixels_tf.evaluation.grid import cell_dataset
from dirtypixels_tf.evaluation.predictors import ConventionalIspPredictor, as_predictor
from dirtypixels_tf.evaluation.table import METRIC_TITLES, task_metric
from dirtypixels_tf.optional import pyplot
from dirtypixels_tf.physics.sensor import SensorModel


@dataclasses.dataclass
class Panel:
    """One image of an example grid: `image` [H, W, 3] in [0, 1], a `title`, and the caption under it."""

    image: np.ndarray
    title: str
    caption: str


def plot_panels(rows, path, title=""):
    """A grid of Panels (a list of rows, each a list of Panels) saved as PNG at `path`; returns path."""
    plt = pyplot()
    columns = max(len(row) for row in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(2.6 * columns, 3.2 * len(rows)), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            axis = axes[r, c]
            axis.axis("on")
            axis.set_xticks([])
            axis.set_yticks([])
            axis.imshow(np.clip(panel.image, 0.0, 1.0), interpolation="nearest")
            axis.set_title(panel.title, fontsize=8)
            axis.set_xlabel(panel.caption, fontsize=8)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _label(logits, class_names):
    if logits is None:
        return "-"
    index = int(np.argmax(logits))
    return class_names[index] if class_names is not None and index < len(class_names) else str(index)


def comparison_panels(
    model,
    source,
    conventional=(),
    head=None,
    light_level="3",
    psf=NO_PSF,
    count=4,
    image_size=None,
    seed=0,
    sensor=DEFAULT_PRESET,
    pattern=None,
    central_fraction=0.875,
    class_names=None,
):
    """Rows of Panels for the first `count` examples of `source` at one light level and PSF: the clean image (true
    label), the noisy RAW bilinearly demosaicked for viewing, each conventional ISP of `conventional` (ConventionalIsp
    objects), and the model's intermediate image. Each caption gives the predicted label and the PSNR (dB) against
    the clean image. Labels of the bilinear and conventional columns come from `head` (a Keras model or callable
    images -> logits, e.g. the model itself for its head; None = no label); the model's from its own logits.
    The examples are simulated as in grid.evaluate (same seeds), so they are the first examples of that cell.
    For a segmentation model (a source of label maps), the true label map follows the clean image and the model's
    predicted map its image, both colour-coded; captions give each column's mIoU on that image instead of a label."""
    predictor = as_predictor(model)
    size = image_size or predictor.image_size
    level = parse_light_level(light_level)
    psf_label, psf_array = parse_psf(psf, seed=seed)
    light = (level.low, level.high) if level.noisy else (1.0, 1.0)
    simulated = SensorModel(preset=sensor, light_levels=light, pattern=pattern, psf=psf_array)
    pattern = simulated.pattern
    dataset = cell_dataset(source.take(count), simulated, size, count, seed, central_fraction, not level.noisy)
    features, labels = next(iter(dataset))
    batch = {key: features[key].numpy() for key in ("raw", "alpha", "sigma")}
    clean = features["clean"].numpy()
    class_names = class_names or predictor.class_names
    columns = [("Noisy RAW (bilinear)", ConventionalIspPredictor(ConventionalIsp("bilinear", pattern=pattern), head))]
    for isp in conventional:
        columns.append((isp.name or "conventional ISP", ConventionalIspPredictor(isp, head)))
    columns.append(("Joint model", predictor))
    outputs = [(title, column(batch, psf_array)) for title, column in columns]
    labels = labels.numpy()
    if labels.ndim == 3:
        return _segmentation_rows(clean, labels, outputs), f"{level.label}, PSF {psf_label}"
    rows = []
    for i in range(len(clean)):
        row = [Panel(clean[i], "Clean", f"true: {_label_of(labels[i], class_names)}")]
        for title, output in outputs:
            logits = None if output["logits"] is None else output["logits"][i]
            if output["image"] is None:
                continue
            psnr = metrics.psnr(output["image"][i], clean[i])[0]
            row.append(Panel(output["image"][i], title, f"{_label(logits, class_names)}, {psnr:.1f} dB"))
        rows.append(row)
    return rows, f"{level.label}, PSF {psf_label}"


def _label_map_panel(label_map, title, caption):
    return Panel(colourize(label_map.astype(np.uint8)) / 255.0, title, caption)


def _segmentation_rows(clean, labels, outputs):
    """comparison_panels' rows for label maps: clean, true map, each column's image (its mIoU on the image and its
    PSNR), and the last column's (the model's) predicted map."""
    rows = []
    for i in range(len(clean)):
        row = [Panel(clean[i], "Clean", ""), _label_map_panel(labels[i], "True labels", "")]
        prediction = None
        for title, output in outputs:
            caption = []
            if output["segmentation"] is not None:
                scores = output["segmentation"][i]
                prediction = np.argmax(scores, axis=-1)
                confusion = metrics.confusion_matrix(labels[i], prediction, scores.shape[-1])
                caption.append(f"mIoU {100 * metrics.segmentation_scores(confusion)['miou']:.1f} %")
            if output["image"] is not None:
                caption.append(f"{metrics.psnr(output['image'][i], clean[i])[0]:.1f} dB")
                row.append(Panel(output["image"][i], title, ", ".join(caption)))
        if prediction is not None and outputs[-1][1]["segmentation"] is not None:
            row.append(_label_map_panel(prediction, f"{outputs[-1][0]}: labels", ""))
        rows.append(row)
    return rows


def _label_of(label, class_names):
    index = int(label.numpy() if isinstance(label, tf.Tensor) else label)
    return class_names[index] if class_names is not None and index < len(class_names) else str(index)


def comparison_figure(model, source, path, **options):
    """comparison_panels(model, source, **options) plotted as a PNG at `path`; returns path."""
    rows, title = comparison_panels(model, source, **options)
    return plot_panels(rows, path, title)


def plot_light_comparison(tables, example_rows, path, title=""):
    """One PNG at `path`: top-1 accuracy (%) (mean IoU for segmentation) and the intermediate image's PSNR (dB)
    against light level, one line per model of `tables` ({name: EvaluationTable} over the same rows, first PSF column), above rows of example
    Panels (comparison_panels' rows, or [] for none). Returns path."""
    plt = pyplot()
    columns = max([2] + [len(row) for row in example_rows])
    figure = plt.figure(figsize=(2.4 * columns, 3.6 + 2.6 * len(example_rows)))
    grid = figure.add_gridspec(1 + len(example_rows), columns, height_ratios=[1.4] + [1.0] * len(example_rows))
    half = columns // 2
    first = next(iter(tables.values()))
    positions = np.arange(len(first.rows))
    labels = ["no noise" if row == NO_NOISE else row for row in first.rows]
    task = task_metric(first)
    for span, metric, ylabel in (
        (slice(0, half), task, METRIC_TITLES[task]),
        (slice(half, columns), "psnr", "PSNR (dB)"),
    ):
        axis = figure.add_subplot(grid[0, span])
        for name, table in tables.items():
            column = table.columns[0]
            values = [table.value(row, column, metric) for row in table.rows]
            if any(v is None for v in values):
                continue
            scale = 100 if metric == task else 1
            axis.plot(positions, [scale * v for v in values], marker="o", label=name)
        axis.set_xticks(positions, labels, rotation=30)
        axis.set_xlabel("light level")
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    for r, row in enumerate(example_rows):
        for c, panel in enumerate(row):
            axis = figure.add_subplot(grid[1 + r, c])
            axis.set_xticks([])
            axis.set_yticks([])
            axis.imshow(np.clip(panel.image, 0.0, 1.0), interpolation="nearest")
            axis.set_title(panel.title, fontsize=8)
            axis.set_xlabel(panel.caption, fontsize=8)
    if title:
        figure.suptitle(textwrap.fill(title, 20 * columns), fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
