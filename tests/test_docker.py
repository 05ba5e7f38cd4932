"""The Docker images: docker/build.sh builds them from this tree with the local engine (starting
dockerd where none answers). In the CPU image, README's Docker commands run as root and as a
non-root user: the smoke checks, a short training, predict, and the bicubic and predict tests.
The GPU image is built for sm_90 only (every .cu file compiles and links; the default arch family
is ~6x the compile) and checked without a GPU: a CUDA build, --gpu refused in one line, and in
CPU mode the CPU image's losses.

Each recipe compiles once per machine: docker/build.sh puts the venv's build of the same recipe
(its records .srcaffe-cpu / .srcaffe-cuda) into the image, and these tests check that the image's
Caffe is that build (the same recipe key and cache folder name, its .complete, the same machine
code) with run paths that work where it now lies. A from-scratch image build (`docker build -f
docker/Dockerfile .`, docker/build.sh --no-prebuilt) is not what runs here: docs/testing.md.

Building costs ~2-4 min (CPU) on two busy cores the first time (pip installs the requirements;
nothing compiles), seconds from Docker's layer cache after. SRCAFFE_SKIP_DOCKER=1 skips this
module (a machine with no Docker), SRCAFFE_SKIP_CUDA=1 the GPU image's tests; CI runs them.
SRCAFFE_TEST_IMAGES names the images (default srcaffe: srcaffe:cpu and srcaffe:gpu-sm90), so
that two checkouts on one engine keep apart.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

from srcaffe import ROOT
from srcaffe.paths import cache_dir

from helpers import CAFFE_TRAIN_ENV, caffe_train_losses, require

# SRCAFFE_SKIP_DOCKER=1 skips them (tests/conftest.py); one xdist worker runs them all (one build
# of each image, the engine's lock taken by one test at a time)
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.xdist_group("docker")]

NAME = os.environ.get("SRCAFFE_TEST_IMAGES") or "srcaffe"
IMAGE = NAME + ":cpu"
GPU_IMAGE = NAME + ":gpu-sm90"   # not srcaffe:gpu, which a user builds for every arch
USER = "1000:1000"   # no such user in the image: any uid must work
BUILD = os.path.join(ROOT, "docker", "build.sh")


def docker(*args, timeout=900):
    return subprocess.run(["docker"] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def run_args(image, user=None, volumes=(), env=(), workdir=None):
    """`docker run --rm ... IMAGE`; volumes: (host, container[, 'ro']) triples; env: NAME=VALUE."""
    args = ["docker", "run", "--rm"] + (["-u", user] if user else []) + (["-w", workdir] if workdir else [])
    for v in volumes:
        args += ["-v", ":".join(v)]
    for e in env:
        args += ["-e", e]
    return args + [image]


def in_image(*cmd, image=IMAGE, timeout=900, **kw):
    return subprocess.run(run_args(image, **kw) + list(cmd), capture_output=True, text=True, timeout=timeout)


def open_to_all(path):
    """A host folder the container's non-root user may write (pytest's are the host user's, 0700)."""
    os.chmod(path, 0o1777)
    return str(path)


def readable_by_all(path):
    """The session's datasets, readable by the container's non-root user."""
    for d, _, names in os.walk(path):
        os.chmod(d, 0o755)
        for n in names:
            os.chmod(os.path.join(d, n), 0o644)
    return path


def build_image(*args):
    require(shutil.which("docker"), "no docker command (Debian's docker.io; see README, Docker)")
    r = subprocess.run(["bash", BUILD, "--engine-only"], capture_output=True, text=True, timeout=600)
    require(r.returncode == 0, "no Docker engine could be started: %s" % r.stderr.strip())
    # A dockerd that build.sh started must not keep build.sh's lock (the build would wait forever).
    free = subprocess.run(["flock", "-n", os.path.join(cache_dir(), ".lock-docker"), "true"])
    assert free.returncode == 0, "docker/build.sh's lock is still held after --engine-only"
    # VENV: the build docker/build.sh finds by itself is this venv's, the one the suite tests.
    r = subprocess.run(["bash", BUILD] + list(args), capture_output=True, text=True, timeout=5400,
                       env=dict(os.environ, VENV=sys.prefix))
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout)
    return r.stdout


def host_build(variant):
    """(recipe key, cache folder) of the venv's build of a variant (tools/setup.sh records it)."""
    record = os.path.join(sys.prefix, ".srcaffe-" + variant)
    assert os.path.isfile(record), "no %s build recorded in %s (tools/test.sh makes it)" % (variant, record)
    fields = dict(line.split("=", 1) for line in open(record).read().splitlines() if "=" in line)
    assert os.path.isfile(os.path.join(fields["prefix"], ".complete")), fields
    return fields["key"], os.path.realpath(fields["prefix"])


