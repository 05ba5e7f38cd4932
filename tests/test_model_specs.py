"""Every entry point takes the same model specs, resolved in one place (srcaffe.models): a
shipped name, an official name and a .caffemodel file, for images, videos, evaluate and MMSR,
each named in the outputs as the spec names it."""
import os
import shutil

import pytest

from srcaffe import ROOT, models, video
from srcaffe.errors import UserError
from srcaffe.images import load_image, save_image

from helpers import tool

pytestmark = pytest.mark.slow   # whole tools, three models each

SPECS = [("fsrcnn-s", "fsrcnn-s"), ("official-fsrcnn-s", "official-fsrcnn-s"), ("FILE", "mine")]


@pytest.fixture(scope="module")
def inputs(fetched, tmp_path_factory):
    d = tmp_path_factory.mktemp("specs")
    shutil.copy(os.path.join(ROOT, "models", "fsrcnn-s_x3.caffemodel"), d / "mine.caffemodel")
    small = load_image(os.path.join(fetched, "Set5", "bird_GT.bmp"))[:96, :96]
    os.makedirs(d / "set")
    save_image(str(d / "set" / "bird.png"), small)
    clip = video.pan_zoom_clip(str(d / "pan.mp4"), small, 48, 32, 3)
    return d, str(d / "mine.caffemodel"), str(d / "set" / "bird.png"), clip


@pytest.mark.parametrize("spec,name", SPECS, ids=[s for s, _ in SPECS])
def test_predict_evaluate_video_and_mmsr_take_the_same_specs(inputs, spec, name, tmp_path):
    d, mine, image, clip = inputs
    spec = mine if spec == "FILE" else spec
    r = tool("predict.py", image, "--model", spec, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / ("bird_x3_%s.png" % name)).is_file() and " %s " % name in r.stdout
    r = tool("predict.py", clip, "--mode", "upscale", "--model", spec, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / ("pan_x3_%s_upscale.mp4" % name)).is_file()
    r = tool("evaluate.py", "--model", spec, "--dataset", os.path.dirname(image), "--scale", 3)
    assert r.returncode == 0, r.stderr
    assert name in r.stdout.splitlines()[0]
    r = tool("mmsr.py", "evaluate", "--class-models", spec, spec, "--thresholds", "2300", "--single", spec,
             "--datasets", os.path.dirname(image), "--fragments", 24, "--overlap", 4)
    assert r.returncode == 0, r.stderr
    assert name in r.stdout


def test_one_resolver_one_error_for_what_no_spec_means(tmp_path):
    for bad, words in (("fsrcnnn", "not a model name"), (str(tmp_path / "gone.caffemodel"), "not found"),
                       ("official-fsrcnn-x", "not a model name")):
        with pytest.raises(UserError) as e:
            models.load_model(bad, 3)
        assert words in str(e.value) and bad in str(e.value)
    with pytest.raises(UserError) as e:
        models.load_model("official-srcnn-935", 2)
    assert "released no x2 model" in str(e.value)
    assert models.label("official-fsrcnn") == "official-fsrcnn" and models.label("runs/r1/") == "r1"
