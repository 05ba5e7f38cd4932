"""Reading a video with PyAV: the opened container, its frames and audio packets in file order
(timestamps shifted to the first kept frame), and a decoded frame's Y'CbCr planes."""
import fractions
import os

import numpy as np

from ..errors import UserError

# FFmpeg's AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic codes: (matrix, primaries, transfer)
BT709, BT601, UNSPECIFIED, MPEG_RANGE, JPEG_RANGE = (1, 1, 1), (6, 6, 6), 2, 1, 2


def load_av():
    """The av module, or a one-line UserError saying how to install it."""
    try:
        import av
    except ImportError:
        raise UserError("video needs PyAV: pip install -r requirements.txt (package av)") from None
    return av


def why(exc):
    """FFmpeg's reason for an error, without the file name PyAV appends."""
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0].strip() or type(exc).__name__


class Source:
    """An opened input video: its video stream, its first audio stream if any, rate, size."""

    def __init__(self, path):
        av = load_av()
        if not os.path.isfile(path):
            raise UserError("%s: not a readable video (no such file)" % path)
        try:
            self.container = av.open(path)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise UserError("%s: not a readable video (%s)" % (path, why(exc))) from None
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

    def expected(self, first, stop):
        """Frames first..stop-1 will give, for a progress bar (None if unknown)."""
        known = self.frames or None
        end = min(stop, known) if (stop and known) else (stop or known)
        return max(0, end - first) if end else None

    def items(self, first=0, stop=None, stopping=None):
        """('video', index, frame) and ('audio', packet) in file order, frames first..stop-1;
        audio within the same time span, its timestamps shifted with the video's."""
        av = load_av()
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
                        yield "audio", _shift(packet, t0)
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
                                yield "audio", _shift(p, t0)
                        held = []
                    last = frame.time
                    yield "video", index, frame
        except av.FFmpegError as exc:
            what = "frame %d" % (index + 1) if index >= 0 else "its start"
            raise UserError("%s: cannot decode the video at %s (%s): truncated or corrupt?"
                            % (self.path, what, why(exc))) from None
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


def _shift(packet, t0):
    """An audio packet's timestamps moved by t0 seconds (the first kept frame's time)."""
    off = int(round(t0 / packet.time_base))
    packet.pts -= off
    if packet.dts is not None:
        packet.dts -= off
    return packet


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
