"""Importing the released weights into .caffemodel files, and running them through Caffe."""
import os

import numpy as np

from .. import datasets, files, matlab, nets, pycaffe
from ..errors import UserError
from ..upscaling import Upscaler
from .deploy import deploy_path, net_text, output_blob
from .mat import caffe_params, load_mat
from .registry import PADDINGS, caffemodel_path, check_name, is_fsrcnn, mat_relpath


def _make_net(name, scale, padding):
    """A caffe.Net (TEST phase) of the deploy prototxt: the committed file when it is current,
    else the generated text."""
    text = net_text(name, scale, padding)
    path = deploy_path(name, scale, padding)
    if os.path.isfile(path):
        with open(path) as f:
            if f.read() == text:
                return pycaffe.net(path)
    return pycaffe.net(text)


def set_params(net, params):
    """Copy {layer: [arrays]} into a caffe.Net's blobs (shapes must agree)."""
    for layer, blobs in params.items():
        if layer not in net.params or len(net.params[layer]) != len(blobs):
            raise UserError("the net has no layer %s with %d blob(s)" % (layer, len(blobs)))
        for blob, value in zip(net.params[layer], blobs):
            if tuple(blob.data.shape) != tuple(value.shape):
                raise UserError("layer %s: blob %s, weights %s" % (layer, blob.data.shape, value.shape))
            blob.data[...] = value


def check_caffemodel(path, name, scale):
    """UserError unless the .caffemodel holds exactly this model's blob shapes (Caffe would abort).
    The official nets' learnable layers carry the same names as the toolkit's own (srcaffe.nets)."""
    from ..weights import check_weights

    check_weights(path, check_name(name)["arch"], scale)


def import_model(name, scale, out_dir=None, force=False, folder=None):
    """Convert the released .mat to <out_dir>/<name>_x<scale>.caffemodel (net.save); returns the path.
    An existing file is never overwritten without force."""
    dest = caffemodel_path(name, scale, out_dir)
    files.check_new(dest, force)
    net = _make_net(name, scale, "replicate")
    set_params(net, caffe_params(name, scale, load_mat(name, scale, folder)))
    with files.writing(dest, force) as tmp:
        net.save(tmp)
    return dest


class OfficialModel(Upscaler):
    """A released model in a Caffe net (its padding inside the net, as the authors' MATLAB pads
    every layer): the Upscaler interface; upscaler(lr_y, scale) scores as the authors' demos."""

    def __init__(self, name, scale, padding="replicate", weights="auto", authors_shave=True, folder=None):
        entry = check_name(name, scale)
        self.name, self.scale, self.pad = name, int(scale), padding
        self.arch = nets.arch(entry["arch"], self.scale)
        self.fsrcnn = is_fsrcnn(name)
        self.shift = bool(authors_shave) and self.fsrcnn and self.scale == 3
        self.net = _make_net(name, self.scale, padding)
        self.output = output_blob(name)
        shipped = caffemodel_path(name, self.scale)
        if weights == "auto":
            weights = shipped if os.path.isfile(shipped) else "mat"
        if weights == "mat":
            set_params(self.net, caffe_params(name, self.scale, load_mat(name, self.scale, folder)))
            self.weights = mat_relpath(name, self.scale)
        else:
            check_caffemodel(weights, name, self.scale)
            self.net.copy_from(weights)
            self.weights = weights

    def __repr__(self):
        return "OfficialModel(%s x%d, %s padding, weights %s)" % (self.name, self.scale, self.pad, self.weights)

    def forward(self, x):
        """Run the net on one float map (the LR image for FSRCNN, the bicubic one for SRCNN)."""
        return pycaffe.forward(self.net, x, "data", self.output).astype(np.float64)

    def context_px(self):
        """A bound from the layers (each pads its own input, as the authors' MATLAB): every spatial
        conv reaches (k-1)/2 pixels (LR for FSRCNN, HR for SRCNN), a deconvolution of kernel k and
        stride s ceil(((k-1)/2 + 1)/s) LR pixels, plus one for safety; SRCNN's bicubic input 2 LR
        pixels more."""
        radius, reach = 0, 0
        for layer in self.arch.layers:
            if layer.kind == "conv":
                radius += (layer.kernel - 1) // 2
            else:
                reach = -(-((layer.kernel - 1) // 2 + 1) // layer.stride)
        if self.arch.upsampled_input:
            return -(-radius // self.scale) + 2 + 1
        return radius + reach + 1

    def upscale_y(self, lr_y, scale=None):
        """SR Y (float64, scale times the LR size) as the authors' FSRCNN.m / SRCNN.m compute it."""
        self.check_scale(scale)
        lr_y = np.asarray(lr_y, dtype=np.float64)
        if lr_y.ndim != 2:
            raise UserError("expected a 2-D Y channel, got shape %s" % (lr_y.shape,))
        if self.fsrcnn:
            return self.forward(lr_y)
        return self.forward(matlab.imresize(lr_y, self.scale))    # demo_SR.m: im_b, then SRCNN(im_b)

    def upscaler(self, lr_y, scale):
        """srcaffe.evaluation upscaler. For FSRCNN at x3 the output is moved one pixel down-right
        (edge repeated) so that shave(3) compares what demo_FSRCNN.m's shave_x3 compares."""
        sr = self.upscale_y(lr_y, scale)
        return shift_down_right(sr) if self.shift else sr


def shift_down_right(img):
    """out[y, x] = img[y-1, x-1], the first row/column repeated: shave(out, b) == shave_x3(img, b)."""
    return np.pad(img, ((1, 0), (1, 0)), mode="edge")[:-1, :-1]


def load_official(name, scale, padding="replicate", weights="auto", authors_shave=True):
    """An OfficialModel: `name` from MODELS, the released x`scale` weights in a Caffe net.

    weights: 'auto' (models/official/<name>_x<scale>.caffemodel if imported, else the verified
    .mat), 'mat', or a .caffemodel path. padding: 'replicate' (the authors' MATLAB) or 'zero'.
    authors_shave: emulate demo_FSRCNN.m's shave_x3 for FSRCNN x3 (see the module docstring)."""
    if padding not in PADDINGS:
        raise UserError("padding must be one of %s, not %r" % ("/".join(PADDINGS), padding))
    return OfficialModel(name, scale, padding=padding, weights=weights, authors_shave=authors_shave)


def evaluate_official(name, scale, datasets_=datasets.EVAL_SETS, padding="replicate", weights="auto"):
    """{dataset: evaluation.evaluate(...) result} of one official model."""
    from ..evaluation import evaluate

    model = load_official(name, scale, padding=padding, weights=weights)
    label = name if padding == "replicate" else name + " (zero pad)"
    return {d: evaluate(model.upscaler, datasets.list_images(d), scale, label, dataset=d) for d in datasets_}
