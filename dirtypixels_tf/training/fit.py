"""The experiment runner: config -> trained model in RUN_DIR (model.keras + params.yaml) and its test metrics.

`run_experiment(config, run_dir)`:
1. seeds (keras.utils.set_random_seed), op determinism if asked, the dtype policy, the strategy (strategy.py);
2. a run directory that already holds a different params.yaml is refused, and so is one whose run and comparisons
   are all finished (model.keras and metrics.json, no backup); params.yaml is written once the model is built and
   the data resolve (a config refused there, e.g. for a missing data path, leaves none behind);
3. in strategy.scope(): the model (model_setup.build_experiment_model), stage-1 weights by component, weight decay, synchronized
   batch norm if asked, the optimizer and schedule (steps derived once, config.derive_steps), compile;
4. training: model.fit on the per-epoch stream (data.py) with the callbacks (callbacks.py) under the default and
   mirrored strategies; under multi_worker the loop of loop.py (Keras' fit fails there, keras-team/keras#20585).
   With data.simulate_on_device the model trained is data.simulating_view, which simulates the frames in the step.
   A backup in RUN_DIR/backup is resumed exactly: a mid-epoch backup at (epoch e, batch b) first runs the rest of
   epoch e (one fit call of steps_per_epoch - b steps), then the remaining epochs;
   trainer "lbfgs": L-BFGS for average PSNR on a fixed training set (lbfgs.py) instead;
5. at the end fit folds the EMA weights into the model; with precise_bn_batches, the batch-norm statistics are
   re-estimated over that many training batches with the final weights (models.precise_batch_norm); the chief saves RUN_DIR/model.keras (an uncompiled copy:
   no optimizer state), deletes the backup, evaluates on the evaluation split and writes RUN_DIR/metrics.json
   (and, with params.yaml, RUN_DIR/class_names.json when the data has class names);
2b. with config.pretrain, stage 1 first: the stage-1 config (config.pretrain_config) is run the same way into
   RUN_DIR/stage1 (resumed if interrupted, skipped once finished) and its model.keras gives the ISP weights;
6. each ISP of compare_isps is trained the same way under RUN_DIR/compare/<isp>/. A run killed during this phase
   resumes there: the trained main model is loaded (and evaluated again if its metrics.json is missing), finished
   comparisons are read back, the others resume from their own backups.
"""

import dataclasses
import json
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from dirtypixels_tf.models.loading import load_model
from dirtypixels_tf.models.segmentation import MeanIoU, segmentation_scores
from dirtypixels_tf.training import callbacks as callbacks_lib
from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training import data as data_lib
from dirtypixels_tf.training import losses as losses_lib
from dirtypixels_tf.training import model_setup, optimizers
from dirtypixels_tf.training import strategy as strategy_lib
from dirtypixels_tf.training.lbfgs import lbfgs_pretrain
from dirtypixels_tf.training.loop import custom_fit

METRICS_FILE = "metrics.json"
CLASS_NAMES_FILE = "class_names.json"  # the training data's class names (index = label), read by export


def _trained(run_dir):
    """Whether run_dir holds a trained model (model.keras) and no backup to resume: its training is over."""
    has_backup = callbacks_lib.read_backup_state(os.path.join(run_dir, callbacks_lib.BACKUP_DIR)) is not None
    return os.path.isfile(os.path.join(run_dir, model_setup.MODEL_FILE)) and not has_backup


def _finished(config, run_dir):
    """Whether the run, its stage 1 and every comparison of config.compare_isps are trained and evaluated
    (metrics.json)."""
    runs = [run_dir] + [os.path.join(run_dir, "compare", isp) for isp in config.compare_isps]
    if config.pretrain:
        runs.append(os.path.join(run_dir, config_lib.PRETRAIN_DIR))
    if config.head_pretrain:
        runs.append(os.path.join(run_dir, config_lib.HEAD_PRETRAIN_DIR))
    return all(_trained(run) and os.path.isfile(os.path.join(run, METRICS_FILE)) for run in runs)


def finished_run(config, run_dir):
    """Whether run_dir holds a finished run of exactly `config` (params.yaml equal, every part trained and
    evaluated): training it again would be refused."""
    params = os.path.join(run_dir, config_lib.PARAMS_FILE)
    return os.path.isfile(params) and config_lib.load_config(params) == config and _finished(config, run_dir)


