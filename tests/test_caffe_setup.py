"""The foundation: a real Caffe from tools/setup.sh, its CLI and pycaffe, train/snapshot/resume."""
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAFFE = os.path.join(sys.prefix, "bin", "caffe")

TINY_DATA = """name: "tiny"
layer { name: "data" type: "HDF5Data" top: "data" top: "label"
        hdf5_data_param { source: "%(src)s" batch_size: 8 } }
"""
TINY_DEPLOY_INPUT = 'input: "data" input_shape { dim: 1 dim: 1 dim: 12 dim: 12 }\n'
TINY_LAYERS = """layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 1 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } } }
"""
TINY_LOSS = 'layer { name: "loss" type: "EuclideanLoss" bottom: "conv2" bottom: "label" top: "loss" }\n'

TINY_SOLVER = """net: "%(net)s"
base_lr: 0.01
momentum: 0.9
lr_policy: "fixed"
display: 5
max_iter: %(max_iter)d
snapshot: 20
snapshot_prefix: "%(prefix)s"
solver_mode: CPU
random_seed: 1
"""


def run(cmd, env=None, **kw):
    # Caffe's INFO lines are what these tests read, whatever an earlier import set in os.environ.
    env = dict(env or os.environ, GLOG_minloglevel="0")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, **kw)


def test_caffe_binary_is_linked_into_venv_and_reports_1_0_0():
    assert os.path.exists(CAFFE), "tools/setup.sh should link caffe into the venv"
    out = run([CAFFE, "--version"])
    assert out.returncode == 0
    assert "caffe version 1.0.0" in (out.stdout + out.stderr)


def test_pycaffe_imports_with_numpy2_without_pythonpath():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import numpy, caffe; print(numpy.__version__, caffe.__version__, caffe.__file__)"
    out = run([sys.executable, "-c", code], env=env, cwd="/")
    assert out.returncode == 0, out.stderr
    numpy_version, caffe_version, _ = out.stdout.split()
    assert int(numpy_version.split(".")[0]) >= 2
    assert caffe_version == "1.0.0"


@pytest.fixture
def tiny_run(tmp_path):
    rng = np.random.RandomState(0)
    x = rng.rand(64, 1, 12, 12).astype(np.float32)
    with h5py.File(tmp_path / "train.h5", "w") as f:
        f["data"] = x
        f["label"] = x[:, :, 2:-2, 2:-2] * 0.5   # a learnable target: half of the centre
    (tmp_path / "train.txt").write_text(str(tmp_path / "train.h5") + "\n")
    (tmp_path / "net.prototxt").write_text(TINY_DATA % {"src": tmp_path / "train.txt"} + TINY_LAYERS + TINY_LOSS)

    def solver(max_iter):
        path = tmp_path / ("solver_%d.prototxt" % max_iter)
        path.write_text(TINY_SOLVER % {"net": tmp_path / "net.prototxt", "max_iter": max_iter,
                                       "prefix": tmp_path / "snap"})
        return str(path)
    return tmp_path, solver


def test_train_snapshot_resume_and_load_in_pycaffe(tiny_run):
    tmp, solver = tiny_run
    first = run([CAFFE, "train", "-solver", solver(20)], cwd=tmp)
    assert first.returncode == 0, first.stderr[-2000:]
    state = tmp / "snap_iter_20.solverstate"
    model = tmp / "snap_iter_20.caffemodel"
    assert state.exists() and model.exists()

    resumed = run([CAFFE, "train", "-solver", solver(40), "-snapshot", str(state)], cwd=tmp)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    log = resumed.stderr
    assert "Resuming from" in log and "restoring history" in log
    iters = [int(i) for i in re.findall(r"Iteration (\d+)", log)]
    assert iters and iters[0] == 20, iters[:5]      # the resumed log starts at the snapshot
    assert max(iters) == 40
    assert not re.search(r"Iteration [0-9]\b", log)  # nothing restarted from 0
    assert (tmp / "snap_iter_40.solverstate").exists()

    import caffe
    caffe.set_mode_cpu()
    deploy = tmp / "deploy.prototxt"
    deploy.write_text(TINY_DEPLOY_INPUT + TINY_LAYERS)
    x = np.random.RandomState(1).rand(1, 1, 12, 12).astype(np.float32)
    outputs = []
    for weights in (model, tmp / "snap_iter_40.caffemodel"):
        net = caffe.Net(str(deploy), str(weights), caffe.TEST)
        net.blobs["data"].data[...] = x
        outputs.append(net.forward()["conv2"].copy())
    assert outputs[0].shape == (1, 1, 8, 8)
    assert not np.allclose(outputs[0], outputs[1])   # other weights, other output
    net.params["conv2"][0].data[...] = 0
    net.params["conv2"][1].data[...] = 0.25
    net.blobs["data"].data[...] = x
    assert np.allclose(net.forward()["conv2"], 0.25)


