"""One training segment, in three steps: read, plan, write.

- read_state(opts): what the options name, as it is now: the run folder (held from here, before
  its run.json is read), its run.json, the snapshot to resume from (the newest whole one for
  --resume), the weights, the base net and solver files, the data folder. Problems found while
  reading (a cut snapshot, a missing weights file, bad data) are kept in the state, not raised:
  the plan names them in the order a person meets them.
- plan_segment(opts, state): every decision of the segment (resume point, target, learning rate,
  weights or fillers, data, the settings kept from the run's last segment, what to refuse) and
  the exact files it writes, with their contents. It reads and writes nothing; a refusal is one
  UserError (or NothingToDo: a finished run resumed).
- write_segment(plan): prepares the data when the plan asks, makes and holds a new run folder,
  and writes the plan's files; returns the runs.Plan that srcaffe.trainer runs.

prepare_run(opts) is the three in a row, after the options are checked.
"""
import copy
import math
import os
import time
from dataclasses import dataclass, field
from typing import Optional

from . import caffe_env, files, hdf5_patches, nets, runs, snapshots, solvers
from .errors import UserError
from .paths import runs_root
from .weights import recorded_scale

NET_KINDS = ("train_test", "deconv_train_test", "he_train_test", "he_deconv_train_test")


# ---- the options alone ----------------------------------------------------------------------------

def check_options(o):
    """The options of tools/train.py on their own (one line for the first problem)."""
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
        if o.init not in runs.INITS:
            raise UserError("unknown --init '%s' (known: %s)" % (o.init, ", ".join(runs.INITS)))
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


# ---- read -----------------------------------------------------------------------------------------

@dataclass
class Learned:
    """Where the caffemodel of the solverstate resumed from is: `named` (as the solverstate names
    it, from the segment's run folder), whether it is there, else the file of that name beside
    the solverstate (None: nowhere)."""
    named: str
    here: bool
    beside: Optional[str]


@dataclass
class Data:
    """A prepared data folder as read: its meta.json and checked HDF5 files, or why not."""
    folder: str
    meta: Optional[dict] = None
    checked: Optional[tuple] = None
    problem: Optional[UserError] = None


@dataclass
class RunState:
    """What plan_segment decides on; read_state fills it from the disk, a test may build one."""
    run_dir: Optional[str]            # the run folder named (--run-dir, or the --snapshot's own), absolute
    new_run_dir: Optional[str]        # where a new run goes when none is named
    snapshot: Optional[str]           # --snapshot, absolute
    stamp: str                        # the segment's start, as run.json records it
    run_dir_not_folder: bool = False  # --run-dir names a file
    empty: bool = True                # the segment's folder is missing or holds only the lock file
    segment_files: bool = True        # ... or only what a first segment writes before its run.json
    info: Optional[dict] = None       # run.json
    newest: Optional[str] = None      # --resume: the run's newest whole solverstate
    skipped: list = field(default_factory=list)   # why newer snapshots were passed over
    snapshot_problem: Optional[str] = None        # why --snapshot cannot be resumed
    solverstate: object = None        # the parsed SolverState resumed from
    learned: Optional[Learned] = None
    weights: dict = field(default_factory=dict)   # path: (UserError or None, (scale, where) recorded)
    nets: dict = field(default_factory=dict)      # kind: the base net's text, or UserError
    solvers: dict = field(default_factory=dict)   # name: the base SolverParameter, or UserError
    default_data: dict = field(default_factory=dict)   # augment: the default data folder
    data_here: dict = field(default_factory=dict)      # the run's recorded data folder: whether it is there
    data: Optional[Data] = None       # the data folder the segment would use, when it is prepared


def _caught(read, *args):
    try:
        return read(*args)
    except UserError as exc:
        return exc


def _resumes_run(o, snapshot, info):
    """--resume of an existing run (not of a given snapshot)."""
    return bool(o.resume and not snapshot and info is not None)


def _first_weights(o, info, resume_from):
    """A run restarted before its first snapshot keeps its first segment's weights (and init)."""
    segments = info.get("segments", []) if info else []
    if o.resume and info and not resume_from and not o.weights and segments:
        return segments[0].get("weights")
    return None


