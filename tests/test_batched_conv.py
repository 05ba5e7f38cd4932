"""Batched convolution (tools/caffe-patches/0003): Convolution and Deconvolution convolve a chunk of
the batch per GEMM, the chunk bounded by $CAFFE_CONV_BATCH_MB (0: stock Caffe's per-image path).

Every case runs three ways in the linked Caffe: the default budget, a budget that forces chunks of
two images (so an odd batch ends on a chunk of one), and the stock path. Each is checked against a
NumPy reference of stock Caffe's formulas in float64 (im2col/col2im with groups, stride, pad,
dilation): the output, and for a random top diff the data, weight and bias gradients.

Tolerance: float32 results differ from the float64 reference by rounding only. A float32 sum of L
terms is within about L * 6e-8 * sum|terms| of the exact sum in the worst case and sqrt(L) * 6e-8
typically; the longest sums here are L <= 1000 (weight gradients over images x pixels). So each
element must be within 2e-5 of the same computation on absolute values (|x|, |w|, |dy|): ample for
rounding, while a term added twice, left out or taken from the wrong image is off by a whole term.
"""
import os

import numpy as np
import pytest

import caffe  # noqa: E402  (the toolkit's real Caffe; CI builds it)

from helpers import check_gradients, require

ENV = "CAFFE_CONV_BATCH_MB"
RTOL = 2e-5


# ---- NumPy reference: stock Caffe's im2col formulation, in float64 --------------------------------

def out_size(size, k, s, p, d):
    return (size + 2 * p - (d * (k - 1) + 1)) // s + 1


def im2col(x, k, s, p, d):
    """x [n, C, H, W] -> [n, C, kh, kw, OH, OW] (zero padding)."""
    n, c, h, w = x.shape
    oh, ow = out_size(h, k[0], s[0], p[0], d[0]), out_size(w, k[1], s[1], p[1], d[1])
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    cols = np.empty((n, c, k[0], k[1], oh, ow))
    for i in range(k[0]):
        for j in range(k[1]):
            cols[:, :, i, j] = xp[:, :, i * d[0]:i * d[0] + s[0] * (oh - 1) + 1:s[0],
                                  j * d[1]:j * d[1] + s[1] * (ow - 1) + 1:s[1]]
    return cols


def col2im(cols, shape, k, s, p, d):
    """The adjoint of im2col: every column value added back to its pixel."""
    n, c, h, w = shape
    oh, ow = cols.shape[-2:]
    xp = np.zeros((n, c, h + 2 * p[0], w + 2 * p[1]))
    for i in range(k[0]):
        for j in range(k[1]):
            xp[:, :, i * d[0]:i * d[0] + s[0] * (oh - 1) + 1:s[0],
               j * d[1]:j * d[1] + s[1] * (ow - 1) + 1:s[1]] += cols[:, :, i, j]
    return xp[:, :, p[0]:p[0] + h, p[1]:p[1] + w]