def test_setup_second_run_reuses_the_linked_build_and_compiles_nothing():
    """The event that makes a second setup quick: it finds the venv's Caffe of the same recipe key
    and says so; the install (its .complete stamp, libcaffe) is the very same files afterwards."""
    linked = os.path.realpath(CAFFE)
    prefix = os.path.dirname(os.path.dirname(linked))
    stamps = [os.path.join(prefix, ".complete"), os.path.join(prefix, "lib", "libcaffe.so")]
    before = [(os.stat(f).st_ino, os.stat(f).st_mtime_ns) for f in stamps]
    out = run(["bash", os.path.join(REPO, "tools", "setup.sh")])
    assert out.returncode == 0, out.stderr
    assert re.search(r"^\[setup +\d+s\] Caffe 1\.0\.0 \(\w+(, CUDA)?\) ready: %s$" % re.escape(linked), out.stdout, re.M), out.stdout
    for word in ("building", "installing", "reusing cached build", "creating venv"):
        assert word not in out.stdout, out.stdout
    assert [(os.stat(f).st_ino, os.stat(f).st_mtime_ns) for f in stamps] == before
    assert os.path.realpath(CAFFE) == linked


def test_setup_status_names_caffe_and_blas():
    out = run(["bash", os.path.join(REPO, "tools", "setup.sh"), "--status"])
    assert out.returncode == 0, out.stderr
    assert "version:   caffe version 1.0.0" in out.stdout
    assert re.search(r"BLAS:\s+\S*(blas|mkl)", out.stdout)


def test_setup_with_broken_caffe_src_is_one_clear_error(tmp_path):
    env = dict(os.environ, CAFFE_SRC=str(tmp_path / "no-such-caffe.tar.gz"))
    out = run(["bash", os.path.join(REPO, "tools", "setup.sh")], env=env)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "no-such-caffe.tar.gz" in lines[0]
    assert out.stdout == ""


def test_caffe_pb2_loads_without_pycaffe_and_is_the_module_caffe_imports_later(tmp_path):
    """Runs read prototxt and snapshots with caffe_pb2 alone (srcaffe.pycaffe.caffe_pb2): not
    even _caffe.so is loaded, and a later `import caffe` takes that same module, so messages made
    before and after are one type."""
    code = """
import sys
from srcaffe import pycaffe, snapshots, weights
pb2 = pycaffe.caffe_pb2()
weights.check_weights(sys.argv[1], "fsrcnn", 3)
loaded = sorted(m for m in sys.modules if m == "caffe" or m.startswith("caffe."))
assert loaded == ["caffe.proto.caffe_pb2"], loaded
import caffe
from caffe.proto import caffe_pb2
from caffe import net_spec
assert caffe_pb2 is pb2 and net_spec.caffe_pb2 is pb2 and caffe.TRAIN == pb2.TRAIN
assert isinstance(caffe.proto.caffe_pb2.NetParameter(), pb2.NetParameter)
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code, os.path.join(REPO, "models", "fsrcnn_x3.caffemodel")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
