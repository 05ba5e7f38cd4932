"""The toolkit's own FSRCNN / SRCNN caffemodels in pycaffe, on whole images, tile by tile.

    model = srcaffe.load_model("fsrcnn", scale=3)   # models/fsrcnn_x3.caffemodel (srcaffe.models)
    sr_y = model.upscale_y(lr_y)                     # float64, scale times larger

Borders: the nets use no padding (as in training), so the input is padded before the net runs:
'replicate' (edge pixels repeated, the default: closer to the authors' test code than zeros) or
'zero'. FSRCNN gets p LR pixels (3 at every scale) and its output is cropped so that SR pixel h
is the net's output for HR pixel h (nets.centre_offset); SRCNN gets its bicubic-upscaled input
padded by centre_offset pixels. Tiles overlap by what each output pixel's receptive field needs,
so a tiled result equals the whole-image result.

Every caffemodel is checked against the architecture before Caffe sees it (srcaffe.models):
Caffe aborts the whole process on a mismatch.
"""
import os

import numpy as np

from . import matlab, pycaffe
from .errors import UserError
from .paths import net_file
from .outputs import PADS
from .upscaling import MEMORY_BUDGET, Upscaler
DEFAULT_TILE = None    # tile side in LR pixels; None: the largest within MEMORY_BUDGET


def deploy_prototxt(arch):
    """The deploy prototxt of an Architecture: the committed file, or (a variant such as
    fsrcnn-D-S-M) the generator's text."""
    path = net_file(arch.name, arch.scale, "deploy")
    return path if os.path.isfile(path) else arch.deploy_prototxt()