def conv_forward(x, w, g, k, s, p, d):
    """Convolution without bias: w [M, C/g, kh, kw] -> [n, M, OH, OW]."""
    cols = im2col(x, k, s, p, d)
    n, oh, ow = x.shape[0], cols.shape[-2], cols.shape[-1]
    cols = cols.reshape(n, g, -1, oh * ow)
    wg = w.reshape(g, w.shape[0] // g, -1)
    return np.einsum("gmk,ngkp->ngmp", wg, cols).reshape(n, w.shape[0], oh, ow)


def conv_backward(x, w, dy, g, k, s, p, d):
    """(dx, dw) of conv_forward for the top diff dy."""
    cols = im2col(x, k, s, p, d)
    n, oh, ow = x.shape[0], cols.shape[-2], cols.shape[-1]
    cols = cols.reshape(n, g, -1, oh * ow)
    dyg = dy.reshape(n, g, -1, oh * ow)
    wg = w.reshape(g, w.shape[0] // g, -1)
    dw = np.einsum("ngmp,ngkp->gmk", dyg, cols).reshape(w.shape)
    dcols = np.einsum("gmk,ngmp->ngkp", wg, dyg).reshape(n, x.shape[1], k[0], k[1], oh, ow)
    return col2im(dcols, x.shape, k, s, p, d), dw


def reference(case, x, w, b, dy):
    """(y, dx, dw, db) as stock Caffe defines them; Deconvolution is the transpose of the
    convolution whose input has the deconvolution's output shape (weights [C, M/g, kh, kw])."""
    g, k, s, p, d = case["group"], case["k"], case["s"], case["p"], case["d"]
    if case["type"] == "Convolution":
        y = conv_forward(x, w, g, k, s, p, d)
        dx, dw = conv_backward(x, w, dy, g, k, s, p, d)
    else:
        top_shape = (x.shape[0], w.shape[1] * g) + tuple(
            s[i] * (x.shape[2 + i] - 1) + d[i] * (k[i] - 1) + 1 - 2 * p[i] for i in range(2))
        y, _ = conv_backward(np.zeros(top_shape), w, x, g, k, s, p, d)
        dx = conv_forward(dy, w, g, k, s, p, d)
        _, dw = conv_backward(dy, w, x, g, k, s, p, d)
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    db = dy.sum(axis=(0, 2, 3)) if b is not None else None
    return y, dx, dw, db


# ---- the grid ------------------------------------------------------------------------------------

def case(type_, n, c, hw, m, k, s=1, p=0, d=1, group=1, bias=True, extra=""):
    pair = lambda v: tuple(v) if isinstance(v, tuple) else (v, v)   # noqa: E731
    return dict(type=type_, n=n, c=c, hw=pair(hw), m=m, k=pair(k), s=pair(s), p=pair(p), d=pair(d),
                group=group, bias=bias, extra=extra)


CASES = {
    "conv3x3_pad1_b5": case("Convolution", 5, 3, 7, 4, 3, p=1),
    "conv_fsrcnn_first_b3": case("Convolution", 3, 1, 11, 8, 5),
    "conv_group2_stride2_b3": case("Convolution", 3, 4, (9, 8), 6, 3, s=2, p=1, group=2),
    "conv_group3_nobias_b4": case("Convolution", 4, 6, 6, 3, 3, group=3, bias=False),
    "conv_dilation2_rect_b4": case("Convolution", 4, 2, (10, 9), 3, (3, 2), s=(1, 2), p=(2, 1), d=(2, 3)),
    "conv1x1_b7": case("Convolution", 7, 5, 6, 3, 1),
    "conv1x1_b1": case("Convolution", 1, 5, 6, 3, 1),
    "conv1x1_stride2_b3": case("Convolution", 3, 4, 7, 2, 1, s=2),
    "conv1x1_pad1_b2": case("Convolution", 2, 3, 4, 2, 1, p=1),
    "conv_kernel_exceeds_input_b3": case("Convolution", 3, 2, 3, 2, 5, p=2),
    "conv_stride_gt_kernel_b3": case("Convolution", 3, 2, 10, 3, 2, s=3, p=1),
    "conv5x5_b1": case("Convolution", 1, 3, 9, 4, 5, p=2),
    "conv_force_nd_b3": case("Convolution", 3, 2, 6, 3, 3, p=1, extra="force_nd_im2col: true"),
    "deconv_fsrcnn_k9s3p4_b5": case("Deconvolution", 5, 4, 5, 1, 9, s=3, p=4),
    "deconv_group2_dil2_b3": case("Deconvolution", 3, 4, 4, 6, 3, s=2, p=1, d=2, group=2),
    "deconv_rect_nobias_b4": case("Deconvolution", 4, 3, (4, 5), 2, (3, 4), s=(2, 1), p=(1, 0), bias=False),
    "deconv1x1_b4": case("Deconvolution", 4, 3, 5, 2, 1),
    "deconv1x1_b1": case("Deconvolution", 1, 3, 5, 2, 1),
    "deconv_k4s2p1_b1": case("Deconvolution", 1, 2, 6, 3, 4, s=2, p=1),
    # output rows of 9-16 values: two blocks per row in the short-row im2col
    "conv3x3_pad1_rows13_b3": case("Convolution", 3, 2, (5, 13), 3, 3, p=1),
    # output rows wider than the short-row paths take (kShortRow = 32 in conv_batch.cpp)
    "conv3x3_pad1_wide_b3": case("Convolution", 3, 2, (4, 40), 3, 3, p=1),
    "deconv_k3s2p1_wide_b2": case("Deconvolution", 2, 3, (3, 36), 2, 3, s=2, p=1),
    # images whose columns (1x1: output) pass 4 MB (kConvBandedFromBytes): the forward pass goes
    # in bands. Bands of 202 columns on two threads, across the 150-value rows:
    "conv3x3_pad1_banded_b2": case("Convolution", 2, 12, (80, 150), 12, 3, p=1),
    "conv_banded_group2_stride2_dil2_b1": case("Convolution", 1, 8, (300, 200), 6, 3, s=2, p=2, d=2, group=2),
    # GEMMs too narrow to go side by side (64 x 50 x 81): one band at a time
    "conv9x9_banded_b1": case("Convolution", 1, 1, (120, 120), 64, 9, p=4),
    "conv1x1_banded_b2": case("Convolution", 2, 12, (150, 150), 56, 1),
    # col2im's side in bands of whole rows (4 MB of columns: 32 and 8 rows; 64 and 16 rows)
    "deconv_fsrcnn_banded_b2": case("Deconvolution", 2, 16, (40, 400), 1, 9, s=3, p=4),
    "deconv_banded_group2_dil2_b1": case("Deconvolution", 1, 4, (80, 300), 6, 3, s=2, p=1, d=2, group=2),
}


def layer_text(c):
    def fields(name, v, default):
        if v == (default, default):
            return ""
        return "%s_h: %d %s_w: %d " % (name, v[0], name, v[1])
    conv = "num_output: %d kernel_h: %d kernel_w: %d %s%s" % (c["m"], c["k"][0], c["k"][1],
                                                             fields("stride", c["s"], 1), fields("pad", c["p"], 0))
    if c["d"] != (1, 1):
        conv += "dilation: %d dilation: %d " % c["d"]
    if c["group"] != 1:
        conv += "group: %d " % c["group"]
    if not c["bias"]:
        conv += "bias_term: false "
    conv += c["extra"] + ' weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'
    return ('force_backward: true\nlayer { name: "x" type: "Input" top: "x" input_param { shape { '
            'dim: %d dim: %d dim: %d dim: %d } } }\n' % ((c["n"], c["c"]) + c["hw"]) +
            'layer { name: "l" type: "%s" bottom: "x" top: "y" convolution_param { %s } }\n' % (c["type"], conv))


def omp_threads():
    """The threads Caffe's OpenMP loops use (each gets its share of the budget)."""
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count())


def chunk_of_two_mb(c):
    """A budget that holds 2.5 images of the layer's chunk buffers per thread: chunks of two."""
    h, w = c["hw"]
    if c["type"] == "Convolution":   # GEMM side: the top; im2col side: the bottom
        n_out = out_size(h, c["k"][0], c["s"][0], c["p"][0], c["d"][0]) * \
            out_size(w, c["k"][1], c["s"][1], c["p"][1], c["d"][1])
        rows, m = c["c"] * c["k"][0] * c["k"][1], c["m"]
    else:
        n_out, rows, m = h * w, c["m"] * c["k"][0] * c["k"][1], c["c"]
    return omp_threads() * 2.5 * 4 * n_out * (rows + m) / 2.0 ** 20


@pytest.fixture
def budget(monkeypatch):
    """Set $CAFFE_CONV_BATCH_MB (None: unset, the patch's default) for nets made afterwards."""
    def set_(mb):
        if mb is None:
            monkeypatch.delenv(ENV, raising=False)
        else:
            monkeypatch.setenv(ENV, repr(mb))
    return set_


def run_layer(tmp_path, c, x, dy, seed=1701):
    """(y, dx, dw, db, w, b) from the linked Caffe: fillers seeded, one forward and one backward."""
    path = tmp_path / ("net%d.prototxt" % len(list(tmp_path.iterdir())))
    path.write_text(layer_text(c))
    caffe.set_mode_cpu()
    caffe.set_random_seed(seed)
    net = caffe.Net(str(path), caffe.TEST)
    params = net.params["l"]
    w = params[0].data.copy()
    b = params[1].data.copy() if c["bias"] else None
    net.blobs["x"].data[...] = x
    y = net.forward()["y"].copy()
    net.clear_param_diffs()
    net.blobs["y"].diff[...] = dy
    net._backward(len(net.layers) - 1, 0)
    db = params[1].diff.copy() if c["bias"] else None
    return y, net.blobs["x"].diff.copy(), params[0].diff.copy(), db, w, b


def inputs(c, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.standard_normal((c["n"], c["c"]) + c["hw"]).astype(np.float32)
    return rng, x


def assert_close(name, got, ref, scale):
    assert got.shape == ref.shape, "%s: shape %s, reference %s" % (name, got.shape, ref.shape)
    err = np.abs(got.astype(np.float64) - ref)
    bound = RTOL * (scale + 1e-3)   # 1e-3: elements whose terms all vanish (padding) must be ~0
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert (err <= bound).all(), "%s%s: %.8g, reference %.8g" % (name, worst, got[worst], ref[worst])


@pytest.mark.parametrize("mode", ["default", "chunks_of_2", "stock"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_output_and_gradients_match_numpy(tmp_path, budget, name, mode):
    c = CASES[name]
    budget({"default": None, "chunks_of_2": chunk_of_two_mb(c), "stock": 0}[mode])
    rng, x = inputs(c)
    # the top's shape comes from Caffe; its diff is drawn after the forward shape is known
    probe = run_layer(tmp_path, c, x, 0)
    dy = rng.standard_normal(probe[0].shape).astype(np.float32)
    y, dx, dw, db, w, b = run_layer(tmp_path, c, x, dy)
    ref = reference(c, x.astype(np.float64), w.astype(np.float64),
                    None if b is None else b.astype(np.float64), dy.astype(np.float64))
    absb = None if b is None else np.abs(b.astype(np.float64))
    scale = reference(c, np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)), absb,
                      np.abs(dy.astype(np.float64)))
    for what, got, r, sc in zip(("output", "data gradient", "weight gradient", "bias gradient"),
                                (y, dx, dw, db), ref, scale):
        if r is None:
            assert got is None
            continue
        assert_close("%s %s" % (name, what), got, r, sc)


@pytest.mark.parametrize("name", ["conv3x3_pad1_b5", "conv_group2_stride2_b3", "conv1x1_b7",
                                  "deconv_fsrcnn_k9s3p4_b5", "deconv_group2_dil2_b3",
                                  "conv3x3_pad1_banded_b2", "conv1x1_banded_b2",
                                  "deconv_fsrcnn_banded_b2"])
def test_batched_path_equals_stock_path(tmp_path, budget, name):
    """The same layer and data through both paths: equal up to the GEMMs' rounding (the batched
    path's GEMMs are wider: OpenBLAS may block the sums differently), col2im bit for bit."""
    c = CASES[name]
    rng, x = inputs(c, seed=3)
    budget(0)
    y0 = run_layer(tmp_path, c, x, 0)[0]
    dy = rng.standard_normal(y0.shape).astype(np.float32)
    stock = run_layer(tmp_path, c, x, dy)
    for mb in (None, chunk_of_two_mb(c)):
        budget(mb)
        got = run_layer(tmp_path, c, x, dy)
        for what, a, b in zip(("output", "data gradient", "weight gradient", "bias gradient"), got[:4], stock[:4]):
            if b is None:
                continue
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max(), err_msg="%s %s" % (name, what))


@pytest.mark.parametrize("name", ["conv3x3_pad1_b5", "deconv_group2_dil2_b3", "conv1x1_b7"])
def test_numerical_gradients_through_the_batched_path(tmp_path, budget, name):
    """Caffe's own gradient check (tests/test_layers_gradient.py) on the chunked path."""
    c = CASES[name]
    budget(chunk_of_two_mb(c))
    _, x = inputs(c, seed=5)
    path = tmp_path / "net.prototxt"
    path.write_text(layer_text(c))
    caffe.set_mode_cpu()
    caffe.set_random_seed(1701)
    net = caffe.Net(str(path), caffe.TEST)
    net.blobs["x"].data[...] = x
    n_params = sum(b.data.size for b in net.params["l"])
    assert check_gradients(net, x) == x.size + n_params


def test_nd_convolution_keeps_the_stock_path(tmp_path, budget):
    """3 spatial axes: the per-image N-D im2col, the same result whatever the budget."""
    text = ('force_backward: true\nlayer { name: "x" type: "Input" top: "x" input_param { shape { '
            'dim: 3 dim: 2 dim: 5 dim: 4 dim: 6 } } }\n'
            'layer { name: "l" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 3 '
            'kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.5 } '
            'bias_filler { type: "gaussian" std: 0.5 } } }\n')
    path = tmp_path / "nd.prototxt"
    path.write_text(text)
    x = np.random.RandomState(9).standard_normal((3, 2, 5, 4, 6)).astype(np.float32)
    results = []
    for mb in (0, None, 1e-4):
        budget(mb)
        caffe.set_random_seed(1701)
        net = caffe.Net(str(path), caffe.TEST)
        net.blobs["x"].data[...] = x
        y = net.forward()["y"].copy()
        net.blobs["y"].diff[...] = 1.0
        net.clear_param_diffs()
        net._backward(len(net.layers) - 1, 0)
        results.append((y, net.blobs["x"].diff.copy(), net.params["l"][0].diff.copy()))
    # direct check of one output value against the definition
    w, b = net.params["l"][0].data, net.params["l"][1].data
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1), (1, 1)))
    want = (xp[1, :, 2:5, 1:4, 3:6] * w[2]).sum() + b[2]
    assert abs(results[0][0][1, 2, 2, 1, 3] - want) < 1e-4
    for r in results[1:]:
        for a, b_ in zip(r, results[0]):
            assert np.array_equal(a, b_)


