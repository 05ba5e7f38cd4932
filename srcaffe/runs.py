"""Training runs: a run folder, and everything `caffe train` needs before it starts.

A run folder (runs/<model>-x<scale>-<timestamp>/ by default) holds the exact net and solver of
each segment (`train_test-start.prototxt`, `solver-from5000.prototxt`, ...), the snapshots,
train.log (appended by every segment, never truncated) and run.json (model, scale, solver, data,
one entry per segment). Resuming continues in the snapshot's own run folder; iteration numbers
make every snapshot name unique, so nothing of an earlier segment is overwritten. A segment that
died (killed, crashed) is simply superseded by the next one started from the same snapshot.

prepare_run(opts) checks every input (one line for each problem, before Caffe can abort),
prepares the HDF5 data when missing, and returns a Plan; srcaffe.trainer runs it.
"""
import os
import re
import time
from collections import namedtuple

from . import files, hdf5_patches, nets, snapshots, solvers
from .errors import UserError
from .paths import net_file, runs_root, solver_file
from .weights import recorded_scale

INITS = ("authors", "he")
RUN_JSON = "run.json"
LOG = "train.log"

Plan = namedtuple("Plan", "model scale solver run_dir solver_file start_iter max_iter snapshot weights log "
                          "snapshot_every")


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
    return all(re.fullmatch(r"data-(train|test)\.txt|(train_test|solver)-start\.prototxt|train\.log|\..*\.part-.*", n)
               for n in os.listdir(run_dir))


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

