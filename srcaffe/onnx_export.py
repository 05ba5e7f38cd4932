"""FSRCNN / SRCNN deploy nets as ONNX graphs (tools/export.py to-onnx).

The graph is translated layer by layer from the very deploy prototxt that pycaffe runs, with the
weights of the caffemodel, so it maps an input exactly as the pycaffe net does:

- the toolkit's models (models/<name>_x<scale>.caffemodel, or any .caffemodel of a known
  architecture): the nets as trained, no padding but the 3x3 mapping layers' own; the input is the
  frame the toolkit feeds the net, i.e. already padded by srcaffe.inference (pad_px pixels), and the
  output is the net's (larger than scale x the unpadded image). With borders='replicate' (or
  'zero') the graph also pads its input and crops its output as srcaffe.inference.Model.upscale_y
  does, so an LR Y image of HxW gives exactly scale*H x scale*W (SRCNN: the bicubic image in,
  its own size out).
- the authors' released models (official-fsrcnn, official-srcnn-955, ...: srcaffe.official):
  their replicate-padded deploy nets (srcaffe.official.deploy.net_text); the ReplicatePad
  Python layers become ONNX Pad (mode edge) and Crop2D becomes Slice, so the LR image (FSRCNN) or
  the bicubic image (SRCNN) goes in unpadded and scale*H x scale*W (FSRCNN) or H x W comes out.

Caffe layer -> ONNX node: Convolution -> Conv, Deconvolution -> ConvTranspose (Caffe's
(in, out, k, k) weights are ONNX's layout; out = stride*(in-1) + k - 2*pad in both, no
output_padding), PReLU -> PRelu (a shared slope as shape [1], per-channel slopes as [C,1,1] so
they broadcast over N x C x H x W), ReLU -> Relu (LeakyRelu for a negative_slope). Input
`data` is float32 N x 1 x H x W with dynamic N, H and W.
"""
import collections
import os

import numpy as np

from . import files, nets, pycaffe
from .errors import UserError
from .outputs import PADS
from .paths import ROOT

OPSET = 13          # Pad with a pads input and mode 'edge', Slice with inputs: opset 11+
IR_VERSION = 7      # the oldest IR of opset 13: readable by older runtimes too
INPUT = "data"
BORDERS = PADS   # the toolkit's own border modes (srcaffe.inference)

Source = collections.namedtuple("Source", "label arch scale prototxt params weights official")
Source.__doc__ = """What is exported: label (e.g. 'fsrcnn x3'), arch (srcaffe.nets name), scale,
prototxt (deploy text), params ({layer: [float32 arrays]}), weights (where they came from),
official (an authors' model: the padding is inside the net)."""


def _default_scale(path, scale):
    from .weights import recorded_scale

    if scale is not None:
        return int(scale)
    recorded, _ = recorded_scale(path)
    return recorded or 3


def resolve(spec, scale=None, arch=None, log=None):
    """A Source from any model spec, resolved by srcaffe.models.load_model (a shipped name, an
    official name, a .caffemodel file, a run folder); a file's scale defaults to the one its
    weights record. The parameters are those of the loaded Caffe net."""
    from . import models, official

    spec = os.fspath(spec)
    if scale is None and os.path.isfile(spec):
        scale = _default_scale(spec, None)
    model = models.load_model(spec, scale, arch=arch)
    for note in model.notes:
        (log or print)(note)
    params = {name: [np.array(b.data, dtype=np.float32) for b in blobs] for name, blobs in model.net.params.items()}
    authors = models.is_official(spec)
    prototxt = official.net_text(spec, model.scale) if authors else model.arch.deploy_prototxt()
    return Source("%s x%d" % (model.name, model.scale), model.arch.name, model.scale, prototxt, params,
                  model.weights, authors)


# ---- Caffe NetParameter -> ONNX graph -------------------------------------------------------------

def _pair(repeated, single_h, single_w, has_h, default):
    """Caffe's kernel/stride/pad convention: *_h/*_w if set, else the repeated field (one value or
    one per spatial axis), else the default."""
    if has_h:
        return [int(single_h), int(single_w)]
    values = list(repeated)
    if not values:
        return [default, default]
    return [int(values[0])] * 2 if len(values) == 1 else [int(v) for v in values]


def _conv_attrs(p):
    kernel = _pair(p.kernel_size, p.kernel_h, p.kernel_w, p.HasField("kernel_h"), None)
    stride = _pair(p.stride, p.stride_h, p.stride_w, p.HasField("stride_h"), 1)
    pad = _pair(p.pad, p.pad_h, p.pad_w, p.HasField("pad_h"), 0)
    dilation = _pair(p.dilation, 1, 1, False, 1)
    return dict(kernel_shape=kernel, strides=stride, pads=pad + pad, dilations=dilation, group=int(p.group))


