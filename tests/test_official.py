"""The authors' released models through real Caffe: conversion, border layers, the papers' numbers."""
import json
import os
import shutil

import numpy as np
import pytest

from srcaffe import matlab, official

import official_reference
from helpers import require
from srcaffe.errors import UserError

import caffe  # noqa: E402  (the toolkit's real Caffe; CI builds it)


@pytest.fixture(scope="module")
def weights_folder():
    """The released .mat files (../shared/weights/official or $SRCAFFE_OFFICIAL_WEIGHTS)."""
    folder = official.weights_dir()
    require(folder is not None, "no copy of the authors' .mat files (../shared/weights/official); "
                                "run tools/import_official.py --fetch")
    return folder


def _net(build, force_backward=False, tmp_path=None):
    from caffe import layers as L, NetSpec

    n = NetSpec()
    build(n, L)
    proto = n.to_proto()
    proto.force_backward = force_backward
    path = os.path.join(str(tmp_path), "net.prototxt")
    with open(path, "w") as f:
        f.write(str(proto))
    return caffe.Net(path, caffe.TEST)


def _python(L, bottom, layer, param_str):
    return L.Python(bottom, python_param=dict(module="srcaffe.caffe_layers", layer=layer, param_str=param_str))


# ---- the Python layers ------------------------------------------------------------------------

@pytest.mark.parametrize("layer,param_str", [
    ("ReplicatePad", json.dumps({"pad": [1, 2, 3, 0]})),
    ("ReplicatePad", "2"),
    ("Crop2D", json.dumps({"begin": [1, 2], "end": 1})),
])
def test_python_layer_forward_and_gradient(tmp_path, layer, param_str):
    """Forward equals NumPy; backward equals the numerical gradient of sum(G * top)."""
    from srcaffe import caffe_layers

    def build(n, L):
        n.data = L.Input(input_param=dict(shape=dict(dim=[2, 3, 5, 6])))
        n.out = _python(L, n.data, layer, param_str)
    net = _net(build, force_backward=True, tmp_path=tmp_path)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    net.blobs["data"].data[...] = x
    net.forward()
    top = net.blobs["out"].data.copy()
    if layer == "ReplicatePad":
        expected = caffe_layers.replicate_pad(x, caffe_layers.parse_pad(param_str))
    else:
        (t, l), (b, r) = caffe_layers.parse_crop(param_str)
        expected = x[..., t:x.shape[2] - b, l:x.shape[3] - r]
    assert top.shape == expected.shape
    np.testing.assert_array_equal(top, expected)

    g = rng.standard_normal(top.shape).astype(np.float32)
    net.blobs["out"].diff[...] = g
    net.backward()
    analytic = net.blobs["data"].diff.copy()

    eps = 0.5      # the layers are linear: central differences are exact up to float rounding
    numeric = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        vals = []
        for sign in (1, -1):
            xp = x.copy()
            xp[idx] += sign * eps
            net.blobs["data"].data[...] = xp
            net.forward()
            vals.append(float(np.sum(g.astype(np.float64) * net.blobs["out"].data)))
        numeric[idx] = (vals[0] - vals[1]) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, atol=1e-4)
    if layer == "ReplicatePad":   # the gradient of a replicated pad: every output's gradient lands somewhere
        np.testing.assert_allclose(analytic.sum(), g.sum(dtype=np.float64), rtol=1e-5)


def test_replicate_pad_rejects_bad_param_str():
    from srcaffe import caffe_layers

    for bad in ("", "-1", '{"pad": [1, 2, 3]}', '{"size": 2}'):
        with pytest.raises(ValueError):
            caffe_layers.parse_pad(bad)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_caffe_deconvolution_is_deconv_m(tmp_path, scale):
    """ReplicatePad(1) -> Deconvolution(9, s, pad 0) -> Crop2D(4+s, 5) == deconv.m (no kernel flip);
    an asymmetric filter catches a flip or a transpose."""
    def build(n, L):
        n.data = L.Input(input_param=dict(shape=dict(dim=[1, 1, 6, 7])))
        n.pad = _python(L, n.data, "ReplicatePad", "1")
        n.deconv = L.Deconvolution(n.pad, convolution_param=dict(num_output=1, kernel_size=9, stride=scale,
                                                                 pad=0, bias_term=False))
        n.crop = _python(L, n.deconv, "Crop2D", json.dumps({"begin": 4 + scale, "end": 5}))
    net = _net(build, tmp_path=tmp_path)
    rng = np.random.default_rng(scale)
    x, f = rng.uniform(size=(6, 7)), rng.standard_normal((9, 9))
    net.params["deconv"][0].data[0, 0] = f
    net.blobs["data"].data[0, 0] = x
    net.forward()
    got = net.blobs["crop"].data[0, 0]
    assert got.shape == (6 * scale, 7 * scale)
    np.testing.assert_allclose(got, official_reference.matlab_deconv(x, f, scale), atol=1e-5)


# ---- conversion -------------------------------------------------------------------------------

def test_conv_filter_layout_is_matlab_column_major(weights_folder):
    """filter[y, x] = w[c, x*k + y, o]: Caffe's conv1 output equals imfilter(im, reshape(w(1,:,o),5,5))."""
    from scipy.ndimage import correlate

    mat = official.load_mat("official-fsrcnn", 3)
    params = official.caffe_params("official-fsrcnn", 3, mat)
    w = mat["weights_conv"][0]
    for o in (0, 7, 55):
        np.testing.assert_array_equal(params["conv1"][0][o, 0], w[0, :, o].reshape(5, 5, order="F"))
    im = np.random.default_rng(0).uniform(size=(12, 10))
    m = official.load_official("official-fsrcnn", 3, weights="mat")
    m.forward(im)
    pre = correlate(im, w[0, :, 7].reshape(5, 5, order="F"), mode="nearest") + mat["biases_conv"][0].ravel()[7]
    act = np.maximum(pre, 0) + float(mat["prelu_conv"][0].ravel()[0]) * np.minimum(pre, 0)
    np.testing.assert_allclose(m.net.blobs["conv1"].data[0, 7], act, atol=1e-5)


