#!/usr/bin/env python3
import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E401,E702
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)

import argparse

from srcaffe import cli, outputs
from srcaffe.cli import run_main
from srcaffe.errors import UserError

DESCRIPTION = """\
Super-resolve an image (or every image of a folder, or a video) with an FSRCNN / SRCNN model.

--mode gt (default): IMAGE is a ground truth. As the authors' demo_SR.m: Y of rgb2ycbcr, modcrop,
MATLAB bicubic downscale by 1/scale, network; PSNR/SSIM of bicubic and of the network on Y with
`scale` pixels shaved (the same code as tools/evaluate.py). Writes, under --out:
  NAME_xS_MODEL.png          colour SR (Y from the network, Cb/Cr bicubic from the LR colour image)
  NAME_xS_MODEL_bicubic.png  colour bicubic upscale of the same LR image
  NAME_xS_MODEL_compare.png  ground truth / LR / bicubic / network, dB in the titles
  with --analyse also NAME_xS_MODEL_errors.png (|error| heatmaps of network and bicubic) and
  NAME_xS_MODEL_patches.png (best and worst 32x32 patches of the network by PSNR).
--mode upscale: IMAGE is a real LR image; writes NAME_xS_MODEL_upscale.png and
NAME_xS_MODEL_upscale_bicubic.png, scale times larger, no scores. (--pad zero adds _zeropad.)

Borders: the nets have no padding, so the input is padded first (--pad replicate: edge pixels
repeated, the default and closer to the authors' test code; --pad zero). Large images run in
tiles of --tile LR pixels that overlap by the receptive field: the result does not depend on it."""

EPILOG = """\
examples:
  python3 tools/predict.py butterfly.bmp                      # Set5's butterfly_GT.bmp, models/fsrcnn_x3
  python3 tools/predict.py butterfly --model srcnn --analyse
  python3 tools/predict.py butterfly --model official-fsrcnn  # the authors' released x3 weights
  python3 tools/predict.py photo.png --mode upscale --model runs/x/fsrcnn_x3_iter_100000.caffemodel
  python3 tools/predict.py Set14 --out results/set14
  python3 tools/predict.py clip.mp4 --mode upscale --model fsrcnn-s --compare   # a video, audio kept
  python3 tools/predict.py clip.mkv --max-frames 100           # video frames as ground truth: PSNR/SSIM

IMAGE not found as given is looked up by name in the registered datasets (Set5, Set14, T91);
a folder, or a dataset name (Set5), processes every image in it.
Running the same command again replaces what it wrote before (it says so); any other existing
file is never overwritten without --force."""


def parse_args(argv):
    p = cli.ArgumentParser(prog="tools/predict.py", description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", metavar="IMAGE", help="an image file, a dataset image name, a folder, a dataset or a video")
    cli.add_model_options(p)
    cli.add_scale(p)
    p.add_argument("--mode", choices=("gt", "upscale"), default="gt", help="IMAGE is a ground truth (default) or a real LR image")
    p.add_argument("--out", default="results", metavar="DIR", help="output folder (default results/)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files another command wrote")
    p.add_argument("--analyse", action="store_true", help="also error heatmaps and best/worst patches (--mode gt)")
    p.add_argument("--no-bicubic", action="store_true", help="--mode upscale: skip NAME_xS_MODEL_upscale_bicubic.png "
                   "(half the work on a huge image)")
    v = p.add_argument_group("videos (IMAGE is a .mp4, .mkv, .avi, .webm... file; see docs/inference.md)")
    v.add_argument("--frames", metavar="A:B", help="only frames A..B-1 (0-based; A: or :B)")
    v.add_argument("--max-frames", type=int, metavar="N", help="at most N frames")
    v.add_argument("--compare", action="store_true", help="also a side-by-side video: bicubic | network")
    v.add_argument("--preset", default=outputs.PRESET, choices=outputs.PRESETS, metavar="NAME",
                   help="x264 preset of the H.264 output (default %(default)s; veryfast, medium...: smaller files, slower)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    video_file = outputs.is_video(args.image)
    is_video = video_file or args.frames or args.max_frames is not None or args.compare
    if args.analyse and (is_video or args.mode != "gt"):
        raise UserError("--analyse needs --mode gt on images (on a video, --mode gt writes the worst frames' figure)")
    from srcaffe import datasets, device, models, predict, video
    device.use(args.gpu, args.engine)
    if args.no_bicubic and args.mode != "upscale":
        raise UserError("--no-bicubic is for --mode upscale (--mode gt scores bicubic beside the network)")
    if is_video and not video_file:
        raise UserError("%s: --frames/--max-frames/--compare are for videos (%s)"
                        % (args.image, " ".join(outputs.VIDEO_EXTS)))
    many = not is_video and datasets.is_image_set(args.image)
    paths = datasets.list_images(args.image) if many else [args.image if is_video else datasets.resolve_image(args.image)]
    model = models.load_model(args.model, scale=args.scale, arch=args.arch, pad=args.pad, tile=args.tile)
    for note in model.notes:
        print(note)
    if is_video:
        out = outputs.video_outputs(args.out, args.image, model.scale, model.name, args.mode, args.pad, args.compare)
        record = outputs.Record(args.out, predict.command(model, "video-" + args.mode, args.pad, args.image))
        outputs.claim([(record, list(out.values()))], args.force)
        for line in video.predict_video(args.image, model, args.out, args.mode, args.frames, args.max_frames,
                                        args.compare, True, preset=args.preset):
            print(line)
        record.done([p for p in out.values() if os.path.exists(p)])
        return 0
    todo = [(path, outputs.image_outputs(args.out, path, model.scale, model.name, args.mode, args.pad, args.analyse,
                                         bicubic=not args.no_bicubic),
             outputs.Record(args.out, predict.command(model, args.mode, args.pad, path))) for path in paths]
    outputs.claim([(record, list(out.values())) for _, out, record in todo], args.force)
    from tqdm import tqdm

    scores = []
    for path, out, record in tqdm(todo, unit="image", disable=None if len(todo) > 1 else True, file=sys.stderr):
        res, line = (predict.ground_truth(model, path, out, args.analyse) if args.mode == "gt"
                     else predict.upscale(model, path, out))
        record.done(list(out.values()))
        scores += [res] if res else []
        tqdm.write(line + "\n  wrote " + ", ".join(out.values()))
    if len(scores) > 1:
        mean = [sum(r[i]["psnr"] for r in scores) / len(scores) for i in (0, 1)]
        print("mean of %d images: bicubic %.2f dB, %s %.2f dB" % (len(scores), mean[0], model.name, mean[1]))
    return 0


if __name__ == "__main__":
    run_main(main)