def _check_run_dir(config, run_dir):
    params = os.path.join(run_dir, config_lib.PARAMS_FILE)
    if os.path.isfile(params):
        previous = config_lib.load_config(params)
        if previous != config:
            raise config_lib.ConfigError(
                f"run directory {run_dir!r} holds a run of another config (its {config_lib.PARAMS_FILE} differs); "
                "choose another --run-dir, or resume it with the same config"
            )
    if _finished(config, run_dir):
        raise config_lib.ConfigError(
            f"run directory {run_dir!r} already holds a finished run ({model_setup.MODEL_FILE}); choose another --run-dir"
        )


def evaluate(model, dataset, num_classes=None):
    """Metrics of `model` on batches of (inputs, targets): "top1"/"top5" for "logits", "miou", "pixel_accuracy" and
    per-class "iou" for "segmentation" (evaluation/metrics.segmentation_scores of the accumulated confusion matrix),
    "psnr" (dB) for image outputs (prefixed with the output name when there are several), and "examples". Runs the
    model locally in inference mode (any strategy)."""
    metrics = None
    count = 0

    @tf.function
    def predict(inputs):
        outputs = model(inputs, training=False)
        return {name: tf.cast(value, tf.float32) for name, value in outputs.items()}  # mixed precision: float32

    for inputs, targets in dataset:
        outputs = predict(inputs)
        if metrics is None:
            metrics = losses_lib.add_top5(losses_lib.build_metrics(targets, num_classes), num_classes or 0)
        for name, objects in metrics.items():
            for metric in objects:
                metric.update_state(targets[name], outputs[name])
        count += int(tf.shape(next(iter(targets.values())))[0])
    if metrics is None:
        return {"examples": 0}
    results = {"examples": count}
    several = len(metrics) > 1
    for name, objects in metrics.items():
        for metric in objects:
            key = f"{name}_{metric.name}" if several and metric.name == "psnr" else metric.name
            if isinstance(metric, MeanIoU):
                results.update(segmentation_scores(metric.confusion()))
            else:
                results[key] = float(metric.result())
    return results


def _setup(config):
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    return previous


def _build(config, strategy):
    with strategy.scope():
        model = model_setup.build_experiment_model(config)
        loaded = model_setup.load_stage_weights(model, config)
        optimizers.apply_weight_decay(model, config.optimizer.weight_decay)
        if config.distribution.sync_batch_norm:
            model_setup.set_sync_batch_norm(model, True)
    return model, loaded


def _save_final(model, run_dir):
    model_setup.set_sync_batch_norm(model, False)
    path = os.path.join(run_dir, model_setup.MODEL_FILE)
    model_setup.inference_copy(model).save(path)
    return path


