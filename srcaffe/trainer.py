"""Run one training segment: `caffe train` on a prepared Plan (srcaffe.runs), its output
appended to the run's train.log and followed for progress, and signals handled so that nothing
is lost:

- Ctrl-C (SIGINT) and SIGTERM are passed to Caffe as SIGINT (`-sigint_effect stop`): it leaves
  the loop and takes its after-training snapshot; we keep logging until it exits, then print how
  to resume, and exit 130 (SIGINT) or 143 (SIGTERM): a scheduler sees the job did not finish.
- SIGHUP (a closed terminal) is passed on as SIGHUP: Caffe snapshots and goes on
  (`-sighup_effect snapshot`). Our own prints that can no longer reach a terminal are dropped;
  the log goes on.
- kill -9 of this process: Caffe is killed with it (no orphan writes into the run folder); the
  run resumes from its newest whole snapshot (srcaffe.runs).
- Every `snapshot_minutes` (default 10) we send Caffe SIGHUP: a snapshot bounded in time as
  well as in iterations, so a kill -9 loses minutes of a slow model, not hours.
- A non-finite loss (nan, inf) in the log: Caffe is killed at once (no snapshot of diverged
  weights), the segment fails, and the run keeps its last finite snapshot.
- When the segment ends, each snapshot it wrote is checked (a full disk or a read-only folder
  leaves Caffe's write cut short under its final name): a broken one is renamed aside
  (NAME.broken), so nothing trusts it; when Caffe dies, one line says why.
"""
import errno
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import namedtuple

from . import caffelog, device, files, nets, paths, runs, segments, snapshots, solvers
from .errors import UserError
from .paths import repo_path

DEFAULT_SNAPSHOT_MINUTES = runs.DEFAULT_SNAPSHOT_MINUTES
BROKEN = ".broken"

# code: the exit status for the tool; outcome: finished, stopped, diverged or failed;
# iteration: the last one reached; message: why it failed (one line), else None
Result = namedtuple("Result", "code outcome iteration message")


def caffe_binary():
    """The `caffe` tool linked into this interpreter's venv by tools/setup.sh, else on PATH."""
    for cand in (os.path.join(sys.prefix, "bin", "caffe"), shutil.which("caffe")):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise UserError("no caffe binary in %s/bin or on PATH: run tools/setup.sh" % sys.prefix)


def has_engine_option(caffe):
    out = subprocess.run([caffe, "train", "--help"], capture_output=True, text=True)
    return "-engine" in out.stdout + out.stderr


