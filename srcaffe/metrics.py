"""PSNR and SSIM exactly as the SRCNN/FSRCNN authors computed them (compute_psnr.m, ssim_index.m)."""
import numpy as np
from scipy.ndimage import correlate1d

from .matlab import rgb2ycbcr, shave


def _prepare(img1, img2, crop_border, y_channel):
    """Both images as float64 on the 0..255 scale: Y if asked (and RGB), border shaved."""
    a, b = np.asarray(img1), np.asarray(img2)
    if a.shape != b.shape:
        raise ValueError("images differ in shape: %s vs %s" % (a.shape, b.shape))
    if y_channel and a.ndim == 3 and a.shape[2] == 3:
        a, b = _y(a), _y(b)
    if crop_border:
        a, b = shave(a, crop_border), shave(b, crop_border)
    return a.astype(np.float64), b.astype(np.float64)


def _y(img):
    """compute_psnr.m's rgb2ycbcr on uint8 (rounded Y); arrays of other types are taken as 0..255
    values and given the unrounded Y."""
    if img.dtype == np.uint8:
        return rgb2ycbcr(img)[..., 0]
    return rgb2ycbcr(img.astype(np.float64) / 255.0)[..., 0] * 255.0


def psnr(img1, img2, crop_border=0, y_channel=True):
    """The authors' compute_psnr.m (after shave(., [b b])).

    Inputs are uint8 images (other arrays are taken to hold 0..255 values). A 3-channel input is
    reduced to the Y of MATLAB rgb2ycbcr (uint8, rounded) when y_channel is true; then
    rmse = sqrt(mean((double(a)-double(b)).^2)) and psnr = 20*log10(255/rmse), in double.
    Identical images give inf, as MATLAB's 20*log10(255/0) does.
    """
    return _psnr(*_prepare(img1, img2, crop_border, y_channel))


def _psnr(a, b):
    rmse = np.sqrt(np.mean((a - b) ** 2))
    if rmse == 0:
        return float('inf')
    return float(20 * np.log10(255.0 / rmse))


def _gaussian_window(size=11, sigma=1.5):
    """1-D factor of MATLAB fspecial('gaussian', size, sigma); the 2-D window is its outer product
    (the 2-D Gaussian normalised to sum 1 separates exactly into two normalised 1-D ones)."""
    x = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img, g):
    """filter2(window, img, 'valid') for the separable symmetric window outer(g, g)."""
    r = len(g) // 2
    out = correlate1d(correlate1d(img, g, axis=0, mode='constant'), g, axis=1, mode='constant')
    return out[r:img.shape[0] - r, r:img.shape[1] - r]


def ssim(img1, img2, crop_border=0, y_channel=True):
    """Wang et al.'s reference ssim_index.m (the MATLAB SSIM used in SR papers).

    Gaussian 11x11 window with sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering (no
    padding), no downsampling, mean of the SSIM map. Y conversion and border crop as in psnr().
    Multi-channel images without y_channel get the mean over channels.
    """
    return _ssim(*_prepare(img1, img2, crop_border, y_channel))


def _ssim(a, b):
    if a.ndim == 3:
        return float(np.mean([_ssim(a[..., c], b[..., c]) for c in range(a.shape[2])]))
    if min(a.shape) < 11:
        raise ValueError("ssim needs images of at least 11x11 pixels, got %s" % (a.shape,))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gaussian_window()
    mu1, mu2 = _filter_valid(a, g), _filter_valid(b, g)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = _filter_valid(a * a, g) - mu1_sq
    sigma2_sq = _filter_valid(b * b, g) - mu2_sq
    sigma12 = _filter_valid(a * b, g) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return float(ssim_map.mean())


def score(sr, gt, crop_border, test_y_channel):
    """{"psnr", "ssim"} of an SR image against its ground truth: what psnr() and ssim() give with
    the same arguments, the images prepared once for both. The one scoring of the toolkit: every
    image and every video frame with a ground truth is scored here (srcaffe.evaluation).

    crop_border: pixels shaved on each side (demo_SR.m shaves `scale`); test_y_channel: a
    3-channel input is reduced to its Y first (inputs already Y: False, nothing converted)."""
    a, b = _prepare(sr, gt, crop_border, test_y_channel)
    return {"psnr": _psnr(a, b), "ssim": _ssim(a, b)}
