"""Run one training segment: `caffe train` on a prepared Plan (srcaffe.runs), its output
appended to the run's train.log and followed for progress, and signals handled so that nothing
is lost:

- Ctrl-C (SIGINT) and SIGTERM are passed to Caffe as SIGINT (`-sigint_effect stop`): it leaves
  the loop and takes its after-training snapshot; we keep logging until it exits, then print how
  to resume.
- SIGHUP (a closed terminal) is passed on as SIGHUP: Caffe snapshots and goes on
  (`-sighup_effect snapshot`). Our own prints that can no longer reach a terminal are dropped;
  the log goes on.
- kill -9 of this process: Caffe is killed with it (no orphan writes into the run folder); the
  run resumes from its newest whole snapshot (srcaffe.runs).
- Every `snapshot_minutes` (default 10) we send Caffe SIGHUP: a snapshot bounded in time as
  well as in iterations, so a kill -9 loses minutes of a slow model, not hours.
"""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from . import caffelog
from .errors import UserError

DEFAULT_SNAPSHOT_MINUTES = 10


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


def train(plan, caffe, gpu=None, engine=None, snapshot_minutes=DEFAULT_SNAPSHOT_MINUTES, out=None):
    """Run `caffe train` for a Plan; returns Caffe's exit status (0: finished or stopped by Ctrl-C)."""
    out = _Stream(out or sys.stdout)
    cmd = command(caffe, plan, gpu, engine)
    with open(plan.log, "a") as f:
        f.write("# %s %s\n" % (time.strftime("%Y-%m-%d %H:%M:%S"), " ".join(cmd)))
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
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

    def forward(signum, frame):
        # Ctrl-C and SIGTERM: stop with a snapshot; SIGHUP: snapshot and go on
        proc.send_signal(signal.SIGHUP if signum == signal.SIGHUP else signal.SIGINT)
    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)}

    def timed_snapshots():
        while not stop.wait(snapshot_minutes * 60):
            if proc.poll() is None:
                proc.send_signal(signal.SIGHUP)
    if snapshot_minutes:
        threading.Thread(target=timed_snapshots, daemon=True).start()
    progress = caffelog.Progress(plan.max_iter, plan.start_iter, out)
    try:
        caffelog.follow(proc.stdout, plan.log, progress)
        status = proc.wait()
    finally:
        stop.set()
        for s, h in old.items():
            signal.signal(s, h)
    progress.summary()
    return status


def failure_lines(log_path, n=5):
    """Caffe's error lines at the end of a log (glog E/F lines, failed checks), else its last lines."""
    with open(log_path, errors="replace") as f:
        lines = f.read().splitlines()[-400:]
    picked = [l for l in lines if l[:1] in "EF" and l[1:2].isdigit() or "Check failed" in l or "Error" in l]
    return "\n".join((picked or lines)[-n:])
