"""The two modes of tools/predict.py on a video: upscale (a real LR video, on its Y'CbCr
planes) and gt (every frame a ground truth, scored as an image file is: predict.score_ground_truth)."""
import csv
import heapq
import os

import numpy as np

from .. import files, figures
from ..errors import UserError
from ..evaluation import check_size
from ..outputs import video_outputs
from ..predict import score_ground_truth
from .frames import ChromaUpscaler, bicubic_frame, even, frame_net, side_by_side, upscale_frame
from .pipeline import run
from .reading import BT601, MPEG_RANGE, Source, yuv_planes
from .writing import OutputTime, open_sinks, write_audio

WORST = 4                      # frames in the gt contact sheet


def parse_frames(text):
    """'A:B' -> (A, B) frame indices, B exclusive and optional (None: to the end)."""
    if text is None:
        return 0, None
    try:
        a, b = text.split(":")
        a, b = int(a or 0), (int(b) if b else None)
        if a < 0 or (b is not None and b <= a):
            raise ValueError
    except ValueError:
        raise UserError("--frames %s: expected A:B with 0 <= A < B (frame indices, B excluded; A: or :B)"
                        % text) from None
    return a, b


def frame_range(frames, max_frames):
    """(first, stop) of --frames A:B and --max-frames N (stop None: to the end)."""
    first, stop = parse_frames(frames)
    if max_frames is not None:
        if max_frames < 1:
            raise UserError("--max-frames must be at least 1, not %d" % max_frames)
        stop = first + max_frames if stop is None else min(stop, first + max_frames)
    return first, stop


def predict_video(path, model, out_dir="results", mode="upscale", frames=None, max_frames=None,
                  compare=False, force=False, preset=None):
    """tools/predict.py on a video. Returns the lines to print. Without a tile size, the
    whole frame is one tile when it fits in frames.VIDEO_MEMORY: one net shape, reused every frame."""
    first, stop = frame_range(frames, max_frames)
    out = video_outputs(out_dir, path, model.scale, model.name, mode, model.pad, compare)
    for f in out.values():   # refused before any frame is decoded
        files.check_writable_file(f, force)
    source = Source(path)
    try:
        def sinks(width, height, colour, colour_range=MPEG_RANGE):
            return open_sinks(source, out, width, height, force, preset, colour, colour_range)
        return (_upscale if mode == "upscale" else _ground_truth)(source, model, out, first, stop, sinks)
    finally:
        source.close()


def _writer(sinks, write_frame):
    """write(item) of the pipeline: audio into every output, frames by write_frame(time, result)
    with their times since the first written frame."""
    output_time = OutputTime()

    def write(item):
        if item[0] == "audio":
            write_audio(sinks, item[1])
        else:
            write_frame(item[2], output_time(item[2]), item[3])
    return write


def _upscale(source, model, out, first, stop, open_sinks):
    s = model.scale
    model.check_size((source.height, source.width), source.path)
    W, H = source.width * s, source.height * s
    sinks = open_sinks(W, H, source.colour, source.range)   # the source's planes: its matrix and range
    chroma = ChromaUpscaler(s, source.width, source.height)
    net = frame_net(model, source.height, source.width)

    def process(index, frame):
        planes = yuv_planes(frame)
        sr = even(upscale_frame(net, planes, chroma))
        both = side_by_side(even(bicubic_frame(s, planes, chroma)), sr) if "compare" in sinks else None
        return sr, both

    def write_frame(t, rel, result):
        sr, both = result
        sinks["sr"].write_yuv(*sr, time_s=rel)
        if both is not None:
            sinks["compare"].write_yuv(*both, time_s=rel)
    n, secs, paths, times = run(source, sinks, first, stop, process, _writer(sinks, write_frame),
                                "%s x%d %s" % (os.path.basename(source.path), s, model.name))
    return ["%s: %d frames %dx%d -> %dx%d at %s fps%s" % (
        os.path.basename(source.path), n, source.width, source.height, sinks["sr"].width, sinks["sr"].height,
        _fps(source.rate), ", audio kept" if source.audio is not None else ""), times,
        "  wrote " + ", ".join(paths)]


def _fps(rate):
    return ("%d" % rate) if rate.denominator == 1 else "%.3f" % float(rate)


def _ground_truth(source, model, out, first, stop, open_sinks):
    """Every frame is a ground truth: demo_SR.m's evaluation, as on an image file."""
    s = model.scale
    H, W = source.height - source.height % s, source.width - source.width % s   # modcrop
    model.check_size((H // s, W // s), source.path)
    check_size(source.path, (H, W), s)   # large enough to score: refused before anything is written
    sinks = open_sinks(W, H, BT601)   # frames made from RGB by rgb_to_yuv420
    worst, sums = [], np.zeros(4)   # running sums: nothing grows with the video
    try:
        csv_tmp = out["frames"] + ".tmp"
        os.makedirs(os.path.dirname(os.path.abspath(csv_tmp)), exist_ok=True)
        table = open(csv_tmp, "w", newline="")
    except OSError as exc:
        for sink in sinks.values():
            sink.abort(False)
        raise UserError("%s: cannot write (%s)" % (out["frames"], exc.strerror or exc)) from None
    writer = csv.writer(table)
    writer.writerow(["frame", "time_s", "bicubic_psnr", "bicubic_ssim", model.name + "_psnr", model.name + "_ssim"])

    def process(index, frame):
        r = score_ground_truth(model, frame.to_ndarray(format="rgb24"), source.path)
        return index, r["scores"]["bicubic"], r["scores"]["net"], r["gt"], r["images"]["bicubic"], r["images"]["net"]

    def write_frame(t, rel, result):
        index, b, n, gt, bic, sr = result
        sinks["sr"].write_rgb(sr, rel)
        if "compare" in sinks:
            sinks["compare"].write_rgb(np.hstack([bic, sr]), rel)
        writer.writerow([index, "%.4f" % (t or 0.0), "%.4f" % b["psnr"], "%.5f" % b["ssim"],
                         "%.4f" % n["psnr"], "%.5f" % n["ssim"]])
        sums[:] += (b["psnr"], b["ssim"], n["psnr"], n["ssim"])
        entry = (-n["psnr"], index, (t or 0.0, b, n, gt, bic, sr))
        if len(worst) < WORST:
            heapq.heappush(worst, entry)
        else:
            heapq.heappushpop(worst, entry)   # keeps the WORST lowest-PSNR frames, nothing more
    try:
        try:
            count, secs, paths, times = run(source, sinks, first, stop, process, _writer(sinks, write_frame),
                                            "%s x%d %s gt" % (os.path.basename(source.path), s, model.name))
        finally:
            table.close()
    except BaseException:
        os.remove(csv_tmp)
        raise
    os.replace(csv_tmp, out["frames"])
    figures.worst_frames(out["worst"], sorted(worst, reverse=True), model.name, overwrite=True)   # checked before
    mean = sums / count
    return ["%s x%d, %d frames %dx%d: bicubic %.2f dB (SSIM %.4f), %s %.2f dB (SSIM %.4f) mean on Y; "
            "worst frame %d %.2f dB" % (
                os.path.basename(source.path), s, count, W, H, mean[0], mean[1], model.name, mean[2], mean[3],
                max(worst)[1], -max(worst)[0]),
            times, "  wrote " + ", ".join(paths + [out["frames"], out["worst"]])]
