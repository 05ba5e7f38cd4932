import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E401,E702
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)

import argparse

os.environ.setdefault("GLOG_minloglevel", "2")   # quiet Caffe; set before anything imports caffe

from srcaffe import cli, datasets, device, figures, files, matlab, video
from srcaffe.cli import run_main
from srcaffe.errors import UserError
from srcaffe.evaluation import bicubic_upscaler, evaluate
from srcaffe.images import load_image, save_image
from srcaffe.inference import PADS, bicubic_rgb, load_model, merge_colour

GT_MAX_PIXELS = 16 * 10 ** 6

DESCRIPTION = """\
Super-resolve an image (or every image of a folder) with a trained FSRCNN / SRCNN caffemodel.

--mode gt (default): IMAGE is a ground truth. As the authors' demo_SR.m: Y of rgb2ycbcr, modcrop,
MATLAB bicubic downscale by 1/scale, network; PSNR/SSIM of bicubic and of the network on Y with
`scale` pixels shaved (the same code as tools/evaluate.py). Writes, under --out:
  NAME_xS_MODEL.png     colour SR (Y from the network, Cb/Cr bicubic from the LR colour image)
  NAME_xS_bicubic.png   colour bicubic upscale of the same LR image
  NAME_xS_compare.png   ground truth / LR / bicubic / network, dB in the titles
  with --analyse also NAME_xS_MODEL_errors.png (|error| heatmaps of network and bicubic) and
  NAME_xS_MODEL_patches.png (best and worst 32x32 patches of the network by PSNR).
--mode upscale: IMAGE is a real LR image; writes NAME_xS_MODEL.png and NAME_xS_bicubic.png,
scale times larger, no scores.

Borders: the nets have no padding, so the input is padded first (--pad replicate: edge pixels
repeated, the default and closer to the authors' test code; --pad zero). Large images run in
tiles of --tile LR pixels that overlap by the receptive field: the result does not depend on it."""

EPILOG = """\
examples:
  python tools/predict.py butterfly.bmp                       # Set5's butterfly_GT.bmp, models/fsrcnn_x3
  python tools/predict.py butterfly --model srcnn --analyse
  python tools/predict.py photo.png --mode upscale --model runs/x/fsrcnn_x3_iter_100000.caffemodel
  python tools/predict.py path/to/folder --out results/folder --force
  python tools/predict.py clip.mp4 --mode upscale --model fsrcnn-s --compare   # a video, audio kept
  python tools/predict.py clip.mkv --max-frames 100                # video frames as ground truth: PSNR/SSIM

IMAGE not found as given is looked up by name in the registered datasets (Set5, Set14, T91);
a folder, or a dataset name (Set5), processes every image in it.
--model takes a name (fsrcnn, fsrcnn-s, srcnn, srcnn-935, srcnn-955: models/NAME_xS.caffemodel)
or a .caffemodel file, whose architecture is read from its weights unless --arch names it.
Existing files are never overwritten without --force."""


