"""Accuracy of noise calibration on a natural scene: relative errors of alpha and sigma, measured in one run.

    PYTHONPATH=. python benchmarks/noise_calibration_accuracy.py [--seeds 3]

Scene: skimage's astronaut (512 x 512, 8-bit sRGB taken as linear) as a BGGR mosaic, Nexus_6P_rear noise.
- spatial (one frame) and temporal (two frames) `estimate_noise` at ISO 200, 800, 3200 and 6400;
- spatial again on the photograph as a lens images it ("spatial, lens": blurred by the centre-of-field PSF of
  `optics.get_psf("center")`, std 0.67 px, before mosaicking and noise, as the simulation does with a PSF). The
  photograph carries noise of its own (film grain, white like the sensor's), which the raw rows count as sensor
  noise: the first line prints what `estimate_noise` finds on the noise-free photograph alone, as a share of each
  ISO's alpha;
- `estimate_frame_noise` (one frame, no metadata) at 3, 6, 12, 24, 48 and 96 lux, with the error of the noise std
  at mid-gray as well.
Each line prints the mean and the range over the seeds of estimate / truth - 1.
"""

import argparse

import numpy as np
import skimage.data
import tensorflow as tf

from dirtypixels_tf.physics import mosaic, noise, noise_estimation, optics


def capture(clean, alpha, sigma, seed):
    noisy = noise.add_noise(clean[np.newaxis, ..., np.newaxis], alpha, sigma, tf.constant(seed, tf.int64))
    return noisy.numpy()[0, ..., 0]


def summary(values):
    values = np.asarray(values)
    return f"{values.mean():+7.1%} [{values.min():+.1%}, {values.max():+.1%}]"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds (the tests run it)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = 1
    image = skimage.data.astronaut().astype(np.float32)[np.newaxis] / 255.0
    clean = mosaic.mosaic(image).numpy()[0, ..., 0]
    through_lens = mosaic.mosaic(optics.blur(image, optics.get_psf("center"))).numpy()[0, ..., 0]
    preset = noise.get_noise_preset("Nexus_6P_rear")
    isos = (200, 800, 3200, 6400)
    own = noise_estimation.estimate_noise([clean], method="spatial")
    shares = ", ".join(f"ISO {iso} {own.alpha / preset.at_iso(iso)[0]:.1%}" for iso in isos)
    print(f"the noise-free photograph alone: alpha {own.alpha:.3g}, sigma {own.sigma:.3g}; of each alpha: {shares}")
    print(f"{'method':<15}{'setting':>9}{'alpha error (mean [min, max])':>34}{'sigma error':>30}")
    for method, frames, scene, label in (
        ("spatial", 1, clean, "spatial"),
        ("temporal", 2, clean, "temporal"),
        ("spatial", 1, through_lens, "spatial, lens"),
    ):
        for iso in isos:
            alpha, sigma = preset.at_iso(iso)
            errors = []
            for seed in range(args.seeds):
                captures = [capture(scene, alpha, sigma, [seed * 10 + k, iso]) for k in range(frames)]
                fit = noise_estimation.estimate_noise(captures, method=method)
                errors.append((fit.alpha / alpha - 1, fit.sigma / sigma - 1))
            errors = np.array(errors)
            print(f"{label:<15}{'ISO ' + str(iso):>9}{summary(errors[:, 0]):>34}{summary(errors[:, 1]):>30}")
    print(f"{'no metadata':<15}{'lux':>9}{'alpha error':>34}{'sigma error':>30}{'std at mid-gray':>30}")
    for lux in (3, 6, 12, 24, 48, 96):
        alpha, sigma = noise.noise_at_lux(lux, preset)
        errors = []
        for seed in range(args.seeds):
            fit = noise_estimation.estimate_frame_noise(capture(clean, alpha, sigma, [seed, lux]))
            mid = np.sqrt((fit.alpha * 0.5 + fit.sigma**2) / (alpha * 0.5 + sigma**2)) - 1
            errors.append((fit.alpha / alpha - 1, fit.sigma / sigma - 1, mid))
        errors = np.array(errors)
        print(f"{'':<15}{lux:>9}{summary(errors[:, 0]):>34}{summary(errors[:, 1]):>30}{summary(errors[:, 2]):>30}")


if __name__ == "__main__":
    main()
