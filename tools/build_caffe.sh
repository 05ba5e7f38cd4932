#!/usr/bin/env bash
# Build BVLC Caffe 1.0 (CPU only, or with CUDA) into an install prefix.  Called by tools/setup.sh, which
# hashes this file and tools/caffe-patches/ into the cache key: editing the recipe rebuilds.
#
# usage: tools/build_caffe.sh PREFIX BLAS PYTHON LOG
#   PREFIX  install prefix (created; bin/caffe, lib/, lib/python3/dist-packages/caffe)
#   BLAS    open | mkl
#   PYTHON  the venv interpreter pycaffe is built for (its headers, libpython, NumPy)
#   LOG     file that receives the full output of every step
# env: CAFFE_SRC   a source tarball or directory to use instead of Debian's source package
#      CAFFE_JOBS  parallel compile jobs (default: number of cores)
#      CAFFE_GPU=1 build with CUDA (tools/setup.sh --cuda); default CPU_ONLY
#      CUDA_ROOT   the CUDA toolkit root for CAFFE_GPU=1 (default: tools/cuda_toolchain.sh finds one)
#      CAFFE_SELFTEST="FILES|FILTER"  also build Caffe's own gtest suites from src/caffe/test/test_FILES.cpp
#                  (comma-separated, e.g. convolution_layer,net) and run them with --gtest_filter=FILTER
#                  (tools/caffe_selftest.sh); the output goes to LOG and to the terminal
set -euo pipefail
case ${1:-} in -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
[ $# -eq 4 ] || { echo "error: usage: tools/build_caffe.sh PREFIX BLAS PYTHON LOG (see --help; tools/setup.sh calls it)" >&2; exit 2; }

PREFIX=$1 BLAS=$2 PYTHON=$3 LOG=$4
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEB_VERSION=1.0.0+git20180821.99bd997-8
DEB_SUITE=bullseye
UPSTREAM_COMMIT=99bd99795dcdf0b1d3086a8d67ab1782a8a08383
WORK=$(dirname "$PREFIX")/$(basename "$PREFIX").work
T0=$(date +%s)

step() { printf '  [%4ss] %s\n' $(( $(date +%s) - T0 )) "$*"; printf '\n=== %s\n' "$*" >>"$LOG"; }
die() { echo "error: $*" >&2; exit 1; }
run() { "$@" >>"$LOG" 2>&1; }

# The Debian mirror the machine already uses (deb822 or one-line sources), never a fixed host.
debian_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        grep -hoE '(URIs:[[:space:]]*|^deb(-src)?[[:space:]]+(\[[^]]*\][[:space:]]+)?)[a-z]+://[^[:space:]]+/debian/?([[:space:]]|$)' "$f" \
            | grep -oE '[a-z]+://[^[:space:]]+' | head -n1 && return 0
    done
    return 1
}

