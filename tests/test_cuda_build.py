"""The CUDA build of Caffe (tools/setup.sh --cuda): built on a machine without a GPU, it links
libcudart, trains in CPU mode exactly like the CPU build, refuses --gpu in one line when no GPU
is visible, and tools/gpu_check.sh packs it and runs its CPU part.

tools/test.sh builds both variants (cached); SRCAFFE_SKIP_CUDA=1 skips this module (and the CUDA
build) on a CPU-only machine. Without it a missing CUDA build is a failure, not a skip.
"""
import os
import re
import subprocess
import sys
import tarfile

import pytest

from srcaffe import ROOT, device
from srcaffe.errors import UserError

from helpers import caffe_train_losses

# SRCAFFE_SKIP_CUDA=1 skips them (tests/conftest.py); one xdist worker runs them all (the module's
# fixtures once)
pytestmark = [pytest.mark.cuda, pytest.mark.xdist_group("cuda-build")]
GPU_CHECK = os.path.join(ROOT, "tools", "gpu_check.sh")
MiB = 1 << 20


def build(variant):
    prefix = device.build_prefix(variant)
    assert prefix, "no %s build recorded in %s: run tools/setup.sh --%s --build-only (tools/test.sh does)" % (
        variant, sys.prefix, variant)
    return prefix


@pytest.fixture(scope="module")
def cuda():
    return build("cuda")


@pytest.fixture(scope="module")
def cpu():
    return build("cpu")


@pytest.fixture(scope="module")
def no_gpu(cuda):
    count, _ = device.gpu_count(device.libcudart_of(os.path.join(cuda, "bin", "caffe")))
    if count:
        pytest.skip("a GPU is visible here: the no-GPU messages cannot be checked")


def one_line_error(out):
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-2000:]
    assert "Check failed" not in out.stderr and "Traceback" not in out.stderr
    return lines[0]


def test_cuda_build_links_cudart_and_the_cpu_build_does_not(cuda, cpu):
    assert device.is_cuda_build(os.path.join(cuda, "bin", "caffe"))
    assert device.is_cuda_build(os.path.join(cuda, "lib", "libcaffe.so"))
    assert not device.is_cuda_build(os.path.join(cpu, "bin", "caffe"))
    ldd = subprocess.run(["ldd", os.path.join(cuda, "lib", "libcaffe.so")], capture_output=True, text=True).stdout
    for lib in ("libcudart", "libcublas", "libcudnn", "libnccl"):   # cuDNN 9 (Caffe's CUDNN engine), NCCL
        assert re.search(r"%s\.so\.\d+ => /" % lib, ldd), lib
    cpu_ldd = subprocess.run(["ldd", os.path.join(cpu, "lib", "libcaffe.so")], capture_output=True, text=True).stdout
    assert "libcudart" not in cpu_ldd and "libcudnn" not in cpu_ldd and "libnccl" not in cpu_ldd


@pytest.mark.slow
def test_cuda_build_in_cpu_mode_trains_fsrcnn_with_the_cpu_builds_losses(cuda, cpu, fsrcnn_run):
    on_cpu = caffe_train_losses([os.path.join(cpu, "bin", "caffe")], fsrcnn_run)
    on_cuda = caffe_train_losses([os.path.join(cuda, "bin", "caffe")], fsrcnn_run)
    assert [i for i, _ in on_cpu] == list(range(21))   # 0..19, and the final one at 20
    assert on_cuda == on_cpu
    assert on_cpu[-1][1] < on_cpu[0][1]   # it learns


def test_check_gpu_answers_in_one_line_without_a_gpu(cuda, cpu, no_gpu):
    with pytest.raises(UserError, match=r"^--gpu 0: no GPU visible: no NVIDIA driver"):
        device.check_gpu("0", os.path.join(cuda, "bin", "caffe"))
    with pytest.raises(UserError, match=r"^--gpu 0: this Caffe .* is a CPU-only build; tools/setup.sh --cuda"):
        device.check_gpu("0", os.path.join(cpu, "bin", "caffe"))
    with pytest.raises(UserError, match=r"give a GPU id"):
        device.check_gpu("first", os.path.join(cuda, "bin", "caffe"))
    with pytest.raises(UserError, match=r"^--gpu all: no GPU visible: no NVIDIA driver"):
        device.check_gpu("all", os.path.join(cuda, "bin", "caffe"))
    with pytest.raises(UserError, match=r"^--gpu 0,1: this Caffe .* is a CPU-only build"):
        device.check_gpu("0,1", os.path.join(cpu, "bin", "caffe"))


