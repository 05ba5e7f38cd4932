"""PSNR (compute_psnr.m) and SSIM (ssim_index.m) on hand-computable cases."""
import math

import numpy as np
import pytest

from srcaffe.metrics import _gaussian_window, psnr, score, ssim


def test_psnr_identical_is_inf():
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert psnr(img, img.copy()) == math.inf


def test_psnr_known_difference():
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[1, 2] = 10                       # mse = 100/16 = 6.25, rmse = 2.5 -> 20*log10(255/2.5)
    assert psnr(a, b) == pytest.approx(20 * math.log10(102), abs=1e-12)
    assert psnr(a, b) == pytest.approx(40.1720, abs=1e-4)


def test_psnr_uses_unsigned_difference_in_double():
    # uint8 subtraction would wrap around (0 - 10 = 246); compute_psnr.m uses double.
    a = np.full((2, 2), 0, np.uint8)
    b = np.full((2, 2), 10, np.uint8)
    assert psnr(a, b) == pytest.approx(20 * math.log10(25.5), abs=1e-12)


def test_psnr_crop_border():
    a = np.full((10, 10), 100, np.uint8)
    b = a.copy()
    b[0, :] = 0
    b[:, -2:] = 0
    assert psnr(a, b, crop_border=2) == math.inf
    assert psnr(a, b, crop_border=1) < math.inf


def test_psnr_y_channel_of_rgb():
    red = np.zeros((3, 3, 3), np.uint8)
    red[..., 0] = 255
    black = np.zeros((3, 3, 3), np.uint8)
    # Y(red) = 81, Y(black) = 16 (rgb2ycbcr uint8): a difference of 65 everywhere
    assert psnr(red, black) == pytest.approx(20 * math.log10(255 / 65), abs=1e-12)
    # on RGB: mse = 255^2/3 -> 20*log10(sqrt(3))
    assert psnr(red, black, y_channel=False) == pytest.approx(20 * math.log10(math.sqrt(3)), abs=1e-12)


def test_ssim_identical_is_one():
    img = np.random.default_rng(1).integers(0, 256, (32, 40), dtype=np.uint8)
    assert ssim(img, img.copy()) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_two_constant_images():
    # sigma terms vanish: SSIM = (2 a b + C1) / (a^2 + b^2 + C1), C1 = (0.01*255)^2
    a = np.full((20, 20), 100, np.uint8)
    b = np.full((20, 20), 110, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100 ** 2 + 110 ** 2 + c1), abs=1e-12)


def test_ssim_gaussian_window_is_fspecial():
    g = _gaussian_window()
    x = np.arange(-5, 6)
    w2 = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5 ** 2))
    np.testing.assert_allclose(np.outer(g, g), w2 / w2.sum(), atol=1e-16)


def test_ssim_matches_scikit_image_gaussian_variant():
    # skimage with gaussian_weights, sigma 1.5, population covariance and data_range 255 is the
    # same estimator; its map is cropped by the window radius, i.e. 'valid'.
    from skimage.metrics import structural_similarity
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (48, 37)).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    ref = structural_similarity(a.astype(float), b.astype(float), gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255)
    assert ssim(a, b) == pytest.approx(ref, abs=1e-10)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-14)
    assert 0 < ssim(a, b) < 1


def test_ssim_rgb_uses_y():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    from srcaffe.matlab import rgb2y
    assert ssim(a, b, crop_border=2) == pytest.approx(ssim(rgb2y(a), rgb2y(b), crop_border=2), abs=1e-15)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


def test_score_is_psnr_and_ssim_with_the_same_arguments():
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
    sr = np.clip(gt.astype(int) + rng.integers(-20, 21, gt.shape), 0, 255).astype(np.uint8)
    sr[:3] = 0   # a damaged border: what crop_border leaves out
    for crop, y in ((0, True), (3, True), (3, False)):
        got = score(sr, gt, crop_border=crop, test_y_channel=y)
        assert got == {"psnr": psnr(sr, gt, crop, y), "ssim": ssim(sr, gt, crop, y)}
    shaved, whole = score(sr, gt, 3, True), score(sr, gt, 0, True)
    assert shaved["psnr"] > whole["psnr"] + 1 and shaved["ssim"] > whole["ssim"]
    # on Y: the channels are not averaged
    assert score(sr, gt, 3, True)["psnr"] != score(sr, gt, 3, False)["psnr"]
