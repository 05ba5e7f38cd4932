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
import functools
import os
import re
import tempfile

os.environ.setdefault("GLOG_minloglevel", "2")   # before caffe is imported: no glog chatter

import numpy as np

from . import ROOT, matlab, nets
from .errors import UserError

PADS = ("replicate", "zero")
DEFAULT_TILE = None    # tile side in LR pixels; None: the largest within MEMORY_BUDGET
MEMORY_BUDGET = 256 << 20   # bytes of Caffe blobs and im2col buffers for one tile
DEFAULT_SCALE = 3


# ---- checking weights -----------------------------------------------------------------------

def _fmt(shapes):
    return "[%s]" % ", ".join("x".join(map(str, s)) or "scalar" for s in shapes)


@functools.lru_cache(maxsize=None)
def expected_blobs(model, scale):
    """{layer name: [blob shapes]} of a model's learnable layers, from its deploy prototxt."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    from .training import param_shapes

    net = text_format.Parse(nets.deploy_net(model, scale), caffe_pb2.NetParameter())
    shapes, out = list(param_shapes(model, scale)), {}
    for layer in net.layer:
        n = {"Convolution": 2, "Deconvolution": 2, "PReLU": 1}.get(layer.type, 0)
        if n:
            out[layer.name], shapes = shapes[:n], shapes[n:]
    return out


def read_blobs(path):
    """{layer name: [(shape, blob)]} of a .caffemodel (parsed by protobuf, not by Caffe)."""
    from caffe.proto import caffe_pb2

    if not os.path.isfile(path):
        raise UserError("%s: not found" % path)
    if path.endswith(".solverstate"):
        raise UserError("%s is a .solverstate (training state): give its .caffemodel" % path)
    net = caffe_pb2.NetParameter()
    try:
        with open(path, "rb") as f:
            net.ParseFromString(f.read())
    except Exception:
        raise UserError("%s: not a Caffe .caffemodel (it does not parse)" % path) from None
    out = {}
    for layer in list(net.layer) + list(net.layers):   # net.layers: old (V1) caffemodels
        if layer.blobs:
            out[layer.name] = [(_blob_shape(b), b) for b in layer.blobs]
    if not out:
        raise UserError("%s: not a Caffe .caffemodel (no layer holds weights)" % path)
    for name, blobs in out.items():   # Caffe aborts on a blob whose data does not fill its shape
        for shape, b in blobs:
            if max(len(b.data), len(b.double_data)) != int(np.prod(_plain(shape))):
                raise UserError("%s: layer %s holds a truncated blob (corrupt .caffemodel)" % (path, name))
    return out


def _blob_shape(blob):
    """As Caffe reads it: legacy num/channels/height/width, else shape (absent for a 0-axis blob)."""
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        return ("4d", blob.num, blob.channels, blob.height, blob.width)
    return tuple(blob.shape.dim)


def blob_shape(blob):
    """The shape of a BlobProto as a plain tuple (() for a scalar such as a shared PReLU slope)."""
    return _plain(_blob_shape(blob))


def _same_shape(found, wanted):
    if found[:1] == ("4d",):   # Caffe compares legacy blobs with the shape padded to 4 axes by 1s
        return found[1:] == (1,) * (4 - len(wanted)) + tuple(wanted)
    return found == tuple(wanted)


def shapes_of(found):
    """{layer: [shape]} of read_blobs() output, legacy 4-D shapes as Caffe would read them."""
    return {name: [s for s, _ in blobs] for name, blobs in found.items()}


def _plain(shape):
    return shape[1:] if shape[:1] == ("4d",) else shape


def _difference(found, expected, model):
    """None when the learnable layers {name: [shape]} are exactly the model's, else what differs."""
    for name, shapes in expected.items():
        if name not in found:
            return "it has no layer %s" % name
        got = found[name]
        if len(got) != len(shapes) or not all(map(_same_shape, got, shapes)):
            return "layer %s holds %s, %s expects %s" % (name, _fmt(map(_plain, got)), model, _fmt(shapes))
    extra = sorted(set(found) - set(expected))
    return "it has extra layers %s" % ", ".join(extra) if extra else None


def _candidates(found):
    """Known model names, plus fsrcnn-D-S-M read off the shapes of an FSRCNN-like net."""
    names = list(nets.MODELS)
    try:
        d, s = found["conv1"][0][-4], found["conv2"][0][-4]
        m = sum(bool(re.fullmatch(r"conv2\d+", n)) for n in found) - 1
        if m >= 0:
            names.append("fsrcnn-%d-%d-%d" % (d, s, m))
    except (KeyError, IndexError, TypeError):
        pass
    return names


