"""Liu et al. 2018 Table 3 (segmentation mIoU) and Table 2's cross-task column (classification top-1) at small scale.

    python benchmarks/liu_tables.py                 # both paths, all levels, seeds 0 1 2
    python benchmarks/liu_tables.py --quick         # smoke run: one seed, sigma 30 and 3 lux, a few hundred images
    python benchmarks/liu_tables.py --seeds 1 --out runs/liu_s1   # one seed per process ...
    python benchmarks/liu_tables.py --merge runs/liu_s*/results.json --out runs/liu   # ... tabulated together

Data: the Fashion-MNIST composites (data/segmentation.py, synthetic: 64 x 64, up to four items, 11 classes) for
segmentation and Fashion-MNIST (32 x 32) for classification, both from the package's copy. Heads, trained once per
seed on the clean training images and then frozen (Liu et al. keep the high-level networks fixed): the atrous
MobileNet-v1 (width 0.25) with the light ASPP (models/segmentation.py) and the MobileNet-v1 classifier (width 0.25).

Two paths, each at its noise levels:
- "rgb": Liu et al.'s setting, additive white Gaussian noise of std sigma/255 for sigma = 15, 30, 45, 60 (sensor
  preset GAUSS at light level 255/sigma, as the package's liu_* configs: the noise is drawn on the Bayer mosaic,
  which the denoiser demosaicks bilinearly first), with Liu et al.'s denoiser (models/isp.py LiuDenoiser, 16 / 32
  channels as the preset liu_mobilenet_v1_aspp_64).
- "raw": the package's RAW path, Poisson-Gaussian noise of the default sensor at 3, 6 and 12 lux, with the Anscombe
  network (models/isp.py AnscombeNetwork).
After every fit, the batch-norm statistics of what was trained are re-estimated on 20 training batches ("precise BN",
training/model_setup.py): with the short budgets here, moving averages left the heads' inference outputs constant.
Columns (Liu et al. Table 3; every trained ISP gets the same budget, --isp-examples x (--stage1-epochs +
--stage2-epochs), Adam):
  noisy       the frozen head on the noisy frame, bilinearly demosaicked (no denoiser);
  conventional  the package's conventional denoiser + the frozen head, the stand-in for Liu et al.'s CBM3D: on the
              RAW path evaluation/baselines.py malvar_nlm (GAT + non-local means on the Bayer planes + Malvar
              demosaicking); on the Gaussian path (no Poisson part, so no GAT) bilinear demosaicking then non-local
              means for white Gaussian noise of the frame's sigma (baselines.gaussian_denoise);
  separate    the denoiser trained alone (MSE against the clean image), stage 1 then stage 2 with the same loss;
  joint       stage 1 as separate, stage 2 with Liu et al.'s joint loss MSE + 0.5 x per-pixel cross entropy of the
              frozen segmentation head;
  cross       stage 1 as separate, stage 2 with the joint loss of the classifier (MSE + 0.25 x cross entropy),
              evaluated with the segmentation head (Table 3's cross-task column).
Table 2's cross-task column is the mirror: the ISP of "joint" (trained with segmentation) evaluated with the
classifier; it is printed beside the classifier's own noisy / conventional / separate / joint (classification)
columns. Every evaluation is evaluation.grid.evaluate on held-out test images (same noise per example in every
column). Printed: each cell as the mean over seeds (and each seed's value), the paper's figures for reference (VOC
and ImageNet at full scale: levels, not expected to match), and which of the issue's orderings hold.

Writes --out/results.json (every seed's figures) and --out/tables.md.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from dirtypixels_tf.training.model_setup import precise_batch_norm

# Liu et al. 2018 Table 3 (mIoU %, Pascal VOC 2012 val) at sigma 15 / 30 / 45 / 60.
PAPER_TABLE3 = {
    "noisy": (56.78, 43.43, 27.99, 14.94),
    "conventional": (59.58, 55.29, 50.69, 46.56),
    "separate": (58.70, 54.13, 49.51, 46.59),
    "joint": (60.46, 57.86, 54.83, 52.02),
    "cross": (60.41, 56.29, 54.01, 51.82),
}
SIGMAS = (15, 30, 45, 60)
LUX = (3, 6, 12)
SEG_COLUMNS = ("noisy", "conventional", "separate", "joint", "cross")
CLS_COLUMNS = ("noisy", "conventional", "separate", "joint", "cross")
SEG_SIZE, CLS_SIZE = 64, 32
SEG_LAMBDA, CLS_LAMBDA = 0.5, 0.25  # Liu et al.'s weights of the task terms
PRECISE_BN_BATCHES = 20  # batch-norm statistics re-estimated after each fit (short runs leave them unconverged)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed, sigma 30 and 3 lux, small budgets")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--paths", nargs="+", default=["rgb", "raw"], choices=("rgb", "raw"))
    parser.add_argument("--sigmas", type=int, nargs="+", default=list(SIGMAS))
    parser.add_argument("--lux", type=float, nargs="+", default=list(LUX))
    parser.add_argument("--head-examples", type=int, default=6000, help="clean images per head epoch")
    parser.add_argument("--head-epochs", type=int, default=4)
    parser.add_argument("--isp-examples", type=int, default=3000, help="training frames per ISP epoch")
    parser.add_argument("--stage1-epochs", type=int, default=2)
    parser.add_argument("--stage2-epochs", type=int, default=2)
    parser.add_argument("--eval-examples", type=int, default=500)
    parser.add_argument(
        "--lambda-scale", type=float, default=1.0, help="multiplies Liu et al.'s task weights (0.5, 0.25); 1 = theirs"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default=None, help="output folder (runs/liu_tables, or runs/liu_tables_quick)")
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="RESULTS_JSON",
        help="no training: tabulate the seeds of earlier runs' results.json",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.sigmas, args.lux = args.seeds[:1], [30], [3.0]
        args.head_examples, args.head_epochs, args.isp_examples = 256, 1, 128
        args.stage1_epochs, args.stage2_epochs, args.eval_examples = 1, 1, 32
    args.out = args.out or os.path.join("runs", "liu_tables_quick" if args.quick else "liu_tables")
    return args


def levels(args):
    """[(path, level name, sensor preset, lux)]: sigma s is light level 255 / s of the GAUSS preset."""
    from dirtypixels_tf.catalog import DEFAULT_PRESET, LUX_PER_LIGHT_LEVEL

    found = []
    if "rgb" in args.paths:
        found += [("rgb", f"sigma {s}", "GAUSS", LUX_PER_LIGHT_LEVEL * 255.0 / s) for s in args.sigmas]
    if "raw" in args.paths:
        found += [("raw", f"{lux:g} lux", DEFAULT_PRESET, lux) for lux in args.lux]
    return found


class Bench:
    """The models and data of one seed."""

    def __init__(self, args, seed):
        import keras

        from dirtypixels_tf.data import fashion_mnist, segmentation

        keras.utils.set_random_seed(seed)
        self.args, self.seed = args, seed
        self.seg_train = segmentation.composite_source("train", seed=seed)
        self.seg_test = segmentation.composite_source("test", seed=0, count=args.eval_examples)
        self.cls_train = fashion_mnist.fashion_mnist_source("train")[0]
        self.cls_test = fashion_mnist.fashion_mnist_source("test")[0].take(args.eval_examples)

    # -- data ------------------------------------------------------------------------------------------------
    def frames(self, source, size, sensor, examples, epochs, task_key, crop_area):
        """Training batches ({raw, alpha, sigma}, {"image": clean, task_key: label}) at a fixed light level."""
        from dirtypixels_tf.data import make_dataset

        dataset = make_dataset(
            source.take(examples),
            sensor,
            size,
            self.args.batch_size,
            training=True,
            seed=self.seed,
            epochs=epochs,
            include_clean=True,
            crop_area=crop_area,
        )
        return dataset.map(
            lambda f, label: ({k: f[k] for k in ("raw", "alpha", "sigma")}, {"image": f["clean"], task_key: label})
        )

    def clean(self, source, size, examples, epochs, key, crop_area):
        """Clean training batches ({"clean"}, {key: label}) (on-device simulation off: no sensor runs)."""
        from dirtypixels_tf.data import make_dataset
        from dirtypixels_tf.physics.sensor import SensorModel

        dataset = make_dataset(
            source.take(examples),
            SensorModel(),
            size,
            self.args.batch_size,
            training=True,
            seed=self.seed,
            epochs=epochs,
            simulate_on_device=True,
            crop_area=crop_area,
        )
        return dataset.map(lambda f, label: ({"clean": f["clean"]}, {key: label}))

    # -- models ----------------------------------------------------------------------------------------------
    def train_heads(self):
        import keras

        from dirtypixels_tf.models import heads
        from dirtypixels_tf.models.joint import HeadClassifier
        from dirtypixels_tf.models.segmentation import HeadSegmenter, build_dense_head
        from dirtypixels_tf.training.losses import PixelCrossEntropy, SparseCrossEntropy

        args = self.args
        self.seg_head = build_dense_head("mobilenet_v1_aspp", (SEG_SIZE, SEG_SIZE, 3), 11, width=0.25)
        self.cls_head = heads.build_head("mobilenet_v1", (CLS_SIZE, CLS_SIZE, 3), 10, width=0.25)
        for model, loss, data in (
            (
                HeadSegmenter(self.seg_head, "mobilenet_v1_aspp", (SEG_SIZE, SEG_SIZE)),
                {"segmentation": PixelCrossEntropy()},
                self.clean(self.seg_train, SEG_SIZE, args.head_examples, args.head_epochs, "segmentation", (0.5, 1)),
            ),
            (
                HeadClassifier(self.cls_head, "mobilenet_v1", (CLS_SIZE, CLS_SIZE)),
                {"logits": SparseCrossEntropy()},
                self.clean(self.cls_train, CLS_SIZE, args.head_examples, args.head_epochs, "logits", (0.5, 1)),
            ),
        ):
            model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=loss)
            model.fit(data, verbose=0)
            precise_batch_norm(model, data.take(PRECISE_BN_BATCHES).map(lambda x, y: x))
        self.seg_head.trainable = False
        self.cls_head.trainable = False

    def segmenter(self, isp_name, weights_from=None):
        from dirtypixels_tf.models.isp import copy_weights
        from dirtypixels_tf.models.segmentation import JointSegmenter

        model = JointSegmenter(self._isp(isp_name), self.seg_head, "mobilenet_v1_aspp", (SEG_SIZE, SEG_SIZE))
        if weights_from is not None:
            copy_weights(weights_from, model.isp)
        return model

    def classifier(self, isp_name, weights_from=None):
        from dirtypixels_tf.models.isp import copy_weights
        from dirtypixels_tf.models.joint import JointClassifier

        model = JointClassifier(self._isp(isp_name), self.cls_head, "mobilenet_v1", (CLS_SIZE, CLS_SIZE), freeze="head")
        if weights_from is not None:
            copy_weights(weights_from, model.isp)
        return model

    @staticmethod
    def _isp(isp_name):
        from dirtypixels_tf.models.isp import build_isp

        return build_isp(isp_name, **({"encoder_filters": 16, "decoder_filters": 32} if isp_name == "liu" else {}))

    def fit(self, model, data, task_output=None, weight=0.0, learning_rate=1e-3):
        """Fit the ISP of `model` (head frozen) on MSE(image, clean) [+ weight x task loss]."""
        import keras

        from dirtypixels_tf.training.losses import PixelCrossEntropy, SparseCrossEntropy

        losses, weights = {"image": keras.losses.MeanSquaredError()}, {"image": 1.0}
        if task_output is not None:
            losses[task_output] = PixelCrossEntropy() if task_output == "segmentation" else SparseCrossEntropy()
            weights[task_output] = weight
        else:  # the task target is in the batches but has no loss
            data = data.map(lambda x, y: (x, {"image": y["image"]}))
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=losses, loss_weights=weights)
        model.fit(data, verbose=0)
        precise_batch_norm(model, data.take(PRECISE_BN_BATCHES).map(lambda x, y: x))
        return model

    # -- one level -------------------------------------------------------------------------------------------
    def level(self, path, preset, lux):
        """{"seg": {column: mIoU}, "cls": {column: top-1}, "psnr": {column: dB}} at one noise level."""
        from dirtypixels_tf.evaluation import baselines, grid, predictors
        from dirtypixels_tf.physics import noise
        from dirtypixels_tf.physics.sensor import SensorModel

        args = self.args
        light = noise.lux_to_light_level(lux)
        sensor = SensorModel(preset=preset, light_levels=(light, light))
        isp_name = "liu" if path == "rgb" else "anscombe"
        seg_frames = self.frames(self.seg_train, SEG_SIZE, sensor, args.isp_examples, None, "segmentation", (0.5, 1))
        cls_frames = self.frames(self.cls_train, CLS_SIZE, sensor, args.isp_examples, None, "logits", (0.5, 1))

        def take(data, epochs):
            steps = max(1, args.isp_examples // args.batch_size)
            return data.take(steps * epochs)

        stage1 = self.fit(self.segmenter(isp_name), take(seg_frames, args.stage1_epochs))
        separate = self.fit(self.segmenter(isp_name, stage1.isp), take(seg_frames, args.stage2_epochs))
        joint = self.fit(
            self.segmenter(isp_name, stage1.isp),
            take(seg_frames, args.stage2_epochs),
            "segmentation",
            SEG_LAMBDA * args.lambda_scale,
        )
        joint_cls = self.fit(
            self.classifier(isp_name, stage1.isp),
            take(cls_frames, args.stage2_epochs),
            "logits",
            CLS_LAMBDA * args.lambda_scale,
        )
        pattern = sensor.pattern
        bilinear = baselines.get_pipeline("bilinear", pattern)

        def conventional(model, size):
            if path == "raw":
                return predictors.ConventionalIspPredictor(baselines.get_pipeline("malvar_nlm", pattern), model, size)
            return gaussian_conventional(model, size, pattern)

        seg_models = {
            "noisy": predictors.ConventionalIspPredictor(bilinear, separate, SEG_SIZE),
            "conventional": conventional(separate, SEG_SIZE),
            "separate": separate,
            "joint": joint,
            "cross": self.segmenter(isp_name, joint_cls.isp),
        }
        cls_separate = self.classifier(isp_name, separate.isp)
        cls_models = {
            "noisy": predictors.ConventionalIspPredictor(bilinear, cls_separate, CLS_SIZE),
            "conventional": conventional(cls_separate, CLS_SIZE),
            "separate": cls_separate,
            "joint": joint_cls,
            "cross": self.classifier(isp_name, joint.isp),
        }
        spec = f"{lux:g}"
        options = {"light_levels": (spec,), "psfs": ("none",), "sensor": preset, "pattern": pattern}
        options.update(seed=0, progress=False, batch_size=64)
        result = {"seg": {}, "cls": {}, "psnr": {}}
        for column, model in seg_models.items():
            table = grid.evaluate(model, self.seg_test, central_fraction=1.0, **options)
            cell = table.cells[(table.rows[0], "none")]
            result["seg"][column], result["psnr"][column] = cell["miou"], cell["psnr"]
        for column, model in cls_models.items():
            table = grid.evaluate(model, self.cls_test, quality=False, **options)
            result["cls"][column] = table.cells[(table.rows[0], "none")]["top1"]
        return result


def gaussian_conventional(model, size, pattern):
    """A predictor: bilinear demosaicking, non-local means for white Gaussian noise of std sigma, `model`'s head."""
    from dirtypixels_tf.evaluation import baselines, predictors

    head = predictors.head_function(model)

    def run(features, psf):
        images = np.stack(
            [
                baselines.gaussian_denoise(
                    baselines.demosaic(raw[..., 0].astype(np.float64), "bilinear", pattern), "nlm", s
                )
                for raw, s in zip(features["raw"], features["sigma"])
            ]
        )
        images = np.clip(images, 0.0, 1.0).astype(np.float32)
        scores = head(images)
        return {"image": images, "segmentation" if scores.ndim == 4 else "logits": scores}

    return predictors.FunctionPredictor(run, size, description="bilinear + non-local means + head")


