"""predict on one image, as the authors' demo_SR.m: ground-truth mode (scores and figures) and
upscale mode (a real LR image). tools/predict.py is the command line over these."""
import os

import numpy as np

from . import figures, matlab
from .errors import UserError
from .evaluation import bicubic_upscaler, ground_truth_pair, score_upscaler
from .images import load_alpha, load_image, save_image
from .upscaling import bicubic_rgb, merge_colour

GT_MAX_PIXELS = 16 * 10 ** 6


def colour(y, ycbcr, scale):
    """uint8 image from a Y channel: with the bicubic Cb/Cr of an LR YCbCr image, or gray."""
    return matlab.to_uint8(y) if ycbcr is None else merge_colour(y, ycbcr, scale)


def score_ground_truth(model, rgb, what):
    """demo_SR.m on one uint8 ground-truth image (an image file's, a video frame's): bicubic and
    the network on its LR Y, scored on Y (evaluation.score_upscaler), and their colour images.
    Returns {gt (modcropped), gnd and lr (Y, float), lr_ycbcr (None for gray), y: {bicubic, net:
    SR Y}, scores: {bicubic, net: {psnr, ssim}}, images: {bicubic, net: uint8}}."""
    s = model.scale
    try:
        gnd, lr = ground_truth_pair(rgb, s, what)
        out = {"gnd": gnd, "lr": lr, "y": {}, "scores": {}, "images": {}}
        for name, up in (("bicubic", bicubic_upscaler), ("net", model.upscaler)):
            out["y"][name], out["scores"][name] = score_upscaler(up, gnd, lr, s, what, name)
    except ValueError as exc:   # e.g. an upscaler's output of the wrong shape
        raise UserError("%s: %s" % (what, exc)) from None
    out["gt"] = gt = matlab.modcrop(rgb, s)
    out["lr_ycbcr"] = matlab.imresize(matlab.im2double(matlab.rgb2ycbcr(gt)), 1.0 / s) if gt.ndim == 3 else None
    for name, y in out["y"].items():
        out["images"][name] = colour(y, out["lr_ycbcr"], s)
    return out


def ground_truth(model, path, out, analyse=False):
    """demo_SR.m on one ground-truth image: scores, images and figures (the paths in `out`, which
    the caller has cleared for writing). Returns (scores, a summary line)."""
    s = model.scale
    rgb = load_image(path)
    h, w = rgb.shape[0] // s, rgb.shape[1] // s
    model.check_size((h, w), path)
    if rgb.shape[0] * rgb.shape[1] > GT_MAX_PIXELS:   # scored whole, in float64, as demo_SR.m does
        raise UserError("%s: %dx%d is too large to score whole (at most %d MP in --mode gt); "
                        "use --mode upscale" % (path, rgb.shape[1], rgb.shape[0], GT_MAX_PIXELS // 10 ** 6))
    r = score_ground_truth(model, rgb, path)
    (b, n), gt, lr_ycbcr = (r["scores"]["bicubic"], r["scores"]["net"]), r["gt"], r["lr_ycbcr"]
    lr = matlab.to_uint8(r["lr"] if lr_ycbcr is None else matlab.ycbcr2rgb(lr_ycbcr))
    bic, sr = r["images"]["bicubic"], r["images"]["net"]
    save_image(out["sr"], sr, overwrite=True)
    save_image(out["bicubic"], bic, overwrite=True)
    figures.compare(out["compare"], [
        ("ground truth %dx%d" % (gt.shape[1], gt.shape[0]), gt), ("LR %dx%d (x1/%d)" % (w, h, s), lr),
        ("bicubic %.2f dB / %.4f" % (b["psnr"], b["ssim"]), bic),
        ("%s %.2f dB / %.4f" % (model.name, n["psnr"], n["ssim"]), sr)], overwrite=True)
    if analyse:
        # on the Y values that were scored: uint8, `scale` pixels shaved
        gt_y, bic_y, sr_y = (matlab.shave(matlab.to_uint8(y), s) for y in (r["gnd"], r["y"]["bicubic"], r["y"]["net"]))
        figures.error_maps(out["errors"], gt_y, [(model.name, sr_y), ("bicubic", bic_y)], overwrite=True)
        figures.patches(out["patches"], figures.rank_patches(gt_y, sr_y), gt_y,
                        [("bicubic", bic_y), (model.name, sr_y)], overwrite=True)
    return (b, n), "%s x%d: bicubic %.2f dB (SSIM %.4f), %s %.2f dB (SSIM %.4f)" % (
        os.path.splitext(os.path.basename(path))[0], s, b["psnr"], b["ssim"], model.name, n["psnr"], n["ssim"])


def upscale(model, path, out):
    """A real LR image, scale times larger: the network's and MATLAB bicubic's (an alpha channel,
    which the nets do not see, bicubic in both). Returns (None, line)."""
    img, alpha = load_image(path), load_alpha(path)
    if alpha is not None:   # MATLAB bicubic, as the colour channels the nets do not see either
        alpha = matlab.to_uint8(matlab.imresize(matlab.im2double(alpha), model.scale))

    def with_alpha(rgb):
        if alpha is None:
            return rgb
        return np.dstack([np.dstack([rgb] * 3) if rgb.ndim == 2 else rgb, alpha])
    sr = model.upscale(img, path)
    save_image(out["sr"], with_alpha(sr), overwrite=True)
    size = sr.shape[1], sr.shape[0]
    del sr
    if "bicubic" in out:
        save_image(out["bicubic"], with_alpha(bicubic_rgb(img, model.scale)), overwrite=True)
    return None, "%s: %dx%d -> %dx%d%s" % (os.path.basename(path), img.shape[1], img.shape[0], size[0], size[1],
                                          ", alpha upscaled bicubic" if alpha is not None else "")


def command(model, mode, pad, path):
    """What identifies one predict command for srcaffe.outputs.Record: not --tile, --out or
    --force, which do not change what is written, nor --analyse, which only adds two figures
    (its other outputs are the plain command's, byte for byte)."""
    return "predict --mode %s --model %s (%s) --scale %d --pad %s %s" % (
        mode, model.name, os.path.abspath(model.weights) if os.path.exists(str(model.weights)) else model.weights,
        model.scale, pad, os.path.abspath(path))
