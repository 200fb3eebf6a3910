"""Diamond et al. 2021 Table 1 at small scale on real data: its five camera pipelines (and a sixth, the packed prior) x light settings, top-1 / top-5.

    python benchmarks/replicate_table.py                    # Fashion-MNIST, 3lux, 6lux, 2to20lux (about 20 min, 2 cores)
    python benchmarks/replicate_table.py --quick            # smoke run: 3lux only, 2,000 examples, 2 epochs
    python benchmarks/replicate_table.py --imagenet DIR     # the same table at 128x128 on an ImageNet-style dataset

Rows (every classifier is the same head, MobileNet-v1 of width 0.25 at 32x32 as in dirtypixels_tf/configs/default.yaml;
every trained row gets the same stage-2 budget: --train-examples x --epochs at the row's light setting with
default.yaml's optimizer, Adam 2e-3 decayed x0.7 per epoch, batch 64, the same training stream of simulated RAW
frames, seed 0):
  pretraining (once): the head alone on the clean (noise-free) training images.
  stage 1 (once per learned ISP, shared by every light setting): the ISP of rows 4 to 6 trained alone as the main
     job's stage 1 (default.yaml's `pretrain`): L1 against the clean image, --train-examples x 2 epochs, over the
     main job's 2 to 200 lux, which holds every setting of the table (one run per ISP instead of one per setting).
  1. From scratch on RAW: bilinear demosaicking + the head from random initialization, trained on the setting's RAW
     (classification loss).
  2. Conventional ISP + pretrained: the conventional ISP (--conventional-isp, default malvar_nlm: GAT + non-local
     means on the Bayer planes + Malvar 2004 demosaicking, evaluation/baselines.py; the stand-in for Darktable)
     applied to the setting's RAW, then the pretrained head as it is.
  3. Conventional ISP + fine-tuned: the pretrained head fine-tuned on that ISP's output of the setting's training
     RAW (classification loss). The ISP output of the first epoch of the training stream (--train-examples images)
     is computed once per setting and cached; the fine-tuning runs --epochs epochs over that cache (random flips,
     reshuffled).
  4. Chen U-Net + fine-tuned: models.isp ChenUNet (--chen-filters base filters) as its stage 1 left it (frozen,
     model.freeze "isp"), the pretrained head fine-tuned on its output of the setting's RAW (classification loss):
     the paper's protocol for this row, reconstruction first, then the classifier fine-tuned on the U-Net's output.
     (Trained jointly as row 5, the U-Net diverged at default.yaml's learning rate: see the table notes.)
  5. Joint Anscombe network (release settings: 1 iteration) from its stage 1 + the pretrained head, trained jointly
     on the setting as the main job's stage 2: the ISP's output clipped to [0, 1] before the head (the release's
     wiring, in the model) and default.yaml's loss, Liu et al. 2018's joint loss with an L1 image term,
     L1(image, clean) + 0.02 x cross entropy (with cross entropy alone this budget drives the ISP's output into a
     Bayer checkerboard; see default.yaml).
  6. Not in the paper: row 5 with the prior of the preset joint_packed_mobilenet_v1_128 (on the packed 2x2 Bayer
     planes at half resolution, top width 8), its own stage 1 and the same stage 2: the mobile-grade ISP against the
     release's at the same budget.
Every row is evaluated with evaluation.grid.evaluate on the held-out test split (Fashion-MNIST's 10,000 test
images), example i simulated with the same seed in every row (same noise per example), centre crop as in training;
top-1, top-5 and the PSNR of the image the head sees against the clean image.
The paper's numbers (Diamond et al. 2021 Table 1: ImageNet, 128x128, MobileNet-v1 1.0, Darktable as the
conventional ISP) are printed beside ours for reference; they are not expected to match in level, only in ordering.

Measured with the defaults (24 min 22 s wall clock on 2 cores with other jobs beside it; rows 1 to 5 took 14 min 32 s
on a quiet machine), top-1 / top-5 in % and the image PSNR in dB the head sees, 10,000 test images per cell:
                                   3lux                  6lux                  2to20lux
    1. from scratch on RAW         46.54 / 94.96  12.76  56.37 / 97.23  16.41  52.65 / 95.48  16.26
    2. malvar_nlm + pretrained     40.60 / 90.97  14.53  60.58 / 97.99  19.24  54.33 / 94.91  18.96
    3. malvar_nlm + fine-tuned     66.80 / 99.08  14.53  71.17 / 99.26  19.24  69.60 / 99.19  18.96
    4. Chen U-Net + fine-tuned     70.87 / 99.33  19.68  72.69 / 99.27  22.51  70.62 / 99.32  22.23
    5. joint Anscombe network      70.16 / 99.28  16.20  72.35 / 99.28  19.05  71.33 / 99.16  18.79
    6. joint, packed prior         68.44 / 98.90  15.14  72.03 / 99.29  18.27  69.58 / 99.01  17.55
Stage 1 (test PSNR at 2 to 200 lux): U-Net 23.93 dB, Anscombe network 20.35 dB, its packed variant 17.90 dB. Here both
learned ISPs of the paper (rows 4, 5) lead the conventional rows 2 and 3 and from scratch at every setting, and row 3
leads row 2. Of the paper's pairwise top-1 orderings (table notes) 8, 8 and 6 of 10 hold at 3lux, 6lux and 2to20lux;
broken: joint > U-Net at 3lux and 6lux (the 7.98 M-parameter U-Net leads the 0.27 M joint model by 0.7 and 0.3 points;
at 2to20lux the joint model leads by 0.7), from scratch > conventional fine-tuned (3lux, 2to20lux), from scratch >
conventional pretrained (6lux, 2to20lux), and at 2to20lux the paper's U-Net below from scratch and conventional
fine-tuned. Row 6, the mobile-grade prior (half resolution, width 8), trails row 5 by 1.7, 0.3 and 1.8 points and 0.8
to 1.2 dB. Rows 3 and 4 are not bit-reproducible (row 3 in earlier runs of the same command: 66.17, 66.66, 66.67 and
66.90 % at 3lux, 70.58 and 71.77 % at 6lux, 68.48 % at 2to20lux). With Liu et al.'s MSE as row 5's image term
(default.yaml's earlier stage-2 loss) row 5 gave 70.47 / 72.22 / 72.77 % top-1 and 17.05 / 19.08 / 18.57 dB.

Writes into --out (default runs/replicate_table, runs/replicate_table_quick with --quick): table.md, table.csv,
results.json, and one run directory per trained model (pretrained_head/, stage1/<row>/, <setting>/<row>/) holding
model_precise_bn.keras, the evaluated model (BatchNorm statistics re-estimated after training, see the table notes).

--imagenet DIR: DIR holds either train/ and val/ (or validation/) folders of class subfolders (the classes are the
subfolder names; a 1000-class head for ImageNet), or TFRecords train-* and validation-* in slim's layout (labels
1..1000 with 0 = background: a 1001-class head). RAW frames are 128x128; the head is MobileNet-v1 of width
--head-width (default 1.0 there, the paper's); augmentation and evaluation crop are the package's ImageNet
defaults (random crop area 0.1..1, centre fraction 0.875).
"""

