#!/usr/bin/env python3
"""Ship a trained model into models/ (what tools/predict.py and tools/evaluate.py use by name).

Copies the run's newest (or --iter N) .caffemodel to models/<model>_x<scale>.caffemodel,
evaluates it on Set5 and Set14, writes models/<model>_x<scale>.json (recipe, iterations, wall
time, PSNR/SSIM) and the training curve models/<model>_x<scale>_curve.png, and keeps the run's
train.log, run.json and newest snapshot pair in models/training/<run>/ so that a later session,
on another machine, resumes it:
  ./run_train.sh fsrcnn --snapshot models/training/<run>/fsrcnn_x3_iter_N.solverstate --iters M

examples:
  python tools/ship_model.py runs/fsrcnn-x3-adam
  python tools/ship_model.py runs/fsrcnn-x3-adam --iter 80000 --force
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)
os.environ.setdefault("GLOG_minloglevel", "2")
from srcaffe import release  # noqa: E402
from srcaffe import cli
from srcaffe.cli import run_main  # noqa: E402


def main(argv=None):
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a run folder of ./run_train.sh")
    p.add_argument("--iter", type=int, help="the snapshot iteration to ship (default: the newest)")
    p.add_argument("--force", action="store_true", help="replace an already shipped model")
    a = p.parse_args(argv)
    release.ship(a.run_dir, a.iter, force=a.force)
    return 0


if __name__ == "__main__":
    run_main(main)
