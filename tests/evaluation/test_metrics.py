import numpy as np
import pytest
import skimage.data
from skimage.metrics import structural_similarity
from skimage.util import img_as_float32

from dirtypixels_tf.evaluation import metrics

LOGITS = np.array(
    [
        [0.1, 0.9, 0.0, 0.3, 0.2, 0.5, 0.4],  # label 1 is the largest: top-1 and top-5
        [0.9, 0.1, 0.8, 0.7, 0.6, 0.5, 0.4],  # label 5 is 5th of 7: top-5 only
        [0.9, 0.1, 0.8, 0.7, 0.6, 0.5, 0.4],  # label 1 is last: neither
        [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2],  # all tied: counts as correct for any k
    ]
)
LABELS = np.array([1, 5, 1, 3])


def test_top_k_on_crafted_logits():
    assert metrics.top_k_correct(LOGITS, LABELS, 1).tolist() == [True, False, False, True]
    assert metrics.top_k_correct(LOGITS, LABELS, 5).tolist() == [True, True, False, True]
    assert metrics.top_k_accuracy(LOGITS, LABELS, 1) == 0.5
    assert metrics.top_k_accuracy(LOGITS, LABELS, 5) == 0.75
    assert metrics.top_k_accuracy(LOGITS, LABELS, 7) == 1.0  # k >= classes: always correct


def test_top_k_at_every_rank_boundary_agrees_with_in_top_k():
    """Distinct logits, the label at every rank r of 7: correct exactly when r <= k (rank k + 1 is the first miss),
    as TensorFlow's in_top_k says."""
    import tensorflow as tf

    classes = 7
    logits = np.stack([np.random.default_rng(row).permutation(classes) for row in range(classes)]).astype(np.float32)
    ranks = np.arange(1, classes + 1)  # row r - 1 holds its label at rank r
    labels = np.array([int(np.argsort(-logits[r - 1])[r - 1]) for r in ranks])
    for k in range(1, classes + 1):
        correct = metrics.top_k_correct(logits, labels, k)
        np.testing.assert_array_equal(correct, ranks <= k, err_msg=f"k = {k}")
        np.testing.assert_array_equal(correct, tf.math.in_top_k(labels, logits, k).numpy(), err_msg=f"k = {k}")
        assert metrics.top_k_accuracy(logits, labels, k) == k / classes


def test_top_k_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 7\).*7"):
        metrics.top_k_correct(LOGITS, np.array([0, 1, 2, 7]), 1)
    with pytest.raises(ValueError, match="k must be an integer >= 1; received 0"):
        metrics.top_k_correct(LOGITS, LABELS, 0)
    with pytest.raises(ValueError, match=r"logits must have shape \[batch, classes\]"):
        metrics.top_k_correct(LOGITS[0], LABELS, 1)


def test_psnr_of_a_constant_offset_is_20_db():
    reference = np.full((2, 16, 16, 3), 0.5, np.float32)
    # MSE = 0.1^2 = 0.01 -> 10 log10(1 / 0.01) = 20 dB, per image.
    np.testing.assert_allclose(metrics.psnr(reference + 0.1, reference), [20.0, 20.0], atol=1e-5)
    # 0.01 -> 40 dB; the estimate is clipped to [0, 1] first: 1.5 -> 1.0 against 0.9 is also 20 dB.
    np.testing.assert_allclose(metrics.psnr(reference[0] + 0.01, reference[0]), [40.0], atol=1e-4)
    np.testing.assert_allclose(metrics.psnr(np.full((4, 4, 3), 1.5), np.full((4, 4, 3), 0.9)), [20.0], atol=1e-4)


def test_psnr_is_averaged_per_image():
    reference = np.full((2, 8, 8, 3), 0.5, np.float32)
    estimate = reference + np.array([0.1, 0.01], np.float32)[:, None, None, None]
    # mean of 20 and 40 dB = 30 dB (the PSNR of the mean MSE would be 10 log10(1 / 0.00505) = 22.97 dB).
    assert metrics.mean_psnr(estimate, reference) == pytest.approx(30.0, abs=1e-4)


def test_psnr_of_identical_images_is_capped_at_100_db():
    image = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    assert metrics.psnr(image, image)[0] == pytest.approx(100.0)


