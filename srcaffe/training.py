"""Everything run_train.sh needs before `caffe train` starts: data, run folder, checks.

A run folder (runs/<model>-x<scale>-<timestamp>/ by default) holds the exact prototxt and solver
of each segment, the snapshots, train.log (appended by every segment, never truncated) and
run.json. Resuming continues in the snapshot's own run folder; iteration numbers make every
snapshot name unique, so nothing of an earlier segment is overwritten.
"""
import glob
import json
import os
import re
import time

from . import ROOT, nets, patches
from .errors import UserError

SOLVERS = ("adam", "sgd")
DEFAULT_SOLVER = "adam"
INITS = ("authors", "he")


def repo_path(*parts):
    return os.path.join(ROOT, *parts)


def net_file(model, scale, kind):
    return repo_path("prototxt", "%s_x%d_%s.prototxt" % (model, scale, kind))


def solver_file(model, scale, solver):
    return repo_path("solvers", "%s_x%d_%s.prototxt" % (model, scale, solver))


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


def he_fillers(net_text):
    """The SRCNN net with Caffe's msra weight filler (He et al.: gaussian, std sqrt(2/fan_in))
    in place of the authors' gaussian std 0.001 (the biases stay constant 0)."""
    text, n = re.subn(r'weight_filler \{\s*type: "gaussian"\s*std: [0-9.e+-]+\s*\}',
                      'weight_filler {\n      type: "msra"\n    }', net_text)
    if n == 0:
        raise UserError("--init he: the net has no gaussian weight filler to replace")
    return text


# ---- checks on snapshot / weights files --------------------------------------------------------

def param_shapes(model, scale):
    """Learnable blob shapes in Caffe's order: (weight, bias) of each layer, then PReLU slopes."""
    shapes, n_in = [], 1
    spec = nets.layers(model, scale)
    for i, layer in enumerate(spec):
        if layer.kind == "conv":
            shapes += [(layer.num_output, n_in, layer.kernel, layer.kernel), (layer.num_output,)]
        else:  # Deconvolution stores its weights as (in, out, k, k)
            shapes += [(n_in, layer.num_output, layer.kernel, layer.kernel), (layer.num_output,)]
        if i < len(spec) - 1 and isinstance(nets.architecture(model), nets.FSRCNN):
            shapes.append(())     # PReLU with channel_shared: one scalar slope
        n_in = layer.num_output
    return shapes


def check_solverstate(path, model, scale, solver):
    """A clear sentence instead of Caffe's "Incorrect length of history blobs" abort.

    Returns the parsed SolverState (its `iter` is the snapshot's iteration).
    """
    from caffe.proto import caffe_pb2
    from .inference import blob_shape

    if not os.path.isfile(path):
        raise UserError("%s: snapshot file not found" % path)
    if path.endswith(".caffemodel"):
        raise UserError("%s is a .caffemodel (weights only): --snapshot resumes from a .solverstate "
                        "(use --weights to fine-tune from a .caffemodel)" % path)
    state = caffe_pb2.SolverState()
    try:
        with open(path, "rb") as f:
            state.ParseFromString(f.read())
    except Exception:
        raise UserError("%s: not a Caffe .solverstate (it does not parse)" % path)
    if not state.learned_net:
        raise UserError("%s: not a Caffe .solverstate (no learned_net in it)" % path)
    expected = param_shapes(model, scale)
    history = [blob_shape(b) for b in state.history]
    if history not in (expected, expected + expected):
        raise UserError("%s was written for another network (%d history blobs), not %s x%d"
                        % (path, len(history), model, scale))
    written_by = "adam" if len(history) == 2 * len(expected) else "sgd"   # Adam keeps two moments
    if written_by != solver:
        raise UserError("%s was written by the %s solver; resume it with --solver %s" % (path, written_by, written_by))
    return state


def locate_learned_net(path, state, cwd):
    """The solverstate to give Caffe, run from `cwd`.

    A solverstate names its .caffemodel (learned_net); when that path is gone but the file lies
    next to the solverstate (a run folder copied to another machine or folder), a relocated copy
    naming it is written into `cwd`.
    """
    learned = state.learned_net if os.path.isabs(state.learned_net) else os.path.join(cwd, state.learned_net)
    if os.path.isfile(learned):
        return path
    beside = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.basename(state.learned_net))
    if not os.path.isfile(beside):
        raise UserError("%s: its weights %s are missing" % (path, learned))
    state.learned_net = beside
    relocated = os.path.join(cwd, os.path.basename(path)[:-len(".solverstate")] + ".relocated.solverstate")
    if not os.path.exists(relocated):
        os.makedirs(cwd, exist_ok=True)
        with open(relocated, "wb") as f:
            f.write(state.SerializeToString())
    return relocated