def _read_weights(path, model, scale):
    try:
        snapshots.check_caffemodel(path, model, scale)
    except UserError as exc:
        return exc, (None, None)
    return None, recorded_scale(path)


def _read_data(folder, model, scale):
    try:
        meta = hdf5_patches.check_matches(folder, model, scale)
        return Data(folder, meta, hdf5_patches.checked_files(folder))
    except UserError as exc:
        return Data(folder, problem=exc)


def read_state(o):
    """Read what the options name (see the module's docstring); holds an existing run folder
    from here until this process exits. Raises only what stops reading: the folder held by
    another trainer, or a run.json that does not parse."""
    model, scale = o.model, o.scale
    run_dir = os.path.abspath(o.run_dir) if o.run_dir else None
    snapshot = os.path.abspath(o.snapshot) if o.snapshot else None
    if snapshot and run_dir is None and runs.is_run(os.path.dirname(snapshot)):
        run_dir = os.path.dirname(snapshot)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    new_run_dir = None
    if run_dir is None:
        new_run_dir = os.path.join(runs_root(), "%s-x%d-%s" % (model, scale, stamp))
        while os.path.exists(new_run_dir):
            new_run_dir += "+"
    if run_dir and os.path.isdir(run_dir) and (runs.is_run(run_dir) or runs.only_segment_files(run_dir)):
        runs.lock(run_dir)   # before run.json is read: it is this process's until the segment ends
    folder = run_dir or new_run_dir
    s = RunState(run_dir, new_run_dir, snapshot, stamp,
                 run_dir_not_folder=bool(o.run_dir and os.path.exists(o.run_dir) and not os.path.isdir(o.run_dir)),
                 empty=runs.is_empty(folder), segment_files=runs.only_segment_files(folder),
                 info=runs.read_run(run_dir) if run_dir and runs.is_run(run_dir) else None)
    solver = s.info.get("solver", o.solver) if _resumes_run(o, snapshot, s.info) else o.solver
    if _resumes_run(o, snapshot, s.info):
        s.newest = runs.newest_valid_solverstate(run_dir, model, scale, solver, s.skipped.append)
    elif snapshot:
        s.snapshot_problem = runs.snapshot_problem(snapshot, model, scale, solver)
    resume_from = snapshot or s.newest
    if resume_from and not s.snapshot_problem:
        s.solverstate = snapshots.check_solverstate(resume_from, model, scale, solver)
        learned = s.solverstate.learned_net
        named = learned if os.path.isabs(learned) else os.path.join(folder, learned)
        s.learned = Learned(named, os.path.isfile(named), snapshots.learned_net_path(resume_from, s.solverstate))
    for path in (os.path.abspath(o.weights) if o.weights else None, _first_weights(o, s.info, resume_from)):
        if path and path not in s.weights:
            s.weights[path] = _read_weights(path, model, scale)
    s.nets = {kind: _caught(runs.base_net_text, model, scale, kind) for kind in NET_KINDS}
    s.solvers = {name: _caught(runs.base_solver, model, scale, name) for name in {o.solver, solver}}
    s.default_data = {augment: hdf5_patches.data_dir(model, scale, augment) for augment in (False, True)}
    recorded = s.info.get("data") if s.info else None
    s.data_here = {recorded: os.path.isdir(recorded)} if recorded else {}
    try:
        chosen = choose_data(o, s.info, model, s.default_data, s.data_here)
    except UserError:
        chosen = None   # refused by the plan, in its turn
    if chosen and (not chosen.prepare or hdf5_patches.is_prepared(chosen.folder)):
        s.data = _read_data(chosen.folder, model, scale)
    return s


# ---- plan -----------------------------------------------------------------------------------------

@dataclass
class DataChoice:
    folder: str
    prepare: bool              # a default folder: prepared (or reused) by write_segment
    augment: Optional[bool]    # of a default folder (a given one's is in its meta.json)
    message: Optional[str] = None