fetch_debian_source() {
    local mirror apt_dir opts
    mirror=$(debian_mirror) || return 1
    apt_dir=$WORK/apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$WORK/dl"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $DEB_SUITE main" >"$apt_dir/sources.list"
    opts=(-o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache" -o APT::Sandbox::User=root)
    step "fetching Debian source package caffe $DEB_VERSION ($DEB_SUITE, from $mirror)"
    run apt-get "${opts[@]}" update || return 1
    (cd "$WORK/dl" && run apt-get "${opts[@]}" source --download-only "caffe=$DEB_VERSION") || return 1
    step "unpacking source and applying Debian's patches"
    tar -xzf "$WORK"/dl/caffe_*.orig.tar.gz -C "$SRC"
    tar -xJf "$WORK"/dl/caffe_*.debian.tar.xz -C "$SRC"
}

unpack_tarball() {  # $1: .tar.gz/.tar.xz/.zip or directory; strips a single top-level folder
    local in=$1 tmp=$WORK/unpack
    rm -rf "$tmp" && mkdir -p "$tmp"
    if [ -d "$in" ]; then cp -a "$in"/. "$tmp"/
    elif [[ $in == *.zip ]]; then run unzip -q "$in" -d "$tmp"
    else tar -xf "$in" -C "$tmp"; fi
    if [ "$(ls -A "$tmp" | wc -l)" = 1 ] && [ -d "$tmp/$(ls -A "$tmp")" ]; then tmp=$tmp/$(ls -A "$tmp"); fi
    [ -f "$tmp/CMakeLists.txt" ] && [ -d "$tmp/src/caffe" ] || die "$in is not a Caffe source tree (no CMakeLists.txt / src/caffe)"
    cp -a "$tmp"/. "$SRC"/
}

apply_patches() {
    local p
    if [ -f "$SRC/debian/patches/series" ]; then
        while read -r p; do
            [ -n "$p" ] && [[ $p != \#* ]] || continue
            run patch -d "$SRC" -p1 -N -i "$SRC/debian/patches/$p" || die "Debian patch $p does not apply (see $LOG)"
        done <"$SRC/debian/patches/series"
    else
        # No Debian series (upstream tarball): the one Debian fix CMake needs for boost-python naming.
        for p in "$HERE"/caffe-patches/fallback/*.patch; do
            run patch -d "$SRC" -p1 -N -i "$p" || die "patch $(basename "$p") does not apply (see $LOG)"
        done
    fi
    for p in "$HERE"/caffe-patches/*.patch; do
        step "applying $(basename "$p")"
        run patch -d "$SRC" -p1 -N -i "$p" || die "patch $(basename "$p") does not apply (see $LOG)"
    done
}

rm -rf "$WORK" && mkdir -p "$WORK"
SRC=$WORK/src && mkdir -p "$SRC"
if [ -n "${CAFFE_SRC:-}" ]; then
    step "unpacking \$CAFFE_SRC=$CAFFE_SRC"
    unpack_tarball "$CAFFE_SRC"
elif ! fetch_debian_source; then
    step "no Debian source package reachable; downloading BVLC/caffe@${UPSTREAM_COMMIT:0:7} from GitHub"
    run curl -fL -o "$WORK/caffe.tar.gz" "https://github.com/BVLC/caffe/archive/$UPSTREAM_COMMIT.tar.gz" \
        || die "could not download Caffe's source; set CAFFE_SRC to a Caffe source tarball or directory"
    unpack_tarball "$WORK/caffe.tar.gz"
fi
apply_patches
# Only what the toolkit and a Caffe user of these nets run: libcaffe, pycaffe, `caffe` and the
# prototxt upgrade tools. Caffe's examples/ and its database/image tools (LMDB, LevelDB and
# OpenCV are off) and the deprecated tool stubs are left out of the build.
sed -i '/add_subdirectory(examples)/d' "$SRC/CMakeLists.txt"
find "$SRC/tools" -maxdepth 1 -name '*.cpp' ! -name caffe.cpp ! -name 'upgrade_*.cpp' -delete

# pycaffe is built for the venv's interpreter: its own headers, libpython and NumPy, so that
# Debian's python3-numpy headers (NumPy 1.x, /usr/include/python3.11) can never be picked up.
read -r PY_VER PY_INC PY_LIB NP_INC < <("$PYTHON" - <<'EOF'
import os, sysconfig, numpy
v = sysconfig.get_config_var
lib = os.path.join(v("LIBDIR"), v("LDLIBRARY"))
print("%d.%d" % __import__("sys").version_info[:2], sysconfig.get_paths()["include"], lib, numpy.get_include())
EOF
)
CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX"
    -DBUILD_docs=OFF -DBUILD_python=ON -DBUILD_python_layer=ON
    -DUSE_OPENCV=OFF -DUSE_LEVELDB=OFF -DUSE_LMDB=OFF -DUSE_CUDNN=OFF
    -Dpython_version="$PY_VER" -DPYTHON_EXECUTABLE="$PYTHON"
    -DPYTHON_INCLUDE_DIR="$PY_INC" -DPYTHON_LIBRARY="$PY_LIB" -DNUMPY_INCLUDE_DIR="$NP_INC"
    -DCMAKE_CXX_FLAGS="-isystem $NP_INC -isystem $PY_INC -Wno-deprecated-declarations -fopenmp")  # -fopenmp: caffe-patches/0002 (also on every C++ link line: libgomp)
if [ "${CAFFE_GPU:-0}" = 1 ]; then
    # Every real arch the toolchain compiles from sm_75 (CUDA 13's oldest) up, plus PTX of the
    # newest for GPUs after it (Caffe's own CUDA_ARCH lists stop at Pascal). With cuDNN
    # (caffe-patches/0006 ports Caffe's cuDNN layers to cuDNN 8/9) and NCCL (`-gpu all`), both
    # found in the toolkit's folders (tools/cuda_toolchain.sh links the PyPI wheels' in).
    CUDA_ROOT=${CUDA_ROOT:-$(bash "$HERE/cuda_toolchain.sh")}
    NCCL_LIB=$(ls "$CUDA_ROOT"/lib64/libnccl.so "$CUDA_ROOT"/lib/libnccl.so "$CUDA_ROOT"/targets/*/lib/libnccl.so 2>/dev/null | head -n1 || true)
    [ -f "$CUDA_ROOT/include/cudnn.h" ] && [ -f "$CUDA_ROOT/include/nccl.h" ] && [ -n "$NCCL_LIB" ] \
        || die "$CUDA_ROOT lacks cuDNN or NCCL (include/cudnn.h, include/nccl.h, libnccl.so)"
    IFS=';' read -r ARCH_BIN ARCH_PTX < <(CUDA_HOME=$CUDA_ROOT bash "$HERE/cuda_toolchain.sh" --archs)
    [ -n "$ARCH_BIN" ] || die "no GPU arch list from $CUDA_ROOT/bin/nvcc"
    step "CUDA toolkit $CUDA_ROOT ($("$CUDA_ROOT/bin/nvcc" --version | grep -o 'release [0-9.]*, V[0-9.]*')): sm_${ARCH_BIN// /, sm_} + PTX $ARCH_PTX"
    # The install's run path names the toolkit's lib64 (Caffe's CMake adds every link folder), so
    # the CUDA build runs here as it is; a GPU machine's own cuBLAS/cuRAND come first through
    # LD_LIBRARY_PATH (tools/gpu_check.sh).
    CMAKE_ARGS+=(-DCPU_ONLY=OFF -DUSE_CUDNN=ON -DUSE_NCCL=ON -DCUDA_TOOLKIT_ROOT_DIR="$CUDA_ROOT"
                 -DNCCL_INCLUDE_DIR="$CUDA_ROOT/include" -DNCCL_LIBRARIES="$NCCL_LIB"
                 -DCUDA_ARCH_NAME=Manual -DCUDA_ARCH_BIN="$ARCH_BIN" -DCUDA_ARCH_PTX="$ARCH_PTX")
else
    CMAKE_ARGS+=(-DCPU_ONLY=ON)
fi
case $BLAS in
    open) CMAKE_ARGS+=(-DBLAS=Open) ;;
    mkl)  # MKL from PyPI (mkl-devel, mkl-include) in its own prefix; single dynamic library mkl_rt.
        MKL_ROOT=$WORK/../mkl
        if [ ! -f "$MKL_ROOT/include/mkl.h" ]; then
            step "installing Intel MKL from PyPI (mkl-devel, mkl-include)"
            run "$PYTHON" -m pip install --no-cache-dir --prefix "$MKL_ROOT" mkl-devel mkl-include \
                || die "pip could not install mkl-devel/mkl-include (see $LOG)"
        fi
        [ -e "$MKL_ROOT/lib/libmkl_rt.so" ] || ln -sf "$(ls "$MKL_ROOT"/lib/libmkl_rt.so.* | head -n1)" "$MKL_ROOT/lib/libmkl_rt.so"
        mkdir -p "$MKL_ROOT/lib/intel64" && ln -sf "$MKL_ROOT"/lib/lib*.so* "$MKL_ROOT/lib/intel64/" 2>/dev/null || true
        CMAKE_ARGS+=(-DBLAS=MKL -DMKL_USE_SINGLE_DYNAMIC_LIBRARY=ON -DMKL_MULTI_THREADED=ON -DMKL_ROOT="$MKL_ROOT")
        export MKLROOT=$MKL_ROOT ;;
    *) die "unknown BLAS '$BLAS' (use open or mkl)" ;;
