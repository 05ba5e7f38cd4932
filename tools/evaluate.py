#!/usr/bin/env python3
import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E401,E702
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)

import argparse
import json

from srcaffe import cli, datasets, papers
from srcaffe.cli import run_main
from srcaffe.errors import UserError

DESCRIPTION = """\
PSNR/SSIM of a super-resolution method, computed as the authors' demo_SR.m does: Y channel of
MATLAB rgb2ycbcr, modcrop, MATLAB bicubic downscale by 1/scale, upscale, uint8, `scale` pixels
shaved from every border, compute_psnr.m and ssim_index.m."""

EPILOG = """\
examples:
  python3 tools/evaluate.py --method bicubic --dataset Set5 --scale 3
  python3 tools/evaluate.py --model fsrcnn srcnn --dataset Set5 --scale 3
  python3 tools/evaluate.py --model runs/x/fsrcnn_x3_iter_100000.caffemodel --dataset Set14 --scale 3
  python3 tools/evaluate.py --dataset Set14 --scale 2 --json results/bicubic_set14_x2.json
  python3 tools/evaluate.py --dataset path/to/my/images --scale 4

--dataset takes a registered set (Set5, Set14, T91; fetch it first with tools/datasets.py fetch)
or any folder of png/bmp/jpg/tif images. Papers' bicubic rows: Set5 33.66/30.39/28.42,
Set14 30.23/27.54/26.00 (x2/x3/x4).

--model takes model names (fsrcnn, fsrcnn-s, srcnn, srcnn-935, srcnn-955: the toolkit's
models/NAME_xS.caffemodel), the authors' released models (official-fsrcnn, official-fsrcnn-s,
official-srcnn-915, official-srcnn-915-imagenet, official-srcnn-935, official-srcnn-955: see
models/official/README.md), .caffemodel files (architecture from --arch, else recognised from
the weights) or run folders (their newest snapshot): the same specs as tools/predict.py. Each model is a column next to the --method columns (bicubic by default); on Set5
and Set14 a 'paper' row gives the published mean PSNR of each column where the papers have one
(srcaffe/papers.py; FSRCNN: the 91-image training first, as this toolkit trains). The nets have
no padding: the input border is padded by --pad (replicate: edge pixels repeated, the default;
or zero).

--json FILE: one dict {"dataset", "scale", "method", "mean_psnr", "mean_ssim", "images"} when a
single method is evaluated, else a list of such dicts, one per column in table order.
"""

METHODS = ("bicubic",)


def parse_args(argv):
    p = cli.ArgumentParser(prog="tools/evaluate.py", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", action="append", choices=sorted(METHODS),
                   help="method to evaluate; repeat for side-by-side columns (default: bicubic)")
    cli.add_model_options(p, many=True)
    cli.add_dataset(p, required=True)
    cli.add_scale(p, required=True)
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON (a dict, or a list of one per column)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    return p.parse_args(argv)


def paper_lines(table, archs, dataset, scale):
    """A 'paper' row under the table's mean (published mean PSNR per column) and its sources."""
    found = [papers.published(a, dataset, scale) if a else [] for a in archs]
    if not any(found):
        return []
    width = len(table.splitlines()[1]) - 19 * len(archs)   # format_table: 19 characters per column
    row = "%-*s" % (width, "paper") + "".join("  %8s %8s" % ("%.2f" % f[0][0] if f else "-", "") for f in found)
    notes = ["  %s: %s" % (a, "; ".join("%.2f %s" % p for p in f)) for a, f in zip(archs, found) if f]
    return [row.rstrip(), "published mean PSNR (dB):"] + notes


def main(argv=None):
    args = parse_args(argv)
    from srcaffe import device, files, models
    from srcaffe.evaluation import bicubic_upscaler, evaluate, format_table
    columns = [(m, m, bicubic_upscaler) for m in (args.method or ["bicubic"])]   # (label, arch, upscaler)
    notes = []
    device.use(args.gpu, args.engine)
    for m in args.model or []:
        model = models.load_model(m, scale=args.scale, arch=args.arch, pad=args.pad, tile=args.tile)
        notes += model.notes
        # the papers' rows: the authors' models by their own name, the toolkit's by architecture
        columns.append((model.name, m if models.is_official(m) else model.arch.name, model.upscaler))
    if args.json:
        files.check_writable_file(args.json, args.force)
    images = datasets.list_images(args.dataset)
    registered, name = datasets.is_registered(args.dataset), datasets.set_name(args.dataset)
    try:
        results = [evaluate(up, images, args.scale, label, dataset=name) for label, _, up in columns]
    except ValueError as exc:  # e.g. an image too small for the scale / SSIM window
        raise UserError(str(exc)) from None
    table = format_table(results)
    paper = paper_lines(table, [a for _, a, _ in columns], name, args.scale) if registered else []
    print("\n".join([table] + paper + notes))
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