class _Graph:
    def __init__(self):
        self.nodes, self.inits, self.current, self.used = [], [], {}, set()

    def name(self, base):
        """A fresh tensor name (Caffe's in-place layers reuse a blob name; ONNX tensors are SSA)."""
        name, i = base, 1
        while name in self.used:
            i += 1
            name = "%s_%d" % (base, i)
        self.used.add(name)
        return name

    def const(self, base, array):
        from onnx import numpy_helper
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, top, layer_name, **attrs):
        from onnx import helper
        out = self.name(top)
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name("node_" + layer_name), **attrs))
        self.current[top] = out
        return out


def _blobs(params, layer, n, what):
    got = params.get(layer.name)
    if got is None or len(got) < n:
        raise UserError("%s: layer %s (%s) has no weights in %s" % (what, layer.name, layer.type, what))
    return got


def _python_layer(g, layer, bottom, top):
    from .caffe_layers import parse_crop, parse_pad

    kind = layer.python_param.layer
    try:
        if kind == "ReplicatePad":
            t, b, l, r = parse_pad(layer.python_param.param_str)
            pads = g.const(layer.name + "_pads", np.array([0, 0, t, l, 0, 0, b, r], dtype=np.int64))
            return g.node("Pad", [bottom, pads], top, layer.name, mode="edge")
        if kind == "Crop2D":
            (t, l), (b, r) = parse_crop(layer.python_param.param_str)
            return _slice(g, bottom, top, layer.name, (t, l), (b, r))
    except ValueError as exc:
        raise UserError("layer %s: %s" % (layer.name, exc)) from None
    raise UserError("layer %s: Python layer %s has no ONNX translation" % (layer.name, kind))


def _slice(g, bottom, top, name, begin, end):
    """Drop begin (rows, cols) at the top/left and end at the bottom/right of every map."""
    big = np.iinfo(np.int64).max
    starts = g.const(name + "_starts", np.array(begin, dtype=np.int64))
    ends = g.const(name + "_ends", np.array([-e if e else big for e in end], dtype=np.int64))
    axes = g.const(name + "_axes", np.array([2, 3], dtype=np.int64))
    return g.node("Slice", [bottom, starts, ends, axes], top, name)