def _fit(config, run_dir, model, data, strategy, chief, verbose, log):
    steps = data.steps
    spec = config_lib.model_spec(config)
    dtype = "float64" if config.mixed_precision == "float64" else None
    losses, weights = losses_lib.build_losses(config.loss, dtype, task=spec.task)
    with strategy.scope():
        optimizer = optimizers.build_optimizer(config.optimizer, config.schedule, steps)
        full_model, model = model, data.training_model(model_setup.training_view(model, losses))
        metrics = losses_lib.build_metrics(losses, spec.num_classes)
        model.compile(optimizer=optimizer, loss=losses, loss_weights=weights, metrics=metrics)
    wants_images = chief and config.checkpoint.image_summaries_every and "raw" in data.input_names
    summary = data.summary_batch()[0] if wants_images else None
    callbacks, backup = callbacks_lib.build_callbacks(config, run_dir, summary, data.input_names, full_model, chief)
    if config.optimizer.ema:
        callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=False))
    state = callbacks_lib.read_backup_state(backup.backup_dir)
    epoch, batch = (state["epoch"], state["batch"]) if state else (0, 0)
    epochs, per_epoch = config.data.epochs, steps.steps_per_epoch
    if state:
        log(f"resuming from {backup.backup_dir}: epoch {epoch + 1}, batch {batch} (optimizer step {state['step']})")
    if epoch >= epochs:  # trained, but stopped before the model was saved
        backup.set_model(model)
        backup.on_train_begin()
        model.optimizer.finalize_variable_values(model.trainable_variables)
        return
    if strategy_lib.is_multi_worker(strategy):
        backup.batch_offset = batch
        custom_fit(
            model,
            losses,
            weights,
            strategy,
            data.train_dataset_fn(epoch, batch),
            config.data.batch_size,
            epochs,
            per_epoch,
            initial_epoch=epoch,
            first_epoch_steps=per_epoch - batch if batch else None,
            callbacks=callbacks,
            verbose=verbose if chief else 0,
        )
        _check_not_stopped(model, backup)
        return
    validation = None
    if config.data.validation_steps:
        validation = data.eval_dataset(steps=config.data.validation_steps)
    if batch:
        backup.batch_offset = batch
        model.fit(
            data.train_dataset(epoch, batch, epoch + 1),
            initial_epoch=epoch,
            epochs=epoch + 1,
            steps_per_epoch=per_epoch - batch,
            callbacks=callbacks,
            validation_data=validation,
            verbose=verbose,
            shuffle=False,
        )
        _check_not_stopped(model, backup)
        epoch += 1  # the epoch-end backup now holds this point; the next call restores it (undoing fit's EMA fold)
    if epoch < epochs:
        model.fit(
            data.train_dataset(epoch),
            initial_epoch=epoch,
            epochs=epochs,
            steps_per_epoch=per_epoch,
            callbacks=callbacks,
            validation_data=validation,
            verbose=verbose,
            shuffle=False,
        )
        _check_not_stopped(model, backup)


class TrainingStopped(RuntimeError):
    """Training was stopped before its end (TerminateOnNaN: the loss became NaN or infinite)."""


def _check_not_stopped(model, backup):
    if model.stop_training:
        raise TrainingStopped(
            f"training stopped: the loss became NaN or infinite (TerminateOnNaN); the last good state is the backup "
            f"in {backup.backup_dir}"
        )


def _lbfgs(config, model, data, verbose, log):
    from tqdm import tqdm

    count = config.lbfgs.examples
    if count > data.train_size:
        raise config_lib.ConfigError(f"lbfgs.examples: {count} is more than the {data.train_size} training examples")
    collected_inputs, collected_targets, total = [], [], 0
    for inputs, targets in data.train_dataset(0, 0, 1, on_device=False):
        collected_inputs.append({k: np.asarray(v) for k, v in inputs.items()})
        collected_targets.append(np.asarray(targets["image"]))
        total += len(collected_targets[-1])
        if total >= count:
            break
    if total < count:
        raise config_lib.ConfigError(f"lbfgs.examples: the training stream gave {total} examples, fewer than {count}")
    inputs = {k: np.concatenate([c[k] for c in collected_inputs])[:count] for k in collected_inputs[0]}
    targets = np.concatenate(collected_targets)[:count]
    bar = tqdm(total=config.lbfgs.iterations, desc="L-BFGS", unit="it", disable=not verbose)

    def progress(iteration, psnr):
        bar.update(1)
        bar.set_postfix(psnr=f"{psnr:.2f} dB")

    result = lbfgs_pretrain(model, inputs, targets, config.lbfgs.iterations, config.lbfgs.chunk_size, callback=progress)
    bar.close()
    log(
        f"L-BFGS: mean PSNR {result['initial_psnr']:.2f} -> {result['final_psnr']:.2f} dB in {result['iterations']} iterations ({result['message']})"
    )
    return result


def comparison_config(config, isp_name):
    """`config` with the ISP replaced by `isp_name` (default settings; the same head, data, optimizer and budget;
    the task's loss ("classification" with the same label smoothing, or "segmentation"), no stage 1)."""
    spec = config_lib.model_spec(config)
    model = config_lib.ModelConfig(
        isp=isp_name,
        head=spec.head,
        head_width=spec.head_width,
        image_size=spec.image_size,
        num_classes=spec.num_classes,
        task=spec.task,
    )
    stages = dataclasses.replace(config.stages, isp_weights=None)
    return dataclasses.replace(
        config,
        model=model,
        stages=stages,
        compare_isps=[],
        pretrain={},
        head_pretrain={},
        loss=config_lib.LossConfig(kind=spec.task, label_smoothing=config.loss.label_smoothing),
        description=f"{config.description} [ISP replaced by {isp_name}]".strip(),
    )


