"""Video super-resolution with a trained FSRCNN / SRCNN: decode, upscale every frame, encode.

Decoding and encoding use PyAV (the `av` package: FFmpeg's libraries, bundled in its wheels, so
no system FFmpeg is needed). Three stages run in threads joined by bounded queues, so memory does
not grow with the video and the wall time approaches that of the slowest stage:

    reader (demux + decode) -> worker (the network) -> writer (encode + mux, main thread)

Audio packets travel along the same queues untouched and are remuxed in their original order.
The output is written to a temporary name in the target folder (.NAME.PID.XXXX.tmp.EXT) and
renamed at the end; on Ctrl-C or SIGTERM the container is finalised and kept as NAME.partial.EXT
(playable, and it blocks nothing); on an error it is removed. A temporary file that a killed
process left (kill -9) is removed by the next run writing the same output.

--mode upscale works on the decoded Y'CbCr planes directly (no RGB round trip: the encoder wants
4:2:0 Y'CbCr anyway): the luma plane goes through the network with Model.upscale_y's numbers
(its frame_upscaler: the same input and output, one net shape for the whole video), and
Cb/Cr are resized with OpenCV's bicubic (cv2.resize INTER_CUBIC), a documented fast path for
chroma, which no score looks at. --mode gt converts every frame to RGB and scores it with
srcaffe.evaluation.evaluate, exactly as an image file is scored (the frame is written as a
lossless BMP and evaluated from there), so its PSNR/SSIM equal evaluate's on the same frames.
"""
import contextlib
import csv
import fractions
import heapq
import os
import queue
import signal
import sys
import tempfile
import threading
import time

import numpy as np

from . import files, matlab
from .cli import Terminated
from .errors import UserError
from .outputs import CRF, PRESET, PRESETS, VIDEO_EXTS, is_video, video_outputs  # noqa: F401 (PRESETS, VIDEO_EXTS: for callers)

QUEUE = 4                      # frames in flight per queue: bounds the memory
TIME_BASE = fractions.Fraction(1, 90000)   # of the output's frame times (MPEG's 90 kHz clock)
VIDEO_MEMORY = 1 << 30         # bytes of Caffe memory a frame may take before it is tiled
WORST = 4                      # frames in the gt contact sheet
# FFmpeg's AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic codes: (matrix, primaries, transfer)
BT709, BT601, UNSPECIFIED, MPEG_RANGE, JPEG_RANGE = (1, 1, 1), (6, 6, 6), 2, 1, 2


def _av():
    try:
        import av
    except ImportError:
        raise UserError("video needs PyAV: pip install -r requirements.txt (package av)") from None
    return av


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


# ---- reading --------------------------------------------------------------------------------

