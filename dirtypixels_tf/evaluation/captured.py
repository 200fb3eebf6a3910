"""Top-1 / top-5 on a folder of labelled real RAW captures, as the release's test_captured_images.py reports them
(Diamond et al. 2021's captured low-light set), through the package's real-capture front end
(data/camera_raw.prepare_capture: white balance, crop and subsample, exposure, per-colour noise).

Layout: FOLDER/<class>/<file> with camera RAW files (DNG, CR2, NEF, ...; data/camera_raw.read_raw). A class folder
names its logit index through a labels file of "name:index" lines (the release's datasets/synset_labels.txt, which
maps ImageNet synsets to the 1001-class index of its models; FOLDER/synset_labels.txt is found by itself), else
through the model's class names (the folder name is one of them), else by its position among the sorted folders.
Files in FOLDER itself (the release's labels.txt) are ignored.

Outputs in OUT: captured.json and captured.md (overall and per folder: count, top-1, top-5), correct.txt and
wrong.txt (one line per frame, as the release writes them: path "true class" "predicted class"), and for the first
`samples` frames of each folder input/<class>/<name>.png (the front end's noisy frame, the mosaic's colours at the
pixels that see them, as the release's raw/ folder) and isp/<class>/<name>.png (the ISP's image, clipped to [0, 1]).

Departures from the release's script: top-5 counts ranks 0 to 4 (its `rank <= 5` counts six); a frame whose file
cannot be read is reported and left out of the counts (the release prints it and goes on, the same); frames are
taken in the package's Bayer phase from each file's own CFA pattern (the release assumes BGGR files).
"""

import dataclasses
import json
import os

import numpy as np

from dirtypixels_tf.data.camera_raw import CAMERA_RAW_EXTENSIONS

RELEASE_LABELS_FILE = "synset_labels.txt"


@dataclasses.dataclass(frozen=True)
class CapturedClass:
    """One class folder: its name, the logit index it is scored against, and its RAW files (sorted paths)."""

    name: str
    label: int
    files: tuple


def read_labels_file(path):
    """{name: index} from "name:index" lines (the release's synset_labels.txt); blank lines skipped."""
    labels = {}
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            name, _, index = line.strip().partition(":")
            if not index.strip().lstrip("-").isdigit():
                raise ValueError(
                    f"labels file {path!r} line {number}: expected 'name:index'; received {line.strip()!r}"
                )
            labels[name.strip()] = int(index)
    return labels