def check_caffemodel(path, model, scale):
    """Caffe's -weights copies blobs by layer name and aborts on a shape mismatch: check first."""
    from .inference import check_weights

    if path.endswith(".solverstate"):
        raise UserError("%s is a .solverstate: resume it with --snapshot, or give its .caffemodel to --weights" % path)
    check_weights(path, model, scale)


# ---- run folder ---------------------------------------------------------------------------------

def read_run(run_dir):
    """A run folder's run.json (model, scale, solver, data, segments)."""
    try:
        with open(os.path.join(run_dir, "run.json")) as f:
            info = json.load(f)
        info["scale"] = int(info["scale"])
        nets.architecture(info["model"])
        return info
    except (OSError, ValueError, KeyError) as exc:
        raise UserError("%s: not a run folder of run_train.sh (%s)" % (run_dir, exc))


def snapshot_iteration(path):
    """N of a Caffe snapshot `<prefix>_iter_N.caffemodel|.solverstate`, else -1."""
    match = re.search(r"_iter_(\d+)\.(caffemodel|solverstate)$", os.fspath(path))
    return int(match.group(1)) if match else -1


def newest_solverstate(run_dir):
    states = glob.glob(os.path.join(run_dir, "*.solverstate"))
    if not states:
        raise UserError("%s: no .solverstate to resume from" % run_dir)
    return max(states, key=snapshot_iteration)


def substitute(text, **fields):
    """Set top-level `key: value` fields of a prototxt text (added when missing)."""
    for key, value in fields.items():
        value = '"%s"' % value if isinstance(value, str) else str(value)
        line = "%s: %s" % (key, value)
        text, n = re.subn(r"(?m)^%s:.*$" % key, line, text)
        if not n:
            text += line + "\n"
    return text