def test_bad_budget_is_refused(tmp_path):
    """A malformed $CAFFE_CONV_BATCH_MB stops Caffe with a message naming the variable."""
    import subprocess
    import sys
    c = CASES["conv3x3_pad1_b5"]
    path = tmp_path / "net.prototxt"
    path.write_text(layer_text(c))
    code = "import caffe; caffe.Net(%r, caffe.TEST)" % str(path)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, CAFFE_CONV_BATCH_MB="lots", GLOG_minloglevel="0"))
    assert r.returncode != 0 and "CAFFE_CONV_BATCH_MB must be a number" in r.stderr


# ---- real nets: training losses and the shipped models' PSNR --------------------------------------

# Adam iterations per model: SRCNN's are ~15x FSRCNN's cost (its 9x9 and 5x5 layers on 33x33 patches),
# and a wrong gradient shows within a few iterations either way
TRAIN_ITERS = {"fsrcnn": 200, "srcnn": 80}
# Relative difference allowed between the two paths' losses at every iteration. The paths differ
# by float rounding in the GEMMs (sums blocked over a chunk rather than one image) and in the
# weight-gradient sums; Adam feeds it back into the weights, so the losses drift apart slowly
# (measured after 200 iterations: about 1e-5 to 1e-4 relative); a wrong gradient moves the
# loss by percents within a few iterations.
LOSS_RTOL = 2e-3


