"""Training runs: a run folder, and everything `caffe train` needs before it starts.

A run folder (runs/<model>-x<scale>-<timestamp>/ by default) holds the exact net and solver of
each segment (`train_test-start.prototxt`, `solver-from5000.prototxt`, ...), the snapshots,
train.log (appended by every segment, never truncated) and run.json (model, scale, solver, data,
one entry per segment). Resuming continues in the snapshot's own run folder; iteration numbers
make every snapshot name unique, so nothing of an earlier segment is overwritten. A segment that
died (killed, crashed) is simply superseded by the next one started from the same snapshot.

One trainer at a time holds a run folder (a lock on its .lock file, from the checks until the
segment ends, for new runs, --resume and --snapshot alike); a second is refused, naming the
holder's pid. Settings a user gives a segment (--snapshot-every, --snapshot-minutes, --base-lr,
--deconv-only, --data; the display interval of the first segment) are kept in run.json and
carried over by --resume and --snapshot unless given again (--display sets the run's interval).

srcaffe.segments reads a run folder (read_state), decides a segment (plan_segment) and writes
it (write_segment): every input checked first (one line for each problem, before Caffe can
abort), the HDF5 data prepared when missing; srcaffe.trainer runs the Plan it returns.
"""
import errno
import fcntl
import os
import re
import shlex
from collections import namedtuple

from . import files, hdf5_patches, nets, pycaffe, snapshots, solvers
from .errors import UserError
from .paths import net_file, solver_file

INITS = ("authors", "he")
RUN_JSON = "run.json"
LOG = "train.log"
LOCK = ".lock"
from .solvers import DEFAULT_SNAPSHOT_MINUTES  # noqa: E402,F401 (the timed-snapshot default, with the solvers')

Plan = namedtuple("Plan", "model scale solver run_dir solver_file start_iter max_iter snapshot weights log "
                          "snapshot_every snapshot_minutes display")


class NothingToDo(Exception):
    """--resume of a run that already reached its target: a line for the user, exit 0."""


# ---- one trainer per run folder -------------------------------------------------------------------

_held = {}


def lock(run_dir):
    """Hold run_dir for this process (until it exits), or a one-line UserError naming the holder."""
    run_dir = os.path.abspath(run_dir)
    if run_dir in _held:
        return
    path = os.path.join(run_dir, LOCK)
    try:
        f = open(path, "a+")
    except OSError as exc:
        raise UserError(files.describe_os_error(path, exc)) from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            f.close()
            raise UserError(files.describe_os_error(path, exc)) from None
        f.seek(0)
        pid = f.read().strip()
        f.close()
        raise UserError("%s is being trained by another trainer (pid %s); wait for it to end, or stop it "
                        "(Ctrl-C or kill %s) and resume" % (run_dir, pid or "unknown", pid or "PID")) from None
    f.seek(0)
    f.truncate()
    f.write("%d\n" % os.getpid())
    f.flush()
    _held[run_dir] = f


def unlock(run_dir):
    f = _held.pop(os.path.abspath(run_dir), None)
    if f is not None:
        f.close()


def lock_holder(run_dir):
    """The pid that holds run_dir now, or None (an unheld lock file says nothing)."""
    path = os.path.join(run_dir, LOCK)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = f.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def default_augment(model):
    """FSRCNN's paper trains on augmented T91; SRCNN's on the plain 91 images."""
    return isinstance(nets.architecture(model), nets.FSRCNN)


def default_init(model, solver):
    """SRCNN under Adam starts from He's fillers: with the authors' gaussian(0.001), Adam's first
    steps (as large as the weights) leave about half of the ReLUs dead for good (measured on
    9-1-5 x3: 29/64 conv1 and 19/32 conv2 channels never active on Set5 after 5k iterations, at
    Adam 1e-3 or 1e-4; Set5 stalls near 31.5 dB). The authors' SGD moves slowly enough not to.
    FSRCNN's own fillers already are He's (MSRA)."""
    srcnn = isinstance(nets.architecture(model), nets.SRCNN)
    return "he" if srcnn and solver == "adam" else "authors"


# ---- run.json -------------------------------------------------------------------------------------

def is_run(run_dir):
    return os.path.isfile(os.path.join(run_dir, RUN_JSON))


def read_run(run_dir):
    """A run folder's run.json (model, scale, solver, data, segments)."""
    info = files.read_json(os.path.join(run_dir, RUN_JSON), "run.json")
    try:
        info["scale"] = int(info["scale"])
        nets.architecture(info["model"])
    except (KeyError, ValueError, TypeError, UserError) as exc:
        raise UserError("%s: not a run folder of run_train.sh (%s)" % (run_dir, exc)) from None
    return info


def write_run(run_dir, info):
    files.write_json(os.path.join(run_dir, RUN_JSON), info)


def only_segment_files(run_dir):
    """Whether a folder is missing, empty, or holds only what a first segment writes before its
    run.json (a start killed in between: --resume starts it again)."""
    if not os.path.isdir(run_dir):
        return True
    return all(re.fullmatch(r"data-(train|test)\.txt|(train_test|solver)-start\.prototxt|train\.log|\.lock|"
                            r"\..*\.part-.*", n)
               for n in os.listdir(run_dir))


