#!/usr/bin/env bash
# Set up everything the toolkit needs: the Python venv, and a real Caffe (found or built).
#
# usage: tools/setup.sh [--blas open|mkl] [--status] [--rebuild] [--no-apt] [-h]
#
# 1. venv: $VENV, else an already active venv ($VIRTUAL_ENV), else .venv/ in the repo;
#    requirements.txt is (re)installed when it changed.
# 2. Caffe: an existing one is used when found ($CAFFE_ROOT/build/tools/caffe, `caffe` on PATH,
#    with pycaffe from the same tree or already importable). Otherwise BVLC Caffe 1.0 is built
#    CPU only (tools/build_caffe.sh) into $SRCAFFE_CACHE (default ~/.cache/srcaffe), keyed by the
#    recipe, the BLAS and the interpreter, so a changed recipe rebuilds and a second run is instant.
# 3. The venv gets bin/caffe and a .pth so `import caffe` works with no PYTHONPATH.
#
# env: VENV, CAFFE_ROOT, CAFFE_SRC (source tarball/dir for the build), SRCAFFE_CACHE,
#      SRCAFFE_BLAS (default blas), CAFFE_JOBS, CAFFE_GPU=1 (CUDA build, see docker/Dockerfile.gpu)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${SRCAFFE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/srcaffe}
BLAS=${SRCAFFE_BLAS:-open}
STATUS=0 REBUILD=0 APT=1
CAFFE_VERSION=1.0.0
APT_PACKAGES=(build-essential cmake patch xz-utils ca-certificates curl libprotobuf-dev protobuf-compiler
    libgoogle-glog-dev libgflags-dev libhdf5-dev libopenblas-dev libboost-system-dev
    libboost-thread-dev libboost-filesystem-dev libboost-python-dev)

die() { echo "error: $*" >&2; exit 2; }
say() { printf '[setup %4ss] %s\n' "$SECONDS" "$*"; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case $1 in
        --blas) [ $# -ge 2 ] || die "--blas needs a value (open or mkl)"; BLAS=$2; shift 2 ;;
        --blas=*) BLAS=${1#*=}; shift ;;
        --status) STATUS=1; shift ;;
        --rebuild) REBUILD=1; shift ;;
        --no-apt) APT=0; shift ;;
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
VENV=${VENV:-${VIRTUAL_ENV:-$REPO/.venv}}
PY=$VENV/bin/python
venv_site() { "$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

if [ "$STATUS" = 1 ]; then
    echo "venv:      $VENV $([ -x "$PY" ] && "$PY" -c 'import sys; print("(Python %d.%d.%d)" % sys.version_info[:3])' || echo '(missing: run tools/setup.sh)')"
    [ -x "$PY" ] || exit 1
    if [ -x "$VENV/bin/caffe" ]; then
        bin=$(readlink -f "$VENV/bin/caffe")
        echo "caffe:     $bin"
        echo "version:   $("$VENV/bin/caffe" --version 2>&1 | head -n1)"
        blas=$(ldd "$bin" $(dirname "$bin")/../lib/libcaffe.so* 2>/dev/null | grep -oiE 'lib(mkl_rt|openblas|blas|cblas|atlas)[^ ]*' | sort -u | tr '\n' ' ')
        echo "BLAS:      ${blas:-unknown}"
        [ -f "$VENV/.srcaffe-caffe" ] && sed 's/^/           /' "$VENV/.srcaffe-caffe"
    else
        echo "caffe:     not linked into the venv (run tools/setup.sh)"
    fi
    echo "pycaffe:   $("$PY" -c 'import caffe, os; print(os.path.dirname(caffe.__file__))' 2>/dev/null || echo 'not importable')"
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
    "$PY" -m pip install -q --disable-pip-version-check -r "$REPO/requirements.txt" \
        || die "pip install -r requirements.txt failed"
    echo "$REQ_HASH" >"$VENV/.srcaffe-requirements"
fi
SITE=$(venv_site)
# The toolkit's own package, importable from anywhere in the venv.
echo "$REPO" >"$SITE/srcaffe-repo.pth"

# ---- Caffe: already linked? --------------------------------------------------------------------
link_caffe() {  # $1: caffe binary, $2: folder holding the pycaffe package (may be empty), $3: info
    ln -sf "$1" "$VENV/bin/caffe"
    if [ -n "$2" ]; then echo "$2" >"$SITE/srcaffe-caffe.pth"; else rm -f "$SITE/srcaffe-caffe.pth"; fi
    printf '%s\n' "$3" >"$VENV/.srcaffe-caffe"
}
check_caffe() {  # the linked caffe runs and pycaffe imports with this venv's NumPy
    "$VENV/bin/caffe" --version >/dev/null 2>&1 && "$PY" -c 'import caffe' >/dev/null 2>&1
}

NUMPY_VER=$("$PY" -c 'import numpy; print(numpy.__version__)')
PY_VER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
KEY=$(cat "$REPO/tools/build_caffe.sh" "$REPO"/tools/caffe-patches/*.patch "$REPO"/tools/caffe-patches/fallback/*.patch \
      <(echo "$BLAS py$PY_VER numpy$NUMPY_VER gpu${CAFFE_GPU:-0} src${CAFFE_SRC:-debian}") | sha256sum | cut -c1-12)
PREFIX=$CACHE/caffe-$CAFFE_VERSION-$BLAS-$KEY

if [ "$REBUILD" = 0 ] && [ -z "${CAFFE_ROOT:-}" ] && [ -x "$VENV/bin/caffe" ] \
   && grep -qx "key=$KEY" "$VENV/.srcaffe-caffe" 2>/dev/null && check_caffe; then
    say "Caffe $CAFFE_VERSION ($BLAS) ready: $(readlink -f "$VENV/bin/caffe")"
    exit 0
fi

# ---- Caffe: the user's own ---------------------------------------------------------------------
if [ "$REBUILD" = 0 ]; then
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
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
        done
        if [ ${#missing[@]} -gt 0 ]; then
            SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
            command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand, then rerun with --no-apt"
            say "installing build packages: ${missing[*]}"
            { $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; } \
                >"$CACHE/apt.log" 2>&1 || { tail -n 15 "$CACHE/apt.log" >&2; die "apt-get install failed (whole log: $CACHE/apt.log)"; }
        fi
    fi
    say "building Caffe $CAFFE_VERSION (CPU, BLAS=$BLAS) into $PREFIX; full log: $LOG"
    rm -rf "$PREFIX"; : >"$LOG"
    if ! bash "$REPO/tools/build_caffe.sh" "$PREFIX" "$BLAS" "$PY" "$LOG"; then
        echo "---- last lines of $LOG:" >&2; tail -n 25 "$LOG" >&2
        rm -rf "$PREFIX"
        die "building Caffe failed; the whole log is $LOG"
    fi
    touch "$PREFIX/.complete"
else
    say "reusing cached build $PREFIX"
fi
link_caffe "$PREFIX/bin/caffe" "$PREFIX/lib/python3/dist-packages" "key=$KEY
blas=$BLAS
prefix=$PREFIX
log=$LOG"
check_caffe || die "the built Caffe does not run or pycaffe does not import (whole build log: $LOG)"
say "Caffe $CAFFE_VERSION ($BLAS) ready: $PREFIX/bin/caffe"
