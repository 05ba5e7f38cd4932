#!/usr/bin/env bash
# Try the CUDA build of Caffe on a GPU machine that has no setup of ours (no apt, no network,
# no pycaffe for its Python): pack what it needs here, run it there, evaluate the result here.
#
# usage: tools/gpu_check.sh pack [DIR]            here; DIR default .gpu-bundle (git-ignored)
#        tools/gpu_check.sh run BUNDLE [OUTDIR]   there, from the repository root; OUTDIR default $OUT
#
# pack  copies the venv's CUDA build (tools/setup.sh --cuda, or --cuda --build-only): the caffe
#       binary, libcaffe and every library they load except the C/C++ runtime (glibc, libstdc++,
#       libgcc_s) and NVIDIA's cuBLAS/cuRAND/cuDNN/driver, which the GPU machine has and which are
#       never carried (cuBLAS alone is ~600 MB); libcudart is carried. Plus the T91 and Set5
#       images. All in DIR/bundle.tar.gz (libraries stripped of their symbol tables; OpenBLAS
#       and libpython make it too large uncompressed) beside DIR/BUNDLE.txt. Prints the
#       bundle's size; refuses to reuse a folder that is not a bundle.
# run   finds cuBLAS/cuRAND on that machine ($CUDA_LIBS, $CUDA_HOME, /usr/local/cuda*, its
#       Python's nvidia-* wheels, the ld.so cache, this toolkit's PyPI toolchain), prepares the
#       FSRCNN x3 HDF5 data with tools/prepare_data.py (python3 with numpy, h5py, Pillow; no
#       caffe), runs `caffe device_query`, `caffe time` on the FSRCNN x3 train net and trains it
#       with the generated net and Adam solver (prototxt/, solvers/) for a fixed number of
#       iterations. Without a visible GPU it runs the same steps in CPU mode (that is how it is
#       tested on a machine without one), unless GPU_CHECK_MODE=gpu. OUTDIR gets at most 7
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

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
MARK=BUNDLE.txt   # marks a folder as a bundle of this script
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Loaded by the GPU machine's own copies: the C/C++ runtime, and NVIDIA's libraries there.
SYSTEM_LIBS='^(linux-vdso|ld-linux|libc|libm|libdl|librt|libpthread|libresolv|libstdc\+\+|libgcc_s)\.so'
NVIDIA_LIBS='^lib(cublas|cublasLt|curand|cudnn|cuda|nvidia-.*)\.so'

