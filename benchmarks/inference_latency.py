"""Inference latency of the joint models against MobileNet-v1 alone at 128x128, every ratio measured in one run.

Models: the release joint model (joint_mobilenet_v1_128), the packed-Bayer joint model
(joint_packed_mobilenet_v1_128) and the head alone (MobileNet-v1, 1001 classes). Each repeat calls every model once
in turn (interleaved, so load changes hit all of them alike); the median per model is reported with the ratio
joint / head, at batch 1 and 32, in TensorFlow (tf.function, inference mode; --xla adds jit_compile=True) and, with
--tflite, in the LiteRT interpreter (export/tflite.make_interpreter: ai-edge-litert where installed, XNNPACK on) at
batch 1 and one thread, exported as float32, float16, int8 and int8-isp (export_tflite's quantize "none",
"float16", "int8" with the ISP in float as `dirtypixels export` writes it, and "int8" with isp_in_float=False, as
`--int8-isp`; the int8 models calibrated on 8 simulated frames per light level: enough for timing, not accuracy);
the head there is raw_mobilenet_v1_128 (bilinear demosaic + the same MobileNet-v1, since a LiteRT export takes RAW
input), exported the same way, and the summary prints joint / head per quantize setting and each setting's time
over float32's. --only-tflite skips the TensorFlow timings. Targets: release joint / head <= 1.6 at batch 1 and
<= 1.7 at batch 32; packed joint / head <= 1.2 at both (for LiteRT int8 too). The multiply-add ratios are 1.62 and
1.18.

Each model is also timed as its batch-norm-folded inference copy (export/fold.py; suffix "+f": fold "all", the
head and the ISP's prior; "release+fh": the head only, which keeps the release-parity bound), and a summary prints
release joint / head with both folded and both unfolded, and folded / unfolded per model.

--profile times each ISP's parts (GAT and max-normalization of S^T y, the prior on its input, the soft projection,
the inverse GAT, the whole ISP with its prior skipped; for the release ISP also its prior's dilated first
convolution and its second full-resolution unit (3x3, 8 to 8 channels)) and the head's input step, interleaved with
the head, at batch 1 and 32; it prints that unit's and the head's multiply-adds per ns and, per joint model, the
floor: (ISP without its prior + head input) / head, what joint / head - 1 would be if the prior took no time,
beside what the target allows. It first checks that the ISP with its prior skipped computes the ISP whose priors'
output convolutions have a zero kernel and a constant bias. --quick runs it with 2 repeats.

    python benchmarks/inference_latency.py [--repeats 30] [--xla] [--tflite [--only-tflite]] [--profile]
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dirtypixels_tf.export.fold import fold_batch_norm  # noqa: E402
from dirtypixels_tf.export.tflite import (  # noqa: E402
    calibration_frames,
    export_tflite,
    make_interpreter,
    simulated_inputs,
)
from dirtypixels_tf.layers.anscombe import append_noise_channel  # noqa: E402
from dirtypixels_tf.models import presets  # noqa: E402
from dirtypixels_tf.models.counting import count_multiply_adds  # noqa: E402

JOINTS = {"release": "joint_mobilenet_v1_128", "packed": "joint_packed_mobilenet_v1_128"}
TFLITE_QUANTIZE = ("none", "float16", "int8", "int8-isp")  # int8-isp: quantize "int8", isp_in_float=False


def interleaved_medians(calls, repeats, warmup=3):
    """{name: median seconds} of `calls` ({name: zero-argument function returning tensors}), called in turn."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            tf.nest.map_structure(np.asarray, call())
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in times.items()}


def tensorflow_calls(models, heads, features, images, batch, xla):
    """models: {name: joint model}; heads: {name: MobileNet-v1 alone} (fed [-1, 1] images)."""
    batch_features = {key: tf.constant(value[:batch]) for key, value in features.items()}
    scaled = tf.constant(images[:batch] * 2 - 1)  # MobileNet's input range, as the joint model feeds it
    calls = {}
    for name, model in models.items():
        function = tf.function(lambda f, model=model: model(f, training=False)["logits"], jit_compile=xla)
        calls[name] = lambda function=function: function(batch_features)
    for name, head in heads.items():
        head_function = tf.function(lambda x, head=head: head(x, training=False), jit_compile=xla)
        calls[name] = lambda head_function=head_function: head_function(scaled)
    return calls


def with_folded(models):
    """models plus their folded inference copies: name+f (fold "all") and release+fh (the head only)."""
    folded = {f"{name}+f": fold_batch_norm(model, "all") for name, model in models.items()}
    if "release" in models:
        folded["release+fh"] = fold_batch_norm(models["release"], "head")
    return {**models, **folded}


def print_summary(medians, batch):
    """release joint / head both unfolded and both folded; folded / unfolded per model."""
    print(
        f"batch {batch}: release / head {medians['release'] / medians['head']:.2f} unfolded, "
        f"{medians['release+f'] / medians['head+f']:.2f} folded (release+fh / head+f "
        f"{medians['release+fh'] / medians['head+f']:.2f}); folded / unfolded: "
        + ", ".join(
            f"{name} {medians[name + '+f'] / medians[name]:.2f}"
            for name in medians
            if "+" not in name and name + "+f" in medians
        )
        + f", release+fh {medians['release+fh'] / medians['release']:.2f}"
    )


