"""The layers FSRCNN and SRCNN train with, in the linked Caffe (tools/caffe-patches/0002 runs
PReLU and ReLU on OpenMP threads): forward against NumPy, backward against numerical gradients.

The gradient check is Caffe's GradientChecker as its own layer tests use it: central differences
with stepsize 1e-2, |computed - estimated| <= 1e-3 * max(|computed|, |estimated|, 1), inputs within
0.01 of a kink (0 for ReLU/PReLU) left out. The objective is a fixed random projection of the top
blob, L = sum(w * top) (so top diff = w), which checks every bottom and parameter element in one
backward pass. Small nets are built from prototxt text with an Input layer and force_backward.

The large-blob tests (FSRCNN's 128 x 56 x 7 x 7, above the patch's OpenMP threshold) check the
threaded path: element-wise results equal NumPy bit for bit, the per-channel slope gradient equals
the in-order float32 sum bit for bit, and the channel-shared slope gradient (summed in fixed blocks)
is close to the exact sum and identical for 1, 2 and 3 threads.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers import KINK_RANGE, away_from_kink, check_gradients, make_net, require  # noqa: E402,F401
import caffe  # noqa: E402  (the toolkit's real Caffe; CI builds it)

LARGE = (128, 56, 7, 7)   # FSRCNN's d=56 activations at batch 128: 351,232 elements


# ---- forward against NumPy, backward against numerical gradients ------------------------------

def prelu_ref(x, slope):
    return np.maximum(x, np.float32(0)) + slope * np.minimum(x, np.float32(0))


@pytest.mark.parametrize("shared", [True, False], ids=["channel_shared", "per_channel"])
def test_prelu_forward_and_gradients(tmp_path, shared):
    rng = np.random.RandomState(1)
    net = make_net(tmp_path, (2, 3, 5, 4), 'layer { name: "p" type: "PReLU" bottom: "x" top: "y" '
                   'prelu_param { channel_shared: %s } }' % ("true" if shared else "false"))
    slope = net.params["p"][0]
    assert slope.data.shape == (() if shared else (3,))
    slope.data[...] = 0.25 if shared else np.array([0.25, -0.4, 1.3], np.float32)
    x = away_from_kink(rng, (2, 3, 5, 4))
    net.blobs["x"].data[...] = x
    y = net.forward()["y"]
    s = slope.data.reshape((1, -1, 1, 1)).astype(np.float32)
    assert np.array_equal(y, prelu_ref(x, s))
    assert check_gradients(net, x, kink=0.0) == x.size + slope.data.size


@pytest.mark.parametrize("negative_slope", [0.0, 0.1])
def test_relu_forward_and_gradients(tmp_path, negative_slope):
    rng = np.random.RandomState(2)
    net = make_net(tmp_path, (2, 3, 4, 5), 'layer { name: "r" type: "ReLU" bottom: "x" top: "y" '
                   'relu_param { negative_slope: %g } }' % negative_slope)
    x = away_from_kink(rng, (2, 3, 4, 5))
    net.blobs["x"].data[...] = x
    ns = np.float32(negative_slope)
    assert np.array_equal(net.forward()["y"], np.maximum(x, np.float32(0)) + ns * np.minimum(x, np.float32(0)))
    assert check_gradients(net, x, kink=0.0) == x.size


def conv_ref(x, w, b, pad):
    """Caffe Convolution (cross-correlation), stride 1, in float64."""
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - k + 1, wd + 2 * pad - k + 1
    y = np.zeros((n, o, oh, ow)) + b.reshape(1, -1, 1, 1)
    for i in range(k):
        for j in range(k):
            y += np.einsum("nchw,oc->nohw", xp[:, :, i:i + oh, j:j + ow], w[:, :, i, j].astype(np.float64))
    return y


def deconv_ref(x, w, b, stride, pad):
    """Caffe Deconvolution: weights (in, out, k, k); out = stride*(in-1) + k - 2*pad, in float64."""
    n, c, h, wd = x.shape
    _, o, k, _ = w.shape
    full = np.zeros((n, o, stride * (h - 1) + k, stride * (wd - 1) + k))
    for i in range(h):
        for j in range(wd):
            full[:, :, stride * i:stride * i + k, stride * j:stride * j + k] += np.einsum(
                "nc,cokl->nokl", x[:, :, i, j].astype(np.float64), w.astype(np.float64))
    oh, ow = full.shape[2] - 2 * pad, full.shape[3] - 2 * pad
    return full[:, :, pad:pad + oh, pad:pad + ow] + b.reshape(1, -1, 1, 1)


def test_convolution_forward_and_gradients(tmp_path):
    rng = np.random.RandomState(3)
    net = make_net(tmp_path, (2, 3, 6, 6), 'layer { name: "c" type: "Convolution" bottom: "x" top: "y" '
                   'convolution_param { num_output: 4 kernel_size: 3 pad: 1 '
                   'weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.3 } } }')
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    net.blobs["x"].data[...] = x
    w, b = (p.data.copy() for p in net.params["c"])
    assert w.shape == (4, 3, 3, 3)
    np.testing.assert_allclose(net.forward()["y"], conv_ref(x, w, b, 1), rtol=1e-5, atol=1e-5)
    assert check_gradients(net, x) == x.size + w.size + b.size


def test_deconvolution_forward_and_gradients(tmp_path):
    """As FSRCNN's last layer (kernel 9, stride 3, pad 4 at x3), smaller: kernel 5, stride 3, pad 2."""
    rng = np.random.RandomState(4)
    net = make_net(tmp_path, (2, 3, 4, 4), 'layer { name: "d" type: "Deconvolution" bottom: "x" top: "y" '
                   'convolution_param { num_output: 2 kernel_size: 5 stride: 3 pad: 2 '
                   'weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.3 } } }')
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    net.blobs["x"].data[...] = x
    w, b = (p.data.copy() for p in net.params["d"])
    assert w.shape == (3, 2, 5, 5)
    y = net.forward()["y"]
    assert y.shape == (2, 2, 3 * 3 + 5 - 4, 10)
    np.testing.assert_allclose(y, deconv_ref(x, w, b, 3, 2), rtol=1e-5, atol=1e-5)
    assert check_gradients(net, x) == x.size + w.size + b.size


