#!/usr/bin/env bash
# Try the CUDA build of Caffe on a GPU machine that has no setup of ours (no apt, no network,
# no pycaffe for its Python): pack what it needs here, run it there, evaluate the result here.
#
# usage: tools/gpu_check.sh pack [DIR]            here; DIR default .gpu-bundle (git-ignored)
#        tools/gpu_check.sh run BUNDLE [OUTDIR]   there, from the repository root; OUTDIR default $OUT
#
# pack  copies the venv's CUDA build (tools/setup.sh --cuda, or --cuda --build-only): the caffe
#       binary, libcaffe and every library they load except the C/C++ runtime (glibc, libstdc++,
#       libgcc_s) and NVIDIA's cuBLAS/cuRAND/cuDNN/NCCL/driver, which the GPU machine has and which are
#       never carried (cuBLAS alone is ~600 MB); libcudart is carried. Plus the T91 and Set5
#       images, and the FSRCNN x3 train net and Adam solver (srcaffe.nets, srcaffe.solvers; run
#       sets only their max_iter and solver_mode). All in DIR/bundle.tar.gz (libraries stripped
#       of their symbol tables; OpenBLAS and libpython make it too large uncompressed) beside
#       DIR/BUNDLE.txt. Prints the
#       bundle's size; refuses to reuse a folder that is not a bundle.
# run   finds cuBLAS/cuRAND on that machine ($CUDA_LIBS, $CUDA_HOME, /usr/local/cuda*, its
#       Python's nvidia-* wheels, the ld.so cache, this toolkit's PyPI toolchain), prepares the
#       FSRCNN x3 HDF5 data with tools/prepare_data.py (python3 with numpy, h5py, Pillow; no
#       caffe), runs `caffe device_query`, `caffe time` on the FSRCNN x3 train net and trains it
#       with the bundle's net and Adam solver for a fixed number of iterations. Without a
#       visible GPU it runs the same steps in CPU mode (that is how it is tested on a machine
#       without one), unless GPU_CHECK_MODE=gpu. OUTDIR gets at most 7
#       files: summary.txt, device_query.log, time.log, prepare.log, train.log, solver.prototxt
#       and fsrcnn_x3_iter_N.caffemodel. Back here:
#         python tools/evaluate.py --model OUTDIR/fsrcnn_x3_iter_N.caffemodel --dataset Set5 --scale 3
#
# env (run): GPU_CHECK_MODE=auto|gpu|cpu (default auto), GPU_CHECK_ITERS (default 2000 on a GPU,
#   60 on the CPU), GPU_CHECK_TRAIN_LIMIT seconds of training before Caffe is stopped with a
#   snapshot (default 170), GPU_CHECK_TIME_ITERS (`caffe time` iterations, default 50 / 5),
#   GPU_CHECK_AUG=1|0 (the paper's augmented data, default 1), GPU_ID (default 0),
#   CUDA_LIBS (folders holding libcublas/libcurand, ':'-separated), PYTHON (default python3)
set -euo pipefail
# The steps are srcaffe/gpu_check.py; pack needs the venv's pycaffe, run only $PYTHON.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
gpu_check() {  # $1: the interpreter
    PYTHONPATH=$SRCAFFE_REPO${PYTHONPATH:+:$PYTHONPATH} "$1" -m srcaffe.gpu_check "${@:2}"
}
case ${1:-} in
    pack) [ -x "$SRCAFFE_VENV/bin/python" ] || die "no venv at $SRCAFFE_VENV: run tools/setup.sh --cuda first"
          gpu_check "$SRCAFFE_VENV/bin/python" "$@" ;;
    run) gpu_check "${PYTHON:-python3}" "$@" ;;
    -h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
