"""Bad or unlucky input, each the way a user meets it: one line naming the file and the problem,
a non-zero exit, no traceback, no Caffe abort, nothing overwritten or left half-written."""
import errno
import os
import shutil
import subprocess
import sys
import threading

import h5py
import numpy as np
import pytest

from srcaffe import files, hdf5_patches, paths, upscaling

from srcaffe.models import load_model
from srcaffe.errors import UserError

from helpers import TOOLS, assert_error_line, assert_one_line_error, make_caffemodel, run_train, tool







def copy_of(folder, dest):
    shutil.copytree(folder, dest)
    return str(dest)


# ---- data preparation -----------------------------------------------------------------------------

@pytest.mark.slow
def test_preparation_shows_progress_and_refuses_impossible_parameters(train_env, data_x3, tmp_path):
    fresh = dict(train_env, SRCAFFE_DATA=str(tmp_path / "data"))
    out = tool("prepare_data.py", "fsrcnn-s", "--scale", 2, "--no-aug", env=fresh)
    assert out.returncode == 0 and "img/s" in out.stderr and "ETA" in out.stderr, out.stderr
    for stride in (-3, 0):
        assert_one_line_error(tool("prepare_data.py", "fsrcnn", "--stride", stride, env=fresh), "--stride", "at least 1")


