#!/usr/bin/env bash
# Train FSRCNN / SRCNN with real Caffe, the authors' way.
#
# usage: ./run_train.sh MODEL [options]
#   MODEL            fsrcnn (56,12,4) | fsrcnn-s (32,5,1) | srcnn (9-1-5) | srcnn-935 | srcnn-955
# options:
#   --scale N        2, 3 or 4 (default 3)
#   --iters N        train up to iteration N (default: the solver's max_iter)
#   --solver NAME    adam (default: fast on CPUs) or sgd (the authors' SGD, momentum 0.9, fixed lr)
#   --snapshot FILE  resume from a .solverstate (continues in that run's folder)
#   --resume         resume from the newest .solverstate of --run-dir
#   --weights FILE   start from the weights of a .caffemodel (fine-tuning)
#   --deconv-only    train only the deconvolution: FSRCNN x2/x4 from an x3 model, the paper's way
#                    (./run_train.sh fsrcnn --scale 2 --deconv-only --weights fsrcnn_x3.caffemodel)
#   --base-lr LR     this segment's learning rate (e.g. lower, to finish); default: the solver's,
#                    or when resuming, the one the run's last segment used
#   --init NAME      a new run's weights: authors (the prototxt's fillers) or he (SRCNN: msra
#                    fillers; the default under Adam, where gaussian(0.001) leaves ReLUs dead)
#   --run-dir DIR    run folder (default runs/MODEL-xN-DATE-TIME/); never overwritten
#   --no-aug         FSRCNN without the rotation/downscale augmentation (--aug forces it on)
#   --data DIR       a prepared data folder (tools/prepare_data.py, or one class of tools/mmsr.py)
#   --engine NAME    Caffe's -engine (Intel Caffe's MKL2017 / MKLDNN), if the binary has it
#   --gpu ID|all     Caffe's -gpu, for a CUDA build of Caffe
#   -h, --help       this text
#
# First use sets up the venv and Caffe (tools/setup.sh) and prepares the HDF5 data
# (tools/prepare_data.py). Ctrl-C stops with a snapshot; the command to resume is printed.
# Each run folder keeps its snapshots, train.log, and the exact net and solver of every segment.
# Plot a run: python tools/plot_log.py RUN_DIR/train.log
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "error: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
need() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see ./run_train.sh --help)"; }

[ $# -ge 1 ] || { usage >&2; exit 2; }
case $1 in -h|--help) usage; exit 0 ;; -*) die "the first argument is the model (see ./run_train.sh --help)" ;; esac
MODEL=$1; shift
ARGS=("$MODEL") ENGINE= GPU=
while [ $# -gt 0 ]; do
    case $1 in
        --scale|--iters|--solver|--snapshot|--weights|--run-dir|--data|--base-lr|--init) need "$@"; ARGS+=("$1" "$2"); shift 2 ;;
        --resume) ARGS+=(--resume); shift ;;
        --deconv-only) ARGS+=(--deconv-only); shift ;;
        --no-aug) ARGS+=(--augment no); shift ;;
        --aug) ARGS+=(--augment yes); shift ;;
        --engine) need "$@"; ENGINE=$2; shift 2 ;;
        --gpu) need "$@"; GPU=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see ./run_train.sh --help)" ;;
    esac
done

bash "$REPO/tools/setup.sh" >&2
VENV=${VENV:-${VIRTUAL_ENV:-$REPO/.venv}}
PY=$VENV/bin/python CAFFE=$VENV/bin/caffe

if [ -n "$ENGINE" ] && ! "$CAFFE" train --help 2>&1 | grep -q -- '-engine'; then
    die "--engine $ENGINE: this Caffe ($(readlink -f "$CAFFE")) has no -engine option; MKL2017/MKLDNN engines exist only in Intel's Caffe (install it and set CAFFE_ROOT)"
fi
if [ -n "$GPU" ] && ! ldd "$(readlink -f "$CAFFE")" 2>/dev/null | grep -q libcudart; then
    die "--gpu $GPU: this Caffe ($(readlink -f "$CAFFE")) is a CPU-only build; use a CUDA build (docker/Dockerfile.gpu, or CAFFE_ROOT)"
fi

PLAN=$("$PY" "$REPO/tools/prepare_run.py" "${ARGS[@]}") || exit $?
while IFS='=' read -r key value; do
    case $key in RUN_DIR|SOLVER|START_ITER|MAX_ITER|SNAPSHOT|WEIGHTS|LOG|RESUME_ARGS) printf -v "$key" '%s' "$value" ;; esac
done <<<"$PLAN"

# Caffe's "stop" breaks out of training and then takes its after-training snapshot; its
# "snapshot" would snapshot and go on training. SIGHUP (e.g. a closed terminal) snapshots and goes on.
CMD=("$CAFFE" train -solver "$SOLVER" -sigint_effect stop -sighup_effect snapshot)
[ -n "$SNAPSHOT" ] && CMD+=(-snapshot "$SNAPSHOT")
[ -n "$WEIGHTS" ] && CMD+=(-weights "$WEIGHTS")
[ -n "$GPU" ] && CMD+=(-gpu "$GPU")
[ -n "$ENGINE" ] && CMD+=(-engine "$ENGINE")
echo "run folder: $RUN_DIR"
echo "training $MODEL from iteration $START_ITER to $MAX_ITER; log: $LOG (Ctrl-C stops with a snapshot)"
printf '# %s\n' "$(date '+%F %T') $(printf '%q ' "${CMD[@]}")" >>"$LOG"

set +e
(cd "$RUN_DIR" && GLOG_logtostderr=1 GLOG_minloglevel=0 exec "${CMD[@]}") 2>&1 \
    | "$PY" -m srcaffe.caffelog --log "$LOG" --max-iter "$MAX_ITER" --start-iter "$START_ITER"
status=("${PIPESTATUS[@]}")
set -e

latest=$(ls -t "$RUN_DIR"/*.solverstate 2>/dev/null | head -n1 || true)
if [ "${status[0]}" != 0 ]; then
    echo "error: caffe train failed (exit ${status[0]}); last lines of $LOG:" >&2
    grep -E '^[EF][0-9]|Check failed|Error' "$LOG" | tail -n 5 >&2 || tail -n 5 "$LOG" >&2
    exit 1
fi
if [ -n "$latest" ]; then
    echo "snapshot: $latest"
    echo "resume:   ./run_train.sh $MODEL $RESUME_ARGS --snapshot $latest --iters N"
fi
echo "plot:     $PY $REPO/tools/plot_log.py $LOG"