@pytest.fixture(scope="module")
def image():
    out = build_image("--tag", IMAGE)
    assert "prebuilt: %s " % host_build("cpu")[1] in out, out   # found by itself, sent along
    return IMAGE


@pytest.fixture(scope="module")
def gpu_image():
    out = build_image("--gpu", "--cuda-archs", "90;90", "--tag", GPU_IMAGE)
    assert "prebuilt: %s " % host_build("cuda")[1] in out, out
    return GPU_IMAGE


def assert_image_has_the_host_build(image, variant, tmp_path):
    """The image's Caffe is the host's build of the same recipe, not a second compile: the same
    key and folder name, its .complete, byte for byte the same machine code (.text) in libcaffe
    and the caffe tool, and run paths relative to where it lies (no host path left in them)."""
    key, prefix = host_build(variant)
    name = os.path.basename(prefix)
    r = in_image("bash", "-c", "cat $VENV/.srcaffe-caffe; ls -a /opt/srcaffe/cache/%s; ls /opt/srcaffe" % name, image=image)
    assert r.returncode == 0, r.stdout + r.stderr
    print("recipe key on this machine: %s, in %s: %s" % (key, image, r.stdout.split()[0]))
    assert "key=%s\n" % key in r.stdout and "prefix=/opt/srcaffe/cache/%s\n" % name in r.stdout, r.stdout
    assert ".complete" in r.stdout.split() and "prebuilt" not in r.stdout.split(), r.stdout
    for rel in ("bin/caffe", "lib/libcaffe.so.1.0.0", "lib/python3/dist-packages/caffe/_caffe.so"):
        copy = tmp_path / os.path.basename(rel)
        with open(copy, "wb") as f:
            assert subprocess.run(run_args(image) + ["cat", "/opt/srcaffe/cache/%s/%s" % (name, rel)], stdout=f).returncode == 0
        texts = []
        for elf in (str(copy), os.path.join(prefix, rel)):
            subprocess.run(["objcopy", "-O", "binary", "--only-section=.text", elf, str(tmp_path / "text")], check=True)
            texts.append((tmp_path / "text").read_bytes())
        assert len(texts[0]) > 10000 and texts[0] == texts[1], "%s: not the host's build" % rel
        dyn = subprocess.run(["readelf", "-d", str(copy)], capture_output=True, text=True, check=True).stdout
        runpath = re.search(r"\(RUNPATH\)\s+Library runpath: \[(.*)\]", dyn).group(1)
        assert "$ORIGIN" in runpath and os.path.dirname(prefix) not in runpath, (rel, runpath)


@pytest.mark.parametrize("user", [None, USER])
def test_smoke_caffe_and_pycaffe_as_root_and_non_root(image, user):
    r = in_image("bash", "-c", "id -u; caffe --version; python -c 'import caffe, srcaffe; print(caffe.__file__)'; "
                 "tools/setup.sh --status; ./run_train.sh --help | head -n 1", user=user)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout.splitlines()
    assert out[0] == ("1000" if user else "0")
    assert "caffe version 1.0.0" in r.stdout and "/opt/srcaffe/cache/caffe-1.0.0-open-" in r.stdout
    assert "build:     CPU only" in r.stdout and "usage: ./run_train.sh" in r.stdout


def test_cpu_image_has_the_hosts_build_of_the_same_recipe(image, tmp_path):
    assert_image_has_the_host_build(image, "cpu", tmp_path)


def test_image_is_a_fresh_clone_without_build_tools(image):
    """Only tracked files go in (the build folder's datasets/ images never do), and the runtime
    stage has no compiler: the image is the multi-stage one."""
    r = in_image("ls", "datasets")
    assert r.returncode == 0 and r.stdout.split() == ["README.md", "SHA256SUMS"], r.stdout + r.stderr
    r = in_image("ls")   # the prebuilt Caffe came in the context, but only into the cache
    assert r.returncode == 0 and "prebuilt" not in r.stdout.split() and "tools" in r.stdout.split(), r.stdout
    r = in_image("bash", "-c", "command -v gcc g++ cc cmake make")
    assert r.returncode == 1 and r.stdout == "", r.stdout   # none of them found
    size = int(docker("image", "inspect", "-f", "{{.Size}}", image).stdout)
    print("image size: %.0f MB" % (size / 1e6))


