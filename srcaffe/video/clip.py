"""Made videos, for the tests and bench/bench_video.py: nothing is downloaded."""
import numpy as np

from .reading import load_av


def pan_zoom_clip(path, image, width, height, frames, rate=24, audio_rate=None, codec="libx264",
                  pix_fmt="yuv420p"):
    """Write a clip of a camera panning left to right and zooming in over a uint8 RGB image,
    encoded with PyAV (H.264 unless `codec`), with a 440 Hz tone as AAC when audio_rate is given
    (Opus for .webm). Used by the tests and bench/bench_video.py: nothing is downloaded."""
    import cv2

    av = load_av()
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
