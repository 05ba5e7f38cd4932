"""Which model a name means: one resolver for every kind of model spec the tools accept.

    sr = load_model("fsrcnn", scale=3)                  # the toolkit's models/fsrcnn_x3.caffemodel
    sr = load_model("official-fsrcnn", scale=3)         # the authors' released x3 weights
    sr = load_model("runs/x/fsrcnn_x3_iter_5000.caffemodel")   # architecture read from the blobs
    sr = load_model("runs/x")                           # a run folder: its newest whole snapshot
    hr = sr.upscale(rgb_uint8)                          # srcaffe.upscaling.Upscaler

A spec is resolved once, here, into an Upscaler that carries its Architecture and weights;
predict, evaluate, videos, MMSR and the Python API get that object and never look at the spec
again. `label(spec)` is the one naming rule for outputs and table columns.
"""
import os

from . import nets, official, snapshots
from .errors import UserError
from .inference import DEFAULT_TILE, PADS, Model
from .paths import ROOT, shipped_weights
from .weights import check_scale, check_weights, identify

DEFAULT_SCALE = 3
SPECS = ("a name (fsrcnn, fsrcnn-s, srcnn, srcnn-935, srcnn-955: models/NAME_xS.caffemodel), "
         "an official name (official-fsrcnn, ...: the authors' released weights), "
         "a .caffemodel file or a run folder (its newest snapshot)")


def is_official(spec):
    return str(spec) in official.MODELS


def is_shipped_name(spec):
    """A model name of srcaffe.nets (fsrcnn, fsrcnn-s, fsrcnn-D-S-M, srcnn, ...), not a file."""
    spec = str(spec)
    if spec.endswith(".caffemodel") or os.sep in spec or os.path.exists(spec):
        return False
    try:
        nets.architecture(spec)
        return True
    except UserError:
        return False


def load_model(spec, scale=None, arch=None, pad="replicate", tile=DEFAULT_TILE):
    """An Upscaler for a model spec (see SPECS) at a scale (default 3).

    arch: the architecture of a .caffemodel (default: identified from its blob shapes);
    pad: 'replicate' (default) or 'zero', how the border is padded; tile: tile side in LR pixels
    for the toolkit's models (default: the largest within the memory budget)."""
    scale = DEFAULT_SCALE if scale is None else int(scale)
    nets.check_scale(scale)
    if pad not in PADS:
        raise UserError("--pad must be one of %s, not %s" % ("/".join(PADS), pad))
    spec = os.fspath(spec)
    if arch is not None:
        nets.architecture(arch)
    if is_official(spec):
        if arch is not None and arch != official.MODELS[spec]["arch"]:
            raise UserError("--arch %s contradicts %s (a %s)" % (arch, spec, official.MODELS[spec]["arch"]))
        return official.load_official(spec, scale, padding=pad)
    if is_shipped_name(spec):
        if arch is not None and arch != spec:
            raise UserError("--arch %s contradicts the model name %s" % (arch, spec))
        arch, path = spec, shipped_weights(spec, scale)
        if not os.path.isfile(path):
            raise UserError("%s: not found; train one with ./run_train.sh %s (see models/README.md) "
                            "or pass --model FILE.caffemodel" % (os.path.relpath(path, ROOT), spec))
    elif os.path.isdir(spec):
        path = snapshots.newest_caffemodel(spec)
    else:
        path = spec
        if not os.path.exists(path):
            if os.sep not in path and not path.endswith(".caffemodel"):
                raise UserError("%s: no such file, and not a model name (%s)" % (path, SPECS))
            raise UserError("%s: not found (no such file)" % path)
    if arch is None:
        arch = identify(path, scale)
    else:
        check_weights(path, arch, scale)
    notes = []
    check_scale(path, scale, log=notes.append)
    return Model(nets.arch(arch, scale), path, pad=pad, tile=tile, name=label(spec), notes=notes)


def label(spec):
    """What outputs and table columns call a model given as `spec`: a name as given (fsrcnn,
    official-fsrcnn), a run folder by its folder name, a file by its stem."""
    spec = os.fspath(spec)
    if is_official(spec) or is_shipped_name(spec):
        return spec
    name = os.path.basename(os.path.normpath(spec))
    return name if os.path.isdir(spec) else os.path.splitext(name)[0]
