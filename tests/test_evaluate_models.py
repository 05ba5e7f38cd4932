"""tools/evaluate.py --model: caffemodels evaluated with the demo_SR.m pipeline, next to bicubic
and the papers' numbers."""
import json
import os
import subprocess
import sys

import pytest

from srcaffe import ROOT, datasets, papers

from srcaffe.models import load_model
from srcaffe.evaluation import bicubic_upscaler, evaluate
from helpers import assert_one_line_error, make_caffemodel

TOOL = os.path.join(ROOT, "tools", "evaluate.py")
KEYS = {"dataset", "scale", "method", "mean_psnr", "mean_ssim", "images"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {"linear": make_caffemodel(d / "lin.caffemodel", kind="linear"),
            "identity": make_caffemodel(d / "ident.caffemodel", "srcnn", kind="linear")}


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL] + [str(a) for a in args], capture_output=True, text=True, timeout=120)


def test_model_plugs_into_evaluate(fetched, models):
    images = datasets.list_images("Set5")[:2]
    model = load_model(models["identity"])
    got = evaluate(model.upscaler, images, 3, "srcnn", dataset="Set5")
    ref = evaluate(bicubic_upscaler, images, 3, "bicubic", dataset="Set5")
    assert [r["psnr"] for r in got["images"]] == [r["psnr"] for r in ref["images"]]   # identity SRCNN = bicubic


@pytest.mark.slow
def test_models_side_by_side_with_papers(fetched, models, tmp_path):
    out = tmp_path / "r.json"
    r = run_tool("--dataset", "Set5", "--scale", "3", "--model", models["linear"], models["identity"], "--json", out)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["Set5", "x3", "bicubic", "lin", "ident"]
    mean = next(l for l in lines if l.startswith("mean")).split()
    assert mean[1] == "30.39" and mean[3] == "29.53" and mean[5] == "30.39"
    assert next(l for l in lines if l.startswith("paper")).split() == ["paper", "30.39", "33.06", "32.39"]
    assert "33.16 FSRCNN ECCV 2016, final" in r.stdout
    data = json.loads(out.read_text())
    assert isinstance(data, list) and [d["method"] for d in data] == ["bicubic", "lin", "ident"]
    for d in data:
        assert set(d) == KEYS and d["dataset"] == "Set5" and d["scale"] == 3 and len(d["images"]) == 5
        assert set(d["images"][0]) == {"name", "psnr", "ssim", "height", "width"}
    r = run_tool("--dataset", "Set5", "--scale", "3", "--method", "bicubic", "--json", out, "--force")
    assert r.returncode == 0 and set(json.loads(out.read_text())) == KEYS   # one method: one dict


def test_papers_table():
    assert papers.published("srcnn-955", "Set14", 4) == [(27.50, "SRCNN TPAMI 2015, 9-5-5")]
    assert [p for p, _ in papers.published("fsrcnn", "Set14", 2)] == [32.63]   # only the final model
    assert papers.published("srcnn", "Set14", 3) == [(29.00, "SRCNN ECCV 2014, 9-1-5")]
    assert papers.published("srcnn", "Set5", 2) == []       # a cell the paper does not print


@pytest.mark.slow
def test_model_errors(fetched, models, tmp_path):
    srcnn = make_caffemodel(tmp_path / "s.caffemodel", "srcnn")
    assert_one_line_error(run_tool("--dataset", "Set5", "--scale", "3", "--model", srcnn, "--arch", "fsrcnn"),
                          "s.caffemodel: does not hold fsrcnn weights")
    assert_one_line_error(run_tool("--dataset", "Set5", "--scale", "3", "--model", tmp_path / "none.caffemodel"),
                          "none.caffemodel: not found")
    assert_one_line_error(run_tool("--dataset", "Set5", "--scale", "3", "--model", "nosuchnet"), "nosuchnet")