# ---- pack -------------------------------------------------------------------------------------
pack() {
    local dir=${1:-$REPO/.gpu-bundle} venv prefix caffe lib name path need
    venv=${VENV:-${VIRTUAL_ENV:-$REPO/.venv}}
    prefix=$(sed -n 's/^prefix=//p' "$venv/.srcaffe-cuda" 2>/dev/null || true)
    [ -n "$prefix" ] && [ -x "$prefix/bin/caffe" ] \
        || die "$venv has no CUDA build of Caffe: run tools/setup.sh --cuda (or --cuda --build-only) first"
    caffe=$prefix/bin/caffe
    # Not `ldd | grep -q` under pipefail: grep leaves at the first match and ldd dies of SIGPIPE.
    grep -q libcudart <<<"$(ldd "$caffe")" || die "$caffe does not link libcudart: not a CUDA build"
    if [ -e "$dir" ]; then
        [ -f "$dir/$MARK" ] || [ -z "$(ls -A "$dir" 2>/dev/null)" ] \
            || die "$dir exists and is not a bundle of tools/gpu_check.sh; refusing to overwrite it"
    fi
    local tmp=$dir.tmp.$$ stage
    stage=$tmp/stage
    rm -rf "$tmp" && mkdir -p "$stage/bin" "$stage/lib" "$stage/datasets"
    trap 'rm -rf "$tmp"' EXIT
    cp "$caffe" "$stage/bin/caffe"
    need=()
    # Every library the binary loads, by soname, from where it loads it here.
    while read -r name path; do
        if [[ $name =~ $SYSTEM_LIBS ]]; then continue; fi
        if [[ $name =~ $NVIDIA_LIBS ]]; then need+=("$name"); continue; fi
        [ -f "$path" ] || die "$caffe needs $name, which is not found here"
        cp -L "$path" "$stage/lib/$name"
        # Copies only: symbol tables are not needed to run (libpython: 23 -> 6 MB).
        strip --strip-unneeded "$stage/lib/$name" 2>/dev/null || true
    done < <(ldd "$caffe" | awk '$2 == "=>" { print $1, $3 }')
    [ -f "$stage/lib/$(ldd "$caffe" | awk '/libcaffe/ {print $1; exit}')" ] || die "libcaffe was not packed"
    # T91 (training) and Set5 (Caffe's TEST phase), verified, from the toolkit's datasets folder.
    (cd "$REPO" && "$PY" - "$stage/datasets" <<'EOF'
import os, shutil, sys
from srcaffe import datasets
from srcaffe.errors import UserError
for name in ("T91", "Set5"):
    if datasets.verify(name):
        sys.exit("error: %s is missing or not verified in %s (python tools/datasets.py fetch)" % (name, datasets.datasets_root()))
    shutil.copytree(datasets.dataset_dir(name), os.path.join(sys.argv[1], name))
EOF
    ) || exit 2
    {
        echo "bundle of tools/gpu_check.sh pack, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "caffe=$prefix"
        echo "commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
        echo "nvidia=${need[*]}"
        grep '^cuda=' "$venv/.srcaffe-cuda" || true
        echo "unpacked=$(du -sb "$stage" | cut -f1)"
    } >"$tmp/$MARK"
    local libs
    libs=$(du -sb "$stage/lib" | cut -f1)
    tar -czf "$tmp/bundle.tar.gz" -C "$stage" . && rm -rf "$stage"
    rm -rf "$dir" && mv "$tmp" "$dir"
    trap - EXIT
    mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
    say "bundle $dir: $(mib "$(du -sb "$dir" | cut -f1)") ($(mib "$(sed -n 's/^unpacked=//p' "$dir/$MARK")") unpacked, libraries $(mib "$libs")); the GPU machine must have ${need[*]}"
}

# ---- run --------------------------------------------------------------------------------------
# Folders that may hold NVIDIA's libraries on the GPU machine, most explicit first.
nvidia_lib_dirs() {
    local d
    tr ':' '\n' <<<"${CUDA_LIBS:-}"
    for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda /usr/local/cuda-*; do
        [ -n "$d" ] && printf '%s\n' "$d/targets/x86_64-linux/lib" "$d/lib64" "$d/lib"
    done
    # The Python's nvidia-* wheels (PyTorch brings cuBLAS and cuRAND).
    "$PY" - 2>/dev/null <<'EOF' || true
import glob, os
try:
    import nvidia
except ImportError:
    raise SystemExit
for p in nvidia.__path__:
    for d in sorted(glob.glob(os.path.join(p, "*", "lib")) + glob.glob(os.path.join(p, "*", "*", "lib"))):
        print(d)
EOF
    ldconfig -p 2>/dev/null | awk '/lib(cublas|curand)\.so/ {print $NF}' | xargs -r -n1 dirname
    printf '%s\n' "${SRCAFFE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/srcaffe}/cuda-13.0/root/lib64"
}

fatal() {  # the reason in a Caffe log: its first glog FATAL line without the prefix, else its last line
    grep -m1 -E '^F[0-9]+ ' "$1" | sed 's/^[^]]*\] //' | grep . || tail -n1 "$1"
}

