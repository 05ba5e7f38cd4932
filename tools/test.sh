#!/usr/bin/env bash
# The test command: sets up what the tests need (apt packages, venv, a real Caffe: tools/setup.sh,
# cached outside the clone), then runs the pytest suite with the venv's interpreter.
#
# usage: tools/test.sh [--fast] [--no-cuda] [--no-docker] [-h] [--] [PYTEST ARGS...]
#   (no option)  the full suite: what CI runs (.ci/run)
#   --fast       the fast tier, -m "not slow and not cuda and not docker": nothing trains, no CUDA
#                build and no Docker image; it needs only the CPU setup (a few minutes once set up)
#   --no-cuda    skip the `cuda` tests and build no CUDA Caffe (a CPU-only machine; the same as
#                SRCAFFE_SKIP_CUDA=1)
#   --no-docker  skip the `docker` tests (a machine without Docker; the same as SRCAFFE_SKIP_DOCKER=1)
#   -h, --help   this text
# Every other argument, and everything after --, goes to pytest: tools/test.sh -k bicubic -x,
# tools/test.sh tests/test_predict.py, tools/test.sh -m cuda.
#
# The tiers are pytest marks (pytest.ini): `slow` (trains, or runs a whole tool over datasets),
# `cuda` (the CUDA build of Caffe), `docker` (the Docker images). The tests run in parallel
# workers (pytest-xdist: one per core, at most 4, one thread each; -n 0 runs them in this process).
# Before any CUDA build, the selection is collected: tools/setup.sh --cuda --build-only (sm_90
# only unless SRCAFFE_TEST_CUDA_ARCHS says otherwise: cached, no GPU needed; ~25 min on 2 cores the
# first time) runs only when a selected test is marked `cuda`. With no -m given it compiles in the
# background at low priority, and the GPU image after it, while the tests marked neither `cuda`
# nor `docker` run; those two marks run after it, in a second pytest run (once everything is
# cached, all of it is one run). The `docker` tests build the CPU and sm_90 GPU images with
# docker/build.sh, which puts this machine's build of the same recipe into them
# (docs/testing.md); it installs docker.io and starts dockerd when no engine answers.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
REPO=$SRCAFFE_REPO

# All of this script's own options first, before any setup or build.
ARGS=() PYTEST=()
while [ $# -gt 0 ]; do
    case $1 in
        --fast) ARGS=(-m "not slow and not cuda and not docker"); shift ;;
        --no-cuda) export SRCAFFE_SKIP_CUDA=1; shift ;;
        --no-docker) export SRCAFFE_SKIP_DOCKER=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; PYTEST+=("$@"); break ;;
        *) PYTEST+=("$1"); shift ;;
    esac
done

