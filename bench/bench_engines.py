#!/usr/bin/env python3
"""Benchmark: one 640x360 frame upscaled x3 to 1920x1080 (Y channel, float32), the same shipped
weights in every inference engine at hand, interleaved in one process per thread count:

  - pycaffe: the deploy net reshaped once to the padded frame, Forward only (optionally also with
    CAFFE_CONV_BATCH_MB=0, stock Caffe's per-image convolution in the same binary: --per-image-conv);
  - the toolkit's own path: srcaffe.models.load_model(...).upscale_y on the float LR frame
    (replicate padding, tiles within its memory budget, a net reshape per tile, float64 in and out);
  - OpenCV's DNN module (cv2.dnn.readNetFromCaffe) on the same deploy prototxt and caffemodel;
  - ONNX Runtime (CPUExecutionProvider) on the graph of tools/export.py to-onnx;
  - OpenVINO on that ONNX graph, reshaped to the frame, f32 precision (bench/requirements.txt; left
    out with a note when it is not installed).

Every engine but the toolkit runs the net on the frame padded as the toolkit pads it, and its
output is cropped as the toolkit crops it; the largest difference from pycaffe's is printed. The
thread count is set for each engine explicitly: OMP/OPENBLAS/MKL_NUM_THREADS in the environment of
a child process per thread count (before Caffe and NumPy load), cv2.setNumThreads, ORT's
intra_op_num_threads, OpenVINO's INFERENCE_NUM_THREADS. Median and range of --repeat rounds (the
engines alternate within a round, the order reversed every other round); ms per frame, frames/s
and GFLOP/s (2 x the multiply-adds of the convolutions and the deconvolution on the padded
frame) beside a float32 sgemm's (NumPy matmul, 2048^3) measured in the same process; then the
ratio of the toolkit's path to the fastest of cv2.dnn, ONNX Runtime and OpenVINO.

  python bench/bench_engines.py                      # FSRCNN and FSRCNN-s x3, 1 and 2 threads, 7 rounds
  python bench/bench_engines.py --arch fsrcnn-s --threads 1 --repeat 10 --layers

The frame is Set14's baboon (Y, cropped to 16:9, bicubic-resized to 640x360): fetched as the
toolkit fetches datasets (SRCAFFE_DATASETS / SRCAFFE_DATASETS_FROM), else a generated texture.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from srcaffe import paths  # noqa: E402
from srcaffe.device import THREAD_VARS, thread_env  # noqa: E402

SCALE = 3
SWITCH = "CAFFE_CONV_BATCH_MB"
MARK = "RESULT "
FAST = ("cv2.dnn", "ONNX Runtime", "OpenVINO")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", action="append", choices=["fsrcnn", "fsrcnn-s"], help="model (repeatable; default both)")
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    p.add_argument("--repeat", type=int, default=7, help="rounds (default 7)")
    p.add_argument("--width", type=int, default=640, help="LR frame width (default 640)")
    p.add_argument("--height", type=int, default=360, help="LR frame height (default 360)")
    p.add_argument("--image", default="baboon", help="image of the frame (path or dataset image name; default baboon)")
    p.add_argument("--sgemm", type=int, default=2048, help="side of the sgemm (default 2048)")
    p.add_argument("--per-image-conv", action="store_true", help="also pycaffe with %s=0" % SWITCH)
    p.add_argument("--layers", action="store_true", help="also pycaffe's time per layer")
    p.add_argument("--no-openvino", action="store_true", help="leave OpenVINO out")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)   # one thread count, in a child process
    return p.parse_args(argv)


def median_range(ms):
    return statistics.median(ms), min(ms), max(ms)


def frame(a):
    """The LR Y frame (float64 in [0,1], height x width) and where it came from."""
    import cv2
    import numpy as np

    from srcaffe import datasets, matlab
    from srcaffe.errors import UserError
    from srcaffe.images import load_image

    try:
        path = datasets.resolve_image(a.image)
        y = matlab.im2double(matlab.rgb2y(load_image(path)))
        what = "%s (Y)" % os.path.basename(path)
    except UserError as exc:
        print("note: %s; a generated texture instead" % exc)
        rng = np.random.RandomState(0)
        yy, xx = np.mgrid[0:a.height, 0:a.width]
        y = 0.5 + 0.25 * np.sin(xx / 3.0 + 2 * np.sin(yy / 17.0)) * np.cos(yy / 5.0) + 0.1 * rng.rand(a.height, a.width)
        what = "a generated texture"
    h = min(y.shape[0], y.shape[1] * a.height // a.width)
    w = h * a.width // a.height
    top, left = (y.shape[0] - h) // 2, (y.shape[1] - w) // 2
    crop = y[top:top + h, left:left + w]
    lr = cv2.resize(crop, (a.width, a.height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    return lr, "%s, %dx%d cropped and resized to %dx%d" % (what, w, h, a.width, a.height)


def sgemm(n, rounds=5):
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    x @ y
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        x @ y
        times.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / statistics.median(times) / 1e9


def engines_for(arch, lr, threads, a, tmp):
    """[(name, run() -> output on the padded frame or the toolkit's cropped result)], model, x."""
    import caffe
    import cv2
    import numpy as np
    import onnxruntime as ort

    from srcaffe import models, onnx_export, paths

    weights = paths.shipped_weights(arch, SCALE)
    model = models.load_model(arch, SCALE)
    x = np.pad(lr, model.pad_px, mode="edge").astype(np.float32)[None, None]
    user_budget = paths.env_values([SWITCH]).get(SWITCH)
    prototxt = paths.net_file(arch, SCALE, "deploy")
    net = caffe.Net(prototxt, weights, caffe.TEST)
    cvnet = cv2.dnn.readNetFromCaffe(prototxt, weights)
    cvnet.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    cvnet.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    inp, out = net.inputs[0], net.outputs[0]
    net.blobs[inp].reshape(*x.shape)
    net.reshape()
    net.blobs[inp].data[...] = x

    def set_budget(value):
        if value is None:
            paths.unset_env(SWITCH)
        else:
            paths.set_env(**{SWITCH: value})

    def caffe_run(budget):
        def run():
            set_budget(budget)
            net.reshape()   # the layers read the budget when they are reshaped
            net.forward()
            set_budget(user_budget)
            return net.blobs[out].data
        return run

    def cv_run():
        cvnet.setInput(x)
        return cvnet.forward()

    source = onnx_export.resolve(arch, SCALE)
    onnx_path = os.path.join(tmp, "%s_x%d.onnx" % (arch, SCALE))
    with open(onnx_path, "wb") as f:
        f.write(onnx_export.build(source).SerializeToString())
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])

    engines = [("pycaffe forward", caffe_run(user_budget))]
    if a.per_image_conv:
        engines.append(("pycaffe, per-image conv (%s=0)" % SWITCH, caffe_run("0")))
    engines += [("toolkit upscale_y (tile %d)" % model.tile, lambda: model.upscale_y(lr)),
                ("cv2.dnn", cv_run),
                ("ONNX Runtime", lambda: sess.run(None, {onnx_export.INPUT: x})[0])]
    notes = ["onnxruntime %s, intra_op_num_threads %d" % (ort.__version__, threads)]
    if a.no_openvino:
        notes.append("OpenVINO left out (--no-openvino)")
    else:
        try:
            import openvino as ov
        except ImportError:
            notes.append("OpenVINO not installed (pip install -r bench/requirements.txt): left out")
        else:
            core = ov.Core()
            ovm = core.read_model(onnx_path)
            ovm.reshape([1, 1, x.shape[2], x.shape[3]])
            compiled = core.compile_model(ovm, "CPU", {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                                                       "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})
            req = compiled.create_infer_request()

            def ov_run():
                req.infer({0: x})
                return req.get_output_tensor(0).data
            engines.append(("OpenVINO", ov_run))
            notes.append("OpenVINO %s, INFERENCE_NUM_THREADS %d, f32" % (ov.__version__, threads))
    return engines, model, x, net, source, notes


def worker(a):
    import cv2
    import numpy as np

    import caffe
    from srcaffe import onnx_export

    threads = a.worker
    cv2.setNumThreads(threads)
    caffe.set_mode_cpu()
    lr, what = frame(a)
    print("threads %d: %s; cv2.setNumThreads(%d) (cv2 %s); load average %.2f %.2f %.2f"
          % (threads, ", ".join("%s=%s" % (v, paths.env_values([v]).get(v)) for v in THREAD_VARS), threads,
             cv2.__version__, *os.getloadavg()))
    print("frame: %s" % what)
    gemm = sgemm(a.sgemm)
    print("sgemm %d^3 float32 (NumPy %s matmul): %.1f GFLOP/s" % (a.sgemm, np.__version__, gemm))
    result = {"threads": threads, "sgemm": gemm, "models": {}}
    for arch in a.arch or ["fsrcnn", "fsrcnn-s"]:
        with tempfile.TemporaryDirectory() as tmp:
            engines, model, x, net, source, notes = engines_for(arch, lr, threads, a, tmp)
            gflop = 2.0 * onnx_export.mult_adds(source.prototxt, x.shape[2], x.shape[3]) / 1e9
            c, th, tw = model.crop, lr.shape[0] * SCALE, lr.shape[1] * SCALE
            outputs, times = {}, {name: [] for name, _ in engines}
            for name, fn in engines:   # warm-up, and the outputs compared below
                o = np.array(fn(), dtype=np.float64).squeeze()
                outputs[name] = o if o.shape == (th, tw) else o[c:c + th, c:c + tw]
            for r in range(a.repeat):
                for name, fn in (engines if r % 2 == 0 else engines[::-1]):
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(1000.0 * (time.perf_counter() - t0))
        ref = outputs["pycaffe forward"]
        print()
        print("%s x%d: LR %dx%d -> %dx%d; net input %dx%d (padded %d); %.2f GFLOP per frame; %s"
              % (arch, SCALE, lr.shape[1], lr.shape[0], tw, th, x.shape[3], x.shape[2], model.pad_px, gflop,
                 "; ".join(notes)))
        print("  %-48s %-22s %8s %8s %9s  %s" % ("engine", "ms/frame (range)", "frames/s", "GFLOP/s", "of sgemm",
                                                "max |diff| vs pycaffe"))
        rows = {}
        for name, _ in engines:
            med, lo, hi = median_range(times[name])
            diff = float(np.abs(outputs[name] - ref).max())
            rows[name] = dict(ms=med, lo=lo, hi=hi, fps=1000.0 / med, gflops=gflop / med * 1000.0, diff=diff)
            print("  %-48s %-22s %8.2f %8.1f %8.0f%%  %.2g"
                  % (name, "%.1f (%.1f-%.1f)" % (med, lo, hi), 1000.0 / med, rows[name]["gflops"],
                     100.0 * rows[name]["gflops"] / gemm, diff))
        toolkit = next(n for n in rows if n.startswith("toolkit"))
        fast = [n for n in rows if n in FAST]
        best = min(fast, key=lambda n: rows[n]["ms"])
        ratio = rows[toolkit]["ms"] / rows[best]["ms"]
        print("  toolkit path / fastest of %s (%s): %.2f" % (", ".join(fast), best, ratio))
        result["models"][arch] = dict(gflop=gflop, rows=rows, fastest=best, ratio=ratio)
        if a.layers:
            names = list(net._layer_names)
            per = {n: [] for n in names}
            for _ in range(max(3, a.repeat // 2)):
                for i, n in enumerate(names):
                    t0 = time.perf_counter()
                    net._forward(i, i)
                    per[n].append(1000.0 * (time.perf_counter() - t0))
            total = sum(statistics.median(v) for v in per.values())
            print("  pycaffe per layer (ms): " + ", ".join("%s %.1f" % (n, statistics.median(per[n])) for n in names
                                                           if statistics.median(per[n]) >= 0.05) + "; sum %.1f" % total)
            kinds = {}
            for n, layer in zip(names, net.layers):
                kinds[layer.type] = kinds.get(layer.type, 0.0) + statistics.median(per[n])
            print("  by type: " + ", ".join("%s %.0f%%" % (k, 100.0 * v / total) for k, v in
                                            sorted(kinds.items(), key=lambda kv: -kv[1]) if v > 0))
    print("load average after: %.2f %.2f %.2f" % os.getloadavg())
    print(MARK + json.dumps(result))
    return 0


def main(argv=None):
    a = parse_args(argv)
    if a.worker:
        return worker(a)
    counts = [int(t) for t in a.threads.split(",") if t.strip()]
    print("machine: %d cores; load average %.2f %.2f %.2f (uptime: %s)" % (
        os.cpu_count(), *os.getloadavg(), subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()))
    results = []
    for t in counts:
        env = paths.child_env(GLOG_minloglevel="2", **thread_env(t))
        args = [sys.executable, os.path.abspath(__file__), "--worker", str(t)] + list(argv if argv is not None else sys.argv[1:])
        proc = subprocess.run(args, env=env, stdout=subprocess.PIPE, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith(MARK):
                results.append(json.loads(line[len(MARK):]))
            else:
                print(line)
        if proc.returncode:
            print("threads %d: the worker failed (exit %d)" % (t, proc.returncode))
            return proc.returncode
        print()
    print("summary, ms per frame (frames/s, GFLOP/s):")
    head = "| model | engine | " + " | ".join("%d thread%s" % (r["threads"], "s" if r["threads"] > 1 else "")
                                              for r in results) + " |"
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for arch in results[0]["models"]:
        for name in results[0]["models"][arch]["rows"]:
            cells = []
            for r in results:
                row = r["models"][arch]["rows"].get(name)
                cells.append("%.1f (%.2f, %.1f)" % (row["ms"], row["fps"], row["gflops"]) if row else "")
            print("| %s x%d | %s | %s |" % (arch, SCALE, name, " | ".join(cells)))
        print("| %s x%d | toolkit / fastest | %s |" % (arch, SCALE, " | ".join(
            "%.2f (%s)" % (r["models"][arch]["ratio"], r["models"][arch]["fastest"]) for r in results)))
    print("| | sgemm %d^3, GFLOP/s | %s |" % (a.sgemm, " | ".join("%.1f" % r["sgemm"] for r in results)))
    print("load average at the end: %.2f %.2f %.2f" % os.getloadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
