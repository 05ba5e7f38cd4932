"""Caffe weight files (.caffemodel), read with protobuf, never by Caffe: which network a file
holds, and whether it holds exactly the one asked for. Caffe aborts the whole process on a
missing layer or a shape mismatch, so every caffemodel is checked here first (training's
--weights, inference, export, the official models).

    read_blobs(path)            {layer: [(shape, BlobProto)]}, one line for a corrupt file
    identify(path, scale)       the model name whose learnable layers the file holds
    check_weights(path, model, scale)   UserError unless it holds exactly that model
"""
import functools
import os
import re

import numpy as np

from . import nets, pycaffe
from .errors import UserError

DEFAULT_SCALE = 3


def _fmt(shapes):
    return "[%s]" % ", ".join("x".join(map(str, s)) or "scalar" for s in shapes)


@functools.lru_cache(maxsize=None)
def expected_blobs(model, scale):
    """{layer name: [blob shapes]} of a model's learnable layers, in the deploy net's order."""
    return dict(nets.learnable_blobs(model, scale))


def parse_message(path, message, what):
    """A binary protobuf file (.caffemodel, .solverstate) parsed into `message`, or one line."""
    try:
        with open(path, "rb") as f:
            message.ParseFromString(f.read())
    except Exception:   # DecodeError, or a truncated file that protobuf cannot frame
        raise UserError("%s: not a Caffe %s (it does not parse)" % (path, what)) from None
    return message


def read_blobs(path):
    """{layer name: [(shape, blob)]} of a .caffemodel (parsed by protobuf, not by Caffe)."""
    caffe_pb2 = pycaffe.caffe_pb2()

    if not os.path.isfile(path):
        raise UserError("%s: not found" % path)
    if path.endswith(".solverstate"):
        raise UserError("%s is a .solverstate (training state): give its .caffemodel" % path)
    net = parse_message(path, caffe_pb2.NetParameter(), ".caffemodel")
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
            values = np.asarray(b.double_data if len(b.double_data) else b.data, dtype=np.float64)
            if not np.isfinite(values).all():   # diverged training: the net would output NaN
                raise UserError("%s: layer %s holds non-finite weights (%d nan/inf values: diverged "
                                "training)" % (path, name, int((~np.isfinite(values)).sum())))
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


def check_weights(path_or_shapes, model, scale, what=None, suggest="use --arch %s"):
    """UserError naming the file unless it holds exactly `model`'s weights; `suggest` % name is
    the hint when it holds another known network (the calling tool's option)."""
    found = path_or_shapes
    if not isinstance(found, dict):
        what, found = what or path_or_shapes, shapes_of(read_blobs(path_or_shapes))
    diff = _difference(found, expected_blobs(model, scale), model)
    if diff:
        try:
            name = identify(found, scale, what)
            hint = "; it looks like %s (%s)" % (name, suggest % name)
        except UserError:
            hint = ""
        raise UserError("%s: does not hold %s weights: %s%s" % (what, model, diff, hint))


# ---- weights as NumPy arrays (tools/export.py) ------------------------------------------------

def arrays(path, scale=DEFAULT_SCALE, model=None):
    """(model, {LAYER_INDEX: float32 array}) of a caffemodel, checked against `model` (default:
    identified from its shapes)."""
    found = read_blobs(path)
    shapes = shapes_of(found)
    model = model or identify(shapes, scale, path)
    check_weights(shapes, model, scale, path)
    out = {}
    for layer, wanted in expected_blobs(model, scale).items():
        for i, ((_, blob), shape) in enumerate(zip(found[layer], wanted)):
            data = blob.double_data if len(blob.double_data) else blob.data
            out["%s_%d" % (layer, i)] = np.array(data, dtype=np.float32).reshape(shape)
    return model, out


def read_npz(path, scale=DEFAULT_SCALE, model=None):
    """(model, {LAYER_INDEX: array}) of a .npz written by arrays(), names and shapes checked."""
    import zipfile

    if not os.path.isfile(path):
        raise UserError("%s: not found" % path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            found = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        raise UserError("%s: not a NumPy .npz file" % path) from None
    shapes = {}
    for key, value in found.items():
        if np.issubdtype(value.dtype, np.number) and not np.isfinite(value).all():
            raise UserError("%s: array %s holds non-finite values (NaN or Inf)" % (path, key))
        layer, _, index = key.rpartition("_")
        if not layer or not index.isdigit():
            raise UserError("%s: array %s is not named LAYER_INDEX (e.g. conv1_0)" % (path, key))
        shapes.setdefault(layer, {})[int(index)] = tuple(value.shape)
    for layer, by_index in shapes.items():
        if sorted(by_index) != list(range(len(by_index))):
            raise UserError("%s: layer %s has arrays %s; expected indices 0..%d"
                            % (path, layer, sorted(by_index), len(by_index) - 1))
        shapes[layer] = [by_index[i] for i in range(len(by_index))]
    model = model or identify(shapes, scale, path)
    check_weights(shapes, model, scale, path)
    return model, found


def save_caffemodel(model, scale, named_arrays, dest):
    """Write a .caffemodel of `model` holding the arrays {LAYER_INDEX: array} (through Caffe)."""
    import tempfile

    import caffe

    with tempfile.NamedTemporaryFile("w", suffix=".prototxt") as f:
        f.write(nets.arch(model, scale).deploy_prototxt())
        f.flush()
        net = caffe.Net(f.name, caffe.TEST)
    for layer, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            blob.data[...] = named_arrays["%s_%d" % (layer, i)]
    net.save(dest)


# ---- the scale weights were trained for ---------------------------------------------------------

_SCALE_IN_NAME = re.compile(r"_x(\d+)(?:_iter_\d+)?\.caffemodel$")


def recorded_scale(path):
    """(scale, where it is recorded) of a caffemodel, or (None, None): FSRCNN's weights have the
    same shapes at every scale (only the deconvolution's stride differs), so the scale cannot be
    read from the blobs. Looked up in the run.json of its run folder, the JSON shipped beside it
    (models/<model>_x<scale>.json), else its name (<model>_x<scale>[_iter_N].caffemodel)."""
    import json

    folder, name = os.path.split(os.path.abspath(path))
    for meta in (os.path.join(folder, "run.json"), os.path.splitext(os.path.abspath(path))[0] + ".json"):
        try:
            with open(meta) as f:
                return int(json.load(f)["scale"]), os.path.basename(meta)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    match = _SCALE_IN_NAME.search(name)
    return (int(match.group(1)), "its name") if match else (None, None)


def check_scale(path, scale, log=None):
    """UserError when the weights were trained for another scale (a x3 model run at x2 gives
    output far below bicubic); a note through `log` when the scale is not recorded anywhere."""
    recorded, where = recorded_scale(path)
    if recorded is None:
        if log:
            log("note: %s records no scale; using it at x%d as asked" % (path, scale))
    elif recorded != scale:
        raise UserError("%s: holds x%d weights (%s), not x%d; use --scale %d"
                        % (path, recorded, where, scale, recorded))
