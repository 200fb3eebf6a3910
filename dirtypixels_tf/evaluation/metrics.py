"""Evaluation metrics: top-k accuracy from logits, PSNR and SSIM of images in [0, 1], Bayer-period artifacts.

Conventions:
- Top-k: example i is correct when fewer than k logits are strictly greater than its true class's logit (ties in
  its favour, tf.math.in_top_k's rule; with fewer than k classes every example is correct). `top_k_correct` returns
  per-example booleans a grid evaluation sums over batches; `top_k_accuracy` is their mean.
- Images are float [B, H, W, C] (or [H, W, C]) in [0, 1]; the estimate is clipped to [0, 1] first (a linear output
  can leave the range slightly), the reference is used as it is. Image metrics are per image, averaged after.
- PSNR with peak 1.0: 10 log10(1 / MSE) over every pixel and channel; MSE is floored at 1e-10 (identical images give
  100 dB). The mean is of the dB values, not the PSNR of the mean MSE.
- SSIM (Wang et al. 2004) with tf.image.ssim: max value 1, 11 x 11 Gaussian window of std 1.5 (shrunk to the smaller
  side of smaller images), K1 = 0.01, K2 = 0.03, "valid" positions only, averaged over positions and channels; it
  matches skimage's structural_similarity with gaussian_weights=True, sigma=1.5, use_sample_covariance=False.
- Segmentation (VOC devkit rules): a confusion matrix C [K, K] counts pixels, C[t, p] those of true class t
  predicted as p; pixels labelled catalog.IGNORE_LABEL (255) are left out. IoU of class k = C[k, k] / (row k sum +
  column k sum - C[k, k]); a class absent from both truth and prediction has no IoU (nan) and is left out of the
  mean IoU ("miou"); pixel accuracy = trace / total. `MeanIoU` is the Keras metric (from logits [B, H, W, K] and
  label maps [B, H, W]), `confusion_matrix` and `segmentation_scores` the NumPy side, for the evaluation grid
  (defined in models/segmentation.py beside the dense heads, where training reads them too).
- Bayer-period artifacts, on the luminance (channel mean) at the 2 x 2 period's frequencies (pi, pi), (pi, 0),
  (0, pi): `bayer_energy` (squared DFT coefficients over H W), `bayer_artifact_ratio` (estimates' energy over the
  references'; residual noise counts too), `bayer_peak_ratio` (that energy over its 8 neighbouring frequencies',
  estimates' over references'; isolates a periodic pattern) and `bayer_error_amplitudes` (the pattern's amplitude in
  the error estimate - reference, [0, 1] units; EIGHT_BIT_CODES converts to 8-bit code values). How to read them:
  docs/models.md, "Reading the Bayer metrics"; SSIM's agreement with skimage: docs/numerics.md.
"""

import numpy as np
import tensorflow as tf

from dirtypixels_tf.models.segmentation import MeanIoU, confusion_matrix, segmentation_scores  # noqa: F401
from dirtypixels_tf.physics.validation import check_int

PSNR_MSE_FLOOR = 1e-10
EIGHT_BIT_CODES = 255.0  # code values of an 8-bit display per unit of the [0, 1] range
SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_logits_labels(logits, labels):
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f"logits must have shape [batch, classes]; received shape {logits.shape}")
    if labels.shape != (logits.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be {logits.shape[0]} integers (one per row of logits); received shape {labels.shape}, "
            f"dtype {labels.dtype}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(
            f"labels must be class indices in [0, {logits.shape[1]}) for {logits.shape[1]} logits; received values "
            f"from {labels.min()} to {labels.max()}"
        )
    return logits, labels


def top_k_correct(logits, labels, k):
    """Booleans [B]: is labels[i] among the k largest logits[i] (ties count as correct)? logits [B, C], labels [B]."""
    k = check_int(k, "k")
    logits, labels = _check_logits_labels(logits, labels)
    true_logit = logits[np.arange(len(labels)), labels]
    greater = np.sum(logits > true_logit[:, np.newaxis], axis=1)
    return greater < k


def top_k_accuracy(logits, labels, k=1):
    """Fraction of examples whose label is among the top k logits (see `top_k_correct`); nan for no examples."""
    correct = top_k_correct(logits, labels, k)
    return float(np.mean(correct)) if correct.size else float("nan")


def _as_batch(estimate, reference):
    estimate = tf.convert_to_tensor(estimate, tf.float32)
    reference = tf.convert_to_tensor(reference, tf.float32)
    if estimate.shape.rank == 3 and reference.shape.rank == 3:
        estimate, reference = estimate[tf.newaxis], reference[tf.newaxis]
    if estimate.shape.rank != 4 or estimate.shape != reference.shape:
        raise ValueError(
            "estimate and reference must be images of one shape, [B, H, W, C] or [H, W, C]; received shapes "
            f"{estimate.shape} and {reference.shape}"
        )
    return tf.clip_by_value(estimate, 0.0, 1.0), reference


def psnr(estimate, reference):
    """PSNR in dB of each image, peak 1.0: float64 [B] (see the module docstring). Inputs [B, H, W, C] or [H, W, C]."""
    estimate, reference = _as_batch(estimate, reference)
    mse = tf.reduce_mean(tf.square(tf.cast(estimate, tf.float64) - tf.cast(reference, tf.float64)), axis=[1, 2, 3])
    return (10.0 * np.log10(1.0 / np.maximum(mse.numpy(), PSNR_MSE_FLOOR))).astype(np.float64)


