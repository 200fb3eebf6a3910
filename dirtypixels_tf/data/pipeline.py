"""The input pipeline: (image, label) sources -> preprocessing -> simulated sensor -> batched (features, label).

Conventions:
- Features of one example: "raw" float32 [H, W, 1], the noisy Bayer mosaic in [0, 1]; "alpha", "sigma" float32
  scalars, the noise in [0, 1] units; optionally "psf" float32 [kh, kw, 3] (per channel; [1, 1, 3] ones without blur)
  and "clean" float32 [H, W, 3], the preprocessed image before optics, mosaic and noise (reconstruction target).
  Batching adds a leading axis: raw [B, H, W, 1], alpha/sigma [B].
- Randomness: example i gets the stateless seed example_seed(seed, i) (physics/noise.py), split into the crop/flip
  and the sensor seed. Dataset.enumerate runs before any sharding or shuffling, so example i gets the same crop and
  noise in any batch size, shuffle order and replica count. Training repeats the source before enumerating (index i
  of epoch e is i + e * N: new crops and noise each epoch); an evaluation set (epochs=1, no shuffle) never changes.
- simulate_on_device=True stops before the sensor and yields {"clean", "sensor_seed" int64 [2]} (plus "psf");
  `simulate_batch(sensor, features)` then runs the same sensor with the same seeds where the model runs (in the
  training step, per replica), bit for bit the tf.data path's frames, while the host only decodes and crops.
- Shuffling comes after the simulation, on the small fixed-size examples (never decoded full-size photographs).
- Labels: an int64 scalar per example (classification), or a label map [H, W] (segmentation, data/segmentation.py)
  that goes through the image's crop and flip and a nearest-neighbour resize (data/preprocessing.py) and comes out
  int32 [B, height, width], pixel (i, j) labelling the image's and the RAW mosaic's pixel (i, j).
Distribution: with `make_dataset(..., batch_size=GLOBAL batch)` and `strategy.experimental_distribute_dataset`, the
strategy splits each global batch; the auto-shard policy is DATA (workers split examples, never files, which would
change the example indices). With `strategy.distribute_datasets_from_function(make_dataset_fn(...,
global_batch_size=...))` each input pipeline keeps the examples with index % num_input_pipelines ==
input_pipeline_id, batches per replica, and reads the whole source to do so.
"""

import numpy as np
import tensorflow as tf

from dirtypixels_tf.data import preprocessing
from dirtypixels_tf.physics import noise
from dirtypixels_tf.physics.sensor import SensorModel
from dirtypixels_tf.physics.validation import check_int


def _check_sensor(sensor):
    if not isinstance(sensor, SensorModel):
        raise ValueError(f"sensor must be a SensorModel; received {type(sensor).__name__}")
    return sensor


def sensor_psf(sensor):
    """The sensor's PSF as float32 [kh, kw, 3] (a [1, 1, 3] delta without blur)."""
    if sensor.psf is None:
        return np.ones((1, 1, 3), np.float32)
    psf = sensor.psf if sensor.psf.ndim == 3 else sensor.psf[..., np.newaxis]
    return np.ascontiguousarray(np.broadcast_to(psf, psf.shape[:2] + (3,)), np.float32)


def simulation_map(
    sensor,
    image_size,
    training,
    seed=0,
    include_psf=False,
    include_clean=False,
    crop_area=preprocessing.DEFAULT_CROP_AREA,
    aspect_ratio_range=preprocessing.DEFAULT_ASPECT_RATIO_RANGE,
    flip=True,
    central_fraction=preprocessing.DEFAULT_CENTRAL_FRACTION,
    simulate_on_device=False,
):
    """A function (index, (image, label)) -> (features, label) for Dataset.enumerate() output.

    Preprocesses the image and a label map (training: random crop + flip; else central crop; both resize to `image_size`), then
    runs `sensor` on it with seed example_seed(seed, index). See the module docstring for the features.
    """
    sensor = _check_sensor(sensor)
    size = preprocessing.check_image_size(image_size)
    seed = check_int(seed, "seed", 0)
    psf = tf.constant(sensor_psf(sensor)) if include_psf else None
    # Validate the preprocessing options now rather than at the first example.
    preprocessing.preprocess_for_eval(tf.zeros([2, 2, 3]), 2, central_fraction)
    if training:
        preprocessing.preprocess_for_training(tf.zeros([2, 2, 3]), 2, [0, 0], crop_area, aspect_ratio_range, flip)

    def fn(index, example):
        image, label = example
        if image.shape.rank != 3 or image.shape[-1] != 3:
            raise ValueError(f"source images must be float32 [H, W, 3]; received shape {image.shape}")
        if label.shape.rank not in (0, 2):
            raise ValueError(f"source labels must be scalars or label maps [H, W]; received shape {label.shape}")
        dense = label.shape.rank == 2
        key = noise.example_seed(seed, index)
        crop_seed, sensor_seed = tf.unstack(tf.random.experimental.stateless_split(key, 2))
        label_map = label if dense else None
        if training:
            clean = preprocessing.preprocess_for_training(
                image, size, crop_seed, crop_area, aspect_ratio_range, flip, label_map
            )
        else:
            clean = preprocessing.preprocess_for_eval(image, size, central_fraction, label_map)
        if dense:
            clean, label = clean
        if simulate_on_device:
            features = {"clean": clean, "sensor_seed": sensor_seed}
        else:
            features = _simulate_one(sensor, clean, sensor_seed)
        if include_psf:
            features["psf"] = psf
        if include_clean:
            features["clean"] = clean
        return features, label if dense else tf.cast(label, tf.int64)

    return fn