esac

if [ -n "${CAFFE_SELFTEST:-}" ]; then
    CMAKE_ARGS+=(-DBUILD_only_tests="${CAFFE_SELFTEST%%|*}")
fi

step "configuring with CMake (CPU_ONLY=$([ "${CAFFE_GPU:-0}" = 1 ] && echo OFF || echo ON), BLAS=$BLAS, Python $PY_VER)"
mkdir -p "$WORK/build"
run cmake -S "$SRC" -B "$WORK/build" "${CMAKE_ARGS[@]}" || die "CMake configuration failed"
grep -q "pycaffe" "$WORK/build/Makefile" 2>/dev/null || die "CMake did not enable pycaffe (boost-python for Python $PY_VER not found?)"

JOBS=${CAFFE_JOBS:-$(nproc)}
step "compiling libcaffe, tools and pycaffe with $JOBS jobs (a few minutes)"
run make -C "$WORK/build" -j"$JOBS" all || die "compilation failed"
step "installing into $PREFIX"
run make -C "$WORK/build" install || die "installation failed"
[ -x "$PREFIX/bin/caffe" ] || die "build finished but $PREFIX/bin/caffe is missing"
# Caffe's CMake writes absolute run paths (the prefix, then every folder it linked from). Those
# inside the cache folder (the prefix itself, the PyPI CUDA toolchain, MKL) are made relative to
# each file ($ORIGIN), so that the install works wherever the cache folder is copied: a Docker
# image takes the host's build of the same recipe.
step "making the install's run paths relative to the cache folder"
command -v patchelf >/dev/null || die "patchelf not found (apt-get install patchelf; tools/setup.sh installs it)"
CACHE_DIR=$(dirname "$PREFIX")
while IFS= read -r -d '' f; do
    rp=$(patchelf --print-rpath "$f" 2>/dev/null) || continue   # not an ELF file
    [ -n "$rp" ] || continue
    new=
    IFS=: read -ra dirs <<<"$rp"
    for d in "${dirs[@]}"; do
        case $d in "$CACHE_DIR"/*) d='$ORIGIN/'$(realpath -m --relative-to="$(dirname "$f")" "$d") ;; esac
        new=${new:+$new:}$d
    done
    run patchelf --set-rpath "$new" "$f"
done < <(find "$PREFIX/bin" "$PREFIX/lib" -type f \( -name '*.so*' -o -perm -u+x \) -print0)
"$PREFIX/bin/caffe" --version >>"$LOG" 2>&1 || die "the installed caffe does not run after relocation (see $LOG)"
if [ "${CAFFE_GPU:-0}" = 1 ]; then
    linked=$(ldd "$PREFIX/bin/caffe")
    for lib in libcudnn libnccl; do
        [[ $linked == *"$lib"* ]] || die "the CUDA build does not link $lib (CMake did not find it; see $LOG)"
    done
fi
if [ -n "${CAFFE_SELFTEST:-}" ]; then
    step "building Caffe's unit tests: test_{${CAFFE_SELFTEST%%|*}}.cpp"
    run make -C "$WORK/build" -j"$JOBS" test.testbin || die "the unit tests did not compile (see $LOG)"
    step "running them: --gtest_filter=${CAFFE_SELFTEST#*|}"
    # from the source folder, as Caffe's `make runtest` does (test data paths are relative to it)
    rc=0
    (cd "$SRC" && "$WORK/build/test/test.testbin" --gtest_filter="${CAFFE_SELFTEST#*|}") >"$WORK/selftest.log" 2>&1 || rc=$?
    cat "$WORK/selftest.log" >>"$LOG"
    grep -E '^\[ *(==========|PASSED|FAILED) *\]' "$WORK/selftest.log" || true
    [ "$rc" = 0 ] || die "Caffe's unit tests failed (exit $rc; see $LOG)"
fi
rm -rf "$WORK"
step "done"
