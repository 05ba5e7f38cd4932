"""Faults a user meets while training and shipping, each with real Caffe on small real data: two
trainers on one run folder, inputs Caffe would abort on, a full disk, data that vanishes,
non-finite numbers, and a ship interrupted half-way."""
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from srcaffe import outputs, paths, runs, snapshots

from helpers import RUN_TRAIN, TOOLS, assert_error_line, assert_one_line_error, make_caffemodel, run_train, tool

MODEL = "fsrcnn-s"






def wait_for(condition, what, timeout=300):
    """Poll for an event; the deadline only bounds a hang."""
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("no %s within %d s" % (what, timeout))


def logged_iteration(log):
    if not os.path.exists(log):
        return -1
    with open(log, errors="replace") as f:
        found = [int(l.split("Iteration ")[1].split()[0].rstrip(",")) for l in f if "] Iteration " in l
                 and ", loss = " in l]
    return found[-1] if found else -1


def start(env, *args):
    return subprocess.Popen(["bash", RUN_TRAIN, MODEL] + [str(a) for a in args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def run_bounded(env, *args, timeout=120):
    """./run_train.sh MODEL ARGS, its whole process group killed if it outlasts `timeout`."""
    proc = start(env, *args)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def stop(proc, sig=signal.SIGINT):
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    return proc.communicate(timeout=300)


def small_data(data_x3, dest, n_files=1, patches=400):
    """A prepared data folder of `n_files` small train files cut from the real x3 data."""
    os.makedirs(dest)
    with h5py.File(os.path.join(data_x3, "train_000.h5"), "r") as f:
        data, label = f["data"][:n_files * patches], f["label"][:n_files * patches]
    names = []
    for i in range(n_files):
        names.append("train_%03d.h5" % i)
        with h5py.File(os.path.join(dest, names[-1]), "w") as f:
            f.create_dataset("data", data=data[i * patches:(i + 1) * patches])
            f.create_dataset("label", data=label[i * patches:(i + 1) * patches])
    shutil.copy(os.path.join(data_x3, "test.h5"), dest)
    with open(os.path.join(dest, "train.txt"), "w") as f:
        f.write("".join(n + "\n" for n in names))
    with open(os.path.join(dest, "test.txt"), "w") as f:
        f.write("test.h5\n")
    meta = json.load(open(os.path.join(data_x3, "meta.json")))
    meta.update(files=n_files, train_patches=n_files * patches)
    json.dump(meta, open(os.path.join(dest, "meta.json"), "w"))
    return str(dest)


# ---- one trainer per run folder -------------------------------------------------------------------

@pytest.mark.slow
def test_a_second_trainer_of_a_run_folder_is_refused_naming_the_first(train_env, data_x3, tmp_path):
    run_dir = tmp_path / "held"
    log = str(run_dir / "train.log")
    first = start(train_env, "--data", data_x3, "--iters", 100000, "--resume", "--run-dir", run_dir,
                  "--snapshot-minutes", 0)
    try:
        wait_for(lambda: logged_iteration(log) >= 2, "iteration of the first trainer")
        for args in (["--resume"], [], ["--snapshot-every", 5, "--resume"]):
            # refused at once; the timeout only bounds a second trainer that trains
            second = run_bounded(train_env, "--data", data_x3, "--iters", 100000, "--run-dir", run_dir, *args)
            assert_error_line(second, str(run_dir), "another trainer", "pid %d" % runs.lock_holder(str(run_dir)))
        assert first.poll() is None, "the first trainer was disturbed"
        out, err = stop(first)
    finally:
        stop(first, signal.SIGKILL)
    assert first.returncode == 130, err[-2000:]
    info = runs.read_run(str(run_dir))
    assert len(info["segments"]) == 1 and info["segments"][0]["ended"] == "stopped"
    assert open(log).read().count(" train -solver ") == 1    # one Caffe wrote into the folder
    assert runs.lock_holder(str(run_dir)) is None            # released with its process
    again = run_train(train_env, MODEL, "--resume", "--run-dir", run_dir, "--iters", info["segments"][0]["end_iter"] + 2)
    assert again.returncode == 0, again.stderr[-2000:]


# ---- what Caffe would abort on, checked before it starts ------------------------------------------

@pytest.mark.slow
def test_a_snapshot_whose_caffemodel_is_truncated_is_refused(train_env, data_x3, tmp_path):
    run_dir = tmp_path / "cut"
    assert run_train(train_env, MODEL, "--data", data_x3, "--iters", 4, "--run-dir", run_dir).returncode == 0
    model = run_dir / ("%s_x3_iter_4.caffemodel" % MODEL)
    with open(model, "r+b") as f:
        f.truncate(os.path.getsize(model) // 2)
    out = run_train(train_env, MODEL, "--snapshot", run_dir / ("%s_x3_iter_4.solverstate" % MODEL), "--iters", 8)
    assert_error_line(out, str(model))
    assert not (run_dir / ("%s_x3_iter_8.caffemodel" % MODEL)).exists()


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf", "1e"])
def test_a_bad_caffe_conv_batch_mb_is_one_line_before_caffe(fetched, tmp_path, value):
    env = dict(os.environ, CAFFE_CONV_BATCH_MB=value)
    out = tool("predict.py", "butterfly", "--model", "fsrcnn", "--out", tmp_path, env=env)
    assert_one_line_error(out, "CAFFE_CONV_BATCH_MB=%s" % value, "non-negative number")
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_a_bad_caffe_conv_batch_mb_stops_training_before_caffe(train_env, data_x3, tmp_path):
    env = dict(train_env, CAFFE_CONV_BATCH_MB="abc")
    out = run_train(env, MODEL, "--data", data_x3, "--iters", 2, "--run-dir", tmp_path / "r")
    assert_error_line(out, "CAFFE_CONV_BATCH_MB=abc")
    assert not (tmp_path / "r").exists()
    ok = run_train(dict(train_env, CAFFE_CONV_BATCH_MB="0.5"), MODEL, "--data", data_x3, "--iters", 2,
                   "--run-dir", tmp_path / "r")
    assert ok.returncode == 0, ok.stderr[-2000:]


@pytest.mark.slow
def test_a_data_file_that_vanishes_mid_run_is_named(train_env, data_x3, tmp_path):
    data = small_data(data_x3, tmp_path / "data", n_files=2, patches=200)
    run_dir = tmp_path / "r"
    log = str(run_dir / "train.log")
    proc = start(train_env, "--data", data, "--iters", 100000, "--run-dir", run_dir, "--snapshot-every", 5,
                 "--snapshot-minutes", 0)
    try:
        wait_for(lambda: logged_iteration(log) >= 6, "iteration 6")
        shutil.rmtree(data)   # Caffe opens the next train file every other iteration
        out, err = proc.communicate(timeout=300)
    finally:
        stop(proc, signal.SIGKILL)
    assert proc.returncode == 1, err[-2000:]
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and "a data file vanished: %s" % os.path.join(data, "train_00") in lines[-1], err
    assert "Traceback" not in err and "Check failed" not in err + out and "Failed opening" not in err + out
    assert runs.read_run(str(run_dir))["segments"][-1]["ended"] == "failed"
    # its snapshots are whole; --resume names the folder that is gone
    assert runs.newest_valid_solverstate(str(run_dir), MODEL, 3, "adam")
    assert_error_line(run_train(train_env, MODEL, "--resume", "--run-dir", run_dir), data, "gone", "--data")


@pytest.mark.slow
def test_a_full_disk_during_a_snapshot_is_one_line_and_leaves_no_cut_snapshot(train_env, data_x3, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        run_dir = mnt / "run"
        # The log stops growing once the disk is full; the snapshots (every 2 iterations) then
        # meet the full disk inside Caffe's write.
        out = run_bounded(train_env, "--data", data_x3, "--iters", 100000, "--run-dir", run_dir,
                          "--snapshot-every", 2, "--snapshot-minutes", 0, timeout=600)
        assert_error_line(out, "no space left on the device")
        assert out.returncode == 1
        for it, path in snapshots.listing(str(run_dir), ".caffemodel"):   # every final name holds a whole file
            snapshots.check_caffemodel(path, MODEL, 3)
        for it, path in snapshots.listing(str(run_dir), ".solverstate"):
            snapshots.check_solverstate(path, MODEL, 3, "adam")
        assert [n for n in os.listdir(run_dir) if n.endswith(".broken")], os.listdir(run_dir)
        # with room again, the run resumes from its newest whole snapshot
        assert subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)]).returncode == 0
        newest = runs.newest_valid_solverstate(str(run_dir), MODEL, 3, "adam")
        again = run_train(train_env, MODEL, "--resume", "--run-dir", run_dir, "--iters", snapshots.iteration(newest) + 2)
        assert again.returncode == 0, again.stderr[-2000:]
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


@pytest.mark.slow
def test_a_run_folder_made_read_only_mid_run_is_one_line(train_env, data_x3, tmp_path):
    """chattr +i: no new file in the folder, for root too (the tests run as root here)."""
    run_dir = tmp_path / "run"
    proc = start(train_env, "--data", data_x3, "--iters", 100000, "--run-dir", run_dir, "--snapshot-every", 2,
                 "--snapshot-minutes", 0)
    try:
        wait_for(lambda: len(snapshots.listing(str(run_dir))) >= 2, "two snapshots")
        if subprocess.run(["chattr", "+i", str(run_dir)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not supported here")
        try:
            out, err = proc.communicate(timeout=300)
        finally:
            subprocess.run(["chattr", "-i", str(run_dir)])
    finally:
        stop(proc, signal.SIGKILL)
    assert proc.returncode == 1, err[-2000:]
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: caffe train died") and "not writable" in lines[-1], err
    assert "Traceback" not in err and "Check failed" not in err + out
    newest = runs.newest_valid_solverstate(str(run_dir), MODEL, 3, "adam")
    again = run_train(train_env, MODEL, "--resume", "--run-dir", run_dir, "--iters", snapshots.iteration(newest) + 2)
    assert again.returncode == 0, again.stderr[-2000:]


# ---- non-finite numbers ---------------------------------------------------------------------------

@pytest.mark.slow
def test_non_finite_data_is_named_before_caffe_starts(train_env, data_x3, tmp_path):
    for value, where in ((np.nan, "label"), (np.inf, "data")):
        data = small_data(data_x3, tmp_path / ("data-%s" % where))
        with h5py.File(os.path.join(data, "train_000.h5"), "r+") as f:
            block = f[where][7]
            block[0, 3, 3] = value
            f[where][7] = block
        out = run_train(train_env, MODEL, "--data", data, "--iters", 2, "--run-dir", tmp_path / ("r-" + where))
        assert_error_line(out, os.path.join(data, "train_000.h5"), "'%s'" % where, "non-finite", "patch 7")
        assert not (tmp_path / ("r-" + where)).exists()


@pytest.mark.slow
def test_non_finite_options_are_refused(train_env, tmp_path):
    for lr in ("inf", "nan", "-1", "0"):
        assert_error_line(run_train(train_env, MODEL, "--base-lr", lr, "--iters", 2, "--run-dir", tmp_path / "r"),
                          "--base-lr")
    assert_error_line(run_train(train_env, MODEL, "--snapshot-minutes", "inf", "--iters", 2, "--run-dir",
                                tmp_path / "r"), "--snapshot-minutes")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_divergence_stops_at_the_first_non_finite_loss_keeping_the_last_finite_snapshot(train_env, data_x3, tmp_path):
    run_dir = tmp_path / "diverged"
    out = run_train(train_env, MODEL, "--data", data_x3, "--iters", 400, "--base-lr", 1e30, "--snapshot-every", 1,
                    "--run-dir", run_dir, "--snapshot-minutes", 0)
    assert out.returncode == 1, out.stderr[-2000:]
    assert_error_line(out, "training diverged", "loss")
    it = int(out.stderr.strip().splitlines()[-1].split("at iteration ")[1].split(";")[0])
    assert it < 400 and "Optimization Done." not in (run_dir / "train.log").read_text()   # killed there
    left = snapshots.listing(str(run_dir))
    for _, path in left:                                             # every snapshot left is finite
        snapshots.check_caffemodel(path, MODEL, 3)
    assert all(i < it for i, _ in left)
    assert [n for n in os.listdir(run_dir) if n.endswith(".caffemodel.broken")]   # the diverged ones, set aside
    newest = runs.newest_valid_solverstate(str(run_dir), MODEL, 3, "adam")
    assert runs.read_run(str(run_dir))["segments"][-1]["ended"] == "diverged"
    hint = [l for l in out.stdout.splitlines() if l.startswith("resume:")][-1]
    if newest:
        assert "snapshot: %s" % newest in out.stdout
    assert "--base-lr 1e+29" in hint


def test_non_finite_weights_are_refused_by_every_tool(fetched, tmp_path):
    import caffe
    path = make_caffemodel(tmp_path / "nan_x3.caffemodel", "fsrcnn-s")
    net = caffe.Net(os.path.join(paths.ROOT, "prototxt", "fsrcnn-s_x3_deploy.prototxt"), path, caffe.TEST)
    net.params["conv2"][0].data[0, 0, 0, 0] = np.nan
    net.save(path)
    assert_one_line_error(tool("predict.py", "butterfly", "--model", path, "--out", tmp_path / "out"),
                          path, "conv2", "non-finite")
    assert_one_line_error(tool("export.py", "to-npz", path, tmp_path / "w.npz"), path, "non-finite")
    assert not (tmp_path / "out").exists() and not (tmp_path / "w.npz").exists()
    good = make_caffemodel(tmp_path / "good_x3.caffemodel", "fsrcnn-s")
    assert tool("export.py", "to-npz", good, tmp_path / "good.npz").returncode == 0
    arrays = dict(np.load(tmp_path / "good.npz"))
    arrays["conv1_0"][0, 0, 0, 0] = np.inf
    np.savez(tmp_path / "inf.npz", **arrays)
    assert_one_line_error(tool("export.py", "from-npz", tmp_path / "inf.npz", tmp_path / "inf.caffemodel"),
                          "inf.npz", "conv1_0", "non-finite")
    assert not (tmp_path / "inf.caffemodel").exists()


# ---- the run's recorded settings --------------------------------------------------------------------

@pytest.mark.slow
def test_resume_keeps_the_segment_settings_and_prints_a_command_that_parses(train_env, data_x3, tmp_path):
    sys.path.insert(0, TOOLS)
    import train as train_tool
    run_dir = tmp_path / "with spaces" / "run"
    first = start(train_env, "--data", data_x3, "--iters", 100000, "--snapshot-every", 3, "--run-dir", run_dir,
                  "--snapshot-minutes", 0)
    log = str(run_dir / "train.log")
    try:
        wait_for(lambda: logged_iteration(log) >= 1, "a displayed iteration past 0")
        out, err = stop(first)
    finally:
        stop(first, signal.SIGKILL)
    assert first.returncode == 130, err[-2000:]
    hint = [l for l in out.splitlines() if l.startswith("resume:")]
    assert hint, out
    argv = shlex.split(hint[-1][len("resume:"):])
    assert argv[:2] == ["./run_train.sh", MODEL]
    parsed = train_tool.parse_args(argv[1:])
    assert parsed.resume and parsed.run_dir == str(run_dir) and parsed.model == MODEL
    stopped = runs.read_run(str(run_dir))["segments"][-1]["end_iter"]
    # the pasted command resumes: --snapshot-every and the display interval are the first segment's
    target = stopped + 6
    again = subprocess.run(["bash", RUN_TRAIN] + argv[1:] + ["--iters", str(target)], capture_output=True,
                           text=True, env=train_env)
    assert again.returncode == 0, again.stderr[-2000:]
    info = runs.read_run(str(run_dir))
    second = info["segments"][-1]
    solver = open(second["solver_file"]).read()
    assert info["display"] == 100 and "snapshot: 3\n" in solver and "display: 100\n" in solver, solver
    made = [it for it, _ in snapshots.listing(str(run_dir)) if it > stopped]
    assert made == sorted(set([i for i in range(stopped + 1, target + 1) if i % 3 == 0] + [target])), made
    assert "finished: iter %d -> %d/%d" % (stopped, target, target) in again.stdout, again.stdout
    # --display sets the run's interval, kept from then on
    third = run_train(train_env, MODEL, "--resume", "--run-dir", run_dir, "--iters", target + 4, "--display", 2)
    assert third.returncode == 0, third.stderr[-2000:]
    info = runs.read_run(str(run_dir))
    assert info["display"] == 2 and "display: 2\n" in open(info["segments"][-1]["solver_file"]).read()
    # a finished run: --resume says so and exits 0 (a requeued job is not a failure)
    done = run_train(train_env, MODEL, "--resume", "--run-dir", run_dir)
    assert done.returncode == 0 and "nothing to do" in done.stdout, done.stdout + done.stderr
    assert len(runs.read_run(str(run_dir))["segments"]) == len(info["segments"])


@pytest.mark.slow
def test_a_finished_run_says_finished_when_its_last_iteration_is_not_displayed(train_env, data_x3, tmp_path):
    """display is (max_iter - start) // 20: Caffe logs no loss line for a final iteration that
    is not a multiple of it, only the final snapshot."""
    run_dir = tmp_path / "r"
    out = run_train(train_env, MODEL, "--data", data_x3, "--iters", 43, "--run-dir", run_dir)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "finished: iter 0 -> 43/43" in out.stdout, out.stdout[-2000:]
    assert "finished at iteration 43" in out.stdout


@pytest.mark.slow
def test_resume_refuses_when_the_runs_data_folder_is_gone(train_env, data_x3, tmp_path):
    data = small_data(data_x3, tmp_path / "mine")
    run_dir = tmp_path / "r"
    assert run_train(train_env, MODEL, "--data", data, "--iters", 2, "--run-dir", run_dir).returncode == 0
    before = (run_dir / "run.json").read_text()
    shutil.rmtree(data)
    out = run_train(train_env, MODEL, "--resume", "--run-dir", run_dir, "--iters", 4)
    assert_error_line(out, data, "gone", "--data")
    assert (run_dir / "run.json").read_text() == before
    ok = run_train(train_env, MODEL, "--resume", "--run-dir", run_dir, "--iters", 4, "--data", data_x3)
    assert ok.returncode == 0, ok.stderr[-2000:]


# ---- shipping: all or nothing -------------------------------------------------------------------------

SHIP_UNDER_FAULT = """
import os, shutil, signal, sys
sys.path.insert(0, %(root)r)
from srcaffe import release
kind, count = sys.argv[1], int(sys.argv[2])
seen = [0]
def die_at(real):
    def call(*a, **kw):
        seen[0] += 1
        if seen[0] > count:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **kw)
    return call
if kind == "staging":      # killed after `count` files were staged
    shutil.copyfile = die_at(shutil.copyfile)
else:                      # killed after `count` renames into place
    real_commit = release._commit
    def commit(stage, log):
        os.replace = die_at(os.replace)
        return real_commit(stage, log)
    release._commit = commit
release.ship(sys.argv[3], force=True)
"""


def ship_killed(env, run_dir, kind, count):
    code = SHIP_UNDER_FAULT % dict(root=paths.ROOT)
    out = subprocess.run([sys.executable, "-c", code, kind, str(count), str(run_dir)], capture_output=True,
                         text=True, env=env)
    assert out.returncode == -signal.SIGKILL, (out.returncode, out.stderr[-2000:])


def shipped_state(models, run_name):
    record = json.load(open(os.path.join(models, "%s_x3.json" % MODEL)))
    weights = open(os.path.join(models, "%s_x3.caffemodel" % MODEL), "rb").read()
    kept = sorted(n for n in os.listdir(os.path.join(models, "training", run_name)) if "_iter_" in n)
    return record["iterations"], weights, kept


@pytest.mark.slow
def test_ship_model_killed_half_way_leaves_the_old_model_or_is_completed(train_env, data_x3, tmp_path):
    run_dir = tmp_path / "run"
    models = str(tmp_path / "models")
    env = dict(train_env, SRCAFFE_MODELS=models)
    assert run_train(env, MODEL, "--data", data_x3, "--iters", 4, "--run-dir", run_dir).returncode == 0
    ship = [sys.executable, os.path.join(TOOLS, "ship_model.py"), str(run_dir)]
    first = subprocess.run(ship, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    old = shipped_state(models, "run")
    assert old[0] == 4 and old[1] == (run_dir / ("%s_x3_iter_4.caffemodel" % MODEL)).read_bytes()
    assert run_train(env, MODEL, "--resume", "--run-dir", run_dir, "--iters", 8).returncode == 0
    new_weights = (run_dir / ("%s_x3_iter_8.caffemodel" % MODEL)).read_bytes()

    ship_killed(env, run_dir, "staging", 2)           # the new weights staged, not yet in place
    assert shipped_state(models, "run") == old
    assert [n for n in os.listdir(models) if n.startswith(".ship-")]
    ship_killed(env, run_dir, "renames", 1)           # one file renamed into place, the others not
    readme = subprocess.run([sys.executable, os.path.join(TOOLS, "ship_model.py"), "--update-readme"],
                            capture_output=True, text=True, env=env)
    assert readme.returncode == 0 and "completing an interrupted ship" in readme.stdout, readme.stdout + readme.stderr
    iterations, weights, kept = shipped_state(models, "run")
    assert (iterations, weights) == (8, new_weights)
    assert kept == ["%s_x3_iter_8.%s" % (MODEL, e) for e in ("caffemodel", "solverstate")]
    assert not [n for n in os.listdir(models) if n.startswith(".ship-")]
    table = open(os.path.join(models, "README.md")).read()
    assert "| `%s_x3.caffemodel` | %s | x3 | 8 |" % (MODEL, MODEL) in table, table


@pytest.mark.slow
def test_ship_model_on_a_full_disk_is_one_line_and_keeps_the_old_model(train_env, data_x3, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    run_dir = tmp_path / "run"
    assert run_train(train_env, MODEL, "--data", data_x3, "--iters", 4, "--run-dir", run_dir).returncode == 0
    models = tmp_path / "models"
    models.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(models)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        old = b"the old weights"
        (models / ("%s_x3.caffemodel" % MODEL)).write_bytes(old)
        with open(models / "filler", "wb", buffering=0) as f:   # the disk full, but for 24 kB
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        os.truncate(models / "filler", os.path.getsize(models / "filler") - 24576)
        out = subprocess.run([sys.executable, os.path.join(TOOLS, "ship_model.py"), str(run_dir), "--force"],
                             capture_output=True, text=True, env=dict(train_env, SRCAFFE_MODELS=str(models)))
        assert_one_line_error(out, "no space left", "nothing was shipped")
        assert (models / ("%s_x3.caffemodel" % MODEL)).read_bytes() == old
        assert sorted(os.listdir(models)) == sorted(["%s_x3.caffemodel" % MODEL, "filler"])
    finally:
        subprocess.run(["umount", "-l", str(models)])


@pytest.mark.slow
def test_ship_model_under_another_name_leaves_the_flagship_and_lists_both(train_env, data_x3, tmp_path):
    from srcaffe.weights import recorded_scale
    run_dir = tmp_path / "run"
    models = tmp_path / "models"
    env = dict(train_env, SRCAFFE_MODELS=str(models))
    assert run_train(env, MODEL, "--data", data_x3, "--iters", 4, "--run-dir", run_dir).returncode == 0
    ship = [sys.executable, os.path.join(TOOLS, "ship_model.py"), str(run_dir)]
    assert subprocess.run(ship, capture_output=True, text=True, env=env).returncode == 0
    flagship = (models / ("%s_x3.caffemodel" % MODEL)).read_bytes()
    assert run_train(env, MODEL, "--resume", "--run-dir", run_dir, "--iters", 6).returncode == 0
    out = subprocess.run(ship + ["--name", "mine_x3"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert (models / ("%s_x3.caffemodel" % MODEL)).read_bytes() == flagship
    assert (models / "mine_x3.caffemodel").read_bytes() == (run_dir / ("%s_x3_iter_6.caffemodel" % MODEL)).read_bytes()
    assert json.load(open(models / "mine_x3.json"))["iterations"] == 6
    assert recorded_scale(str(models / "mine_x3.caffemodel")) == (3, "mine_x3.json")
    table = (models / "README.md").read_text()
    assert "| `mine_x3.caffemodel` | %s | x3 | 6 |" % MODEL in table and "| `%s_x3.caffemodel` | %s | x3 | 4 |" % (
        MODEL, MODEL) in table, table
    again = subprocess.run(ship + ["--name", "mine_x3"], capture_output=True, text=True, env=env)
    assert_one_line_error(again, "mine_x3.caffemodel", "already exists")
    assert_one_line_error(subprocess.run(ship + ["--name", "../x"], capture_output=True, text=True, env=env), "--name")


# ---- images and evaluation ----------------------------------------------------------------------------

def png_claiming(path, width, height):
    """A small PNG whose header claims width x height (nothing past the header is decoded)."""
    import struct
    import zlib
    from PIL import Image
    Image.new("L", (8, 8)).save(path)
    data = bytearray(open(path, "rb").read())
    ihdr = bytearray(data[12:29])        # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xffffffff)
    open(path, "wb").write(bytes(data))
    return str(path)


def test_a_huge_image_is_refused_before_decoding_naming_the_limit(fetched, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    huge = png_claiming(folder / "huge.png", 15000, 15000)
    out = tool("predict.py", huge, "--model", "fsrcnn-s", "--out", tmp_path / "out")
    assert_one_line_error(out, huge, "15000x15000", "SRCAFFE_MAX_IMAGE_PIXELS")
    out = tool("evaluate.py", "--method", "bicubic", "--dataset", folder, "--scale", 3)
    assert_one_line_error(out, huge, "SRCAFFE_MAX_IMAGE_PIXELS")
    out = tool("tvat.py", huge)
    assert_one_line_error(out, huge, "SRCAFFE_MAX_IMAGE_PIXELS")
    # raised, the limit lets the header through: the file is then read (and found cut short)
    out = tool("predict.py", huge, "--model", "fsrcnn-s", "--out", tmp_path / "out",
               env=dict(os.environ, SRCAFFE_MAX_IMAGE_PIXELS=str(15000 * 15000)))
    assert out.returncode == 2 and "SRCAFFE_MAX_IMAGE_PIXELS" not in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("side", [1, 7])
def test_a_tiny_image_in_an_evaluated_folder_is_named(fetched, tmp_path, side):
    from PIL import Image
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(os.path.join(fetched, "Set5", sorted(os.listdir(os.path.join(fetched, "Set5")))[0]), folder)
    Image.new("RGB", (side, side), (90, 120, 200)).save(folder / "tiny.png")
    for method in (["--method", "bicubic"], ["--model", "fsrcnn-s"]):
        out = tool("evaluate.py", *method, "--dataset", folder, "--scale", 3)
        assert_one_line_error(out, str(folder / "tiny.png"), "too small")


@pytest.mark.slow
def test_eval_snapshots_skips_a_truncated_snapshot_with_a_message(train_env, data_x3, tmp_path):
    run_dir = tmp_path / "r"
    assert run_train(train_env, MODEL, "--data", data_x3, "--iters", 6, "--snapshot-every", 2,
                     "--run-dir", run_dir).returncode == 0
    with open(run_dir / ("%s_x3_iter_4.caffemodel" % MODEL), "r+b") as f:
        f.truncate(100)
    out = tool("eval_snapshots.py", run_dir, "--dataset", "Set5", env=train_env)
    assert out.returncode == 0, out.stderr
    assert "skipping snapshot %s_x3_iter_4.caffemodel" % MODEL in out.stdout, out.stdout
    assert "iteration 2: Set5" in out.stdout and "iteration 6: Set5" in out.stdout
    assert sorted(json.load(open(run_dir / "snapshot_eval.json"))["Set5"], key=int) == ["2", "6"]


# ---- videos ---------------------------------------------------------------------------------------------

def frame_times(path):
    import av
    with av.open(str(path)) as c:
        return [round(float(f.time), 3) for f in c.decode(video=0)]


def vfr_clip(path, times):
    """A variable-frame-rate H.264 clip: frames at `times` (seconds), in a 1 ms time base."""
    import fractions
    import av
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 48, 32, "yuv420p"
        vs.codec_context.time_base = vs.time_base = fractions.Fraction(1, 1000)
        for i, t in enumerate(times):
            img = np.zeros((32, 48, 3), np.uint8)
            img[:, :, 0] = 20 * i
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), fractions.Fraction(1, 1000)
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return str(path)


def test_a_variable_frame_rate_video_keeps_the_sources_frame_times(fetched, tmp_path):
    times = [0.0, 0.04, 0.08, 0.2, 0.24, 0.5, 0.54, 0.58, 1.0, 1.04]
    clip = vfr_clip(tmp_path / "vfr.mp4", times)
    assert frame_times(clip) == times
    out = tool("predict.py", clip, "--mode", "upscale", "--model", "fsrcnn-s", "--out", tmp_path / "out")
    assert out.returncode == 0, out.stderr
    assert frame_times(tmp_path / "out" / "vfr_x3_fsrcnn-s_upscale.mp4") == times


def test_sigterm_of_a_video_predict_says_so_and_leaves_no_temporary_file(fetched, tmp_path):
    from srcaffe import datasets, video
    from srcaffe.images import load_image
    clip = video.pan_zoom_clip(str(tmp_path / "long.mp4"), load_image(datasets.resolve_image("baboon")), 96, 64, 480)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".long_x3_fsrcnn-s_upscale.99999999.abc123.tmp.mp4"   # left by a process killed with -9
    stale.write_bytes(b"half a video")
    p = subprocess.Popen([sys.executable, os.path.join(TOOLS, "predict.py"), clip, "--mode", "upscale",
                          "--model", "fsrcnn-s", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        wait_for(lambda: any(f.name.endswith(".tmp.mp4") and f.stat().st_size > 20000 for f in out.iterdir()),
                 "the encoder's first bytes", timeout=120)
        assert not stale.exists()                   # removed by the run writing the same output
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 143, err
    assert "Traceback" not in err and "terminated" in err.splitlines()[-1], err
    assert sorted(os.listdir(out)) in ([], ["long_x3_fsrcnn-s_upscale.partial.mp4"]), os.listdir(out)


def test_a_long_image_job_shows_progress_and_no_bicubic_skips_the_bicubic_image(fetched, tmp_path):
    from PIL import Image
    img = tmp_path / "tall.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((700, 300, 3)) * 255).astype(np.uint8)).save(img)   # two bands of rows
    out = tool("predict.py", img, "--mode", "upscale", "--model", "fsrcnn-s", "--no-bicubic", "--out",
               tmp_path / "out", env=dict(os.environ, SRCAFFE_PROGRESS_AFTER="0"))
    assert out.returncode == 0, out.stderr
    assert "upscaling: 100% (700/700 rows)" in out.stderr, out.stderr
    assert sorted(os.listdir(tmp_path / "out")) == [outputs.RECORD, "tall_x3_fsrcnn-s_upscale.png"]
    assert_one_line_error(tool("predict.py", img, "--model", "fsrcnn-s", "--no-bicubic", "--out", tmp_path / "o2"),
                          "--no-bicubic", "--mode upscale")


# ---- the tools' help ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, prog", [("train", "./run_train.sh"), ("ship_model", "tools/ship_model.py"),
                                        ("eval_snapshots", "tools/eval_snapshots.py")])
def test_every_option_of_the_training_tools_has_help(name, prog):
    sys.path.insert(0, TOOLS)
    import importlib
    p = importlib.import_module(name).parser()
    assert p.prog == prog
    missing = [a.option_strings or a.dest for a in p._actions if not (a.help or "").strip()]
    assert missing == []
    out = subprocess.run([sys.executable, os.path.join(TOOLS, name + ".py"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("usage: %s " % prog), out.stdout[:200]


@pytest.mark.slow
def test_a_variant_trains_and_hints_name_commands_that_exist(train_env, data_x3, tmp_path):
    """fsrcnn-D-S-M has no committed net (tools/make_nets.py writes the paper's models only): its
    net and solver are generated for the run; a hint names ./run_train.sh, which has no --arch."""
    run_dir = tmp_path / "variant"
    out = run_train(train_env, "fsrcnn-20-5-2", "--data", data_x3, "--iters", 2, "--run-dir", run_dir)
    assert out.returncode == 0, out.stderr[-2000:]
    weights = run_dir / "fsrcnn-20-5-2_x3_iter_2.caffemodel"
    assert weights.exists()
    wrong = run_train(train_env, MODEL, "--weights", weights, "--data", data_x3, "--iters", 2, "--run-dir", tmp_path / "r")
    assert_error_line(wrong, str(weights), "looks like fsrcnn-20-5-2", "train it as ./run_train.sh fsrcnn-20-5-2")
    assert "--arch" not in wrong.stderr
