"""srcaffe.caffelog and tools/plot_log.py: parse Caffe logs (resumed, tested, across midnight),
follow a running `caffe train`, write CSV/PNG; and the same on a real Caffe log."""
import csv
import io
import os
import subprocess
import sys

import pytest

from srcaffe import caffelog

from helpers import assert_figure, require

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAFFE = os.path.join(sys.prefix, "bin", "caffe")
PLOT_LOG = os.path.join(REPO, "tools", "plot_log.py")

# A run that crosses midnight, tests (loss and psnr) every 200 iterations and dies after its
# snapshot at 200; then a second run, appended to the same log, resumed from that snapshot.
LOG = """\
I1121 23:59:50.000000 12345 caffe.cpp:197] Use CPU.
I1121 23:59:50.100000 12345 solver.cpp:45] Initializing solver from parameters:
test_iter: 5
display: 100
max_iter: 400
I1121 23:59:50.500000 12345 solver.cpp:289] Solving SRCNN
I1121 23:59:50.600000 12345 solver.cpp:347] Iteration 0, Testing net (#0)
I1121 23:59:51.000000 12345 solver.cpp:414]     Test net output #0: loss = 0.05 (* 1 = 0.05 loss)
I1121 23:59:51.000000 12345 solver.cpp:414]     Test net output #1: psnr = 25.5
I1121 23:59:51.100000 12345 solver.cpp:239] Iteration 0 (1.2e-35 iter/s, 0.5s/100 iters), loss = 0.06
I1121 23:59:51.100000 12345 solver.cpp:258]     Train net output #0: loss = 0.06 (* 1 = 0.06 loss)
I1121 23:59:51.100000 12345 sgd_solver.cpp:112] Iteration 0, lr = 0.001
I1122 00:00:01.100000 12345 solver.cpp:239] Iteration 100 (10 iter/s, 10s/100 iters), loss = 0.01
I1122 00:00:01.100000 12345 solver.cpp:258]     Train net output #0: loss = 0.01 (* 1 = 0.01 loss)
I1122 00:00:01.100000 12345 sgd_solver.cpp:112] Iteration 100, lr = 0.001
I1122 00:00:11.100000 12345 solver.cpp:347] Iteration 200, Testing net (#0)
I1122 00:00:11.600000 12345 solver.cpp:414]     Test net output #0: loss = 0.004 (* 1 = 0.004 loss)
I1122 00:00:11.600000 12345 solver.cpp:414]     Test net output #1: psnr = 30.25
I1122 00:00:12.100000 12345 solver.cpp:239] Iteration 200 (10 iter/s, 10s/100 iters), loss = 0.005
I1122 00:00:12.100000 12345 solver.cpp:258]     Train net output #0: loss = 0.005 (* 1 = 0.005 loss)
I1122 00:00:12.100000 12345 sgd_solver.cpp:112] Iteration 200, lr = 0.001
I1122 00:00:12.200000 12345 solver.cpp:464] Snapshotting to binary proto file snap_iter_200.caffemodel
I1122 00:00:12.300000 12345 sgd_solver.cpp:284] Snapshotting solver state to binary proto file snap_iter_200.solverstate
F1122 00:00:13.000000 12345 syncedmem.cpp:56] Check failed: error == cudaSuccess (2 vs. 0)  out of memory
# 2025-11-22 08:00:00 caffe train -solver solver.prototxt -snapshot snap_iter_200.solverstate
I1122 08:00:00.000000 22222 caffe.cpp:197] Use CPU.
I1122 08:00:00.100000 22222 solver.cpp:45] Initializing solver from parameters:
max_iter: 400
I1122 08:00:00.200000 22222 solver.cpp:343] Restoring previous solver status from snap_iter_200.solverstate
I1122 08:00:00.300000 22222 sgd_solver.cpp:336] SGDSolver: restoring history
I1122 08:00:01.000000 22222 solver.cpp:347] Iteration 200, Testing net (#0)
I1122 08:00:01.500000 22222 solver.cpp:414]     Test net output #0: loss = 0.0041 (* 1 = 0.0041 loss)
I1122 08:00:01.500000 22222 solver.cpp:414]     Test net output #1: psnr = 30.2
I1122 08:00:02.000000 22222 solver.cpp:239] Iteration 200 (5 iter/s, 1s/100 iters), loss = 0.0045
I1122 08:00:02.000000 22222 solver.cpp:258]     Train net output #0: loss = 0.0045 (* 1 = 0.0045 loss)
I1122 08:00:02.000000 22222 sgd_solver.cpp:112] Iteration 200, lr = 0.001
I1122 08:00:12.000000 22222 solver.cpp:239] Iteration 300 (10 iter/s, 10s/100 iters), loss = 0.003
I1122 08:00:12.000000 22222 solver.cpp:258]     Train net output #0: loss = 0.003 (* 1 = 0.003 loss)
I1122 08:00:12.000000 22222 sgd_solver.cpp:112] Iteration 300, lr = 0.0001
I1122 08:00:22.000000 22222 solver.cpp:464] Snapshotting to binary proto file snap_iter_400.caffemodel
I1122 08:00:22.100000 22222 sgd_solver.cpp:284] Snapshotting solver state to binary proto file snap_iter_400.solverstate
I1122 08:00:22.200000 22222 solver.cpp:327] Iteration 400, loss = 0.002
I1122 08:00:22.200000 22222 solver.cpp:347] Iteration 400, Testing net (#0)
I1122 08:00:22.700000 22222 solver.cpp:414]     Test net output #0: loss = 0.002 (* 1 = 0.002 loss)
I1122 08:00:22.700000 22222 solver.cpp:414]     Test net output #1: psnr = 31.02
I1122 08:00:22.800000 22222 solver.cpp:332] Optimization Done.
"""
FIRST_RUN, RESUMED_RUN = LOG.split("# 2025-11-22")