class Source:
    """An opened input video: its video stream, its first audio stream if any, rate, size."""

    def __init__(self, path):
        av = _av()
        if not os.path.isfile(path):
            raise UserError("%s: not a readable video (no such file)" % path)
        try:
            self.container = av.open(path)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise UserError("%s: not a readable video (%s)" % (path, _why(exc))) from None
        self.path = path
        if not self.container.streams.video:
            self.container.close()
            raise UserError("%s: not a readable video (it has no video stream)" % path)
        self.video = self.container.streams.video[0]
        self.video.thread_type = "AUTO"    # FFmpeg's own decoding threads
        audio = self.container.streams.audio
        self.audio = audio[0] if audio else None
        self.rate = self.video.average_rate or self.video.guessed_rate or fractions.Fraction(25)
        cc = self.video.codec_context
        self.width, self.height = cc.width, cc.height
        if not self.width or not self.height:
            self.container.close()
            raise UserError("%s: not a readable video (its video stream has no frame size)" % path)
        # the Y'CbCr matrix its planes are in: as tagged, else what players assume for the size
        cc = self.video.codec_context
        guess = BT601 if self.height < 720 else BT709
        self.colour = tuple(g if v in (None, UNSPECIFIED, 0) else v
                            for v, g in zip((cc.colorspace, cc.color_primaries, cc.color_trc), guess))
        # full-range (JPEG) planes stay full range: swscale's yuvj420p -> yuv420p copies the values
        self.range = JPEG_RANGE if (cc.color_range == JPEG_RANGE or (cc.pix_fmt or "").startswith("yuvj")) \
            else MPEG_RANGE
        self.frames = self.video.frames or (int(self.container.duration * self.rate / 1000000)
                                            if self.container.duration else 0)

    def close(self):
        self.container.close()

    def items(self, first=0, stop=None, stopping=None):
        """('video', index, frame) and ('audio', packet) in file order, frames first..stop-1;
        audio within the same time span, its timestamps shifted with the video's."""
        av = _av()
        streams = [self.video] + ([self.audio] if self.audio is not None else [])
        index, t0, last = -1, None, None
        held = []   # audio ahead of the first kept frame: its start time is not known yet
        try:
            for packet in self.container.demux(streams):
                if stopping is not None and stopping.is_set():
                    return
                if packet.stream.type == "audio":
                    if packet.pts is None or packet.size == 0:
                        continue
                    if t0 is None:
                        held.append(packet)
                    else:
                        yield "audio", self._shift(packet, t0)
                    continue
                for frame in packet.decode():
                    index += 1
                    if index < first:
                        if frame.time is not None:   # audio before this frame can no longer be kept
                            held = [p for p in held if float(p.pts * p.time_base) >= frame.time]
                        continue
                    if stop is not None and index >= stop:
                        return
                    if t0 is None:
                        t0 = frame.time or 0.0
                        for p in held:   # from the start: all of it (AAC's priming packet starts < 0)
                            if first == 0 or float(p.pts * p.time_base) >= t0 - 1e-9:
                                yield "audio", self._shift(p, t0)
                        held = []
                    last = frame.time
                    yield "video", index, frame
        except av.FFmpegError as exc:
            what = "frame %d" % (index + 1) if index >= 0 else "its start"
            raise UserError("%s: cannot decode the video at %s (%s): truncated or corrupt?"
                            % (self.path, what, _why(exc))) from None
        if index < first:
            raise UserError("%s: has %d frames; --frames starts at %d" % (self.path, index + 1, first))
        end, declared = (last + 1 / self.rate if last is not None else 0.0), self.declared_end()
        if declared and end < declared - 2 / self.rate - 0.02 * declared:
            # FFmpeg stops quietly where a file was cut: its header still promises more
            raise UserError("%s: the video stops at frame %d (%.2f s of the %.2f s its header declares): "
                            "truncated or corrupt" % (self.path, index + 1, end, declared))

    def declared_end(self):
        """Where the header says the video stream ends (s), or None when only a container duration
        is known and an audio track may be what makes it longer."""
        v = self.video
        start = float(v.start_time * v.time_base) if v.start_time is not None else 0.0
        if v.duration:
            return start + float(v.duration * v.time_base)
        if self.audio is None and self.container.duration:
            return start + self.container.duration / 1e6
        return None

    @staticmethod
    def _shift(packet, t0):
        off = int(round(t0 / packet.time_base))
        packet.pts -= off
        if packet.dts is not None:
            packet.dts -= off
        return packet


def _why(exc):
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0].strip() or type(exc).__name__


