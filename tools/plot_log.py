#!/usr/bin/env python3
import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E401,E702
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)

import argparse

from srcaffe import caffelog
from srcaffe import cli
from srcaffe.cli import run_main
from srcaffe.errors import UserError

DESCRIPTION = """\
Tabulate and plot Caffe training logs: train loss, test loss and test PSNR against iteration.
Writes PREFIX.train.csv, PREFIX.test.csv and PREFIX.png."""

EPILOG = """\
examples:
  python tools/plot_log.py runs/fsrcnn-x3/train.log
      -> runs/fsrcnn-x3/train.train.csv, train.test.csv, train.png
  python tools/plot_log.py first.log resumed.log --out results/fsrcnn_x3 --force

Several logs (a run and its resumed continuations, or one log with runs appended) are combined
in iteration order; where a resumed run repeats iterations, the later run's numbers are kept.
'seconds' in the CSVs is cumulative training wall time across the runs."""


def parse_args(argv):
    p = cli.ArgumentParser(prog="tools/plot_log.py", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("logs", nargs="+", metavar="LOG", help="Caffe training log(s), in order")
    p.add_argument("--out", metavar="PREFIX", help="output prefix (default: the first LOG without extension)")
    p.add_argument("--title", help="plot title (default: the prefix's file name)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    parsed = []
    for log in args.logs:
        if not os.path.isfile(log):
            raise UserError("%s: %s" % (log, "is a folder, not a log" if os.path.isdir(log) else "no such file"))
        try:
            p = caffelog.parse_log(log)
        except OSError as exc:
            raise UserError("%s: %s" % (log, exc.strerror or exc))
        if not p["train"] and not p["test"]:
            raise UserError("%s: no Caffe training iterations found (not a `caffe train` log?)" % log)
        parsed.append(p)

    prefix = args.out or os.path.splitext(args.logs[0])[0]
    outputs = [prefix + ".train.csv", prefix + ".test.csv", prefix + ".png"]
    folder = os.path.dirname(os.path.abspath(prefix))
    if not os.path.isdir(folder):
        raise UserError("--out %s: folder %s does not exist" % (prefix, folder))
    for path in outputs:
        if any(os.path.abspath(path) == os.path.abspath(log) for log in args.logs):
            raise UserError("%s: output would overwrite an input log; choose another --out" % path)
        if os.path.exists(path) and not args.force:
            raise UserError("%s exists; use --force to overwrite it" % path)

    merged = caffelog.merge(parsed)
    caffelog.write_csv(merged, prefix)
    caffelog.plot(merged, outputs[2], title=args.title or os.path.basename(prefix))

    train, test = merged["train"], merged["test"]
    iters = [r["iter"] for r in train + test]
    print("iterations %d..%d: %d train rows, %d test rows" % (min(iters), max(iters), len(train), len(test)))
    for r in merged["resumed_from"]:
        print("resumed at iteration %d%s" % (r["iter"], " from " + r["file"] if r["file"] else ""))
    psnr = [k for k in caffelog.columns(test, ()) if "psnr" in k.lower()]
    for k in psnr:
        last = [r for r in test if r.get(k) is not None][-1]
        print("last test %s: %.2f dB at iteration %d" % (k, last[k], last["iter"]))
    for path in outputs:
        print("wrote %s" % path)
    return 0


if __name__ == "__main__":
    run_main(main)
