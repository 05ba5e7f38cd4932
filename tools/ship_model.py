#!/usr/bin/env python3
"""Ship a training run into models/ (see models/README.md).

Copies the run's newest (or --iter N) .caffemodel to models/<model>_x<scale>.caffemodel (or
models/NAME.caffemodel with --name, the flagship untouched), evaluates it on Set5 and Set14,
writes its .json (recipe, iterations, wall time, PSNR/SSIM), its training curve _curve.png and
snapshot curve _psnr.png, keeps the run's train.log, run.json and newest snapshot pair in
models/training/<run>/ so that it can be resumed later, on another machine:
  ./run_train.sh fsrcnn --snapshot models/training/<run>/fsrcnn_x3_iter_N.solverstate --iters M
and regenerates the table of shipped models in models/README.md. All or nothing: everything is
staged aside and renamed into place; an interrupted ship leaves the old model as it was (or is
completed by the next ship).

examples:
  python tools/ship_model.py runs/fsrcnn-x3-adam
  python tools/ship_model.py runs/fsrcnn-x3-adam --iter 80000 --force
  python tools/ship_model.py runs/fsrcnn-x3-lr3e-4 --name fsrcnn_x3_lr3e-4   # models/fsrcnn_x3_lr3e-4.caffemodel
  python tools/ship_model.py --update-readme
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)
from srcaffe import cli  # noqa: E402
from srcaffe.cli import run_main  # noqa: E402
from srcaffe.errors import UserError  # noqa: E402


def parse_args(argv):
    return parser().parse_args(argv)


def parser():
    p = cli.ArgumentParser(prog="tools/ship_model.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a run folder of ./run_train.sh")
    p.add_argument("--iter", type=int, metavar="N", help="the snapshot iteration to ship (default: the newest)")
    p.add_argument("--name", metavar="NAME", help="ship as models/NAME.caffemodel (+ NAME.json, NAME_curve.png, "
                   "NAME_psnr.png) instead of the model's own models/<model>_x<scale>.caffemodel")
    p.add_argument("--force", action="store_true", help="replace an already shipped model of that name")
    p.add_argument("--update-readme", action="store_true", help="only regenerate the table of shipped models "
                   "in models/README.md")
    return p


def main(argv=None):
    a = parse_args(argv)
    from srcaffe import release
    if a.update_readme:
        if a.run_dir:
            raise UserError("--update-readme takes no RUN_DIR")
        print("wrote %s" % release.update_readme())
        return 0
    if not a.run_dir:
        raise UserError("give RUN_DIR, a run folder of ./run_train.sh (see tools/ship_model.py --help)")
    release.ship(a.run_dir, a.iter, force=a.force, name=a.name)
    return 0


if __name__ == "__main__":
    run_main(main)
