"""Crash-safe training: ./run_train.sh killed with SIGKILL (the whole process group, as a crash,
an OOM kill or a lost node does) at random moments, and resumed each time with the same command."""
import os
import random
import re
import signal
import subprocess
import time

import pytest

from srcaffe import caffelog, runs, snapshots

from helpers import RUN_TRAIN, run_train

pytestmark = pytest.mark.slow   # every test here trains

MODEL, EVERY, TARGET = "fsrcnn", 20, 200     # the chaos run: snapshot interval and last iteration


def logged_iteration(log, since=0):
    """The last iteration the log shows after byte `since` (its Iteration lines), or -1."""
    if not os.path.exists(log):
        return -1
    with open(log, errors="replace") as f:
        f.seek(since)
        found = re.findall(r"Iteration (\d+)", f.read())
    return int(found[-1]) if found else -1


def complete_snapshots(run_dir):
    return [it for it, _ in snapshots.listing(run_dir, ".caffemodel")
            if os.path.exists(os.path.join(run_dir, "%s_x3_iter_%d.solverstate" % (MODEL, it)))]


def start(env, run_dir):
    cmd = ["bash", RUN_TRAIN, MODEL, "--no-aug", "--resume", "--run-dir", str(run_dir), "--iters", str(TARGET),
           "--snapshot-every", str(EVERY), "--snapshot-minutes", "0"]
    # Caffe on one thread: the other core is the watcher's, which must see each moment to kill at it
    env = dict(env, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def kill_when(proc, condition, timeout=120):
    """SIGKILL the whole process group as soon as condition() holds; False if the run ended first."""
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("no kill moment within %d s" % timeout)


def test_training_survives_sigkill_at_random_moments(train_env, tmp_path):
    """Five kinds of kill moment, each retried until it really happened (the watcher reads the log,
    which trails Caffe by a few iterations, so a kill meant for just before a snapshot can land
    just after it); every kill, meant or missed, must lose at most one snapshot interval."""
    rng = random.Random(1)
    run_dir = tmp_path / "chaos"
    log = str(run_dir / "train.log")
    # The data is prepared before the first kill.
    assert run_train(train_env, MODEL, "--no-aug", "--iters", 1, "--run-dir", tmp_path / "warm").returncode == 0

    def newest():
        done = complete_snapshots(str(run_dir))
        return done[-1] if done else 0

    segment = [0]    # where the running segment's lines start in the log: earlier ones do not count

    def now():
        return logged_iteration(log, segment[0])

    # (name, kind): "between": at a random iteration after the segment's start and before its next
    # snapshot; "next": the same after its next snapshot; "snapshot": as soon as a new snapshot
    # file appears; "iteration": at a random iteration
    moments = [("before the first snapshot", "between"), ("between two snapshots", "next"),
               ("again between the same two snapshots", "between"), ("during a snapshot write", "snapshot"),
               ("at a random moment", "iteration")]
    sizes, kills, starts = [], [], 0
    for name, kind in moments:
        for attempt in range(5):
            before = newest()
            # Caffe logs every `display` iterations: the run's first segment's, 1/20 of its length
            display = max(1, min(100, TARGET // 20))
            if kind in ("between", "next"):
                base = before + (EVERY if kind == "next" else 0)
                logged = [it for it in range(0, TARGET, display) if base < it < base + EVERY]   # iter % display == 0
                kill_at = rng.choice(logged)
                condition = lambda: now() >= kill_at and newest() == base   # noqa: E731
            elif kind == "snapshot":
                seen = set(it for it, _ in snapshots.listing(str(run_dir)))
                condition = lambda: any(it not in seen for it, _ in snapshots.listing(str(run_dir)))   # noqa: E731
            else:
                kill_at = rng.randint(before + 1, TARGET - 10)
                condition = lambda: now() >= kill_at   # noqa: E731
            segment[0] = os.path.getsize(log) if os.path.exists(log) else 0
            proc = start(train_env, run_dir)
            starts += 1
            assert kill_when(proc, condition), "%s: the run ended before the kill (%s)" % (name, proc.stderr.read())
            reached = now()
            if kind == "snapshot":
                # What a kill in the middle of Caffe's write leaves: the new snapshot cut short. Caffe
                # writes its .caffemodel, then its .solverstate; the kill may land between the two, and
                # then the file being written is the .caffemodel (the older snapshots are whole).
                new = [p for ext in (".solverstate", ".caffemodel")
                       for it, p in snapshots.listing(str(run_dir), ext) if it not in seen]
                with open(new[0], "r+b") as f:
                    f.truncate(os.path.getsize(new[0]) // 2)
            resumable = runs.newest_valid_solverstate(str(run_dir), MODEL, 3, "adam", log=lambda m: None)
            resume_at = snapshots.iteration(resumable) if resumable else 0
            assert reached - resume_at <= EVERY, "%s: killed at %d, resumes from %d" % (name, reached, resume_at)
            sizes.append(os.path.getsize(log))
            if kind not in ("between", "next") or resume_at == base:
                kills.append((name, reached, resume_at))
                break
        else:
            raise AssertionError("%s: no kill landed there in 5 attempts" % name)

    assert kills[0][2] == 0 and kills[1][2] == kills[2][2] > 0, kills   # the same two snapshots, twice
    final = start(train_env, run_dir)
    assert final.wait(timeout=600) == 0, final.stderr.read()
    assert newest() == TARGET
    assert sizes == sorted(sizes) and os.path.getsize(log) > sizes[-1]   # one log, only ever appended
    parsed = caffelog.parse_log(log)
    iters = [r["iter"] for r in parsed["train"]]
    assert iters == sorted(iters) and TARGET - iters[-1] <= max(1, TARGET // 20)   # logged every `display`
    assert parsed["snapshots"][-1]["iter"] == TARGET
    # every start is recorded in the one log and in run.json, superseded segments included
    assert open(log).read().count(" train -solver ") == starts + 1 == len(runs.read_run(str(run_dir))["segments"])


def test_a_corrupt_newest_snapshot_is_skipped_with_a_message(train_env, tmp_path):
    run_dir = tmp_path / "corrupt"
    assert run_train(train_env, "fsrcnn-s", "--no-aug", "--iters", 20, "--snapshot-every", 10,
                     "--run-dir", run_dir).returncode == 0
    with open(run_dir / "fsrcnn-s_x3_iter_20.caffemodel", "r+b") as f:
        f.truncate(100)
    out = run_train(train_env, "fsrcnn-s", "--resume", "--run-dir", run_dir, "--iters", 30)
    assert out.returncode == 0, out.stderr
    skipped = [l for l in out.stderr.splitlines() if l.startswith("skipping snapshot fsrcnn-s_x3_iter_20.solverstate")]
    assert skipped and "fsrcnn-s_x3_iter_20.caffemodel" in skipped[0], out.stderr
    assert "resuming from the newest snapshot: %s" % (run_dir / "fsrcnn-s_x3_iter_10.solverstate") in out.stderr
    assert (run_dir / "fsrcnn-s_x3_iter_30.caffemodel").exists()


def wait_for(event, proc, what, hang=300):
    """Poll until event() holds; the deadline only bounds a hang. A run that ends first fails."""
    end = time.monotonic() + hang
    while not event():
        assert proc.poll() is None, "the run ended (exit %s) before %s" % (proc.returncode, what)
        assert time.monotonic() < end, "no %s within %d s" % (what, hang)
        time.sleep(0.02)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_sigterm_stops_with_a_snapshot_and_sighup_snapshots_and_goes_on(train_env, tmp_path, sig):
    """The signals reach the whole process group, as from a terminal or a scheduler."""
    run_dir = tmp_path / sig
    log = str(run_dir / "train.log")
    proc = subprocess.Popen(["bash", RUN_TRAIN, "fsrcnn-s", "--no-aug", "--iters", "100000", "--run-dir", str(run_dir),
                             "--snapshot-minutes", "0"], env=train_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: logged_iteration(log) >= 10, proc, "10 logged iterations")
        os.killpg(proc.pid, getattr(signal, sig))
        if sig == "SIGTERM":
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 143, err     # 128 + SIGTERM: the job did not finish
            assert snapshots.listing(str(run_dir)), "no snapshot after SIGTERM"
            assert "resume:   ./run_train.sh fsrcnn-s --resume --run-dir %s\n" % run_dir in out
            assert runs.read_run(str(run_dir))["segments"][-1]["ended"] == "stopped"
        else:
            wait_for(lambda: snapshots.listing(str(run_dir)), proc, "a snapshot after SIGHUP")
            # The event that shows the run went on: Caffe logs an iteration past the snapshot's,
            # with the same process still running.
            snapped = max(it for it, _ in snapshots.listing(str(run_dir)))
            wait_for(lambda: logged_iteration(log) > snapped, proc, "an iteration after the SIGHUP snapshot")
            assert proc.poll() is None, "SIGHUP stopped the run"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
