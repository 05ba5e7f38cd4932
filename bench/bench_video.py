#!/usr/bin/env python3
"""Benchmark: video super-resolution through the toolkit (srcaffe.video, what
`tools/predict.py VIDEO --mode upscale` runs), end to end and stage by stage, next to OpenCV's
cv2.dnn running the same caffemodel on the same frames, and bicubic.

Per configuration (default: FSRCNN-s x3 640x360 -> 1920x1080, FSRCNN x3 426x240 -> 1278x720),
frames/s and ms per frame, median of --repeat interleaved rounds (range in brackets), of:
  end to end      predict_video: decode, network, chroma, encode (H.264), threads overlapping
  decode          PyAV decoding of the LR clip, frames to Y'CbCr planes
  network         the toolkit's per-frame network step (video.frame_net: uint8 Y -> uint8 SR Y)
  pycaffe forward Caffe's forward pass alone, on an input already in the blob (no I/O)
  cv2.dnn forward cv2.dnn.readNetFromCaffe on the same deploy prototxt and caffemodel, same input
  bicubic MATLAB  srcaffe.matlab.imresize of Y (the papers' bicubic)
  bicubic OpenCV  cv2.resize INTER_CUBIC of Y, Cb and Cr
  chroma          the Cb/Cr step of the video path (cv2 bicubic of the two 4:2:0 planes)
  encode          H.264 encoding of the SR frames alone (video.Sink, the toolkit's settings)
and the largest |pycaffe - cv2.dnn| over the network outputs of all frames.

The clip is made here (a pan and zoom over Set14's baboon, PyAV/H.264); nothing is downloaded.
Weights: the shipped models/<arch>_x3.caffemodel, else random ones (the timing does not depend
on them; the line 'weights:' says which).

  python bench/bench_video.py [--frames 48] [--repeat 3] [--only fsrcnn-s] [--threads 1]
"""
import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from srcaffe import paths  # noqa: E402 (Caffe's glog quiet unless the user says otherwise)