def _die_with_parent():
    """In the child: Caffe is killed when this process dies (kill -9, OOM), so no orphan goes on
    writing snapshots into the run folder beside the next, resumed, segment."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class _Stream:
    """stdout that survives a closed terminal (SIGHUP): writes that fail are dropped."""

    def __init__(self, stream):
        self.stream, self.tty = stream, stream.isatty()

    def isatty(self):
        return self.tty

    def write(self, text):
        try:
            self.stream.write(text)
        except (OSError, ValueError):
            self.stream = open(os.devnull, "w")

    def flush(self):
        try:
            self.stream.flush()
        except (OSError, ValueError):
            self.stream = open(os.devnull, "w")


def command(caffe, plan, gpu=None, engine=None):
    cmd = [caffe, "train", "-solver", plan.solver_file, "-sigint_effect", "stop", "-sighup_effect", "snapshot"]
    if plan.snapshot:
        cmd += ["-snapshot", plan.snapshot]
    if plan.weights:
        cmd += ["-weights", plan.weights]
    if gpu is not None:
        cmd += ["-gpu", str(gpu)]
    if engine:
        cmd += ["-engine", engine]
    return cmd


class _Watch:
    """Feeds Progress, and kills Caffe at the first non-finite training loss."""

    def __init__(self, progress, proc):
        self.progress, self.proc, self.diverged = progress, proc, None

    def feed(self, line):
        rec = self.progress.feed(line)
        if rec.kind == caffelog.Kind.ITER and self.diverged is None:
            if rec.value is not None and not math.isfinite(rec.value):
                self.diverged = (rec.iter, rec.text)
                if self.proc.poll() is None:
                    self.proc.kill()   # SIGKILL: no snapshot of the diverged weights


def train(plan, caffe, gpu=None, engine=None, snapshot_minutes=None, out=None):
    """Run `caffe train` for a Plan (its run folder held by this process, runs.lock); returns a
    Result. snapshot_minutes: the plan's unless given."""
    out = _Stream(out or sys.stdout)
    snapshot_minutes = plan.snapshot_minutes if snapshot_minutes is None else snapshot_minutes
    cmd = command(caffe, plan, gpu, engine)
    try:
        with open(plan.log, "a") as f:
            f.write("# %s %s\n" % (time.strftime("%Y-%m-%d %H:%M:%S"), " ".join(cmd)))
    except OSError as exc:
        raise UserError(files.describe_os_error(plan.log, exc)) from None
    env = paths.child_env(GLOG_logtostderr="1", GLOG_minloglevel="0")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    out.write("run folder: %s\n" % plan.run_dir)
    out.write("training %s x%d from iteration %d to %d; log: %s (Ctrl-C stops with a snapshot)\n"
              % (plan.model, plan.scale, plan.start_iter, plan.max_iter, plan.log))
    out.flush()
    # Caffe runs in a session of its own, and signals reach it from us only: a SIGTERM to the
    # whole group (kill, a scheduler) would otherwise kill it before its snapshot.
    proc = subprocess.Popen(cmd, cwd=plan.run_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=_die_with_parent)
    stop = threading.Event()
    stopped_by = []

    def forward(signum, frame):
        # Ctrl-C and SIGTERM: stop with a snapshot; SIGHUP: snapshot and go on
        if signum != signal.SIGHUP:
            stopped_by.append(signum)
        if proc.poll() is None:
            proc.send_signal(signal.SIGHUP if signum == signal.SIGHUP else signal.SIGINT)
    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)}

    def timed_snapshots():
        while not stop.wait(snapshot_minutes * 60):
            if proc.poll() is None:
                proc.send_signal(signal.SIGHUP)
    if snapshot_minutes:
        threading.Thread(target=timed_snapshots, daemon=True).start()
    progress = caffelog.Progress(plan.max_iter, plan.start_iter, out)
    progress.show_fatal = False   # the tool says in one line why Caffe died (failure_reason)
    watch = _Watch(progress, proc)
    try:
        log_error = caffelog.follow(proc.stdout, plan.log, watch)
        status = proc.wait()
    finally:
        stop.set()
        for s, h in old.items():
            signal.signal(s, h)
    progress.summary()
    set_aside = check_segment_snapshots(plan, log=lambda m: out.write(m + "\n"))
    reached = progress.end_iter if progress.end_iter is not None else plan.start_iter
    if watch.diverged:
        it, loss = watch.diverged
        result = Result(1, "diverged", it, "training diverged: loss %s at iteration %d" % (loss, it))
    elif stopped_by and status in (-signal.SIGINT, -signal.SIGTERM):
        # stopped before Caffe's own handler was in place (while it set up): no snapshot
        result = Result(128 + stopped_by[0], "stopped", reached, None)
    elif status != 0:
        result = Result(1, "failed", reached, failure_reason(plan, status, log_error, set_aside))
    elif progress.finished:
        result = Result(0, "finished", reached, None)
    else:
        sig = stopped_by[0] if stopped_by else signal.SIGINT
        result = Result(128 + sig, "stopped", reached, None)
    try:
        runs.end_segment(plan, result.outcome, result.iteration)
    except UserError:
        pass   # a full disk or a read-only folder: the message below already says so
    return result


def _check_file(path, plan):
    try:
        if path.endswith(".caffemodel"):
            snapshots.check_caffemodel(path, plan.model, plan.scale)
        else:
            snapshots.check_solverstate(path, plan.model, plan.scale, plan.solver)
    except UserError as exc:
        return str(exc)
    return None


def check_segment_snapshots(plan, log=print):
    """Check the snapshots this segment wrote; rename broken ones aside (NAME.broken: a write cut
    short by a full disk, diverged weights), a caffemodel's solverstate with it. Returns the
    paths set aside."""
    aside = []
    for ext in (".caffemodel", ".solverstate"):
        for it, path in snapshots.listing(plan.run_dir, ext):
            if it <= plan.start_iter or path.endswith(".relocated.solverstate") or path in aside:
                continue
            problem = _check_file(path, plan)
            if problem is None:
                continue
            pair = [path]
            if ext == ".caffemodel":
                state = path[:-len(ext)] + ".solverstate"
                if os.path.isfile(state):
                    pair.append(state)
            for p in pair:
                try:
                    os.replace(p, p + BROKEN)
                except OSError:
                    continue
                aside.append(p)
            log("set aside snapshot %s as %s: %s" % (os.path.basename(path), os.path.basename(path) + BROKEN, problem))
    return aside