class Model(Upscaler):
    """A caffemodel of the toolkit's architectures (an srcaffe.nets.Architecture, derived once and
    passed in): upscale_y (Y in [0,1] -> float64 SR Y) and the rest of the Upscaler interface."""

    def __init__(self, arch, weights, pad="replicate", tile=DEFAULT_TILE, name=None, notes=()):
        if pad not in PADS:
            raise UserError("--pad must be one of %s, not %s" % ("/".join(PADS), pad))
        if tile is not None and int(tile) < 1:
            raise UserError("--tile must be at least 1 LR pixel, not %s" % tile)
        self.arch, self.scale, self.weights, self.pad = arch, arch.scale, weights, pad
        self.name = name or arch.name       # what outputs are called
        self.notes = list(notes)
        self.layers = arch.layers
        self.upsampled = arch.upsampled_input
        self.tile_given = tile is not None
        self.tile = int(tile) if tile is not None else self.auto_tile()
        self.up = int(np.prod([l.stride for l in self.layers if l.kind == "deconv"]))   # output px per input px
        self.offset = arch.centre_offset
        # the least LR size whose unpadded output is not empty
        factor = self.scale if self.upsampled else 1
        self.min_lr = next(n for n in range(1, 1000) if arch.output_size(n * factor) >= 1)
        # pad p input pixels: output pixel 0 must lie at or before target pixel 0 (c >= 0) and the
        # output must reach the last target pixel (independent of the image size: try one)
        n = 100
        self.pad_px = next(p for p in range(0, 1000) if self.up * p - self.offset >= 0
                           and arch.output_size(n + 2 * p) >= self.up * p - self.offset + n * self.up)
        self.crop = self.up * self.pad_px - self.offset
        self.net = pycaffe.net(deploy_prototxt(arch), weights)
        self.input_name, self.output_name = self.net.inputs[0], self.net.outputs[0]

    def auto_tile(self, budget=MEMORY_BUDGET):
        """Largest tile side (LR pixels, at most 1024) whose Caffe memory stays within budget:
        every blob, plus the im2col buffer each conv layer keeps (none for 1x1 kernels) and the
        col buffer of the deconvolution. SRCNN's 5x5 layers on 64/32 channels are the big ones."""
        px = self.scale ** 2 if self.upsampled else 1     # net input pixels per LR pixel
        floats, n_in = px, 1
        for layer in self.layers:
            k2 = layer.kernel ** 2
            if layer.kind == "conv":
                floats += px * (layer.num_output + (n_in * k2 if k2 > 1 else 0))
            else:
                floats += px * layer.num_output * k2
                px *= layer.stride ** 2
                floats += px * layer.num_output
            n_in = layer.num_output
        return int(min(1024, max(16, (budget / (4.0 * floats)) ** 0.5)))

    def _span(self, lo, hi):
        """Input pixels [lo, hi] that output pixels lo..hi depend on (same frame as a full run)."""
        for layer in reversed(self.layers):
            if layer.kind == "conv":
                lo, hi = lo * layer.stride - layer.pad, hi * layer.stride - layer.pad + layer.kernel - 1
            else:   # deconv output o takes input i when 0 <= o + pad - stride*i <= kernel - 1
                lo = -(-(lo + layer.pad - layer.kernel + 1) // layer.stride)
                hi = (hi + layer.pad) // layer.stride
        return lo, hi

    def _axis(self, t0, t1, n_in):
        """(input window, part of its output) for target pixels [t0, t1) of a padded input of n_in
        pixels, along one axis. A window that stops short of the padded input's edge holds the
        whole receptive field of every output it must give; one that reaches the edge sees it
        as the full run does."""
        lo, hi = self._span(t0 + self.crop, t1 - 1 + self.crop)
        a, b = max(0, lo), min(n_in, hi + 1)
        first = t0 + self.crop - self.up * a
        return slice(a, b), slice(first, first + t1 - t0)

    def _forward(self, x):
        return pycaffe.forward(self.net, x, self.input_name, self.output_name).astype(np.float64)

    def upscale_y(self, lr_y, scale=None):
        """SR Y (float64, scale*H x scale*W, unclipped) of an LR Y image (float in [0,1])."""
        self.check_scale(scale)
        lr = np.asarray(lr_y, dtype=np.float64)
        if lr.ndim != 2:
            raise UserError("upscale_y expects an HxW Y image, got shape %s" % (lr.shape,))
        self.check_size(lr.shape)
        x = matlab.imresize(lr, self.scale) if self.upsampled else lr   # SRCNN: demo_SR.m's im_b
        target = (x.shape[0] * self.up, x.shape[1] * self.up)
        x = np.pad(x, self.pad_px, mode="edge" if self.pad == "replicate" else "constant")
        sr = np.empty(target)
        step = self.tile * self.scale
        for t0 in range(0, target[0], step):
            t1 = min(t0 + step, target[0])
            rows_in, rows_out = self._axis(t0, t1, x.shape[0])
            for u0 in range(0, target[1], step):
                u1 = min(u0 + step, target[1])
                cols_in, cols_out = self._axis(u0, u1, x.shape[1])
                sr[t0:t1, u0:u1] = self._forward(x[rows_in, cols_in])[rows_out, cols_out]
        return sr

    def context_px(self):
        """Exact: the input span the tiling derives from the layers, for an LR block's SR block,
        back in LR pixels (SRCNN, whose input is the bicubic-upscaled image: 2 more LR pixels for
        the 4-tap bicubic kernel)."""
        a, b, s = 100, 110, self.scale           # any block: the span is translation invariant
        lo, hi = self._span(s * a + self.crop, s * b - 1 + self.crop)
        if self.upsampled:                       # rows [a, b) of LR = rows [s*a, s*b) of the HR input
            lo, hi = (lo - self.pad_px) // s - 2, -(-(hi - self.pad_px) // s) + 2
        else:
            lo, hi = lo - self.pad_px, hi - self.pad_px
        return max(0, a - lo, hi - (b - 1))

    def frame_upscaler(self, height, width, memory=None):
        """A FrameNet; without a tile size given, frames fit in one tile up to `memory` bytes."""
        if memory and not self.tile_given:
            self.tile = max(self.tile, self.auto_tile(memory))
        return FrameNet(self, height, width)


class FrameNet:
    """uint8 LR Y -> uint8 SR Y, equal to to_uint8(model.upscale_y(im2double(y))), without its
    per-call work: the whole frame is one tile, the net is shaped once for the video's frame size
    and reused for every frame, and Caffe's float32 output goes to uint8 in one pass. Falls back
    to upscale_y when the frame needs tiles (--tile, or too big for the tile budget) or when the
    net takes a bicubic-upscaled input (SRCNN)."""

    def __init__(self, model, height, width):
        self.model = model
        p = model.pad_px
        self.shape = (height + 2 * p, width + 2 * p)
        target = (height * model.up, width * model.up)
        rows, self.rows = model._axis(0, target[0], self.shape[0])
        cols, self.cols = model._axis(0, target[1], self.shape[1])
        self.whole = (not model.upsampled and model.tile * model.scale >= max(target)
                      and rows == slice(0, self.shape[0]) and cols == slice(0, self.shape[1]))

    def __call__(self, y):
        m = self.model
        if not self.whole:
            return matlab.to_uint8(m.upscale_y(matlab.im2double(y)))
        # the same float32 input upscale_y gives Caffe: im2double, padded, cast
        x = np.pad(matlab.im2double(y), m.pad_px, mode="edge" if m.pad == "replicate" else "constant")
        return sr_to_uint8(pycaffe.forward(m.net, x, m.input_name, m.output_name)[self.rows, self.cols])


def sr_to_uint8(out):
    """matlab.to_uint8 of float32 network output, in fewer passes over a full-HD frame: v = x*255
    in float64 (exact for a float32 x), then floor(v + 0.5) saturated to 0..255, which is MATLAB's
    round-half-away for v >= 0 and 0 for v < 0 either way (tests/test_video.py checks equality)."""
    v = np.multiply(out, 255.0, dtype=np.float64)
    v += 0.5
    np.clip(v, 0.0, 255.0, out=v)
    return v.astype(np.uint8)
