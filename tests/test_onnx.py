"""tools/export.py to-onnx: every shipped and official model as an ONNX graph, run by ONNX Runtime
on a real image's Y channel and compared with the pycaffe net it was translated from."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from srcaffe import ROOT, evaluation, matlab, official, onnx_export
from srcaffe.models import load_model
from srcaffe.paths import shipped_weights
from helpers import assert_one_line_error

TOOL = os.path.join(ROOT, "tools", "export.py")
TOL = 1e-5
SHIPPED = [(m, s) for m in ("fsrcnn", "fsrcnn-s", "srcnn") for s in (2, 3, 4) if os.path.isfile(shipped_weights(m, s))]
OFFICIAL = [(m, s) for m, entry in official.MODELS.items() for s in entry["scales"]]


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL] + [str(a) for a in args], capture_output=True, text=True, timeout=120)


def session(path_or_proto):
    import onnxruntime as ort

    data = path_or_proto if isinstance(path_or_proto, str) else path_or_proto.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def run_onnx(sess, x):
    out = sess.run(None, {onnx_export.INPUT: np.asarray(x, dtype=np.float32)[None, None]})[0]
    assert out.dtype == np.float32 and out.shape[:2] == (1, 1)
    return out[0, 0].astype(np.float64)


def net_input(fetched, upsampled, scale, crop=None):
    """Set5 butterfly's LR Y (demo_SR.m's im_l), or for SRCNN its bicubic upscale (im_b)."""
    _, lr = evaluation.prepare_pair(os.path.join(fetched, "Set5", "butterfly_GT.bmp"), scale)
    x = matlab.imresize(lr, scale) if upsampled else lr
    return x[:crop, :crop] if crop else x


def test_shipped_models_are_all_covered():
    assert ("fsrcnn", 2) in SHIPPED and ("fsrcnn", 4) in SHIPPED and ("fsrcnn-s", 3) in SHIPPED
    assert ("srcnn", 3) in SHIPPED and len(OFFICIAL) == 14


@pytest.mark.parametrize("name,scale", SHIPPED)
def test_shipped_model_matches_pycaffe(fetched, tmp_path, name, scale):
    import onnx

    dest = tmp_path / "m.onnx"
    source, _ = onnx_export.export(name, str(dest), scale)
    model = onnx.load(str(dest))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["data"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 1, "H", "W"]
    m = load_model(name, scale)
    x = net_input(fetched, m.upsampled, scale, crop=120)
    # the toolkit's pycaffe net on the frame it feeds it (the image padded by pad_px, edge repeated)
    padded = np.pad(x, m.pad_px, mode="edge")
    ref = m._forward(padded)
    got = run_onnx(session(str(dest)), padded)
    assert got.shape == ref.shape and np.abs(got - ref).max() < TOL
    assert ref.std() > 0.05    # a real image, not a flat one
    # with the toolkit's borders baked in: the LR Y in, exactly upscale_y's result out
    for borders in ("replicate", "zero"):
        m.pad = borders
        lr = net_input(fetched, False, scale)[:40, :50]
        want = m.upscale_y(lr)
        got = run_onnx(session(onnx_export.build(source, borders)), matlab.imresize(lr, scale) if m.upsampled else lr)
        assert got.shape == want.shape == (40 * scale, 50 * scale) and np.abs(got - want).max() < TOL, borders


@pytest.mark.parametrize("name,scale", OFFICIAL)
def test_official_model_matches_pycaffe(fetched, tmp_path, name, scale):
    import onnx

    dest = tmp_path / "m.onnx"
    onnx_export.export(name, str(dest), scale)
    model = onnx.load(str(dest))
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert "Pad" in ops and all(n.attribute[0].s == b"edge" for n in model.graph.node if n.op_type == "Pad")
    om = official.load_official(name, scale)
    x = net_input(fetched, not om.fsrcnn, scale, crop=120)
    ref = om.forward(x)
    got = run_onnx(session(str(dest)), x)
    # the replicate padding is inside: FSRCNN scale x the LR image, SRCNN the bicubic image's size
    assert ref.shape == (x.shape[0] * (scale if om.fsrcnn else 1), x.shape[1] * (scale if om.fsrcnn else 1))
    assert got.shape == ref.shape and np.abs(got - ref).max() < TOL
    assert ("ConvTranspose" in ops) == om.fsrcnn and ops.count("PRelu") == sum(k.startswith("prelu") for k in om.net.params)


def test_batch_and_odd_sizes(tmp_path):
    """Dynamic N, H and W: one exported graph takes any batch and size the pycaffe net takes."""
    source = onnx_export.resolve("fsrcnn-s", 3)
    sess = session(onnx_export.build(source))
    m = load_model("fsrcnn-s", 3)
    rng = np.random.default_rng(1)
    xs = [rng.random((2, 1, h, w)).astype(np.float32) for h, w in ((7, 7), (13, 30), (31, 8))]
    for x in xs:
        got = sess.run(None, {"data": x})[0]
        for i in range(2):
            assert np.abs(got[i, 0] - m._forward(x[i, 0])).max() < TOL


PRELU_NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 9 dim: 9 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 1 } }
layer { name: "prelu1" type: "PReLU" bottom: "conv1" top: "conv1" prelu_param { channel_shared: false } }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 3 kernel_h: 3 kernel_w: 1 pad_h: 0 pad_w: 2 stride_h: 2 stride_w: 1 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" relu_param { negative_slope: 0.25 } }
layer { name: "conv3" type: "Deconvolution" bottom: "conv2" top: "conv3"
        convolution_param { num_output: 2 kernel_size: 5 stride: 2 pad: 1 } }
"""


