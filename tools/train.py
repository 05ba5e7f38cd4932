#!/usr/bin/env python3
"""Train FSRCNN / SRCNN with real Caffe, the authors' way (./run_train.sh calls this).

Each run has its own folder (runs/<model>-x<N>-<date>-<time>/): snapshots, train.log (appended
by every segment, never truncated), the exact net and solver of each segment, and run.json.
First use prepares the HDF5 data (tools/prepare_data.py). Ctrl-C stops with a snapshot and
prints the command to resume (exit 130; 143 after SIGTERM); a killed run resumes with --resume
from its newest whole snapshot (a snapshot is also taken every --snapshot-minutes). One trainer
at a time holds a run folder. --resume and --snapshot keep the run's segment settings
(--snapshot-every, --snapshot-minutes, --base-lr, --deconv-only, --data) unless given again;
--resume of a run that reached its target exits 0 with a line. Training stops (exit 1) at the
first non-finite loss, keeping the last finite snapshot. See docs/training.md.

examples:
  ./run_train.sh fsrcnn                                # FSRCNN(56,12,4) x3, Adam
  ./run_train.sh fsrcnn-s --scale 2 --iters 50000
  ./run_train.sh srcnn --solver sgd                    # the authors' solver
  ./run_train.sh fsrcnn --resume --run-dir runs/fsrcnn-x3-...      # after Ctrl-C, a crash, kill -9
  ./run_train.sh fsrcnn --snapshot runs/.../fsrcnn_x3_iter_40000.solverstate --iters 80000 --base-lr 1e-4
  ./run_train.sh fsrcnn --scale 2 --deconv-only --weights models/fsrcnn_x3.caffemodel   # x2 the paper's way
  python tools/plot_log.py runs/fsrcnn-x3-.../train.log
"""
import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E401,E702
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)

import argparse

from srcaffe import cli, solvers


def parse_args(argv):
    return parser().parse_args(argv)


def parser():
    p = cli.ArgumentParser(prog="./run_train.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="fsrcnn (56,12,4) | fsrcnn-s (32,5,1) | fsrcnn-D-S-M | srcnn (9-1-5) | "
                                 "srcnn-935 | srcnn-955")
    cli.add_scale(p)
    p.add_argument("--iters", type=int, metavar="N", help="train up to iteration N (default: the solver's "
                   "max_iter; with --resume, the run's last target)")
    p.add_argument("--solver", default=solvers.DEFAULT_SOLVER, metavar="NAME",
                   help="adam (default: fast on CPUs) or sgd (the authors' SGD, momentum 0.9, fixed lr)")
    p.add_argument("--snapshot", metavar="FILE", help="resume from a .solverstate (continues in that run's folder)")
    p.add_argument("--resume", action="store_true", help="resume --run-dir from its newest whole snapshot "
                   "(a run with none yet starts again)")
    p.add_argument("--weights", metavar="FILE", help="start from the weights of a .caffemodel (fine-tuning)")
    deconv = p.add_mutually_exclusive_group()
    deconv.add_argument("--deconv-only", action="store_true", default=None, help="train only the "
                        "deconvolution: FSRCNN x2/x4 from an x3 model given by --weights, the paper's way "
                        "(kept by --resume/--snapshot)")
    deconv.add_argument("--all-layers", dest="deconv_only", action="store_false", default=None, help="train every layer "
                        "(the default; ends --deconv-only when resuming such a run)")
    p.add_argument("--base-lr", type=float, metavar="LR", help="this segment's learning rate; default: the "
                   "solver's, or when resuming, the one the run's last segment used")
    p.add_argument("--init", metavar="NAME", help="a new run's weights: authors (the prototxt's fillers) or he "
                   "(msra fillers; SRCNN's default under Adam, where gaussian(0.001) leaves ReLUs dead)")
    p.add_argument("--run-dir", metavar="DIR", help="run folder (default runs/MODEL-xN-DATE-TIME/); never overwritten")
    aug = p.add_mutually_exclusive_group()
    aug.add_argument("--aug", dest="augment", action="store_true", default=None,
                     help="with data_aug.m's rotations x downscales (FSRCNN's default)")
    aug.add_argument("--no-aug", dest="augment", action="store_false", help="without augmentation (SRCNN's default)")
    p.add_argument("--data", metavar="DIR", help="a prepared data folder (tools/prepare_data.py, or one class "
                   "of tools/mmsr.py)")
    p.add_argument("--snapshot-every", type=int, metavar="N", help="snapshot every N iterations (default: the "
                   "run's last segment's, else the solver's: 5000 for Adam, 10000 for SGD)")
    p.add_argument("--snapshot-minutes", type=float, metavar="M",
                   help="also snapshot every M minutes of training, so a crash loses minutes, not a whole "
                   "snapshot interval (default: the run's last segment's, else %g; 0: only the solver's "
                   "interval)" % solvers.DEFAULT_SNAPSHOT_MINUTES)
    p.add_argument("--display", type=int, metavar="N", help="log the loss every N iterations (default: the run's, "
                   "set by its first segment: 1/20 of it, at most 100)")
    cli.add_engine(p, intel=True)
    p.add_argument("--gpu", metavar="ID", help="Caffe's -gpu for a CUDA build of Caffe: an id, a list (0,1) or all; "
                   "several GPUs train through NCCL, each on the solver's whole batch (as Caffe does it: "
                   "the gradients are averaged, so the effective batch is GPUs x batch)")
    return p


def main(argv=None):
    o = parse_args(argv)   # --help: before anything outside the standard library is imported
    from srcaffe import trainer
    return trainer.run_segment(o)


if __name__ == "__main__":
    cli.run_main(main)