import argparse
import dataclasses
import glob
import hashlib
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from dirtypixels_tf.data import source_spec, sources  # noqa: E402
from dirtypixels_tf.evaluation import baselines, grid, predictors  # noqa: E402
from dirtypixels_tf.models import presets  # noqa: E402
from dirtypixels_tf.physics import noise  # noqa: E402
from dirtypixels_tf.training import config as config_lib  # noqa: E402
from dirtypixels_tf.training import data as data_lib  # noqa: E402
from dirtypixels_tf.training import model_setup, optimizers, run_experiment  # noqa: E402
from dirtypixels_tf.training.fit import evaluate as evaluate_metrics  # noqa: E402
from dirtypixels_tf.training.losses import LIU_IMAGE_LOSS, SparseCrossEntropy  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = config_lib.resolve_config("default")
DEFAULT = config_lib.load_config(DEFAULT_CONFIG)
STAGE1_PROFILE = DEFAULT.data.profile  # rows 4 to 6: stage 1 over the main job's light range (2 to 200 lux)
PACKED_SETTINGS = presets.get_preset("joint_packed_mobilenet_v1_128").spec.isp_settings
LEARNED_ISPS = {  # rows 4 to 6: (models.isp name, settings); base_filters of the U-Net come from the plan
    "chen_unet": ("chen_unet", {}),
    "joint_anscombe": ("anscombe", {"iterations": 1}),
    "joint_packed": ("anscombe", {"iterations": 1, **PACKED_SETTINGS}),
}
JOINT_LOSS = config_lib.to_dict(DEFAULT)["loss"]  # the main job's stage 2 (Liu et al. 2018's, L1)
STAGE2 = {  # rows 4 to 6 after stage 1: (model.freeze, loss section)
    "chen_unet": ("isp", {"kind": "classification"}),  # the U-Net as stage 1 left it, the head fine-tuned on its output
    "joint_anscombe": (None, JOINT_LOSS),
    "joint_packed": (None, JOINT_LOSS),
}
HEAD = "mobilenet_v1"


def joint_loss_text(loss):
    """E.g. "L1(image, clean) + 0.02 x cross entropy" for a "liu" loss section."""
    image_term = (loss.get("image_loss") or LIU_IMAGE_LOSS).upper()
    return f"{image_term}(image, clean) + {loss['weight']} x cross entropy"


