#!/usr/bin/env python3
import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E401,E702
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)

import argparse
import time

from srcaffe import files, official
from srcaffe import cli
from srcaffe.cli import run_main
from srcaffe.errors import UserError

DESCRIPTION = """\
Import the authors' released SRCNN / FSRCNN models (MATLAB .mat) into Caffe: writes
<out>/<name>_x<scale>.caffemodel for prototxt/official/<name>_x<scale>_deploy.prototxt
(replicate-padded like the authors' MATLAB; see srcaffe/official/). The .mat files are read
from $SRCAFFE_OFFICIAL_WEIGHTS, else ../shared/weights/official, else models/official-src
(where --fetch puts them), and checked against models/official/SHA256SUMS first."""

EPILOG = """\
examples:
  python tools/import_official.py                         # every model and scale
  python tools/import_official.py official-fsrcnn --scale 3
  python tools/import_official.py --fetch                 # download the originals first (network)
  python tools/import_official.py --evaluate --no-import  # Set5/Set14 table beside the papers
  python tools/import_official.py --evaluate --no-import --zero-contrast --markdown models/official/RESULTS.md

models: %s
""" % ", ".join("%s (x%s)" % (n, "/x".join(map(str, e["scales"]))) for n, e in official.MODELS.items())


def parse_args(argv):
    p = cli.ArgumentParser(prog="tools/import_official.py", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME", help="official model names (default: all)")
    p.add_argument("--scale", type=int, action="append", choices=(2, 3, 4),
                   help="only this scale (repeatable; default: every released scale)")
    p.add_argument("--out", default=official.OFFICIAL_DIR, metavar="DIR",
                   help="folder for the .caffemodel files (default: models/official)")
    p.add_argument("--force", action="store_true", help="overwrite existing .caffemodel / --markdown files")
    p.add_argument("--fetch", action="store_true",
                   help="download the released .mat files into models/official-src (checksum-verified)")
    p.add_argument("--no-import", action="store_true", help="do not write .caffemodel files")
    p.add_argument("--evaluate", action="store_true",
                   help="print Set5/Set14 PSNR/SSIM beside the papers' numbers")
    p.add_argument("--dataset", action="append", metavar="NAME",
                   help="dataset for --evaluate (repeatable; default: Set5 and Set14)")
    p.add_argument("--padding", choices=official.PADDINGS, default="replicate",
                   help="borders for --evaluate (default: replicate, the authors' MATLAB)")
    p.add_argument("--zero-contrast", action="store_true",
                   help="with --evaluate: also FSRCNN x3 with Caffe's zero padding")
    p.add_argument("--markdown", metavar="FILE", help="with --evaluate: also write the table as Markdown")
    return p.parse_args(argv)


def selection(args):
    names = args.names or list(official.MODELS)
    for name in names:
        official.check_name(name)
    pairs = [(n, s) for n in names for s in official.MODELS[n]["scales"]
             if not args.scale or s in args.scale]
    if not pairs:
        raise UserError("no released model matches %s at scale(s) %s" % (", ".join(names), args.scale))
    return pairs


def _cell(value, fmt):
    return "—" if value is None else fmt % value


def evaluate_rows(pairs, dataset_names, padding, zero_contrast, log):
    rows = []
    jobs = [(n, s, padding) for n, s in pairs]
    if zero_contrast and padding != "zero":
        jobs += [(n, 3, "zero") for n, s in pairs if s == 3 and official.is_fsrcnn(n)]
    for name, scale, pad in jobs:
        t0 = time.time()
        res = official.evaluate_official(name, scale, dataset_names, padding=pad)
        for d in dataset_names:
            rows.append(dict(name=name, scale=scale, padding=pad, dataset=d, psnr=res[d]["mean_psnr"],
                             ssim=res[d]["mean_ssim"], paper=official.PAPERS.get(name, {}).get((d, scale))
                             if pad == "replicate" else None))
        log("%s x%d (%s): %s  [%.0f s]" % (name, scale, pad, "  ".join(
            "%s %.2f" % (d, res[d]["mean_psnr"]) for d in dataset_names), time.time() - t0))
    return rows


def text_table(rows):
    head = "%-28s %-5s %-9s %-6s %8s %8s %8s %7s" % ("model", "scale", "padding", "set", "PSNR", "SSIM", "paper", "diff")
    lines = [head, "-" * len(head)]
    for r in rows:
        diff = None if r["paper"] is None else round(r["psnr"], 2) - r["paper"]
        lines.append("%-28s x%-4d %-9s %-6s %8.2f %8.4f %8s %7s" % (
            r["name"], r["scale"], r["padding"], r["dataset"], r["psnr"], r["ssim"],
            _cell(r["paper"], "%.2f"), _cell(diff, "%+.2f")))
    return "\n".join(lines)


MARKDOWN_HEAD = """\
# The authors' released models, run by Caffe

Generated by `python tools/import_official.py %s` (do not edit by hand).

The released .mat weights (models/official/SHA256SUMS) in the deploy nets under
prototxt/official/, run by BVLC Caffe 1.0 through pycaffe, evaluated with the toolkit's
demo_SR.m pipeline (srcaffe/evaluation.py: Y of MATLAB rgb2ycbcr on uint8, modcrop, MATLAB
bicubic 1/scale, uint8(x*255), `scale` pixels shaved, compute_psnr.m, ssim_index.m). `replicate`
is the authors' border logic (FSRCNN.m/SRCNN.m/deconv.m); FSRCNN x3 is compared as
demo_FSRCNN.m's shave_x3 does. `zero` is Caffe's own zero padding, for contrast. Paper columns:
FSRCNN ECCV 2016 (final models), SRCNN TPAMI 2015 (9-5-5 ImageNet); "—" where the papers print
no number for that model. The diff column compares the PSNR rounded to 0.01 dB.

"""


def markdown_table(rows, argv=None):
    head = MARKDOWN_HEAD % " ".join(argv if argv is not None else sys.argv[1:])
    lines = ["| model | scale | padding | dataset | PSNR (dB) | SSIM | paper PSNR | ours − paper |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        diff = None if r["paper"] is None else round(r["psnr"], 2) - r["paper"]
        lines.append("| %s | x%d | %s | %s | %.2f | %.4f | %s | %s |" % (
            r["name"], r["scale"], r["padding"], r["dataset"], r["psnr"], r["ssim"],
            _cell(r["paper"], "%.2f"), _cell(diff, "%+.2f")))
    return head + "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    pairs = selection(args)
    if args.markdown and not args.evaluate:
        raise UserError("--markdown needs --evaluate")
    if args.markdown:
        files.check_writable_file(args.markdown, args.force)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if args.fetch:
        n = official.fetch(sorted({name for name, _ in pairs}), force=args.force, log=log)
        print("fetched %d file(s) into %s" % (n, official.FETCH_DIR))
    if not args.no_import:
        existing = [official.caffemodel_path(n, s, args.out) for n, s in pairs
                    if os.path.exists(official.caffemodel_path(n, s, args.out))]
        if existing:
            files.check_new(existing[0], args.force,
                            more=" (and %d more)" % (len(existing) - 1) if len(existing) > 1 else "")
        for name, scale in pairs:
            path = official.import_model(name, scale, args.out, force=args.force)
            print("wrote %s (%d bytes) for %s" % (os.path.relpath(path), os.path.getsize(path),
                                                   os.path.relpath(official.deploy_path(name, scale))))
    if args.evaluate:
        rows = evaluate_rows(pairs, args.dataset or ["Set5", "Set14"], args.padding, args.zero_contrast, log)
        print(text_table(rows))
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(markdown_table(rows, argv))
            print("wrote %s" % args.markdown)
    return 0


if __name__ == "__main__":
    run_main(main)
