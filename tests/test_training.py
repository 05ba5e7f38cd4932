"""Nets, solvers and ./run_train.sh with real Caffe on the real T91 data: train, resume, plot."""
import glob
import json
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from srcaffe import ROOT, hdf5_patches, nets, paths

from helpers import RUN_TRAIN, assert_error_line, assert_figure, run_train



@pytest.fixture(scope="module")
def env(train_env):
    return train_env


def iterations(log_text):
    return [int(i) for i in re.findall(r"solver\.cpp:\d+\] Iteration (\d+) \(", log_text)]


def test_generated_prototxt_and_solvers_are_up_to_date():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_nets.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("model", ["fsrcnn", "fsrcnn-s", "srcnn", "srcnn-955"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_deploy_nets_parse_in_caffe_and_output_the_derived_label_size(model, scale):
    import caffe
    caffe.set_mode_cpu()
    g = nets.geometry(model, scale)
    path = paths.net_file(model, scale, "deploy")
    net = caffe.Net(path, caffe.TEST)
    net.forward()
    out = net.blobs[net.outputs[0]].data
    assert out.shape == (1, 1, g.label_size, g.label_size)
    assert [tuple(b.data.shape) for layer in net.params.values() for b in layer] == \
        [tuple(s) for s in nets.param_shapes(model, scale)]
    # the blobs' names as weights.expected_blobs gives them without building the net
    assert [(name, [tuple(b.data.shape) for b in blobs]) for name, blobs in net.params.items()] == \
        nets.learnable_blobs(model, scale)


def test_fsrcnn_layers_follow_the_authors():
    spec = nets.layers("fsrcnn", 3)
    assert [l.name for l in spec] == ["conv1", "conv2", "conv22", "conv23", "conv24", "conv25", "conv26", "conv3"]
    assert [l.std for l in spec] == [0.0378, 0.4082, 0.1361, 0.1361, 0.1361, 0.1361, 0.189, 0.001]
    assert spec[-1].lr_mult == (0.1, 0.1) and all(l.lr_mult == (1, 0.1) for l in spec[:-1])
    assert (spec[-1].kernel, spec[-1].stride, spec[-1].pad) == (9, 3, 4)
    # generate_train.m: 11x11 LR -> 19x19 label at x3, label at 3*(x+5) - 10 (1-based) = 3*x0 + 7
    assert nets.geometry("fsrcnn", 3) == (11, 19, 7, False)
    assert nets.geometry("srcnn", 3) == (33, 21, 6, True)
    text = open(paths.net_file("fsrcnn", 3, "train_test")).read()
    assert text.count('type: "PReLU"') == 7 and text.count("channel_shared: true") == 7


@pytest.mark.slow
def test_run_train_fsrcnn_trains_resumes_and_plots(env, tmp_path):
    run_dir = tmp_path / "fsrcnn-run"
    first = run_train(env, "fsrcnn", "--iters", 30, "--run-dir", run_dir)
    assert first.returncode == 0, first.stdout[-1500:] + first.stderr[-1500:]
    state = run_dir / "fsrcnn_x3_iter_30.solverstate"
    assert state.exists() and (run_dir / "fsrcnn_x3_iter_30.caffemodel").exists()
    assert "it/s" in first.stdout and "ETA" in first.stdout          # progress a person can follow
    meta = json.load(open(glob.glob(os.path.join(env["SRCAFFE_DATA"], "T91-x3-lr11-label19-stride4-aug", "meta.json"))[0]))
    assert meta["augment"] and meta["train_patches"] > 300000
    with h5py.File(os.path.join(env["SRCAFFE_DATA"], "T91-x3-lr11-label19-stride4-aug", "train_000.h5"), "r") as f:
        assert f["data"].shape[1:] == (1, 11, 11) and f["label"].shape[1:] == (1, 19, 19)
        assert f["data"].dtype == np.float32 and 0 <= f["data"][:100].min() and f["data"][:100].max() <= 1

    log_before = (run_dir / "train.log").read_text()
    second = run_train(env, "fsrcnn", "--snapshot", state, "--iters", 60)
    assert second.returncode == 0, second.stdout[-1500:] + second.stderr[-1500:]
    log = (run_dir / "train.log").read_text()
    assert log.startswith(log_before)                       # appended, not overwritten
    resumed = iterations(log[len(log_before):])
    assert resumed[0] == 30 and resumed[-1] == 59 and "Iteration 60, loss" in log
    assert (run_dir / "fsrcnn_x3_iter_60.solverstate").exists()
    assert (run_dir / "solver-start.prototxt").exists() and (run_dir / "solver-from30.prototxt").exists()
    assert "max_iter: 60" in (run_dir / "solver-from30.prototxt").read_text()
    assert "Test net output #1: psnr" in log                  # test-phase PSNR computed by Caffe

    png = tmp_path / "curve"
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "plot_log.py"), str(run_dir / "train.log"),
                          "--out", str(png)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert_figure(str(png) + ".png")

    # --resume picks the newest snapshot of the run folder
    third = run_train(env, "fsrcnn", "--resume", "--run-dir", run_dir, "--iters", 70)
    assert third.returncode == 0, third.stderr[-1500:]
    assert "fsrcnn_x3_iter_60.solverstate" in third.stderr + third.stdout
    assert iterations((run_dir / "train.log").read_text())[-1] >= 60


@pytest.mark.slow
def test_run_train_srcnn_trains_and_resumes(env, tmp_path):
    run_dir = tmp_path / "srcnn-run"
    first = run_train(env, "srcnn", "--iters", 30, "--run-dir", run_dir, "--solver", "sgd")
    assert first.returncode == 0, first.stdout[-1500:] + first.stderr[-1500:]
    state = run_dir / "srcnn_x3_iter_30.solverstate"
    assert state.exists()
    second = run_train(env, "srcnn", "--snapshot", state, "--iters", 60, "--solver", "sgd")
    assert second.returncode == 0, second.stderr[-1500:]
    log = (run_dir / "train.log").read_text()
    assert "Resuming from" in log and (run_dir / "srcnn_x3_iter_60.caffemodel").exists()
    assert iterations(log.split("Resuming from")[1])[0] == 30
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "plot_log.py"), str(run_dir / "train.log"),
                          "--out", str(tmp_path / "srcnn")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert_figure(str(tmp_path / "srcnn.png"))   # a real plot: its size, not blank, a coloured curve