def test_per_channel_prelu_leaky_relu_and_deconv_shapes(tmp_path):
    """Caffe layers the shipped nets do not use: per-channel PReLU slopes (ONNX [C,1,1]), ReLU's
    negative_slope, asymmetric kernels, strides and pads, a 2-output deconvolution with pad."""
    import caffe

    (tmp_path / "net.prototxt").write_text(PRELU_NET)
    net = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    rng = np.random.default_rng(2)
    params = {}
    for name, blobs in net.params.items():
        for b in blobs:
            b.data[...] = rng.normal(0, 0.5, b.data.shape) if name != "prelu1" else [-0.5, 0.1, 0.7, 2.0]
        params[name] = [b.data.copy() for b in blobs]
    sess = session(onnx_export.to_onnx(PRELU_NET, params, "test"))
    for h, w in ((9, 9), (12, 17)):
        x = rng.normal(0, 1, (1, 1, h, w)).astype(np.float32)
        net.blobs["data"].reshape(*x.shape)
        net.reshape()
        net.blobs["data"].data[...] = x
        ref = net.forward()["conv3"]
        got = sess.run(None, {"data": x})[0]
        assert got.shape == ref.shape == (1, 2) + ref.shape[2:] and np.abs(got - ref).max() < TOL


@pytest.mark.slow   # ten runs of the tool
def test_tool_writes_refuses_and_fails_in_one_line(tmp_path):
    import onnx

    out = tmp_path / "fsrcnn-s_x3.onnx"
    r = run_tool("to-onnx", "fsrcnn-s", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("wrote %s: fsrcnn-s x3 (weights models/fsrcnn-s_x3.caffemodel)" % out)
    onnx.checker.check_model(onnx.load(str(out)))
    assert_one_line_error(run_tool("to-onnx", "fsrcnn-s", out), "fsrcnn-s_x3.onnx: already exists", "--force")
    r = run_tool("to-onnx", "official-fsrcnn", out, "--scale", "4", "--force")
    assert r.returncode == 0 and "official-fsrcnn x4" in r.stdout, r.stderr
    assert_one_line_error(run_tool("to-onnx", "official-srcnn-935", tmp_path / "a.onnx", "--scale", "2"),
                          "official-srcnn-935: the authors released no x2 model")
    assert_one_line_error(run_tool("to-onnx", "official-fsrcnn", tmp_path / "a.onnx", "--borders", "replicate"),
                          "--borders does not apply to official-fsrcnn")
    assert_one_line_error(run_tool("to-onnx", "nosuch", tmp_path / "a.onnx"), "nosuch: no such file")
    assert_one_line_error(run_tool("to-onnx", os.path.join(ROOT, "models", "fsrcnn_x2.caffemodel"),
                                   tmp_path / "a.onnx", "--scale", "3"), "holds x2 weights", "--scale 2")
    (tmp_path / "junk.caffemodel").write_bytes(b"not a protobuf \xff\xff")
    assert_one_line_error(run_tool("to-onnx", tmp_path / "junk.caffemodel", tmp_path / "a.onnx"),
                          "junk.caffemodel: not a Caffe .caffemodel")
    assert_one_line_error(run_tool("to-onnx", shipped_weights("fsrcnn", 3), tmp_path / "a.onnx", "--arch", "srcnn"),
                          "does not hold srcnn weights")
    (tmp_path / "blocker").write_text("a file, not a folder")
    assert_one_line_error(run_tool("to-onnx", "fsrcnn-s", tmp_path / "blocker" / "sub" / "a.onnx"), "blocker")
    assert not (tmp_path / "a.onnx").exists()


def test_docs_example_runs_as_written(fetched, tmp_path):
    """docs/export.md's export command and its ONNX Runtime code block, as written."""
    text = open(os.path.join(ROOT, "docs", "export.md")).read()
    command = re.search(r"```bash\n(python tools/export.py to-onnx [^\n]*)\n", text).group(1)
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) == 3, code
    args = command.split()[1:]
    r = subprocess.run([sys.executable] + [os.path.join(ROOT, args[0])] + args[1:], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    _, lr = evaluation.prepare_pair(os.path.join(fetched, "Set5", "butterfly_GT.bmp"), 3)
    y = lr.astype(np.float32)[None, None]
    scope = {"y": y}
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "docs/export.md", "exec"), scope)
    finally:
        os.chdir(old)
    sr = scope["sr"]
    want = load_model("fsrcnn", 3).upscale_y(lr)
    assert sr.shape == (1, 1) + want.shape and np.abs(sr[0, 0] - want).max() < TOL


def test_mult_adds_count_every_conv_and_the_deconvolution():
    """onnx_export.mult_adds (the benches' GFLOP/s) against the layer shapes written out by hand."""
    h, w = 366, 646
    inner = (h - 4) * (w - 4)    # after FSRCNN's unpadded 5x5; the 3x3 mapping layers pad 1
    fsrcnn = inner * (56 * 25 + 56 * 12 + 4 * 12 * 12 * 9 + 12 * 56 + 56 * 81)
    assert onnx_export.mult_adds(onnx_export.resolve("fsrcnn", 3).prototxt, h, w) == fsrcnn
    # the authors' FSRCNN pads inside (replicate), so every layer sees the full h x w, the deconv (h+2) x (w+2)
    full = h * w * (56 * 25 + 56 * 12 + 4 * 12 * 12 * 9 + 12 * 56) + (h + 2) * (w + 2) * 56 * 81
    assert onnx_export.mult_adds(official.net_text("official-fsrcnn", 2), h, w) == full
    srcnn = (h - 8) * (w - 8) * 64 * 81 + (h - 8) * (w - 8) * 64 * 32 + (h - 12) * (w - 12) * 32 * 25
    assert onnx_export.mult_adds(onnx_export.resolve("srcnn", 3).prototxt, h, w) == srcnn
