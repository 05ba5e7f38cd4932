import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E401,E702

# Time MATLAB-exact imresize on whole datasets: x3 down (antialiased) then x3 up, Y channel.
# usage: python bench/bench_data_ops.py [--repeat N]   (datasets from tools/datasets.py fetch)
import argparse
import time

from srcaffe import cli, datasets, matlab
from srcaffe.cli import run_main
from srcaffe.images import load_image


def main(argv=None):
    p = argparse.ArgumentParser(description="Time imresize over Set5, Set14 and T91 at x3.")
    p.add_argument("--repeat", type=int, default=3, help="timed passes; the best is reported")
    cli.add_scale(p)
    args = p.parse_args(argv)
    s = args.scale
    for name in ("Set5", "Set14", "T91"):
        ys = [matlab.im2double(matlab.modcrop(matlab.rgb2y(load_image(f)), s)) for f in datasets.list_images(name)]
        pixels = sum(y.size for y in ys)
        best_down = best_up = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            lows = [matlab.imresize(y, 1.0 / s) for y in ys]
            t1 = time.perf_counter()
            for lr in lows:
                matlab.imresize(lr, s)
            t2 = time.perf_counter()
            best_down, best_up = min(best_down, t1 - t0), min(best_up, t2 - t1)
        print("%-6s %3d images %6.2f Mpx   down 1/%d %7.1f ms   up x%d %7.1f ms   (%.1f Mpx/s)"
              % (name, len(ys), pixels / 1e6, s, best_down * 1e3, s, best_up * 1e3,
                 2 * pixels / 1e6 / (best_down + best_up)))
    return 0


if __name__ == "__main__":
    run_main(main)