def column(rows, key):
    return [r.get(key) for r in rows]


def test_parse_resumed_log_with_tests_across_midnight():
    p = caffelog.parse_log(LOG)
    assert column(p["train"], "iter") == [0, 100, 200, 300, 400]
    assert column(p["train"], "loss") == [0.06, 0.01, 0.0045, 0.003, 0.002]   # 200: the resumed run's
    assert column(p["train"], "lr") == [0.001, 0.001, 0.001, 0.0001, None]
    # seconds from the first run's start, through midnight; the resumed run continues the clock
    # from the first run's last row (22.1 s), not counting the 8 hours between the runs
    assert column(p["train"], "seconds") == [1.1, 11.1, 24.1, 34.1, 44.3]
    assert column(p["test"], "iter") == [0, 200, 400]
    assert column(p["test"], "psnr") == [25.5, 30.2, 31.02]
    assert column(p["test"], "loss") == [0.05, 0.0041, 0.002]
    assert p["resumed_from"] == [{"iter": 200, "file": "snap_iter_200.solverstate"}]
    assert [(s["iter"], s["caffemodel"], s["solverstate"]) for s in p["snapshots"]] == [
        (200, "snap_iter_200.caffemodel", "snap_iter_200.solverstate"),
        (400, "snap_iter_400.caffemodel", "snap_iter_400.solverstate")]
    # the same from the two parts given separately, in either order
    parts = [caffelog.parse_log(FIRST_RUN), caffelog.parse_log(RESUMED_RUN)]
    for merged in (caffelog.merge(parts), caffelog.merge(parts[::-1])):
        assert merged["train"] == p["train"] and merged["test"] == p["test"]


def test_parse_log_fragment_without_header_or_tests_and_glog_with_year():
    lines = [line.replace("I1122 ", "I20251122 ") for line in RESUMED_RUN.splitlines() if "Test" not in line]
    start = [i for i, line in enumerate(lines) if "Iteration 200 (" in line][0]
    p = caffelog.parse_log(lines[start:])   # no header, no resume line, no test phase
    assert column(p["train"], "iter") == [200, 300, 400]
    assert column(p["train"], "seconds") == [0.0, 10.0, 20.2]
    assert p["test"] == []
    assert p["resumed_from"] == [{"iter": 200, "file": None}]


