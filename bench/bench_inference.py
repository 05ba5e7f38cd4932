#!/usr/bin/env python3
"""Benchmark: super-resolving Set5 and Set14 at x3 through pycaffe (srcaffe.inference, the code
path of tools/predict.py and tools/evaluate.py), against MATLAB-exact bicubic
(srcaffe.matlab.imresize), both on the Y channel of the same LR images (demo_SR.m's im_l).

Prints per dataset: images, LR/SR megapixels, seconds for the whole set (median of --repeat
passes, range in brackets), ms per image, SR megapixels per second, and the net/bicubic ratio;
plus the model load time, the tile size and the threads.

Weights: --model FILE.caffemodel, else the shipped models/<arch>_x3.caffemodel, else random
weights saved from the deploy net's fillers (the timing does not depend on the weights; the
line 'weights:' says which were used).

  python bench/bench_inference.py [--arch fsrcnn|fsrcnn-s|srcnn] [--model FILE] [--repeat 3]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from srcaffe import cli, device, inference, matlab, models, nets, paths, pycaffe  # noqa: E402
from srcaffe.evaluation import prepare_pair  # noqa: E402
from srcaffe.hdf5_patches import dataset_images  # noqa: E402

SCALE = 3


def random_weights(arch, path):
    """A caffemodel of the deploy net with its fillers' random weights."""
    pycaffe.caffe().set_mode_cpu()
    pycaffe.net(inference.deploy_prototxt(nets.arch(arch, SCALE))).save(path)


def timed(fn, items, repeat):
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        runs.append(time.perf_counter() - t0)
    return runs


def fmt(runs):
    med = statistics.median(runs)
    return "%.3f (%.3f-%.3f)" % (med, min(runs), max(runs)) if len(runs) > 1 else "%.3f" % med


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="fsrcnn", help="network (default fsrcnn = FSRCNN(56,12,4))")
    p.add_argument("--model", help="a .caffemodel of that network (default: shipped, else random weights)")
    cli.add_datasets(p)
    p.add_argument("--repeat", type=int, default=3, help="timed passes per dataset (default 3)")
    p.add_argument("--tile", type=int, help="tile side in LR pixels (default: inference's automatic choice)")
    p.add_argument("--datasets-from", help="copy missing datasets from this local folder instead of downloading")
    a = p.parse_args(argv)
    if a.datasets_from:
        paths.set_env(SRCAFFE_DATASETS_FROM=a.datasets_from)
    nets.architecture(a.arch)

    with tempfile.TemporaryDirectory() as tmp:
        weights, kind = a.model, "given"
        if weights is None:
            weights, kind = paths.shipped_weights(a.arch, SCALE), "shipped"
            if not os.path.isfile(weights):
                weights, kind = os.path.join(tmp, "random.caffemodel"), "random (no trained model found)"
                random_weights(a.arch, weights)
        t0 = time.perf_counter()
        model = models.load_model(weights, scale=SCALE, arch=a.arch, tile=a.tile)
        load_s = time.perf_counter() - t0

        load = os.getloadavg()
        threads = ", ".join("%s=%s" % kv for kv in paths.env_values(device.THREAD_VARS).items())
        print("%s x%d through pycaffe vs MATLAB-exact bicubic, Y channel, seconds per dataset "
              "(median of %d, range in brackets)" % (a.arch, SCALE, a.repeat))
        import caffe
        print("pycaffe: %s" % os.path.dirname(os.path.realpath(caffe.__file__)))
        print("weights: %s, %s" % (kind, weights if kind != "random (no trained model found)" else "saved from the deploy net"))
        print("model load %.3f s, tile %d LR px, %d cores, threads: %s, load average %.2f"
              % (load_s, model.tile, os.cpu_count(), threads or "library defaults", load[0]))
        if load[0] > 0.5:
            print("note: the machine is busy (load %.1f on %d cores): another process shares the cores, "
                  "so the figures are slower and noisier than on an idle machine" % (load[0], os.cpu_count()))
        print()
        head = "%-7s %6s %9s %9s  %-24s %-24s %9s %9s %7s" % (
            "dataset", "images", "LR Mpx", "SR Mpx", "net s", "bicubic s", "net ms/im", "net Mpx/s", "ratio")
        print(head)
        print("-" * len(head))
        totals = [0.0, 0.0]
        for name in a.datasets:
            lrs = [prepare_pair(path, SCALE)[1] for path in dataset_images(name)]
            model.upscale_y(lrs[0])    # warm-up: first reshape and allocation
            net = timed(model.upscale_y, lrs, a.repeat)
            bic = timed(lambda lr: matlab.imresize(lr, SCALE), lrs, a.repeat)
            lr_px = sum(x.size for x in lrs) / 1e6
            sr_px = lr_px * SCALE * SCALE
            n, b = statistics.median(net), statistics.median(bic)
            totals[0] += n
            totals[1] += b
            print("%-7s %6d %9.3f %9.3f  %-24s %-24s %9.1f %9.2f %6.1fx"
                  % (name, len(lrs), lr_px, sr_px, fmt(net), fmt(bic), 1000.0 * n / len(lrs),
                     sr_px / n, n / b))
        print("%-7s %6s %9s %9s  %-24s %-24s" % ("total", "", "", "", "%.3f" % totals[0], "%.3f" % totals[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