run() {
    local bundle=${1:-} out=${2:-${OUT:-}}
    [ -n "$bundle" ] || die "run needs the bundle folder (tools/gpu_check.sh run BUNDLE OUTDIR)"
    [ -f "$bundle/$MARK" ] && [ -f "$bundle/bundle.tar.gz" ] || die "$bundle is not a bundle of tools/gpu_check.sh pack (no $MARK, bundle.tar.gz)"
    [ -n "$out" ] || die "run needs an output folder (OUTDIR or \$OUT)"
    [ -z "$(ls -A "$out" 2>/dev/null)" ] || die "$out is not empty; refusing to overwrite it"
    bundle=$(cd "$bundle" && pwd)
    mkdir -p "$out" && out=$(cd "$out" && pwd)
    cd "$REPO"
    local mode=${GPU_CHECK_MODE:-auto} gpu=${GPU_ID:-0} aug=${GPU_CHECK_AUG:-1}
    case $mode in auto|gpu|cpu) ;; *) die "GPU_CHECK_MODE must be auto, gpu or cpu, not '$mode'" ;; esac
    "$PY" -c 'import numpy, h5py, PIL' 2>/dev/null || die "$PY lacks numpy, h5py or Pillow (tools/prepare_data.py needs them)"

    # A scratch folder for the unpacked bundle and the data (~0.7 GB with augmentation).
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
    local work=$WORK
    mkdir "$work/bundle" && tar -xzf "$bundle/bundle.tar.gz" -C "$work/bundle" || die "$bundle/bundle.tar.gz does not unpack"
    local meta=$bundle/$MARK
    bundle=$work/bundle

    # NVIDIA's libraries: the first folder that holds each soname the bundle needs.
    local libpath=$bundle/lib name d found
    for name in $(sed -n 's/^nvidia=//p' "$meta"); do
        found=
        while read -r d; do
            [ -n "$d" ] && [ -e "$d/$name" ] && found=$d && break
        done < <(nvidia_lib_dirs)
        [ -n "$found" ] || die "$name not found on this machine (set CUDA_LIBS to the folder holding it)"
        [[ ":$libpath:" == *":$found:"* ]] || libpath=$libpath:$found
        say "$name: $found"
    done
    export LD_LIBRARY_PATH=$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    # Caffe's INFO lines are what the summary reads: whatever the caller's glog level
    export GLOG_logtostderr=1 GLOG_minloglevel=0
    local caffe=$bundle/bin/caffe
    local missing
    missing=$(ldd "$caffe" | awk '/not found/ {print $1}' | tr '\n' ' ')
    [ -z "$missing" ] || die "$caffe cannot load: $missing"

    # 1. The GPU, as Caffe sees it.
    local gpuflag=() solver_mode=CPU
    # In a subshell, so that a Caffe abort is reported into the log, not on the terminal.
    if [ "$mode" != cpu ] && (GLOG_logtostderr=1 "$caffe" device_query -gpu "$gpu"; exit $?) >"$out/device_query.log" 2>&1; then
        gpuflag=(-gpu "$gpu") solver_mode=GPU
        say "GPU $gpu: $(sed -n 's/.*Name: *//p' "$out/device_query.log" | head -n1)"
    else
        [ "$mode" = cpu ] && echo "GPU_CHECK_MODE=cpu: device_query not run" >"$out/device_query.log"
        local why
        why=$(fatal "$out/device_query.log")
        [ "$mode" = gpu ] && die "no GPU $gpu for Caffe: $why (whole output: $out/device_query.log)"
        say "no GPU: $why; running in CPU mode"
    fi
    local iters=${GPU_CHECK_ITERS:-$([ "$solver_mode" = GPU ] && echo 2000 || echo 60)}
    local time_iters=${GPU_CHECK_TIME_ITERS:-$([ "$solver_mode" = GPU ] && echo 50 || echo 5)}
    local limit=${GPU_CHECK_TRAIN_LIMIT:-170}

    # 2. Data.
    local augflag=--aug suffix=-aug
    [ "$aug" = 1 ] || augflag=--no-aug suffix=
    say "preparing FSRCNN x3 data ($augflag)"
    SRCAFFE_DATA=$work/data SRCAFFE_DATASETS=$bundle/datasets "$PY" tools/prepare_data.py fsrcnn --scale 3 $augflag \
        >"$out/prepare.log" 2>&1 || die "tools/prepare_data.py failed: $(tail -n1 "$out/prepare.log")"
    # The generated net reads data/<geometry>/; the run's copy reads the scratch folder.
    sed -e "s#source: \"data/\([^\"]*\)-aug/#source: \"$work/data/\1$suffix/#" prototxt/fsrcnn_x3_train_test.prototxt >"$work/net.prototxt"
    grep -q "source: \"$work/data/" "$work/net.prototxt" || die "prototxt/fsrcnn_x3_train_test.prototxt: no HDF5 source under data/"
    sed -e "s#^net: .*#net: \"$work/net.prototxt\"#" -e "s#^max_iter: .*#max_iter: $iters#" \
        -e "s#^snapshot: .*#snapshot: 0#" -e "s#^snapshot_prefix: .*#snapshot_prefix: \"$work/fsrcnn_x3\"#" \
        -e "s#^solver_mode: .*#solver_mode: $solver_mode#" solvers/fsrcnn_x3_adam.prototxt >"$out/solver.prototxt"

    # 3. Speed of one forward-backward pass, then training.
    say "caffe time ($time_iters iterations, $solver_mode)"
    ("$caffe" time -model "$work/net.prototxt" "${gpuflag[@]}" -iterations "$time_iters"; exit $?) >"$out/time.log" 2>&1 \
        || die "caffe time failed: $(fatal "$out/time.log") (see $out/time.log)"
    say "training $iters iterations ($solver_mode; stopped with a snapshot after ${limit}s)"
    local t0 rc=0
    t0=$(date +%s.%N)
    (timeout -s INT "$limit" "$caffe" train -solver "$out/solver.prototxt" "${gpuflag[@]}" -sigint_effect stop; exit $?) \
        >"$out/train.log" 2>&1 || rc=$?
    local seconds model
    seconds=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    model=$(ls -t "$work"/fsrcnn_x3_iter_*.caffemodel 2>/dev/null | head -n1 || true)
    [ -n "$model" ] || die "training wrote no caffemodel (exit $rc): $(fatal "$out/train.log") (see $out/train.log)"
    cp "$model" "$out/"

    # 4. Summary.
    SRCAFFE_SUMMARY="mode=$solver_mode gpu=$gpu seconds=$seconds rc=$rc iters=$iters meta=$meta model=$(basename "$model")" \
        "$PY" - "$out" >"$out/summary.txt" <<'EOF'