# Lines of `caffe train` as Caffe 1.0 writes them (the shipped models' training logs; glog with
# the year), and the record each is read into.
REAL_LINES = [
    ("I20261121 20:17:36.055284 11340 caffe.cpp:197] Use CPU.", dict(kind="start")),
    ("I20261121 20:17:36.055384 11340 solver.cpp:45] Initializing solver from parameters: ", dict(kind="solver")),
    ("max_iter: 300000", dict(kind="max_iter", iter=300000, severity=None, stamp=None)),
    ("I20261121 20:17:36.299767 11340 solver.cpp:239] Iteration 0 (1.70833e-06 iter/s, 0.115s/100 iters), "
     "loss = 45.3221", dict(kind="iter", iter=0, value=45.3221, text="45.3221")),
    ("I20261121 20:17:36.299837 11340 sgd_solver.cpp:112] Iteration 0, lr = 0.001",
     dict(kind="lr", iter=0, value=0.001)),
    ("I20261121 20:17:36.184022 11340 solver.cpp:347] Iteration 0, Testing net (#0)",
     dict(kind="testing", iter=0, net=0)),
    ("I20261121 20:17:36.268527 11340 solver.cpp:414]     Test net output #0: loss = 49.5651 (* 1 = 49.5651 loss)",
     dict(kind="output", phase="Test", name="loss", value=49.5651)),
    ("I20261121 20:17:36.299827 11340 solver.cpp:258]     Train net output #0: loss = 45.3221 (* 1 = 45.3221 loss)",
     dict(kind="output", phase="Train", name="loss", value=45.3221)),
    ("I20261121 20:17:36.183976 11340 caffe.cpp:239] Starting Optimization", dict(kind="other")),
    ("*** SIGTERM (@0x88d) received by PID 11340 (TID 0x7f68afe830c0) from PID 2189; stack trace: ***",
     dict(kind="trace", severity=None)),
]


@pytest.mark.parametrize("line, want", REAL_LINES, ids=[w["kind"] + str(i) for i, (_, w) in enumerate(REAL_LINES)])
def test_classify_reads_each_kind_of_caffe_line(line, want):
    rec = caffelog.classify(line + "\n")
    assert {k: getattr(rec, k) for k in want} == want
    if line.startswith("I2026"):
        assert rec.severity == "I" and rec.stamp == (2026, 11, 21, 20, 17, 36, int(line[19:25]))
    assert rec.error == (want["kind"] == "trace")
    unset = [k for k in caffelog.Line._fields if k not in want and k not in ("severity", "stamp", "text")]
    assert all(getattr(rec, k) is None for k in unset), rec


def test_classify_the_fixture_log_snapshots_restores_errors_and_nan():
    recs = [caffelog.classify(line) for line in LOG.splitlines()]
    kinds = [r.kind for r in recs]
    assert kinds.count("start") == 2 and kinds.count("iter") == 6 and kinds.count("done") == 1
    snaps = [(r.iter, r.state, r.file) for r in recs if r.kind == "snapshot"]
    assert snaps[:2] == [(200, False, "snap_iter_200.caffemodel"), (200, True, "snap_iter_200.solverstate")]
    assert [r.file for r in recs if r.kind == "restore"] == ["snap_iter_200.solverstate"]
    fatal = [r for r in recs if r.error]
    assert [(r.severity, r.stamp) for r in fatal] == [("F", (None, 11, 22, 0, 0, 13, 0))]
    nan = caffelog.classify("I1122 00:00:01.1 1 solver.cpp:239] Iteration 100 (10 iter/s, 10s/100 iters), loss = -nan")
    assert nan.kind == "iter" and nan.iter == 100 and nan.text == "-nan" and nan.value != nan.value
    assert caffelog.classify("I1122 00:00:01.1 1 solver.cpp:239] Iteration 5, lr = x").value is None
    # max_iter counts only as the solver parameters Caffe prints (no glog prefix)
    assert caffelog.classify("I1122 00:00:01.1 1 net.cpp:1] max_iter: 7").kind == "other"


def timestamped(iters_and_times, day="1121"):
    return ["I%s %s 1 solver.cpp:239] Iteration %d (9 iter/s, 1s/100 iters), loss = %g" % (day, t, n, 1.0 / (n + 1))
            for n, t in iters_and_times]


def test_progress_prints_speed_eta_and_psnr():
    out = io.StringIO()
    progress = caffelog.Progress(max_iter=1000, stream=out)
    lines = timestamped([(0, "23:59:30.000000"), (100, "23:59:40.000000")])
    lines.insert(1, "I1121 23:59:35.000000 1 solver.cpp:414]     Test net output #1: psnr = 30.25")
    lines += timestamped([(200, "23:59:50.000000")])
    for line in lines:
        progress.feed(line + "\n")
    assert out.getvalue().splitlines() == [
        "iter    0/1000  loss 1  -- it/s  ETA --",
        "iter  100/1000  loss 0.009901  10.0 it/s  ETA 1m30s  test PSNR 30.25 dB",
        "iter  200/1000  loss 0.004975  10.0 it/s  ETA 1m20s  test PSNR 30.25 dB"]
    # a slower interval (4 it/s) across midnight moves the smoothed speed 30% of the way
    progress.feed(timestamped([(300, "00:00:15.000000")], day="1122")[0])
    assert "  6.9 it/s  ETA 1m4" in out.getvalue().splitlines()[-1]
    summary = progress.summary()
    assert summary.startswith("stopped: iter 0 -> 300/1000 in 45s (6.7 it/s), loss 0.003322, test PSNR 30.25 dB")


