"""Shared plumbing for tools/*.py: one-line errors and exit codes."""
import argparse
import os
import signal
import sys

from .errors import UserError


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, a scheduler), raised like Ctrl-C so that every clean-up (temporary files,
    partial outputs) runs; the tool exits 143."""


def _terminate(signum, frame):
    raise Terminated()


def run_main(main, argv=None):
    """Run main(argv) and exit: 0 on success, 2 with 'error: ...' for UserError, 130 on Ctrl-C,
    143 on SIGTERM (after the same clean-up as Ctrl-C). Caffe's environment knobs are checked
    first (a bad one would abort Caffe mid-way)."""
    from . import caffe_env

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        caffe_env.check()
        code = main(argv)
    except UserError as exc:
        print("error: %s" % exc, file=sys.stderr)
        sys.exit(2)
    except Terminated:
        print("terminated", file=sys.stderr)
        sys.exit(143)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # `tool | head`: the reader left; exit quietly (stdout is closed, so point it at devnull).
        sys.stdout = open(os.devnull, "w")
        sys.exit(1)
    sys.exit(code or 0)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the toolkit's error contract: one line 'error: ...' (no usage block), exit 2."""

    def error(self, message):
        if message.startswith("unrecognized arguments: "):
            message = "unknown option %s" % ", ".join("'%s'" % a for a in message.split(": ", 1)[1].split())
        print("error: %s (see %s --help)" % (message, self.prog), file=sys.stderr)
        sys.exit(2)


# ---- options several tools share (one definition each) -----------------------------------------

MODEL_HELP = ("a name (fsrcnn, fsrcnn-s, srcnn, srcnn-935, srcnn-955: models/NAME_xS.caffemodel), "
              "an official name (official-fsrcnn, official-fsrcnn-s, official-srcnn-915, ...: the authors' "
              "released weights), a .caffemodel file or a run folder (its newest snapshot)")


from .datasets import EVAL_SETS as EVAL_DATASETS  # noqa: E402 (the papers' test sets)
DATASET_HELP = "Set5, Set14, T91 or a folder of images"


def add_scale(p, default=3, required=False, many=False, help=None, flag="--scale", **kw):
    """--scale (or another flag taking a scale): one of nets.SCALES; many=True: repeatable."""
    from .nets import SCALES
    if help is None:
        help = "upscaling factor" + ("" if required or default is None else " (default %d)" % default)
    p.add_argument(flag, type=int, choices=SCALES, required=required, action="append" if many else "store",
                   default=None if required or many else default, help=help, **kw)


def comma_list(text):
    """'Set5, Set14' -> ['Set5', 'Set14'] (an option's type)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def add_dataset(p, help=DATASET_HELP, metavar="NAME|DIR", **kw):
    """--dataset: a registered set (fetched with tools/datasets.py) or a folder of images."""
    p.add_argument("--dataset", metavar=metavar, help=help, **kw)


def add_datasets(p, default=EVAL_DATASETS):
    """--datasets A,B: comma-separated dataset names, parsed into a list."""
    p.add_argument("--datasets", type=comma_list, default=",".join(default),
                   help="comma-separated (default %s)" % ",".join(default))


def add_model_options(p, many=False, default="fsrcnn"):
    """--model (one, or with many=True several), --arch, --pad, --tile, --gpu and --engine."""
    from .outputs import PADS
    if many:
        p.add_argument("--model", nargs="+", metavar="SPEC", help="models to evaluate, each " + MODEL_HELP)
    else:
        p.add_argument("--model", default=default, metavar="SPEC", help="%s (default %s)" % (MODEL_HELP, default))
    p.add_argument("--arch", metavar="MODEL", help="architecture of a .caffemodel: fsrcnn, fsrcnn-s, fsrcnn-D-S-M, "
                   "srcnn, srcnn-935, srcnn-955 (default: read from its weights)")
    p.add_argument("--pad", choices=PADS, default="replicate",
                   help="border padding of the net input: edge pixels repeated (default) or zeros")
    p.add_argument("--tile", type=int, metavar="N",
                   help="tile side in LR pixels (default: the largest within about 256 MB of Caffe memory; "
                        "the result does not depend on it)")
    p.add_argument("--gpu", type=int, metavar="ID", help="run Caffe on this GPU (a CUDA build: tools/setup.sh --cuda)")
    add_engine(p)


def add_engine(p, intel=False):
    """--engine: Caffe's engine for the convolutions and ReLUs of the nets this command makes (with
    intel=True also Intel Caffe's -engine names, which `caffe train` is given as they are)."""
    from .nets import ENGINES, INTEL_ENGINES
    p.add_argument("--engine", choices=ENGINES + (INTEL_ENGINES if intel else ()), metavar="NAME",
                   help="Caffe's engine for convolutions and ReLUs: caffe (Caffe's own code) or cudnn (NVIDIA "
                        "cuDNN: with --gpu, on a CUDA build with cuDNN); default: Caffe's, cuDNN on a GPU where "
                        "the build has it, else its own" + ("; set in this segment's copy of the net. %s: Intel "
                        "Caffe's -engine, if the binary has it" % " / ".join(INTEL_ENGINES) if intel else ""))
