"""One frame of --mode upscale on its decoded Y'CbCr planes: Y through the model's
frame_upscaler (Upscaler.frame_upscaler: Model.upscale_y's numbers, one net shape for the whole
video), Cb/Cr by OpenCV's bicubic, a documented fast path for chroma, which no score looks at."""
import numpy as np

from .. import matlab

VIDEO_MEMORY = 1 << 30         # bytes of Caffe memory a frame may take before it is tiled


class ChromaUpscaler:
    """Cb/Cr planes of an LR 4:2:0 frame -> those of the SR frame (cv2.resize INTER_CUBIC, not
    MATLAB's bicubic: see the module docstring)."""

    def __init__(self, scale, width, height):
        self.size = ((width * scale + 1) // 2, (height * scale + 1) // 2)

    def __call__(self, plane):
        import cv2
        return cv2.resize(plane, self.size, interpolation=cv2.INTER_CUBIC)


def frame_net(model, height, width):
    """The model's uint8 LR Y -> uint8 SR Y for every frame of this size."""
    return model.frame_upscaler(height, width, VIDEO_MEMORY)


def upscale_frame(net, planes, chroma):
    """SR (Y, Cb, Cr) uint8 planes of a decoded frame's planes: Y by the network (frame_net)."""
    y, cb, cr = planes
    return net(y), chroma(cb), chroma(cr)


def bicubic_frame(scale, planes, chroma):
    """The same frame, MATLAB-bicubic Y (the papers' baseline), for --compare."""
    return matlab.to_uint8(matlab.imresize(matlab.im2double(planes[0]), scale)), chroma(planes[1]), chroma(planes[2])


def side_by_side(*frames):
    """Planes of frames put next to each other (left to right)."""
    return [np.hstack([f[i] for f in frames]) for i in range(3)]


def even(planes):
    """Planes cropped to an even frame size (4:2:0 H.264 needs one)."""
    y = planes[0][: planes[0].shape[0] // 2 * 2, : planes[0].shape[1] // 2 * 2]
    return [y] + [c[: y.shape[0] // 2, : y.shape[1] // 2] for c in planes[1:]]