def choose_data(o, info, model, default_data, here):
    """--data, else the run's own (refused when it is gone, unless it is the default folder of
    this geometry, which is prepared again: a run from another machine), else the default one.
    here: {the run's recorded folder: whether it exists}."""
    data = o.data
    recorded_augment = info.get("augment") if info else None
    message = None
    if data is None and info and info.get("data"):
        data = info["data"]
        if not here.get(data):
            augment = runs.default_augment(model) if recorded_augment is None else bool(recorded_augment)
            default = default_data[augment]
            if os.path.basename(data.rstrip(os.sep)) != os.path.basename(default):
                raise UserError("%s: the data folder this run trained on is gone; give --data DIR to go on "
                                "with another" % data)
            message = "the run's data folder %s is not here: using %s" % (data, default)
            data = None
    if data:
        return DataChoice(os.path.abspath(data), False, None, message)
    if o.augment is not None:
        augment = o.augment
    elif recorded_augment is not None:
        augment = bool(recorded_augment)
    else:
        augment = runs.default_augment(model)
    return DataChoice(default_data[augment], True, augment, message)


@dataclass
class SegmentPlan:
    """A segment, decided: what write_segment writes and srcaffe.trainer runs."""
    model: str
    scale: int
    solver: str
    run_dir: str
    new_run: bool                 # the folder is made (and held) by write_segment
    start_iter: int
    max_iter: int
    snapshot: Optional[str]       # the solverstate Caffe resumes from (a relocated copy where one is written)
    weights: Optional[str]        # the caffemodel it starts from (fine-tuning)
    base_lr: Optional[float]      # None: the solver file's
    init: Optional[str]           # the fillers of a new run's net: authors or he
    deconv_only: bool
    snapshot_every: Optional[int]  # as given or kept (run.json); None: the solver file's
    solver_snapshot: int          # the interval the segment's solver has
    snapshot_minutes: float
    display: int
    data: str
    augment: bool
    prepare_data: bool            # write_segment prepares (or reuses) the default data folder
    checked: Optional[tuple]      # the data's checked HDF5 files; None: checked after preparing
    net_file: str
    solver_file: str
    files: list                   # [(path, content)] in writing order: str, bytes, or a dict (JSON)
    messages: list

    def trainer_plan(self):
        return runs.Plan(self.model, self.scale, self.solver, self.run_dir, self.solver_file, self.start_iter,
                         self.max_iter, self.snapshot, self.weights, os.path.join(self.run_dir, runs.LOG),
                         self.solver_snapshot, self.snapshot_minutes, self.display)


def _kept(given, last, key, default=None):
    """A segment setting: the one given, else the run's last segment's, else the default."""
    if given is not None:
        return given
    value = last.get(key)
    return default if value is None else value


def _found(value):
    """A value read_state read, or the problem it met, raised now."""
    if isinstance(value, UserError):
        raise value
    return value


def source_files(checked, run_dir):
    """[(path, text)] of the absolute source lists Caffe's HDF5Data reads, in the run folder."""
    return [(os.path.join(run_dir, "data-" + name), "".join(p + "\n" for p in paths))
            for name, paths in zip(("train.txt", "test.txt"), checked)]


def _relocated(snapshot, solverstate, learned, run_dir):
    """(the solverstate to give Caffe, [the copy to write]). A solverstate names its .caffemodel
    relative to the run folder it was written in; when that is gone but the file lies beside
    the solverstate (a run folder copied elsewhere), a copy naming it is written."""
    if learned.here:
        return snapshot, []
    if learned.beside is None:
        raise UserError("%s: its weights %s are missing" % (snapshot, learned.named))
    state = copy.deepcopy(solverstate)
    state.learned_net = learned.beside
    out = os.path.join(run_dir, os.path.basename(snapshot)[:-len(".solverstate")] + ".relocated.solverstate")
    return out, [(out, state.SerializeToString())]


def plan_segment(o, s):
    """The segment the options ask of the state read: a SegmentPlan, or a one-line UserError
    (NothingToDo for a finished run resumed). Reads and writes nothing. The lines it had to say
    before a refusal are on the exception (.messages)."""
    said = []
    try:
        plan = _plan(o, s, said.append)
    except (UserError, runs.NothingToDo) as exc:
        exc.messages = said
        raise
    plan.messages = said
    return plan


