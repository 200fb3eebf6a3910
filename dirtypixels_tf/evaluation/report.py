"""Trained runs compared on one evaluation: each over the same light levels (grid.evaluate), one markdown table of
top-1 (mean IoU for segmentation models), the intermediate image's PSNR and the Bayer measures, and a figure of
accuracy and PSNR against light above example images (figures.plot_light_comparison). The first run is the model
compared; each name's first word names its folder under the report directory.
"""

import dataclasses
import os

from dirtypixels_tf.evaluation import axes, figures, grid
from dirtypixels_tf.evaluation.predictors import head_function, load_predictor
from dirtypixels_tf.evaluation.table import task_metric

TABLE_FILE = "report.md"
FIGURE_FILE = "report.png"


@dataclasses.dataclass
class RunComparison:
    """The runs' EvaluationTables and predictors (by name, the compared model first) and the table's lines."""

    tables: dict
    predictors: dict
    lines: list

    def legend(self):
        """What the table's columns measure, as printed above it."""
        first = next(iter(self.tables.values()))
        title = "mIoU" if task_metric(first) == "miou" else "top-1"
        return (
            f"report: {title} and intermediate-image PSNR on {first.metadata['examples']} test images; Bayer = luminance "
            "energy at the\n"
            "2x2-period frequencies over the clean image's (metrics.bayer_artifact_ratio; a checkerboard is well "
            "above 1;\nresidual noise raises it too); Bayer peak = that energy over the neighbouring frequencies', "
            "over the clean\nimage's (metrics.bayer_peak_ratio: about 1 or below without a periodic pattern, well "
            "above 1 with one;\nit also moves with what the image keeps of the clean content there); Bayer error = "
            "RMS amplitude of the\n2x2-period pattern in the luminance error (image - clean), in 8-bit code values "
            "(residual noise counts too)"
        )


def _short(name):
    return name.split()[0]


def comparison_lines(tables):
    """The markdown table of `tables` (name -> EvaluationTable over the same light levels and one PSF)."""
    joint_name, joint = next(iter(tables.items()))
    task = task_metric(joint)
    title = "mIoU" if task == "miou" else "top-1"
    header = ["light"] + [f"{n} {title}" for n in tables]
    header += [f"{_short(n)} PSNR" for n in tables] + [f"{_short(n)} Bayer" for n in tables]
    header += [f"{_short(n)} Bayer peak" for n in tables] + [f"{_short(n)} Bayer error" for n in tables]
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    column = joint.columns[0]
    for row in joint.rows:
        label = "no noise" if row == axes.NO_NOISE else f"{row}"
        cells = [f"{100 * t.value(row, column, task):.1f} %" for t in tables.values()]
        cells += [f"{t.value(row, column, 'psnr'):.1f} dB" for t in tables.values()]
        cells += [f"{t.value(row, column, 'bayer'):.2f}" for t in tables.values()]
        cells += [f"{t.value(row, column, 'bayer_peak'):.2f}" for t in tables.values()]
        cells += [f"{t.value(row, column, 'bayer_error'):.2f}" for t in tables.values()]
        lines.append("| " + " | ".join([label] + cells) + " |")
    return lines


def compare_runs(runs, source, out_dir, light_levels, psf, class_names=None, log=None, **options):
    """Evaluate each of `runs` (name -> run directory or export) on `source` at `light_levels` with PSF `psf` and
    grid.evaluate's `options` (seed, sensor, pattern, central_fraction, batch_size, data_description); writes each
    table under out_dir/<first word of its name>/ and the comparison as out_dir/report.md. `log` (e.g. print) gets
    one line per run before it is evaluated. Returns a RunComparison."""
    tables, predictors = {}, {}
    for name, path in runs.items():
        if log is not None:
            log(f"report: evaluating {name} at {', '.join(light_levels)} lux")
        predictors[name] = load_predictor(path)
        predictors[name].class_names = class_names
        tables[name] = grid.evaluate(predictors[name], source, light_levels=light_levels, psfs=(psf,), **options)
        tables[name].save(os.path.join(out_dir, _short(name)), plot=False)
    lines = comparison_lines(tables)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, TABLE_FILE), "w", encoding="utf-8") as stream:
        stream.write("\n".join(lines) + "\n")
    return RunComparison(tables, predictors, lines)


def comparison_figure(comparison, source, path, example_levels, psf, class_names=None, title="", **options):
    """The figure of `comparison` at `path` (needs matplotlib): accuracy and PSNR against light above two example
    images per level of `example_levels`, through the compared model and the second run's head (the first
    comparison's); `options` are the simulation's (seed, sensor, pattern, central_fraction). Returns the path."""
    names = list(comparison.predictors)
    compared = comparison.predictors[names[0]]
    second = comparison.predictors[names[1]] if len(names) > 1 else None
    head = head_function(second.model) if second is not None else None
    rows = []
    for level in example_levels:
        panels, _ = figures.comparison_panels(
            compared, source, head=head, light_level=level, psf=psf, count=2, class_names=class_names, **options
        )
        for row in panels:
            rows += [[dataclasses.replace(p, title=f"{p.title}, {level} lux") for p in row]]
    return figures.plot_light_comparison(comparison.tables, rows, path, title=title)
