"""The results of an evaluation grid: EvaluationTable, written as CSV, Markdown, JSON and an accuracy plot.

Cells are keyed (light level label, PSF label) (axes.py); each holds "top1", "top5" (fractions), "miou",
"pixel_accuracy" (fractions, segmentation), "psnr" (dB), "ssim", "bayer", "bayer_peak", "bayer_error" (grid.py and
metrics.py; float, or None for a metric the model cannot give), "iou" (segmentation: one IoU per class, None for a
class absent from truth and prediction; else None) and "examples". The Markdown tables follow Diamond et al. 2017's Table 1 layout: rows = light levels, columns =
PSFs.
"""

import csv
import dataclasses
import io
import json
import os

import numpy as np

from dirtypixels_tf.catalog import NO_PSF, PSF_NAMES
from dirtypixels_tf.evaluation.axes import NO_NOISE
from dirtypixels_tf.optional import pyplot

METRICS = ("top1", "top5", "miou", "pixel_accuracy", "psnr", "ssim", "bayer", "bayer_peak", "bayer_error")
SEGMENTATION_METRICS = ("miou", "pixel_accuracy")  # None for a classifier, as top-1 and top-5 for a segmenter
PERCENT_METRICS = ("top1", "top5", *SEGMENTATION_METRICS)
METRIC_TITLES = {
    "top1": "Top-1 accuracy (%)",
    "top5": "Top-5 accuracy (%)",
    "miou": "Mean IoU (%)",
    "pixel_accuracy": "Pixel accuracy (%)",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "bayer": "Bayer-period luminance energy / the clean image's",
    "bayer_peak": "Bayer-frequency peak over neighbouring frequencies / the clean image's",
    "bayer_error": "Bayer-period pattern in the luminance error, RMS amplitude (8-bit code values)",
}
PSF_TITLES = {name: "No blur" if name == NO_PSF else f"{name.capitalize()} PSF" for name in PSF_NAMES}


@dataclasses.dataclass
class EvaluationTable:
    """Results per (light level label, PSF label): {METRICS (float or None), "iou" (list or None), "examples"}.

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

    def iou_classes(self):
        """The names of the per-class IoU columns (metadata's class names, else the indices); [] without IoUs."""
        count = max((len(cell["iou"]) for cell in self.cells.values() if cell.get("iou") is not None), default=0)
        names = self.metadata.get("class_names") or []
        return [names[k] if k < len(names) else str(k) for k in range(count)]

    def to_csv(self):
        """CSV text, one line per cell: light_level, lux, psf, examples, then METRICS (full precision; accuracies as
        fractions; empty for a metric the model does not give), then for segmentation one "iou:<class>" column per
        class (empty for a class absent from truth and prediction)."""
        classes = self.iou_classes()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["light_level", "lux", "psf", "examples", *METRICS, *(f"iou:{name}" for name in classes)])
        for row in self.rows:
            for column in self.columns:
                cell = self.cells[(row, column)]
                lux = "" if self.lux[row] is None else repr(self.lux[row])
                values = ["" if cell[m] is None else repr(cell[m]) for m in METRICS]
                iou = cell.get("iou") or [None] * len(classes)
                values += ["" if v is None else repr(v) for v in iou]
                writer.writerow([row, lux, column, cell["examples"], *values])
        return buffer.getvalue()

    def to_markdown(self):
        """One table per available metric in Diamond et al. 2017's Table 1 layout: rows = light levels, columns =
        PSFs."""
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
        classes = self.iou_classes()
        if classes:
            lines += ["", "### IoU per class (%)", ""]
            lines.append("| " + " | ".join(["Light level", "PSF", *classes]) + " |")
            lines.append("| " + " | ".join(["---", "---"] + ["---:"] * len(classes)) + " |")
            for row in self.rows:
                for column in self.columns:
                    values = [_format("miou", v) for v in self.cells[(row, column)]["iou"]]
                    label = "No noise" if row == NO_NOISE else row
                    lines.append("| " + " | ".join([label, PSF_TITLES.get(column, column), *values]) + " |")
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
        """Write evaluation.csv, evaluation.md, evaluation.json and (plot=True, with accuracies or mIoU) accuracy.png
        into out_dir; returns {kind: path}."""
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
        if plot and {"top1", "miou"} & set(self.available()):
            paths["plot"] = plot_accuracy(self, os.path.join(out_dir, "accuracy.png"))
        return paths


def task_metric(table):
    """The table's task score: "miou" for a segmentation model, else "top1"."""
    return "miou" if "miou" in table.available() else "top1"


def _format(metric, value):
    if value is None:
        return "-"
    if metric in PERCENT_METRICS:
        return f"{100 * value:.2f}%"
    return f"{value:.2f}" if metric == "psnr" else f"{value:.4f}"


def plot_accuracy(table, path):
    """Top-1 and top-5 accuracy (%), or for segmentation mean IoU and pixel accuracy (%), against the table's light
    levels (in row order), one line per PSF; PNG at `path`. Returns path."""
    plt = pyplot()
    metrics_shown = [m for m in PERCENT_METRICS if m in table.available()]
    figure, axes = plt.subplots(1, len(metrics_shown), figsize=(5.5 * len(metrics_shown), 4), squeeze=False)
    positions = np.arange(len(table.rows))
    labels = ["no noise" if row == NO_NOISE else row for row in table.rows]
    for axis, metric in zip(axes[0], metrics_shown):
        for column in table.columns:
            values = [table.value(row, column, metric) for row in table.rows]
            axis.plot(positions, [100 * v for v in values], marker="o", label=f"PSF {column}")
        axis.set_xticks(positions, labels, rotation=30)
        axis.set_xlabel("light level")
        axis.set_ylabel(METRIC_TITLES[metric])
        axis.set_ylim(0, 100)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"{table.metadata.get('model', '')} on {table.metadata.get('data', '')}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
