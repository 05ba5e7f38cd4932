"""The phase-convolution deconvolution (phase-deconvolution.patch) against the batched GEMM path,
in one process: one Deconvolution layer (1 output, kernel 9, pad 4, random weights) on FSRCNN's
shapes, CAFFE_DECONV_PHASE=1 then 0, best of 5 forward passes each, ms and GFLOP/s.

Run it with the development build's pycaffe first on the path (a Caffe without the patch ignores
the switch and shows the GEMM path twice), threads set for both OpenMP and the BLAS:

    PYTHONPATH=CAFFE_SOURCE/python OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        .venv/bin/python bench/experiments/bench_deconv_phase.py
"""
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from srcaffe import paths  # noqa: E402

paths.default_env(GLOG_minloglevel="2")
import caffe  # noqa: E402

SHAPES = [(56, 362, 642, 3), (32, 362, 642, 3), (56, 362, 642, 2), (56, 362, 642, 4), (56, 11, 11, 3)]
NET = ('layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: %d dim: %d dim: %d } } }\n'
       'layer { name: "l" type: "Deconvolution" bottom: "x" top: "y" convolution_param { num_output: 1 '
       'kernel_size: 9 stride: %d pad: 4 weight_filler { type: "gaussian" std: 0.5 } } }\n')


def best_ms(net, reps):
    times = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            net.forward()
        times.append((time.perf_counter() - t) / reps)
    return 1e3 * min(times)


def main():
    print("threads: %s; load %s" % (paths.env_values(["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"]),
                                    " ".join(open("/proc/loadavg").read().split()[:3])))
    print("| input, stride | phase convolutions ms (GFLOP/s) | batched GEMM ms (GFLOP/s) |")
    with tempfile.TemporaryDirectory() as tmp:
        for c, h, w, s in SHAPES:
            path = os.path.join(tmp, "net.prototxt")
            with open(path, "w") as f:
                f.write(NET % (c, h, w, s))
            net = caffe.Net(path, caffe.TEST)
            net.blobs["x"].data[...] = np.random.RandomState(0).rand(1, c, h, w)
            gflop = 2 * 81 * c * h * w / 1e9
            reps = max(1, int(2e8 / (81 * c * h * w)))
            cells = []
            for phase in ("1", "0"):
                paths.set_env(CAFFE_DECONV_PHASE=phase)
                net.forward()
                ms = best_ms(net, reps)
                cells.append("%.2f (%.1f)" % (ms, gflop / ms * 1e3))
            print("| %d x %d x %d, x%d | %s |" % (c, h, w, s, " | ".join(cells)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
