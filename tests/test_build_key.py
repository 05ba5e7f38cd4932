"""The cache key of a Caffe build (srcaffe/build.py, which tools/setup.sh, the benchmarks and
tools/gpu_check.sh ask): the documented recipe, recomputed here by the shell as setup.sh did
before the key moved into Python, so a build key that drifts (a build cached under one key, looked
up under another) fails here, not as a silent rebuild."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from srcaffe import ROOT, build

CUDA_ID = "release 13.0, V13.0.88, archs 90;90, pypi 0123456789ab"


def module(*args, **env):
    r = subprocess.run([sys.executable, "-m", "srcaffe.build"] + list(args), capture_output=True, text=True,
                       cwd=ROOT, env=dict(os.environ, **env))
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def shell_key(repo, line):
    """The recipe as tools/setup.sh hashed it: the files in the shell's glob order, then the line."""
    script = ('cat "$1/tools/build_caffe.sh" "$1"/tools/caffe-patches/*.patch "$1"/tools/caffe-patches/fallback/*.patch '
              '<(echo "$2") | sha256sum | cut -c1-12')
    r = subprocess.run(["bash", "-c", script, "key", repo, line], capture_output=True, text=True, check=True)
    return r.stdout.strip()


@pytest.mark.parametrize("blas,variant,cuda_id,src", [("open", "cpu", "", None), ("mkl", "cpu", "", None),
                                                      ("open", "cuda", CUDA_ID, None),
                                                      ("open", "cpu", "", "/some/caffe-1.0.tar.gz")])
def test_the_key_is_the_documented_recipe(blas, variant, cuda_id, src):
    line = "%s py%d.%d numpy%s %s %s src%s" % (blas, sys.version_info[0], sys.version_info[1], np.__version__,
                                               variant, cuda_id, src or "debian")
    want = shell_key(ROOT, line)
    env = {"CAFFE_SRC": src or "", "SRCAFFE_CACHE": "/cache"}
    assert module("key", "--blas", blas, "--variant", variant, "--cuda-id", cuda_id, **env) == want
    name = "caffe-1.0.0-%s-%s%s" % (blas, "cuda-" if variant == "cuda" else "", want)
    assert module("prefix", "--blas", blas, "--variant", variant, "--cuda-id", cuda_id, **env) == "/cache/" + name


def test_every_recipe_file_is_in_the_key(tmp_path):
    """A copy of the recipe keys the same; one byte more in any of its files, another key."""
    for rel in ("tools/build_caffe.sh", "tools/caffe-patches"):
        src, dst = os.path.join(ROOT, rel), tmp_path / rel
        os.makedirs(dst.parent, exist_ok=True)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, dst)
    same = build.key(repo=str(tmp_path), source="debian")
    assert same == build.key(source="debian")
    files = build.recipe_files(str(tmp_path))
    assert len(files) >= 3 and any("/fallback/" in f for f in files)
    for f in files:
        original = open(f, "rb").read()
        with open(f, "ab") as fh:
            fh.write(b"\n")
        assert build.key(repo=str(tmp_path), source="debian") != same, f
        open(f, "wb").write(original)


def fake_nvcc(root):
    os.makedirs(os.path.join(root, "bin"))
    nvcc = os.path.join(root, "bin", "nvcc")
    with open(nvcc, "w") as f:
        f.write("#!/bin/sh\necho 'nvcc: NVIDIA (R) Cuda compiler driver'\n"
                "echo 'Cuda compilation tools, release 13.0, V13.0.88'\necho 'Build cuda_13.0.r13.0/compiler.0'\n")
    os.chmod(nvcc, 0o755)


def test_the_toolkits_pypi_toolchain_is_named_by_its_pins(tmp_path):
    pypi, own = str(tmp_path / "cache" / "cuda-13.0" / "root"), str(tmp_path / "cuda")
    fake_nvcc(pypi)
    fake_nvcc(own)
    pins = subprocess.run(["sha256sum", os.path.join(ROOT, "tools", "cuda-toolchain.txt")], capture_output=True,
                          text=True, check=True).stdout[:12]
    env = {"SRCAFFE_CACHE": str(tmp_path / "cache")}
    assert module("cuda-id", "--cuda-root", pypi, "--archs", "90;90", **env) == \
        "release 13.0, V13.0.88, archs 90;90, pypi %s" % pins
    assert module("cuda-id", "--cuda-root", own, "--archs", "75 80 90;90", **env) == \
        "release 13.0, V13.0.88, archs 75 80 90;90, %s" % own


def test_the_venvs_build_is_recorded_under_the_current_key():
    """tools/setup.sh recorded this venv's CPU build by the key the module computes now."""
    info = build.record("cpu")
    if not info.get("prefix") or "-open-" not in os.path.basename(info["prefix"]):
        pytest.skip("this venv links no OpenBLAS build of tools/setup.sh")
    assert info["key"] == build.key("open")
    assert info["prefix"] == build.prefix(info["key"], "open")
    lines = build.status_lines(os.path.join(info["prefix"], "bin", "caffe"))
    assert lines[0].startswith("BLAS:      libopenblas") and lines[1] == "build:     CPU only"