def _plan(o, s, say):
    check_options(o)
    if s.run_dir_not_folder:
        raise UserError("--run-dir %s: exists and is not a folder" % o.run_dir)
    model, scale, solver = o.model, o.scale, o.solver
    run_dir, snapshot, info = s.run_dir, s.snapshot, s.info
    if info is not None and (info["model"], info["scale"]) != (model, scale):
        raise UserError("%s is a run of %s x%s, not %s x%d" % (run_dir, info["model"], info["scale"], model, scale))
    if info is not None and not (snapshot or o.resume):
        raise UserError("%s already holds a run; resume it with --resume, or pick another --run-dir" % run_dir)
    if o.resume and not snapshot and info is None:
        if not s.segment_files:
            raise UserError("%s: not a run folder (no run.json) and not empty: nothing to resume" % run_dir)
        say("%s: nothing to resume yet: starting a new run" % run_dir)
    elif _resumes_run(o, snapshot, info):
        solver = info.get("solver", solver)
        for line in s.skipped:
            say(line)
        snapshot = s.newest
        if snapshot:
            say("resuming from the newest snapshot: %s" % snapshot)
        else:
            say("%s has no snapshot yet: starting it again from iteration 0" % run_dir)
    elif snapshot and s.snapshot_problem:
        # the pair whole before Caffe reads it (Caffe aborts on a truncated .caffemodel)
        problem = s.snapshot_problem
        raise UserError(problem if problem.startswith(snapshot) else "%s: %s" % (snapshot, problem))
    weights = os.path.abspath(o.weights) if o.weights else None
    start_iter = s.solverstate.iter if snapshot else 0

    segments = info.get("segments", []) if info else []
    last = segments[-1] if segments and (snapshot or o.resume) else {}
    base_lr = o.base_lr
    if base_lr is None and last.get("base_lr") is not None:
        # Caffe's solverstate holds no learning rate: a resumed run keeps its last segment's,
        # not the solver file's (Adam's 1e-3 would undo a run that was being annealed).
        base_lr = last["base_lr"]
        say("learning rate %g, the last segment's (--base-lr LR to change it)" % base_lr)
    deconv_only = bool(_kept(o.deconv_only, last, "deconv_only", False))
    kind = "deconv_train_test" if deconv_only else "train_test"
    if deconv_only and not (isinstance(nets.architecture(model), nets.FSRCNN) and scale != 3):
        raise UserError("--deconv-only is for FSRCNN at x2/x4, fine-tuned from an x3 model (--weights)")
    snapshot_every = _kept(o.snapshot_every, last, "snapshot_every")
    snapshot_minutes = _kept(o.snapshot_minutes, last, "snapshot_minutes", solvers.DEFAULT_SNAPSHOT_MINUTES)
    _found(s.nets[kind])   # a committed file missing: named before anything else
    base = _found(s.solvers[solver])
    weights = weights or _first_weights(o, info, snapshot)
    if weights:
        problem, (trained_for, where) = s.weights[weights]
        _found(problem)
        if trained_for is not None and trained_for != scale:
            say("note: %s holds x%d weights (%s); fine-tuning them at x%d%s" % (
                weights, trained_for, where, scale, "" if deconv_only else
                " with every layer trained (--deconv-only trains the deconvolution alone, the paper's way)"))
    iters = o.iters
    if iters is None and o.resume and segments:
        iters = segments[-1]["max_iter"]
    max_iter = iters if iters is not None else base.max_iter
    if max_iter <= start_iter:
        if o.resume and not o.snapshot:
            raise runs.NothingToDo("%s: already trained to iteration %d (target %d): nothing to do; give --iters N "
                                   "(past %d) to train it further" % (run_dir, start_iter, max_iter, start_iter))
        raise UserError("--iters %d is not past the snapshot's iteration %d" % (max_iter, start_iter))

    chosen = choose_data(o, info, model, s.default_data, s.data_here)
    if chosen.message:
        say(chosen.message)
    read = s.data if s.data is not None and s.data.folder == chosen.folder else None
    if read is None and not chosen.prepare:
        raise UserError("%s: the data folder was not read" % chosen.folder)
    if read is not None:
        _found(read.problem)
    augment = chosen.augment if chosen.prepare else bool(read.meta.get("augment"))

    new_run = info is None
    if run_dir is None:
        run_dir = s.new_run_dir
    if new_run and not (s.empty or (o.resume and s.segment_files)):
        raise UserError("%s exists and is not empty; pick another --run-dir" % run_dir)
    if snapshot:
        snapshot, relocation = _relocated(snapshot, s.solverstate, s.learned, run_dir)
    else:
        relocation = []

    # This segment's exact files. A segment file that exists belongs to an attempt that died:
    # this one supersedes it (run.json keeps both attempts).
    segment = "from%d" % start_iter if start_iter else "start"
    init = None
    if not (start_iter or weights):
        init = o.init or (segments[0].get("init") if segments else None) or runs.default_init(model, solver)
    display = getattr(o, "display", None) or (info or {}).get("display") or runs.default_display(start_iter, max_iter)
    lists = source_files(read.checked, run_dir) if read is not None else []
    sources = tuple(os.path.join(run_dir, "data-" + name) for name in ("train.txt", "test.txt"))
    net_copy = os.path.join(run_dir, "train_test-%s.prototxt" % segment)
    solver_copy = os.path.join(run_dir, "solver-%s.prototxt" % segment)
    # Caffe's engine is this segment's choice (like --gpu): a resumed segment takes Caffe's default
    # unless given one again
    engine = o.engine if getattr(o, "engine", None) in nets.ENGINES else None
    net_text = runs.segment_net(_found(s.nets["he_" + kind if init == "he" else kind]), sources, engine)
    segment_solver = runs.segment_solver(base, model, scale, net_copy, max_iter, start_iter, base_lr,
                                         snapshot_every, display)
    record = copy.deepcopy(info) if info else {}
    record.update(model=model, scale=scale, solver=solver, augment=augment,
                  data=chosen.folder, display=display)
    record.setdefault("segments", []).append(dict(
        started=s.stamp, start_iter=start_iter, max_iter=max_iter, snapshot=snapshot, weights=weights,
        solver_file=solver_copy, base_lr=base_lr, deconv_only=deconv_only, init=init,
        snapshot_every=snapshot_every, snapshot_minutes=snapshot_minutes, engine=engine))
    return SegmentPlan(
        model, scale, solver, run_dir, new_run, start_iter, max_iter, snapshot, weights, base_lr, init, deconv_only,
        snapshot_every, segment_solver.snapshot, snapshot_minutes, display, chosen.folder, augment, chosen.prepare,
        read.checked if read is not None else None, net_copy, solver_copy,
        relocation + lists + [(net_copy, net_text), (solver_copy, solvers.to_text(segment_solver)),
                              (os.path.join(run_dir, runs.RUN_JSON), record)],
        [])