@pytest.mark.parametrize("user", [None, USER])
def test_readme_train_and_predict_as_root_and_non_root(image, fetched, tmp_path, user):
    """README's commands with their volumes, as root and as uid 1000: 20 FSRCNN-s iterations prepare the
    HDF5 data into the data volume and snapshot into the runs volume; predict writes results/.
    The datasets volume is read-only: training and predict only read and verify it."""
    for d in ("data", "runs", "results"):
        (tmp_path / d).mkdir()
        open_to_all(tmp_path / d)
    datasets = readable_by_all(fetched)
    vols = [(datasets, "/datasets", "ro"), (str(tmp_path / "data"), "/srcaffe/data"),
            (str(tmp_path / "runs"), "/srcaffe/runs")]
    r = in_image("./run_train.sh", "fsrcnn-s", "--iters", "20", "--no-aug", "--snapshot-every", "20",
                 user=user, volumes=vols, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    models = glob.glob(str(tmp_path / "runs" / "fsrcnn-s-x3-*" / "fsrcnn-s_x3_iter_20.caffemodel"))
    assert len(models) == 1, os.listdir(str(tmp_path / "runs"))
    assert os.stat(models[0]).st_uid == (1000 if user else 0)
    assert glob.glob(str(tmp_path / "data" / "*" / "*.h5")), "no HDF5 data in the data volume"

    run_dir = os.path.basename(os.path.dirname(models[0]))
    vols = [(datasets, "/datasets", "ro"), (str(tmp_path / "runs"), "/srcaffe/runs", "ro"),
            (str(tmp_path / "results"), "/srcaffe/results")]
    r = in_image("python", "tools/predict.py", "butterfly", "--model", "/srcaffe/runs/%s/fsrcnn-s_x3_iter_20.caffemodel" % run_dir,
                 user=user, volumes=vols)
    assert r.returncode == 0, r.stdout + r.stderr
    assert glob.glob(str(tmp_path / "results" / "**" / "*.png"), recursive=True), r.stdout


@pytest.mark.parametrize("user", [None, USER])
def test_bicubic_and_predict_tests_pass_inside(image, shared_datasets, user):
    """README's test command inside the image, on the bicubic and predict tests, with the
    datasets mounted where the suite looks for them (../shared/datasets of the repo)."""
    r = in_image("tools/test.sh", "tests/test_bicubic_baseline.py", "tests/test_predict.py", "-q",
                 user=user, volumes=[(shared_datasets, "/shared/datasets", "ro")], env=["CI=true"], timeout=1800)
    tail = r.stdout[-1500:]
    assert r.returncode == 0, tail + r.stderr[-1500:]
    assert " passed" in tail and "skipped" not in tail and "failed" not in tail, tail


@pytest.mark.cuda   # the GPU image takes this machine's CUDA build
def test_gpu_image_is_a_cuda_build_and_refuses_gpu_without_one(gpu_image, fetched):
    r = in_image("bash", "-c", "tools/setup.sh --status; ldd /opt/srcaffe/cache/caffe-*-cuda-*/bin/caffe", image=gpu_image)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"build: +CUDA \(.*libcudart\.so\.13", r.stdout), r.stdout
    # NVIDIA's own, from the wheels in the image's cache, through the relative run path
    assert re.search(r"libcudart\.so\.13 => /opt/srcaffe/cache/\S*cuda-13\.0/root/lib64/libcudart\.so\.13 ", r.stdout), r.stdout
    r = in_image("python", "tools/predict.py", "butterfly", "--gpu", "0", image=gpu_image, user=USER,
                 volumes=[(readable_by_all(fetched), "/datasets", "ro")])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: --gpu 0: no GPU visible"), r.stderr


@pytest.mark.cuda   # the GPU image takes this machine's CUDA build
def test_gpu_image_has_the_hosts_cuda_build_of_the_same_recipe(gpu_image, tmp_path):
    assert_image_has_the_host_build(gpu_image, "cuda", tmp_path)


@pytest.mark.cuda   # the GPU image takes this machine's CUDA build
def test_gpu_image_in_cpu_mode_trains_with_the_cpu_images_losses(image, gpu_image, fsrcnn_run):
    """20 Adam iterations of FSRCNN x3 (fixed seed) with each image's caffe, the run folder mounted
    at its own path: the CUDA build in CPU mode gives exactly the CPU build's losses."""
    env = ["%s=%s" % kv for kv in CAFFE_TRAIN_ENV.items()]
    run = [(str(fsrcnn_run), str(fsrcnn_run))]
    on_cpu = caffe_train_losses(run_args(image, volumes=run, env=env, workdir=str(fsrcnn_run)) + ["caffe"], fsrcnn_run)
    on_gpu_image = caffe_train_losses(run_args(gpu_image, volumes=run, env=env, workdir=str(fsrcnn_run)) + ["caffe"], fsrcnn_run)
    assert [i for i, _ in on_cpu] == list(range(21))
    assert on_gpu_image == on_cpu
    assert on_cpu[-1][1] < on_cpu[0][1]