def segment_net(model, scale, kind, sources, init):
    """The committed train/test net (of He's fillers where init is 'he') with this run's data lists."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    with open(net_file(model, scale, "he_" + kind if init == "he" else kind)) as f:
        net = text_format.Parse(f.read(), caffe_pb2.NetParameter())
    for layer in net.layer:
        if layer.type == "HDF5Data":
            phase = layer.include[0].phase if layer.include else caffe_pb2.TRAIN
            layer.hdf5_data_param.source = sources[phase == caffe_pb2.TEST]
    return text_format.MessageToString(net)


def segment_solver(model, scale, solver, net_path, max_iter, start_iter, base_lr, snapshot_every=None):
    s = solvers.read(solver_file(model, scale, solver))
    s.net = net_path
    s.max_iter = max_iter
    s.display = max(1, min(100, (max_iter - start_iter) // 20))   # short runs: progress stays visible
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
    if o.base_lr is not None and not o.base_lr > 0:
        raise UserError("--base-lr must be positive, not %s" % o.base_lr)
    if o.iters is not None and o.iters < 1:
        raise UserError("--iters must be at least 1, not %d" % o.iters)
    if o.snapshot_every is not None and o.snapshot_every < 1:
        raise UserError("--snapshot-every must be at least 1 iteration, not %d" % o.snapshot_every)
    if o.snapshot_minutes is not None and not o.snapshot_minutes >= 0:
        raise UserError("--snapshot-minutes must be 0 (off) or more, not %s" % o.snapshot_minutes)
    if o.resume and not (o.snapshot or o.run_dir):
        raise UserError("--resume needs --run-dir DIR (or give --snapshot FILE)")
    if o.run_dir and os.path.exists(o.run_dir) and not os.path.isdir(o.run_dir):
        raise UserError("--run-dir %s: exists and is not a folder" % o.run_dir)


def prepare_run(o, log=print):
    """Check everything, prepare data and the run folder; return the Plan of this segment.

    o: the options of tools/train.py (model, scale, iters, solver, snapshot, resume, weights,
    run_dir, augment, data, base_lr, deconv_only, init, snapshot_every, snapshot_minutes).
    """
    _check_options(o)
    model, scale, solver = o.model, o.scale, o.solver
    kind = "deconv_train_test" if o.deconv_only else "train_test"
    for path, what in ((net_file(model, scale, kind), "net"), (solver_file(model, scale, solver), "solver")):
        if not os.path.isfile(path):
            raise UserError("%s: %s missing; regenerate with tools/make_nets.py" % (path, what))
    run_dir = os.path.abspath(o.run_dir) if o.run_dir else None
    snapshot = os.path.abspath(o.snapshot) if o.snapshot else None
    if snapshot and run_dir is None and is_run(os.path.dirname(snapshot)):
        run_dir = os.path.dirname(snapshot)
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
    weights = os.path.abspath(o.weights) if o.weights else None
    state = snapshots.check_solverstate(snapshot, model, scale, solver) if snapshot else None
    start_iter = state.iter if state else 0

    base_lr = o.base_lr
    segments = info.get("segments", []) if info else []
    if base_lr is None and info and segments and (snapshot or o.resume):
        # Caffe's solverstate holds no learning rate: a resumed run keeps its last segment's,
        # not the solver file's (Adam's 1e-3 would undo a run that was being annealed).
        base_lr = segments[-1].get("base_lr")
        if base_lr is not None:
            log("learning rate %g, the last segment's (--base-lr LR to change it)" % base_lr)
    if o.resume and info and not snapshot and weights is None and segments:
        # a run restarted before its first snapshot keeps its first segment's weights and init
        weights = segments[0].get("weights")
    if weights:
        snapshots.check_caffemodel(weights, model, scale)
        trained_for, where = recorded_scale(weights)
        if trained_for is not None and trained_for != scale:
            log("note: %s holds x%d weights (%s); fine-tuning them at x%d%s" % (
                weights, trained_for, where, scale, "" if o.deconv_only else
                " with every layer trained (--deconv-only trains the deconvolution alone, the paper's way)"))
    iters = o.iters
    if iters is None and o.resume and segments:
        iters = segments[-1]["max_iter"]
    max_iter = iters if iters is not None else solvers.read(solver_file(model, scale, solver)).max_iter
    if max_iter <= start_iter:
        raise UserError("--iters %d is not past the snapshot's iteration %d" % (max_iter, start_iter))

    data = o.data
    if data is None and info:
        data = info.get("data")   # a resumed run keeps the data it was started with
        if data and not os.path.isdir(data):   # a run folder from another machine: prepare it here
            data = None
    if data:
        data = os.path.abspath(data)
        augment = bool(hdf5_patches.check_matches(data, model, scale).get("augment"))
    else:
        augment = default_augment(model) if o.augment is None else o.augment
        data = hdf5_patches.prepare(model, scale, augment=augment, log=log)
        hdf5_patches.check_matches(data, model, scale)
    checked = hdf5_patches.checked_files(data)   # before Caffe, and before the run folder is made

    stamp = time.strftime("%Y%m%d-%H%M%S")
    if run_dir is None:
        run_dir = os.path.join(runs_root(), "%s-x%d-%s" % (model, scale, stamp))
        while os.path.exists(run_dir):
            run_dir += "+"
    if info is None:
        empty = not os.path.isdir(run_dir) or not os.listdir(run_dir)
        if not (empty or (o.resume and only_segment_files(run_dir))):
            raise UserError("%s exists and is not empty; pick another --run-dir" % run_dir)
        info = {}
    # made only now: a command refused above leaves no empty run folder behind
    files.check_writable_dir(run_dir)
    if state:
        snapshot = relocated(snapshot, state, run_dir)

    # This segment's exact files. A segment file that exists belongs to an attempt that died:
    # this one supersedes it (run.json keeps both attempts).
    segment = "from%d" % start_iter if start_iter else "start"
    init = None
    if not (start_iter or weights):
        init = o.init or (segments[0].get("init") if segments else None) or default_init(model, solver)
    sources = hdf5_patches.source_lists(checked, run_dir)
    net_copy = os.path.join(run_dir, "train_test-%s.prototxt" % segment)
    solver_copy = os.path.join(run_dir, "solver-%s.prototxt" % segment)
    files.write_text(net_copy, segment_net(model, scale, kind, sources, init))
    files.write_text(solver_copy, solvers.to_text(
        segment_solver(model, scale, solver, net_copy, max_iter, start_iter, base_lr, o.snapshot_every)))
    info.update(model=model, scale=scale, solver=solver, augment=augment, data=data)
    info.setdefault("segments", []).append(dict(started=stamp, start_iter=start_iter, max_iter=max_iter,
                                                snapshot=snapshot, weights=weights, solver_file=solver_copy,
                                                base_lr=base_lr, deconv_only=o.deconv_only, init=init))
    write_run(run_dir, info)
    every = solvers.read(solver_copy).snapshot
    return Plan(model, scale, solver, run_dir, solver_copy, start_iter, max_iter, snapshot, weights,
                os.path.join(run_dir, LOG), every)