def export_tflite_models(directory):
    """{name/quantize: path} of the joint models and the head (raw_mobilenet_v1_128) exported to LiteRT in
    `directory` at each of TFLITE_QUANTIZE."""
    calibration = calibration_frames((128, 128), count=8)
    paths = {}
    for name, preset in {**JOINTS, "head": "raw_mobilenet_v1_128"}.items():
        model = presets.build_preset(preset)
        for quantize in TFLITE_QUANTIZE:
            paths[f"{name}/{quantize}"] = os.path.join(directory, f"{name}-{quantize}.tflite")
            int8_isp = quantize == "int8-isp"
            export_tflite(
                model,
                paths[f"{name}/{quantize}"],
                "int8" if int8_isp else quantize,
                calibration=calibration,
                isp_in_float=not int8_isp,
            )
    return paths


def tflite_calls(features, paths, threads):
    frame = {key: value[:1] for key, value in features.items()}
    calls = {}
    for name, path in paths.items():
        runner = make_interpreter(path, threads).get_signature_runner("serving_default")
        calls[name] = lambda runner=runner: runner(**frame)["logits"]
    return calls


def print_tflite_summary(medians):
    """joint / head per quantize setting, and each setting's time over float32's per model."""
    for quantize in TFLITE_QUANTIZE:
        head = medians[f"head/{quantize}"]
        print(
            f"LiteRT {quantize}: "
            + ", ".join(f"{name} / head {medians[f'{name}/{quantize}'] / head:.2f}" for name in JOINTS)
            + "; "
            + ", ".join(
                f"{name} {quantize} / float32 {medians[f'{name}/{quantize}'] / medians[f'{name}/none']:.2f}"
                for name in (*JOINTS, "head")
            )
        )


def isp_without_priors(isp, raw, alpha, sigma, residual=0.0):
    """The Anscombe network with every prior replaced by v = (its input image) - residual: the GAT and
    normalization, the packing, the noise channel, the soft projections and the inverse GAT, i.e. all an ISP of this
    design runs besides its priors. Equal to the ISP whose priors' output convolutions have a zero kernel and the
    bias `residual` (checked in main)."""
    x, y, scale, transformed = isp.transform(raw, alpha, sigma)
    packed = isp.domain == "packed"
    for projection in isp.projections:
        prior_input = append_noise_channel(tf.nn.space_to_depth(x, 2) if packed else x, scale)
        v = prior_input[..., : prior_input.shape[-1] - 1] - residual
        x = projection(tf.nn.depth_to_space(v, 2) if packed else v, y, lam=isp.lam)
    return isp.inverse(x, alpha, sigma, transformed["scale"], transformed["offset"])


def check_without_priors(isp, features, residual=0.1):
    """isp_without_priors equals `isp` with its priors' output convolutions set to kernel 0 and bias `residual`
    (a residual the projection has to undo; their weights are restored after)."""
    inputs = [tf.constant(features[key][:4]) for key in ("raw", "alpha", "sigma")]
    kept = [prior.output_conv.get_weights() for prior in isp.priors]
    for prior, (kernel, bias) in zip(isp.priors, kept):
        prior.output_conv.set_weights([np.zeros_like(kernel), np.full_like(bias, residual)])
    try:
        expected = isp(*inputs)["image"]
        np.testing.assert_allclose(isp_without_priors(isp, *inputs, residual), expected, rtol=0, atol=1e-6)
    finally:
        for prior, weights in zip(isp.priors, kept):
            prior.output_conv.set_weights(weights)


def profile_calls(joints, head, features, images, batch):
    """Each joint model's ISP and its parts as separate tf.functions on the inputs each part sees, the head's input
    step (clip and scaling) and the head alone. For the release ISP also its prior's dilated first convolution and
    its second full-resolution unit (3x3, 8 to 8 channels)."""
    raw, alpha, sigma = (tf.constant(features[key][:batch]) for key in ("raw", "alpha", "sigma"))
    parts = {}
    for name, joint in joints.items():
        isp = joint.isp
        prior, projection = isp.priors[0], isp.projections[0]
        x, y, scale, transformed = isp.transform(raw, alpha, sigma)
        packed = isp.domain == "packed"
        prior_input = append_noise_channel(tf.nn.space_to_depth(x, 2) if packed else x, scale)
        v = prior(prior_input)
        v = tf.nn.depth_to_space(v, 2) if packed else v
        parts.update(
            {
                f"{name} ISP": (lambda isp=isp: isp(raw, alpha, sigma)),
                f"{name} no prior": (lambda isp=isp: isp_without_priors(isp, raw, alpha, sigma)),
                f"{name} GAT+norm": (lambda isp=isp: isp.transform(raw, alpha, sigma)[0]),
                f"{name} prior": (lambda prior=prior, prior_input=prior_input: prior(prior_input)),
                f"{name} project": (lambda p=projection, v=v, y=y, isp=isp: p(v, y, lam=isp.lam)),
                f"{name} inverse": (
                    lambda isp=isp, v=v, t=transformed: isp.inverse(v, alpha, sigma, t["scale"], t["offset"])
                ),
            }
        )
        if not packed:
            first = prior.conv_in[0](prior_input)
            parts["conv0"] = lambda prior=prior, prior_input=prior_input: prior.conv_in[0](prior_input)
            parts["conv1"] = lambda prior=prior, first=first: prior.conv_1[0](first)
    isp_images = joints["release"].isp(raw, alpha, sigma)["image"]
    preprocessing = joints["release"].get_layer("head_preprocessing")
    parts["head input"] = lambda: preprocessing(isp_images)
    functions = {name: tf.function(part) for name, part in parts.items()}
    calls = {name: (lambda function=function: function()) for name, function in functions.items()}
    scaled = tf.constant(images[:batch] * 2 - 1)
    head_function = tf.function(lambda x: head(x, training=False))
    calls["head"] = lambda: head_function(scaled)
    return calls


