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

prepare_run(opts) checks every input (one line for each problem, before Caffe can abort),
prepares the HDF5 data when missing, and returns a Plan; srcaffe.trainer runs it.
"""
import errno
import fcntl
import math
import os
import re
import shlex
import time
from collections import namedtuple

from . import caffe_env, files, hdf5_patches, nets, snapshots, solvers
from .errors import UserError
from .paths import net_file, runs_root, solver_file
from .weights import recorded_scale

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


def relocated(path, state, run_dir):
    """The solverstate to give Caffe (run in run_dir). A solverstate names its .caffemodel
    (learned_net, relative to the run folder it was written in); when that is gone but the file
    lies next to the solverstate (a run folder copied elsewhere), a copy naming it is written."""
    named = state.learned_net if os.path.isabs(state.learned_net) else os.path.join(run_dir, state.learned_net)
    if os.path.isfile(named):
        return path
    learned = snapshots.learned_net_path(path, state)
    if learned is None:
        raise UserError("%s: its weights %s are missing" % (path, named))
    state.learned_net = learned
    out = os.path.join(run_dir, os.path.basename(path)[:-len(".solverstate")] + ".relocated.solverstate")
    files.write_bytes(out, state.SerializeToString())
    return out


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
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    path = solver_file(model, scale, solver)
    if os.path.isfile(path):
        return solvers.read(path)
    _generated(model, path, "solver")
    return text_format.Parse(solvers.solver_text(model, scale, solver, "net.prototxt", hdf5_patches.TEST_PATCHES),
                             caffe_pb2.SolverParameter())


def segment_net(model, scale, kind, sources, init):
    """The committed train/test net (of He's fillers where init is 'he') with this run's data lists."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    net = text_format.Parse(base_net_text(model, scale, "he_" + kind if init == "he" else kind),
                            caffe_pb2.NetParameter())
    for layer in net.layer:
        if layer.type == "HDF5Data":
            phase = layer.include[0].phase if layer.include else caffe_pb2.TRAIN
            layer.hdf5_data_param.source = sources[phase == caffe_pb2.TEST]
    return text_format.MessageToString(net)


