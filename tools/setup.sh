#!/usr/bin/env bash
# Set up everything the toolkit needs: the Python venv, and a real Caffe (found or built).
#
# usage: tools/setup.sh [--cuda | --cpu] [--build-only] [--blas open|mkl] [--status] [--rebuild] [--no-apt] [-h]
#
# 1. venv: $VENV, else an already active venv ($VIRTUAL_ENV), else .venv/ in the repo;
#    requirements.txt is (re)installed when it changed.
# 2. Caffe: an existing one is used when found ($CAFFE_ROOT/build/tools/caffe, `caffe` on PATH,
#    with pycaffe from the same tree or already importable). Otherwise BVLC Caffe 1.0 is built
#    CPU only (tools/build_caffe.sh) into $SRCAFFE_CACHE (default ~/.cache/srcaffe), keyed by the
#    recipe, the BLAS and the interpreter, so a changed recipe rebuilds and a second run is instant.
# 3. The venv gets bin/caffe and a .pth so `import caffe` works with no PYTHONPATH.
#
# --cuda builds the CUDA variant of the same recipe (CPU_ONLY=OFF, with cuDNN and NCCL) into its own cache
# folder, caffe-1.0.0-<blas>-cuda-<key>, with the CUDA toolchain of tools/cuda_toolchain.sh
# (CUDA_HOME, nvcc on PATH, else the pinned PyPI CUDA 13.0 wheels), and links it into the venv;
# no GPU is needed to build it. --cpu links the CPU build back. Without either, the venv keeps
# the variant it has (CPU on a new venv), so run_train.sh's own setup call never switches it.
# --build-only builds (or finds) the chosen variant without changing what the venv links; every
# build the venv has used is recorded in $VENV/.srcaffe-cpu and $VENV/.srcaffe-cuda (prefix=...).
#
# env: VENV, CAFFE_ROOT, CAFFE_SRC (source tarball/dir for the build), SRCAFFE_CACHE,
#      SRCAFFE_BLAS (default blas), CAFFE_JOBS, CAFFE_GPU=1 (same as --cuda)
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
REPO=$SRCAFFE_REPO CACHE=$SRCAFFE_CACHE_DIR SAY_AS=setup
BLAS=${SRCAFFE_BLAS:-open}
STATUS=0 REBUILD=0 APT=1 VARIANT= BUILD_ONLY=0
APT_PACKAGES=(build-essential cmake patch xz-utils ca-certificates curl libprotobuf-dev protobuf-compiler
    libgoogle-glog-dev libgflags-dev libhdf5-dev libopenblas-dev libboost-system-dev
    libboost-thread-dev libboost-filesystem-dev libboost-python-dev patchelf)


while [ $# -gt 0 ]; do
    case $1 in
        --blas) [ $# -ge 2 ] || die "--blas needs a value (open or mkl)"; BLAS=$2; shift 2 ;;
        --blas=*) BLAS=${1#*=}; shift ;;
        --status) STATUS=1; shift ;;
        --rebuild) REBUILD=1; shift ;;
        --no-apt) APT=0; shift ;;
        --cuda) VARIANT=cuda; shift ;;
        --cpu) VARIANT=cpu; shift ;;
        --build-only) BUILD_ONLY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see tools/setup.sh --help)" ;;
    esac
done
case $BLAS in open|mkl) ;; *) die "--blas must be 'open' or 'mkl', not '$BLAS'" ;; esac
if [ -n "${CAFFE_SRC:-}" ] && [ ! -e "$CAFFE_SRC" ]; then
    die "CAFFE_SRC=$CAFFE_SRC: no such file or directory (give a Caffe source tarball or folder)"
fi
if [ -n "${CAFFE_ROOT:-}" ] && [ ! -x "$CAFFE_ROOT/build/tools/caffe" ]; then
    die "CAFFE_ROOT=$CAFFE_ROOT: $CAFFE_ROOT/build/tools/caffe is missing (build Caffe there or unset CAFFE_ROOT)"