def small_training_data(tmp_path, model):
    """HDF5 patches of 8 T91 images, cut as tools/prepare_data.py cuts them (no augmentation)."""
    from srcaffe import datasets, hdf5_patches
    images = datasets.list_images("T91")[:8]
    x, y = hdf5_patches.collect(model, 3, images, hdf5_patches.train_stride(model), False)
    order = np.random.RandomState(0).permutation(len(x))
    h5 = tmp_path / ("%s.h5" % model)
    hdf5_patches.write_h5(str(h5), x[order], y[order])
    listing = tmp_path / ("%s.txt" % model)
    listing.write_text(str(h5) + "\n")
    return str(listing), len(x)


def train_losses(tmp_path, model, listing, mb, tag):
    """Losses of TRAIN_ITERS[model] Adam iterations of the model's train net (the toolkit's solver file,
    without its test net) from the same seeded fillers, under the budget `mb`."""
    import re
    from srcaffe import paths, solvers
    if mb is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = repr(mb)
    net_text = open(paths.net_file(model, 3, "train_test")).read()
    net_text = re.sub(r'source: "[^"]*train\.txt"', 'source: "%s"' % listing, net_text, count=1)
    net_path = tmp_path / ("%s-%s.prototxt" % (model, tag))
    net_path.write_text(net_text)
    s = solvers.read(paths.solver_file(model, 3, "adam"))
    s.ClearField("test_iter")
    s.ClearField("test_interval")
    s.net, s.max_iter, s.display, s.snapshot, s.snapshot_prefix = str(net_path), TRAIN_ITERS[model], 0, 0, str(tmp_path / tag)
    solver_text = solvers.to_text(s)
    solver_path = tmp_path / ("%s-%s-solver.prototxt" % (model, tag))
    solver_path.write_text(solver_text)
    caffe.set_mode_cpu()
    caffe.set_random_seed(1701)
    solver = caffe.get_solver(str(solver_path))
    losses = []
    for _ in range(TRAIN_ITERS[model]):
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    return np.array(losses)