@pytest.mark.slow
def test_eval_snapshots_evaluates_each_snapshot_once_and_plots(env, tmp_path):
    run_dir = tmp_path / "fsrcnn-s-run"
    assert run_train(env, "fsrcnn-s", "--iters", 6, "--run-dir", run_dir).returncode == 0
    assert run_train(env, "fsrcnn-s", "--resume", "--run-dir", run_dir, "--iters", 12).returncode == 0

    def tool(*args):
        return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "eval_snapshots.py"), str(run_dir)]
                              + [str(a) for a in args], capture_output=True, text=True, env=env)
    first = tool("--dataset", "Set5")
    assert first.returncode == 0, first.stderr
    assert "iteration 6: Set5" in first.stdout and "iteration 12: Set5" in first.stdout
    cache = json.loads((run_dir / "snapshot_eval.json").read_text())
    assert sorted(cache["Set5"], key=int) == ["6", "12"]
    # the same numbers as tools/evaluate.py gives for that snapshot
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "evaluate.py"), "--model",
                          str(run_dir / "fsrcnn-s_x3_iter_12.caffemodel"), "--dataset", "Set5", "--scale", "3",
                          "--json", str(tmp_path / "e.json")], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert cache["Set5"]["12"]["psnr"] == pytest.approx(json.loads((tmp_path / "e.json").read_text())[-1]["mean_psnr"])   # [bicubic, model]
    assert_figure(run_dir / "snapshot_eval.png")
    # a second call evaluates nothing again, and still tabulates both snapshots
    again = tool("--dataset", "Set5")
    assert again.returncode == 0 and "iteration 6:" not in again.stdout, again.stdout
    assert re.search(r"^\s+6\s+\d+\.\d\d / ", again.stdout, re.M) and re.search(r"^\s+12\s", again.stdout, re.M)
    (tmp_path / "mine.png").write_bytes(b"keep")
    assert_error_line(tool("--dataset", "Set5", "--out", tmp_path / "mine.png"), "mine.png", "already exists")
    assert (tmp_path / "mine.png").read_bytes() == b"keep"
    assert_error_line(tool("--every", 0), "--every")
    assert_error_line(subprocess.run([sys.executable, os.path.join(ROOT, "tools", "eval_snapshots.py"),
                                   str(tmp_path / "nope")], capture_output=True, text=True, env=env), "nope")


def test_snapshot_selection():
    from srcaffe.snapshot_eval import select
    snaps = [(5, "a"), (10, "b"), (12, "c")]
    assert select(snaps) == snaps
    assert select(snaps, 10) == [(10, "b"), (12, "c")]      # the multiples, and the newest
    assert select(snaps, 5, last=False) == [(5, "a"), (10, "b")]


