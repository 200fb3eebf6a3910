"""Evaluation: accuracy over light levels x PSFs, PSNR/SSIM, conventional-ISP baselines, reports and figures.

    from dirtypixels_tf.evaluation import evaluate
    table = evaluate("runs/joint", source, light_levels=("3", "6", "none"), psfs=("none", "periphery"))
    table.save("out/")

See axes.py (light levels and PSFs), predictors.py (the models behind one call), grid.py (evaluate),
table.py (EvaluationTable, its files and accuracy plot), metrics.py (top-k, PSNR, SSIM), baselines.py (conventional
ISPs), figures.py (example grids), report.py (trained runs compared: table and figure) and captured.py (labelled real
RAW captures).
"""

from dirtypixels_tf._lazy import lazy_exports

_EXPORTS = {
    "evaluate_captured": "dirtypixels_tf.evaluation.captured",
    "evaluate": "dirtypixels_tf.evaluation.grid",
    "EvaluationTable": "dirtypixels_tf.evaluation.table",
    "load_predictor": "dirtypixels_tf.evaluation.predictors",
    "compare_runs": "dirtypixels_tf.evaluation.report",
    "PIPELINES": "dirtypixels_tf.evaluation.baselines",
    "ConventionalIsp": "dirtypixels_tf.evaluation.baselines",
    "get_pipeline": "dirtypixels_tf.evaluation.baselines",
    "psnr": "dirtypixels_tf.evaluation.metrics",
    "ssim": "dirtypixels_tf.evaluation.metrics",
    "top_k_accuracy": "dirtypixels_tf.evaluation.metrics",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