# ---- write ----------------------------------------------------------------------------------------

def write_segment(plan, log=print):
    """Carry out a SegmentPlan: the data prepared and checked where the plan asks, a new run folder
    made and held, then the plan's files written (each whole, or not at all). Returns the runs.Plan
    of the segment."""
    written = list(plan.files)
    if plan.prepare_data:
        hdf5_patches.prepare(plan.model, plan.scale, augment=plan.augment, log=log)
    if plan.checked is None:
        hdf5_patches.check_matches(plan.data, plan.model, plan.scale)
        # before Caffe, and before the run folder is made
        written = source_files(hdf5_patches.checked_files(plan.data), plan.run_dir) + written
    if plan.new_run:
        # made only now: a command refused before leaves no empty run folder behind
        files.check_writable_dir(plan.run_dir)
        runs.lock(plan.run_dir)
        if runs.is_run(plan.run_dir):   # another trainer started it while this one prepared
            raise UserError("%s already holds a run; resume it with --resume, or pick another --run-dir"
                            % plan.run_dir)
    files.check_writable_dir(plan.run_dir)
    for path, content in written:
        if isinstance(content, bytes):
            files.write_bytes(path, content)
        elif isinstance(content, dict):
            files.write_json(path, content)
        else:
            files.write_text(path, content)
    return plan.trainer_plan()


def prepare_run(o, log=print):
    """Check everything, prepare data and the run folder; return the runs.Plan of this segment.

    o: the options of tools/train.py (model, scale, iters, solver, snapshot, resume, weights,
    run_dir, augment, data, base_lr, deconv_only, init, snapshot_every, snapshot_minutes, display).
    The run folder is held (lock) from here until this process exits.
    """
    check_options(o)
    caffe_env.check()
    state = read_state(o)
    try:
        plan = plan_segment(o, state)
    except (UserError, runs.NothingToDo) as exc:
        for line in exc.messages:
            log(line)
        raise
    for line in plan.messages:
        log(line)
    return write_segment(plan, log)
