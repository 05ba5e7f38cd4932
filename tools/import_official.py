#!/usr/bin/env python3
import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E401,E702
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)

import argparse

from srcaffe import cli, files, official
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
    cli.add_scale(p, many=True, help="only this scale (repeatable; default: every released scale)")
    p.add_argument("--out", default=official.OFFICIAL_DIR, metavar="DIR",
                   help="folder for the .caffemodel files (default: models/official)")
    p.add_argument("--force", action="store_true", help="overwrite existing .caffemodel / --markdown files")
    p.add_argument("--fetch", action="store_true",
                   help="download the released .mat files into models/official-src (checksum-verified)")
    p.add_argument("--no-import", action="store_true", help="do not write .caffemodel files")
    p.add_argument("--evaluate", action="store_true",
                   help="print Set5/Set14 PSNR/SSIM beside the papers' numbers")
    cli.add_dataset(p, action="append", metavar="NAME", help="dataset for --evaluate (repeatable; default: Set5 and Set14)")
    p.add_argument("--padding", choices=official.PADDINGS, default="replicate",
                   help="borders for --evaluate (default: replicate, the authors' MATLAB)")
    p.add_argument("--zero-contrast", action="store_true",
                   help="with --evaluate: also FSRCNN x3 with Caffe's zero padding")
    p.add_argument("--markdown", metavar="FILE", help="with --evaluate: also write the table as Markdown")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from srcaffe.official import report
    pairs = report.selection(args.names, args.scale)
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
        rows = report.evaluate_rows(pairs, args.dataset or list(cli.EVAL_DATASETS), args.padding, args.zero_contrast, log)
        print(report.text_table(rows))
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(report.markdown_table(rows, sys.argv[1:] if argv is None else argv))
            print("wrote %s" % args.markdown)
    return 0


if __name__ == "__main__":
    run_main(main)
