#!/usr/bin/env bash
# Find or install a CUDA toolchain and print its root (a CUDA_TOOLKIT_ROOT_DIR for CMake:
# bin/nvcc, include/, lib64/ with libcudart, libcublas, libcurand, libcudnn and libnccl).
#
# usage: tools/cuda_toolchain.sh [--archs] [-h]
#   (no option)  print the toolchain root
#   --archs      print "BIN;PTX" for CMake's CUDA_ARCH_BIN / CUDA_ARCH_PTX: GPU code for every
#                arch nvcc supports from sm_75 up, and PTX of the newest for later GPUs. A cubin
#                runs on its major version's higher minors (sm_80 code on sm_86/sm_89), so by
#                default one cubin per major (the lowest minor nvcc lists) covers them all at
#                half the compile time of one per arch; SRCAFFE_CUDA_ARCHS=all builds one per arch,
#                SRCAFFE_CUDA_ARCHS="90" (or "86 90;90") exactly those (e.g. a quick build for one GPU)
#
# Order: $CUDA_HOME (or $CUDA_PATH), else `nvcc` on PATH, else the CUDA 13.0 wheels pinned in
# tools/cuda-toolchain.txt (PyPI), installed once into $SRCAFFE_CACHE/cuda-13.0/ (default
# ~/.cache/srcaffe/cuda-13.0): wheels/ holds the pip install, root/ the assembled toolkit root;
# root/bin/nvcc works like any installed nvcc. A changed requirements file reinstalls it.
# env: CUDA_HOME, CUDA_PATH, SRCAFFE_CACHE, PYTHON (runs pip; default python3), LOG (pip's output),
#      SRCAFFE_CUDA_ARCHS (--archs: family (default), all, or an explicit "BIN[;PTX]" list)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"
CACHE=$SRCAFFE_CACHE_DIR
TC=$CACHE/cuda-13.0
REQ=$HERE/cuda-toolchain.txt
PYTHON=${PYTHON:-python3}
LOG=${LOG:-/dev/stderr}
MIN_SM=75   # CUDA 13's oldest target (Turing)


ARCHS=0
case ${1:-} in
    --archs) ARCHS=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) die "unknown option '$1' (see tools/cuda_toolchain.sh --help)" ;;
esac

# The wheels put everything under nvidia/cu13/; nvcc finds cicc, libdevice and the libraries
# relative to its own folder (nvcc.profile: ../nvvm, ../lib64), so the root is a real folder
# of links with a *copy* of nvcc.profile next to the linked tools.
# cuDNN's and NCCL's headers and libraries are linked in beside the toolkit's.
assemble_root() {  # $1: wheels' nvidia folder, $2: root to (re)create
    local nv=$1 root=$2 f
    rm -rf "$root" && mkdir -p "$root/bin" "$root/include" "$root/lib64"
    for f in "$nv"/cu13/bin/*; do
        [ "$(basename "$f")" = nvcc.profile ] && cp "$f" "$root/bin/" || ln -s "$f" "$root/bin/"
    done
    for f in "$nv"/cu13/include/* "$nv"/cudnn/include/* "$nv"/nccl/include/*; do ln -s "$f" "$root/include/"; done
    ln -s "$nv/cu13/nvvm" "$root/nvvm"
    for f in "$nv"/cu13/lib/* "$nv"/cudnn/lib/* "$nv"/nccl/lib/*; do ln -s "$f" "$root/lib64/"; done
    # Unversioned names for the linker (the wheels ship only the sonames).
    for f in "$root"/lib64/lib*.so.*; do
        f=$(basename "$f"); [ -e "$root/lib64/${f%%.so.*}.so" ] || ln -s "$f" "$root/lib64/${f%%.so.*}.so"
    done
}

# A system toolkit is used only when it can link Caffe: nvcc plus cuBLAS, cuRAND, cuDNN and NCCL
# (headers and libraries, all in the toolkit's folders); a bare nvcc (some images ship only the
# compiler) falls through to the wheels.
complete() {  # $1: toolkit root
    local d
    for d in cublas_v2.h curand.h cudnn.h nccl.h; do [ -f "$1/include/$d" ] || return 1; done
    [ -x "$1/bin/nvcc" ] || return 1
    for d in "$1/lib64" "$1/lib" "$1"/targets/*/lib; do
        compgen -G "$d/libcublas.so*" >/dev/null && compgen -G "$d/libcurand.so*" >/dev/null \
            && compgen -G "$d/libcudnn.so*" >/dev/null && compgen -G "$d/libnccl.so*" >/dev/null && return 0
    done
    return 1
}

