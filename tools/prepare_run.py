#!/usr/bin/env python3
"""Prepare one training segment for run_train.sh: check the inputs, prepare the HDF5 data if
missing, create or reuse the run folder with the exact net and solver of this segment.

Prints KEY=VALUE lines (RUN_DIR, SOLVER, START_ITER, MAX_ITER, SNAPSHOT, WEIGHTS, LOG) on stdout
for run_train.sh; messages go to stderr. Normally you call ./run_train.sh, not this.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from srcaffe import training  # noqa: E402
from srcaffe.cli import run_main  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--scale", type=int, default=3)
    p.add_argument("--iters", type=int)
    p.add_argument("--solver")
    p.add_argument("--snapshot")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--weights")
    p.add_argument("--run-dir")
    p.add_argument("--augment", choices=("yes", "no"))
    p.add_argument("--data", help="a prepared data folder instead of the model's default")
    p.add_argument("--base-lr", type=float)
    p.add_argument("--deconv-only", action="store_true")
    p.add_argument("--init")
    a = p.parse_args(argv)
    augment = None if a.augment is None else a.augment == "yes"
    out = training.prepare_run(a.model, a.scale, iters=a.iters, solver=a.solver, snapshot=a.snapshot,
                               resume=a.resume, weights=a.weights, run_dir=a.run_dir, augment=augment, data=a.data,
                               base_lr=a.base_lr, deconv_only=a.deconv_only, init=a.init,
                               log=lambda msg: print(msg, file=sys.stderr))
    for key, value in out.items():
        print("%s=%s" % (key, value))
    return 0


if __name__ == "__main__":
    run_main(main)
