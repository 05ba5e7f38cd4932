"""Helpers shared by the test modules (import them as `from helpers import ...`)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from srcaffe import ROOT


def make_caffemodel(path, model="fsrcnn", scale=3, kind="random", bias=0.5, seed=0):
    """Write a caffemodel with Caffe. kind: 'random' (He-scaled Gaussian weights, last bias
    `bias`), 'linear' (FSRCNN: identity layers and a triangle deconvolution = linear
    interpolation; SRCNN: identity), 'bias' (all zero but the last layer's bias)."""
    import caffe

    net = caffe.Net(os.path.join(ROOT, "prototxt", "%s_x%d_deploy.prototxt" % (model, scale)), caffe.TEST)
    rng = np.random.default_rng(seed)
    for name, blobs in net.params.items():
        w = blobs[0].data
        w[...] = rng.normal(0, np.sqrt(2.0 / max(1, w[0].size)), w.shape) if kind == "random" and w.ndim == 4 else 0
        if len(blobs) > 1:
            blobs[1].data[...] = bias if name == "conv3" and kind != "linear" else 0
        if kind == "linear":
            if name.startswith("prelu"):
                w[...] = 1
            elif name == "conv3" and model.startswith("fsrcnn"):
                t = np.maximum(0, 1 - np.abs(np.arange(9) - 4) / scale)
                w[0, 0] = np.outer(t, t)
            else:
                w[0, 0, w.shape[2] // 2, w.shape[3] // 2] = 1
    net.save(str(path))
    return str(path)


def assert_one_line_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stderr)   # not 134/-6: Caffe did not abort
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def require(ok, what):
    """A missing prerequisite: a failure in CI (CI=true: a green run must have tested it), a skip
    on a developer's machine."""
    if ok:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("CI=true but %s" % what, pytrace=False)
    pytest.skip(what)


def assert_figure(path, min_size=(300, 200), coloured_px=100, grey=False):
    """A PNG figure with content: a real PNG of at least min_size pixels, not blank, and with at
    least `coloured_px` saturated pixels (a plotted curve or an image; axes, text and grid are
    black, white or grey), so a figure whose data went missing fails. grey=True (a figure of
    grey images): at least a fifth of the pixels off the background colour instead."""
    from PIL import Image

    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", "%s: not a PNG" % path
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    h, w = img.shape[:2]
    assert w >= min_size[0] and h >= min_size[1], "%s: %dx%d, smaller than %s" % (path, w, h, min_size)
    assert img.std() > 5, "%s: blank" % path
    if grey:
        flat = img.reshape(-1, 3)
        values, counts = np.unique(flat, axis=0, return_counts=True)
        off = int((np.abs(flat - values[counts.argmax()]).max(axis=1) > 30).sum())
        assert off >= flat.shape[0] // 5, "%s: only %d pixels off the background: no images drawn" % (path, off)
        return
    saturated = int(((img.max(axis=2) - img.min(axis=2)) > 80).sum())
    assert saturated >= coloured_px, "%s: only %d coloured pixels: no curve/image drawn" % (path, saturated)


RUN_TRAIN = os.path.join(ROOT, "run_train.sh")
TOOLS = os.path.join(ROOT, "tools")


def tool(name, *args, env=None, timeout=600):
    """tools/NAME with this venv's Python, its output captured."""
    return subprocess.run([sys.executable, os.path.join(TOOLS, name)] + [str(a) for a in args],
                          capture_output=True, text=True, env=env, timeout=timeout)


def run_train(env, *args, **kw):
    return subprocess.run(["bash", RUN_TRAIN] + [str(a) for a in args], capture_output=True, text=True, env=env, **kw)


def assert_error_line(out, *words):
    """./run_train.sh's contract: it ends with one 'error: ...' line naming the problem (setup's
    status line may come before it), a non-zero exit, no traceback, no Caffe abort."""
    assert out.returncode not in (0, 134, -6), (out.returncode, out.stderr)
    err = out.stderr.strip().splitlines()
    assert err and err[-1].startswith("error:"), out.stderr
    assert "Traceback" not in out.stderr and "Check failed" not in out.stderr, out.stderr
    for w in words:
        assert w in err[-1], err[-1]


# One thread each and glog's INFO lines on stderr: what caffelog parses, the same on any machine.
CAFFE_TRAIN_ENV = {"GLOG_minloglevel": "0", "GLOG_logtostderr": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def caffe_train_losses(caffe, run_dir):
    """[(iteration, loss)] of `caffe train` on run_dir/solver.prototxt (the fsrcnn_run fixture).
    caffe: the command that runs a `caffe` binary, e.g. [path] or a `docker run ... IMAGE caffe`
    that passes CAFFE_TRAIN_ENV and mounts run_dir at the same path."""
    from srcaffe import caffelog

    out = subprocess.run(list(caffe) + ["train", "-solver", str(run_dir / "solver.prototxt")],
                         capture_output=True, text=True, env=dict(os.environ, **CAFFE_TRAIN_ENV), cwd=str(run_dir))
    assert out.returncode == 0, out.stderr[-2000:]
    return [(r["iter"], r["loss"]) for r in caffelog.parse_log(out.stderr)["train"]]


# ---- numerical gradient checks of Caffe layers (Caffe's GradientChecker settings) ---------------

STEP, THRESHOLD, KINK_RANGE = 1e-2, 1e-3, 1e-2

INPUT = 'force_backward: true\nlayer { name: "x" type: "Input" top: "x" input_param { shape { %s } } }\n'


def make_net(tmp_path, shape, layer):
    """A net: Input x of `shape`, then `layer` (prototxt text, bottom x, top y)."""
    dims = " ".join("dim: %d" % d for d in shape)
    path = tmp_path / ("net%d.prototxt" % len(list(tmp_path.iterdir())))
    path.write_text(INPUT % dims + layer)
    import caffe

    caffe.set_mode_cpu()
    caffe.set_random_seed(1701)   # the fillers' weights, the same every run
    return caffe.Net(str(path), caffe.TEST)


def away_from_kink(rng, shape, kink_range=2 * KINK_RANGE):
    """Standard normal values, none within kink_range of 0 (as Caffe's checker skips them)."""
    x = rng.standard_normal(shape)
    x[np.abs(x) < kink_range] += np.sign(x[np.abs(x) < kink_range] + 1e-12) * kink_range
    return x.astype(np.float32)


def check_gradients(net, x, seed=0, kink=None):
    """Numerical vs computed gradients of L = sum(w * y) for the input and every parameter."""
    rng = np.random.RandomState(seed)
    net.blobs["x"].data[...] = x
    net.forward()
    w = rng.standard_normal(net.blobs["y"].data.shape)

    def objective():
        net.forward()
        return float(np.dot(net.blobs["y"].data.ravel().astype(np.float64), w.ravel()))

    net.clear_param_diffs()
    net.blobs["y"].diff[...] = w
    net._backward(len(net.layers) - 1, 0)
    targets = [("bottom x", net.blobs["x"].data, net.blobs["x"].diff.copy(), kink)]
    for name, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            targets.append(("%s param %d" % (name, i), blob.data, blob.diff.copy(), None))
    checked = 0
    for what, data, computed, target_kink in targets:
        for idx in np.ndindex(*data.shape):
            value = float(data[idx])
            if target_kink is not None and abs(value - target_kink) < KINK_RANGE:
                continue
            data[idx] = value + STEP
            plus = objective()
            data[idx] = value - STEP
            minus = objective()
            data[idx] = value
            estimated = (plus - minus) / (2 * STEP)
            got = float(computed[idx])
            scale = max(abs(got), abs(estimated), 1.0)
            assert abs(got - estimated) <= THRESHOLD * scale, \
                "%s%s: computed %.6g, numerical %.6g" % (what, idx, got, estimated)
            checked += 1
    return checked