def test_engine_cudnn_is_refused_in_one_line_without_a_gpu_or_without_cudnn(cuda, cpu):
    with pytest.raises(UserError, match=r"^--engine cudnn runs on a GPU: give --gpu ID as well"):
        device.check_engine("cudnn", None, os.path.join(cuda, "bin", "caffe"))
    with pytest.raises(UserError, match=r"^--engine cudnn: this Caffe .* is built without cuDNN; tools/setup.sh --cuda"):
        device.check_engine("cudnn", "0", os.path.join(cpu, "bin", "caffe"))
    device.check_engine("cudnn", "0", os.path.join(cuda, "bin", "caffe"))   # this one has it (the GPU: check_gpu)
    device.check_engine("caffe", None, os.path.join(cpu, "bin", "caffe"))


def pycaffe_env(prefix):
    # The build's pycaffe ahead of the one the venv links (PYTHONPATH comes before .pth files).
    return dict(os.environ, PYTHONPATH=os.path.join(prefix, "lib", "python3", "dist-packages"))


@pytest.mark.parametrize("variant,message", [
    ("cuda", r"^error: --gpu 0: no GPU visible: no NVIDIA driver on this machine \(libcuda\.so\.1 not found\)$"),
    ("cpu", r"^error: --gpu 0: this pycaffe \(\S+\) is a CPU-only build; tools/setup.sh --cuda builds and links one$"),
])
def test_predict_and_evaluate_gpu_0_without_a_gpu_is_one_line(variant, message, fetched, no_gpu, tmp_path):
    env = pycaffe_env(build(variant))
    check = subprocess.run([sys.executable, "-c", "import caffe; print(caffe.__file__)"],
                           capture_output=True, text=True, env=env)
    assert check.stdout.startswith(build(variant))   # the variant under test is the one imported
    for tool, args in (("predict.py", ["butterfly_GT.bmp", "--out", str(tmp_path)]),
                       ("evaluate.py", ["--model", "fsrcnn", "--dataset", "Set5", "--scale", "3"])):
        def run(*extra):
            return subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool)] + args + list(extra),
                                  capture_output=True, text=True, env=env)
        for engine in ([], ["--engine", "cudnn"], ["--engine", "caffe"]):   # the GPU is checked first
            out = run("--gpu", "0", *engine)
            assert re.match(message, one_line_error(out)), out.stderr
        out = run("--engine", "cudnn")
        assert one_line_error(out).startswith("error: --engine cudnn runs on a GPU: give --gpu ID as well"), out.stderr
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_gpu_check_packs_a_bundle_and_runs_its_cpu_part(cuda, fetched, no_gpu, tmp_path):
    bundle, out = tmp_path / "bundle", tmp_path / "out"
    packed = subprocess.run(["bash", GPU_CHECK, "pack", str(bundle)], capture_output=True, text=True)
    assert packed.returncode == 0, packed.stderr
    assert re.search(r"bundle .*: [\d.]+ MiB", packed.stdout)
    files = [os.path.join(d, f) for d, _, fs in os.walk(bundle) for f in fs]
    size = sum(os.path.getsize(f) for f in files)
    assert size < 48 * MiB, "%.1f MiB" % (size / MiB)   # the repository (~10 MiB) travels with it: 64 MiB
    assert sorted(os.path.basename(f) for f in files) == ["BUNDLE.txt", "bundle.tar.gz"]
    with tarfile.open(bundle / "bundle.tar.gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
    names = [os.path.basename(m.name) for m in members]
    assert "caffe" in names and any(n.startswith("libcudart.so") for n in names)
    assert any(n.startswith("libcaffe.so") for n in names) and any(n.startswith("libhdf5") for n in names)
    assert not [n for n in names if re.match(r"lib(cublas|cublasLt|curand|cudnn|nccl|cuda)\.so", n)]
    assert {"net.prototxt", "net-caffe.prototxt", "net-cudnn.prototxt", "solver.prototxt",
            "deploy-fsrcnn-caffe.prototxt", "deploy-fsrcnn-s-cudnn.prototxt"} <= set(names)
    assert not [n for n in names if re.match(r"lib(c|m|stdc\+\+)\.so", n)]
    assert sum(n.endswith(".bmp") for n in names) == 91 + 5
    needed = re.search(r"^nvidia=(.*)$", (bundle / "BUNDLE.txt").read_text(), re.M).group(1).split()
    for lib in ("libcublas", "libcudnn", "libnccl"):   # found on the GPU machine, not carried
        assert [n for n in needed if n.startswith(lib + ".so.")], needed

    again = subprocess.run(["bash", GPU_CHECK, "pack", str(tmp_path)], capture_output=True, text=True)
    assert "refusing to overwrite" in one_line_error(again)   # a folder that is not a bundle

    # The GPU machine's Python has no pycaffe: here a caffe module that refuses to import stands
    # in for that, so a run that needed pycaffe would fail.
    shim = tmp_path / "no-pycaffe"
    shim.mkdir()
    (shim / "caffe.py").write_text("raise ImportError('gpu_check run must not import caffe')\n")
    env = dict(os.environ, GPU_CHECK_AUG="0", GPU_CHECK_ITERS="20", GPU_CHECK_TIME_ITERS="2",
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHON=sys.executable, PYTHONPATH=str(shim))
    ran = subprocess.run(["bash", GPU_CHECK, "run", str(bundle), str(out)], capture_output=True, text=True,
                         env=env, cwd="/")
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "no GPU" in ran.stdout and "running in CPU mode" in ran.stdout
    assert re.search(r"libcublas\.so\.\d+: /", ran.stdout)   # found on this machine, not carried
    written = sorted(os.listdir(out))
    assert len(written) <= 8 and all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in written)
    assert all(os.path.getsize(out / n) <= 16 * MiB for n in written)
    assert "fsrcnn_x3_iter_20.caffemodel" in written
    summary = (out / "summary.txt").read_text()
    assert "mode:              CPU" in summary and "training:          20 iterations" in summary
    assert re.search(r"caffe time:\s+caffe [\d.]+, stock [\d.]+ ms", summary)   # the engines in CPU mode
    assert re.search(r"1080p forward:\s+fsrcnn-s caffe [\d.]+ ms, stock [\d.]+ ms; fsrcnn caffe [\d.]+ ms, stock", summary)
    assert re.search(r"pytorch:\s+\S", summary)   # its times, or why there are none

    # Back here: the weights it trained are scored by the normal evaluation.
    ev = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "evaluate.py"), "--model",
                         str(out / "fsrcnn_x3_iter_20.caffemodel"), "--dataset", "Set5", "--scale", "3"],
                        capture_output=True, text=True)
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert "fsrcnn_x3_iter_20" in ev.stdout

    rerun = subprocess.run(["bash", GPU_CHECK, "run", str(bundle), str(out)], capture_output=True, text=True, env=env)
    assert "not empty" in one_line_error(rerun)


def test_setup_cuda_build_only_is_cached_and_leaves_the_venv_link(cuda):
    linked = os.path.realpath(os.path.join(sys.prefix, "bin", "caffe"))
    out = subprocess.run(["bash", os.path.join(ROOT, "tools", "setup.sh"), "--cuda", "--build-only"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ready (not linked into the venv): %s/bin/caffe" % cuda in out.stdout
    assert "building" not in out.stdout and "installing" not in out.stderr
    assert os.path.realpath(os.path.join(sys.prefix, "bin", "caffe")) == linked
    status = subprocess.run(["bash", os.path.join(ROOT, "tools", "setup.sh"), "--status"], capture_output=True, text=True)
    assert re.search(r"^build:\s+(CPU only|CUDA \(.*libcudart)", status.stdout, re.M), status.stdout
    assert "cuda build: %s" % cuda in status.stdout
