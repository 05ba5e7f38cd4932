"""Per-image and mean PSNR/SSIM of an upscaler, following the authors' demo_SR.m pipeline.

An upscaler is any callable (lr_y, scale) -> sr_y where lr_y is the low-resolution Y channel as
float64 in [0,1] (HxW) and sr_y is a float HxW array of the ground truth's size, on the same
[0,1] scale (it is quantised with uint8(sr*255) afterwards). Bicubic is one; a Caffe model
wrapped in such a function is another.
"""
import os

import numpy as np

from . import matlab
from .errors import UserError
from .images import load_image
from .metrics import score


def bicubic_upscaler(lr, scale):
    """demo_SR.m's baseline: im_b = imresize(im_l, up_scale, 'bicubic')."""
    return matlab.imresize(lr, scale)


def prepare_pair(path, scale, scored=False):
    """(im_gnd, im_l) of an image file, as demo_SR.m makes them (ground_truth_pair)."""
    return ground_truth_pair(load_image(path), scale, path if scored else None)


def ground_truth_pair(img, scale, scored_as=None):
    """(im_gnd, im_l) of a uint8 ground-truth image as demo_SR.m makes them: Y of rgb2ycbcr on
    uint8 (a grayscale image is its own Y), modcrop to a multiple of scale, /255 in floating
    point, then im_l = imresize(im_gnd, 1/scale, 'bicubic') kept in float (not re-quantised).
    scored_as: the name of the image when PSNR/SSIM follow (it must be large enough for them)."""
    gnd = matlab.im2double(matlab.modcrop(matlab.rgb2y(img), scale))
    if scored_as is not None:
        check_size(scored_as, gnd.shape, scale)
    return gnd, matlab.imresize(gnd, 1.0 / scale)


def score_upscaler(upscaler, gnd, lr, scale, what, method_name="upscaler"):
    """(sr, {"psnr", "ssim"}): sr = upscaler(lr, scale) scored against gnd as demo_SR.m does:
    uint8(x*255) on both, `scale` pixels shaved on each side, PSNR (compute_psnr.m) and SSIM
    (ssim_index.m) on the Y values (metrics.score). `what` names the image in errors."""
    try:
        sr = np.asarray(upscaler(lr, scale))
    except UserError as exc:   # e.g. a network's least input: name the file
        raise UserError(str(exc) if os.fspath(what) in str(exc) else "%s: %s" % (what, exc)) from None
    if sr.shape != gnd.shape:
        raise ValueError("%s: upscaler %r returned shape %s, expected %s" % (what, method_name, sr.shape, gnd.shape))
    return sr, score(matlab.to_uint8(sr), matlab.to_uint8(gnd), crop_border=scale, test_y_channel=False)


SSIM_WINDOW = 11   # ssim_index.m's window


def check_size(path, shape, scale):
    """One line naming the image unless it is large enough to score at this scale: `scale`
    pixels shaved on each side (demo_SR.m), and SSIM's 11x11 window inside what is left."""
    need = 2 * scale + SSIM_WINDOW
    h, w = shape[:2]
    if min(h, w) < need:
        raise UserError("%s: %dx%d pixels (modcropped to x%d) is too small to evaluate at x%d: it needs at least "
                        "%dx%d (%d shaved on each side, SSIM's %dx%d window)"
                        % (path, w, h, scale, scale, need, need, scale, SSIM_WINDOW, SSIM_WINDOW))


def evaluate(upscaler, images, scale, method_name, dataset=None):
    """Run demo_SR.m's evaluation of `upscaler` over image paths at an integer scale.

    sr = upscaler(im_l, scale); then uint8(x*255) on sr and ground truth, shave `scale` pixels on
    each side, PSNR (compute_psnr.m) and SSIM (ssim_index.m) on the Y values.
    Returns {"dataset", "scale", "method", "mean_psnr", "mean_ssim", "images": [{"name", "psnr",
    "ssim", "height", "width"}]} where height/width are the modcropped ground-truth size.
    """
    scale = int(scale)
    rows = []
    for path in images:
        gnd, lr = prepare_pair(path, scale, scored=True)
        _, scores = score_upscaler(upscaler, gnd, lr, scale, path, method_name)
        rows.append({"name": os.path.splitext(os.path.basename(path))[0], "psnr": scores["psnr"],
                     "ssim": scores["ssim"], "height": int(gnd.shape[0]), "width": int(gnd.shape[1])})
    return {"dataset": dataset, "scale": scale, "method": method_name,
            "mean_psnr": float(np.mean([r["psnr"] for r in rows])) if rows else float('nan'),
            "mean_ssim": float(np.mean([r["ssim"] for r in rows])) if rows else float('nan'),
            "images": rows}


def format_table(results_list):
    """A plain-text table: one row per image, one PSNR/SSIM column pair per method, mean last.

    All results must cover the same images (matched by name, in the first result's order)."""
    if isinstance(results_list, dict):
        results_list = [results_list]
    if not results_list:
        return ""
    first = results_list[0]
    names = [r["name"] for r in first["images"]]
    by_method = [{r["name"]: r for r in res["images"]} for res in results_list]
    width = max([len(n) for n in names] + [len("mean"), 5])
    title = "%s x%d" % (first.get("dataset") or "images", first["scale"])
    head1 = "%-*s" % (width, title) + "".join("  %17s" % res["method"][:17] for res in results_list)
    head2 = "%-*s" % (width, "image") + "  %8s %8s" % ("PSNR", "SSIM") * len(results_list)
    lines = [head1, head2, "-" * len(head2)]

    def cell(r):
        return "  %8s %8s" % ("-", "-") if r is None else "  %8.2f %8.4f" % (r["psnr"], r["ssim"])
    for n in names:
        lines.append("%-*s" % (width, n) + "".join(cell(m.get(n)) for m in by_method))
    lines.append("-" * len(head2))
    lines.append("%-*s" % (width, "mean") + "".join(
        "  %8.2f %8.4f" % (res["mean_psnr"], res["mean_ssim"]) for res in results_list))
    return "\n".join(lines)