def is_empty(run_dir):
    """Missing, or holding nothing but the lock file."""
    return not os.path.isdir(run_dir) or not [n for n in os.listdir(run_dir) if n != LOCK]


# ---- snapshots of a run ---------------------------------------------------------------------------

def snapshot_problem(path, model, scale, solver):
    """None when a solverstate and the caffemodel it names are whole and of this net, else why not."""
    try:
        state = snapshots.check_solverstate(path, model, scale, solver)
        learned = snapshots.learned_net_path(path, state)
        if learned is None:
            return "its weights %s are missing" % state.learned_net
        snapshots.check_caffemodel(learned, model, scale)
    except UserError as exc:
        return str(exc)
    return None


def newest_valid_solverstate(run_dir, model, scale, solver, log=print):
    """The newest snapshot of a run whose solverstate and weights are whole (a kill during a
    snapshot write can leave the newest truncated); None when the run has none yet."""
    for _, path in reversed(snapshots.listing(run_dir, ".solverstate")):
        if path.endswith(".relocated.solverstate"):
            continue
        problem = snapshot_problem(path, model, scale, solver)
        if problem is None:
            return path
        log("skipping snapshot %s: %s" % (os.path.basename(path), problem))
    return None


# ---- the segment's net and solver -----------------------------------------------------------------

def _generated(model, path, what):
    """A committed net/solver file is missing: one line (a variant fsrcnn-D-S-M has none: its
    files are generated here instead)."""
    if model in nets.MODELS:
        raise UserError("%s: %s missing; regenerate with tools/make_nets.py" % (path, what))


def base_net_text(model, scale, kind):
    """The committed train/test net, or for a variant (fsrcnn-D-S-M) the generator's."""
    path = net_file(model, scale, kind)
    if os.path.isfile(path):
        with open(path) as f:
            return f.read()
    _generated(model, path, "net")
    return nets.train_test_net(model, scale, "train.txt", "test.txt", nets.geometry(model, scale).label_size,
                               frozen=kind == "deconv_train_test")


def base_solver(model, scale, solver):
    """The committed solver, or for a variant (fsrcnn-D-S-M) the generator's."""
    caffe_pb2 = pycaffe.caffe_pb2()
    from google.protobuf import text_format

    path = solver_file(model, scale, solver)
    if os.path.isfile(path):
        return solvers.read(path)
    _generated(model, path, "solver")
    return text_format.Parse(solvers.solver_text(model, scale, solver, "net.prototxt", hdf5_patches.TEST_PATCHES),
                             caffe_pb2.SolverParameter())


def segment_net(base_text, sources, engine=None):
    """A base train/test net (base_net_text) with this run's data lists (train, test), and Caffe's
    `engine` on its layers where one is given (srcaffe.nets.ENGINES)."""
    caffe_pb2 = pycaffe.caffe_pb2()
    from google.protobuf import text_format

    net = text_format.Parse(base_text, caffe_pb2.NetParameter())
    if engine is not None:
        nets.set_engine(net, engine)
    for layer in net.layer:
        if layer.type == "HDF5Data":
            phase = layer.include[0].phase if layer.include else caffe_pb2.TRAIN
            layer.hdf5_data_param.source = sources[phase == caffe_pb2.TEST]
    return text_format.MessageToString(net)


def default_display(start_iter, max_iter):
    """Short runs: progress stays visible (a run keeps its first segment's interval)."""
    return max(1, min(100, (max_iter - start_iter) // 20))


def segment_solver(base, model, scale, net_path, max_iter, start_iter, base_lr, snapshot_every=None,
                   display=None):
    """A copy of a base solver (base_solver) set for one segment."""
    s = type(base)()
    s.CopyFrom(base)
    s.net = net_path
    s.max_iter = max_iter
    s.display = display or default_display(start_iter, max_iter)
    # relative to the run folder (Caffe's cwd): snapshots stay valid when the folder moves
    s.snapshot_prefix = "%s_x%d" % (model, scale)
    if base_lr is not None:
        s.base_lr = base_lr
    if snapshot_every:
        s.snapshot = snapshot_every
    return s


def end_segment(plan, outcome, iteration):
    """Record how the segment ended (finished, stopped, diverged, failed) in run.json, under
    the run's lock."""
    info = read_run(plan.run_dir)
    if info.get("segments"):
        info["segments"][-1].update(ended=outcome, end_iter=iteration)
        write_run(plan.run_dir, info)


def resume_command(model, scale, run_dir, iters=None):
    """A command a person can paste (quoted: a run folder may hold spaces)."""
    cmd = ["./run_train.sh", model] + (["--scale", str(scale)] if scale != 3 else []) + \
        ["--resume", "--run-dir", run_dir] + (["--iters", str(iters)] if iters else [])
    return quoted(cmd)


def quoted(cmd):
    """A command line as a shell reads it back."""
    return " ".join(shlex.quote(a) for a in cmd)
