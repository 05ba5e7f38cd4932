"""srcaffe.inference and tools/predict.py with real Caffe: geometry, tiling, outputs, errors.

Caffemodels are written by pycaffe itself (caffe.Net on the deploy prototxt, weights set, net.save):
random ones, an FSRCNN that is exactly linear interpolation, an SRCNN that is the identity on its
bicubic input, and one whose only non-zero parameter is the last bias.
"""
import os
import shutil
import subprocess
import sys

os.environ.setdefault("GLOG_minloglevel", "2")

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from srcaffe import ROOT, datasets, device, matlab, paths, weights

from srcaffe.models import load_model
from srcaffe.errors import UserError
from srcaffe.evaluation import prepare_pair

from helpers import assert_figure, assert_one_line_error, make_caffemodel

TOOL = os.path.join(ROOT, "tools", "predict.py")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {
        "fsrcnn": make_caffemodel(d / "fsrcnn_random.caffemodel"),
        "srcnn": make_caffemodel(d / "srcnn_random.caffemodel", "srcnn"),
        "linear": make_caffemodel(d / "fsrcnn_linear.caffemodel", kind="linear"),
        "identity": make_caffemodel(d / "srcnn_identity.caffemodel", "srcnn", kind="linear"),
        "bias": make_caffemodel(d / "fsrcnn_bias.caffemodel", kind="bias", bias=0.25),
    }