def default_display(start_iter, max_iter):
    """Short runs: progress stays visible (a run keeps its first segment's interval)."""
    return max(1, min(100, (max_iter - start_iter) // 20))


def segment_solver(model, scale, solver, net_path, max_iter, start_iter, base_lr, snapshot_every=None,
                   display=None):
    s = base_solver(model, scale, solver)
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


# ---- prepare a segment ----------------------------------------------------------------------------

def _check_options(o):
    nets.check_scale(o.scale)
    arch = nets.architecture(o.model)
    solvers.check_name(o.solver)
    if o.snapshot and o.weights:
        raise UserError("--snapshot and --weights exclude each other (resume, or fine-tune)")
    if o.deconv_only and not (isinstance(arch, nets.FSRCNN) and o.scale != 3):
        raise UserError("--deconv-only is for FSRCNN at x2/x4, fine-tuned from an x3 model (--weights)")
    if o.deconv_only and not o.weights and not (o.snapshot or o.resume):
        raise UserError("--deconv-only trains only the deconvolution of an x3 model: give that model with "
                        "--weights FILE.caffemodel (random frozen layers would learn nothing)")
    if o.init is not None:
        if o.init not in INITS:
            raise UserError("unknown --init '%s' (known: %s)" % (o.init, ", ".join(INITS)))
        if o.snapshot or o.resume or o.weights:
            raise UserError("--init sets the weights of a new run; --snapshot, --resume and --weights bring their own")
        if o.init == "he" and not isinstance(arch, nets.SRCNN):
            raise UserError("--init he is for SRCNN: FSRCNN's own fillers already are He's (MSRA)")
    if o.base_lr is not None and not (math.isfinite(o.base_lr) and o.base_lr > 0):
        raise UserError("--base-lr must be a positive finite number, not %s" % o.base_lr)
    if o.iters is not None and o.iters < 1:
        raise UserError("--iters must be at least 1, not %d" % o.iters)
    if getattr(o, "display", None) is not None and o.display < 1:
        raise UserError("--display must be at least 1 iteration, not %d" % o.display)
    if o.snapshot_every is not None and o.snapshot_every < 1:
        raise UserError("--snapshot-every must be at least 1 iteration, not %d" % o.snapshot_every)
    if o.snapshot_minutes is not None and not (math.isfinite(o.snapshot_minutes) and o.snapshot_minutes >= 0):
        raise UserError("--snapshot-minutes must be 0 (off) or a finite number of minutes, not %s" % o.snapshot_minutes)
    if o.resume and not (o.snapshot or o.run_dir):
        raise UserError("--resume needs --run-dir DIR (or give --snapshot FILE)")
    if o.run_dir and os.path.exists(o.run_dir) and not os.path.isdir(o.run_dir):
        raise UserError("--run-dir %s: exists and is not a folder" % o.run_dir)


def _kept(given, last, key, default=None):
    """A segment setting: the one given, else the run's last segment's, else the default."""
    if given is not None:
        return given
    value = last.get(key)
    return default if value is None else value


def _data_folder(o, info, model, scale, log):
    """(data folder, augment): --data, else the run's own (refused when it is gone, unless it is
    the default folder of this geometry, which is prepared here: a run from another machine),
    else the default one, prepared when missing."""
    data = o.data
    recorded_augment = info.get("augment") if info else None
    if data is None and info and info.get("data"):
        data = info["data"]
        if not os.path.isdir(data):
            augment = default_augment(model) if recorded_augment is None else bool(recorded_augment)
            default = hdf5_patches.data_dir(model, scale, augment)
            if os.path.basename(data.rstrip(os.sep)) != os.path.basename(default):
                raise UserError("%s: the data folder this run trained on is gone; give --data DIR to go on "
                                "with another" % data)
            log("the run's data folder %s is not here: using %s" % (data, default))
            data = None
    if data:
        data = os.path.abspath(data)
        return data, bool(hdf5_patches.check_matches(data, model, scale).get("augment"))
    if o.augment is not None:
        augment = o.augment
    elif recorded_augment is not None:
        augment = bool(recorded_augment)
    else:
        augment = default_augment(model)
    data = hdf5_patches.prepare(model, scale, augment=augment, log=log)
    hdf5_patches.check_matches(data, model, scale)
    return data, augment


def prepare_run(o, log=print):
    """Check everything, prepare data and the run folder; return the Plan of this segment.

    o: the options of tools/train.py (model, scale, iters, solver, snapshot, resume, weights,
    run_dir, augment, data, base_lr, deconv_only, init, snapshot_every, snapshot_minutes).
    The run folder is held (lock) from here until this process exits.
    """
    _check_options(o)
    caffe_env.check()
    model, scale, solver = o.model, o.scale, o.solver
    run_dir = os.path.abspath(o.run_dir) if o.run_dir else None
    snapshot = os.path.abspath(o.snapshot) if o.snapshot else None
    if snapshot and run_dir is None and is_run(os.path.dirname(snapshot)):
        run_dir = os.path.dirname(snapshot)
    if run_dir and os.path.isdir(run_dir) and (is_run(run_dir) or only_segment_files(run_dir)):
        lock(run_dir)   # before run.json is read: it is this process's until the segment ends
    info = read_run(run_dir) if run_dir and is_run(run_dir) else None
    if info is not None and (info["model"], info["scale"]) != (model, scale):
        raise UserError("%s is a run of %s x%s, not %s x%d" % (run_dir, info["model"], info["scale"], model, scale))
    if info is not None and not (snapshot or o.resume):
        raise UserError("%s already holds a run; resume it with --resume, or pick another --run-dir" % run_dir)
    if o.resume and not snapshot and info is None:
        if not only_segment_files(run_dir):
            raise UserError("%s: not a run folder (no run.json) and not empty: nothing to resume" % run_dir)
        log("%s: nothing to resume yet: starting a new run" % run_dir)
    elif o.resume and not snapshot:
        solver = info.get("solver", solver)
        snapshot = newest_valid_solverstate(run_dir, model, scale, solver, log)
        if snapshot:
            log("resuming from the newest snapshot: %s" % snapshot)
        else:
            log("%s has no snapshot yet: starting it again from iteration 0" % run_dir)
    elif snapshot:
        # the pair whole before Caffe reads it (Caffe aborts on a truncated .caffemodel)
        problem = snapshot_problem(snapshot, model, scale, solver)
        if problem:
            raise UserError(problem if problem.startswith(snapshot) else "%s: %s" % (snapshot, problem))
    weights = os.path.abspath(o.weights) if o.weights else None
    state = snapshots.check_solverstate(snapshot, model, scale, solver) if snapshot else None
    start_iter = state.iter if state else 0

    segments = info.get("segments", []) if info else []
    last = segments[-1] if segments and (snapshot or o.resume) else {}
    base_lr = o.base_lr
    if base_lr is None and last.get("base_lr") is not None:
        # Caffe's solverstate holds no learning rate: a resumed run keeps its last segment's,
        # not the solver file's (Adam's 1e-3 would undo a run that was being annealed).
        base_lr = last["base_lr"]
        log("learning rate %g, the last segment's (--base-lr LR to change it)" % base_lr)
    deconv_only = bool(_kept(o.deconv_only, last, "deconv_only", False))
    kind = "deconv_train_test" if deconv_only else "train_test"
    if deconv_only and not (isinstance(nets.architecture(model), nets.FSRCNN) and scale != 3):
        raise UserError("--deconv-only is for FSRCNN at x2/x4, fine-tuned from an x3 model (--weights)")
    snapshot_every = _kept(o.snapshot_every, last, "snapshot_every")
    snapshot_minutes = _kept(o.snapshot_minutes, last, "snapshot_minutes", DEFAULT_SNAPSHOT_MINUTES)
    base_net_text(model, scale, kind)   # a committed file missing: named before anything else
    base_solver(model, scale, solver)
    if o.resume and info and not snapshot and weights is None and segments:
        # a run restarted before its first snapshot keeps its first segment's weights and init
        weights = segments[0].get("weights")
    if weights:
        snapshots.check_caffemodel(weights, model, scale)
        trained_for, where = recorded_scale(weights)
        if trained_for is not None and trained_for != scale:
            log("note: %s holds x%d weights (%s); fine-tuning them at x%d%s" % (
                weights, trained_for, where, scale, "" if deconv_only else
                " with every layer trained (--deconv-only trains the deconvolution alone, the paper's way)"))
    iters = o.iters
    if iters is None and o.resume and segments:
        iters = segments[-1]["max_iter"]
    max_iter = iters if iters is not None else base_solver(model, scale, solver).max_iter
    if max_iter <= start_iter:
        if o.resume and not o.snapshot:
            raise NothingToDo("%s: already trained to iteration %d (target %d): nothing to do; give --iters N "
                              "(past %d) to train it further" % (run_dir, start_iter, max_iter, start_iter))
        raise UserError("--iters %d is not past the snapshot's iteration %d" % (max_iter, start_iter))

    data, augment = _data_folder(o, info, model, scale, log)
    checked = hdf5_patches.checked_files(data)   # before Caffe, and before the run folder is made

    stamp = time.strftime("%Y%m%d-%H%M%S")
    if run_dir is None:
        run_dir = os.path.join(runs_root(), "%s-x%d-%s" % (model, scale, stamp))
        while os.path.exists(run_dir):
            run_dir += "+"
    if info is None:
        if not (is_empty(run_dir) or (o.resume and only_segment_files(run_dir))):
            raise UserError("%s exists and is not empty; pick another --run-dir" % run_dir)
        # made only now: a command refused above leaves no empty run folder behind
        files.check_writable_dir(run_dir)
        lock(run_dir)
        if is_run(run_dir):   # another trainer started it while this one prepared
            raise UserError("%s already holds a run; resume it with --resume, or pick another --run-dir" % run_dir)
        info = {}
    files.check_writable_dir(run_dir)
    if state:
        snapshot = relocated(snapshot, state, run_dir)

    # This segment's exact files. A segment file that exists belongs to an attempt that died:
    # this one supersedes it (run.json keeps both attempts).
    segment = "from%d" % start_iter if start_iter else "start"
    init = None
    if not (start_iter or weights):
        init = o.init or (segments[0].get("init") if segments else None) or default_init(model, solver)
    display = getattr(o, "display", None) or info.get("display") or default_display(start_iter, max_iter)
    sources = hdf5_patches.source_lists(checked, run_dir)
    net_copy = os.path.join(run_dir, "train_test-%s.prototxt" % segment)
    solver_copy = os.path.join(run_dir, "solver-%s.prototxt" % segment)
    files.write_text(net_copy, segment_net(model, scale, kind, sources, init))
    files.write_text(solver_copy, solvers.to_text(
        segment_solver(model, scale, solver, net_copy, max_iter, start_iter, base_lr, snapshot_every, display)))
    info.update(model=model, scale=scale, solver=solver, augment=augment, data=data, display=display)
    info.setdefault("segments", []).append(dict(started=stamp, start_iter=start_iter, max_iter=max_iter,
                                                snapshot=snapshot, weights=weights, solver_file=solver_copy,
                                                base_lr=base_lr, deconv_only=deconv_only, init=init,
                                                snapshot_every=snapshot_every, snapshot_minutes=snapshot_minutes))
    write_run(run_dir, info)
    every = solvers.read(solver_copy).snapshot
    return Plan(model, scale, solver, run_dir, solver_copy, start_iter, max_iter, snapshot, weights,
                os.path.join(run_dir, LOG), every, snapshot_minutes, display)


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