bash "$REPO/tools/setup.sh"
VENV=$SRCAFFE_VENV
cd "$REPO"
if [ "${SRCAFFE_SKIP_CUDA:-0}" != 1 ]; then
    # The tests run the CUDA build in CPU mode: one GPU arch is enough to compile-check every .cu
    # file and link libcudart (the default, one cubin per major from sm_75, is ~3x the compile).
    export SRCAFFE_CUDA_ARCHS=${SRCAFFE_TEST_CUDA_ARCHS:-90;90}   # the tests' own setup.sh calls too
    # Which marks the selected tests carry (tests/conftest.py writes them on a --collect-only run);
    # a collection error shows up in the real run below.
    plan=$(mktemp)
    trap 'rm -f "$plan"' EXIT
    SRCAFFE_TEST_PLAN=$plan "$VENV/bin/python" -m pytest --collect-only -q -p no:cacheprovider \
        "${ARGS[@]}" "${PYTEST[@]}" >/dev/null 2>&1 || true
    marked() {   # whether a selected test carries the mark $1
        "$VENV/bin/python" -c 'import json, sys; sys.exit(not any(sys.argv[2] in t["marks"] for t in json.load(open(sys.argv[1])).values()))' \
            "$plan" "$1" 2>/dev/null
    }
    if marked cuda; then
        bash "$REPO/tools/setup.sh" --cpu --build-only   # what the CUDA build's losses are compared with
        if [ ${#ARGS[@]} = 0 ] && ! printf '%s\n' "${PYTEST[@]}" | grep -qx -- '-m'; then
            # No marks chosen: the CUDA build (tens of minutes the first time, seconds once cached)
            # compiles at low priority while the tests that need neither it nor an image run,
            # and the GPU image is made from it right after; the `cuda` and `docker` tests come
            # after both. Once everything is cached, all of it is one pytest run.
            CUDA_LOG=$SRCAFFE_CACHE_DIR/test-cuda-build.log
            mkdir -p "$SRCAFFE_CACHE_DIR"
            images=0
            [ "${SRCAFFE_SKIP_DOCKER:-0}" != 1 ] && marked docker && images=1
            say "building the CUDA variant in the background (log: $CUDA_LOG); the other tests run meanwhile"
            IMAGES=${SRCAFFE_TEST_IMAGES:-srcaffe}
            nice -n 19 bash -c 'bash "$1/tools/setup.sh" --cuda --build-only || exit
                                [ "$2" = 0 ] || bash "$1/docker/build.sh" --gpu --cuda-archs "90;90" --tag "$3:gpu-sm90"' \
                _ "$REPO" "$images" "$IMAGES" >"$CUDA_LOG" 2>&1 &
            CUDA_PID=$!
            if [ "$images" = 1 ]; then
                # The CPU image needs only the CPU build: its layers (apt, pip) are made meanwhile
                # too, and the `docker` tests' own builds of the images then come from Docker's cache.
                nice -n 19 bash "$REPO/docker/build.sh" --tag "$IMAGES:cpu" \
                    >"$SRCAFFE_CACHE_DIR/test-cpu-image.log" 2>&1 &
                IMAGE_PID=$!
            fi
        else
            bash "$REPO/tools/setup.sh" --cuda --build-only
        fi
    fi
fi
# The tests run in parallel workers (pytest-xdist), one per core up to 4, unless the arguments
# choose otherwise (-n, -p no:xdist, or options that need one process: -s, --pdb).
XDIST=(-n auto --maxprocesses 4 --dist loadgroup)
for a in "${PYTEST[@]}"; do
    case $a in -n|-n[0-9]*|--numprocesses*|--dist*|no:xdist|-pno:xdist|-s|--capture=no|--pdb|--trace) XDIST=() ;; esac
done
# pytest's 5 means "no tests collected": a failure here, never a silent pass.
py_test() { "$VENV/bin/python" -m pytest "${XDIST[@]}" "$@"; }   # no paths given: pytest.ini's testpaths (tests/)
background() {   # whether a background build still runs
    kill -0 "$CUDA_PID" 2>/dev/null || { [ -n "${IMAGE_PID:-}" ] && kill -0 "$IMAGE_PID" 2>/dev/null; }
}
wait_builds() {   # the background builds' ends; a failure shows again in the tests that need them
    wait "$CUDA_PID" || { tail -n 5 "$CUDA_LOG" >&2; say "the CUDA build or the GPU image failed (log: $CUDA_LOG)"; }
    # the image build holds docker/build.sh's lock, which the `docker` tests check is free
    [ -z "${IMAGE_PID:-}" ] || wait "$IMAGE_PID" || say "the CPU image's early build failed (log: $SRCAFFE_CACHE_DIR/test-cpu-image.log)"
}
rc=0
if [ -n "${CUDA_PID:-}" ]; then
    # cached builds and images end within seconds: then there is nothing to wait for
    for _ in $(seq 90); do background || break; sleep 1; done
    if ! background; then
        wait_builds
        py_test "${PYTEST[@]}" || rc=$?
    else
        py_test -m "not cuda and not docker" "${PYTEST[@]}" || rc=$?
        wait_builds
        rc2=0
        py_test -m "cuda or docker" "${PYTEST[@]}" || rc2=$?
        # one run collecting nothing is fine (a file of `cuda` tests alone), both is not
        if [ "$rc" = 5 ]; then rc=$rc2; elif [ "$rc2" != 5 ] && [ "$rc" = 0 ]; then rc=$rc2; fi
    fi
else
    py_test "${ARGS[@]}" "${PYTEST[@]}" || rc=$?
fi
[ "$rc" = 5 ] && echo "error: pytest collected no tests" >&2 && exit 1
exit "$rc"