def yuv_planes(frame):
    """(Y, Cb, Cr) uint8 planes of a decoded frame, as 4:2:0 studio-range Y'CbCr (converted by
    FFmpeg's swscale when the source is in another pixel format)."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    planes = []
    for p in frame.planes:
        a = np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width]
        planes.append(a)
    return planes


# ---- writing --------------------------------------------------------------------------------

class Sink:
    """An H.264 output video written to a temporary name beside `path`; finish() renames it,
    abort() finalises it as NAME.partial.EXT (interrupted) or removes it (error)."""

    def __init__(self, path, rate, width, height, audio=None, overwrite=False, preset=None, colour=BT601,
                 colour_range=MPEG_RANGE):
        av = _av()
        self.path, self.width, self.height = path, width - width % 2, height - height % 2
        files.check_new(path, overwrite)
        folder = files.make_dir(os.path.dirname(os.path.abspath(path)))
        stem, ext = os.path.splitext(os.path.basename(path))
        remove_stale_temporaries(folder, stem, ext)
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=".%s.%d." % (stem, os.getpid()), suffix=".tmp" + ext, dir=folder)
            os.close(fd)
        except OSError as exc:
            raise UserError("%s: cannot write the video there (%s)" % (path, exc.strerror or exc)) from None
        self.partial = os.path.join(folder, stem + ".partial" + ext)
        try:
            self.container = av.open(self.tmp, "w", format=_format_of(ext))
            self.stream = self.container.add_stream("libx264", rate=rate,
                                                    options={"crf": str(CRF), "preset": preset or PRESET})
            self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, "yuv420p"
            # frames keep the source's own times (a variable frame rate too): a fine time base,
            # not a grid of 1/rate
            self.stream.codec_context.time_base = self.stream.time_base = TIME_BASE
            self.stream.thread_type = "AUTO"
            cc = self.stream.codec_context   # tagged, so that players convert to RGB as the source says
            cc.colorspace, cc.color_primaries, cc.color_trc = colour
            cc.color_range = colour_range
            self.audio = self.container.add_stream_from_template(audio) if audio is not None else None
        except (av.FFmpegError, OSError, ValueError) as exc:
            self._remove()
            raise UserError("%s: cannot write the video (%s)" % (path, _why(exc))) from None
        self.rate, self.frames, self.last_pts = fractions.Fraction(rate), 0, -1

    def write_yuv(self, y, cb, cr, time_s=None):
        """One frame from uint8 planes (cropped to the even size 4:2:0 needs); pts from its time."""
        av = _av()
        h, w = self.height, self.width
        buf = np.concatenate([y[:h, :w].ravel(), cb[:h // 2, :w // 2].ravel(), cr[:h // 2, :w // 2].ravel()])
        frame = av.VideoFrame.from_ndarray(buf.reshape(h * 3 // 2, w), format="yuv420p")
        cc = self.stream.codec_context
        frame.colorspace, frame.color_range = cc.colorspace, cc.color_range
        seconds = self.frames / self.rate if time_s is None else time_s
        pts = int(round(seconds / TIME_BASE))
        frame.pts = max(pts, self.last_pts + 1)   # never backwards, whatever the source's timing
        frame.time_base = TIME_BASE
        self.last_pts = frame.pts
        self.frames += 1
        self._mux(self._encode(frame))

    def write_rgb(self, rgb, time_s=None):
        y, cb, cr = rgb_to_yuv420(rgb)
        self.write_yuv(y, cb, cr, time_s)

    def write_audio(self, packet):
        if self.audio is not None:
            packet.stream = self.audio
            self._mux([packet])

    def _encode(self, frame):
        """Packets of a frame (None: the encoder's delayed frames)."""
        av = _av()
        try:
            return self.stream.encode(frame)
        except (av.FFmpegError, ValueError) as exc:
            raise UserError("%s: cannot encode the video (%s)" % (self.path, _why(exc))) from None

    def _mux(self, packets):
        av = _av()
        try:
            self.container.mux(packets)
        except (av.FFmpegError, OSError) as exc:
            raise UserError("%s: cannot write the video (%s)" % (self.path, _why(exc))) from None

    def _close(self):
        self._mux(self._encode(None))
        self.container.close()

    def finish(self):
        self._close()
        files.normal_mode(self.tmp)
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self, keep_partial):
        """Ctrl-C: a playable partial file (None if nothing was encoded); an error: nothing."""
        try:
            if keep_partial and self.frames:
                self._close()
                files.normal_mode(self.tmp)
                os.replace(self.tmp, self.partial)
                return self.partial
            self.container.close()
        except Exception:   # a container that cannot be finalised is removed, never left half-written
            pass
        self._remove()
        return None

    def _remove(self):
        try:
            os.remove(self.tmp)
        except OSError:
            pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder, stem, ext):
    """The temporary files of this output (.STEM.PID.XXXX.tmp.EXT) that a killed process left:
    removed, unless that process still runs (a second writer of the same output)."""
    prefix, suffix = ".%s." % stem, ".tmp" + ext
    for name in os.listdir(folder):
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass


def _format_of(ext):
    return {".mkv": "matroska", ".m4v": "mp4"}.get(ext.lower(), ext.lower().lstrip("."))