def run_tool(*args, cwd=None):
    return subprocess.run([sys.executable, TOOL] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


# ---- srcaffe.inference ----------------------------------------------------------------------

def test_geometry_fsrcnn_is_linear_interpolation_and_srcnn_identity(fetched, models):
    """Proves the crop/offset: with these weights the nets are known interpolators, border included."""
    gnd, lr = prepare_pair(datasets.resolve_image("butterfly"), 3)
    sr = load_model(models["linear"], arch="fsrcnn").upscale_y(lr)
    assert sr.shape == gnd.shape
    # LR pixel i sits at HR 3i+1; replicate padding = 'nearest' extrapolation
    ys, xs = [(np.arange(n) + 0.5) / 3 - 0.5 for n in gnd.shape]
    ref = ndimage.map_coordinates(lr, np.meshgrid(ys, xs, indexing="ij"), order=1, mode="nearest")
    np.testing.assert_allclose(sr, ref, atol=1e-5)
    sr = load_model(models["identity"]).upscale_y(lr, 3)
    np.testing.assert_allclose(sr, np.maximum(matlab.imresize(lr, 3), 0), atol=1e-5)   # ReLU


@pytest.mark.parametrize("name", ["fsrcnn", "srcnn"])
@pytest.mark.parametrize("pad", ["replicate", "zero"])
def test_tiles_equal_the_whole_image(models, name, pad):
    lr = np.random.default_rng(1).random((37, 29))
    whole = load_model(models[name], pad=pad, tile=1000).upscale_y(lr)
    tiled = load_model(models[name], pad=pad, tile=5)
    assert tiled.tile == 5 and whole.shape == (111, 87) and whole.std() > 0.05
    np.testing.assert_allclose(tiled.upscale_y(lr), whole, atol=1e-5, rtol=0)


def test_the_net_really_runs(models):
    m = load_model(models["bias"])
    assert m.arch.name == "fsrcnn" and m.name == "fsrcnn_bias"   # named by its file
    sr = m.upscale_y(np.random.default_rng(2).random((9, 12)))
    assert sr.shape == (27, 36) and np.all(sr == 0.25)


def test_an_engine_set_reaches_the_net_caffe_reads(models, tmp_path):
    lr = np.random.default_rng(4).random((10, 13))
    default = load_model(models["fsrcnn"]).upscale_y(lr)
    device.use(None, "caffe")   # Caffe's own engine, the only one on a CPU: the same output
    try:
        np.testing.assert_array_equal(load_model(models["fsrcnn"]).upscale_y(lr), default)
    finally:
        device.use(None, None)
    # one this CPU build lacks, set anyway, is what Caffe reads (and aborts on: a subprocess)
    code = ("from srcaffe import pycaffe; from srcaffe.models import load_model; "
            "pycaffe.set_engine('cudnn'); load_model(%r)" % str(models["fsrcnn"]))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "conv1 has unknown engine" in r.stderr, r.stderr[-2000:]
    # through the tools: refused in one line before Caffe sees it
    assert_one_line_error(run_tool("butterfly", "--model", models["fsrcnn"], "--engine", "cudnn", "--out", tmp_path),
                          "--engine cudnn runs on a GPU: give --gpu ID")
    assert not os.listdir(tmp_path)


def test_architecture_is_recognised_and_checked(models):
    assert weights.identify(models["srcnn"]) == "srcnn"
    assert load_model(models["fsrcnn"], scale=2).up == 2
    with pytest.raises(UserError, match="does not hold fsrcnn weights.*looks like srcnn"):
        load_model(models["srcnn"], arch="fsrcnn")


def test_upscale_rgb_keeps_colour_and_gray(models):
    m = load_model(models["linear"])
    rgb = (np.random.default_rng(3).random((8, 10, 3)) * 255).astype(np.uint8)
    assert m.upscale(rgb).shape == (24, 30, 3) and m.upscale(rgb[..., 0]).shape == (24, 30)


# ---- tools/predict.py -----------------------------------------------------------------------

@pytest.mark.slow
def test_gt_mode_on_butterfly(fetched, models, tmp_path):
    out = tmp_path / "out"
    r = run_tool("butterfly.bmp", "--model", models["linear"], "--out", out, "--analyse")
    assert r.returncode == 0, r.stderr
    # named by the model file (fsrcnn_linear.caffemodel); linear < bicubic
    assert "butterfly_GT x3: bicubic 24.04 dB" in r.stdout and "fsrcnn_linear 23.18 dB" in r.stdout
    names = sorted(n for n in os.listdir(out) if not n.startswith("."))
    stem = "butterfly_GT_x3_fsrcnn_linear"
    assert names == [stem + s for s in (".png", "_bicubic.png", "_compare.png", "_errors.png", "_patches.png")]
    for n in names:
        assert_figure(out / n, min_size=(200, 200), grey=n.endswith("_patches.png"))
    for n in (stem + ".png", stem + "_bicubic.png"):
        with Image.open(out / n) as im:
            assert im.size == (255, 255) and im.mode == "RGB"     # 256 modcropped to x3
    r = run_tool("butterfly.bmp", "--model", models["linear"], "--out", out)   # the same command again
    assert r.returncode == 0 and "replacing 3 file(s) this same command wrote before" in r.stdout, r.stderr
    other = tmp_path / "other" / os.path.basename(models["linear"])   # another model under the same name
    other.parent.mkdir()
    shutil.copy(models["fsrcnn"], other)
    assert_one_line_error(run_tool("butterfly.bmp", "--model", other, "--out", out), stem + ".png: already exists")
    r = run_tool("butterfly.bmp", "--model", other, "--out", out, "--force")
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_upscale_mode_and_folders(fetched, models, tmp_path):
    src = tmp_path / "lr"
    src.mkdir()
    img = np.array(Image.open(datasets.resolve_image("bird")))[:40, :31]
    Image.fromarray(img).save(src / "colour.png")
    Image.fromarray(img[..., 1]).save(src / "gray.png")
    out = tmp_path / "out"
    r = run_tool(src, "--mode", "upscale", "--model", models["srcnn"], "--scale", "2", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "colour.png: 31x40 -> 62x80" in r.stdout and "gray.png" in r.stdout
    with Image.open(out / "colour_x2_srcnn_random_upscale.png") as a, \
            Image.open(out / "gray_x2_srcnn_random_upscale_bicubic.png") as b:
        assert (a.size, a.mode, b.size, b.mode) == ((62, 80), "RGB", (62, 80), "L")
    r = run_tool(src, "--model", models["srcnn"], "--out", tmp_path / "gt")   # folder, gt mode
    assert r.returncode == 0, r.stderr
    assert "mean of 2 images" in r.stdout


@pytest.mark.slow
def test_bad_inputs_are_one_line_errors(fetched, models, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "tiny.png")
    out = tmp_path / "out"
    assert_one_line_error(run_tool(tmp_path / "notes.png", "--model", models["fsrcnn"], "--out", out),
                          "notes.png: not a readable image")
    assert_one_line_error(run_tool(tmp_path / "tiny.png", "--model", models["fsrcnn"], "--out", out),
                          "tiny.png: too small for fsrcnn x3")
    assert_one_line_error(run_tool(tmp_path / "tiny.png", "--mode", "upscale", "--model", models["fsrcnn"],
                                   "--out", out), "tiny.png: too small", "at least 5x5")
    assert_one_line_error(run_tool("butterfly", "--model", tmp_path / "missing.caffemodel", "--out", out),
                          "missing.caffemodel: not found")
    assert_one_line_error(run_tool("butterfly", "--model", tmp_path / "notes.png", "--arch", "fsrcnn"),
                          "notes.png: not a Caffe .caffemodel")
    assert_one_line_error(run_tool("butterfly", "--model", models["srcnn"], "--arch", "fsrcnn", "--out", out),
                          "srcnn_random.caffemodel: does not hold fsrcnn weights", "looks like srcnn")
    assert_one_line_error(run_tool("no_such_image.png", "--model", models["fsrcnn"]), "no_such_image.png")
    assert not out.exists()
    if not os.path.exists(paths.shipped_weights("fsrcnn", 4)):
        assert_one_line_error(run_tool("butterfly", "--scale", "4", "--out", out),
                              "models/fsrcnn_x4.caffemodel: not found; train one with ./run_train.sh fsrcnn")