def test_conv_prelu_deconv_stack_gradients(tmp_path):
    """A miniature FSRCNN: conv -> PReLU (shared, in place, as FSRCNN) -> deconv."""
    rng = np.random.RandomState(5)
    layers = ('layer { name: "c" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 3 '
              'kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 } } }\n'
              'layer { name: "p" type: "PReLU" bottom: "c" top: "c" prelu_param { channel_shared: true } }\n'
              'layer { name: "d" type: "Deconvolution" bottom: "c" top: "y" convolution_param { num_output: 1 '
              'kernel_size: 3 stride: 2 pad: 1 weight_filler { type: "gaussian" std: 0.5 } } }')
    net = make_net(tmp_path, (1, 2, 5, 5), layers)
    # conv outputs far from PReLU's kink under +-STEP perturbations of x and of the weights:
    # biases of +-1.5 and 2 (channel 1 wholly on the slope side) and a small input
    net.params["c"][1].data[...] = np.array([1.5, -1.5, 2.0], np.float32)
    x = (0.1 * rng.standard_normal((1, 2, 5, 5))).astype(np.float32)
    pre = conv_ref(x, net.params["c"][0].data, net.params["c"][1].data, 0)
    assert np.abs(pre).min() > 0.5
    n_params = sum(b.data.size for blobs in net.params.values() for b in blobs)
    assert check_gradients(net, x) == x.size + n_params


# ---- large blobs: the OpenMP path ---------------------------------------------------------------

def large_prelu_net(tmp_path, shared, in_place):
    top = "x" if in_place else "y"
    return make_net(tmp_path, LARGE, 'layer { name: "p" type: "PReLU" bottom: "x" top: "%s" '
                    'prelu_param { channel_shared: %s } }' % (top, "true" if shared else "false")), top


