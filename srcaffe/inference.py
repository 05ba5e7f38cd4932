"""Run a trained FSRCNN / SRCNN caffemodel with pycaffe on whole images, tile by tile.

    model = load_model("fsrcnn", scale=3)            # models/fsrcnn_x3.caffemodel
    model = load_model("run/fsrcnn_x3_iter_1000.caffemodel")   # architecture read from the shapes
    sr_y = model.upscale_y(lr_y)                     # float64, scale times larger
    evaluate(model.upscaler, images, 3, "fsrcnn")    # plugs into srcaffe.evaluation

Borders: the nets use no padding (as in training), so the input is padded before the net runs:
'replicate' (edge pixels repeated, the default: closer to the authors' test code than zeros) or
'zero'. FSRCNN gets p LR pixels (3 at every scale) and its output is cropped so that SR pixel h
is the net's output for HR pixel h (nets.centre_offset); SRCNN gets its bicubic-upscaled input
padded by centre_offset pixels. Tiles overlap by what each output pixel's receptive field needs,
so a tiled result equals the whole-image result.

Every caffemodel is checked against the architecture before Caffe sees it: Caffe aborts the
whole process on a mismatch.
"""
import contextlib
import os
import tempfile

os.environ.setdefault("GLOG_minloglevel", "2")   # before caffe is imported: no glog chatter

import numpy as np

from . import matlab, nets
from .errors import UserError
from .paths import ROOT, net_file, shipped_weights
from .weights import check_scale, check_weights, identify

PADS = ("replicate", "zero")
DEFAULT_TILE = None    # tile side in LR pixels; None: the largest within MEMORY_BUDGET
MEMORY_BUDGET = 256 << 20   # bytes of Caffe blobs and im2col buffers for one tile
DEFAULT_SCALE = 3


# ---- the model ------------------------------------------------------------------------------

@contextlib.contextmanager
def deploy_prototxt(model, scale):
    """Path of the deploy prototxt: the committed one, or (a variant such as fsrcnn-D-S-M) the
    generator's text in a temporary file."""
    path = net_file(model, scale, "deploy")
    if os.path.isfile(path):
        yield path
        return
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt") as f:
        f.write(nets.arch(model, scale).deploy_prototxt())
        f.flush()
        yield f.name


def _is_model_name(text):
    try:
        nets.architecture(text)
        return not text.endswith(".caffemodel")
    except UserError:
        return False


def load_model(name_or_path, scale=None, model=None, pad="replicate", tile=DEFAULT_TILE):
    """A Model from a model name (the toolkit's models/<name>_x<scale>.caffemodel) or a
    .caffemodel path (architecture `model`, or identified from the blob shapes)."""
    scale = DEFAULT_SCALE if scale is None else int(scale)
    nets.check_scale(scale)
    if model is not None:
        nets.architecture(model)
    if _is_model_name(name_or_path):
        if model is not None and model != name_or_path:
            raise UserError("--arch %s contradicts the model name %s" % (model, name_or_path))
        model, path = name_or_path, shipped_weights(name_or_path, scale)
        if not os.path.isfile(path):
            raise UserError("%s: not found; train one with ./run_train.sh %s (see models/README.md) "
                            "or pass --model FILE.caffemodel" % (os.path.relpath(path, ROOT), model))
    else:
        path = os.fspath(name_or_path)
        if not os.path.exists(path) and os.sep not in path and not path.endswith(".caffemodel"):
            raise UserError("%s: no such file, and not a model name (known: %s, fsrcnn-D-S-M)"
                            % (path, ", ".join(nets.MODELS)))
    if model is None:
        model = identify(path, scale)
    else:
        check_weights(path, model, scale)
    notes = []
    check_scale(path, scale, log=notes.append)
    loaded = Model(model, scale, path, pad=pad, tile=tile)
    loaded.notes = notes    # e.g. that the weights record no scale: for the tool to print with its results
    return loaded


