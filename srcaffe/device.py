"""CUDA builds of Caffe and GPUs: is a Caffe a CUDA build, is a GPU visible, run pycaffe on one.

Caffe answers `-gpu` on a CPU-only build, or on a machine without a GPU, with a LOG(FATAL)
abort and a stack trace. These checks ask first, without going through Caffe: a CUDA build is
one that links libcudart (ldd of the binary, or the libraries mapped into this process once
pycaffe is imported), and the GPUs are counted by that same libcudart's cudaGetDeviceCount
(through ctypes), which reports a missing driver or device as an error code.

    check_gpu("0", caffe_binary)   # before `caffe train -gpu 0`: raises UserError with one line
    check_engine("cudnn", "0", caffe_binary)   # ... and before its net is set to the cuDNN engine
    use(0, "cudnn")                # pycaffe: checks, then caffe.set_mode_gpu(); caffe.set_device(0),
                                   # and every net made from then on gets the cuDNN engine
    build_prefix("cuda")           # where tools/setup.sh put this venv's CUDA build (or None)

Engines (srcaffe.nets.ENGINES): caffe, Caffe's own code, runs anywhere; cudnn, NVIDIA's cuDNN,
only in GPU mode and only in a build that links it (tools/setup.sh --cuda builds one).
"""
import ctypes
import os
import re
import subprocess
import sys

from . import paths
from .errors import UserError

SETUP_HINT = "tools/setup.sh --cuda builds and links one"
CUDNN_HINT = "tools/setup.sh --cuda builds Caffe with cuDNN 9 (Caffe's CUDNN engine)"
# The CPU thread counts Caffe's libraries read when they load: OpenMP (the toolkit's patches),
# OpenBLAS and MKL (whichever BLAS the build links).
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_env(threads):
    """{variable: value} that run Caffe (and its BLAS) on `threads` CPU threads."""
    return {v: str(int(threads)) for v in THREAD_VARS}


def build_prefix(variant, venv=None):
    """Install prefix of this venv's 'cpu' or 'cuda' build of Caffe (recorded by tools/setup.sh
    in $VENV/.srcaffe-<variant>), or None when the venv has not built that variant."""
    path = os.path.join(venv or sys.prefix, ".srcaffe-" + variant)
    try:
        with open(path) as f:
            info = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    except OSError:
        return None
    prefix = info.get("prefix")
    return prefix if prefix and os.path.isfile(os.path.join(prefix, "bin", "caffe")) else None


def _ldd(binary):
    try:
        return subprocess.run(["ldd", os.path.realpath(binary)], capture_output=True, text=True).stdout
    except OSError:
        raise UserError("ldd is needed to inspect %s" % binary)


def libcudart_of(binary):
    """Path of the libcudart a binary or library loads (ldd, so RUNPATH and LD_LIBRARY_PATH
    count), None for a CPU-only build. A libcudart that cannot be found also counts as CUDA."""
    out = _ldd(binary)
    m = re.search(r"^\s*(libcudart\.so\S*)\s+=>\s+(\S+)", out, re.M)
    if not m:
        return None
    if m.group(2) == "not":
        raise UserError("%s is a CUDA build but %s is not found (set LD_LIBRARY_PATH)" % (binary, m.group(1)))
    return m.group(2)


def is_cuda_build(binary):
    """True when this caffe binary (or libcaffe.so) was built with CUDA."""
    return libcudart_of(binary) is not None


def _loaded(soname="libcudart.so"):
    """The library of that soname prefix mapped into this process (after `import caffe`), or None."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if os.path.basename(path).startswith(soname):
                    return path
    except OSError:
        pass
    return None


def gpu_count(libcudart):
    """(number of visible GPUs, None) or (0, why none is usable), asked of the CUDA runtime."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0, "no NVIDIA driver on this machine (libcuda.so.1 not found)"
    rt = ctypes.CDLL(libcudart)
    rt.cudaGetErrorString.restype = ctypes.c_char_p
    n = ctypes.c_int(0)
    err = rt.cudaGetDeviceCount(ctypes.byref(n))
    if err != 0:
        return 0, "CUDA says: %s" % rt.cudaGetErrorString(err).decode(errors="replace")
    if n.value == 0:
        return 0, "CUDA sees no device (CUDA_VISIBLE_DEVICES=%s)" % paths.cuda_visible_devices()
    return n.value, None