def prepare_run(model, scale, iters=None, solver=None, snapshot=None, resume=False, weights=None,
                run_dir=None, augment=None, data=None, base_lr=None, deconv_only=False, init=None, log=print):
    """Check everything, prepare data and the run folder; return what `caffe train` needs.

    data: a prepared data folder (train.txt, test.txt, meta.json) to use instead of the default
    one of this model's geometry, e.g. one class of a multi-model split.
    base_lr: this segment's learning rate instead of the solver's (e.g. a lower one to finish);
    default when resuming a run: its last segment's.
    deconv_only: train only the last layer (FSRCNN x2/x4 from the x3 model given by `weights`).
    init: the initial weights of a new run: "authors" (the prototxt's fillers) or "he" (SRCNN only);
    default: default_init().
    """
    net_kind = "deconv_train_test" if deconv_only else "train_test"
    nets.check_scale(scale)
    nets.architecture(model)
    solver = solver or DEFAULT_SOLVER
    if solver not in SOLVERS:
        raise UserError("unknown solver '%s' (known: %s)" % (solver, ", ".join(SOLVERS)))
    if snapshot and weights:
        raise UserError("--snapshot and --weights exclude each other (resume, or fine-tune)")
    if deconv_only and not (isinstance(nets.architecture(model), nets.FSRCNN) and scale != 3):
        raise UserError("--deconv-only is for FSRCNN at x2/x4, fine-tuned from an x3 model (--weights)")
    for path, what in ((net_file(model, scale, net_kind), "net"), (solver_file(model, scale, solver), "solver")):
        if not os.path.isfile(path):
            raise UserError("%s: %s missing; regenerate with tools/make_nets.py" % (path, what))
    if init is not None:
        if init not in INITS:
            raise UserError("unknown --init '%s' (known: %s)" % (init, ", ".join(INITS)))
        if snapshot or resume or weights:
            raise UserError("--init sets the weights of a new run; --snapshot, --resume and --weights bring their own")
        if init == "he" and not isinstance(nets.architecture(model), nets.SRCNN):
            raise UserError("--init he is for SRCNN: FSRCNN's own fillers already are He's (MSRA)")
    if base_lr is not None and not base_lr > 0:
        raise UserError("--base-lr must be positive, not %s" % base_lr)
    if resume and not snapshot:
        if not run_dir:
            raise UserError("--resume needs --run-dir DIR (or give --snapshot FILE)")
        snapshot = newest_solverstate(run_dir)
        log("resuming from the newest snapshot: %s" % snapshot)
    if snapshot:
        snapshot = os.path.abspath(snapshot)
        if run_dir is None and os.path.isfile(os.path.join(os.path.dirname(snapshot), "run.json")):
            run_dir = os.path.dirname(snapshot)
    if weights:
        weights = os.path.abspath(weights)
        check_caffemodel(weights, model, scale)

    # the run.json of the run this segment continues, if any (a new run's folder has none)
    info = read_run(run_dir) if run_dir and os.path.isfile(os.path.join(run_dir, "run.json")) else None
    if base_lr is None and snapshot and info and info.get("segments"):
        # Caffe's solverstate holds no learning rate: a resumed run keeps its last segment's,
        # not the solver file's (Adam's 1e-3 would undo a run that was being annealed).
        base_lr = info["segments"][-1].get("base_lr")
        if base_lr is not None:
            log("learning rate %g, the last segment's (--base-lr LR to change it)" % base_lr)
    if data is None and info:
        data = info.get("data")   # a resumed run keeps the data it was started with
        if data and not os.path.isdir(data):   # a run folder from another machine: prepare it here
            data = None
    if data:
        data = os.path.abspath(data)
        augment = bool(patches.check_matches(data, model, scale).get("augment"))
    else:
        augment = default_augment(model) if augment is None else augment
        data = patches.prepare(model, scale, augment=augment, log=log)
        patches.check_matches(data, model, scale)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    if run_dir is None:
        run_dir = repo_path("runs", "%s-x%d-%s" % (model, scale, stamp))
        while os.path.exists(run_dir):
            run_dir += "+"
    run_dir = os.path.abspath(run_dir)
    info_path = os.path.join(run_dir, "run.json")
    if info is not None:
        if (info.get("model"), info.get("scale")) != (model, scale):
            raise UserError("%s is a run of %s x%s, not %s x%d" % (run_dir, info.get("model"), info.get("scale"), model, scale))
        if not snapshot:
            raise UserError("%s already holds a run; resume it with --resume, or pick another --run-dir" % run_dir)
    else:
        if os.path.isdir(run_dir) and os.listdir(run_dir):
            raise UserError("%s exists and is not empty; pick another --run-dir" % run_dir)
        info = {}

    state = check_solverstate(snapshot, model, scale, solver) if snapshot else None
    start_iter = state.iter if state else 0
    with open(solver_file(model, scale, solver)) as f:
        solver_text = f.read()
    max_iter = iters if iters is not None else int(re.search(r"(?m)^max_iter:\s*(\d+)", solver_text).group(1))
    if max_iter <= start_iter:
        raise UserError("--iters %d is not past the snapshot's iteration %d" % (max_iter, start_iter))
    if state:
        snapshot = locate_learned_net(snapshot, state, run_dir)
    # made only now: a command refused above leaves no empty run folder behind
    os.makedirs(run_dir, exist_ok=True)

    # This segment's exact files: the net with absolute data paths, the solver pointing at it.
    segment = "from%d" % start_iter if start_iter else "start"
    net_copy = os.path.join(run_dir, "train_test-%s.prototxt" % segment)
    solver_copy = os.path.join(run_dir, "solver-%s.prototxt" % segment)
    for path in (net_copy, solver_copy):
        if os.path.exists(path):
            raise UserError("%s exists: this segment was started before; resume from a later snapshot" % path)
    with open(net_file(model, scale, net_kind)) as f:
        net_text = f.read()
    # The committed net names data/<folder>/train.txt; this copy names the folder really used.
    net_text = re.sub(r'source: "data/[^/"]+/(train|test)\.txt"', r'source: "%s/\1.txt"' % data, net_text)
    if not (start_iter or weights):
        init = init or default_init(model, solver)
        if init == "he":
            net_text = he_fillers(net_text)
    else:
        init = None
    with open(net_copy, "w") as f:
        f.write(net_text)
    with open(solver_copy, "w") as f:
        # Short runs print every iteration or so: progress stays visible.
        display = max(1, min(100, (max_iter - start_iter) // 20))
        if base_lr is not None:
            solver_text = substitute(solver_text, base_lr=base_lr)
        f.write(substitute(solver_text, net=net_copy, max_iter=max_iter, display=display,
                           # relative to the run folder (Caffe's cwd): snapshots stay valid when it moves
                           snapshot_prefix="%s_x%d" % (model, scale)))
    info.update(model=model, scale=scale, solver=solver, augment=augment, data=data)
    info.setdefault("segments", []).append(dict(started=stamp, start_iter=start_iter, max_iter=max_iter,
                                                snapshot=snapshot, weights=weights, solver_file=solver_copy,
                                                base_lr=base_lr, deconv_only=deconv_only, init=init))
    with open(info_path, "w") as f:
        json.dump(info, f, indent=1)
    return dict(RUN_DIR=run_dir, SOLVER=solver_copy, START_ITER=start_iter, MAX_ITER=max_iter,
                SNAPSHOT=snapshot or "", WEIGHTS=weights or "", LOG=os.path.join(run_dir, "train.log"),
                RESUME_ARGS="--scale %d --solver %s" % (scale, solver))
