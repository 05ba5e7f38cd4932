"""Dataset registry, fetch/verify, image I/O and the tools/datasets.py command line (all offline)."""
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from srcaffe import ROOT, datasets
from srcaffe.errors import UserError
from srcaffe.images import load_image, save_image

TOOL = os.path.join(ROOT, "tools", "datasets.py")


def run_tool(*args, env_root=None):
    env = dict(os.environ)
    if env_root:
        env["SRCAFFE_DATASETS"] = str(env_root)
    return subprocess.run([sys.executable, TOOL] + list(args), capture_output=True, text=True, env=env, timeout=120)


def corrupt(path):
    os.chmod(path, 0o644)   # a copy of a read-only source keeps its mode (only root ignores it)
    with open(path, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")


# --- registry -----------------------------------------------------------------------------------

def test_registry_matches_sha256sums():
    assert {k: len(v["files"]) for k, v in datasets.DATASETS.items()} == {"T91": 91, "Set5": 5, "Set14": 14}
    assert "baby_GT.bmp" in datasets.DATASETS["Set5"]["files"]
    assert "t41.bmp" not in datasets.DATASETS["T91"]["files"]     # the 91 images skip t41 and tt11
    for info in datasets.DATASETS.values():
        assert info["sources"] and all(s[1].startswith(("https://", "http://")) for s in info["sources"])


def test_dataset_dir_env_and_names(tmp_path, monkeypatch):
    monkeypatch.setenv("SRCAFFE_DATASETS", str(tmp_path))
    assert datasets.dataset_dir("set5") == os.path.join(str(tmp_path), "Set5")
    assert datasets.dataset_dir("Set5", root="/x") == os.path.join("/x", "Set5")
    with pytest.raises(UserError, match="unknown dataset"):
        datasets.dataset_dir("Set6")


# --- fetch / verify -----------------------------------------------------------------------------

def test_fetch_copy_verify_corrupt_and_refuse(tmp_path, shared_datasets):
    assert datasets.fetch("Set5", source_dir=shared_datasets, root=tmp_path) == 5
    assert datasets.verify("Set5", root=tmp_path) == []
    assert datasets.fetch("Set5", source_dir=shared_datasets, root=tmp_path) == 0   # already intact
    bird = tmp_path / "Set5" / "bird_GT.bmp"
    corrupt(bird)
    os.remove(tmp_path / "Set5" / "head_GT.bmp")
    problems = datasets.verify("Set5", root=tmp_path)
    assert len(problems) == 2
    assert any(str(bird) in p and "checksum mismatch" in p for p in problems)
    assert any("head_GT.bmp: missing" in p for p in problems)
    with pytest.raises(UserError, match="bird_GT.bmp.*refusing to overwrite"):
        datasets.fetch("Set5", source_dir=shared_datasets, root=tmp_path)
    assert not (tmp_path / "Set5" / "head_GT.bmp").exists()       # nothing done on refusal
    assert datasets.fetch("Set5", source_dir=shared_datasets, root=tmp_path, force=True) == 2
    assert datasets.verify("Set5", root=tmp_path) == []


def test_fetch_rejects_a_corrupt_or_incomplete_source(tmp_path, shared_datasets):
    src = tmp_path / "src" / "Set5"
    shutil.copytree(os.path.join(shared_datasets, "Set5"), src)
    os.chmod(src, 0o755)   # copytree keeps the read-only source folder's mode
    corrupt(src / "woman_GT.bmp")
    with pytest.raises(UserError, match="woman_GT.bmp: checksum mismatch"):
        datasets.fetch("Set5", source_dir=tmp_path / "src", root=tmp_path / "dst")
    assert not (tmp_path / "dst" / "Set5" / "woman_GT.bmp").exists()
    os.remove(src / "woman_GT.bmp")
    with pytest.raises(UserError, match="woman_GT.bmp: missing from the source folder"):
        datasets.fetch("Set5", source_dir=src, root=tmp_path / "dst")   # the set folder itself works too


def test_download_path_with_file_urls(tmp_path, shared_datasets, monkeypatch):
    # The download code path, offline: a dead mirror, then a folder of files, then a zip archive.
    set5 = pathlib.Path(shared_datasets, "Set5")
    archive = tmp_path / "SRCNN_train.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in ("head_GT.bmp", "woman_GT.bmp"):
            zf.write(set5 / f, "SRCNN_train/Test/Set5/" + f)
    partial = tmp_path / "mirror"
    partial.mkdir()
    for f in ("baby_GT.bmp", "bird_GT.bmp", "butterfly_GT.bmp"):
        shutil.copy(set5 / f, partial / f)
    monkeypatch.setitem(datasets.DATASETS["Set5"], "sources", [
        ("files", (tmp_path / "nowhere").as_uri() + "/"),
        ("files", partial.as_uri() + "/"),
        ("zip", archive.as_uri(), "Test/Set5/"),
    ])
    assert datasets.fetch("Set5", root=tmp_path / "dl") == 5
    assert datasets.verify("Set5", root=tmp_path / "dl") == []
    assert not [p for p in os.listdir(tmp_path / "dl" / "Set5") if p.startswith(".")]   # no leftovers
    # a mirror serving wrong bytes is rejected, naming the file
    bad = tmp_path / "bad"
    shutil.copytree(partial, bad)
    corrupt(bad / "bird_GT.bmp")
    monkeypatch.setitem(datasets.DATASETS["Set5"], "sources", [("files", bad.as_uri() + "/")])
    with pytest.raises(UserError, match="could not fetch 3 file.*bird_GT.bmp.*checksum mismatch"):
        datasets.fetch("Set5", root=tmp_path / "dl2")


def test_list_images(fetched, tmp_path):
    paths = datasets.list_images("Set5")
    assert [os.path.basename(p) for p in paths] == ["baby_GT.bmp", "bird_GT.bmp", "butterfly_GT.bmp",
                                                     "head_GT.bmp", "woman_GT.bmp"]
    assert len(datasets.list_images("set14")) == 14 and len(datasets.list_images("T91")) == 91
    for f in ("b.PNG", "a.bmp", "c.JpEg", "d.tif", "notes.txt"):
        (tmp_path / f).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [os.path.basename(p) for p in datasets.list_images(str(tmp_path))] == ["a.bmp", "b.PNG", "c.JpEg", "d.tif"]
    with pytest.raises(UserError, match="no images"):
        datasets.list_images(str(tmp_path / "sub.png"))
    with pytest.raises(UserError, match="neither a registered dataset"):
        datasets.list_images(str(tmp_path / "absent"))


def test_list_images_names_a_corrupt_file(tmp_path, shared_datasets):
    datasets.fetch("Set5", source_dir=shared_datasets, root=tmp_path)
    corrupt(tmp_path / "Set5" / "baby_GT.bmp")
    with pytest.raises(UserError, match="baby_GT.bmp: checksum mismatch.*fetch Set5"):
        datasets.list_images("Set5", root=tmp_path)


def test_resolve_image(fetched, tmp_path):
    expected = os.path.join(fetched, "Set5", "butterfly_GT.bmp")
    for query in ("butterfly_GT.bmp", "butterfly.bmp", "butterfly", "some/dir/butterfly_GT.bmp"):
        assert datasets.resolve_image(query) == expected
    assert datasets.resolve_image("zebra.bmp") == os.path.join(fetched, "Set14", "zebra.bmp")
    own = tmp_path / "butterfly.bmp"
    own.write_bytes(b"x")
    assert datasets.resolve_image(str(own)) == str(own)            # an existing path wins
    with pytest.raises(UserError, match="no such file"):
        datasets.resolve_image("unicorn.png")
    datasets.fetch("Set5", source_dir=os.path.join(fetched, "Set5"), root=tmp_path)
    corrupt(tmp_path / "Set5" / "bird_GT.bmp")
    with pytest.raises(UserError, match="bird_GT.bmp: checksum mismatch"):
        datasets.resolve_image("bird.bmp", root=tmp_path)


# --- images -------------------------------------------------------------------------------------

def test_load_image_kinds(tmp_path, fetched):
    rgb = load_image(os.path.join(fetched, "Set5", "woman_GT.bmp"))
    assert rgb.dtype == np.uint8 and rgb.shape == (344, 228, 3)
    gray = load_image(os.path.join(fetched, "Set14", "bridge.bmp"))
    assert gray.dtype == np.uint8 and gray.ndim == 2
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 7
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png").tolist() == np.dstack([rgba[..., :3]]).tolist()
    Image.fromarray(rgba[..., :3], "RGB").convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (3, 4, 3)
    Image.fromarray(np.full((2, 2), 65535, np.uint16)).save(tmp_path / "w.png")
    assert load_image(tmp_path / "w.png").tolist() == [[255, 255], [255, 255]]


def test_load_image_errors(tmp_path):
    with pytest.raises(UserError, match=r"missing.png: not a readable image \(no such file\)"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "fake.bmp").write_text("not an image")
    with pytest.raises(UserError, match="fake.bmp: not a readable image"):
        load_image(tmp_path / "fake.bmp")


def test_save_image_refuses_overwrite(tmp_path):
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    save_image(tmp_path / "x.png", img)
    assert load_image(tmp_path / "x.png").tolist() == img.tolist()
    with pytest.raises(UserError, match="x.png: already exists"):
        save_image(tmp_path / "x.png", img)
    save_image(tmp_path / "x.png", img[::-1], overwrite=True)
    assert load_image(tmp_path / "x.png").tolist() == img[::-1].tolist()


# --- tools/datasets.py --------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_fetch_list_verify(tmp_path, shared_datasets):
    r = run_tool("fetch", "Set5", "Set14", "--from", shared_datasets, env_root=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Set5: 5 file(s) verified" in r.stdout and "Set14: 14 file(s) verified" in r.stdout
    r = run_tool("list", env_root=tmp_path)
    assert r.returncode == 0
    lines = {l.split()[0]: l.split()[1:5] for l in r.stdout.splitlines()[1:]}
    assert lines["Set5"] == ["5", "5", "0", "0"] and lines["T91"] == ["91", "0", "91", "0"]
    assert run_tool("verify", "Set5", "Set14", env_root=tmp_path).returncode == 0
    corrupt(tmp_path / "Set14" / "comic.bmp")
    r = run_tool("verify", "Set14", env_root=tmp_path)
    assert r.returncode == 1 and "comic.bmp: checksum mismatch" in r.stdout
    r = run_tool("fetch", "Set14", "--from", shared_datasets, env_root=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and "comic.bmp" in r.stderr and "--force" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run_tool("fetch", "Set14", "--from", shared_datasets, "--force", env_root=tmp_path)
    assert r.returncode == 0 and run_tool("verify", "Set14", env_root=tmp_path).returncode == 0
    r = run_tool("fetch", "Set7", env_root=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: unknown dataset")


def test_resolve_image_fetches_a_dataset_not_fetched_yet(tmp_path, shared_datasets, monkeypatch):
    monkeypatch.setenv("SRCAFFE_DATASETS_FROM", shared_datasets)
    root = str(tmp_path / "empty")
    found = datasets.resolve_image("butterfly.bmp", root=root)
    assert found == os.path.join(root, "Set5", "butterfly_GT.bmp") and os.path.isfile(found)
    assert datasets.verify("Set5", root) == []
    monkeypatch.setenv("SRCAFFE_DATASETS_FROM", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match=r"^baboon.bmp is in Set14, which is not here: .*nowhere: no such folder$"):
        datasets.resolve_image("baboon.bmp", root=root)
