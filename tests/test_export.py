"""tools/export.py: caffemodel <-> npz round trip with real Caffe, and its one-line errors."""
import os
import subprocess
import sys

import numpy as np
import pytest

from srcaffe import ROOT

from srcaffe.models import load_model
from helpers import assert_one_line_error, make_caffemodel

TOOL = os.path.join(ROOT, "tools", "export.py")


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL] + [str(a) for a in args], capture_output=True, text=True, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["fsrcnn", "srcnn"])
def test_round_trip(tmp_path, model):
    src = make_caffemodel(tmp_path / "a.caffemodel", model, seed=5)
    r = run_tool("to-npz", src, tmp_path / "a.npz")
    assert r.returncode == 0, r.stderr
    assert "wrote %s: %s x3" % (tmp_path / "a.npz", model) in r.stdout
    r = run_tool("from-npz", tmp_path / "a.npz", tmp_path / "b.caffemodel", "--arch", model, "--scale", "3")
    assert r.returncode == 0, r.stderr
    assert run_tool("to-npz", tmp_path / "b.caffemodel", tmp_path / "b.npz").returncode == 0
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
        assert a["conv1_0"].shape == {"fsrcnn": (56, 1, 5, 5), "srcnn": (64, 1, 9, 9)}[model]
        assert a["conv3_1"].shape == (1,) and a["conv3_1"][0] == np.float32(0.5)
        if model == "fsrcnn":
            assert a["prelu1_0"].shape == () and "conv26_1" in a.files
    lr = np.random.default_rng(0).random((12, 14))
    np.testing.assert_array_equal(load_model(src).upscale_y(lr),
                                  load_model(str(tmp_path / "b.caffemodel")).upscale_y(lr))


@pytest.mark.slow
def test_errors(tmp_path):
    src = make_caffemodel(tmp_path / "a.caffemodel")
    assert run_tool("to-npz", src, tmp_path / "a.npz").returncode == 0
    assert_one_line_error(run_tool("to-npz", src, tmp_path / "a.npz"), "a.npz: already exists")
    assert run_tool("to-npz", src, tmp_path / "a.npz", "--force").returncode == 0
    assert_one_line_error(run_tool("from-npz", tmp_path / "a.npz", tmp_path / "b.caffemodel", "--arch", "srcnn"),
                          "a.npz: does not hold srcnn weights", "looks like fsrcnn")
    assert_one_line_error(run_tool("from-npz", src, tmp_path / "b.caffemodel"), "a.caffemodel: not a NumPy .npz")
    assert_one_line_error(run_tool("to-npz", tmp_path / "a.npz", tmp_path / "c.npz"), "a.npz: not a Caffe .caffemodel")
    assert_one_line_error(run_tool("to-npz", src, tmp_path / "c.npz", "--arch", "fsrcnn-s"),
                          "does not hold fsrcnn-s weights")
    with np.load(tmp_path / "a.npz") as a:
        arrays = {k: a[k] for k in a.files if k != "prelu2_0"}
    np.savez(tmp_path / "short.npz", **arrays)
    assert_one_line_error(run_tool("from-npz", tmp_path / "short.npz", tmp_path / "b.caffemodel", "--arch", "fsrcnn"),
                          "short.npz", "prelu2")
    assert not (tmp_path / "b.caffemodel").exists() and not (tmp_path / "c.npz").exists()