def run_experiment(config, run_dir, verbose=1, log=print):
    """Train and evaluate `config` in `run_dir` (see the module docstring). Returns a dict: "chief", "train_seconds",
    "test" (metrics on the evaluation split), "lbfgs" (L-BFGS summary), "model" (the trained Keras model, in memory),
    "comparisons": {isp: results} when compare_isps is set and "stage1": the stage-1 results (without its model)
    when pretrain is set. metrics.json holds the same without the models."""
    config_lib.validate(config)
    config_lib.require_complete(config)
    created = not os.path.exists(run_dir)
    try:
        return _run_experiment(config, run_dir, verbose, log)
    except Exception:
        if created:  # a value refused once training was set up (e.g. a data path): leave no empty run directory
            _remove_empty_tree(run_dir)
        raise


def _remove_empty_tree(path):
    for root, _, _ in os.walk(path, topdown=False):  # the deepest first
        try:
            os.rmdir(root)
        except OSError:  # not empty: something was written, it stays
            pass


def _run_experiment(config, run_dir, verbose, log):
    previous_policy = _setup(config)
    try:
        strategy = strategy_lib.make_strategy(config.distribution)
        chief = strategy_lib.is_chief(strategy)
        strategy_lib.check_batch_split(strategy, config.data.batch_size)
        if chief:
            os.makedirs(run_dir, exist_ok=True)
            _check_run_dir(config, run_dir)
        if chief and _trained(run_dir):  # killed during compare_isps: the main model stands, comparisons resume
            log(f"{run_dir}: the model is trained; resuming the comparisons {config.compare_isps}")
            results = _trained_results(config, run_dir)
        else:
            head_stage = _pretrain_head(config, run_dir, verbose, log)
            stage1 = _pretrain(config, run_dir, verbose, log)
            stages = config.stages
            if stage1 is not None:
                stages = dataclasses.replace(stages, isp_weights=os.path.join(run_dir, config_lib.PRETRAIN_DIR))
            if head_stage is not None:
                stages = dataclasses.replace(stages, head_weights=os.path.join(run_dir, config_lib.HEAD_PRETRAIN_DIR))
            trained = dataclasses.replace(config, stages=stages)
            results = _train(trained, run_dir, strategy, chief, verbose, log, params=config)
            for key, stage in (("stage1", stage1), ("head", head_stage)):
                if stage is not None:
                    results[key] = stage
            if chief and (stage1 is not None or head_stage is not None):
                _write_metrics(run_dir, results)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    if not chief:
        return results
    if config.compare_isps:
        results["comparisons"] = {}
        for isp_name in config.compare_isps:
            sub_dir = os.path.join(run_dir, "compare", isp_name)
            sub_config = comparison_config(config, isp_name)
            if _finished(sub_config, sub_dir):
                log(f"comparison {isp_name!r}: already trained in {sub_dir}")
                comparison = _trained_results(sub_config, sub_dir)
            else:
                log(f"comparison: the same head behind the {isp_name!r} ISP, same data and budget")
                comparison = run_experiment(sub_config, sub_dir, verbose, log)
            results["comparisons"][isp_name] = comparison
        _write_metrics(run_dir, results)
    return results


def _earlier_stage(stage, stage_dir, name, description, seed, verbose, log):
    """Train `stage` (a config, or None) into `stage_dir`, resume it, or read it back if finished; its results
    without the model, or None. `name` and `description` make its log lines; the random state is then reset to
    `seed`, so what follows starts from the same state whichever happened."""
    if stage is None:
        return None
    if _finished(stage, stage_dir):
        log(f"{name}: already trained in {stage_dir}")
        results = _trained_results(stage, stage_dir)
    else:
        log(f"{name}: {description}")
        results = run_experiment(stage, stage_dir, verbose, log)
    keras.utils.set_random_seed(seed)
    results.pop("model", None)
    return results