CONFIGS = [("fsrcnn-s", 640, 360, "1080p"), ("fsrcnn", 426, 240, "720p")]
SCALE = 3


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=48, help="frames per clip (default 48)")
    p.add_argument("--repeat", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--only", help="one architecture of the default configurations (fsrcnn-s or fsrcnn)")
    p.add_argument("--threads", type=int, help="set OMP/OPENBLAS_NUM_THREADS and cv2.setNumThreads (before Caffe loads)")
    p.add_argument("--datasets-from", help="copy Set14 from this local folder if it is missing")
    return p.parse_args(argv)


def fmt(runs, n):
    """'fps (range) / ms per frame' of a list of seconds for n frames."""
    fps = sorted(n / t for t in runs)
    med = statistics.median(fps)
    rng = " (%.1f-%.1f)" % (fps[0], fps[-1]) if len(fps) > 1 else ""
    return "%7.1f%-14s %8.1f" % (med, rng, 1000.0 / med)


def main(argv=None):
    a = parse_args(argv)
    if a.threads:
        from srcaffe.device import thread_env
        paths.set_env(**thread_env(a.threads))
    if a.datasets_from:
        paths.set_env(SRCAFFE_DATASETS_FROM=a.datasets_from)
    import cv2
    import numpy as np

    from srcaffe import datasets, inference, matlab, models, nets, paths, pycaffe, video
    from srcaffe.images import load_image

    if a.threads:
        cv2.setNumThreads(a.threads)
    if a.datasets_from:
        datasets.fetch("Set14", source_dir=a.datasets_from)
    image = load_image(datasets.resolve_image("baboon"))
    configs = [c for c in CONFIGS if a.only in (None, c[0])]
    print("machine: %s, %d cores, %s; load average %.1f %.1f %.1f" % (
        platform.processor() or platform.machine(), os.cpu_count(), platform.platform(), *os.getloadavg()))
    print("threads: %s; cv2.dnn %d threads; PyAV %s (FFmpeg libavcodec %s); H.264 crf %d preset %s" % (
        ", ".join("%s=%s" % kv for kv in paths.env_values(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")).items()) or "library defaults",
        cv2.getNumThreads(), __import__("av").__version__,
        ".".join(map(str, __import__("av").library_versions["libavcodec"])), video.CRF, video.PRESET))

    with tempfile.TemporaryDirectory() as tmp:
        for arch, w, h, label in configs:
            n = a.frames
            clip = video.pan_zoom_clip(os.path.join(tmp, "clip_%dx%d.mp4" % (w, h)), image, w, h, n)
            weights, kind = paths.shipped_weights(arch, SCALE), "shipped"
            if not os.path.isfile(weights):
                weights, kind = os.path.join(tmp, arch + ".caffemodel"), "random (no trained model found)"
                pycaffe.net(inference.deploy_prototxt(nets.arch(arch, SCALE))).save(weights)
            model = models.load_model(weights, scale=SCALE, arch=arch)

            def decode():
                src = video.Source(clip)
                try:
                    return [video.yuv_planes(f) for _, _, f in (i for i in src.items())]
                finally:
                    src.close()
            frames = decode()
            fnet = video.frame_net(model, h, w)
            chroma = video.ChromaUpscaler(SCALE, w, h)
            sr = [video.even(video.upscale_frame(fnet, p, chroma)) for p in frames]
            p = model.pad_px
            inputs = [np.pad(matlab.im2double(f[0]), p, mode="edge").astype(np.float32) for f in frames]
            net = model.net
            blob = net.blobs[model.input_name]
            dnn = cv2.dnn.readNetFromCaffe(os.path.join(paths.ROOT, "prototxt", "%s_x3_deploy.prototxt" % arch),
                                           weights)
            diff = 0.0

            def caffe_forward():
                for x in inputs:
                    blob.data[0, 0] = x
                    net.forward()

            def dnn_forward(check=False):
                nonlocal diff
                for x in inputs:
                    dnn.setInput(x[None, None])
                    out = dnn.forward()
                    if check:
                        blob.data[0, 0] = x
                        net.forward()
                        diff = max(diff, float(np.abs(out[0, 0] - net.blobs[model.output_name].data[0, 0]).max()))
            dnn_forward(check=True)

            def end_to_end(k):
                video.predict_video(clip, model, os.path.join(tmp, "out%d" % k), "upscale", force=True)

            def encode(k):
                s = video.Sink(os.path.join(tmp, "enc%d.mp4" % k), 24, sr[0][0].shape[1], sr[0][0].shape[0], overwrite=True)
                for f in sr:
                    s.write_yuv(*f)
                s.finish()
            stages = [
                ("end to end (toolkit)", end_to_end),
                ("decode", lambda k: decode()),
                ("network (toolkit, FrameNet)", lambda k: [fnet(f[0]) for f in frames]),
                ("pycaffe forward alone", lambda k: caffe_forward()),
                ("cv2.dnn forward alone", lambda k: dnn_forward()),
                ("bicubic MATLAB (Y)", lambda k: [matlab.imresize(matlab.im2double(f[0]), SCALE) for f in frames]),
                ("bicubic OpenCV (Y, Cb, Cr)", lambda k: [
                    (cv2.resize(f[0], (w * SCALE, h * SCALE), interpolation=cv2.INTER_CUBIC), chroma(f[1]), chroma(f[2]))
                    for f in frames]),
                ("chroma (video path)", lambda k: [(chroma(f[1]), chroma(f[2])) for f in frames]),
                ("encode H.264", encode),
            ]
            runs = {name: [] for name, _ in stages}
            for k in range(a.repeat):
                for name, fn in stages:
                    t0 = time.perf_counter()
                    fn(k)
                    runs[name].append(time.perf_counter() - t0)
            H, W = sr[0][0].shape
            print()
            print("%s x%d, %dx%d -> %dx%d (%s), %d frames, %d rounds; weights: %s; tile %s" % (
                arch, SCALE, w, h, W, H, label, n, a.repeat, kind, "whole frame" if fnet.whole else model.tile))
            print("%-30s %21s %8s" % ("", "frames/s (range)", "ms/frame"))
            for name, _ in stages:
                print("%-30s %s" % (name, fmt(runs[name], n)))
            print("max |pycaffe - cv2.dnn| over the outputs: %.3g" % diff)
            print("load average now: %.1f %.1f %.1f" % os.getloadavg())


if __name__ == "__main__":
    main()