@pytest.mark.parametrize("shared", [True, False], ids=["channel_shared", "per_channel"])
@pytest.mark.parametrize("in_place", [True, False], ids=["in_place", "separate_top"])
def test_prelu_large_blob_equals_numpy(tmp_path, shared, in_place):
    rng = np.random.RandomState(6)
    net, top = large_prelu_net(tmp_path, shared, in_place)
    slope = net.params["p"][0]
    slope.data[...] = np.float32(0.3) if shared else rng.uniform(-0.5, 1.0, LARGE[1]).astype(np.float32)
    s = slope.data.reshape((1, -1, 1, 1)).copy()
    x = rng.standard_normal(LARGE).astype(np.float32)
    x[0, 0, 0, :3] = 0.0   # the kink itself: x <= 0 takes the slope branch
    dy = rng.standard_normal(LARGE).astype(np.float32)
    net.blobs["x"].data[...] = x
    net.forward()
    assert np.array_equal(net.blobs[top].data, prelu_ref(x, s))

    net.clear_param_diffs()
    net.blobs[top].diff[...] = dy
    net._backward(len(net.layers) - 1, 0)
    neg = (x <= 0).astype(np.float32)
    assert np.array_equal(net.blobs["x"].diff, dy * ((x > 0).astype(np.float32) + s * neg))
    terms = dy * x * neg                      # float32, as Caffe computes each term
    if shared:
        exact = terms.astype(np.float64).sum()
        bound = 1e-5 * np.abs(terms).astype(np.float64).sum()
        assert abs(float(slope.diff) - exact) <= bound
    else:   # one running float32 sum per channel, in blob order: bit-identical to stock Caffe
        in_order = np.cumsum(terms.transpose(1, 0, 2, 3).reshape(LARGE[1], -1), axis=1, dtype=np.float32)[:, -1]
        assert np.array_equal(slope.diff, in_order)


def test_relu_large_blob_equals_numpy(tmp_path):
    rng = np.random.RandomState(7)
    net = make_net(tmp_path, LARGE, 'layer { name: "r" type: "ReLU" bottom: "x" top: "x" '
                   'relu_param { negative_slope: 0.05 } }')
    x = rng.standard_normal(LARGE).astype(np.float32)
    dy = rng.standard_normal(LARGE).astype(np.float32)
    ns = np.float32(0.05)
    net.blobs["x"].data[...] = x
    net.forward()
    assert np.array_equal(net.blobs["x"].data, np.maximum(x, np.float32(0)) + ns * np.minimum(x, np.float32(0)))
    net.blobs["x"].diff[...] = dy
    net._backward(len(net.layers) - 1, 0)
    # in place, Caffe's ReLU backward reads the already rectified top as bottom_data; its sign is x's
    y = np.maximum(x, np.float32(0)) + ns * np.minimum(x, np.float32(0))
    assert np.array_equal(net.blobs["x"].diff, dy * ((y > 0).astype(np.float32) + ns * (y <= 0).astype(np.float32)))


THREADS_SCRIPT = textwrap.dedent("""
    import hashlib, os, tempfile
    import numpy as np
    os.environ["GLOG_minloglevel"] = "2"
    import caffe
    caffe.set_mode_cpu()
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write('force_backward: true\\nlayer { name: "x" type: "Input" top: "x" input_param { shape { '
                'dim: 128 dim: 56 dim: 7 dim: 7 } } }\\n'
                'layer { name: "p" type: "PReLU" bottom: "x" top: "x" prelu_param { channel_shared: true } }\\n')
    net = caffe.Net(f.name, caffe.TEST)
    os.unlink(f.name)
    rng = np.random.RandomState(8)
    net.blobs["x"].data[...] = rng.standard_normal((128, 56, 7, 7)).astype(np.float32)
    net.forward()
    net.clear_param_diffs()
    net.blobs["x"].diff[...] = rng.standard_normal((128, 56, 7, 7)).astype(np.float32)
    net._backward(len(net.layers) - 1, 0)
    print(float(net.params["p"][0].diff).hex(), hashlib.sha1(net.blobs["x"].diff.tobytes()).hexdigest(),
          hashlib.sha1(net.blobs["x"].data.tobytes()).hexdigest())
""")


@pytest.mark.slow
def test_prelu_shared_slope_gradient_is_the_same_for_any_thread_count():
    """The channel-shared slope gradient is summed in fixed blocks: bitwise reproducible whatever
    OMP_NUM_THREADS (stock Caffe sums on one thread, so it passes trivially)."""
    results = set()
    for threads in ("1", "2", "3"):
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", THREADS_SCRIPT], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        results.add(out.stdout.strip())
    assert len(results) == 1, results


def test_toolkit_build_runs_prelu_and_relu_on_openmp():
    """The toolkit's own build (tools/setup.sh) compiles tools/caffe-patches/0002 with -fopenmp."""
    info = os.path.join(sys.prefix, ".srcaffe-caffe")
    require(os.path.isfile(info) and open(info).read().startswith("key="),
            "the linked Caffe is not the toolkit's own build")
    lib = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(os.path.join(sys.prefix, "bin", "caffe")))),
                       "lib", "libcaffe.so")
    ldd = subprocess.run(["ldd", lib], capture_output=True, text=True).stdout
    assert "libgomp" in ldd, "libcaffe.so does not link libgomp: built without -fopenmp?"