@pytest.mark.parametrize("name,scale", [("official-fsrcnn", 3), ("official-fsrcnn-s", 2),
                                        ("official-srcnn-955", 4)])
def test_mat_to_caffemodel_round_trip_matches_matlab(weights_folder, tmp_path, name, scale):
    """.mat -> caffemodel (net.save) -> a fresh pycaffe net == NumPy FSRCNN.m / SRCNN.m to 1e-5."""
    path = official.import_model(name, scale, out_dir=str(tmp_path))
    with pytest.raises(UserError, match="already exists"):
        official.import_model(name, scale, out_dir=str(tmp_path))
    model = official.load_official(name, scale, weights=path)
    mat = official.load_mat(name, scale)
    rng = np.random.default_rng(scale)
    if official.is_fsrcnn(name):
        lr = rng.uniform(size=(14, 11))
        got, ref = model.upscale_y(lr), official_reference.matlab_fsrcnn(mat, lr, scale)
        assert got.shape == (14 * scale, 11 * scale)
    else:
        lr = rng.uniform(size=(8, 6))
        got, ref = model.upscale_y(lr), official_reference.matlab_srcnn(mat, matlab.imresize(lr, scale))
        assert got.shape == (8 * scale, 6 * scale)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_committed_caffemodels_match_the_mat_files(weights_folder):
    for name, entry in official.MODELS.items():
        for scale in entry["scales"]:
            path = official.caffemodel_path(name, scale)
            assert os.path.isfile(path), "%s: run tools/import_official.py" % path
            net = official.load_official(name, scale, weights=path).net
            for layer, blobs in official.caffe_params(name, scale, official.load_mat(name, scale)).items():
                for blob, value in zip(net.params[layer], blobs):
                    np.testing.assert_array_equal(blob.data, value.astype(np.float32))


def test_wrong_caffemodel_is_refused():
    path = official.caffemodel_path("official-fsrcnn-s", 3)
    require(os.path.isfile(path), "%s: missing (tools/import_official.py)" % path)
    with pytest.raises(UserError, match="does not hold fsrcnn weights"):
        official.load_official("official-fsrcnn", 3, weights=path)
    with pytest.raises(UserError, match="no x2"):
        official.load_official("official-srcnn-935", 2)


def test_generated_prototxt_are_current():
    for path, text in official.generated_files().items():
        assert os.path.isfile(path), "%s missing: run tools/make_nets.py" % path
        with open(path) as f:
            assert f.read() == text, "%s is out of date: run tools/make_nets.py" % path


def test_shave_x3_emulation():
    img = np.arange(12 * 15, dtype=np.float64).reshape(12, 15)
    np.testing.assert_array_equal(matlab.shave(official.shift_down_right(img), 3), img[2:12 - 4, 2:15 - 4])


def test_fetch_verifies_checksums(weights_folder, tmp_path, monkeypatch):
    """fetch from a local file:// mirror (no network in tests): good copies land, a bad one fails."""
    mirror = tmp_path / "mirror"
    shutil.copytree(os.path.join(weights_folder, "FSRCNN-s"), mirror / "fs")
    monkeypatch.setattr(official.registry, "SOURCES", [("raw", mirror.as_uri() + "/", {"FSRCNN-s": "fs"})])
    dest = tmp_path / "dest"
    assert official.fetch(["official-fsrcnn-s"], dest=str(dest)) == 3
    assert official.fetch(["official-fsrcnn-s"], dest=str(dest)) == 0
    os.chmod(mirror / "fs" / "x2.mat", 0o644)   # copied read-only from the shared folder
    with open(mirror / "fs" / "x2.mat", "ab") as f:
        f.write(b"x")
    os.remove(dest / "FSRCNN-s" / "x2.mat")
    with pytest.raises(UserError, match="checksum mismatch"):
        official.fetch(["official-fsrcnn-s"], dest=str(dest))
    assert not (dest / "FSRCNN-s" / "x2.mat").exists()


# ---- the papers' numbers ----------------------------------------------------------------------

def _set5(fetched):
    from srcaffe import datasets
    return datasets.list_images("Set5")


@pytest.mark.parametrize("weights", ["mat", "caffemodel"])
def test_fsrcnn_x3_set5_is_33_16(fetched, weights_folder, weights):
    from srcaffe.evaluation import evaluate

    w = "mat" if weights == "mat" else official.caffemodel_path("official-fsrcnn", 3)
    model = official.load_official("official-fsrcnn", 3, weights=w)
    result = evaluate(model.upscaler, _set5(fetched), 3, "official-fsrcnn", dataset="Set5")
    assert round(result["mean_psnr"], 2) == 33.16
    # Caffe's own zero padding instead of the authors' replicated borders: 0.38 dB lower
    zero = official.load_official("official-fsrcnn", 3, padding="zero", weights=w)
    assert round(evaluate(zero.upscaler, _set5(fetched), 3, "zero")["mean_psnr"], 2) == 32.78


@pytest.mark.slow
def test_srcnn_955_x3_set5_is_32_75(fetched, weights_folder):
    from srcaffe.evaluation import evaluate

    model = official.load_official("official-srcnn-955", 3, weights="mat")
    result = evaluate(model.upscaler, _set5(fetched), 3, "official-srcnn-955", dataset="Set5")
    assert round(result["mean_psnr"], 2) == 32.75