@pytest.mark.slow   # 2 x TRAIN_ITERS Adam iterations of the toolkit's nets on T91 patches
@pytest.mark.parametrize("model", ["fsrcnn", "srcnn"])
def test_training_losses_match_the_stock_path(fetched, tmp_path, model):
    listing, n = small_training_data(tmp_path, model)
    assert n > 3 * 128   # several batches: the data layer cycles through different patches
    old = os.environ.get(ENV)
    try:
        stock = train_losses(tmp_path, model, listing, 0, "stock")
        batched = train_losses(tmp_path, model, listing, None, "batched")
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old
    assert stock[-20:].mean() < 0.7 * stock[:5].mean()   # it learns (the comparison means something)
    rel = np.abs(batched - stock) / np.abs(stock)
    assert rel.max() <= LOSS_RTOL, "iteration %d: %.8g vs stock %.8g" % (rel.argmax(), batched[rel.argmax()],
                                                                         stock[rel.argmax()])


SHIPPED = ["fsrcnn_x3", "fsrcnn-s_x3", "srcnn_x3", "fsrcnn_x2", "fsrcnn_x4"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_psnr_unchanged(fetched, name):
    """models/<name>.json's Set5/Set14 PSNR (measured with stock Caffe's convolution) again,
    to 0.01 dB, on the batched path (the default)."""
    import json
    from srcaffe import datasets, paths
    from srcaffe.models import load_model
    from srcaffe.evaluation import evaluate
    model, scale = name.rsplit("_x", 1)
    scale = int(scale)
    path = paths.shipped_weights(model, scale)
    require(os.path.isfile(path), "%s is not shipped" % path)
    shipped = json.load(open(os.path.join(paths.models_dir(), name + ".json")))["results"]
    assert os.environ.get(ENV) is None   # the default budget
    m = load_model(model, scale)
    for dataset in ("Set5", "Set14"):
        got = evaluate(m.upscaler, datasets.list_images(dataset), scale, name, dataset=dataset)["mean_psnr"]
        assert abs(got - shipped[dataset]["psnr"]) <= 0.005 + 1e-9, "%s %s: %.4f, shipped %.2f" % (
            name, dataset, got, shipped[dataset]["psnr"])