import os, re, sys
from srcaffe import caffelog
out = sys.argv[1]
info = dict(kv.split("=", 1) for kv in os.environ["SRCAFFE_SUMMARY"].split())
text = lambda f: open(os.path.join(out, f), errors="replace").read()
name = re.search(r"Name:\s*(.+)", text("device_query.log"))
fb = re.search(r"Average Forward-Backward: ([\d.]+) ms", text("time.log"))
log = caffelog.parse_log(os.path.join(out, "train.log"))
train, test = log["train"], log["test"]
done = int(re.search(r"_iter_(\d+)\.caffemodel", info["model"]).group(1))
bundle = dict(l.rstrip("\n").split("=", 1) for l in open(info["meta"]) if "=" in l)
print("mode:              %s" % info["mode"])
print("device:            %s" % (name.group(1).strip() if name else "none (CPU mode)"))
print("caffe:             %s (%s)" % (bundle.get("caffe"), bundle.get("cuda") or "CUDA build"))
print("commit:            %s" % bundle.get("commit"))
print("caffe time:        %s ms per forward-backward (batch 128)" % (fb.group(1) if fb else "?"))
print("training:          %d iterations, %s s from start to snapshot (caffe exit %s)" % (done, info["seconds"], info["rc"]))
timed = [r for r in train if r["seconds"] is not None]
if len(timed) > 1 and timed[-1]["iter"] > timed[0]["iter"]:   # glog clock, test phases included
    print("speed:             %.1f ms per iteration (iterations %d-%d)" % (
        1000.0 * (timed[-1]["seconds"] - timed[0]["seconds"]) / (timed[-1]["iter"] - timed[0]["iter"]),
        timed[0]["iter"], timed[-1]["iter"]))
if train:
    print("loss:              %.6g at iteration %d (%.6g at %d)" % (train[-1]["loss"], train[-1]["iter"], train[0]["loss"], train[0]["iter"]))
psnr = [r for r in test if r.get("psnr") is not None]
if psnr:
    print("test PSNR:         %.2f dB at iteration %d (Set5 patches)" % (psnr[-1]["psnr"], psnr[-1]["iter"]))
print("weights:           %s" % info["model"])
print("evaluate here:     python tools/evaluate.py --model %s --dataset Set5 --scale 3" % info["model"])
EOF
    cat "$out/summary.txt"
    # A training stopped by the time limit still leaves its snapshot: that is a result, not a failure.
    [ "$rc" = 0 ] || [ "$rc" = 124 ] || die "caffe train exited with $rc (see $out/train.log)"
}

case ${1:-} in
    pack) shift; pack "$@" ;;
    run) shift; run "$@" ;;
    -h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
