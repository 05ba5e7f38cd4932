"""Writing a video with PyAV: H.264 into a temporary file beside the output, renamed when done,
kept as NAME.partial.EXT when interrupted, removed on an error; the output's frame times and
its remuxed audio."""
import fractions
import os
import tempfile

import numpy as np

from .. import files
from ..errors import UserError
from ..outputs import CRF, PRESET
from .reading import BT601, MPEG_RANGE, load_av, why, yuv_planes

TIME_BASE = fractions.Fraction(1, 90000)   # of the output's frame times (MPEG's 90 kHz clock)


class Sink:
    """An H.264 output video written to a temporary name beside `path`; finish() renames it,
    abort() finalises it as NAME.partial.EXT (interrupted) or removes it (error)."""

    def __init__(self, path, rate, width, height, audio=None, overwrite=False, preset=None, colour=BT601,
                 colour_range=MPEG_RANGE):
        av = load_av()
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
            raise UserError("%s: cannot write the video (%s)" % (path, why(exc))) from None
        self.rate, self.frames, self.last_pts = fractions.Fraction(rate), 0, -1

    def write_yuv(self, y, cb, cr, time_s=None):
        """One frame from uint8 planes (cropped to the even size 4:2:0 needs); pts from its time."""
        av = load_av()
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
        av = load_av()
        try:
            return self.stream.encode(frame)
        except (av.FFmpegError, ValueError) as exc:
            raise UserError("%s: cannot encode the video (%s)" % (self.path, why(exc))) from None

    def _mux(self, packets):
        av = load_av()
        try:
            self.container.mux(packets)
        except (av.FFmpegError, OSError) as exc:
            raise UserError("%s: cannot write the video (%s)" % (self.path, why(exc))) from None

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


def open_sinks(source, out, width, height, force, preset, colour, colour_range=MPEG_RANGE):
    """{kind: Sink}: the SR video and, with --compare, the side-by-side one (twice as wide), at
    the source's rate, with its audio track; none left open when one cannot be."""
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


def write_audio(sinks, packet):
    """The same audio packet into every output (a muxed packet is consumed: copies)."""
    sinks = list(sinks.values())
    for sink in sinks[1:]:
        sink.write_audio(_copy(packet))
    sinks[0].write_audio(packet)


def _copy(packet):
    av = load_av()
    p = av.Packet(bytes(packet))
    p.pts, p.dts, p.time_base = packet.pts, packet.dts, packet.time_base
    p.duration, p.is_keyframe = packet.duration, packet.is_keyframe
    return p


class OutputTime:
    """A source frame's time -> seconds since the first written frame (the output starts at 0,
    like its shifted audio); None stays None (the sink then counts frames at its rate)."""

    def __init__(self):
        self.first = None

    def __call__(self, t):
        if t is None:
            return None
        if self.first is None:
            self.first = t
        return t - self.first


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
    av = load_av()
    rgb = np.ascontiguousarray(rgb[: rgb.shape[0] - rgb.shape[0] % 2, : rgb.shape[1] - rgb.shape[1] % 2])
    return yuv_planes(av.VideoFrame.from_ndarray(rgb, format="rgb24"))
