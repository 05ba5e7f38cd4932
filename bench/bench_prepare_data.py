#!/usr/bin/env python3
"""Benchmark: time to prepare the FSRCNN x3 training set with augmentation from T91 (and SRCNN x3),
written to a temporary folder. Prints seconds and patch counts. Target here: under 30 s.

  python bench/bench_prepare_data.py [--datasets-from ../shared/datasets]
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from srcaffe import hdf5_patches, paths  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets-from", help="copy missing datasets from this local folder instead of downloading")
    a = p.parse_args()
    if a.datasets_from:
        paths.set_env(SRCAFFE_DATASETS_FROM=a.datasets_from)
    with tempfile.TemporaryDirectory() as tmp:
        paths.set_env(SRCAFFE_DATA=tmp)
        print("%-22s %9s %12s %10s" % ("set", "seconds", "patches", "files"))
        for model, augment in (("fsrcnn", True), ("fsrcnn", False), ("srcnn", False)):
            start = time.time()
            folder = hdf5_patches.prepare(model, 3, augment=augment, log=lambda msg: None)
            seconds = time.time() - start
            meta = json.load(open(os.path.join(folder, "meta.json")))
            print("%-22s %9.1f %12d %10d" % ("%s x3%s" % (model, " +aug" if augment else ""), seconds,
                                             meta["train_patches"], meta["files"]))


if __name__ == "__main__":
    main()