def rgb_to_yuv420(rgb):
    """uint8 RGB -> BT.601 studio-range Y'CbCr 4:2:0 planes, by FFmpeg's swscale (for the
    comparison videos, whose frames are composed in RGB)."""
    av = _av()
    rgb = np.ascontiguousarray(rgb[: rgb.shape[0] - rgb.shape[0] % 2, : rgb.shape[1] - rgb.shape[1] % 2])
    return yuv_planes(av.VideoFrame.from_ndarray(rgb, format="rgb24"))


# ---- the pipeline -----------------------------------------------------------------------------

_END = object()


class _Failed:
    def __init__(self, exc):
        self.exc = exc


def _put(q, item, stopping):
    while not stopping.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            pass
    return False


def _timed(iterable, busy, key):
    """The items of an iterable, the time spent producing them added to busy[key]."""
    it = iter(iterable)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        finally:
            busy[key] += time.perf_counter() - t0
        yield item


def _stage(fn, items, q_out, stopping):
    """Run fn(item) over an iterable in a thread, results into q_out; an exception is handed on."""
    def run():
        try:
            for item in items:
                if stopping.is_set() or not _put(q_out, fn(item), stopping):
                    return
            _put(q_out, _END, stopping)
        except BaseException as exc:   # handed to the main thread, which raises it
            _put(q_out, _Failed(exc), stopping)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _drain(q, stopping):
    while not stopping.is_set():
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            continue
        if item is _END:
            return
        if isinstance(item, _Failed):
            raise item.exc
        yield item


def run_pipeline(source, first, stop, process, write, total=None, desc=None, busy=None):
    """Decode frames first..stop-1 in one thread, process(index, frame) in another, and
    write(item) here; audio items go straight through. Returns the number of frames written;
    busy (a dict) gets each stage's working seconds: decode, network, encode."""
    from tqdm import tqdm

    busy = {} if busy is None else busy
    busy.update(decode=0.0, network=0.0, encode=0.0)
    stopping = threading.Event()
    q1, q2 = queue.Queue(QUEUE), queue.Queue(QUEUE)

    def work(item):
        if item[0] == "audio":
            return item
        t0 = time.perf_counter()
        out = ("video", item[1], item[2].time, process(item[1], item[2]))
        busy["network"] += time.perf_counter() - t0
        return out
    threads = [_stage(lambda item: item, _timed(source.items(first, stop, stopping), busy, "decode"), q1, stopping),
               _stage(work, _drain(q1, stopping), q2, stopping)]
    bar = tqdm(total=total, unit="frame", desc=desc, file=sys.stderr, dynamic_ncols=True,
               disable=None, smoothing=0.1)
    n = 0
    try:
        for item in _drain(q2, stopping):
            t0 = time.perf_counter()
            write(item)
            busy["encode"] += time.perf_counter() - t0
            if item[0] == "video":
                n += 1
                bar.update(1)
    finally:
        stopping.set()
        bar.close()
        for t in threads:
            t.join(timeout=30)   # Caffe's forward pass cannot be interrupted: wait for it
    return n


# ---- the two modes ----------------------------------------------------------------------------

def frame_range(frames, max_frames):
    """(first, stop) of --frames A:B and --max-frames N (stop None: to the end)."""
    first, stop = parse_frames(frames)
    if max_frames is not None:
        if max_frames < 1:
            raise UserError("--max-frames must be at least 1, not %d" % max_frames)
        stop = first + max_frames if stop is None else min(stop, first + max_frames)
    return first, stop


def _total(source, first, stop):
    """Frames to expect, for the progress bar (None if unknown)."""
    known = source.frames or None
    end = min(stop, known) if (stop and known) else (stop or known)
    return max(0, end - first) if end else None