def test_follow_module_appends_to_log_and_prints_progress(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("# earlier segment\n")
    out = subprocess.run([sys.executable, "-m", "srcaffe.caffelog", "--log", str(log), "--start-iter", "200",
                          "--test-name", "Set5"], input=RESUMED_RUN, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert log.read_text() == "# earlier segment\n" + RESUMED_RUN   # appended, byte for byte
    lines = out.stdout.splitlines()
    assert lines[0] == "iter 200/400  loss 0.0045  -- it/s  ETA --  Set5 PSNR 30.20 dB"   # max_iter from the log
    assert lines[1] == "iter 300/400  loss 0.003  10.0 it/s  ETA 10s  Set5 PSNR 30.20 dB"
    assert lines[-1].startswith("finished: iter 200 -> 400/400 in 20s") and "Set5 PSNR 31.02 dB" in lines[-1]


def test_follow_module_errors_are_one_line_naming_the_log(tmp_path):
    """A log that cannot be written: the progress goes on, then one line naming it, exit 2."""
    require(os.path.exists("/dev/full"), "no /dev/full (a device whose writes fail: Linux)")
    out = subprocess.run([sys.executable, "-m", "srcaffe.caffelog", "--log", "/dev/full"], input=RESUMED_RUN,
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.splitlines() == ["error: /dev/full: no space left on the device: the log misses Caffe's "
                                       "lines from there on"]
    assert out.stdout.splitlines()[-1].startswith("finished: iter 200 -> 400/400")
    for args, words in ((["--log", str(tmp_path)], str(tmp_path)), (["--log", "x.log", "--max-iter", "many"], "many")):
        out = subprocess.run([sys.executable, "-m", "srcaffe.caffelog"] + args, input="", capture_output=True,
                             text=True, cwd=REPO)
        assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr
        assert out.stderr.startswith("error: ") and words in out.stderr


def plot_log(*args):
    return subprocess.run([sys.executable, PLOT_LOG] + [str(a) for a in args], capture_output=True, text=True)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def check_png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1024
    assert_figure(path)


@pytest.mark.slow
def test_plot_log_writes_csvs_and_png_and_refuses_overwrite(tmp_path):
    first, resumed = tmp_path / "run.log", tmp_path / "resumed.log"
    first.write_text(FIRST_RUN)
    resumed.write_text(RESUMED_RUN)
    out = plot_log(first, resumed)
    assert out.returncode == 0, out.stderr
    assert "resumed at iteration 200 from snap_iter_200.solverstate" in out.stdout
    train, test = read_csv(tmp_path / "run.train.csv"), read_csv(tmp_path / "run.test.csv")
    assert [r["iter"] for r in train] == ["0", "100", "200", "300", "400"]
    assert train[2] == {"iter": "200", "seconds": "24.1", "lr": "0.001", "loss": "0.0045"}
    assert [(r["iter"], r["psnr"]) for r in test] == [("0", "25.5"), ("200", "30.2"), ("400", "31.02")]
    check_png(tmp_path / "run.png")

    again = plot_log(first, resumed)
    assert again.returncode == 2 and again.stderr == "error: %s exists; use --force to overwrite it\n" % (
        tmp_path / "run.train.csv")
    assert plot_log(first, resumed, "--force").returncode == 0
    os.remove(tmp_path / "run.test.csv")
    os.mkdir(tmp_path / "run.test.csv")   # an output that cannot be written: one line naming it
    blocked = plot_log(first, resumed, "--force")
    assert blocked.returncode == 2 and blocked.stderr == "error: %s: Is a directory\n" % (tmp_path / "run.test.csv")


@pytest.mark.parametrize("content", [None, "just some text\nIteration notes\n", b"\x00\xff\x89PNG\n"])
def test_plot_log_bad_input_is_one_line_error(tmp_path, content):
    path = tmp_path / "bad.log"
    if content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = plot_log(path, "--out", tmp_path / "x")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: %s: " % path)
    assert not os.path.exists(tmp_path / "x.png")


TINY_NET = """name: "tiny"
layer { name: "data" type: "HDF5Data" top: "data" top: "label" hdf5_data_param { source: "%(src)s" batch_size: 8 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 1 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "conv2" bottom: "label" top: "loss" }
layer { name: "log_mse" type: "Log" bottom: "loss" top: "log_mse" include { phase: TEST }
        log_param { base: 10 scale: 0.03125 } }
layer { name: "psnr" type: "Power" bottom: "log_mse" top: "psnr" include { phase: TEST } power_param { scale: -10 } }
"""
TINY_SOLVER = """net: "net.prototxt"
test_iter: 2
test_interval: 10
base_lr: 0.01
momentum: 0.9
lr_policy: "fixed"
display: 5
max_iter: %d
snapshot: 20
snapshot_prefix: "snap"
solver_mode: CPU
random_seed: 1
"""


def test_real_caffe_logs_of_a_run_and_its_resumption(tmp_path):
    require(os.path.exists(CAFFE), "no Caffe yet: run tools/setup.sh")
    import h5py
    import numpy as np

    x = np.random.RandomState(0).rand(64, 1, 12, 12).astype(np.float32)
    with h5py.File(tmp_path / "train.h5", "w") as f:
        f["data"], f["label"] = x, x[:, :, 2:-2, 2:-2] * 0.5
    (tmp_path / "train.txt").write_text(str(tmp_path / "train.h5") + "\n")
    (tmp_path / "net.prototxt").write_text(TINY_NET % {"src": tmp_path / "train.txt"})
    for n in (20, 40):
        (tmp_path / ("solver_%d.prototxt" % n)).write_text(TINY_SOLVER % n)

    def train(log, *args):   # as run_train.sh does: caffe's output piped through the follower
        caffe = subprocess.Popen([CAFFE, "train"] + list(args), cwd=tmp_path, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, env=dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0"))
        follow = subprocess.run([sys.executable, "-m", "srcaffe.caffelog", "--log", str(log)],
                                stdin=caffe.stdout, capture_output=True, text=True, cwd=REPO)
        caffe.stdout.close()
        assert caffe.wait() == 0 and follow.returncode == 0, follow.stderr
        return follow.stdout.splitlines()

    progress = train(tmp_path / "train.log", "-solver", "solver_20.prototxt")
    recs = [caffelog.classify(line) for line in (tmp_path / "train.log").read_text().splitlines()]
    kinds = {r.kind for r in recs}
    assert {"start", "solver", "max_iter", "iter", "lr", "testing", "output", "snapshot", "done"} <= kinds
    assert [r.iter for r in recs if r.kind == "max_iter"] == [20]
    assert [(r.iter, r.state) for r in recs if r.kind == "snapshot"] == [(20, False), (20, True)]
    assert {r.name for r in recs if r.kind == "output" and r.phase == "Test"} == {"psnr"}
    assert progress[0].startswith("iter  0/20  loss ") and progress[-1].startswith("finished: iter 0 -> 20/20")
    progress = train(tmp_path / "resumed.log", "-solver", "solver_40.prototxt", "-snapshot", "snap_iter_20.solverstate")
    assert progress[0].startswith("iter 20/40  loss ") and "test PSNR" in progress[0]
    restores = [caffelog.classify(line) for line in (tmp_path / "resumed.log").read_text().splitlines()]
    assert [r.file for r in restores if r.kind == "restore"] == ["snap_iter_20.solverstate"]

    out = plot_log(tmp_path / "train.log", tmp_path / "resumed.log", "--out", tmp_path / "curve")
    assert out.returncode == 0, out.stderr
    assert "resumed at iteration 20 from snap_iter_20.solverstate" in out.stdout
    train_rows, test_rows = read_csv(tmp_path / "curve.train.csv"), read_csv(tmp_path / "curve.test.csv")
    assert [int(r["iter"]) for r in train_rows] == list(range(0, 45, 5))
    assert [int(r["iter"]) for r in test_rows] == [0, 10, 20, 30, 40]
    assert all(float(r["psnr"]) > 0 for r in test_rows)
    seconds = [float(r["seconds"]) for r in train_rows]
    assert seconds == sorted(seconds)
    # from 20 on, the numbers are the resumed run's: its first display line is at iteration 20
    resumed = caffelog.parse_log(tmp_path / "resumed.log")
    assert resumed["train"][0]["iter"] == 20 and resumed["resumed_from"][0]["iter"] == 20
    assert float(train_rows[4]["loss"]) == resumed["train"][0]["loss"]
    check_png(tmp_path / "curve.png")