def test_ssim_of_identical_images_is_one():
    image = np.random.default_rng(1).random((2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(metrics.ssim(image, image), [1.0, 1.0], atol=1e-6)


def test_ssim_matches_skimage_on_a_photograph():
    photo = img_as_float32(skimage.data.astronaut()[100:228, 150:278])
    rng = np.random.default_rng(2)
    for std in (0.02, 0.1, 0.3):
        noisy = np.clip(photo + std * rng.standard_normal(photo.shape), 0, 1).astype(np.float32)
        expected = structural_similarity(
            noisy, photo, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        # Measured: agreement to 1e-5; the stated tolerance is 1e-4.
        assert metrics.ssim(noisy, photo)[0] == pytest.approx(expected, abs=1e-4)


def test_ssim_small_images_use_a_smaller_window():
    image = np.random.default_rng(3).random((1, 6, 6, 3)).astype(np.float32)
    assert metrics.ssim(image, image)[0] == pytest.approx(1.0, abs=1e-6)
    assert metrics.ssim(image * 0.5, image)[0] < 1.0


def test_image_metrics_reject_shape_mismatch():
    with pytest.raises(ValueError, match="estimate and reference must be images of one shape"):
        metrics.psnr(np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 6, 3)))


def test_bayer_energy_of_a_checkerboard_stripes_and_a_constant():
    rows, columns = np.mgrid[0:8, 0:6]
    checker = np.repeat((0.5 + 0.25 * (-1.0) ** (rows + columns))[..., None], 3, axis=-1)
    stripes = np.repeat((0.5 + 0.1 * (-1.0) ** rows)[..., None], 3, axis=-1)
    # (pi, pi): |0.25 * 48|^2 / 48 = 3.0; (pi, 0): |0.1 * 48|^2 / 48 = 0.48; a constant has none at either.
    np.testing.assert_allclose(
        metrics.bayer_energy(np.stack([checker, stripes, np.full_like(checker, 0.5)])), [3.0, 0.48, 0.0], atol=1e-12
    )
    assert metrics.bayer_artifact_ratio(checker, stripes) == pytest.approx(3.0 / 0.48)
    with pytest.raises(ValueError, match="even H and W"):
        metrics.bayer_energy(np.zeros((1, 5, 4, 3)))


def test_bayer_peak_energies_agree_with_bayer_energy_and_the_fft():
    images = np.random.default_rng(3).random((4, 8, 6, 3))
    peak, neighbours = metrics.bayer_peak_energies(images)
    np.testing.assert_allclose(peak, metrics.bayer_energy(images), rtol=1e-12)
    # One Bayer frequency's 8 neighbours by hand: (pi, pi) = (4, 3) of an 8 x 6 spectrum.
    spectrum = np.abs(np.fft.fft2(images.mean(-1))) ** 2 / 48
    ring = [spectrum[:, 4 + dr, 3 + dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
    ring_pi_0 = [spectrum[:, (4 + dr) % 8, dc % 6] for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
    ring_0_pi = [spectrum[:, dr % 8, 3 + dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
    expected = np.mean(ring, 0) + np.mean(ring_pi_0, 0) + np.mean(ring_0_pi, 0)
    np.testing.assert_allclose(neighbours, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="at least 4 x 4"):
        metrics.bayer_peak_energies(np.zeros((1, 2, 4, 3)))


def test_bayer_error_amplitude_is_the_amplitude_of_an_added_pattern():
    """An estimate = reference + a (-1)^(i+j) + b (-1)^i (every channel, inside [0, 1]) has amplitude sqrt(a^2 + b^2)
    exactly; a pattern of period 4 or the reference itself gives 0; white error of std s on H x W averages
    3 s^2 / (H W) in squared amplitude (the three coefficients' variance), within 5 % over 4,000 images."""
    rng = np.random.default_rng(5)
    reference = 0.2 + 0.6 * rng.random((3, 8, 12, 3))
    rows, columns = np.mgrid[0:8, 0:12]
    checker, stripes = (-1.0) ** (rows + columns), (-1.0) ** rows
    estimate = reference + (0.03 * checker + 0.04 * stripes)[..., None]
    np.testing.assert_allclose(metrics.bayer_error_amplitudes(estimate, reference), 0.05, rtol=1e-12)
    np.testing.assert_allclose(metrics.bayer_error_amplitudes(reference, reference), 0.0, atol=1e-15)
    period_4 = np.where(columns % 4 < 2, 1.0, -1.0)
    np.testing.assert_allclose(
        metrics.bayer_error_amplitudes(reference + 0.05 * period_4[..., None], reference), 0.0, atol=1e-15
    )
    smooth = np.full((4000, 16, 16, 3), 0.5)
    noisy = smooth + 0.05 * rng.standard_normal((4000, 16, 16))[..., None]
    squared = np.square(metrics.bayer_error_amplitudes(noisy, smooth))
    assert squared.mean() == pytest.approx(3 * 0.05**2 / 256, rel=0.05)
    with pytest.raises(ValueError, match="same shape"):
        metrics.bayer_error_amplitudes(smooth[:2], smooth[:3])


def test_bayer_peak_ratio_flags_a_checkerboard_but_not_white_noise():
    """White noise of any strength has the same expected energy at every frequency: on a smooth image it leaves
    the peak at 1 / (the clean image's own peak) (within 5 %: 4,000 images give each frequency's energy a relative
    standard error under 2 %), while bayer_artifact_ratio grows with the noise. A checkerboard of 1/5 of the
    noise's standard deviation in amplitude (on 16 x 16: (0.02 * 256)^2 / 256 = 0.10 at (pi, pi) against the noise's
    0.01 per frequency, 0.03 over the three) raises the peak to (0.10 + 0.03) / 0.03 = 4.4 times."""
    rng = np.random.default_rng(0)
    rows, columns = np.mgrid[0:16, 0:16]
    smooth = 0.5 + 0.2 * np.sin(2 * np.pi * rows / 16)[..., None] * np.cos(2 * np.pi * columns / 16)[..., None]
    clean = np.repeat(smooth[None], 4000, axis=0) * np.ones(3)
    clean = clean + 0.02 * rng.standard_normal(clean.shape[:3])[..., None]  # the clean images' own fine texture
    noise = 0.1 * rng.standard_normal(clean.shape[:3])[..., None]
    noisy = clean + noise
    peak, neighbours = metrics.bayer_peak_energies(clean)
    clean_peak = peak.sum() / neighbours.sum()
    assert metrics.bayer_artifact_ratio(noisy, clean) > 10.0
    assert metrics.bayer_peak_ratio(noisy, clean) == pytest.approx(1.0 / clean_peak, rel=0.05)
    checker = 0.02 * (-1.0) ** (rows + columns)
    assert metrics.bayer_peak_ratio(noisy + checker[..., None], clean) == pytest.approx(4.4 / clean_peak, rel=0.1)
    assert metrics.bayer_peak_ratio(clean, clean) == pytest.approx(1.0)