ROWS = (
    "scratch_raw",
    "conventional_pretrained",
    "conventional_finetuned",
    "chen_unet",
    "joint_anscombe",
    "joint_packed",
)
ROW_TITLES = {
    "scratch_raw": "From Scratch MobileNet-v1 (RAW input w/o ISP)",
    "conventional_pretrained": "Conventional ISP + Pretrained",
    "conventional_finetuned": "Conventional ISP + Finetuning",
    "chen_unet": "U-Net [Chen et al. 2018] + Finetuning",
    "joint_anscombe": "Proposed Joint Architecture (MobileNet-v1 Head)",
    "joint_packed": "Joint, prior on the packed Bayer planes (not in the paper)",
}
# Diamond et al. 2021 Table 1 (ImageNet), top-1 and top-5 in %; the conventional rows are the paper's Darktable rows.
PAPER = {
    "scratch_raw": {"3lux": (23.53, 44.13), "6lux": (32.65, 55.94), "2to20lux": (35.16, 58.14), "2to200lux": (42.65, 66.13)},
    "conventional_pretrained": {"3lux": (0.22, 0.46), "6lux": (0.46, 1.52), "2to20lux": (7.12, 15.28), "2to200lux": (18.20, 32.04)},
    "conventional_finetuned": {"3lux": (20.02, 39.56), "6lux": (34.73, 58.55), "2to20lux": (16.45, 33.13), "2to200lux": (23.47, 43.77)},
    "chen_unet": {"3lux": (29.89, 52.62), "6lux": (36.20, 60.23), "2to20lux": (14.38, 30.44), "2to200lux": (20.23, 39.35)},
    "joint_anscombe": {"3lux": (30.50, 53.28), "6lux": (43.63, 67.73), "2to20lux": (40.87, 64.01), "2to200lux": (48.46, 71.44)},
}  # fmt: skip
EVAL_SEED = 0
EVAL_BATCH = 256
RUN_EVAL_EXAMPLES = 1000  # run_experiment's own end-of-run check; the table comes from grid.evaluate
BN_BATCHES = 100  # training batches of the BatchNorm re-estimation after training (recalibrate_batch_norm)
PRECISE_BN_FILE = "model_precise_bn.keras"  # the trained model with re-estimated BatchNorm statistics
ISP_MEMO_BYTES = 4 * 2**30  # the conventional ISP's test-set output shared by rows 2 and 3 (recomputed if larger)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the benchmark runs: the data (source and paths), sizes, budget and settings."""

    source: str  # "fashion-mnist", "folder" or "tfrecords"
    train_path: str | None
    eval_path: str | None
    image_size: int
    num_classes: int
    head_width: float
    train_examples: int
    epochs: int
    eval_examples: int | None
    settings: tuple
    chen_filters: int
    conventional_isp: str
    crop_area: tuple | None  # None: the package's default (ImageNet)
    central_fraction: float | None
    data_description: str


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def fit_verbosity():
    return 1 if sys.stdout.isatty() else 2  # one line per epoch when the output goes to a file


# ---------------------------------------------------------------------------------------------------------------
# Data and configs


def imagenet_layout(directory):
    """(source, train_path, eval_path, num_classes, description) of an ImageNet-style DIR (see the docstring)."""
    if not os.path.isdir(directory):
        raise SystemExit(f"--imagenet: expected a folder; received {directory!r} (not a folder)")
    for val in ("val", "validation"):
        train, evaluation = os.path.join(directory, "train"), os.path.join(directory, val)
        if os.path.isdir(train) and os.path.isdir(evaluation):
            classes = sources.list_image_folder(train)[2]
            if sources.list_image_folder(evaluation)[2] != classes:
                raise SystemExit(f"--imagenet: {train!r} and {evaluation!r} must hold the same class subfolders")
            return "folder", train, evaluation, len(classes), f"folder {directory} ({len(classes)} classes)"
    train = sorted(glob.glob(os.path.join(directory, "train-*")))
    evaluation = sorted(glob.glob(os.path.join(directory, "validation-*")))
    if train and evaluation:
        description = f"TFRecords {directory} ({len(train)} train / {len(evaluation)} validation files, 1001 classes)"
        return (
            "tfrecords",
            os.path.join(directory, "train-*"),
            os.path.join(directory, "validation-*"),
            1001,
            description,
        )
    raise SystemExit(
        f"--imagenet: {directory!r} must hold train/ and val/ (or validation/) folders of class subfolders, or "
        "TFRecord files train-* and validation-*"
    )


