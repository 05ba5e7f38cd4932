#!/usr/bin/env python3
"""Turn the 91-image train set and Set5 into Caffe HDF5 patch files, as the authors'
generate_train.m / generate_test.m / data_aug.m do (MATLAB-exact bicubic and Y channel).

FSRCNN: 11x11 LR sub-images (stride 4) and the HR labels the net outputs for them (13/19/25 at
x2/x3/x4), optionally with data_aug.m's rotations x downscales. SRCNN: 33x33 bicubic-upscaled
sub-images (stride 14) and their centre labels (21x21 for 9-1-5). The geometry comes from the
network definition (srcaffe/nets.py). Output: data/<geometry>/train_NNN.h5, train.txt, test.h5,
test.txt, meta.json (SRCAFFE_DATA overrides data/). Existing folders are reused, or rewritten
with --force.

examples:
  python tools/prepare_data.py fsrcnn --scale 3            # with augmentation (the paper's)
  python tools/prepare_data.py srcnn --scale 3
  python tools/prepare_data.py fsrcnn --scale 2 --no-aug --force
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)
from srcaffe import cli  # noqa: E402
from srcaffe.cli import run_main  # noqa: E402


def main(argv=None):
    p = cli.ArgumentParser(prog="tools/prepare_data.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="fsrcnn, fsrcnn-s, fsrcnn-D-S-M, srcnn, srcnn-935, srcnn-955")
    cli.add_scale(p)
    aug = p.add_mutually_exclusive_group()
    aug.add_argument("--aug", dest="augment", action="store_true", default=None,
                     help="rotations 0/90/180/270 x downscales 1.0-0.6 (default for FSRCNN)")
    aug.add_argument("--no-aug", dest="augment", action="store_false", help="no augmentation (default for SRCNN)")
    p.add_argument("--stride", type=int, help="sub-image stride (default: the authors' 4 LR / 14 HR pixels)")
    p.add_argument("--train-set", default="T91", help="training images: a dataset name or a folder")
    p.add_argument("--test-set", default="Set5", help="images of Caffe's TEST phase (default Set5)")
    p.add_argument("--force", action="store_true", help="rewrite an existing data folder")
    a = p.parse_args(argv)
    from srcaffe import hdf5_patches, runs
    augment = runs.default_augment(a.model) if a.augment is None else a.augment
    hdf5_patches.prepare(a.model, a.scale, augment=augment, train_set=a.train_set, test_set=a.test_set,
                    stride=a.stride, force=a.force)
    return 0


if __name__ == "__main__":
    run_main(main)
