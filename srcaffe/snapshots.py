"""Caffe snapshots of a training run: `<prefix>_iter_N.caffemodel` (weights) and
`<prefix>_iter_N.solverstate` (the solver's history, naming its caffemodel), found, checked and
chosen here before `caffe train -snapshot` sees them (Caffe aborts on a solverstate of another
net, "Incorrect length of history blobs").
"""
import os
import re

from . import nets, pycaffe
from .errors import UserError
from .weights import blob_shape, check_weights, parse_message

_ITER = re.compile(r"_iter_(\d+)\.(caffemodel|solverstate)$")


def iteration(path):
    """N of a Caffe snapshot `<prefix>_iter_N.caffemodel|.solverstate`, else -1."""
    match = _ITER.search(os.fspath(path))
    return int(match.group(1)) if match else -1


def listing(run_dir, ext=".caffemodel"):
    """[(iteration, path)] of a run folder's snapshots of one kind, in iteration order."""
    found = []
    for name in os.listdir(run_dir) if os.path.isdir(run_dir) else ():
        it = iteration(name)
        if it >= 0 and name.endswith(ext):
            found.append((it, os.path.join(run_dir, name)))
    return sorted(found)


def newest_caffemodel(run_dir):
    found = listing(run_dir)
    if not found:
        raise UserError("%s: no .caffemodel snapshot (has its training run?)" % run_dir)
    return found[-1][1]


def pair(run_dir, at=None):
    """(caffemodel, solverstate or None) of the newest snapshot, or of iteration `at`."""
    models = listing(run_dir)
    if at is not None:
        models = [m for m in models if m[0] == at]
    if not models:
        raise UserError("%s: no %s.caffemodel" % (run_dir, "_iter_%d" % at if at else "snapshot"))
    model = models[-1][1]
    state = model[:-len(".caffemodel")] + ".solverstate"
    return model, (state if os.path.isfile(state) else None)


def read_solverstate(path):
    """The parsed SolverState of a file, or a one-line UserError."""
    caffe_pb2 = pycaffe.caffe_pb2()

    if not os.path.isfile(path):
        raise UserError("%s: snapshot file not found" % path)
    if path.endswith(".caffemodel"):
        raise UserError("%s is a .caffemodel (weights only): --snapshot resumes from a .solverstate "
                        "(use --weights to fine-tune from a .caffemodel)" % path)
    state = parse_message(path, caffe_pb2.SolverState(), ".solverstate")
    if not state.learned_net:
        raise UserError("%s: not a Caffe .solverstate (no learned_net in it)" % path)
    return state


def check_solverstate(path, model, scale, solver):
    """A clear sentence instead of Caffe's "Incorrect length of history blobs" abort.

    Returns the parsed SolverState (its `iter` is the snapshot's iteration).
    """
    state = read_solverstate(path)
    expected = list(nets.arch(model, scale).param_shapes)
    history = [blob_shape(b) for b in state.history]
    if history not in (expected, expected + expected):
        raise UserError("%s was written for another network (%d history blobs), not %s x%d"
                        % (path, len(history), model, scale))
    written_by = "adam" if len(history) == 2 * len(expected) else "sgd"   # Adam keeps two moments
    if written_by != solver:
        raise UserError("%s was written by the %s solver; resume it with --solver %s" % (path, written_by, written_by))
    return state


def learned_net_path(path, state):
    """The caffemodel a solverstate names: as written (absolute, or relative to its run folder,
    Caffe's working directory), else the file of that name beside the solverstate (a run folder
    copied elsewhere), else None."""
    folder = os.path.dirname(os.path.abspath(path))
    named = state.learned_net if os.path.isabs(state.learned_net) else os.path.join(folder, state.learned_net)
    if os.path.isfile(named):
        return named
    beside = os.path.join(folder, os.path.basename(state.learned_net))
    return beside if os.path.isfile(beside) else None


def check_caffemodel(path, model, scale):
    """Caffe's -weights copies blobs by layer name and aborts on a shape mismatch: check first."""
    if path.endswith(".solverstate"):
        raise UserError("%s is a .solverstate: resume it with --snapshot, or give its .caffemodel to --weights" % path)
    check_weights(path, model, scale, suggest="train it as ./run_train.sh %s")