def make_config(
    plan,
    setting,
    isp=None,
    isp_settings=None,
    head_weights=None,
    isp_weights=None,
    loss=None,
    pretrain=None,
    freeze=None,
    eval_examples=RUN_EVAL_EXAMPLES,
):
    """default.yaml with this benchmark's model, data and budget: `isp` None = the head alone on clean images.
    loss: the `loss` section (default: classification); pretrain: the `pretrain` section (default: none); freeze:
    model.freeze."""
    data = config_lib.to_dict(config_lib.load_config(DEFAULT_CONFIG))
    data["description"] = f"replicate_table: {isp or 'clean'} + {HEAD} {plan.head_width}, {setting or 'no noise'}"
    data["model"].update(
        isp=isp,
        isp_settings=dict(isp_settings or {}),
        head=HEAD,
        head_width=plan.head_width,
        image_size=plan.image_size,
        num_classes=plan.num_classes,
        freeze=freeze,
    )
    data["data"].update(
        source=plan.source,
        train_path=plan.train_path,
        eval_path=plan.eval_path,
        train_examples=plan.train_examples,
        eval_examples=eval_examples,
        profile=setting or data["data"]["profile"],
        epochs=plan.epochs,
    )
    if plan.crop_area is None:
        defaults = config_lib.DataConfig()
        data["data"].update(crop_area=defaults.crop_area, central_fraction=defaults.central_fraction)
    data["stages"].update(head_weights=head_weights, isp_weights=isp_weights)
    data["checkpoint"].update(every_steps=None, tensorboard=False, image_summaries_every=0)
    data["compare_isps"] = []
    data["pretrain"] = dict(pretrain or {})
    data["loss"] = dict(loss or {"kind": "classification"})
    return config_lib.from_dict(data)


def stage1_config(plan, isp, isp_settings):
    """Stage 1 of rows 4 to 6: default.yaml's `pretrain` section (the ISP alone, L1 against the clean image, its
    epochs of --train-examples) at default.yaml's light profile (STAGE1_PROFILE)."""
    config = make_config(plan, STAGE1_PROFILE, isp=isp, isp_settings=isp_settings, pretrain=DEFAULT.pretrain)
    return config_lib.pretrain_config(config)


def test_source(plan):
    """The held-out split as a dataset of (image, label)."""
    path = None if plan.source == source_spec.FASHION_MNIST else plan.eval_path
    return source_spec.open_source(plan.source, path, split="test")[0]


# ---------------------------------------------------------------------------------------------------------------
# Training


def train_run(config, run_dir, what):
    """run_experiment in run_dir; returns (model, seconds, its end-of-run test metrics)."""
    log(f"training {what} -> {run_dir}")
    results = run_experiment(config, run_dir, verbose=fit_verbosity(), log=lambda m: log(f"  {m}"))
    check = results.get("test") or {}
    log(
        f"  done in {results['train_seconds']:.0f} s; end-of-run top-1 (Keras moving BN statistics) {check.get('top1')}"
    )
    model = results["model"]
    recalibrate_batch_norm(model, stream_inputs(config, model), what)
    model_setup.inference_copy(model).save(os.path.join(run_dir, PRECISE_BN_FILE))
    return model, results["train_seconds"], results.get("test")


def recalibrate_batch_norm(model, batches, what):
    """Precise BN (training.model_setup.precise_batch_norm) with a progress bar. With this short budget Keras' moving
    averages (momentum 0.99) lag the fast-changing weights so far that the trained models evaluate at chance in
    inference mode; the re-estimated statistics fix that. Returns the number of batches used."""
    return model_setup.precise_batch_norm(model, tqdm(batches, desc=f"BN statistics ({what})", unit="batch"))


def stream_inputs(config, model, batches=BN_BATCHES):
    """The first `batches` training batches of `config` as the inputs `model` takes."""
    data = data_lib.ExperimentData(config, model_setup.model_input_names(model))
    return data.train_dataset(0, 0, 1).take(batches).map(lambda inputs, targets: inputs)


def cache_isp_output(config, pipeline, cache_file):
    """The conventional ISP's output of the first epoch of the training stream of `config` (its RAW frames),
    cached in cache_file: a dataset of (image [H, W, 3], label). Returns (dataset, examples, seconds)."""
    data = data_lib.ExperimentData(config, ("raw", "alpha", "sigma"))
    stream = baselines.isp_dataset(data.train_dataset(0, 0, 1), pipeline)
    images = stream.map(lambda features, targets: (features["image"], targets["logits"])).unbatch()
    cached = images.cache(cache_file)
    start, count = time.perf_counter(), 0
    with tqdm(
        total=data.steps.steps_per_epoch * config.data.batch_size, desc=f"{pipeline.name} ISP", unit="img"
    ) as bar:
        for _ in cached:
            count += 1
            bar.update(1)
    return cached, count, time.perf_counter() - start


