"""The Caffe builds of tools/setup.sh: the cache key of the recipe, the install prefix, what a
built binary is (BLAS, CPU or CUDA), and the records a venv keeps of its builds.

The key names a build by everything that makes it differ: the first 12 hex digits of the
sha256 of, in this order,

    tools/build_caffe.sh
    tools/caffe-patches/*.patch            (sorted by name)
    tools/caffe-patches/fallback/*.patch   (sorted by name)
    "BLAS pyX.Y numpyV VARIANT CUDA_ID srcSOURCE\\n"

(BLAS open or mkl; the interpreter and NumPy of the venv that builds pycaffe; VARIANT cpu or
cuda; CUDA_ID empty for cpu, else "release R, VV, archs BIN;PTX, WHERE" with WHERE the
toolchain's root, or "pypi <sha256 of tools/cuda-toolchain.txt, 12 digits>" for the toolkit's
own PyPI toolchain, so that a build copied with the cache keeps its key; SOURCE $CAFFE_SRC, else
"debian"). The install prefix is <cache>/caffe-1.0.0-<blas>-<key>, or caffe-1.0.0-<blas>-cuda-<key>.

Standard library only: tools/setup.sh runs it with the venv's interpreter before anything but
the requirements is installed.

    python3 -m srcaffe.build key [--blas open] [--variant cpu|cuda] [--cuda-id ID]
    python3 -m srcaffe.build prefix [the same options]
    python3 -m srcaffe.build cuda-id --cuda-root ROOT --archs "BIN;PTX"
    python3 -m srcaffe.build status BINARY      the BLAS and build lines of tools/setup.sh --status
"""
import argparse
import glob
import hashlib
import os
import re
import subprocess
import sys

from . import paths

CAFFE_VERSION = "1.0.0"
BLASES = ("open", "mkl")
VARIANTS = ("cpu", "cuda")
# tools/cuda_toolchain.sh installs the PyPI toolchain here, under the cache folder
PYPI_TOOLCHAIN = os.path.join("cuda-13.0", "root")


def recipe_files(repo=paths.ROOT):
    tools = os.path.join(repo, "tools")
    return ([os.path.join(tools, "build_caffe.sh")]
            + sorted(glob.glob(os.path.join(tools, "caffe-patches", "*.patch")))
            + sorted(glob.glob(os.path.join(tools, "caffe-patches", "fallback", "*.patch"))))


def recipe_line(blas="open", variant="cpu", cuda_id="", py_ver=None, numpy_ver=None, source=None):
    """The last line hashed into the key (without its newline)."""
    if py_ver is None:
        py_ver = "%d.%d" % sys.version_info[:2]
    if numpy_ver is None:
        numpy_ver = _numpy_version()
    return "%s py%s numpy%s %s %s src%s" % (blas, py_ver, numpy_ver, variant, cuda_id or "",
                                            source or paths.caffe_source() or "debian")


def _numpy_version():
    """The venv's NumPy version from its installed .dist-info folder (importing NumPy costs a
    quarter of a second per call, and setup.sh asks on every tool start); NumPy's own as a fallback."""
    import importlib.util

    spec = importlib.util.find_spec("numpy")
    if spec and spec.origin:
        site = os.path.dirname(os.path.dirname(spec.origin))
        found = glob.glob(os.path.join(site, "numpy-*.dist-info"))
        if len(found) == 1:
            return os.path.basename(found[0])[len("numpy-"):-len(".dist-info")]
    import numpy
    return numpy.__version__


def key(blas="open", variant="cpu", cuda_id="", repo=paths.ROOT, **line):
    """The cache key of this recipe for this interpreter (see the module's docstring)."""
    h = hashlib.sha256()
    for f in recipe_files(repo):
        with open(f, "rb") as fh:
            h.update(fh.read())
    h.update((recipe_line(blas, variant, cuda_id, **line) + "\n").encode())
    return h.hexdigest()[:12]


def prefix(key, blas="open", variant="cpu", cache=None):
    """Where the build of a key is installed."""
    name = "caffe-%s-%s-%s%s" % (CAFFE_VERSION, blas, "cuda-" if variant == "cuda" else "", key)
    return os.path.join(cache or paths.cache_dir(), name)


def cuda_id(cuda_root, archs, cache=None, repo=paths.ROOT):
    """How the key names a CUDA toolchain: nvcc's release, the archs built, and where it is."""
    out = subprocess.run([os.path.join(cuda_root, "bin", "nvcc"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    release = re.search(r"release [0-9.]*, V[0-9.]*", out)
    where = cuda_root
    if os.path.normpath(cuda_root) == os.path.join(cache or paths.cache_dir(), PYPI_TOOLCHAIN):
        with open(os.path.join(repo, "tools", "cuda-toolchain.txt"), "rb") as f:
            where = "pypi " + hashlib.sha256(f.read()).hexdigest()[:12]
    return "%s, archs %s, %s" % (release.group(0) if release else "", archs, where)


def linked_libraries(binary):
    """ldd's lines for a caffe binary and the libcaffe beside it ('' where ldd cannot tell)."""
    real = os.path.realpath(binary)
    libs = sorted(glob.glob(os.path.join(os.path.dirname(real), "..", "lib", "libcaffe.so*")))
    try:
        return subprocess.run(["ldd", real] + libs, capture_output=True, text=True).stdout
    except OSError:
        return ""


def is_cuda(ldd_text):
    """A CUDA build links libcudart (it runs in CPU mode too)."""
    return "libcudart" in ldd_text


def status_lines(binary):
    """The BLAS and build lines of tools/setup.sh --status."""
    libs = linked_libraries(binary)
    blas = sorted(set(re.findall(r"lib(?:mkl_rt|openblas|blas|cblas|atlas)\S*", libs, re.I)))
    lines = ["BLAS:      %s" % (" ".join(blas) + " " if blas else "unknown")]
    if is_cuda(libs):
        cuda = sorted(set(re.findall(r"lib(?:cudart|cublas|curand)\.so\S*", libs)))
        lines.append("build:     CUDA (%s )" % " ".join(cuda))
    else:
        lines.append("build:     CPU only")
    return lines


def record(variant, venv=None):
    """{key, prefix[, cuda]} tools/setup.sh recorded for a venv's 'cpu' or 'cuda' build
    ($VENV/.srcaffe-<variant>), or {} when it has built none."""
    try:
        with open(os.path.join(venv or sys.prefix, ".srcaffe-" + variant)) as f:
            return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    except OSError:
        return {}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m srcaffe.build", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in ("key", "prefix"):
        s = sub.add_parser(name, help="the build's %s" % ("cache key" if name == "key" else "install prefix"))
        s.add_argument("--blas", choices=BLASES, default="open")
        s.add_argument("--variant", choices=VARIANTS, default="cpu")
        s.add_argument("--cuda-id", default="", help="the CUDA toolchain's name in the key (cuda-id)")
    c = sub.add_parser("cuda-id", help="how the key names a CUDA toolchain")
    c.add_argument("--cuda-root", required=True)
    c.add_argument("--archs", required=True, metavar="BIN;PTX")
    st = sub.add_parser("status", help="BLAS and CPU/CUDA of a caffe binary")
    st.add_argument("binary")
    a = p.parse_args(argv)
    if a.command == "status":
        print("\n".join(status_lines(a.binary)))
    elif a.command == "cuda-id":
        print(cuda_id(a.cuda_root, a.archs))
    else:
        k = key(a.blas, a.variant, a.cuda_id)
        print(k if a.command == "key" else prefix(k, a.blas, a.variant))
    return 0


if __name__ == "__main__":
    sys.exit(main())