class ChromaUpscaler:
    """Cb/Cr planes of an LR 4:2:0 frame -> those of the SR frame (OpenCV bicubic; see the module
    docstring for why not MATLAB's)."""

    def __init__(self, scale, width, height):
        self.size = ((width * scale + 1) // 2, (height * scale + 1) // 2)

    def __call__(self, plane):
        import cv2
        return cv2.resize(plane, self.size, interpolation=cv2.INTER_CUBIC)


def upscale_frame(net, planes, chroma):
    """SR (Y, Cb, Cr) uint8 planes of a decoded frame's planes: Y by the network (the model's
    frame_upscaler)."""
    y, cb, cr = planes
    return net(y), chroma(cb), chroma(cr)


def bicubic_frame(scale, planes, chroma):
    """The same frame, MATLAB-bicubic Y (the papers' baseline), for --compare."""
    return matlab.to_uint8(matlab.imresize(matlab.im2double(planes[0]), scale)), chroma(planes[1]), chroma(planes[2])


def side_by_side(*frames):
    """Planes of frames put next to each other (left to right)."""
    return [np.hstack([f[i] for f in frames]) for i in range(3)]


def predict_video(path, model, out_dir="results", mode="upscale", frames=None, max_frames=None,
                  compare=False, force=False, preset=None):
    """tools/predict.py on a video. Returns the lines to print. Without a tile size, the
    whole frame is one tile when it fits in VIDEO_MEMORY: one net shape, reused every frame."""
    first, stop = frame_range(frames, max_frames)
    out = video_outputs(out_dir, path, model.scale, model.name, mode, model.pad, compare)
    for f in out.values():   # refused before any frame is decoded
        files.check_writable_file(f, force)
    source = Source(path)
    try:
        def sinks(width, height, colour, colour_range=MPEG_RANGE):
            return _open_sinks(source, out, width, height, force, preset, colour, colour_range)
        return (_upscale if mode == "upscale" else _ground_truth)(source, model, out, first, stop,
                                                                    _total(source, first, stop), sinks)
    finally:
        source.close()


def _open_sinks(source, out, width, height, force, preset, colour, colour_range):
    """The SR video and, with --compare, the side-by-side one (twice as wide)."""
    sinks = {}
    try:
        sinks["sr"] = Sink(out["sr"], source.rate, width, height, source.audio, force, preset, colour, colour_range)
        if "compare" in out:
            sinks["compare"] = Sink(out["compare"], source.rate, 2 * (width - width % 2), height,
                                    source.audio, force, preset, colour, colour_range)
    except UserError:
        for s in sinks.values():
            s.abort(False)
        raise
    return sinks


@contextlib.contextmanager
def _no_ctrl_c():
    """SIGINT and SIGTERM ignored while the outputs are finalised (a second or so), in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _run(source, sinks, first, stop, total, process, write, desc):
    """The pipeline with the sinks' life cycle: finished on success, partial on Ctrl-C, removed
    on an error."""
    t0 = time.perf_counter()
    busy = {}
    try:
        n = run_pipeline(source, first, stop, process, write, total, desc, busy)
    except KeyboardInterrupt as exc:   # Ctrl-C, or SIGTERM (cli.Terminated)
        with _no_ctrl_c():   # a second Ctrl-C must not leave a half-closed file
            kept = [k for k in (s.abort(True) for s in sinks.values()) if k]
        print("%s: " % ("terminated" if isinstance(exc, Terminated) else "interrupted")
              + ("partial video kept in %s" % ", ".join(kept) if kept else "nothing written"), file=sys.stderr)
        raise
    except BaseException:
        for s in sinks.values():
            s.abort(False)
        raise
    if n == 0:
        for s in sinks.values():
            s.abort(False)
        raise UserError("%s: no frame decoded in the selected range" % source.path)
    t1 = time.perf_counter()
    with _no_ctrl_c():
        paths = [s.finish() for s in sinks.values()]
    busy["encode"] += time.perf_counter() - t1   # the encoder's delayed frames
    secs = time.perf_counter() - t0
    times = "  time: %.1f s (%.1f frames/s); working time of each stage (they overlap): decode %.1f s, " \
            "network %.1f s, encode %.1f s" % (secs, n / secs, busy["decode"], busy["network"], busy["encode"])
    return n, secs, paths, times


def _upscale(source, model, out, first, stop, total, open_sinks):
    s = model.scale
    model.check_size((source.height, source.width), source.path)
    W, H = source.width * s, source.height * s
    sinks = open_sinks(W, H, source.colour, source.range)   # the source's planes: its matrix and range
    chroma = ChromaUpscaler(s, source.width, source.height)
    net = model.frame_upscaler(source.height, source.width, VIDEO_MEMORY)

    def process(index, frame):
        planes = yuv_planes(frame)
        sr = _even(upscale_frame(net, planes, chroma))
        both = side_by_side(_even(bicubic_frame(s, planes, chroma)), sr) if "compare" in sinks else None
        return sr, both

    first_time = _FirstTime()

    def write(item):
        if item[0] == "audio":
            _write_audio(sinks, item[1])
            return
        _, index, t, (sr, both) = item
        sinks["sr"].write_yuv(*sr, time_s=_rel(t, first_time))
        if both is not None:
            sinks["compare"].write_yuv(*both, time_s=_rel(t, first_time))
    n, secs, paths, times = _run(source, sinks, first, stop, total, process, write,
                                 "%s x%d %s" % (os.path.basename(source.path), s, model.name))
    return ["%s: %d frames %dx%d -> %dx%d at %s fps%s" % (
        os.path.basename(source.path), n, source.width, source.height, sinks["sr"].width, sinks["sr"].height,
        _fps(source.rate), ", audio kept" if source.audio is not None else ""), times,
        "  wrote " + ", ".join(paths)]


def _even(planes):
    """Planes cropped to an even frame size (4:2:0 H.264 needs one)."""
    y = planes[0][: planes[0].shape[0] // 2 * 2, : planes[0].shape[1] // 2 * 2]
    return [y] + [c[: y.shape[0] // 2, : y.shape[1] // 2] for c in planes[1:]]


def _write_audio(sinks, packet):
    """The same audio packet into every output (a muxed packet is consumed: copies)."""
    sinks = list(sinks.values())
    for sink in sinks[1:]:
        sink.write_audio(_copy(packet))
    sinks[0].write_audio(packet)


class _FirstTime:
    value = None


def _rel(t, first):
    """Seconds since the first written frame (the output starts at 0, like its shifted audio)."""
    if t is None:
        return None
    if first.value is None:
        first.value = t
    return t - first.value


def _copy(packet):
    av = _av()
    p = av.Packet(bytes(packet))
    p.pts, p.dts, p.time_base = packet.pts, packet.dts, packet.time_base
    p.duration, p.is_keyframe = packet.duration, packet.is_keyframe
    return p


def _fps(rate):
    return ("%d" % rate) if rate.denominator == 1 else "%.3f" % float(rate)


def _ground_truth(source, model, out, first, stop, total, open_sinks):
    """Every frame is a ground truth: demo_SR.m's evaluation through evaluation.evaluate."""
    from .evaluation import bicubic_upscaler, evaluate
    from .images import save_image
    from .upscaling import merge_colour

    s = model.scale
    H, W = source.height - source.height % s, source.width - source.width % s   # modcrop
    model.check_size((H // s, W // s), source.path)
    sinks = open_sinks(W, H, BT601)   # frames made from RGB by rgb_to_yuv420
    worst, sums = [], np.zeros(4)   # running sums: nothing grows with the video
    tmp = tempfile.TemporaryDirectory(prefix="srcaffe-video-")
    try:
        csv_tmp = out["frames"] + ".tmp"
        os.makedirs(os.path.dirname(os.path.abspath(csv_tmp)), exist_ok=True)
        table = open(csv_tmp, "w", newline="")
    except OSError as exc:
        for sink in sinks.values():
            sink.abort(False)
        tmp.cleanup()
        raise UserError("%s: cannot write (%s)" % (out["frames"], exc.strerror or exc)) from None
    writer = csv.writer(table)
    writer.writerow(["frame", "time_s", "bicubic_psnr", "bicubic_ssim", model.name + "_psnr", model.name + "_ssim"])

    def process(index, frame):
        rgb = frame.to_ndarray(format="rgb24")
        png = os.path.join(tmp.name, "frame.bmp")   # lossless: what evaluate reads is the frame
        save_image(png, rgb, overwrite=True)
        kept = {}

        def recorded(name, upscaler):
            def run(lr, scale):
                kept[name] = upscaler(lr, scale)
                return kept[name]
            return run
        b, n = (evaluate(recorded(name, up), [png], s, name)["images"][0]
                for name, up in (("bicubic", bicubic_upscaler), ("net", model.upscaler)))
        gt = matlab.modcrop(rgb, s)
        lr_ycbcr = matlab.imresize(matlab.im2double(matlab.rgb2ycbcr(gt)), 1.0 / s)
        bic, sr = merge_colour(kept["bicubic"], lr_ycbcr, s), merge_colour(kept["net"], lr_ycbcr, s)
        return index, b, n, gt, bic, sr

    first_time = _FirstTime()

    def write(item):
        if item[0] == "audio":
            _write_audio(sinks, item[1])
            return
        _, _, t, (index, b, n, gt, bic, sr) = item
        rel = _rel(t, first_time)
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
            count, secs, paths, times = _run(source, sinks, first, stop, total, process, write,
                                             "%s x%d %s gt" % (os.path.basename(source.path), s, model.name))
        finally:
            table.close()
            tmp.cleanup()
    except BaseException:
        os.remove(csv_tmp)
        raise
    os.replace(csv_tmp, out["frames"])
    contact_sheet(out["worst"], sorted(worst, reverse=True), model.name, overwrite=True)   # checked before
    mean = sums / count
    return ["%s x%d, %d frames %dx%d: bicubic %.2f dB (SSIM %.4f), %s %.2f dB (SSIM %.4f) mean on Y; "
            "worst frame %d %.2f dB" % (
                os.path.basename(source.path), s, count, W, H, mean[0], mean[1], model.name, mean[2], mean[3],
                max(worst)[1], -max(worst)[0]),
            times, "  wrote " + ", ".join(paths + [out["frames"], out["worst"]])]


def contact_sheet(path, entries, model_name, overwrite):
    """The worst frames, one row each: ground truth / bicubic / network, dB in the titles."""
    from matplotlib.figure import Figure

    from .figures import _save, _show

    h, w = entries[0][2][3].shape[:2]
    fig = Figure(figsize=(3 * 3.2, len(entries) * 3.2 * h / w + 0.4), dpi=100)
    axes = fig.subplots(len(entries), 3, squeeze=False)
    for row, (_, index, (t, b, n, gt, bic, sr)) in zip(axes, entries):
        _show(row[0], gt, "frame %d (%.2f s) ground truth" % (index, t))
        _show(row[1], bic, "bicubic %.2f dB / %.4f" % (b["psnr"], b["ssim"]))
        _show(row[2], sr, "%s %.2f dB / %.4f" % (model_name, n["psnr"], n["ssim"]))
    fig.tight_layout()
    return _save(fig, path, overwrite)


# ---- GPU ------------------------------------------------------------------------------------

# ---- made videos (tests, bench) -------------------------------------------------------------

def pan_zoom_clip(path, image, width, height, frames, rate=24, audio_rate=None, codec="libx264",
                  pix_fmt="yuv420p"):
    """Write a clip of a camera panning left to right and zooming in over a uint8 RGB image,
    encoded with PyAV (H.264 unless `codec`), with a 440 Hz tone as AAC when audio_rate is given
    (Opus for .webm). Used by the tests and bench/bench_video.py: nothing is downloaded."""
    import cv2

    av = _av()
    img = np.asarray(image)
    H, W = img.shape[:2]
    with av.open(path, "w") as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        aus = None
        if audio_rate:
            aus = out.add_stream("libopus" if path.endswith(".webm") else "aac", rate=audio_rate)
        for i in range(frames):
            z = 1.0 + 0.5 * i / max(1, frames - 1)               # zoom in by up to 1.5x
            ch, cw = min(H, int(H / z)), min(W, int(H / z * width / height))
            y0 = (H - ch) // 2
            x0 = int(round((W - cw) * i / max(1, frames - 1)))   # pan left to right
            crop = img[y0:y0 + ch, x0:x0 + cw]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(
                cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)), format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
        if aus is not None:
            n = int(audio_rate * frames / rate)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / audio_rate)).astype(np.float32)
            step = aus.codec_context.frame_size or 1024
            for k in range(0, n, step):
                af = av.AudioFrame.from_ndarray(tone[None, k:k + step], format="flt", layout="mono")
                af.sample_rate, af.pts = audio_rate, k
                out.mux(aus.encode(af))
            out.mux(aus.encode())
    return path
