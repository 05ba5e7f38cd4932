#!/usr/bin/env python3
import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E401,E702
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)

import argparse

from srcaffe import cli, nets
from srcaffe.cli import run_main
from srcaffe.outputs import PADS

DESCRIPTION = """\
Convert FSRCNN / SRCNN weights between a Caffe .caffemodel and a NumPy .npz, or export a model
as an ONNX graph (to-onnx: see docs/export.md).

The .npz holds one float32 array per learnable blob, named LAYER_INDEX as in Caffe:
conv1_0 (weights, out x in x k x k), conv1_1 (bias), prelu1_0 (PReLU slope, a scalar), ...,
conv3_0 (FSRCNN: Deconvolution weights, in x out x k x k). Both directions check every name and
shape against the architecture (--arch, default: recognised from the shapes)."""

EPILOG = """\
examples:
  python tools/export.py to-npz runs/x/fsrcnn_x3_iter_100000.caffemodel fsrcnn_x3.npz
  python tools/export.py from-npz fsrcnn_x3.npz fsrcnn_x3.caffemodel --arch fsrcnn --scale 3
  python tools/export.py to-onnx fsrcnn fsrcnn_x3.onnx --scale 3       # models/fsrcnn_x3.caffemodel
  python tools/export.py to-onnx fsrcnn-s fsrcnn-s_x3.onnx --borders replicate   # LR in, 3x out
  python tools/export.py to-onnx official-fsrcnn official-fsrcnn_x2.onnx --scale 2
  python tools/export.py to-onnx runs/x/fsrcnn_x3_iter_100000.caffemodel x.onnx

to-onnx MODEL: a shipped model's name (fsrcnn, fsrcnn-s, srcnn: models/NAME_xS.caffemodel), an
official model (official-fsrcnn, official-srcnn-955, ...: the authors' weights and their
replicate borders) or a .caffemodel file (--arch, else recognised; --scale, else recorded).

--scale only matters to FSRCNN's deconvolution stride (not stored in the weights); default 3.
Existing output files are never overwritten without --force."""


def parse_args(argv):
    p = cli.ArgumentParser(prog="tools/export.py", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, src, dst, text in (("to-npz", "MODEL.caffemodel", "OUT.npz", "caffemodel -> npz"),
                                 ("from-npz", "IN.npz", "OUT.caffemodel", "npz -> caffemodel")):
        s = sub.add_parser(name, help=text, description=text)
        s.add_argument("source", metavar=src, help="the %s to read" % src.split(".")[-1])
        s.add_argument("dest", metavar=dst, help="the %s to write" % dst.split(".")[-1])
        s.add_argument("--arch", metavar="MODEL", help="architecture (default: recognised from the shapes)")
        cli.add_scale(s)
        s.add_argument("--force", action="store_true", help="overwrite DEST")
    s = sub.add_parser("to-onnx", help="model -> ONNX graph", description="model -> ONNX graph (docs/export.md)")
    s.add_argument("source", metavar="MODEL", help="model name, official model name or .caffemodel")
    s.add_argument("dest", metavar="OUT.onnx", help="the ONNX file to write")
    s.add_argument("--arch", metavar="MODEL", help="architecture of a .caffemodel (default: recognised)")
    cli.add_scale(s, default=None, help="upscaling factor (default: recorded beside a .caffemodel, else 3)")
    s.add_argument("--borders", choices=PADS,
                   help="also pad the input and crop the output as the toolkit does (its own models)")
    s.add_argument("--force", action="store_true", help="overwrite OUT.onnx")
    return p.parse_args(argv)


def _describe(arrays):
    return ", ".join("%s %s" % (k, "x".join(map(str, v.shape)) or "scalar") for k, v in arrays.items())


def to_npz(args):
    import numpy as np

    from srcaffe import files, weights
    arch, arrays = weights.arrays(args.source, args.scale, args.arch)
    with files.writing(args.dest, args.force) as tmp:
        with open(tmp, "wb") as f:   # a file object: np.savez would append .npz to a name
            np.savez(f, **arrays)
    print("wrote %s: %s x%d, %d arrays (%s)" % (args.dest, arch, args.scale, len(arrays), _describe(arrays)))


def from_npz(args):
    from srcaffe import files, weights
    arch, arrays = weights.read_npz(args.source, args.scale, args.arch)
    with files.writing(args.dest, args.force) as tmp:
        weights.save_caffemodel(arch, args.scale, arrays, tmp)
    print("wrote %s: %s x%d from %d arrays" % (args.dest, arch, args.scale, len(arrays)))


def to_onnx(args):
    from srcaffe import onnx_export
    source, proto = onnx_export.export(args.source, args.dest, args.scale, args.arch, args.force,
                                       borders=args.borders, log=print)
    print("wrote %s: %s (weights %s), %d nodes, opset %d, input %s 1x1xHxW float32%s"
          % (args.dest, source.label, onnx_export.shown(source.weights), len(proto.graph.node), onnx_export.OPSET,
             onnx_export.INPUT, ", %s borders" % args.borders if args.borders else ""))


def main(argv=None):
    args = parse_args(argv)
    if args.arch:
        nets.architecture(args.arch)
    {"to-npz": to_npz, "from-npz": from_npz, "to-onnx": to_onnx}[args.command](args)
    return 0


if __name__ == "__main__":
    run_main(main)