class Model:
    """A loaded caffemodel: upscale_y (Y in [0,1] -> float64 SR Y), upscale_rgb (uint8 -> uint8)."""

    def __init__(self, model, scale, weights, pad="replicate", tile=DEFAULT_TILE):
        import caffe

        if pad not in PADS:
            raise UserError("--pad must be one of %s, not %s" % ("/".join(PADS), pad))
        if tile is not None and int(tile) < 1:
            raise UserError("--tile must be at least 1 LR pixel, not %s" % tile)
        self.name, self.scale, self.weights, self.pad = model, scale, weights, pad
        self.notes = []
        self.architecture = arch = nets.arch(model, scale)    # layers, geometry, offsets: derived once
        self.layers = arch.layers
        self.upsampled = arch.upsampled_input
        self.tile = int(tile) if tile is not None else self.auto_tile()
        self.up = int(np.prod([l.stride for l in self.layers if l.kind == "deconv"]))   # output px per input px
        self.offset = arch.centre_offset
        # the least LR size whose unpadded output is not empty
        factor = scale if self.upsampled else 1
        self.min_lr = next(n for n in range(1, 1000) if arch.output_size(n * factor) >= 1)
        # pad p input pixels: output pixel 0 must lie at or before target pixel 0 (c >= 0) and the
        # output must reach the last target pixel (independent of the image size: try one)
        n = 100
        self.pad_px = next(p for p in range(0, 1000) if self.up * p - self.offset >= 0
                           and arch.output_size(n + 2 * p) >= self.up * p - self.offset + n * self.up)
        self.crop = self.up * self.pad_px - self.offset
        with deploy_prototxt(model, scale) as prototxt:
            self.net = caffe.Net(prototxt, weights, caffe.TEST)
        self.input_name, self.output_name = self.net.inputs[0], self.net.outputs[0]

    def __repr__(self):
        return "Model(%s x%d, %s)" % (self.name, self.scale, self.weights)

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

    @property
    def upscaler(self):
        """(lr_y, scale) -> sr_y, for srcaffe.evaluation.evaluate."""
        return self.upscale_y

    def check_size(self, lr_shape, what="image"):
        h, w = lr_shape[:2]
        if min(h, w) < self.min_lr:
            raise UserError("%s: too small for %s x%d: its LR image is %dx%d pixels, the network needs "
                            "at least %dx%d" % (what, self.name, self.scale, w, h, self.min_lr, self.min_lr))

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
        blob = self.net.blobs[self.input_name]
        blob.reshape(1, 1, *x.shape)
        self.net.reshape()
        blob.data[0, 0] = x
        self.net.forward()
        return self.net.blobs[self.output_name].data[0, 0].astype(np.float64)

    def upscale_y(self, lr_y, scale=None):
        """SR Y (float64, scale*H x scale*W, unclipped) of an LR Y image (float in [0,1])."""
        if scale is not None and int(scale) != self.scale:
            raise UserError("%s is a x%d model; it cannot upscale x%s" % (self.weights, self.scale, scale))
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

    def upscale_rgb(self, lr_rgb):
        """uint8 RGB (or grayscale) LR image -> uint8 SR image: Y through the net, Cb/Cr bicubic.
        Processed in bands of LR rows (memory bounded by MEMORY_BUDGET whatever the image size;
        the result equals the whole-image one)."""
        return in_bands(self._upscale_rgb_whole, lr_rgb, self.scale)

    def _upscale_rgb_whole(self, img):
        if img.ndim == 2:
            return matlab.to_uint8(self.upscale_y(matlab.im2double(img)))
        ycbcr = matlab.im2double(matlab.rgb2ycbcr(img))   # uint8 YCbCr as demo_SR.m reads it
        return merge_colour(self.upscale_y(ycbcr[..., 0]), ycbcr, self.scale)


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


# Bands: an LR row band is upscaled with BAND_MARGIN extra rows on each side, more than the
# network's receptive field and the bicubic kernel's support reach, so its inner rows are exactly
# those of the whole image; only the uint8 result is image-sized.
BAND_MARGIN = 16                 # LR rows
BYTES_PER_HR_PIXEL = 200         # float64 working arrays of one band (Y, Cb/Cr, RGB, the net's blobs)
MAX_OUTPUT_BYTES = 2 << 30       # the uint8 result: larger images are refused


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