def _probe_write(folder):
    """None if `folder` takes a small file now, else the OSError."""
    probe = os.path.join(folder, ".write-probe-%d" % os.getpid())
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return exc
    finally:
        if os.path.lexists(probe):
            try:
                os.remove(probe)
            except OSError:
                pass
    return None


def _data_files(run_dir):
    found = []
    for name in ("data-train.txt", "data-test.txt"):
        try:
            with open(os.path.join(run_dir, name)) as f:
                found += [l.strip() for l in f if l.strip()]
        except OSError:
            pass
    return found


def condensed(line):
    """A glog line without its prefix: 'Check failed: ... (io.cpp:72)'."""
    m = caffelog.GLOG.match(line)
    if not m:
        return line.strip()
    where = re.search(r"\s([\w.]+:\d+)\]", line[:m.end()])
    return "%s%s" % (line[m.end():].strip(), " (%s)" % where.group(1) if where else "")


def failure_reason(plan, status, log_error=None, set_aside=()):
    """One line: why `caffe train` died (no space left, a folder not writable, a data file that
    vanished, else Caffe's own fatal line)."""
    what = "caffe train died (%s)" % ("signal %s" % signal.Signals(-status).name if status < 0 else "exit %d" % status)
    aside = "; set aside its cut-short snapshot %s" % ", ".join(os.path.basename(p) for p in set_aside) \
        if set_aside else ""
    try:
        with open(plan.log, errors="replace") as f:
            tail = f.read().splitlines()[-200:]
    except OSError:
        tail = []
    fatal = [l for l in tail if l[:1] == "F" and caffelog.GLOG.match(l) or "Check failed" in l]
    missing = [p for p in _data_files(plan.run_dir) if not os.path.isfile(p)]
    if missing:
        return "%s: a data file vanished: %s" % (what, missing[0])
    problem = _probe_write(plan.run_dir)
    if problem is None and isinstance(log_error, OSError):
        problem = log_error
    if problem is not None and problem.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
        return "%s: %s%s" % (what, files.describe_os_error(plan.run_dir, problem), aside)
    if fatal:
        return "%s: %s%s" % (what, condensed(fatal[-1]), aside)
    return "%s%s; see %s" % (what, aside, plan.log)


# ---- ./run_train.sh (tools/train.py) --------------------------------------------------------------

def run_segment(o):
    """One segment for the options of tools/train.py: checked, prepared, trained; prints where
    the snapshot is and the command that goes on. Returns the exit code."""
    caffe = caffe_binary()
    intel = o.engine if o.engine in nets.INTEL_ENGINES else None   # else set in the segment's net
    if intel and not has_engine_option(caffe):
        raise UserError("--engine %s: this Caffe (%s) has no -engine option; MKL2017/MKLDNN engines exist only "
                        "in Intel's Caffe (install it and set CAFFE_ROOT)" % (o.engine, os.path.realpath(caffe)))
    if o.gpu is not None:
        device.check_gpu(o.gpu, caffe)
    device.check_engine(o.engine, o.gpu, caffe)
    try:
        plan = segments.prepare_run(o, log=lambda msg: print(msg, file=sys.stderr))
    except runs.NothingToDo as done:
        print(done)
        return 0
    result = train(plan, caffe, gpu=o.gpu, engine=intel)
    newest = runs.newest_valid_solverstate(plan.run_dir, plan.model, plan.scale, plan.solver, log=lambda m: None)
    resume = runs.resume_command(plan.model, plan.scale, plan.run_dir)
    if result.outcome in ("failed", "diverged"):
        if newest:
            print("snapshot: %s (the newest whole one)" % newest)
        if result.outcome == "diverged":   # a tenth of this segment's learning rate
            resume += " --base-lr %g" % (solvers.base_lr(plan.solver_file) / 10)
        print("resume:   %s" % resume)
        print("error: %s; log: %s" % (result.message, plan.log), file=sys.stderr)
        return result.code
    if newest:
        print("snapshot: %s" % newest)
    if result.outcome == "finished":
        print("finished at iteration %d; to train further: %s" % (
            result.iteration, runs.resume_command(plan.model, plan.scale, plan.run_dir, 2 * plan.max_iter)))
    else:
        print("resume:   %s" % resume)
    print("plot:     %s" % runs.quoted([sys.executable, repo_path("tools", "plot_log.py"), plan.log]))
    return result.code