find_root() {
    local root here
    for root in "${CUDA_HOME:-}" "${CUDA_PATH:-}"; do
        [ -n "$root" ] || continue
        complete "$root" || die "CUDA_HOME/CUDA_PATH=$root lacks bin/nvcc, cuBLAS, cuRAND, cuDNN or NCCL (unset it to use the PyPI toolchain)"
        echo "$root"; return
    done
    if command -v nvcc >/dev/null 2>&1; then
        root=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
        # /usr/local/bin/nvcc may be a wrapper script: ask nvcc where it lives.
        here=$(cd /tmp && echo 'int main(){}' | nvcc -dryrun -x cu -c - -o /dev/null 2>&1 | sed -n 's/^#\$ _HERE_=//p' | head -n1)
        [ -n "$here" ] && root=$(readlink -f "$here/..")
        if complete "$root"; then echo "$root"; return; fi
        echo "note: $(command -v nvcc) ($root) lacks cuBLAS, cuRAND, cuDNN or NCCL: using the PyPI CUDA toolchain instead" >&2
    fi
    local want f
    want=$(sha256sum "$REQ" | cut -c1-16)
    if [ "$(cat "$TC/.complete" 2>/dev/null)" != "$want" ]; then
        mkdir -p "$TC"
        exec 8>"$TC.lock"
        flock 8   # one install at a time; a second caller reuses it
        if [ "$(cat "$TC/.complete" 2>/dev/null)" != "$want" ]; then
            echo "installing the CUDA 13.0 toolchain from PyPI (tools/cuda-toolchain.txt, ~2 GB) into $TC" >&2
            rm -rf "$TC/wheels" "$TC/root" "$TC/.complete"
            "$PYTHON" -m pip install -q --disable-pip-version-check --no-cache-dir --target "$TC/wheels" -r "$REQ" >>"$LOG" 2>&1 \
                || die "pip could not install the CUDA toolchain (tools/cuda-toolchain.txt; PyPI reachable?)"
            [ -x "$TC/wheels/nvidia/cu13/bin/nvcc" ] || die "the CUDA wheels hold no nvidia/cu13/bin/nvcc"
            for f in cudnn/include/cudnn.h nccl/include/nccl.h; do
                [ -f "$TC/wheels/nvidia/$f" ] || die "the CUDA wheels hold no nvidia/$f"
            done
            assemble_root "$TC/wheels/nvidia" "$TC/root"
            echo "$want" >"$TC/.complete"
        fi
        exec 8>&-
    fi
    echo "$TC/root"
}

ROOT=$(find_root)
"$ROOT/bin/nvcc" --version >/dev/null 2>&1 || die "$ROOT/bin/nvcc does not run"
if [ "$ARCHS" = 1 ]; then
    # Real archs only (sm_NN; no sm_90a-style variants), from sm_75 up.
    bins=($("$ROOT/bin/nvcc" --list-gpu-code | sed -n 's/^sm_\([0-9]\+\)$/\1/p' | awk -v m=$MIN_SM '$1 >= m' | sort -n))
    [ ${#bins[@]} -gt 0 ] || die "$ROOT/bin/nvcc lists no GPU arch from sm_$MIN_SM up"
    newest=${bins[-1]}
    case ${SRCAFFE_CUDA_ARCHS:-family} in
        all) ;;
        family) bins=($(printf '%s\n' "${bins[@]}" | awk '!seen[int($1 / 10)]++')) ;;   # sorted: lowest minor first
        *[!0-9\ \;]*) die "SRCAFFE_CUDA_ARCHS must be family, all or a list like '86 90;90', not '$SRCAFFE_CUDA_ARCHS'" ;;
        *) bins=(${SRCAFFE_CUDA_ARCHS%%;*}); newest=${SRCAFFE_CUDA_ARCHS#*;}; newest=${newest##* } ;;
    esac
    echo "${bins[*]};$newest"
else
    echo "$ROOT"
fi
