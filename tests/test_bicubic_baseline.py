"""The papers' Bicubic rows, reproduced exactly, and tools/evaluate.py end to end."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from srcaffe import ROOT, datasets
from srcaffe.evaluation import bicubic_upscaler, evaluate, format_table

TOOL = os.path.join(ROOT, "tools", "evaluate.py")

# SRCNN (TPAMI 2015) Table: Bicubic PSNR (dB) and SSIM, Y channel, `scale` pixels shaved.
PAPER = {
    ("Set5", 2): (33.66, 0.9299), ("Set5", 3): (30.39, 0.8682), ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.23, 0.8687), ("Set14", 3): (27.54, 0.7736), ("Set14", 4): (26.00, 0.7019),
}


@pytest.mark.parametrize("dataset,scale", sorted(PAPER))
def test_bicubic_matches_the_paper(fetched, dataset, scale):
    res = evaluate(bicubic_upscaler, datasets.list_images(dataset), scale, "bicubic", dataset=dataset)
    paper_psnr, paper_ssim = PAPER[dataset, scale]
    assert round(res["mean_psnr"], 2) == paper_psnr, res["mean_psnr"]
    assert round(res["mean_ssim"], 4) == paper_ssim, res["mean_ssim"]
    assert len(res["images"]) == {"Set5": 5, "Set14": 14}[dataset]
    for row in res["images"]:
        assert row["height"] % scale == 0 and row["width"] % scale == 0   # modcrop


def test_per_image_values_set5_x3(fetched):
    res = evaluate(bicubic_upscaler, datasets.list_images("Set5"), 3, "bicubic", dataset="Set5")
    got = {r["name"]: round(r["psnr"], 2) for r in res["images"]}
    assert got == {"baby_GT": 33.91, "bird_GT": 32.57, "butterfly_GT": 24.04, "head_GT": 32.88, "woman_GT": 28.56}
    assert [(r["height"], r["width"]) for r in res["images"]][0] == (510, 510)     # 512 modcropped to x3
    table = format_table([res, dict(res, method="other")])
    assert "butterfly_GT" in table and table.count("30.39") == 2 and "other" in table


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL] + list(args), capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_evaluate_tool_end_to_end(fetched, tmp_path):
    out = tmp_path / "r.json"
    r = run_tool("--method", "bicubic", "--dataset", "Set5", "--scale", "3", "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "woman_GT" in r.stdout and "mean" in r.stdout and "30.39" in r.stdout
    data = json.loads(out.read_text())
    assert set(data) == {"dataset", "scale", "method", "mean_psnr", "mean_ssim", "images"}
    assert data["dataset"] == "Set5" and data["scale"] == 3 and data["method"] == "bicubic"
    assert set(data["images"][0]) == {"name", "psnr", "ssim", "height", "width"}
    r = run_tool("--dataset", "Set5", "--scale", "3", "--json", str(out))
    assert r.returncode == 2 and "r.json: already exists" in r.stderr and "Traceback" not in r.stderr
    r = run_tool("--dataset", "Set5", "--scale", "3", "--json", str(out), "--force")
    assert r.returncode == 0


def test_evaluate_tool_on_a_folder(fetched, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in ("bird_GT.bmp", "head_GT.bmp"):
        shutil.copy(os.path.join(fetched, "Set5", name), folder / name)
    r = run_tool("--dataset", str(folder), "--scale", "2")
    assert r.returncode == 0, r.stderr
    assert "mine x2" in r.stdout and "bird_GT" in r.stdout and "baby_GT" not in r.stdout


@pytest.mark.parametrize("args,message", [
    (["--dataset", "/no/such/folder", "--scale", "3"], "/no/such/folder"),
    (["--dataset", "Set5", "--scale", "3", "--model", "x.caffemodel"], "x.caffemodel: not found"),
])
def test_evaluate_tool_errors_are_one_line(fetched, args, message):
    r = run_tool(*args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