def identify(path_or_shapes, scale=DEFAULT_SCALE, what=None):
    """The architecture whose learnable layers a caffemodel (or a {layer: [shape]}) holds."""
    found = path_or_shapes
    if not isinstance(found, dict):
        what, found = what or path_or_shapes, shapes_of(read_blobs(path_or_shapes))
    for name in _candidates(found):
        if _difference(found, expected_blobs(name, scale), name) is None:
            return name
    layers = ", ".join("%s %s" % (n, _fmt(map(_plain, s))) for n, s in found.items())
    raise UserError("%s: matches none of the known networks (%s); its layers: %s"
                    % (what, ", ".join(nets.MODELS), layers))


def check_weights(path_or_shapes, model, scale, what=None):
    """UserError naming the file unless it holds exactly `model`'s weights."""
    found = path_or_shapes
    if not isinstance(found, dict):
        what, found = what or path_or_shapes, shapes_of(read_blobs(path_or_shapes))
    diff = _difference(found, expected_blobs(model, scale), model)
    if diff:
        try:
            hint = "; it looks like %s (use --arch %s)" % ((identify(found, scale, what),) * 2)
        except UserError:
            hint = ""
        raise UserError("%s: does not hold %s weights: %s%s" % (what, model, diff, hint))


# ---- the model ------------------------------------------------------------------------------

def models_dir():
    """Where the toolkit's trained models are shipped ($SRCAFFE_MODELS overrides models/)."""
    return os.environ.get("SRCAFFE_MODELS") or os.path.join(ROOT, "models")


def shipped_weights(model, scale):
    return os.path.join(models_dir(), "%s_x%d.caffemodel" % (model, scale))


@contextlib.contextmanager
def deploy_prototxt(model, scale):
    """Path of the deploy prototxt: the committed one, or (a variant such as fsrcnn-D-S-M) the
    generator's text in a temporary file."""
    path = os.path.join(ROOT, "prototxt", "%s_x%d_deploy.prototxt" % (model, scale))
    if os.path.isfile(path):
        yield path
        return
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt") as f:
        f.write(nets.deploy_net(model, scale))
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
    return Model(model, scale, path, pad=pad, tile=tile)


class Model:
    """A loaded caffemodel: upscale_y (Y in [0,1] -> float64 SR Y), upscale_rgb (uint8 -> uint8)."""

    def __init__(self, model, scale, weights, pad="replicate", tile=DEFAULT_TILE):
        import caffe

        if pad not in PADS:
            raise UserError("--pad must be one of %s, not %s" % ("/".join(PADS), pad))
        if tile is not None and int(tile) < 1:
            raise UserError("--tile must be at least 1 LR pixel, not %s" % tile)
        self.name, self.scale, self.weights, self.pad = model, scale, weights, pad
        self.layers = nets.layers(model, scale)
        self.upsampled = nets.geometry(model, scale).upsampled_input
        self.tile = int(tile) if tile is not None else self.auto_tile()
        self.up = int(np.prod([l.stride for l in self.layers if l.kind == "deconv"]))   # output px per input px
        self.offset = nets.centre_offset(model, scale)
        # the least LR size whose unpadded output is not empty
        factor = scale if self.upsampled else 1
        self.min_lr = next(n for n in range(1, 1000) if nets.output_size(model, scale, n * factor) >= 1)
        # pad p input pixels: output pixel 0 must lie at or before target pixel 0 (c >= 0) and the
        # output must reach the last target pixel (independent of the image size: try one)
        n = 100
        self.pad_px = next(p for p in range(0, 1000) if self.up * p - self.offset >= 0
                           and nets.output_size(model, scale, n + 2 * p) >= self.up * p - self.offset + n * self.up)
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
        """uint8 RGB (or grayscale) LR image -> uint8 SR image: Y through the net, Cb/Cr bicubic."""
        img = np.asarray(lr_rgb)
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]
        if img.ndim == 2:
            return matlab.to_uint8(self.upscale_y(matlab.im2double(img)))
        ycbcr = matlab.im2double(matlab.rgb2ycbcr(img))   # uint8 YCbCr as demo_SR.m reads it
        return merge_colour(self.upscale_y(ycbcr[..., 0]), ycbcr, self.scale)


def merge_colour(sr_y, lr_ycbcr, scale):
    """uint8 RGB from an SR Y channel and the bicubic-upscaled Cb/Cr of the LR YCbCr (float)."""
    cbcr = matlab.imresize(np.asarray(lr_ycbcr)[..., 1:], scale)
    return matlab.to_uint8(matlab.ycbcr2rgb(np.dstack([sr_y, cbcr])))