@pytest.mark.slow
def test_srcnn_under_adam_starts_from_he_fillers(env, tmp_path):
    """Adam with the authors' gaussian(0.001) leaves half of SRCNN's ReLUs dead: under Adam a new
    SRCNN run gets Caffe's msra filler (the run's net says so); the authors' SGD keeps theirs."""
    import caffe
    conv1_std = {}
    for solver, init in (("adam", "he"), ("sgd", "authors")):
        run_dir = tmp_path / solver
        out = run_train(env, "srcnn", "--solver", solver, "--iters", 2, "--run-dir", run_dir)
        assert out.returncode == 0, out.stderr[-1500:]
        assert json.loads((run_dir / "run.json").read_text())["segments"][0]["init"] == init
        net_text = (run_dir / "train_test-start.prototxt").read_text()
        assert ('type: "msra"' in net_text) == (init == "he") and ("std: 0.001" in net_text) == (init == "authors")
        net = caffe.Net(paths.net_file("srcnn", 3, "deploy"), str(run_dir / "srcnn_x3_iter_2.caffemodel"), caffe.TEST)
        conv1_std[solver] = net.params["conv1"][0].data.std()
    assert 0.12 < conv1_std["adam"] < 0.2      # msra: sqrt(2 / (9*9)) = 0.157
    assert conv1_std["sgd"] < 0.005            # gaussian 0.001, two small SGD steps later
    # --init and its refusals: tests/test_segment_plan.py


@pytest.mark.slow
def test_bad_inputs_are_one_line_errors(env, tmp_path):
    """What the tool itself refuses, and one refusal of the plan, as the user meets them (the
    refusals of every option and run folder: tests/test_segment_plan.py)."""
    assert_error_line(run_train(env, "vdsr"), "unknown model 'vdsr'")
    assert_error_line(run_train(env, "fsrcnn", "--scale", 5), "scale")
    assert_error_line(run_train(env, "fsrcnn", "--bogus"), "unknown option")
    assert_error_line(run_train(env, "fsrcnn", "--gpu", 0), "CPU-only")
    assert_error_line(run_train(env, "fsrcnn", "--engine", "MKLDNN"), "-engine")
    assert_error_line(run_train(env, "fsrcnn", "--engine", "cudnn"), "--engine cudnn runs on a GPU")
    assert_error_line(run_train(env, "fsrcnn", "--engine", "cudnn", "--gpu", 0), "--gpu 0", "CPU-only")
    assert_error_line(run_train(env, "fsrcnn", "--gpu", "all"), "--gpu all", "CPU-only")
    assert_error_line(run_train(env, "fsrcnn", "--engine", "tensorrt"), "--engine", "invalid choice")
    out = run_train(env, "fsrcnn-s", "--init", "he", "--run-dir", tmp_path / "r")
    assert_error_line(out, "--init he is for SRCNN", "FSRCNN")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_data_of_another_scale_is_caught_before_caffe(env, tmp_path):
    folder = tmp_path / "fake"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps(dict(scale=2, input_size=11, label_size=13)))
    with pytest.raises(Exception) as exc:
        hdf5_patches.check_matches(str(folder), "fsrcnn", 3)
    assert "x2 patches 11->13" in str(exc.value) and "fsrcnn x3 needs 11->19" in str(exc.value)


@pytest.mark.slow
def test_a_moved_run_folder_still_resumes(env, tmp_path):
    """A solverstate naming an absolute path that is gone: Caffe resumes from the relocated copy
    naming the caffemodel beside it (a folder moved with relative names: test_segment_plan.py)."""
    from caffe.proto import caffe_pb2
    run_dir = tmp_path / "orig"
    assert run_train(env, "fsrcnn-s", "--iters", 10, "--run-dir", run_dir).returncode == 0
    moved = tmp_path / "moved"
    run_dir.rename(moved)
    state = caffe_pb2.SolverState()
    state.ParseFromString((moved / "fsrcnn-s_x3_iter_10.solverstate").read_bytes())
    state.learned_net = "/gone/elsewhere/fsrcnn-s_x3_iter_10.caffemodel"
    (moved / "fsrcnn-s_x3_iter_10.solverstate").write_bytes(state.SerializeToString())
    out = run_train(env, "fsrcnn-s", "--snapshot", moved / "fsrcnn-s_x3_iter_10.solverstate", "--iters", 15)
    assert out.returncode == 0, out.stderr[-1500:]
    assert (moved / "fsrcnn-s_x3_iter_10.relocated.solverstate").exists()
    assert (moved / "fsrcnn-s_x3_iter_15.caffemodel").exists()
    assert iterations((moved / "train.log").read_text().split("Resuming from")[1])[0] == 10