def orderings(results, names):
    """[(statement, holds)] of the issue's orderings on the seed means."""
    lines = []
    for name in names:
        seg = {c: np.mean([r[name]["seg"][c] for r in results]) for c in SEG_COLUMNS}
        cls = {c: np.mean([r[name]["cls"][c] for r in results]) for c in CLS_COLUMNS}
        for column in ("conventional", "separate", "joint", "cross"):
            lines.append((f"{name}: mIoU {column} > noisy", seg[column] > seg["noisy"]))
        lines.append((f"{name}: mIoU joint >= separate", seg["joint"] >= seg["separate"]))
        lines.append((f"{name}: mIoU joint >= separate + 2 points", seg["joint"] >= seg["separate"] + 0.02))
        lines.append((f"{name}: mIoU cross-task >= separate", seg["cross"] >= seg["separate"]))
        lines.append((f"{name}: top-1 cross-task (seg-trained ISP) >= separate", cls["cross"] >= cls["separate"]))
    return lines


def format_tables(results, names):
    def cell(values):
        per_seed = "/".join(f"{100 * v:.1f}" for v in values)
        return f"{100 * np.mean(values):.1f} ({per_seed})"

    lines = ["Table 3 analogue: mIoU % (mean over seeds; each seed in brackets)", ""]
    lines.append("| level | " + " | ".join(SEG_COLUMNS) + " |")
    lines.append("| --- |" + " ---: |" * len(SEG_COLUMNS))
    for name in names:
        values = [cell([r[name]["seg"][c] for r in results]) for c in SEG_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    lines += ["", "Table 2 analogue: top-1 % of the classifier (cross = the ISP trained with segmentation)", ""]
    lines.append("| level | " + " | ".join(CLS_COLUMNS) + " |")
    lines.append("| --- |" + " ---: |" * len(CLS_COLUMNS))
    for name in names:
        values = [cell([r[name]["cls"][c] for r in results]) for c in CLS_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    lines += ["", "PSNR (dB) of the image the segmentation head sees (mean over seeds)", ""]
    lines.append("| level | " + " | ".join(SEG_COLUMNS) + " |")
    lines.append("| --- |" + " ---: |" * len(SEG_COLUMNS))
    for name in names:
        values = [f"{np.mean([r[name]['psnr'][c] for r in results]):.2f}" for c in SEG_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    lines += ["", "Liu et al. 2018 Table 3 (VOC val, full scale), sigma 15 / 30 / 45 / 60:"]
    lines += [f"  {c}: " + " / ".join(f"{v:.2f}" for v in PAPER_TABLE3[c]) for c in SEG_COLUMNS]
    return lines


def write(args, results, names, wall_s):
    """Print the tables and orderings of `results` and write --out/results.json and --out/tables.md."""
    lines = format_tables(results, names)
    lines += ["", "Orderings (seed means):"]
    lines += [f"  {'holds ' if holds else 'BROKEN'}  {statement}" for statement, holds in orderings(results, names)]
    lines += ["", f"seeds {args.seeds}, wall clock {wall_s:.0f} s; settings: {vars(args)}"]
    print("\n".join(lines))
    write_partial(args, results)
    with open(os.path.join(args.out, "tables.md"), "w") as stream:
        stream.write("\n".join(lines) + "\n")


def merge(args):
    """Tabulate the seeds of several results.json files (the runs of one seed joined; the levels every seed has; the
    settings of the first run, which the others should share; the wall clock summed over the runs)."""
    runs = []
    for path in args.merge:
        with open(path) as stream:
            runs.append(json.load(stream))
    by_seed = {}  # runs of one seed at other levels join into one entry
    for run in runs:
        for seed, levels in zip(run["settings"]["seeds"], run["seeds"]):
            by_seed.setdefault(seed, {}).update(levels)
    seeds, results = list(by_seed), list(by_seed.values())
    wall_s = sum(max(level["wall_s"] for level in run["seeds"][-1].values()) for run in runs)
    settings = runs[0]["settings"]
    names = [name for name in results[0] if all(name in r for r in results)]
    merged = argparse.Namespace(**{**settings, "seeds": seeds, "out": args.out, "merge": args.merge})
    write(merged, results, names, wall_s)


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    if args.merge:
        merge(args)
        return 0
    grid_levels = levels(args)
    results = []
    for seed in args.seeds:
        bench = Bench(args, seed)
        bench.train_heads()
        per_level = {}
        results.append(per_level)
        for path, name, preset, lux in grid_levels:
            per_level[name] = bench.level(path, preset, lux)
            per_level[name]["wall_s"] = round(time.time() - start)
            print(f"seed {seed}, {name}: {json.dumps(per_level[name])} ({time.time() - start:.0f} s)", flush=True)
            write_partial(args, results)
    write(args, results, [name for _, name, _, _ in grid_levels], time.time() - start)
    return 0


def write_partial(args, results):
    """--out/results.json after every level, so an interrupted run keeps what it measured."""
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as stream:
        json.dump({"settings": vars(args), "seeds": results}, stream, indent=1)


if __name__ == "__main__":
    sys.exit(main())