def _pretrain(config, run_dir, verbose, log):
    """Stage 1 of config.pretrain into RUN_DIR/stage1; its results, or None without pretrain."""
    stage = config_lib.pretrain_config(config)
    description = stage and f"the {config_lib.model_spec(stage).isp!r} ISP trained with loss {stage.loss.kind!r}"
    stage_dir = os.path.join(run_dir, config_lib.PRETRAIN_DIR)
    results = _earlier_stage(stage, stage_dir, "stage 1", description, config.seed, verbose, log)
    if results is not None:
        log("stage 2: from the stage-1 ISP")
    return results


def _pretrain_head(config, run_dir, verbose, log):
    """The head's stage of config.head_pretrain into RUN_DIR/head; its results, or None without head_pretrain."""
    stage = config_lib.head_pretrain_config(config)
    description = stage and (
        f"the {config_lib.model_spec(stage).head!r} head alone on clean images, loss {stage.loss.kind!r}"
    )
    stage_dir = os.path.join(run_dir, config_lib.HEAD_PRETRAIN_DIR)
    return _earlier_stage(stage, stage_dir, "head stage", description, config.seed, verbose, log)


def _trained_results(config, run_dir):
    """The results of a trained run: its metrics.json and model.keras (evaluated again if metrics.json is missing,
    i.e. the run was killed between saving the model and writing its metrics)."""
    model = load_model(run_dir)
    path = os.path.join(run_dir, METRICS_FILE)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as stream:
            results = json.load(stream)
        results.pop("comparisons", None)  # rebuilt by the caller
    else:
        results = {"chief": True}
        evaluation = data_lib.ExperimentData(config, model_setup.model_input_names(model)).eval_dataset()
        if evaluation is not None:
            results["test"] = evaluate(model, evaluation, config_lib.model_spec(config).num_classes)
        _write_metrics(run_dir, results)
    results["model"] = model
    return results


def _train(config, run_dir, strategy, chief, verbose, log, params=None):
    """Build, train, save and evaluate the run itself (steps 2 to 5 of the module docstring). `params`: the config
    written as params.yaml (default `config`; with pretrain, `config` also names the stage-1 ISP weights)."""
    model, loaded = _build(config, strategy)
    for line in loaded:
        log(f"loaded stage-1 weights: {line}")
    data = data_lib.ExperimentData(config, model_setup.model_input_names(model))
    if chief:  # only once the model and the data resolve: a config refused here leaves no params.yaml behind
        config_lib.save_params(params or config, run_dir)
        names = data_lib.class_names(config)
        if names is not None:
            with open(os.path.join(run_dir, CLASS_NAMES_FILE), "w", encoding="utf-8") as stream:
                json.dump(names, stream, indent=1)
    log(
        f"{model.name}: {model.count_params():,} parameters; {data.train_size} training examples, global batch "
        f"{config.data.batch_size} on {strategy.num_replicas_in_sync} replica(s), {data.steps.steps_per_epoch} "
        f"steps per epoch x {config.data.epochs} epochs"
    )
    start = time.perf_counter()
    results = {"chief": chief}
    if config.trainer == "lbfgs":
        results["lbfgs"] = _lbfgs(config, model, data, verbose, log)
    else:
        _fit(config, run_dir, model, data, strategy, chief, verbose, log)
    if config.precise_bn_batches:
        stream = (
            data.train_dataset(0, 0, 1, on_device=False)
            .take(config.precise_bn_batches)
            .map(lambda inputs, targets: inputs)
        )
        used = model_setup.precise_batch_norm(model, stream)
        log(f"batch-norm statistics re-estimated over {used} training batches")
    results["train_seconds"] = time.perf_counter() - start
    if not chief:
        results["model"] = model
        return results
    _save_final(model, run_dir)
    shutil.rmtree(os.path.join(run_dir, callbacks_lib.BACKUP_DIR), ignore_errors=True)
    evaluation = data.eval_dataset()
    if evaluation is not None:
        results["test"] = evaluate(model, evaluation, config_lib.model_spec(config).num_classes)
    _write_metrics(run_dir, results)
    results["model"] = model
    return results


def _write_metrics(run_dir, results):
    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if k != "model"}
        return value

    with open(os.path.join(run_dir, METRICS_FILE), "w", encoding="utf-8") as stream:
        json.dump(plain(results), stream, indent=2)
