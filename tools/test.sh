#!/usr/bin/env bash
# The test command: sets up what the tests need (apt packages, venv, a real Caffe: tools/setup.sh,
# cached outside the clone), then runs the pytest suite with the venv's interpreter.
#   tools/test.sh            the full suite (what CI runs: .ci/run)
#   tools/test.sh --fast     the fast tier: no training, under a minute once set up
# Extra arguments go to pytest (e.g. tools/test.sh -k bicubic -x).
# It also builds the CUDA variant of Caffe (tools/setup.sh --cuda --build-only, for sm_90 only unless
# SRCAFFE_TEST_CUDA_ARCHS says otherwise: cached, no GPU needed; the venv keeps the build it links)
# for tests/test_cuda_build.py;
# SRCAFFE_SKIP_CUDA=1 skips both on a CPU-only machine. CI runs them.
# tests/test_docker.py builds the CPU Docker image and an sm_90 GPU image (docker/build.sh:
# installs docker.io and starts dockerd when no engine answers; ~45 min on 2 cores the first
# time, Docker's layer cache after) and runs README's Docker commands in them;
# SRCAFFE_SKIP_DOCKER=1 skips it. CI runs it.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARGS=()
[ "${1:-}" = --fast ] && { shift; ARGS=(-m "not slow"); }
bash "$REPO/tools/setup.sh"
if [ "${SRCAFFE_SKIP_CUDA:-0}" != 1 ]; then
    # The tests run the CUDA build in CPU mode: one GPU arch is enough to compile-check every .cu
    # file and link libcudart (the default, one cubin per major from sm_75, is ~3x the compile).
    export SRCAFFE_CUDA_ARCHS=${SRCAFFE_TEST_CUDA_ARCHS:-90;90}   # the tests' own setup.sh calls too
    bash "$REPO/tools/setup.sh" --cuda --build-only
    bash "$REPO/tools/setup.sh" --cpu --build-only   # what the CUDA build's losses are compared with
fi
VENV=${VENV:-${VIRTUAL_ENV:-$REPO/.venv}}
cd "$REPO"
set +e
"$VENV/bin/python" -m pytest "${ARGS[@]}" "$@"   # no paths given: pytest.ini's testpaths (tests/)
rc=$?
set -e
# pytest's 5 means "no tests collected": that is a failure here, never a silent pass.
[ "$rc" = 5 ] && echo "error: pytest collected no tests" >&2 && exit 1
exit "$rc"