@pytest.mark.slow
def test_x2_from_x3_fine_tunes_only_the_deconvolution(env, tmp_path):
    import caffe
    x3 = tmp_path / "x3"
    assert run_train(env, "fsrcnn-s", "--iters", 10, "--run-dir", x3).returncode == 0
    x3_model = x3 / "fsrcnn-s_x3_iter_10.caffemodel"
    out = run_train(env, "fsrcnn-s", "--scale", 2, "--no-aug", "--deconv-only", "--weights", x3_model,
                    "--iters", 10, "--base-lr", 0.01, "--run-dir", tmp_path / "x2")
    assert out.returncode == 0, out.stderr[-1500:]
    assert "base_lr: 0.01" in (tmp_path / "x2" / "solver-start.prototxt").read_text()
    before = caffe.Net(paths.net_file("fsrcnn-s", 3, "deploy"), str(x3_model), caffe.TEST)
    after = caffe.Net(paths.net_file("fsrcnn-s", 2, "deploy"), str(tmp_path / "x2" / "fsrcnn-s_x2_iter_10.caffemodel"),
                      caffe.TEST)
    for name in before.params:
        same = all(np.array_equal(a.data, b.data) for a, b in zip(before.params[name], after.params[name]))
        assert same == (name != "conv3"), name      # everything frozen but the deconvolution


@pytest.mark.slow
def test_ship_model_then_predict_by_name_and_resume_from_the_shipped_snapshot(env, tmp_path):
    run_dir = tmp_path / "fsrcnn-s-run"
    assert run_train(env, "fsrcnn-s", "--iters", 10, "--run-dir", run_dir).returncode == 0
    env = dict(env, SRCAFFE_MODELS=str(tmp_path / "models"))
    tool = [sys.executable, os.path.join(ROOT, "tools", "ship_model.py"), str(run_dir)]
    out = subprocess.run(tool, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "shipped fsrcnn-s x3 at iteration 10: Set5" in out.stdout
    record = json.load(open(tmp_path / "models" / "fsrcnn-s_x3.json"))
    assert record["iterations"] == 10 and set(record["results"]) == {"Set5", "Set14"}
    assert (tmp_path / "models" / "fsrcnn-s_x3.caffemodel").exists()
    assert_figure(tmp_path / "models" / "fsrcnn-s_x3_curve.png")
    assert_figure(tmp_path / "models" / "fsrcnn-s_x3_psnr.png")
    kept_eval = json.loads((tmp_path / "models" / "training" / "fsrcnn-s-run" / "snapshot_eval.json").read_text())
    assert kept_eval["Set5"]["10"]["psnr"] == pytest.approx(record["results"]["Set5"]["psnr"], abs=0.005)
    again = subprocess.run(tool, capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "already exists" in again.stderr
    # the shipped name is what the inference tools use
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "evaluate.py"), "--model", "fsrcnn-s",
                          "--dataset", "Set5", "--scale", "3"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "fsrcnn-s" in out.stdout, out.stderr
    # and the kept snapshot resumes
    kept = tmp_path / "models" / "training" / "fsrcnn-s-run" / "fsrcnn-s_x3_iter_10.solverstate"
    out = run_train(env, "fsrcnn-s", "--snapshot", kept, "--iters", 12)
    assert out.returncode == 0, out.stderr[-1500:]


@pytest.mark.slow
def test_ctrl_c_stops_with_a_snapshot_and_prints_how_to_resume(env, tmp_path):
    import signal
    import time
    run_dir = tmp_path / "interrupted"
    proc = subprocess.Popen(["bash", RUN_TRAIN, "fsrcnn-s", "--iters", "100000", "--run-dir", str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    log = run_dir / "train.log"
    deadline = time.monotonic() + 300   # bounds a hang only
    while not (log.exists() and any(i >= 20 for i in iterations(log.read_text()))):
        assert proc.poll() is None, "the run ended before iteration 20: %s" % proc.stderr.read()[-1500:]
        assert time.monotonic() < deadline, "no iteration 20 logged within 300 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)          # what Ctrl-C sends to the terminal's process group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-1500:]  # 128 + SIGINT, after the snapshot
    states = glob.glob(str(run_dir / "fsrcnn-s_x3_iter_*.solverstate"))
    assert len(states) == 1
    stopped_at = int(re.search(r"_iter_(\d+)\.solverstate", states[0]).group(1))
    assert 20 <= stopped_at < 100000
    assert "snapshot: %s" % states[0] in out
    assert "stopped: iter 0 -> %d/100000" % stopped_at in out
    hint = [l for l in out.splitlines() if l.startswith("resume:   ")]
    assert hint == ["resume:   ./run_train.sh fsrcnn-s --resume --run-dir %s" % run_dir], out
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import train as train_tool    # the hint is a command tools/train.py takes as it is
    parsed = train_tool.parse_args(hint[0].split()[2:])
    assert (parsed.model, parsed.resume, parsed.run_dir, parsed.iters) == ("fsrcnn-s", True, str(run_dir), None)
