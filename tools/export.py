import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E401,E702

import argparse
import tempfile
import zipfile

os.environ.setdefault("GLOG_minloglevel", "2")   # quiet Caffe; set before anything imports caffe

import numpy as np

from srcaffe import inference, nets
from srcaffe.cli import run_main
from srcaffe.errors import UserError

DESCRIPTION = """\
Convert FSRCNN / SRCNN weights between a Caffe .caffemodel and a NumPy .npz.

The .npz holds one float32 array per learnable blob, named LAYER_INDEX as in Caffe:
conv1_0 (weights, out x in x k x k), conv1_1 (bias), prelu1_0 (PReLU slope, a scalar), ...,
conv3_0 (FSRCNN: Deconvolution weights, in x out x k x k). Both directions check every name and
shape against the architecture (--arch, default: recognised from the shapes)."""

EPILOG = """\
examples:
  python tools/export.py to-npz runs/x/fsrcnn_x3_iter_100000.caffemodel fsrcnn_x3.npz
  python tools/export.py from-npz fsrcnn_x3.npz fsrcnn_x3.caffemodel --arch fsrcnn --scale 3

--scale only matters to FSRCNN's deconvolution stride (not stored in the weights); default 3.
Existing output files are never overwritten without --force."""


def parse_args(argv):
    p = argparse.ArgumentParser(prog="tools/export.py", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, src, dst, text in (("to-npz", "MODEL.caffemodel", "OUT.npz", "caffemodel -> npz"),
                                 ("from-npz", "IN.npz", "OUT.caffemodel", "npz -> caffemodel")):
        s = sub.add_parser(name, help=text, description=text)
        s.add_argument("source", metavar=src)
        s.add_argument("dest", metavar=dst)
        s.add_argument("--arch", metavar="MODEL", help="architecture (default: recognised from the shapes)")
        s.add_argument("--scale", type=int, default=3, choices=nets.SCALES, help="upscaling factor (default 3)")
        s.add_argument("--force", action="store_true", help="overwrite DEST")
    return p.parse_args(argv)


def _write(path, suffix, write):
    """write(tmp_path) next to path, then move it into place with a normal file mode (mkstemp
    makes 0600): a failed write leaves nothing behind."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _writable(path, force):
    if os.path.exists(path) and not force:
        raise UserError("%s: already exists; refusing to overwrite it (use --force)" % path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def _describe(arrays):
    return ", ".join("%s %s" % (k, "x".join(map(str, v.shape)) or "scalar") for k, v in arrays.items())


def to_npz(args):
    found = inference.read_blobs(args.source)
    shapes = inference.shapes_of(found)
    arch = args.arch or inference.identify(shapes, args.scale, args.source)
    inference.check_weights(shapes, arch, args.scale, args.source)
    arrays = {}
    for layer, wanted in inference.expected_blobs(arch, args.scale).items():
        for i, ((_, blob), shape) in enumerate(zip(found[layer], wanted)):
            data = blob.double_data if len(blob.double_data) else blob.data
            arrays["%s_%d" % (layer, i)] = np.array(data, dtype=np.float32).reshape(shape)
    _writable(args.dest, args.force)

    def save(tmp):
        with open(tmp, "wb") as f:   # a file object: np.savez would append .npz to a name
            np.savez(f, **arrays)
    _write(args.dest, ".npz", save)
    print("wrote %s: %s x%d, %d arrays (%s)" % (args.dest, arch, args.scale, len(arrays), _describe(arrays)))


def from_npz(args):
    import caffe

    if not os.path.isfile(args.source):
        raise UserError("%s: not found" % args.source)
    try:
        with np.load(args.source, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        raise UserError("%s: not a NumPy .npz file" % args.source) from None
    shapes = {}
    for key, value in arrays.items():
        layer, _, index = key.rpartition("_")
        if not layer or not index.isdigit():
            raise UserError("%s: array %s is not named LAYER_INDEX (e.g. conv1_0)" % (args.source, key))
        shapes.setdefault(layer, {})[int(index)] = tuple(value.shape)
    for layer, by_index in shapes.items():
        if sorted(by_index) != list(range(len(by_index))):
            raise UserError("%s: layer %s has arrays %s; expected indices 0..%d"
                            % (args.source, layer, sorted(by_index), len(by_index) - 1))
        shapes[layer] = [by_index[i] for i in range(len(by_index))]
    arch = args.arch or inference.identify(shapes, args.scale, args.source)
    inference.check_weights(shapes, arch, args.scale, args.source)
    _writable(args.dest, args.force)
    with inference.deploy_prototxt(arch, args.scale) as prototxt:
        net = caffe.Net(prototxt, caffe.TEST)
    for layer, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            blob.data[...] = arrays["%s_%d" % (layer, i)]
    _write(args.dest, ".caffemodel", net.save)
    print("wrote %s: %s x%d from %d arrays" % (args.dest, arch, args.scale, len(arrays)))


def main(argv=None):
    args = parse_args(argv)
    if args.arch:
        nets.architecture(args.arch)
    (to_npz if args.command == "to-npz" else from_npz)(args)
    return 0


if __name__ == "__main__":
    run_main(main)
