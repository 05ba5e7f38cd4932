#!/usr/bin/env python3
"""Benchmark: one video frame, 640x360 upscaled x3 to 1920x1080 (Y channel), side by side:

  - pycaffe, the deploy net reshaped once to the padded frame, Forward only: with the batched
    convolution of tools/caffe-patches/0003 (default) and with CAFFE_CONV_BATCH_MB=0 (stock
    Caffe's per-image convolution, same binary);
  - OpenCV's DNN module (cv2.dnn.readNetFromCaffe) on the same deploy prototxt and caffemodel and
    the same input, with the largest absolute difference of its output from pycaffe's;
  - the toolkit's own path, srcaffe.models.load_model(...).upscale_y (replicate padding, tiles within
    its memory budget, a net reshape per tile, float64 in and out), as tools/predict.py runs it.

Rounds are interleaved (every engine once per round); median and range of --repeat rounds,
frames/s, and the ratios to OpenCV. Then pycaffe's time per layer (Forward of one layer at a
time) for the batched path: where the rest of a frame goes.

  python bench/bench_frame.py                          # FSRCNN and FSRCNN-s x3, shipped weights
  python bench/bench_frame.py --arch fsrcnn-s --repeat 10 --threads 1
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from srcaffe import models, paths  # noqa: E402

SCALE = 3
SWITCH = "CAFFE_CONV_BATCH_MB"


def fmt(ms):
    if len(ms) == 1:
        return "%.1f" % ms[0]
    return "%.1f (%.1f-%.1f)" % (statistics.median(ms), min(ms), max(ms))


def set_budget(value):
    if value is None:
        os.environ.pop(SWITCH, None)
    else:
        os.environ[SWITCH] = value


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", action="append", choices=["fsrcnn", "fsrcnn-s"],
                   help="model (repeatable; default fsrcnn and fsrcnn-s)")
    p.add_argument("--width", type=int, default=640, help="LR frame width (default 640)")
    p.add_argument("--height", type=int, default=360, help="LR frame height (default 360)")
    p.add_argument("--repeat", type=int, default=7, help="rounds (default 7)")
    p.add_argument("--threads", type=int, default=0,
                   help="threads for OpenMP/OpenBLAS/OpenCV (default: library defaults); set before Caffe loads")
    p.add_argument("--no-toolkit", action="store_true", help="skip srcaffe.inference's tiled path")
    a = p.parse_args(argv)
    if a.threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(a.threads)
    os.environ.setdefault("GLOG_minloglevel", "2")
    user_budget = os.environ.get(SWITCH)

    import caffe
    import cv2
    import numpy as np

    if a.threads:
        cv2.setNumThreads(a.threads)
    caffe.set_mode_cpu()
    archs = a.arch or ["fsrcnn", "fsrcnn-s"]
    load = os.getloadavg()
    print("frame: %dx%d LR -> x%d, Y channel, float32; %s; cv2 %s (%d threads); load average %.2f %.2f %.2f"
          % (a.width, a.height, SCALE, "threads %d" % a.threads if a.threads else "library default threads",
             cv2.__version__, cv2.getNumThreads(), *load))
    if user_budget is not None:
        print("%s=%s from the environment for the batched rows" % (SWITCH, user_budget))
    rng = np.random.RandomState(0)
    # a smooth random image (what a frame looks like to the net's arithmetic; timing is data-independent)
    lr = cv2.resize(rng.rand(a.height // 8 + 1, a.width // 8 + 1), (a.width, a.height),
                    interpolation=cv2.INTER_CUBIC).clip(0, 1)

    for arch in archs:
        weights = paths.shipped_weights(arch, SCALE)
        if not os.path.isfile(weights):
            print("%s: no shipped weights (%s); skipped" % (arch, weights))
            continue
        model = models.load_model(weights, SCALE, arch=arch)
        pad = model.pad_px
        x = np.pad(lr, pad, mode="edge").astype(np.float32)[None, None]
        prototxt = paths.net_file(arch, SCALE, "deploy")
        set_budget(user_budget)
        net = caffe.Net(prototxt, weights, caffe.TEST)
        cvnet = cv2.dnn.readNetFromCaffe(prototxt, weights)
        cvnet.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        cvnet.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        inp, out = net.inputs[0], net.outputs[0]
        net.blobs[inp].reshape(*x.shape)
        net.reshape()
        net.blobs[inp].data[...] = x

        def caffe_run(budget):
            def run():
                set_budget(budget)
                net.reshape()   # the layers read the budget when they are reshaped
                net.forward()
                return net.blobs[out].data
            return run

        def cv_run():
            cvnet.setInput(x)
            return cvnet.forward()

        engines = [("pycaffe, batched conv", caffe_run(user_budget)),
                   ("pycaffe, per-image conv (%s=0)" % SWITCH, caffe_run("0")),
                   ("OpenCV DNN", cv_run)]
        if not a.no_toolkit:
            engines.append(("srcaffe.inference (tile %d, batched)" % model.tile,
                            lambda: (set_budget(user_budget), model.upscale_y(lr))[1]))
        outputs, times = {}, {e[0]: [] for e in engines}
        for name, fn in engines:   # warm-up, and the outputs compared below
            outputs[name] = np.array(fn(), dtype=np.float64).squeeze()
        for _ in range(a.repeat):
            for name, fn in engines:
                t0 = time.perf_counter()
                fn()
                times[name].append(1000.0 * (time.perf_counter() - t0))
        set_budget(user_budget)
        ref = outputs["pycaffe, batched conv"]
        cv_med = statistics.median(times["OpenCV DNN"])
        print()
        print("%s x%d: net input %dx%d (padded %d), output %dx%d; ms per frame (median of %d, range)"
              % (arch, SCALE, x.shape[3], x.shape[2], pad, ref.shape[1], ref.shape[0], a.repeat))
        print("  %-44s %-22s %-8s %-10s %s" % ("engine", "ms/frame", "fps", "vs OpenCV", "max |diff| vs batched"))
        for name, _ in engines:
            med = statistics.median(times[name])
            o = outputs[name]
            if name.startswith("srcaffe"):
                # the toolkit's output is cropped to exactly scale x LR; the raw net's output is the
                # padded frame's: compare the part they share
                c = model.crop
                shared = ref[c:c + o.shape[0], c:c + o.shape[1]]
                diff = np.abs(shared - o).max() if shared.shape == o.shape else float("nan")
                note = "%.2g (output %dx%d)" % (diff, o.shape[1], o.shape[0])
            else:
                note = "%.2g" % np.abs(o - ref).max() if o.shape == ref.shape else "shape %s" % (o.shape,)
            print("  %-44s %-22s %-8.1f %-10s %s" % (name, fmt(times[name]), 1000.0 / med, "%.2f" % (med / cv_med), note))

        # pycaffe per layer (batched path): Forward of one layer at a time, median of the rounds
        names = list(net._layer_names)
        per = {n: [] for n in names}
        for _ in range(max(3, a.repeat // 2)):
            for i, n in enumerate(names):
                t0 = time.perf_counter()
                net._forward(i, i)
                per[n].append(1000.0 * (time.perf_counter() - t0))
        total = sum(statistics.median(v) for v in per.values())
        print("  pycaffe per layer (batched, ms): " + ", ".join(
            "%s %.1f" % (n, statistics.median(per[n])) for n in names if statistics.median(per[n]) >= 0.05)
            + "; sum %.1f" % total)
        kinds = {}
        for n, layer in zip(names, net.layers):
            kinds[layer.type] = kinds.get(layer.type, 0.0) + statistics.median(per[n])
        print("  by type: " + ", ".join("%s %.0f%%" % (k, 100.0 * v / total) for k, v in
                                        sorted(kinds.items(), key=lambda kv: -kv[1]) if v > 0))
    print()
    print("load average after: %.2f %.2f %.2f" % os.getloadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