fi

# ---- venv -------------------------------------------------------------------------------------
VENV=$SRCAFFE_VENV
PY=$VENV/bin/python
# The build's key, prefix and status (srcaffe/build.py: the standard library only, so any of
# the venv's interpreters runs it from the repository, before srcaffe-repo.pth exists).
build_info() { (cd "$REPO" && "$PY" -m srcaffe.build "$@"); }
venv_site() { "$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

if [ "$STATUS" = 1 ]; then
    echo "venv:      $VENV $([ -x "$PY" ] && "$PY" -c 'import sys; print("(Python %d.%d.%d)" % sys.version_info[:3])' || echo '(missing: run tools/setup.sh)')"
    [ -x "$PY" ] || exit 1
    if [ -x "$VENV/bin/caffe" ]; then
        bin=$(readlink -f "$VENV/bin/caffe")
        echo "caffe:     $bin"
        echo "version:   $("$VENV/bin/caffe" --version 2>&1 | head -n1)"
        build_info status "$bin"   # the BLAS it links, and CPU only or CUDA (--gpu needs a visible GPU)
        [ -f "$VENV/.srcaffe-caffe" ] && sed 's/^/           /' "$VENV/.srcaffe-caffe"
    else
        echo "caffe:     not linked into the venv (run tools/setup.sh)"
    fi
    echo "pycaffe:   $("$PY" -c 'import caffe, os; print(os.path.dirname(caffe.__file__))' 2>/dev/null || echo 'not importable')"
    for v in cpu cuda; do
        [ -f "$VENV/.srcaffe-$v" ] && echo "$v build: $(sed -n 's/^prefix=//p' "$VENV/.srcaffe-$v")"
    done
    echo "cache:     $CACHE"
    exit 0
fi

if [ ! -x "$PY" ]; then
    say "creating venv $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed (install python3-venv)"
fi
REQ_HASH=$(sha256sum "$REPO/requirements.txt" | cut -c1-16)
if [ "$(cat "$VENV/.srcaffe-requirements" 2>/dev/null)" != "$REQ_HASH" ]; then
    say "installing Python requirements into $VENV"
    # --no-compile: the modules a run imports are byte-compiled on first use (half of pip's time
    # is compiling every module of SciPy, OpenCV, ...; docker/Dockerfile compiles its read-only venv)
    "$PY" -m pip install -q --no-compile --disable-pip-version-check -r "$REPO/requirements.txt" \
        || die "pip install -r requirements.txt failed"
    echo "$REQ_HASH" >"$VENV/.srcaffe-requirements"
fi
SITE=$(venv_site)
# Write a file only when its content changes, so that a finished venv may be read-only (a
# container run as another user: docker/README.md).
put() {  # $1: file, stdin: content
    local text; text=$(cat)
    [ "$(cat "$1" 2>/dev/null)" = "$text" ] || printf '%s\n' "$text" >"$1"
}
# The toolkit's own package, importable from anywhere in the venv.
echo "$REPO" | put "$SITE/srcaffe-repo.pth"

# ---- Caffe: already linked? --------------------------------------------------------------------
link_caffe() {  # $1: caffe binary, $2: folder holding the pycaffe package (may be empty), $3: info
    ln -sf "$1" "$VENV/bin/caffe"
    if [ -n "$2" ]; then echo "$2" >"$SITE/srcaffe-caffe.pth"; else rm -f "$SITE/srcaffe-caffe.pth"; fi
    printf '%s\n' "$3" >"$VENV/.srcaffe-caffe"
}
check_caffe() {  # the linked caffe runs and pycaffe imports with this venv's NumPy
    "$VENV/bin/caffe" --version >/dev/null 2>&1 && "$PY" -c 'import caffe' >/dev/null 2>&1
}
still_linked() {  # once checked: the linked caffe runs and its pycaffe's extension is in place
    # (the key names the venv's Python and NumPy, so an import, about a second, proves no more)
    local py; py=$(cat "$SITE/srcaffe-caffe.pth" 2>/dev/null) || return 1
    "$VENV/bin/caffe" --version >/dev/null 2>&1 && [ -f "$py/caffe/_caffe.so" ]
}

record_build() {  # where this venv's CPU / CUDA build lives, for tests and tools (srcaffe.device)
    { printf 'key=%s\nprefix=%s\n' "$KEY" "$PREFIX"; [ -z "$CUDA_ID" ] || echo "cuda=$CUDA_ID"; } | put "$VENV/.srcaffe-$VARIANT"
}

# Which variant: --cuda / --cpu, else the one the venv already links (CPU for a new venv).
[ -z "$VARIANT" ] && [ "${CAFFE_GPU:-0}" = 1 ] && VARIANT=cuda
[ -z "$VARIANT" ] && VARIANT=$(sed -n 's/^variant=//p' "$VENV/.srcaffe-caffe" 2>/dev/null || true)   # a new venv has none
VARIANT=${VARIANT:-cpu}
CUDA_ID=
if [ "$VARIANT" = cuda ]; then
    mkdir -p "$CACHE"
    CUDA_ROOT=$(PYTHON=$PY LOG=$CACHE/cuda-toolchain.log bash "$REPO/tools/cuda_toolchain.sh") || exit 2
    CUDA_ARCHS=$(CUDA_HOME=$CUDA_ROOT bash "$REPO/tools/cuda_toolchain.sh" --archs) || exit 2
    # nvcc's release and the archs; the toolkit's own PyPI toolchain by its pins, not its path
    # (a build copied with the cache folder, a Docker image, keeps its key)
    CUDA_ID=$(build_info cuda-id --cuda-root "$CUDA_ROOT" --archs "$CUDA_ARCHS") || exit 2
fi

# The recipe's key (srcaffe/build.py: the recipe files, BLAS, the venv's Python and NumPy, ...).
KEY=$(build_info key --blas "$BLAS" --variant "$VARIANT" --cuda-id "$CUDA_ID") || die "cannot compute the build key"
PREFIX=$(build_info prefix --blas "$BLAS" --variant "$VARIANT" --cuda-id "$CUDA_ID")
CAFFE_VERSION=${PREFIX##*/caffe-} CAFFE_VERSION=${CAFFE_VERSION%%-*}   # caffe-<version>-<blas>-...
if [ "$VARIANT" = cuda ]; then NAME="$CAFFE_VERSION ($BLAS, CUDA)"; else NAME="$CAFFE_VERSION ($BLAS)"; fi

if [ "$REBUILD" = 0 ] && [ "$BUILD_ONLY" = 0 ] && [ -z "${CAFFE_ROOT:-}" ] && [ -x "$VENV/bin/caffe" ] \
   && grep -qx "key=$KEY" "$VENV/.srcaffe-caffe" 2>/dev/null && still_linked; then
    record_build
    say "Caffe $NAME ready: $(readlink -f "$VENV/bin/caffe")"
    exit 0
fi
if [ "$REBUILD" = 0 ] && [ "$BUILD_ONLY" = 1 ] && [ -f "$PREFIX/.complete" ] && "$PREFIX/bin/caffe" --version >/dev/null 2>&1; then
    record_build
    say "Caffe $NAME ready (not linked into the venv): $PREFIX/bin/caffe"
    exit 0
fi

# ---- Caffe: the user's own (the CPU variant only: --cuda always means the toolkit's CUDA build) --
if [ "$REBUILD" = 0 ] && [ "$VARIANT" = cpu ] && [ "$BUILD_ONLY" = 0 ]; then
    own_bin= own_py=
    if [ -n "${CAFFE_ROOT:-}" ]; then
        own_bin=$CAFFE_ROOT/build/tools/caffe own_py=$CAFFE_ROOT/python
    elif command -v caffe >/dev/null 2>&1 && [ "$(readlink -f "$(command -v caffe)")" != "$(readlink -f "$VENV/bin/caffe" 2>/dev/null)" ]; then
        own_bin=$(readlink -f "$(command -v caffe)")
        for d in "$(dirname "$own_bin")/../../python" "$(dirname "$own_bin")/../python" \
                 "$(dirname "$own_bin")/../lib/python3/dist-packages"; do
            [ -f "$d/caffe/__init__.py" ] && own_py=$(cd "$d" && pwd) && break
        done
    fi
    if [ -n "$own_bin" ]; then
        [ -n "$own_py" ] && [ ! -f "$own_py/caffe/__init__.py" ] && own_py=
        [ -z "$own_py" ] && ! "$PY" -c 'import caffe' 2>/dev/null \
            && echo "warning: no pycaffe found next to $own_bin; inference tools need it" >&2
        say "using your Caffe: $own_bin"
        link_caffe "$own_bin" "$own_py" "external=$own_bin"
        check_caffe || die "$own_bin does not run or its pycaffe does not import in $VENV (see README, Troubleshooting)"
        exit 0
    fi
fi

# ---- Caffe: build it ----------------------------------------------------------------------------
mkdir -p "$CACHE"
LOG=$CACHE/build-$BLAS-$KEY.log
# One build of a key at a time: a second setup (another run_train.sh, a test) waits, then reuses it.
exec 9>"$CACHE/.lock-$BLAS-$KEY"
if ! flock -n 9; then
    say "another setup is building this Caffe; waiting for it"
    flock 9
    REBUILD=0
fi
if [ "$REBUILD" = 1 ] || [ ! -f "$PREFIX/.complete" ]; then
    if [ "$APT" = 1 ]; then
        missing=()
        for p in "${APT_PACKAGES[@]}"; do
            [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
        done
        if [ ${#missing[@]} -gt 0 ]; then
            SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
            command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand, then rerun with --no-apt"
            say "installing build packages: ${missing[*]}"
            { $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; } \
                >"$CACHE/apt.log" 2>&1 || { tail -n 15 "$CACHE/apt.log" >&2; die "apt-get install failed (whole log: $CACHE/apt.log)"; }
        fi
    fi
    if [ "$VARIANT" = cuda ]; then
        say "building Caffe $CAFFE_VERSION (CUDA $CUDA_ID, BLAS=$BLAS) into $PREFIX; full log: $LOG"
    else
        say "building Caffe $CAFFE_VERSION (CPU, BLAS=$BLAS) into $PREFIX; full log: $LOG"
    fi
    rm -rf "$PREFIX"; : >"$LOG"
    if ! CAFFE_GPU=$([ "$VARIANT" = cuda ] && echo 1 || echo 0) CUDA_ROOT=${CUDA_ROOT:-} \
         bash "$REPO/tools/build_caffe.sh" "$PREFIX" "$BLAS" "$PY" "$LOG"; then
        echo "---- last lines of $LOG:" >&2; tail -n 25 "$LOG" >&2
        rm -rf "$PREFIX"
        die "building Caffe failed; the whole log is $LOG"
    fi
    touch "$PREFIX/.complete"
else
    say "reusing cached build $PREFIX"
fi
record_build
if [ "$BUILD_ONLY" = 1 ]; then
    "$PREFIX/bin/caffe" --version >/dev/null 2>&1 || die "the built Caffe does not run (whole build log: $LOG)"
    say "Caffe $NAME ready (not linked into the venv): $PREFIX/bin/caffe"
    exit 0
fi
link_caffe "$PREFIX/bin/caffe" "$PREFIX/lib/python3/dist-packages" "key=$KEY
variant=$VARIANT
blas=$BLAS
prefix=$PREFIX
log=$LOG"
check_caffe || die "the built Caffe does not run or pycaffe does not import (whole build log: $LOG)"
say "Caffe $NAME ready: $PREFIX/bin/caffe"
