"""Helpers shared by the test modules (import them as `from helpers import ...`)."""
import os
import subprocess

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