def ssim(estimate, reference):
    """SSIM of each image: float64 [B] (Gaussian window 11, std 1.5; see the module docstring)."""
    estimate, reference = _as_batch(estimate, reference)
    size = min(SSIM_FILTER_SIZE, int(estimate.shape[1]), int(estimate.shape[2]))
    values = tf.image.ssim(
        estimate, reference, max_val=1.0, filter_size=size, filter_sigma=SSIM_FILTER_SIGMA, k1=SSIM_K1, k2=SSIM_K2
    )
    return values.numpy().astype(np.float64)


def mean_psnr(estimate, reference):
    """The mean over images of each image's PSNR (dB)."""
    return float(np.mean(psnr(estimate, reference)))


def mean_ssim(estimate, reference):
    """The mean over images of each image's SSIM."""
    return float(np.mean(ssim(estimate, reference)))


def _luminance(images):
    images = np.asarray(images, np.float64)
    if images.ndim == 3:
        images = images[np.newaxis]
    if images.ndim != 4 or images.shape[1] % 2 or images.shape[2] % 2:
        raise ValueError(f"images must be [B, H, W, C] with even H and W; received shape {images.shape}")
    return np.clip(images, 0.0, 1.0).mean(axis=-1)


def _bayer_signs(height, width):
    """The sign patterns of the three Bayer frequencies: (-1)^(i+j), (-1)^i, (-1)^j, each [H, W]."""
    rows = (-1.0) ** np.arange(height)[:, np.newaxis]
    columns = (-1.0) ** np.arange(width)[np.newaxis, :]
    return rows * columns, rows * np.ones_like(columns), np.ones_like(rows) * columns


def bayer_energy(images):
    """Per-image luminance (mean of the channels) energy at the Bayer frequencies (pi, pi), (pi, 0), (0, pi):
    (|sum_ij L_ij (-1)^(i+j)|^2 + |sum_ij L_ij (-1)^i|^2 + |sum_ij L_ij (-1)^j|^2) / (H W), the squared DFT
    coefficients over the number of pixels. A checkerboard or stripes of the mosaic's period show there. Images
    [B, H, W, C] or [H, W, C] with even H and W, clipped to [0, 1]. Returns float64 [B]."""
    luminance = _luminance(images)
    energy = sum(np.square((luminance * sign).sum(axis=(1, 2))) for sign in _bayer_signs(*luminance.shape[1:]))
    return energy / (luminance.shape[1] * luminance.shape[2])


def bayer_error_amplitudes(estimates, references):
    """Per image, the amplitude of the Bayer-period pattern in the luminance error: with e = L(estimate) -
    L(reference) and c = mean_ij e_ij s_ij for each sign pattern s of the three Bayer frequencies,
    sqrt(c_pp^2 + c_p0^2 + c_0p^2). An added pattern a s gives exactly a; white error of variance v about
    sqrt(3 v / (H W)). Images as `bayer_energy`, of one shape; units of the [0, 1] range; float64 [B]."""
    estimates, references = np.asarray(estimates), np.asarray(references)
    if estimates.shape != references.shape:
        raise ValueError(
            f"estimates and references must have the same shape; received {estimates.shape} and {references.shape}"
        )
    error = _luminance(estimates) - _luminance(references)
    coefficients = [(error * sign).mean(axis=(1, 2)) for sign in _bayer_signs(*error.shape[1:])]
    return np.sqrt(sum(np.square(c) for c in coefficients))


def bayer_peak_energies(images):
    """Per image: (the luminance energy at the three Bayer frequencies, as `bayer_energy`; the sum over those three
    of the mean energy at each one's 8 neighbouring frequencies, indices wrapping around), float64 [B] each.
    Images as `bayer_energy`, at least 4 x 4."""
    luminance = _luminance(images)
    height, width = luminance.shape[1:]
    if height < 4 or width < 4:
        raise ValueError(f"images must be at least 4 x 4; received shape {np.shape(images)}")
    spectrum = np.square(np.abs(np.fft.fft2(luminance))) / (height * width)
    peak, neighbours = 0.0, 0.0
    for row, column in ((height // 2, width // 2), (height // 2, 0), (0, width // 2)):
        peak = peak + spectrum[:, row, column]
        ring = [
            spectrum[:, (row + dr) % height, (column + dc) % width]
            for dr in (-1, 0, 1)
            for dc in (-1, 0, 1)
            if dr or dc
        ]
        neighbours = neighbours + np.mean(ring, axis=0)
    return peak, neighbours


def bayer_artifact_ratio(estimate, reference):
    """Summed `bayer_energy` of the estimates over that of the references (same shapes): about 1 or below for an
    artifact-free, denoised image, above 2 for an artifact; white residual noise of variance v adds v here too."""
    estimate, reference = _as_batch(estimate, reference)
    return float(bayer_energy(estimate).sum() / max(bayer_energy(reference).sum(), PSNR_MSE_FLOOR))


def peak_ratio(peak, neighbours, reference_peak, reference_neighbours):
    """(peak / neighbours) over (reference_peak / reference_neighbours), each a sum over images."""
    floor = PSNR_MSE_FLOOR
    return float((peak / max(neighbours, floor)) / max(reference_peak / max(reference_neighbours, floor), floor))


def bayer_peak_ratio(estimate, reference):
    """The Bayer-frequency peak of the estimates over that of the references (same shapes): the energy at the three
    Bayer frequencies over the mean energy at their 8 neighbours (`bayer_peak_energies`), summed over images, the
    estimates' ratio over the references'. White residual noise brings it toward 1 / (the references' own peak),
    about 1 or below; a Bayer-period pattern raises it above 1."""
    estimate, reference = _as_batch(estimate, reference)
    sums = [part.sum() for images in (estimate, reference) for part in bayer_peak_energies(images)]
    return peak_ratio(*sums)