@pytest.mark.slow
def test_two_preparations_at_once_give_one_whole_folder(train_env, tmp_path):
    env = dict(train_env, SRCAFFE_DATA=str(tmp_path / "data"))
    procs = [subprocess.Popen([sys.executable, os.path.join(TOOLS, "prepare_data.py"), "srcnn", "--scale", "4"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert any("waiting for it" in out + err or "reusing" in out + err for out, err in outs), outs
    (folder,) = [d for d in os.listdir(tmp_path / "data") if not d.endswith(".lock")]
    meta = hdf5_patches.read_meta(str(tmp_path / "data" / folder))
    hdf5_patches.checked_files(str(tmp_path / "data" / folder))   # every file checks out
    assert meta["train_patches"] > 0


@pytest.mark.slow
def test_an_interrupted_preparation_is_cleaned_up_by_the_next(train_env, tmp_path):
    env = dict(train_env, SRCAFFE_DATA=str(tmp_path / "data"))
    folder = os.path.basename(hdf5_patches.data_dir("srcnn", 4, False))
    stale = str(tmp_path / "data" / folder) + ".part-99999"
    os.makedirs(stale)
    open(os.path.join(stale, "train_000.h5"), "wb").write(b"half")
    assert tool("prepare_data.py", "srcnn", "--scale", 4, env=env).returncode == 0
    assert not os.path.exists(stale)


@pytest.mark.slow
def test_truncated_or_foreign_hdf5_is_named_before_caffe_starts(train_env, data_x3, tmp_path):
    bad = copy_of(data_x3, tmp_path / "truncated")
    with open(os.path.join(bad, "train_000.h5"), "r+b") as f:
        f.truncate(4096)
    out = run_train(train_env, "fsrcnn", "--data", bad, "--iters", 2, "--run-dir", tmp_path / "r1")
    assert_error_line(out, os.path.join(bad, "train_000.h5"), "not a readable HDF5 file")
    foreign = copy_of(data_x3, tmp_path / "foreign")
    with h5py.File(os.path.join(foreign, "test.h5"), "w") as f:
        f.create_dataset("data", data=np.zeros((4, 1, 11, 11), np.float32))
    out = run_train(train_env, "fsrcnn", "--data", foreign, "--iters", 2, "--run-dir", tmp_path / "r2")
    assert_error_line(out, os.path.join(foreign, "test.h5"), "no 'label' dataset")


@pytest.mark.slow
def test_a_moved_or_copied_data_folder_trains_on_its_own_files(train_env, data_x3, tmp_path):
    copied = copy_of(data_x3, tmp_path / "copied")
    run_dir = tmp_path / "run"
    out = run_train(train_env, "fsrcnn-s", "--data", copied, "--iters", 2, "--run-dir", run_dir)
    assert out.returncode == 0, out.stderr
    listed = open(run_dir / "data-train.txt").read().split()
    assert listed and all(p.startswith(copied + os.sep) for p in listed)
    moved = str(tmp_path / "moved")
    os.rename(copied, moved)
    out = run_train(train_env, "fsrcnn-s", "--data", moved, "--iters", 2, "--run-dir", tmp_path / "run2")
    assert out.returncode == 0, out.stderr


# ---- training inputs ------------------------------------------------------------------------------

@pytest.mark.slow
def test_deconv_only_needs_the_x3_weights(train_env, tmp_path):
    out = run_train(train_env, "fsrcnn-s", "--scale", 2, "--deconv-only", "--iters", 5)
    assert_error_line(out, "--deconv-only", "--weights")


@pytest.mark.slow
def test_a_run_dir_that_is_a_file_is_refused(train_env, tmp_path):
    path = tmp_path / "a-file"
    path.write_text("mine")
    assert_error_line(run_train(train_env, "fsrcnn-s", "--run-dir", path, "--iters", 2), str(path), "not a folder")
    assert path.read_text() == "mine"


# ---- outputs --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_outputs_under_a_file_or_unwritable_are_one_line(fetched, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    model = make_caffemodel(tmp_path / "fsrcnn_x3.caffemodel")
    assert_one_line_error(tool("evaluate.py", "--method", "bicubic", "--dataset", "Set5", "--scale", 3,
                               "--json", blocker / "r.json"), str(blocker))
    assert_one_line_error(tool("export.py", "to-npz", model, blocker / "sub" / "w.npz"), str(blocker))
    assert_one_line_error(tool("predict.py", "butterfly", "--model", model, "--out", blocker / "out"), str(blocker))
    assert blocker.read_text() == "x"


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    real_replace = os.replace

    def full(src, dst):   # the rename never happens: as if the write had failed on a full disk
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(UserError, match="no space left on the device"):
        files.write_text(str(tmp_path / "out.json"), "{}")
    monkeypatch.setattr(os, "replace", real_replace)
    assert os.listdir(tmp_path) == []


def test_concurrent_writers_of_one_file_leave_one_whole_file(tmp_path):
    target = str(tmp_path / "out.bin")
    payloads = [bytes([i]) * (1 << 20) for i in range(4)]
    threads = [threading.Thread(target=files.write_bytes, args=(target, p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert open(target, "rb").read() in payloads and os.listdir(tmp_path) == ["out.bin"]


# ---- weights and scale ----------------------------------------------------------------------------

def test_weights_of_another_scale_are_refused(fetched, tmp_path):
    shipped = paths.shipped_weights("fsrcnn", 3)
    out = tool("predict.py", "butterfly", "--model", shipped, "--scale", 2, "--out", tmp_path)
    assert_one_line_error(out, shipped, "x3 weights", "--scale 3")
    out = tool("evaluate.py", "--model", "official-fsrcnn", shipped, "--dataset", "Set5", "--scale", 2)
    assert_one_line_error(out, "x3")
    assert os.listdir(tmp_path) == []


# ---- memory ----------------------------------------------------------------------------------------

def test_banded_upscaling_equals_the_whole_image_and_huge_images_are_refused(fetched):
    model = load_model("fsrcnn-s", 3)
    img = (np.random.default_rng(0).random((90, 70, 3)) * 255).astype(np.uint8)
    whole = model._upscale_whole(img).astype(int)
    banded = upscaling.in_bands(model._upscale_whole, img, 3, rows=8).astype(int)
    # equal but for float32 rounding: OpenBLAS sums in another order for another band size, and
    # a value at .5 can round to the other uint8 (a handful of pixels, by 1)
    assert banded.shape == whole.shape and np.abs(banded - whole).max() <= 1
    assert np.count_nonzero(banded != whole) <= whole.size * 1e-4
    with pytest.raises(UserError, match="GB of output"):
        upscaling.check_output_size((40000, 30000, 3), 3, "big.png")


# ---- entry points ---------------------------------------------------------------------------------

def test_tools_run_with_a_python_that_is_not_the_venv(tmp_path):
    """`python tools/predict.py ...` without activating .venv: the tool re-runs itself with the
    venv's interpreter (-S: no site-packages at all, so nothing but the re-run can import NumPy)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "SRCAFFE_IN_VENV")}
    env["VENV"] = sys.prefix
    out = subprocess.run(["/usr/bin/python3", "-S", os.path.join(TOOLS, "evaluate.py"), "--method", "bicubic",
                          "--dataset", "nowhere", "--scale", "3"], capture_output=True, text=True, env=env)
    assert_one_line_error(out, "nowhere")    # a one-line error from the tool itself: it ran, with NumPy
