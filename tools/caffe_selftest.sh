#!/usr/bin/env bash
# Build Caffe from the toolkit's recipe (tools/build_caffe.sh: Debian's source, Debian's patches,
# tools/caffe-patches/*.patch) in a temporary folder, then build and run BVLC Caffe's own gtest
# suites on that patched source: the ones covering what the patches change. Nothing is installed
# and the build cache is not touched. Not part of the pytest suite: it compiles Caffe once more
# (about 10 minutes on 2 cores) and runs the CPU tests (a few minutes).
#
# usage: tools/caffe_selftest.sh [--blas open|mkl] [--filter GTEST_FILTER] [--files LIST] [-h]
#   --files   test sources, without test_ and .cpp (default: the convolution, deconvolution,
#             im2col, net and solver tests, PReLU/ReLU's neuron tests for patch 0002 and the
#             batched convolution's int limit, conv_batch_limit, for 0003; in a CUDA build with
#             cuDNN the convolution and neuron tests include Caffe's cuDNN layers)
#   --filter  gtest filter (default: '*Convolution*:*Deconvolution*:*Im2col*:*Net*:*Solver*:*PReLU*:*ReLU*:*ConvBatch*'
#             minus the GPU tests in a CPU build)
# env: CAFFE_JOBS (default: number of cores), CAFFE_GPU=1, CAFFE_SRC, SELFTEST_LOG (default:
#      a file in the temporary folder, printed at the end; kept when the tests fail)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
BLAS=${SRCAFFE_BLAS:-open}
FILES=convolution_layer,deconvolution_layer,im2col_layer,im2col_kernel,net,solver,solver_factory,gradient_based_solver,neuron_layer,conv_batch_limit
FILTER='*Convolution*:*Deconvolution*:*Im2col*:*Net*:*Solver*:*PReLU*:*ReLU*:*ConvBatch*'

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
while [ $# -gt 0 ]; do
    case $1 in
        --blas) [ $# -ge 2 ] || die "--blas needs a value"; BLAS=$2; shift 2 ;;
        --filter) [ $# -ge 2 ] || die "--filter needs a value"; FILTER=$2; shift 2 ;;
        --files) [ $# -ge 2 ] || die "--files needs a value"; FILES=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see tools/caffe_selftest.sh --help)" ;;
    esac
done
[ "${CAFFE_GPU:-0}" = 1 ] || FILTER="$FILTER-*GPU*"
PY=${VENV:-$REPO/.venv}/bin/python
[ -x "$PY" ] || die "$PY missing: run tools/setup.sh first (pycaffe is built for the venv's Python)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/caffe-selftest.XXXXXX")
LOG=${SELFTEST_LOG:-$TMP/selftest.log}
trap 'rm -rf "$TMP/prefix" "$TMP/prefix.work"' EXIT
echo "Caffe self-test: recipe $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?'), patches: $(cd "$HERE/caffe-patches" && ls *.patch | tr '\n' ' ')"
echo "log: $LOG"
rc=0
CAFFE_SELFTEST="$FILES|$FILTER" bash "$HERE/build_caffe.sh" "$TMP/prefix" "$BLAS" "$PY" "$LOG" || rc=$?
if [ "$rc" = 0 ]; then
    echo "Caffe self-test passed: $(grep -E '^\[  PASSED  \]' "$LOG" | tail -n1)"
    [ -n "${SELFTEST_LOG:-}" ] || rm -rf "$TMP"
else
    grep -E '^\[  FAILED  \]' "$LOG" | sort -u || true
    echo "Caffe self-test FAILED (log kept: $LOG)" >&2
fi
exit "$rc"