def _simulate_one(sensor, clean, sensor_seed):
    """The sensor on one example [H, W, 3] with its seed [2]: {"raw" [H, W, 1], "alpha", "sigma" [] (or [3] with
    the sensor's front end)}."""
    measured = sensor.simulate(clean[tf.newaxis], sensor_seed)
    return {"raw": measured["raw"][0], "alpha": measured["alpha"][0], "sigma": measured["sigma"][0]}


def simulate_batch(sensor, features):
    """The on-device half of simulate_on_device=True: batched {"clean" [B, H, W, 3], "sensor_seed" [B, 2], ...} ->
    the same dict with "raw" [B, H, W, 1], "alpha" and "sigma" [B] added ("clean" and "sensor_seed" kept). One
    example at a time with its own seed (tf.map_fn), exactly as the tf.data path runs it, so the frames are bit
    for bit the same; call it inside the training step (or strategy.run) so it runs on the model's device."""
    sensor = _check_sensor(sensor)
    if "clean" not in features or "sensor_seed" not in features:
        raise ValueError(
            f"features must hold 'clean' and 'sensor_seed' (simulate_on_device=True); received {sorted(features)}"
        )
    spec = {
        "raw": tf.TensorSpec(features["clean"].shape[1:3] + (1,), tf.float32),
        "alpha": tf.TensorSpec([] if sensor.front_end is None else [3], tf.float32),
        "sigma": tf.TensorSpec([] if sensor.front_end is None else [3], tf.float32),
    }
    measured = tf.map_fn(
        lambda example: _simulate_one(sensor, example[0], example[1]),
        (features["clean"], features["sensor_seed"]),
        fn_output_signature=spec,
    )
    return {**features, **measured}


def _build(
    source,
    sensor,
    image_size,
    batch_size,
    training,
    seed,
    epochs,
    shuffle_buffer,
    drop_remainder,
    num_shards,
    shard_index,
    map_options,
):
    if not isinstance(source, tf.data.Dataset):
        raise ValueError(f"source must be a tf.data.Dataset of (image, label); received {type(source).__name__}")
    batch_size = check_int(batch_size, "batch_size", 1)
    epochs = None if epochs is None else check_int(epochs, "epochs", 1)
    shuffle_buffer = check_int(shuffle_buffer, "shuffle_buffer", 0)
    fn = simulation_map(sensor, image_size, training, seed, **map_options)
    dataset = source if epochs == 1 else source.repeat(epochs)
    dataset = dataset.enumerate()
    if num_shards > 1:
        dataset = dataset.shard(num_shards, shard_index)
    dataset = dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if training and shuffle_buffer > 1:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    drop = training if drop_remainder is None else bool(drop_remainder)
    dataset = dataset.batch(batch_size, drop_remainder=drop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def make_dataset(
    source,
    sensor,
    image_size,
    batch_size,
    training,
    seed=0,
    epochs="auto",
    shuffle_buffer=1024,
    drop_remainder=None,
    **map_options,
):
    """Batched, prefetched dataset of (features, label) from a source of (image, label).

    Args:
        source: a tf.data.Dataset of (image float32 [H, W, 3] in [0, 1], label int64), e.g. from data.sources, or of
            (image, label map [H, W]) from data.segmentation (labels then come out int32 [B, height, width]).
        sensor: a physics.sensor.SensorModel.
        image_size: the model size, an even int or (height, width).
        batch_size: examples per batch; under tf.distribute with experimental_distribute_dataset, the GLOBAL batch.
        training: random crop + flip, repeat, shuffle and drop the last partial batch; else central crop, one pass,
            source order, keep the partial batch.
        seed: base seed of every example's randomness (and of the shuffle order).
        epochs: passes over the source; "auto" = forever when training (give model.fit steps_per_epoch), 1 otherwise.
        shuffle_buffer: examples in the shuffle buffer (training only; 0 or 1 = no shuffle).
        drop_remainder: override the default (= training).
        map_options: include_psf, include_clean, crop_area, aspect_ratio_range, flip, central_fraction (see
            `simulation_map` and data/preprocessing.py).
    """
    if epochs == "auto":
        epochs = None if training else 1
    return _build(
        source,
        sensor,
        image_size,
        batch_size,
        training,
        seed,
        epochs,
        shuffle_buffer,
        drop_remainder,
        1,
        0,
        map_options,
    )


def make_dataset_fn(
    source,
    sensor,
    image_size,
    global_batch_size,
    training,
    seed=0,
    epochs="auto",
    shuffle_buffer=1024,
    drop_remainder=None,
    **map_options,
):
    """A dataset_fn(input_context) for strategy.distribute_datasets_from_function.

    Same arguments as `make_dataset`, with the GLOBAL batch size; `source` is a Dataset or a function returning
    one (called inside dataset_fn, so the source is built on each worker's input device). Each pipeline keeps the
    examples whose index % num_input_pipelines == input_pipeline_id and batches with
    input_context.get_per_replica_batch_size(global_batch_size).
    """
    global_batch_size = check_int(global_batch_size, "global_batch_size", 1)
    if epochs == "auto":
        epochs = None if training else 1

    def dataset_fn(input_context):
        dataset = source() if callable(source) and not isinstance(source, tf.data.Dataset) else source
        per_replica = input_context.get_per_replica_batch_size(global_batch_size)
        return _build(
            dataset,
            sensor,
            image_size,
            per_replica,
            training,
            seed,
            epochs,
            shuffle_buffer,
            drop_remainder,
            input_context.num_input_pipelines,
            input_context.input_pipeline_id,
            map_options,
        )

    return dataset_fn