def parse_args(argv):
    p = cli.ArgumentParser(prog="tools/predict.py", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", metavar="IMAGE", help="an image file, a dataset image name, a folder or a dataset")
    p.add_argument("--model", default="fsrcnn", metavar="NAME|FILE", help="model name or .caffemodel (default fsrcnn)")
    p.add_argument("--arch", metavar="MODEL", help="architecture of a .caffemodel (default: read from its weights)")
    p.add_argument("--scale", type=int, default=3, choices=(2, 3, 4), help="upscaling factor (default 3)")
    p.add_argument("--mode", choices=("gt", "upscale"), default="gt", help="IMAGE is a ground truth (default) or a real LR image")
    p.add_argument("--out", default="results", metavar="DIR", help="output folder (default results/)")
    p.add_argument("--pad", choices=PADS, default="replicate", help="border padding of the net input (default replicate)")
    p.add_argument("--tile", type=int, metavar="N", help="tile side in LR pixels (default: the largest within about 256 MB of Caffe memory)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--gpu", type=int, metavar="ID", help="run Caffe on this GPU (a CUDA build: tools/setup.sh --cuda)")
    p.add_argument("--analyse", action="store_true", help="also error heatmaps and best/worst patches (--mode gt)")
    p.add_argument("--no-bicubic", action="store_true", help="--mode upscale: skip NAME_xS_bicubic.png (half the "
                   "work on a huge image)")
    v = p.add_argument_group("videos (IMAGE is a .mp4, .mkv, .avi, .webm... file; see srcaffe/video.py)")
    v.add_argument("--frames", metavar="A:B", help="only frames A..B-1 (0-based; A: or :B)")
    v.add_argument("--max-frames", type=int, metavar="N", help="at most N frames")
    v.add_argument("--compare", action="store_true", help="also a side-by-side video: bicubic | network")
    v.add_argument("--preset", default=video.PRESET, choices=video.PRESETS, metavar="NAME",
                   help="x264 preset of the H.264 output (default %(default)s; veryfast, medium...: smaller files, slower)")
    return p.parse_args(argv)


def outputs(args, model, path):
    """{kind: output path} for one image."""
    base = os.path.join(args.out, "%s_x%d_" % (os.path.splitext(os.path.basename(path))[0], args.scale))
    out = {"sr": base + model.name + ".png", "bicubic": base + "bicubic.png"}
    if getattr(args, "no_bicubic", False):
        del out["bicubic"]
    if args.mode == "gt":
        out["compare"] = base + "compare.png"
        if args.analyse:
            out.update(errors=base + model.name + "_errors.png", patches=base + model.name + "_patches.png")
    return out


def colour(y, ycbcr, scale):
    """uint8 image from a Y channel: with the bicubic Cb/Cr of an LR YCbCr image, or gray."""
    return matlab.to_uint8(y) if ycbcr is None else merge_colour(y, ycbcr, scale)


def ground_truth(args, model, path, out):
    """demo_SR.m on one ground-truth image: scores, images and figures. Returns a summary line."""
    s = args.scale
    rgb = load_image(path)
    h, w = rgb.shape[0] // s, rgb.shape[1] // s
    model.check_size((h, w), path)
    if rgb.shape[0] * rgb.shape[1] > GT_MAX_PIXELS:   # scored whole, in float64, as demo_SR.m does
        raise UserError("%s: %dx%d is too large to score whole (at most %d MP in --mode gt); "
                        "use --mode upscale" % (path, rgb.shape[1], rgb.shape[0], GT_MAX_PIXELS // 10 ** 6))
    kept = {}

    def recorded(name, upscaler):   # keep what evaluate() scores, to save exactly that
        def run(lr, scale):
            kept[name], kept["lr"] = upscaler(lr, scale), lr
            return kept[name]
        return run
    try:
        res = [evaluate(recorded(name, up), [path], s, name)["images"][0]
               for name, up in (("bicubic", bicubic_upscaler), (model.name, model.upscaler))]
    except ValueError as exc:   # e.g. too small for SSIM's 11x11 window after shaving
        raise UserError("%s: %s" % (path, exc)) from None
    gt = matlab.modcrop(rgb, s)
    lr_ycbcr = matlab.imresize(matlab.im2double(matlab.rgb2ycbcr(gt)), 1.0 / s) if gt.ndim == 3 else None
    lr = matlab.to_uint8(kept["lr"] if lr_ycbcr is None else matlab.ycbcr2rgb(lr_ycbcr))
    bic, sr = colour(kept["bicubic"], lr_ycbcr, s), colour(kept[model.name], lr_ycbcr, s)
    save_image(out["sr"], sr, overwrite=args.force)
    save_image(out["bicubic"], bic, overwrite=args.force)
    b, n = res
    figures.compare(out["compare"], [
        ("ground truth %dx%d" % (gt.shape[1], gt.shape[0]), gt), ("LR %dx%d (x1/%d)" % (w, h, s), lr),
        ("bicubic %.2f dB / %.4f" % (b["psnr"], b["ssim"]), bic),
        ("%s %.2f dB / %.4f" % (model.name, n["psnr"], n["ssim"]), sr)], overwrite=args.force)
    if args.analyse:
        # on the Y values that were scored: uint8, `scale` pixels shaved
        gt_y = matlab.shave(matlab.to_uint8(matlab.im2double(matlab.rgb2y(gt))), s)
        bic_y, sr_y = (matlab.shave(matlab.to_uint8(kept[k]), s) for k in ("bicubic", model.name))
        figures.error_maps(out["errors"], gt_y, [(model.name, sr_y), ("bicubic", bic_y)], overwrite=args.force)
        figures.patches(out["patches"], figures.rank_patches(gt_y, sr_y), gt_y,
                        [("bicubic", bic_y), (model.name, sr_y)], overwrite=args.force)
    return res, "%s x%d: bicubic %.2f dB (SSIM %.4f), %s %.2f dB (SSIM %.4f)" % (
        n["name"], s, b["psnr"], b["ssim"], model.name, n["psnr"], n["ssim"])


def upscale(args, model, path, out):
    img = load_image(path)
    model.check_size(img.shape, path)
    sr = model.upscale_rgb(img)
    save_image(out["sr"], sr, overwrite=args.force)
    size = sr.shape[1], sr.shape[0]
    del sr
    if "bicubic" in out:
        save_image(out["bicubic"], bicubic_rgb(img, args.scale), overwrite=args.force)
    return None, "%s: %dx%d -> %dx%d" % (os.path.basename(path), img.shape[1], img.shape[0], size[0], size[1])


def predict_video(args):
    if args.analyse:
        raise UserError("--analyse is for images; on a video, --mode gt writes the worst frames' figure")
    if not video.is_video(args.image):
        raise UserError("%s: --frames/--max-frames/--compare are for videos (%s)"
                        % (args.image, " ".join(video.VIDEO_EXTS)))
    model = load_model(args.model, scale=args.scale, model=args.arch, pad=args.pad, tile=args.tile)
    for line in video.predict_video(args.image, model, args.out, args.mode, args.frames, args.max_frames,
                                    args.compare, args.force, tile=args.tile, preset=args.preset):
        print(line)
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.gpu is not None:
        device.use_gpu(args.gpu)
    if video.is_video(args.image) or args.frames or args.max_frames is not None or args.compare:
        return predict_video(args)
    if args.no_bicubic and args.mode != "upscale":
        raise UserError("--no-bicubic is for --mode upscale (--mode gt scores bicubic beside the network)")
    if args.analyse and args.mode != "gt":
        raise UserError("--analyse needs --mode gt (it compares with the ground truth)")
    many = os.path.isdir(args.image) or (not os.path.exists(args.image)
                                         and args.image.lower() in (k.lower() for k in datasets.DATASETS))
    paths = datasets.list_images(args.image) if many else [datasets.resolve_image(args.image)]
    model = load_model(args.model, scale=args.scale, model=args.arch, pad=args.pad, tile=args.tile)
    for note in model.notes:
        print(note)
    todo = [(path, outputs(args, model, path)) for path in paths]
    for _, out in todo:   # refuse before anything is computed or written
        for f in out.values():
            files.check_writable_file(f, args.force)
    from tqdm import tqdm

    scores = []
    bar = tqdm(todo, unit="image", disable=None if len(todo) > 1 else True, file=sys.stderr)
    for path, out in bar:
        res, line = (ground_truth if args.mode == "gt" else upscale)(args, model, path, out)
        scores += [res] if res else []
        tqdm.write(line + "\n  wrote " + ", ".join(out.values()))
    if len(scores) > 1:
        mean = [sum(r[i]["psnr"] for r in scores) / len(scores) for i in (0, 1)]
        print("mean of %d images: bicubic %.2f dB, %s %.2f dB" % (len(scores), mean[0], model.name, mean[1]))
    return 0


if __name__ == "__main__":
    run_main(main)