def finetune_on_isp(config, pretrained_file, pipeline, run_dir):
    """Row 3: the pretrained head-alone model fine-tuned on the conventional ISP's cached output of the setting.
    Returns (model, seconds of ISP precomputation, seconds of training, cached examples)."""
    os.makedirs(run_dir, exist_ok=True)
    cache_file = os.path.join(run_dir, "isp_cache")
    log(f"conventional ISP {pipeline.name} on the training RAW of {config.data.profile} (computed once, cached)")
    cached, count, isp_seconds = cache_isp_output(config, pipeline, cache_file)
    log(f"  {count} images in {isp_seconds:.0f} s ({count / isp_seconds:.0f} images/s)")
    keras.utils.set_random_seed(config.seed)
    model = keras.saving.load_model(pretrained_file, compile=False)
    steps = config_lib.derive_steps(config, count)
    batch = config.data.batch_size

    def flip(image, label):
        return tf.image.random_flip_left_right(image), label

    train = (
        cached.shuffle(count, seed=config.seed, reshuffle_each_iteration=True)
        .map(flip if config.data.flip else (lambda x, y: (x, y)), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch, drop_remainder=True)
        .map(lambda x, y: ({"clean": x}, {"logits": y}))
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )
    optimizer = optimizers.build_optimizer(config.optimizer, config.schedule, steps)
    model.compile(optimizer=optimizer, loss={"logits": SparseCrossEntropy(config.loss.label_smoothing)})
    log(
        f"training conventional ISP + fine-tuned head -> {run_dir}: {steps.steps_per_epoch} steps x {config.data.epochs}"
    )
    start = time.perf_counter()
    model.fit(train, epochs=config.data.epochs, steps_per_epoch=steps.steps_per_epoch, verbose=fit_verbosity())
    seconds = time.perf_counter() - start
    recalibrate_batch_norm(model, train.take(BN_BATCHES).map(lambda inputs, targets: inputs), "row 3")
    model.save(os.path.join(run_dir, PRECISE_BN_FILE))
    for path in glob.glob(cache_file + "*"):
        os.remove(path)
    log(f"  done in {seconds:.0f} s (cache removed)")
    return model, isp_seconds, seconds, count


# ---------------------------------------------------------------------------------------------------------------
# Evaluation