def print_floors(medians, batch):
    """What each joint model costs beyond the head with its priors taking no time, against its target at `batch`."""
    allowed = {"release": 0.6 if batch == 1 else 0.7, "packed": 0.2}
    for name, target in allowed.items():
        floor = (medians[f"{name} no prior"] + medians["head input"]) / medians["head"]
        prior = medians[f"{name} prior"] / medians["head"]
        print(
            f"{name}: everything but the prior / head {floor:.2f} (joint / head would be {1 + floor:.2f} with a "
            f"prior that took no time; the target allows {target:.1f}); its prior / head {prior:.2f}"
        )


def print_table(title, medians, batch, head_name="head"):
    head = medians[head_name]
    print(f"\n{title}")
    print(f"{'model':>16} {'ms':>9} {'/ head':>7} {'frames/s':>9}")
    for name, seconds in medians.items():
        print(f"{name:>16} {seconds * 1e3:>9.2f} {seconds / head:>7.2f} {batch / seconds:>9.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per model and setting (median)")
    parser.add_argument("--xla", action="store_true", help="also measure with jit_compile=True")
    parser.add_argument("--tflite", action="store_true", help="also measure the LiteRT exports at batch 1")
    parser.add_argument("--only-tflite", action="store_true", help="with --tflite: skip the TensorFlow timings")
    parser.add_argument("--profile", action="store_true", help="also time the ISPs' parts and print the floors")
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds (the tests run it)")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.profile = 2, True
    if args.only_tflite and not args.tflite:
        parser.error("--only-tflite needs --tflite")

    models = {name: presets.build_preset(preset) for name, preset in JOINTS.items()}
    head = models["release"].head
    joints = with_folded(models)
    heads = {"head": head, "head+f": fold_batch_norm(head)}
    head_adds = count_multiply_adds(head)
    features = simulated_inputs((128, 128), 32)
    images = np.random.default_rng(0).random((32, 128, 128, 3)).astype(np.float32)
    print(f"load average before: {os.getloadavg()}")
    summaries = []
    for xla in () if args.only_tflite else (False, True) if args.xla else (False,):
        for batch in (1, 32):
            calls = tensorflow_calls(joints, heads, features, images, batch, xla)
            medians = interleaved_medians(calls, args.repeats)
            print_table(f"TensorFlow, batch {batch}, XLA {xla}", medians, batch)
            summaries.append((medians, batch))
    if summaries:
        print("\nsummary (TensorFlow, XLA off)")
    for medians, batch in summaries[:2]:
        print_summary(medians, batch)
    if args.profile:
        for model in models.values():
            check_without_priors(model.isp, features)
        for batch in (1, 32):
            medians = interleaved_medians(profile_calls(models, head, features, images, batch), args.repeats)
            print_table(f"ISP parts, batch {batch}", medians, batch)
            kernel = models["release"].isp.priors[0].conv_1[0].conv.kernel  # full resolution: the RAW frame's size
            unit_adds = np.prod(features["raw"].shape[1:3]) * np.prod(kernel.shape)
            rates = [batch * adds / (medians[name] * 1e9) for name, adds in (("conv1", unit_adds), ("head", head_adds))]
            size, inputs, outputs = kernel.shape[0], kernel.shape[2], kernel.shape[3]
            print(
                f"multiply-adds per ns: conv1 ({size}x{size}, {inputs} -> {outputs} channels, full resolution) "
                f"{rates[0]:.0f}, head {rates[1]:.0f}"
            )
            print_floors(medians, batch)
    if args.tflite:
        with tempfile.TemporaryDirectory() as directory:
            paths = export_tflite_models(directory)
            medians = interleaved_medians(tflite_calls(features, paths, threads=1), args.repeats)
            title = "LiteRT interpreter (1 thread), batch 1; head = bilinear demosaic + MobileNet-v1; / head: float32's"
            print_table(title, medians, 1, head_name="head/none")
            print_tflite_summary(medians)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