def _check_ids(gpu, libcudart):
    """Caffe's -gpu syntax: 'all', 'N' or 'N,M,...'. Raises UserError unless every id is visible."""
    text = str(gpu).strip()
    if text != "all" and not re.fullmatch(r"\d+(,\d+)*", text):
        raise UserError("--gpu %s: give a GPU id (0, 1, ...), a list (0,1) or 'all'" % text)
    count, why = gpu_count(libcudart)
    if count == 0:
        raise UserError("--gpu %s: no GPU visible: %s" % (text, why))
    bad = [int(i) for i in text.split(",") if text != "all" and int(i) >= count]
    if bad:
        raise UserError("--gpu %s: GPU %d does not exist (%d visible: ids 0-%d)" % (text, bad[0], count, count - 1))
    return count if text == "all" else len(text.split(","))


def check_gpu(gpu, caffe_binary):
    """Before running `caffe ... -gpu GPU`: the binary is a CUDA build and the GPU(s) are visible.
    Returns the number of GPUs it will use; raises UserError (one line) otherwise."""
    cudart = libcudart_of(caffe_binary)
    if cudart is None:
        raise UserError("--gpu %s: this Caffe (%s) is a CPU-only build; %s"
                        % (gpu, os.path.realpath(caffe_binary), SETUP_HINT))
    used = _check_ids(gpu, cudart)
    # Caffe trains on several GPUs only through NCCL (else: "Multi-GPU execution not available").
    if used > 1 and "libnccl" not in _ldd(caffe_binary):
        raise UserError("--gpu %s: %d GPUs, but this Caffe has no NCCL (multi-GPU training); give one id, "
                        "e.g. --gpu 0, or run one training per GPU" % (gpu, used))
    return used


def use_gpu(gpu_id):
    """Run pycaffe on GPU gpu_id (an int): checks the imported caffe is a CUDA build and the GPU
    is visible (UserError otherwise, never a Caffe abort), then switches Caffe to it."""
    import caffe

    if not isinstance(gpu_id, int) or gpu_id < 0:
        raise UserError("--gpu takes one GPU id (0, 1, ...), not %r" % (gpu_id,))
    cudart = _loaded()
    if cudart is None:
        raise UserError("--gpu %d: this pycaffe (%s) is a CPU-only build; %s"
                        % (gpu_id, os.path.dirname(caffe.__file__), SETUP_HINT))
    _check_ids(str(gpu_id), cudart)
    caffe.set_device(gpu_id)
    caffe.set_mode_gpu()


def _engine_problem(engine, gpu, has_cudnn, where):
    """Why `engine` cannot run with --gpu `gpu` on the build at `where` (has_cudnn(): whether it
    links libcudnn), or None."""
    if engine != "cudnn":
        return None
    if gpu is None:
        return "--engine cudnn runs on a GPU: give --gpu ID as well (on the CPU only Caffe's own engine runs)"
    if not has_cudnn():
        return "--engine cudnn: this Caffe (%s) is built without cuDNN; %s" % (where, CUDNN_HINT)
    return None


def check_engine(engine, gpu, caffe_binary):
    """Before `caffe train` on a net set to `engine` (None or caffe: nothing to check). UserError
    (one line) when cuDNN is asked for without a GPU, or of a build without it."""
    problem = _engine_problem(engine, gpu, lambda: "libcudnn" in _ldd(caffe_binary), os.path.realpath(caffe_binary))
    if problem:
        raise UserError(problem)


def use(gpu_id=None, engine=None):
    """pycaffe: run on GPU gpu_id (None: the CPU) with Caffe's `engine` for every net made from
    then on (None: Caffe's default). One-line UserError where that cannot run."""
    from . import pycaffe

    if gpu_id is not None:
        use_gpu(gpu_id)
    if engine == "cudnn":
        problem = _engine_problem(engine, gpu_id, lambda: _loaded("libcudnn.so") is not None,
                                  os.path.dirname(pycaffe.caffe().__file__))
        if problem:
            raise UserError(problem)
    pycaffe.set_engine(engine)