class SharedIsp:
    """A conventional ISP whose output per batch is remembered (keyed by the batch's RAW bytes and noise levels), so
    rows 2 and 3, evaluated on the same deterministic test frames, run the ISP once (up to ISP_MEMO_BYTES)."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.memo = {}
        self.bytes = 0

    def __call__(self, features, psf):
        key = hashlib.sha1(b"".join(np.ascontiguousarray(features[k]).tobytes() for k in ("raw", "alpha", "sigma")))
        key = key.hexdigest()
        if key in self.memo:
            return self.memo[key]
        images = self.pipeline.process_batch(features["raw"], features["alpha"], features["sigma"], psf)
        if self.bytes + images.nbytes <= ISP_MEMO_BYTES:
            self.memo[key] = images
            self.bytes += images.nbytes
        return images


def conventional_predictor(shared_isp, head_model, plan, description):
    head = predictors.head_function(head_model)

    def predict(features, psf):
        images = shared_isp(features, psf)
        return {"logits": head(images), "image": images}

    return predictors.FunctionPredictor(predict, plan.image_size, description=description)


def evaluate_row(model, plan, setting, what):
    log(f"evaluating {what} at {setting} on the test split")
    start = time.perf_counter()
    table = grid.evaluate(
        model,
        test_source(plan),
        light_levels=(setting,),
        psfs=("none",),
        image_size=plan.image_size,
        batch_size=EVAL_BATCH,
        limit=plan.eval_examples,
        seed=EVAL_SEED,
        central_fraction=plan.central_fraction or config_lib.DataConfig().central_fraction,
        quality=True,
        data_description=plan.data_description,
    )
    cell = table.cells[(setting, "none")]
    seconds = time.perf_counter() - start
    log(
        f"  top-1 {100 * cell['top1']:.2f}%, top-5 {100 * cell['top5']:.2f}%, image PSNR {_db(cell['psnr'])} dB on "
        f"{cell['examples']} ({seconds:.0f} s)"
    )
    keys = ("top1", "top5", "psnr", "ssim", "examples")
    return {**{key: cell[key] for key in keys}, "eval_seconds": seconds}


# ---------------------------------------------------------------------------------------------------------------
# The benchmark


def run(plan, out_dir):
    start = time.perf_counter()
    results = {"plan": dataclasses.asdict(plan), "rows": {}, "params": {}, "pretraining": {}, "stage1": {}}
    pipeline = baselines.get_pipeline(plan.conventional_isp)

    pretrain_dir = os.path.join(out_dir, "pretrained_head")
    config = make_config(plan, None, eval_examples=plan.eval_examples)
    head_model, seconds, before = train_run(config, pretrain_dir, "the head on clean images (pretraining, once)")
    clean = evaluate_metrics(
        head_model, data_lib.ExperimentData(config, ("clean",)).eval_dataset(EVAL_BATCH), plan.num_classes
    )
    log(
        f"  pretrained head on the clean test images: top-1 {_percent(clean.get('top1'))}%, top-5 {_percent(clean.get('top5'))}%"
    )
    results["pretraining"] = {"train_seconds": seconds, "clean_test": clean, "clean_test_keras_bn": before}
    pretrained_file = os.path.join(pretrain_dir, PRECISE_BN_FILE)
    results["params"]["conventional_pretrained"] = results["params"]["conventional_finetuned"] = (
        head_model.count_params()
    )

    stage1_dirs = {}
    for row, (isp, _) in LEARNED_ISPS.items():
        settings = isp_settings(plan, row)
        number = ROWS.index(row) + 1
        stage1_dirs[row] = os.path.join(out_dir, "stage1", row)
        log(f"stage 1 of row {number}: the {isp!r} ISP alone, L1 against the clean image, at {STAGE1_PROFILE} (once)")
        stage1 = run_experiment(
            stage1_config(plan, isp, settings), stage1_dirs[row], verbose=fit_verbosity(), log=lambda m: log(f"  {m}")
        )
        psnr = (stage1.get("test") or {}).get("psnr")
        log(f"  done in {stage1['train_seconds']:.0f} s; test image PSNR at {STAGE1_PROFILE} {psnr:.2f} dB")
        results["stage1"][row] = {"train_seconds": stage1["train_seconds"], "test": stage1.get("test")}

    for setting in plan.settings:
        rows = results["rows"].setdefault(setting, {})
        setting_dir = os.path.join(out_dir, setting)
        shared = SharedIsp(pipeline)

        config = make_config(plan, setting, isp="bilinear")
        model, seconds, before = train_run(config, os.path.join(setting_dir, "scratch_raw"), f"row 1 at {setting}")
        rows["scratch_raw"] = {
            **evaluate_row(model, plan, setting, "row 1"),
            "train_seconds": seconds,
            "end_of_run_keras_bn": before,
        }
        results["params"]["scratch_raw"] = model.count_params()

        predictor = conventional_predictor(shared, head_model, plan, f"{pipeline.name} + pretrained head")
        rows["conventional_pretrained"] = {**evaluate_row(predictor, plan, setting, "row 2"), "train_seconds": 0.0}

        finetuned, isp_seconds, seconds, count = finetune_on_isp(
            config, pretrained_file, pipeline, os.path.join(setting_dir, "conventional_finetuned")
        )
        predictor = conventional_predictor(shared, finetuned, plan, f"{pipeline.name} + fine-tuned head")
        rows["conventional_finetuned"] = {
            **evaluate_row(predictor, plan, setting, "row 3"),
            "train_seconds": seconds,
            "isp_cache_seconds": isp_seconds,
            "isp_cache_examples": count,
        }
        shared.memo.clear()

        for row, (isp, _) in LEARNED_ISPS.items():
            config = make_config(
                plan,
                setting,
                isp=isp,
                isp_settings=isp_settings(plan, row),
                head_weights=pretrained_file,
                isp_weights=stage1_dirs[row],
                freeze=STAGE2[row][0],
                loss=STAGE2[row][1],
            )
            number = ROWS.index(row) + 1
            model, seconds, before = train_run(config, os.path.join(setting_dir, row), f"row {number} at {setting}")
            rows[row] = {
                **evaluate_row(model, plan, setting, f"row {number}"),
                "train_seconds": seconds,
                "end_of_run_keras_bn": before,
            }
            results["params"][row] = model.count_params()
        write_outputs(results, out_dir, time.perf_counter() - start)  # partial table after each setting

    results["total_seconds"] = time.perf_counter() - start
    return write_outputs(results, out_dir, results["total_seconds"])


def isp_settings(plan, row):
    """The models.isp settings of learned-ISP row `row` (LEARNED_ISPS; the U-Net's base filters from the plan)."""
    isp, settings = LEARNED_ISPS[row]
    return {**settings, "base_filters": plan.chen_filters} if isp == "chen_unet" else dict(settings)


def ordering_text(cells, setting):
    """Our and the paper's top-1 ranking of the rows at `setting`, and which of the paper's pairwise orderings hold."""
    rows = [row for row in ROWS if row in cells and setting in PAPER.get(row, {})]
    number = {row: str(ROWS.index(row) + 1) for row in rows}
    ours = sorted(rows, key=lambda row: -cells[row]["top1"])
    paper = sorted(rows, key=lambda row: -PAPER[row][setting][0])
    pairs = [(a, b) for i, a in enumerate(paper) for b in paper[i + 1 :]]
    broken = [f"{number[a]} > {number[b]}" for a, b in pairs if cells[a]["top1"] <= cells[b]["top1"]]
    return (
        f"ours {' > '.join(number[r] for r in ours)}, paper {' > '.join(number[r] for r in paper)}; "
        f"{len(pairs) - len(broken)} of {len(pairs)} pairs hold" + (f" (not: {', '.join(broken)})" if broken else "")
    )


def _percent(value):
    return "-" if value is None else f"{100 * value:.2f}"


def _db(value):
    return "-" if value is None else f"{value:.2f}"


def markdown(results, seconds):
    plan = results["plan"]
    settings = [s for s in plan["settings"] if s in results["rows"]]
    cache = {s: results["rows"][s]["conventional_finetuned"].get("isp_cache_examples") for s in settings}
    lines = [
        "# Diamond et al. 2021 Table 1 at small scale",
        "",
        f"Data: {plan['data_description']}, RAW {plan['image_size']}x{plan['image_size']} simulated with the "
        f"{noise.DEFAULT_PRESET} noise model, {plan['num_classes']} classes. Head: MobileNet-v1 width "
        f"{plan['head_width']}. Stage-2 budget per trained row: {plan['train_examples']} training examples x "
        f"{plan['epochs']} epochs (default.yaml's optimizer). Conventional ISP: {plan['conventional_isp']}. Chen "
        f"U-Net base filters: {plan['chen_filters']}. Test examples per cell: "
        f"{results['rows'][settings[0]]['scratch_raw']['examples'] if settings else '-'} (same noise per example in "
        f"every row). Cached ISP images for row 3: {cache}. Runtime: {seconds / 60:.1f} min.",
        "",
        "Each cell: ours / paper (Diamond et al. 2021 Table 1, ImageNet 128x128, MobileNet-v1 1.0; its conventional "
        "rows are Darktable's), accuracy in %.",
        "",
    ]
    header = ["Row", "Params (M)"] + [f"{s} {k}" for s in settings for k in ("top-1", "top-5")]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |")
    for row in ROWS:
        params = results["params"].get(row)
        cells = [ROW_TITLES[row], "-" if params is None else f"{params / 1e6:.3f}"]
        for setting in settings:
            ours = results["rows"][setting].get(row, {})
            paper = PAPER.get(row, {}).get(setting, (None, None))
            for k, metric in enumerate(("top1", "top5")):
                reference = "-" if paper[k] is None else f"{paper[k]:.2f}"
                cells.append(f"{_percent(ours.get(metric))} / {reference}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Image PSNR (dB, peak 1) of the image the head sees (rows 2 and 3: the conventional ISP's; row 1: bilinear "
        "demosaicking of the noisy RAW) against the clean image, on the same test cells:",
        "",
        "| Row | " + " | ".join(settings) + " |",
        "| --- | " + " | ".join(["---:"] * len(settings)) + " |",
    ]
    for row in ROWS:
        cells = [_db(results["rows"][s].get(row, {}).get("psnr")) for s in settings]
        lines.append(f"| {ROW_TITLES[row]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Orderings by top-1 (rows by number, best first; a pair holds when ours orders it as the paper does):",
        "",
    ]
    for setting in settings:
        lines.append(f"- {setting}: {ordering_text(results['rows'][setting], setting)}")
    clean = results["pretraining"].get("clean_test") or {}
    if clean:
        lines += [
            "",
            f"Pretrained head on the clean (noise-free) test images: top-1 {_percent(clean.get('top1'))}%, "
            f"top-5 {_percent(clean.get('top5'))}% ({clean.get('examples')} examples).",
        ]
    stage1 = results.get("stage1") or {}
    stage1_text = ", ".join(
        f"row {ROWS.index(row) + 1} {_db((stage1[row].get('test') or {}).get('psnr'))} dB in "
        f"{stage1[row]['train_seconds']:.0f} s"
        for row in ROWS
        if row in stage1
    )
    lines += [
        "",
        f"Budgets: every trained row's stage 2 (rows 1, 3, 4, 5, 6) is {plan['train_examples']} training examples x "
        f"{plan['epochs']} epochs at the cell's light setting. Rows 4 to 6 have in addition a stage 1 of their ISP, "
        f"trained once and shared by every light setting: default.yaml's `pretrain` (the ISP alone, L1 against the "
        f"clean image, {plan['train_examples']} training examples x {DEFAULT.pretrain['data']['epochs']} epochs) "
        f"over {STAGE1_PROFILE} as in the main job (test image PSNR after stage 1 at {STAGE1_PROFILE}, "
        f"{RUN_EVAL_EXAMPLES} test examples: {stage1_text or '-'}). The head's pretraining on clean images "
        f"({plan['train_examples']} x {plan['epochs']}) is shared by rows 2 to 6.",
        "",
        "Stage 2 and losses: rows 1 and 3 train on the classification loss (cross entropy); row 3 fine-tunes the "
        "pretrained head on the conventional ISP's cached output of the first training epoch's RAW frames; row 1 "
        "trains from random initialization. Row 4, as the paper's U-Net + fine-tuning row and like row 3, keeps the "
        "U-Net as stage 1 left it (frozen) and fine-tunes the pretrained head on its output on the classification "
        "loss. Rows 5 and 6 start from their stage-1 ISP and the pretrained head and train both jointly on the main "
        f"job's stage-2 loss, Liu et al. 2018's joint loss {joint_loss_text(JOINT_LOSS)} "
        "(default.yaml: cross entropy alone at this budget drives the ISP's output into a Bayer checkerboard). The "
        "ISP's output is clipped to [0, 1] before the head (the release's wiring) in rows 1, 4, 5 and 6. Row 6 "
        "is row 5 with its prior on the packed 2x2 Bayer planes at half resolution (the preset "
        "joint_packed_mobilenet_v1_128's ISP settings), not in the paper, so it has no paper figures and no place "
        "in the orderings. Training the "
        "U-Net jointly as row 5 (same loss and optimizer) diverged with the defaults: image MSE 3e5 (3lux) "
        "and 3e11 (6lux) over the first stage-2 epoch, then top-1 51.59% and 20.01% with test image PSNR 4.5 and "
        "3.5 dB.",
        "",
        f"After training, every trained model's BatchNorm statistics are re-estimated on {BN_BATCHES} training "
        "batches with the final weights (precise BN): with this short budget Keras' moving averages (momentum 0.99) "
        "lag the weights and the models evaluate near chance in inference mode (results.json keeps those "
        "end-of-run figures as end_of_run_keras_bn).",
    ]
    return "\n".join(lines) + "\n"


def write_outputs(results, out_dir, seconds):
    text = markdown(results, seconds)
    with open(os.path.join(out_dir, "table.md"), "w", encoding="utf-8") as stream:
        stream.write(text)
    with open(os.path.join(out_dir, "table.csv"), "w", encoding="utf-8") as stream:
        stream.write("row,setting,top1,top5,psnr,examples,train_seconds,params,paper_top1,paper_top5\n")
        for setting, rows in results["rows"].items():
            for row in ROWS:
                if row not in rows:
                    continue
                r, paper = rows[row], PAPER.get(row, {}).get(setting, ("", ""))
                stream.write(
                    f"{row},{setting},{r['top1']!r},{r['top5']!r},{r['psnr']!r},{r['examples']},{r['train_seconds']:.1f},"
                    f"{results['params'].get(row, '')},{paper[0]},{paper[1]}\n"
                )
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as stream:
        json.dump({**results, "seconds": seconds}, stream, indent=1)
    return text


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {text!r}")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3lux, 2000 examples, 2 epochs, 500 test")
    parser.add_argument("--train-examples", type=positive_int, help="training examples (default 10000; quick 2000)")
    parser.add_argument("--epochs", type=positive_int, help="epochs of every trained row (default 3; quick 2)")
    parser.add_argument("--eval-examples", type=positive_int, help="test examples (default all; quick 500)")
    parser.add_argument("--settings", help="comma-separated light settings (default 3lux,6lux,2to20lux; quick 3lux)")
    parser.add_argument("--chen-filters", type=positive_int, help="Chen U-Net base filters (default 32; quick 8)")
    parser.add_argument("--conventional-isp", default="malvar_nlm", choices=sorted(baselines.PIPELINES))
    parser.add_argument("--head-width", type=float, help="MobileNet-v1 width (default 0.25; 1.0 with --imagenet)")
    parser.add_argument("--imagenet", metavar="DIR", help="ImageNet-style data at 128x128 (see the docstring)")
    parser.add_argument("--out", help="output directory (default runs/replicate_table[_quick])")
    args = parser.parse_args()
    tf.get_logger().setLevel("ERROR")  # retracing notices of the predictors' last partial batch

    quick = args.quick
    settings = tuple(s.strip() for s in (args.settings or ("3lux" if quick else "3lux,6lux,2to20lux")).split(","))
    for setting in settings:
        if setting not in noise.LIGHT_PROFILES:
            parser.error(f"--settings: expected names of {', '.join(noise.LIGHT_PROFILES)}; received {setting!r}")
    if len(set(settings)) != len(settings):
        parser.error(f"--settings: a setting is repeated in {args.settings!r}")
    if args.imagenet:
        source, train_path, eval_path, classes, description = imagenet_layout(args.imagenet)
        size, width, crop, central = 128, 1.0, None, None
    else:
        source, train_path, eval_path, classes = "fashion-mnist", None, None, 10
        description = "Fashion-MNIST (Debian dataset-fashion-mnist; train split for training, test split held out)"
        size, width, crop, central = 32, 0.25, (0.64, 1.0), 1.0
    plan = Plan(
        source=source,
        train_path=train_path,
        eval_path=eval_path,
        image_size=size,
        num_classes=classes,
        head_width=args.head_width or width,
        train_examples=args.train_examples or (2000 if quick else 10000),
        epochs=args.epochs or (2 if quick else 3),
        eval_examples=args.eval_examples or (500 if quick else None),
        settings=settings,
        chen_filters=args.chen_filters or (8 if quick else 32),
        conventional_isp=args.conventional_isp,
        crop_area=crop,
        central_fraction=central,
        data_description=description,
    )
    out_dir = args.out or os.path.join("runs", "replicate_table_quick" if quick else "replicate_table")
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        parser.error(f"--out: {out_dir!r} is not empty (it holds an earlier run); choose another --out or remove it")
    os.makedirs(out_dir, exist_ok=True)
    log(f"plan: {plan}")
    log(f"output: {out_dir}")
    print(run(plan, out_dir))


if __name__ == "__main__":
    main()