def to_onnx(prototxt, params, graph_name, doc="", borders=None):
    """An onnx.ModelProto of a deploy prototxt (text) with params {layer: [arrays]}.

    borders: None, or (mode, pad, (crop_begin, crop_end)) to pad the input ('edge' or
    'constant') and crop the output as srcaffe.inference does."""
    import onnx
    caffe_pb2 = pycaffe.caffe_pb2()
    from google.protobuf import text_format
    from onnx import TensorProto, helper

    net = text_format.Parse(prototxt, caffe_pb2.NetParameter())
    g = _Graph()
    g.used.add(INPUT)
    inputs = []
    channels = 1
    for layer in net.layer:
        bottoms = [g.current.get(b) for b in layer.bottom]
        if None in bottoms:
            raise UserError("layer %s: bottom %s is no earlier layer's top" % (layer.name, list(layer.bottom)))
        top = layer.top[0] if layer.top else None
        kind = layer.type
        if kind == "Input":
            dims = list(layer.input_param.shape[0].dim) if layer.input_param.shape else []
            channels = int(dims[1]) if len(dims) > 1 else 1
            inputs.append(helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", channels, "H", "W"]))
            g.current[top] = INPUT
            if borders is not None:
                mode, pad, _ = borders
                pads = g.const("border_pads", np.array([0, 0, pad, pad, 0, 0, pad, pad], dtype=np.int64))
                g.node("Pad", [INPUT, pads], top, "border", mode=mode)
        elif kind in ("Convolution", "Deconvolution"):
            p = layer.convolution_param
            blobs = _blobs(params, layer, 2 if p.bias_term else 1, graph_name)
            attrs = _conv_attrs(p)
            w = np.asarray(blobs[0], dtype=np.float32)
            ins = [bottoms[0], g.const(layer.name + "_weight", w)]
            if p.bias_term:
                ins.append(g.const(layer.name + "_bias", np.asarray(blobs[1], dtype=np.float32).reshape(-1)))
            g.node("Conv" if kind == "Convolution" else "ConvTranspose", ins, top, layer.name, **attrs)
            channels = w.shape[0] if kind == "Convolution" else w.shape[1] * attrs["group"]
        elif kind == "PReLU":
            slope = np.asarray(_blobs(params, layer, 1, graph_name)[0], dtype=np.float32)
            if layer.prelu_param.channel_shared or slope.size == 1:
                slope = slope.reshape(1)                    # broadcasts over every axis
            else:
                slope = slope.reshape(-1, 1, 1)             # [C,1,1]: per channel of N x C x H x W
            g.node("PRelu", [bottoms[0], g.const(layer.name + "_slope", slope)], top, layer.name)
        elif kind == "ReLU":
            ns = float(layer.relu_param.negative_slope)
            if ns:
                g.node("LeakyRelu", bottoms[:1], top, layer.name, alpha=ns)
            else:
                g.node("Relu", bottoms[:1], top, layer.name)
        elif kind == "Python":
            _python_layer(g, layer, bottoms[0], top)
        else:
            raise UserError("layer %s: Caffe %s has no ONNX translation here" % (layer.name, kind))
    if not inputs:
        raise UserError("%s: the net has no Input layer" % graph_name)
    last = g.current[net.layer[-1].top[0]]
    if borders is not None:
        _, _, (begin, end) = borders
        last = _slice(g, last, "output", "border_crop", (begin, begin), (end, end))
    output = helper.make_tensor_value_info(last, TensorProto.FLOAT, ["N", channels, None, None])
    graph = helper.make_graph(g.nodes, graph_name, inputs, [output], initializer=g.inits, doc_string=doc)
    model = helper.make_model(graph, producer_name="srcaffe", opset_imports=[helper.make_opsetid("", OPSET)],
                              doc_string=doc)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


# ---- borders of the toolkit's path ----------------------------------------------------------------

def toolkit_borders(arch, scale, weights_path, mode):
    """(pad, (crop_begin, crop_end)) of srcaffe.inference.Model's whole-image path: the input is
    padded by pad pixels, crop_begin output pixels are dropped at the top/left and crop_end at the
    bottom/right (the same for every image size, checked here)."""
    from .inference import Model

    m = Model(nets.arch(arch, scale), weights_path, pad=mode)
    a = nets.arch(arch, scale)
    factor = scale if a.upsampled_input else 1
    ends = {a.output_size(n + 2 * m.pad_px) - m.crop - m.up * n for n in range(m.min_lr * factor + 20, m.min_lr * factor + 40)}
    if len(ends) != 1 or min(ends) < 0 or m.crop < 0:
        raise UserError("%s x%d: the toolkit's crop is not the same for every size" % (arch, scale))
    return m.pad_px, (m.crop, ends.pop())


def shown(path):
    """A weights path as printed and recorded: relative to the repository when inside it."""
    full = os.path.abspath(path)
    return os.path.relpath(full, ROOT) if full.startswith(ROOT + os.sep) else path


def build(source, borders=None):
    """The onnx.ModelProto of a Source; borders ('replicate'/'zero') bakes the toolkit's padding
    and crop into a toolkit model's graph."""
    doc = "%s, weights %s; Caffe deploy net translated by srcaffe.onnx_export" % (source.label, shown(source.weights))
    baked = None
    if borders is not None:
        if borders not in BORDERS:
            raise UserError("--borders must be one of %s, not %s" % ("/".join(BORDERS), borders))
        if source.official:
            raise UserError("--borders does not apply to %s: the authors' nets pad inside" % source.label)
        pad, crop = toolkit_borders(source.arch, source.scale, source.weights, borders)
        baked = ("edge" if borders == "replicate" else "constant", pad, crop)
        doc += "; %s borders of srcaffe.inference (pad %d, crop %d/%d)" % (borders, pad, crop[0], crop[1])
    name = source.label.replace(" ", "_")
    return to_onnx(source.prototxt, source.params, name, doc, borders=baked)


def export(model, dest, scale=None, arch=None, force=False, borders=None, log=None):
    """Write the ONNX file of a model (see resolve); returns (Source, ModelProto)."""
    files.check_new(dest, force)
    source = resolve(model, scale, arch, log=log)
    proto = build(source, borders)
    with files.writing(dest, force) as tmp:
        with open(tmp, "wb") as f:
            f.write(proto.SerializeToString())
    return source, proto


def mult_adds(prototxt, height, width):
    """Multiply-adds of one forward pass of a deploy net on a 1 x C x height x width input, from
    its layer shapes (convolutions and deconvolutions; activations, pads and crops are not counted)."""
    caffe_pb2 = pycaffe.caffe_pb2()
    from google.protobuf import text_format

    net = text_format.Parse(prototxt, caffe_pb2.NetParameter())
    shapes, total = {}, 0
    for layer in net.layer:
        if layer.type == "Input":
            dims = list(layer.input_param.shape[0].dim)
            shapes[layer.top[0]] = (int(dims[1]), height, width)
            continue
        c, h, w = shapes[layer.bottom[0]]
        if layer.type in ("Convolution", "Deconvolution"):
            a = _conv_attrs(layer.convolution_param)
            (kh, kw), (sh, sw), (ph, pw) = a["kernel_shape"], a["strides"], a["pads"][:2]
            n = int(layer.convolution_param.num_output)
            if layer.type == "Convolution":
                oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
                total += oh * ow * n * c // a["group"] * kh * kw
            else:   # every input pixel scatters a k x k tap per output channel
                oh, ow = sh * (h - 1) + kh - 2 * ph, sw * (w - 1) + kw - 2 * pw
                total += h * w * c * n // a["group"] * kh * kw
            shapes[layer.top[0]] = (n, oh, ow)
        elif layer.type == "Python":
            from .caffe_layers import parse_crop, parse_pad
            if layer.python_param.layer == "ReplicatePad":
                t, b, l, r = parse_pad(layer.python_param.param_str)
                shapes[layer.top[0]] = (c, h + t + b, w + l + r)
            else:
                (t, l), (b, r) = parse_crop(layer.python_param.param_str)
                shapes[layer.top[0]] = (c, h - t - b, w - l - r)
        else:
            shapes[layer.top[0]] = (c, h, w)
    return total