def list_captured_folder(folder, labels_file=None, class_names=None):
    """[CapturedClass] of FOLDER (module docstring), sorted by folder name; ValueError naming what is wrong."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"captured folder must be a folder of class folders; received {folder!r} (not a folder)")
    names = sorted(n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n)) and not n.startswith("."))
    if not names:
        raise ValueError(f"captured folder {folder!r} holds no class folders")
    if labels_file is None and os.path.isfile(os.path.join(folder, RELEASE_LABELS_FILE)):
        labels_file = os.path.join(folder, RELEASE_LABELS_FILE)
    if labels_file is not None:
        labels = read_labels_file(labels_file)
        missing = [n for n in names if n not in labels]
        if missing:
            raise ValueError(f"labels file {labels_file!r} has no entry for the class folders {missing[:5]}")
    elif class_names is not None and all(n in class_names for n in names):
        labels = {n: list(class_names).index(n) for n in names}
    else:
        labels = {n: index for index, n in enumerate(names)}
    classes = []
    for name in names:
        path = os.path.join(folder, name)
        files = sorted(
            os.path.join(path, f) for f in os.listdir(path) if os.path.splitext(f)[1].lower() in CAMERA_RAW_EXTENSIONS
        )
        classes.append(CapturedClass(name, labels[name], tuple(files)))
    if not any(c.files for c in classes):
        raise ValueError(f"captured folder {folder!r} holds no camera RAW files ({', '.join(CAMERA_RAW_EXTENSIONS)})")
    return classes


def per_colour_predictor(predictor):
    """The predictor itself when it takes alpha and sigma per colour [B, 3] (or is a function, which gets them as
    they are); a Keras model rebuilt to take them (same weights); ValueError for a SavedModel exported with
    per-image noise."""
    from dirtypixels_tf.evaluation.predictors import KerasPredictor, SavedModelPredictor
    from dirtypixels_tf.models.components import takes_per_channel_noise, with_per_channel_noise

    if isinstance(predictor, KerasPredictor):
        if takes_per_channel_noise(predictor.model):
            return predictor
        rebuilt = with_per_channel_noise(predictor.model)
        return KerasPredictor(rebuilt, predictor.description, predictor.class_names)
    if (
        isinstance(predictor, SavedModelPredictor)
        and predictor.serving.structured_input_signature[1]["alpha"].shape.rank != 2
    ):
        raise ValueError(
            f"{predictor.description} takes alpha and sigma per image; a white-balanced capture has them per "
            "colour: export the model with `dirtypixels export --per-channel-noise`, or evaluate its run "
            "directory or .keras file"
        )
    return predictor  # a function or a SavedModel with per-colour noise takes the features as they are


def _save_png(path, image):
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)).save(path)


def _top(classes, index):
    return f"{classes[index]}" if classes and 0 <= index < len(classes) else str(index)


def evaluate_captured(predictor, folder, out, labels_file=None, pattern=None, samples=1, progress=False, **capture):
    """Run `predictor` (evaluation/predictors.py; made per-colour by per_colour_predictor) on every capture of
    FOLDER through data.camera_raw.prepare_capture(**capture) at the predictor's image size; write OUT (module
    docstring). Returns the summary dict written to captured.json."""
    from tqdm import tqdm

    from dirtypixels_tf.catalog import RELEASE_PATTERN
    from dirtypixels_tf.data.camera_raw import load_capture
    from dirtypixels_tf.physics.mosaic import bayer_masks_numpy

    predictor = per_colour_predictor(predictor)
    if predictor.image_size is None:
        raise ValueError(f"{predictor.description} takes frames of any size; captured frames need a fixed one")
    classes = list_captured_folder(folder, labels_file, predictor.class_names)
    pattern = pattern or RELEASE_PATTERN
    names = predictor.class_names
    os.makedirs(out, exist_ok=True)
    correct, wrong, failed, rows = [], [], [], []
    total = sum(len(c.files) for c in classes)
    bar = tqdm(total=total, desc="captured frames", disable=not progress)
    for captured in classes:
        top1 = top5 = count = 0
        for number, path in enumerate(captured.files):
            bar.update(1)
            try:
                frame = load_capture(path, predictor.image_size, pattern, **capture)
            except (ValueError, OSError) as error:
                failed.append(f"{path}: {error}")
                continue
            outputs = predictor(frame.inputs(), None)
            if outputs["logits"] is None:
                raise ValueError(f"{predictor.description} has no classifier (no logits)")
            order = np.argsort(-outputs["logits"][0])
            known = 0 <= captured.label < len(order)  # a label past the logits is never right
            rank = int(np.nonzero(order == captured.label)[0][0]) if known else len(order) + 5
            line = f'{path} "{_top(names, captured.label)}" "{_top(names, int(order[0]))}"'
            (correct if rank == 0 else wrong).append(line)
            top1, top5, count = top1 + (rank == 0), top5 + (rank < 5), count + 1
            if number < samples:
                stem = os.path.splitext(os.path.basename(path))[0]
                masks = bayer_masks_numpy(*frame.mosaic.shape, pattern)
                _save_png(os.path.join(out, "input", captured.name, f"{stem}.png"), frame.mosaic[..., None] * masks)
                if outputs["image"] is not None:
                    _save_png(os.path.join(out, "isp", captured.name, f"{stem}.png"), outputs["image"][0])
        rows.append({"folder": captured.name, "label": captured.label, "count": count, "top1": top1, "top5": top5})
    bar.close()
    count = sum(r["count"] for r in rows)
    summary = {
        "folder": os.fspath(folder),
        "model": predictor.description,
        "count": count,
        "top1": sum(r["top1"] for r in rows) / count if count else None,
        "top5": sum(r["top5"] for r in rows) / count if count else None,
        "per_folder": [
            {
                **r,
                "top1": r["top1"] / r["count"] if r["count"] else None,
                "top5": r["top5"] / r["count"] if r["count"] else None,
            }
            for r in rows
        ],
        "failed": failed,
        "capture": {
            key: value if isinstance(value, (str, int, float)) else list(value) for key, value in capture.items()
        },
    }
    with open(os.path.join(out, "captured.json"), "w", encoding="utf-8") as file:
        json.dump(summary, file, indent=2)
    with open(os.path.join(out, "captured.md"), "w", encoding="utf-8") as file:
        file.write(to_markdown(summary))
    for name, lines in (("correct.txt", correct), ("wrong.txt", wrong)):
        with open(os.path.join(out, name), "w", encoding="utf-8") as file:
            file.writelines(f"{line}\n" for line in lines)
    return summary


def to_markdown(summary):
    """The summary as a Markdown table: one row per folder, then the overall row."""

    def percent(value):
        return "-" if value is None else f"{100 * value:.1f}"

    lines = ["| folder | label | frames | top-1 % | top-5 % |", "|---|---:|---:|---:|---:|"]
    for row in summary["per_folder"]:
        lines.append(
            f"| {row['folder']} | {row['label']} | {row['count']} | {percent(row['top1'])} | {percent(row['top5'])} |"
        )
    lines.append(f"| **all** | | {summary['count']} | {percent(summary['top1'])} | {percent(summary['top5'])} |")
    return "\n".join(lines) + "\n"
