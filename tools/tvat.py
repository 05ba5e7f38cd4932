#!/usr/bin/env python3
import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E401,E702
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)

import argparse

from srcaffe import cli, files, mmsr
from srcaffe.mmsr import report
from srcaffe.cli import run_main
from srcaffe.errors import UserError

DESCRIPTION = """\
Texture scores (TVAT, total variance above threshold; Yuan et al.'s multi-model SR) of images or
of their fragments, and their classes.

  VSP(p)  = sum over the 8 neighbours q of p of (I(p) - I(q))^2   (border pixels: the neighbours
            that exist; RGB: summed over the 3 channels)
  TVAT    = sum of VSP(p) over pixels with VSP(p) >= --vsp-threshold, divided by rows * cols
Intensities on the 0-255 scale. --channel y (default) scores the Y of MATLAB rgb2ycbcr, as the
multi-model SR routes fragments (the nets see Y only); --channel rgb is the paper's version (its
values are about 3x larger: scale --vsp-threshold and --thresholds accordingly).

Classes: --thresholds a,b,... (K-1 increasing values: class k holds t_k < TVAT <= t_k+1), or
--classes K: the K-quantiles of the TVAT of the training sub-images of --model's prepared data
(LR Y sub-images of T91, as tools/mmsr.py split uses; --channel y only)."""

EPILOG = """\
examples:
  python tools/tvat.py Set5                                  # one TVAT per image
  python tools/tvat.py butterfly --fragments 24 --overlap 4 --thresholds 800,3000
  python tools/tvat.py Set14 --lr 3 --fragments 24 --overlap 4 --classes 2 --hist tvat_set14.png
  python tools/tvat.py photo.png --channel rgb --vsp-threshold 300 --json scores.json

INPUT: image files, folders, dataset names (Set5, Set14, T91) or dataset image names.
--lr S scores the bicubic LR image (modcrop, MATLAB imresize 1/S) that an MMSR would cut and route;
fragment sizes and positions are then in LR pixels."""


def parse_args(argv):
    p = cli.ArgumentParser(prog="tools/tvat.py", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image, folder, dataset or dataset image name")
    p.add_argument("--fragments", type=int, metavar="N", help="score N x N fragments instead of whole images")
    p.add_argument("--overlap", type=int, default=mmsr.DEFAULT_OVERLAP, metavar="K",
                   help="overlap of neighbouring fragments in pixels (default %d)" % mmsr.DEFAULT_OVERLAP)
    p.add_argument("--channel", choices=("y", "rgb"), default="y", help="score Y (default) or RGB summed over channels")
    cli.add_scale(p, flag="--lr", default=None, metavar="S", help="score the bicubic 1/S LR image")
    p.add_argument("--vsp-threshold", type=float, default=mmsr.VSP_THRESHOLD, metavar="T",
                   help="VSP threshold (default %g)" % mmsr.VSP_THRESHOLD)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--thresholds", metavar="A,B", help="class thresholds on TVAT, increasing")
    g.add_argument("--classes", type=int, metavar="K", help="K classes from the training set's quantiles")
    p.add_argument("--model", default="fsrcnn", help="--classes: whose training data (default fsrcnn)")
    cli.add_scale(p)
    p.add_argument("--no-aug", action="store_true", help="--classes: the training data without augmentation")
    p.add_argument("--hist", metavar="PNG", help="write a histogram with the class boundaries")
    p.add_argument("--json", metavar="FILE", help="also write the scores as JSON")
    p.add_argument("--force", action="store_true", help="overwrite existing --hist / --json files")
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    for out in (a.hist, a.json):
        if out:
            files.check_writable_file(out, a.force)
    if a.fragments is not None:
        mmsr.fragment_starts(a.fragments + 1, a.fragments, a.overlap)   # validates
    thresholds, reference = [], None
    if a.thresholds:
        thresholds = mmsr.parse_thresholds(a.thresholds)
    elif a.classes is not None:
        if a.channel != "y":
            raise UserError("--classes takes quantiles of the training sub-images, which are Y: use --channel y "
                            "(or give --thresholds for RGB scores)")
        if a.classes < 2:
            raise UserError("--classes must be at least 2, not %d" % a.classes)
        thresholds, reference = mmsr.training_thresholds(a.model, a.scale, a.classes, augment=not a.no_aug,
                                                         vsp_threshold=a.vsp_threshold,
                                                         log=lambda m: print(m, file=sys.stderr))
    rows = mmsr.score_images(a.inputs, a.channel, a.lr, a.fragments, a.overlap, a.vsp_threshold, thresholds)
    quantiles = None if reference is None else "%d-quantiles of %d %s x%d training sub-images" % (
        a.classes, len(reference), a.model, a.scale)
    print("\n".join(report.tvat_lines(rows, a.fragments, thresholds, quantiles)))
    scores = [r["tvat"] for r in rows]
    if a.hist:
        title = "TVAT (%s, VSP threshold %g%s)" % (a.channel.upper(), a.vsp_threshold, ", LR x1/%d" % a.lr if a.lr else "")
        mmsr.histogram(a.hist, scores, thresholds, reference=reference, title=title,
                       labels=("fragments" if a.fragments else "images", "training sub-images"))
        print("wrote %s" % a.hist)
    if a.json:
        files.write_json(a.json, dict(channel=a.channel, lr=a.lr, vsp_threshold=a.vsp_threshold, thresholds=thresholds,
                                      fragments=a.fragments, overlap=a.overlap if a.fragments else None, rows=rows))
        print("wrote %s" % a.json)
    return 0


if __name__ == "__main__":
    run_main(main)
