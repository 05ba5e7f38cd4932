"""What every model the toolkit runs has in common: the Upscaler interface, and colour images
through it (Y by the network, Cb/Cr bicubic, in bands of rows whatever the image size).

    sr = load_model("fsrcnn", scale=3)     # srcaffe.models: any model spec -> an Upscaler
    sr.upscale_y(lr_y)                     # float Y in [0,1] -> float64 SR Y, scale times larger
    sr.upscale(rgb_uint8)                  # uint8 RGB or gray -> uint8, scale times larger
    evaluate(sr.upscaler, images, 3, sr.name)

The toolkit's own models (srcaffe.inference.Model) and the authors' released ones
(srcaffe.official.OfficialModel) are both Upscalers; predict, evaluate, videos and MMSR use only
this interface.
"""
import numpy as np

from . import matlab
from .errors import UserError

# Bands: an LR row band is upscaled with BAND_MARGIN extra rows on each side, more than the
# network's receptive field and the bicubic kernel's support reach, so its inner rows are exactly
# those of the whole image; only the uint8 result is image-sized.
BAND_MARGIN = 16                 # LR rows
BYTES_PER_HR_PIXEL = 200         # float64 working arrays of one band (Y, Cb/Cr, RGB, the net's blobs)
MAX_OUTPUT_BYTES = 2 << 30       # the uint8 result: larger images are refused
MEMORY_BUDGET = 256 << 20        # bytes of Caffe blobs and im2col buffers for one tile or band


class Upscaler:
    """A model at one scale. Subclasses set name (what outputs are called), arch (the
    srcaffe.nets.Architecture), scale, weights (a path, for messages), and implement
    upscale_y(lr_y) and context_px()."""
    notes = ()          # lines for a tool to print beside its results (e.g. the weights record no scale)
    min_lr = 1          # the least LR side the network gives an output for

    def __repr__(self):
        return "%s(%s x%d, %s)" % (type(self).__name__, self.name, self.scale, self.weights)

    def upscale_y(self, lr_y):
        raise NotImplementedError

    def context_px(self):
        """LR pixels of surroundings an LR block needs for its SR block to equal the whole-image run."""
        raise NotImplementedError

    def upscaler(self, lr_y, scale):
        """(lr_y, scale) -> sr_y, for srcaffe.evaluation.evaluate."""
        self.check_scale(scale)
        return self.upscale_y(lr_y)

    def check_scale(self, scale):
        if scale is not None and int(scale) != self.scale:
            raise UserError("%s is a x%d model; it cannot upscale x%s" % (self.name, self.scale, scale))

    def check_size(self, lr_shape, what="image"):
        h, w = lr_shape[:2]
        if min(h, w) < self.min_lr:
            raise UserError("%s: too small for %s x%d: its LR image is %dx%d pixels, the network needs "
                            "at least %dx%d" % (what, self.arch.name, self.scale, w, h, self.min_lr, self.min_lr))

    def upscale(self, lr, what="image"):
        """uint8 RGB (or grayscale) LR image -> uint8 SR image: Y through the net, Cb/Cr bicubic
        (as the authors' demos). In bands of LR rows: memory bounded whatever the image size, the
        result equal to the whole-image one."""
        img = as_image(lr, what)
        self.check_size(img.shape, what)
        return in_bands(self._upscale_whole, img, self.scale)

    def _upscale_whole(self, img):
        if img.ndim == 2:
            return matlab.to_uint8(self.upscale_y(matlab.im2double(img)))
        ycbcr = matlab.im2double(matlab.rgb2ycbcr(img))   # uint8 YCbCr as demo_SR.m reads it
        return merge_colour(self.upscale_y(ycbcr[..., 0]), ycbcr, self.scale)

    def frame_upscaler(self, height, width, memory=None):
        """uint8 LR Y -> uint8 SR Y for every frame of a video of this size (a model may shape its
        net once for the size, within `memory` bytes; here simply upscale_y)."""
        return lambda y: matlab.to_uint8(self.upscale_y(matlab.im2double(y)))


def as_image(img, what="image"):
    """An HxW or HxWx3 uint8 array (HxWx1 squeezed), or a one-line UserError."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise UserError("%s: expected a uint8 HxW or HxWx3 image, got %s %s (for float Y in [0,1] use "
                        "upscale_y)" % (what, img.dtype, img.shape))
    return img


def merge_colour(sr_y, lr_ycbcr, scale):
    """uint8 RGB from an SR Y channel and the bicubic-upscaled Cb/Cr of the LR YCbCr (float)."""
    cbcr = matlab.imresize(np.asarray(lr_ycbcr)[..., 1:], scale)
    return matlab.to_uint8(matlab.ycbcr2rgb(np.dstack([sr_y, cbcr])))


def bicubic_rgb(lr_rgb, scale):
    """uint8 image upscaled by MATLAB's bicubic (Y and Cb/Cr, as the papers' bicubic images), in bands."""
    def whole(img):
        if img.ndim == 2:
            return matlab.to_uint8(matlab.imresize(matlab.im2double(img), scale))
        ycbcr = matlab.im2double(matlab.rgb2ycbcr(img))
        return merge_colour(matlab.imresize(ycbcr[..., 0], scale), ycbcr, scale)
    return in_bands(whole, lr_rgb, scale, what="bicubic")


def check_output_size(shape, scale, what="image"):
    h, w = shape[:2]
    channels = 3 if len(shape) == 3 else 1
    need = h * scale * w * scale * channels
    if need > MAX_OUTPUT_BYTES:
        raise UserError("%s: %dx%d upscaled x%d is %.1f GB of output, more than the %.1f GB this tool holds; "
                        "crop or downscale it first" % (what, w, h, scale, need / 1e9, MAX_OUTPUT_BYTES / 1e9))


def band_rows(width, scale, budget=MEMORY_BUDGET):
    return max(8, int(budget / (BYTES_PER_HR_PIXEL * width * scale * scale)))


def in_bands(upscale, img, scale, rows=None, what="upscaling"):
    """upscale(LR rows) -> their SR rows, applied band by band; returns the whole uint8 result
    (with a progress line on stderr when it runs long: srcaffe.progress)."""
    from .progress import Rows

    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    check_output_size(img.shape, scale)
    h = img.shape[0]
    rows = rows or band_rows(img.shape[1], scale)
    if h <= rows + 2 * BAND_MARGIN:
        return upscale(img)
    out, progress = None, Rows(what, h)
    for a in range(0, h, rows):
        b = min(a + rows, h)
        a0, b0 = max(0, a - BAND_MARGIN), min(h, b + BAND_MARGIN)
        sr = upscale(img[a0:b0])
        if out is None:
            out = np.empty((h * scale,) + sr.shape[1:], dtype=sr.dtype)
        out[a * scale:b * scale] = sr[(a - a0) * scale:(b - a0) * scale]
        progress(b)
    progress.close()
    return out
