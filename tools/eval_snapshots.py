#!/usr/bin/env python3
import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E401,E702
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)

import argparse

from srcaffe import cli
from srcaffe.cli import run_main  # noqa: E402
from srcaffe.errors import UserError  # noqa: E402

DESCRIPTION = """\
Set5/Set14 PSNR/SSIM of a training run's snapshots against iteration, with the exact evaluation
of tools/evaluate.py: the papers' convergence figure (image PSNR against backprops), where the
Caffe log only has the PSNR of test patches. Prints a table and plots RUN_DIR/snapshot_eval.png
with the bicubic and paper lines."""

EPILOG = """\
examples:
  python tools/eval_snapshots.py runs/fsrcnn-x3-adam --every 10000
  python tools/eval_snapshots.py runs/srcnn-x3-adam --dataset Set5 --out results/srcnn_set5.png

A snapshot that does not load (cut short by a kill or a full disk) is skipped with a message,
as ./run_train.sh --resume skips it. Each snapshot is evaluated once: the results are kept in RUN_DIR/snapshot_eval.json (re-evaluated
only if the .caffemodel changes), so running it again while training goes on evaluates just the
new snapshots, and tools/ship_model.py carries the file into models/training/<run>/ with the
run's curve. The default plot, RUN_DIR/snapshot_eval.png, is redrawn each time (it only gains
points); another --out that exists needs --force."""


def parse_args(argv):
    return parser().parse_args(argv)


def parser():
    p = cli.ArgumentParser(prog="tools/eval_snapshots.py", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder of ./run_train.sh (or models/training/<run>)")
    cli.add_dataset(p, nargs="+", default=list(cli.EVAL_DATASETS), metavar="NAME",
                    help="registered test sets (default: %s)" % " ".join(cli.EVAL_DATASETS))
    p.add_argument("--every", type=int, metavar="N",
                   help="only snapshots at multiples of N iterations, and the newest (default: all)")
    p.add_argument("--out", metavar="PNG", help="plot file (default: RUN_DIR/snapshot_eval.png)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    return p


def main(argv=None):
    args = parse_args(argv)
    from srcaffe import files, runs, snapshot_eval
    if not os.path.isdir(args.run_dir):
        raise UserError("%s: no such run folder" % args.run_dir)
    if args.every is not None and args.every < 1:
        raise UserError("--every must be a positive number of iterations, not %d" % args.every)
    out = args.out or os.path.join(args.run_dir, snapshot_eval.PLOT)
    if args.out:
        files.check_new(out, args.force)
    info = runs.read_run(args.run_dir)
    curves = snapshot_eval.evaluate_snapshots(args.run_dir, args.dataset, every=args.every,
                                            log=lambda line: print(line, flush=True))
    print(snapshot_eval.format_table(curves))
    snapshot_eval.plot(curves, out, info["model"], info["scale"], info.get("segments", ()))
    print("wrote %s" % out)
    return 0


if __name__ == "__main__":
    run_main(main)
