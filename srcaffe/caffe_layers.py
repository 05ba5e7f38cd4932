"""pycaffe Python layers for the authors' border handling (used by the official-model deploy nets).

The authors' MATLAB test code (FSRCNN.m, SRCNN.m) filters with imfilter(..., 'same', 'replicate')
and their deconv.m replicate-pads its input by one pixel: the image is extended by repeating its
edge pixels, not by zeros as Caffe's own `pad` does. These layers give Caffe the same semantics:

    layer { type: "Python" python_param { module: "srcaffe.caffe_layers" layer: "ReplicatePad"
                                          param_str: "2" } }           # 2 pixels on every side
    layer { type: "Python" python_param { module: "srcaffe.caffe_layers" layer: "Crop2D"
                                          param_str: "{\"begin\": 7, \"end\": 5}" } }

param_str of ReplicatePad: an integer p (the same on every side), or JSON
{"pad": p} / {"pad": [top, bottom, left, right]}. Crop2D: JSON {"begin": b, "end": e} (ints or
[rows, cols] pairs): drops b pixels at the top/left and e at the bottom/right of every map.

Both work on N x C x H x W blobs and have a backward pass, so they can also sit in a training net:
ReplicatePad's gradient adds the gradients of every replicated border pixel onto the edge pixel
it copies (the adjoint of np.pad(mode='edge')); Crop2D scatters its gradient into zeros.
Caffe needs `srcaffe` importable to load them (the venv's .pth puts the repository on sys.path).
"""
import json

import numpy as np

try:
    import caffe
    _Base = caffe.Layer
except ImportError as _exc:   # the NumPy helpers stay usable without Caffe; the layers say why not
    _CAFFE_ERROR = "pycaffe is not importable here (%s): check PYTHONPATH (numpy, caffe, srcaffe)" % _exc

    class _Base(object):
        def __init__(self, *args, **kwargs):
            raise ImportError(_CAFFE_ERROR)


def _four(value, what):
    """(top, bottom, left, right) from an int, a [rows, cols] pair or a 4-list of ints >= 0."""
    if isinstance(value, (int, np.integer)):
        out = [int(value)] * 4
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        out = [int(value[0]), int(value[0]), int(value[1]), int(value[1])]
    elif isinstance(value, (list, tuple)) and len(value) == 4:
        out = [int(v) for v in value]
    else:
        raise ValueError("%s: expected an int, [rows, cols] or [top, bottom, left, right], got %r"
                         % (what, value))
    if min(out) < 0:
        raise ValueError("%s: pads must be >= 0, got %r" % (what, value))
    return tuple(out)


def parse_pad(param_str):
    """ReplicatePad's param_str -> (top, bottom, left, right)."""
    text = (param_str or "").strip()
    if not text:
        raise ValueError("ReplicatePad: param_str must give the pad (e.g. '2' or '{\"pad\": 2}')")
    value = json.loads(text)
    if isinstance(value, dict):
        if "pad" not in value:
            raise ValueError("ReplicatePad: param_str %r has no 'pad'" % text)
        value = value["pad"]
    return _four(value, "ReplicatePad pad")


def parse_crop(param_str):
    """Crop2D's param_str -> ((top, left), (bottom, right))."""
    value = json.loads((param_str or "").strip() or "{}")
    if not isinstance(value, dict) or "begin" not in value:
        raise ValueError("Crop2D: param_str must be JSON {\"begin\": b, \"end\": e}, got %r" % param_str)
    t, _, l, _ = _four(value["begin"], "Crop2D begin")
    b, _, r, _ = _four(value.get("end", 0), "Crop2D end")
    return (t, l), (b, r)


def replicate_pad(x, pad):
    """NumPy reference: edge-replicate the last two axes of x by pad = (top, bottom, left, right)."""
    t, b, l, r = pad
    widths = [(0, 0)] * (x.ndim - 2) + [(t, b), (l, r)]
    return np.pad(x, widths, mode="edge")


def replicate_pad_backward(dy, pad):
    """Adjoint of replicate_pad: the interior of dy, with every border row/column summed onto the
    edge row/column it replicates (corners go to the corner pixel)."""
    t, b, l, r = pad
    h, w = dy.shape[-2] - t - b, dy.shape[-1] - l - r
    # rows: fold the top t rows into row t, the bottom b rows into row t+h-1
    rows = dy[..., t:t + h, :].copy()
    if t:
        rows[..., 0, :] += dy[..., :t, :].sum(axis=-2)
    if b:
        rows[..., h - 1, :] += dy[..., t + h:, :].sum(axis=-2)
    dx = rows[..., :, l:l + w].copy()
    if l:
        dx[..., :, 0] += rows[..., :, :l].sum(axis=-1)
    if r:
        dx[..., :, w - 1] += rows[..., :, l + w:].sum(axis=-1)
    return dx


class ReplicatePad(_Base):
    """Pads every map by repeating its edge pixels (MATLAB padarray/imfilter 'replicate')."""

    def setup(self, bottom, top):
        if len(bottom) != 1 or len(top) != 1:
            raise Exception("ReplicatePad takes one bottom and gives one top")
        self.pad = parse_pad(self.param_str)

    def reshape(self, bottom, top):
        shape = list(bottom[0].data.shape)
        if len(shape) < 2:
            raise Exception("ReplicatePad needs a blob with at least 2 axes, got %s" % shape)
        t, b, l, r = self.pad
        top[0].reshape(*(shape[:-2] + [shape[-2] + t + b, shape[-1] + l + r]))

    def forward(self, bottom, top):
        top[0].data[...] = replicate_pad(bottom[0].data, self.pad)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = replicate_pad_backward(top[0].diff, self.pad)


class Crop2D(_Base):
    """Drops `begin` pixels at the top/left and `end` pixels at the bottom/right of every map."""

    def setup(self, bottom, top):
        if len(bottom) != 1 or len(top) != 1:
            raise Exception("Crop2D takes one bottom and gives one top")
        self.begin, self.end = parse_crop(self.param_str)

    def reshape(self, bottom, top):
        shape = list(bottom[0].data.shape)
        h = shape[-2] - self.begin[0] - self.end[0]
        w = shape[-1] - self.begin[1] - self.end[1]
        if h < 1 or w < 1:
            raise Exception("Crop2D: a %dx%d map is too small to crop by begin %s, end %s"
                            % (shape[-2], shape[-1], self.begin, self.end))
        top[0].reshape(*(shape[:-2] + [h, w]))

    def forward(self, bottom, top):
        h, w = top[0].data.shape[-2:]
        top[0].data[...] = bottom[0].data[..., self.begin[0]:self.begin[0] + h, self.begin[1]:self.begin[1] + w]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            h, w = top[0].diff.shape[-2:]
            bottom[0].diff[...] = 0
            bottom[0].diff[..., self.begin[0]:self.begin[0] + h, self.begin[1]:self.begin[1] + w] = top[0].diff
