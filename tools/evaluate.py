import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E401,E702

import argparse
import json

from srcaffe import datasets
from srcaffe.cli import run_main
from srcaffe.errors import UserError
from srcaffe.evaluation import bicubic_upscaler, evaluate, format_table

DESCRIPTION = """\
PSNR/SSIM of a super-resolution method, computed as the authors' demo_SR.m does: Y channel of
MATLAB rgb2ycbcr, modcrop, MATLAB bicubic downscale by 1/scale, upscale, uint8, `scale` pixels
shaved from every border, compute_psnr.m and ssim_index.m."""

EPILOG = """\
examples:
  python tools/evaluate.py --method bicubic --dataset Set5 --scale 3
  python tools/evaluate.py --dataset Set14 --scale 2 --json results/bicubic_set14_x2.json
  python tools/evaluate.py --dataset path/to/my/images --scale 4

--dataset takes a registered set (Set5, Set14, T91; fetch it first with tools/datasets.py fetch)
or any folder of png/bmp/jpg/tif images. Papers' bicubic rows: Set5 33.66/30.39/28.42,
Set14 30.23/27.54/26.00 (x2/x3/x4).
"""

METHODS = {"bicubic": bicubic_upscaler}


def parse_args(argv):
    p = argparse.ArgumentParser(prog="tools/evaluate.py", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", action="append", choices=sorted(METHODS),
                   help="method to evaluate; repeat for side-by-side columns (default: bicubic)")
    p.add_argument("--model", metavar="FILE",
                   help="a trained model to evaluate (not available yet: needs issue 5, pycaffe inference)")
    p.add_argument("--dataset", required=True, metavar="NAME|DIR", help="Set5, Set14, T91 or a folder of images")
    p.add_argument("--scale", type=int, required=True, choices=(2, 3, 4), help="upscaling factor")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON (one dict per method)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.model:
        # Plug point for models: wrap the network as upscaler(lr_y, scale) -> sr_y and add a column.
        raise UserError("--model %s: model evaluation needs issue 5 (pycaffe inference): not available yet"
                        % args.model)
    if args.json and os.path.exists(args.json) and not args.force:
        raise UserError("%s: already exists; refusing to overwrite it (use --force)" % args.json)
    images = datasets.list_images(args.dataset)
    registered = not os.path.isdir(args.dataset) and args.dataset.lower() in (k.lower() for k in datasets.DATASETS)
    name = datasets.canonical_name(args.dataset) if registered else os.path.basename(os.path.normpath(args.dataset))
    try:
        results = [evaluate(METHODS[m], images, args.scale, m, dataset=name) for m in (args.method or ["bicubic"])]
    except ValueError as exc:  # e.g. an image too small for the scale / SSIM window
        raise UserError(str(exc)) from None
    print(format_table(results))
    if args.json:
        payload = results[0] if len(results) == 1 else results
        parent = os.path.dirname(args.json)
        if parent:
            os.makedirs(parent, exist_ok=True)
        with open(args.json, "w" if args.force else "x") as f:
            json.dump(payload, f, indent=2)
        print("wrote %s" % args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
