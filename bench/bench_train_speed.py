#!/usr/bin/env python3
"""Benchmark: training speed of FSRCNN(56,12,4) x3 and SRCNN 9-1-5 x3, batch 128, in ms per
iteration, side by side:

  - every Caffe build given (default: the OpenBLAS and MKL builds of the current recipe in the
    build cache, and the one linked into the venv), each with
      `caffe time`   forward+backward of the train net on the real HDF5 batches (no solver), and
                     the share of it spent in the PReLU layers (Caffe's per-layer timing);
      `caffe train`  a few hundred iterations of the Adam solver on the real HDF5 data, ms/iteration
                     from the timestamps of its log (the first `--warmup` iterations left out);
  - a build with tools/caffe-patches/0003 (batched convolution) once more with
    CAFFE_CONV_BATCH_MB=0, i.e. stock Caffe's per-image convolution in the same binary
    ("per-image conv" rows; --no-switch leaves them out);
  - PyTorch on the CPU, the identical network and batch (PReLU with one shared slope or ReLU, the
    same conv/deconv shapes, EuclideanLoss = sum of squares / 2N, Adam with Caffe's lr_mult):
    forward+backward (as `caffe time`) and a full Adam step (as `caffe train`). PyTorch is not a
    requirement of the toolkit: without it a note says how to add it for this bench only.

Measurements are interleaved (every engine once per round, `--repeat` rounds) and the median
and range of the rounds are printed, with the machine's load: another busy process on the cores
makes every figure slower and noisier.

  python bench/bench_train_speed.py                    # builds of the current recipe + PyTorch
  python bench/bench_train_speed.py --all-cached       # every complete build in the cache (before/after)
  python bench/bench_train_speed.py --caffe PATH/bin/caffe --caffe OTHER/bin/caffe --no-torch
  python bench/bench_train_speed.py --threads 1        # OMP/OpenBLAS/MKL/torch threads
  python bench/bench_train_speed.py --model fsrcnn     # one net only (default: fsrcnn and srcnn)

Needs the x3 training data of each model (python tools/prepare_data.py fsrcnn --scale 3, and
srcnn; or a first ./run_train.sh).
"""
import argparse
import glob
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from srcaffe import ROOT, build, caffelog, device, hdf5_patches, nets, paths, runs, solvers  # noqa: E402
from srcaffe.torch_reference import TorchNet  # noqa: E402

SCALE, BATCH = 3, nets.TRAIN_BATCH
MODELS = ("fsrcnn", "srcnn")
TITLES = {"fsrcnn": "FSRCNN(56,12,4)", "srcnn": "SRCNN 9-1-5"}
SWITCH = "CAFFE_CONV_BATCH_MB"   # caffe-patches/0003: 0 = stock per-image convolution


# ---- which Caffe builds ----------------------------------------------------------------------

def recorded_build(variant="cpu"):
    """(blas, key, prefix) of the build tools/setup.sh recorded for this venv ($VENV/.srcaffe-cpu:
    key=..., prefix=...), or None when it recorded none."""
    for venv in (sys.prefix, paths.venv_dir()):
        info = build.record(variant, venv)
        if info.get("key") and info.get("prefix"):
            match = re.match(r"caffe-[^-]+-([a-z]+)-", os.path.basename(info["prefix"]))
            return (match.group(1) if match else None), info["key"], info["prefix"]
    return None


def libcaffe_of(binary):
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(binary)))
    for cand in glob.glob(os.path.join(prefix, "lib", "libcaffe.so*")):
        return cand
    return None


def describe(binary):
    """(BLAS, whether PReLU/ReLU run on OpenMP threads) from what libcaffe links."""
    lib = libcaffe_of(binary) or binary
    try:
        ldd = subprocess.run(["ldd", lib], capture_output=True, text=True).stdout
    except OSError:
        ldd = ""
    blas = ("MKL" if "mkl" in ldd else "OpenBLAS" if "openblas" in ldd
            else "ATLAS" if "atlas" in ldd else "BLAS?")
    # libgomp comes with -fopenmp (caffe-patches/0002); a stock build does not link it
    return blas, "OpenMP PReLU/ReLU" if "libgomp" in ldd else "stock layers"


def default_builds(all_cached):
    """[(label, binary)], plus lines about the expected builds that are missing."""
    cache, out, notes, seen = paths.cache_dir(), [], [], set()

    def add(label, binary):
        real = os.path.realpath(binary)
        if real not in seen:
            seen.add(real)
            out.append((label, binary))

    linked = os.path.join(sys.prefix, "bin", "caffe")
    recorded = recorded_build("cpu")
    if recorded is None:
        notes.append("note: this venv records no Caffe build (no .srcaffe-cpu: run tools/setup.sh); "
                     "the builds are looked up by the key computed here")
    elif recorded[0] and build.key(recorded[0]) != recorded[1]:
        notes.append("note: the venv's build was set up for key %s, the recipe now gives %s "
                     "(tools/setup.sh rebuilds or relinks it)" % (recorded[1], build.key(recorded[0])))
    for blas in ("open", "mkl"):
        if recorded and recorded[0] == blas:   # the build tools/setup.sh linked into this venv
            key, prefix = recorded[1], recorded[2]
        else:
            key = build.key(blas)
            prefix = build.prefix(key, blas)
        binary = os.path.join(prefix, "bin", "caffe")
        if os.path.isfile(os.path.join(prefix, ".complete")) and os.access(binary, os.X_OK):
            add("%s (current recipe %s)" % (blas, key), binary)
        else:
            how = "tools/setup.sh" + (" --blas mkl" if blas == "mkl" else "")
            notes.append("missing: the %s build of the current recipe (%s); build it with %s%s"
                         % ("OpenBLAS" if blas == "open" else "MKL", prefix, how,
                            " (that also links it into the venv; tools/setup.sh links OpenBLAS back)"
                            if blas == "mkl" else ""))
    if all_cached:
        for prefix in sorted(glob.glob(os.path.join(cache, "caffe-*-*-*"))):
            binary = os.path.join(prefix, "bin", "caffe")
            if os.path.isfile(os.path.join(prefix, ".complete")) and os.access(binary, os.X_OK):
                blas, key = os.path.basename(prefix).split("-")[-2:]
                add("%s (cached %s)" % (blas, key), binary)
    if os.access(linked, os.X_OK):
        add("linked into the venv", linked)
    else:
        notes.append("missing: no caffe linked into the venv (run tools/setup.sh)")
    return out, notes


# ---- Caffe --------------------------------------------------------------------------------------

def caffe_env(threads):
    env = paths.child_env(GLOG_minloglevel="0", GLOG_logtostderr="1")
    if threads:
        env.update(device.thread_env(threads))
    return env


def has_switch(binary):
    """Whether the build reads $CAFFE_CONV_BATCH_MB (caffe-patches/0003)."""
    try:
        with open(libcaffe_of(binary) or binary, "rb") as f:
            return SWITCH.encode() in f.read()
    except OSError:
        return False


def act_layers(model):
    text = open(paths.net_file(model, SCALE, "train_test")).read()
    return set(re.findall(r'name: "(\w+)"\s+type: "(?:PReLU|ReLU)"', text))


def train_net(model, tmp):
    """The committed train/test net with its HDF5 sources pointed at data_folder(model) (so
    $SRCAFFE_DATA is honoured), written into tmp; returns its path."""
    folder = data_folder(model)
    text = open(paths.net_file(model, SCALE, "train_test")).read()
    text, n = re.subn(r'source: "[^"]*/(train|test)\.txt"',
                      lambda m: 'source: "%s"' % os.path.join(folder, m.group(1) + ".txt"), text)
    if n != 2:
        raise RuntimeError("%s: expected a train and a test source, found %d" % (paths.net_file(model, SCALE, "train_test"), n))
    path = os.path.join(tmp, "%s_x%d_train_test.prototxt" % (model, SCALE))
    with open(path, "w") as f:
        f.write(text)
    return path


def caffe_time(binary, model, iters, env, tmp):
    """(ms forward+backward per iteration, ms of it in the PReLU/ReLU layers)."""
    net = train_net(model, tmp)
    out = subprocess.run([binary, "time", "-model", net, "-iterations", str(iters)],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    text = out.stdout + out.stderr
    total = re.search(r"Average Forward-Backward: ([\d.]+) ms", text)
    if out.returncode != 0 or not total:
        raise RuntimeError("caffe time failed:\n" + "\n".join(text.splitlines()[-8:]))
    prelu, names = 0.0, act_layers(model)
    for name, ms in re.findall(r"\]\s+(\w+)\s+(?:forward|backward): ([\d.]+) ms", text):
        if name in names:
            prelu += float(ms)
    return float(total.group(1)), prelu


def caffe_train(binary, model, iters, warmup, env, tmp):
    """ms per iteration of `caffe train` (Adam), from the log's timestamps after `warmup` iters."""
    s = solvers.read(paths.solver_file(model, SCALE, "adam"))
    s.net, s.max_iter, s.display, s.test_interval = train_net(model, tmp), iters, 10, 10 ** 8
    s.snapshot, s.snapshot_prefix = 0, os.path.join(tmp, "snap")
    s.test_initialization, s.snapshot_after_train = False, False
    text = solvers.to_text(s)
    solver = os.path.join(tmp, "solver.prototxt")
    with open(solver, "w") as f:
        f.write(text)
    start = time.perf_counter()
    out = subprocess.run([binary, "train", "-solver", solver], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError("caffe train failed:\n" + "\n".join(out.stderr.splitlines()[-8:]))
    rows = [r for r in caffelog.parse_log(out.stderr.splitlines())["train"] if r["seconds"] is not None]
    rows = [r for r in rows if r["iter"] >= warmup]
    if len(rows) < 2:
        raise RuntimeError("caffe train: too few iterations logged (raise --train-iters)")
    ms = 1000.0 * (rows[-1]["seconds"] - rows[0]["seconds"]) / (rows[-1]["iter"] - rows[0]["iter"])
    return ms, wall


def data_folder(model):
    return hdf5_patches.data_dir(model, SCALE, augment=runs.default_augment(model))


def load_batches(model, n):
    import h5py
    import numpy as np
    folder = data_folder(model)
    with open(os.path.join(folder, "train.txt")) as f:
        first = f.readline().strip()
    path = first if os.path.isabs(first) else os.path.join(ROOT, first)
    with h5py.File(path, "r") as h:
        return (np.ascontiguousarray(h["data"][:n], dtype=np.float32),
                np.ascontiguousarray(h["label"][:n], dtype=np.float32))


# ---- report -------------------------------------------------------------------------------------

def conditions(threads):
    import platform
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    lines = ["machine: %s, %d cores (%s), Python %s" % (cpu, os.cpu_count(), platform.platform(terse=True),
                                                           platform.python_version()),
             "threads: %s" % ("%d (OMP/OPENBLAS/MKL_NUM_THREADS, torch)" % threads if threads
                              else "library defaults (all cores)"),
             "load average before: %.2f %.2f %.2f" % load]
    if load[0] > 0.5:
        lines.append("note: the machine is busy (load %.1f on %d cores): another process shares the "
                     "cores, so every figure is slower and noisier than on an idle machine"
                     % (load[0], os.cpu_count()))
    return lines


def fmt(values, digits=1):
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return "%.*f" % (digits, med)
    return "%.*f (%.*f-%.*f)" % (digits, med, digits, min(values), digits, max(values))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--caffe", action="append", default=[], metavar="PATH",
                   help="a caffe binary to time (repeatable; replaces the default builds)")
    p.add_argument("--all-cached", action="store_true", help="also every complete build in the cache")
    p.add_argument("--time-iters", type=int, default=50, help="caffe time -iterations (default 50)")
    p.add_argument("--train-iters", type=int, default=300, help="caffe train iterations (default 300)")
    p.add_argument("--warmup", type=int, default=50, help="training iterations left out (default 50)")
    p.add_argument("--torch-iters", type=int, default=100, help="PyTorch iterations per figure (default 100)")
    p.add_argument("--repeat", type=int, default=3, help="rounds; median and range reported (default 3)")
    p.add_argument("--threads", type=int, default=0, help="threads for every engine (default: library defaults)")
    p.add_argument("--caffe-env", action="append", default=[], metavar="VAR=VALUE",
                   help="environment for the caffe runs only (repeatable), e.g. OMP_WAIT_POLICY=PASSIVE")
    p.add_argument("--no-train", action="store_true", help="skip `caffe train` (only `caffe time`)")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    p.add_argument("--model", action="append", choices=MODELS,
                   help="net to time (repeatable; default: %s)" % " and ".join(MODELS))
    p.add_argument("--no-switch", action="store_true",
                   help="do not also run batched-convolution builds with %s=0 (per-image convolution)" % SWITCH)
    a = p.parse_args(argv)

    if a.caffe:
        builds, notes = [], []
        for path in a.caffe:
            if os.access(path, os.X_OK):
                builds.append((os.path.dirname(os.path.dirname(os.path.realpath(path))), path))
            else:
                notes.append("missing: %s (not an executable caffe)" % path)
        if a.all_cached:
            more, _ = default_builds(True)
            builds += [b for b in more if os.path.realpath(b[1]) not in {os.path.realpath(x[1]) for x in builds}]
    else:
        builds, notes = default_builds(a.all_cached)

    models = a.model or list(MODELS)
    for model in models:
        folder = data_folder(model)
        if not os.path.isfile(os.path.join(folder, "train.txt")):
            print("error: no training data in %s; run: python tools/prepare_data.py %s --scale %d"
                  % (os.path.relpath(folder, ROOT), model, SCALE), file=sys.stderr)
            return 2

    # engines: (label, binary, extra environment); a build with the switch also runs per image
    engines = []
    for b in builds:
        engines.append((b[0], b[1], {}))
        if has_switch(b[1]) and not a.no_switch:
            engines.append((b[0] + ", %s=0" % SWITCH, b[1], {SWITCH: "0"}))

    torch_benches, torch_note, torch_label = {}, None, None
    if not a.no_torch:
        try:
            import torch
            for model in models:
                torch_benches[model] = TorchNet(model, SCALE, *load_batches(model, BATCH * 20), threads=a.threads)
            torch_label = "PyTorch %s CPU (%d threads)" % (torch.__version__, torch.get_num_threads())
        except ImportError:
            torch_note = ("note: PyTorch is not installed, so it is not compared; it is not a requirement "
                          "of the toolkit: for this bench only, %s -m pip install -r bench/requirements.txt (torch==2.13.0)"
                          % sys.executable)

    print("%s x%d, batch %d, ms per iteration (median of %d round%s, range in brackets)"
          % (" and ".join(TITLES.get(m, m) for m in models), SCALE, BATCH, a.repeat, "" if a.repeat == 1 else "s"))
    omp = ["%s=%s" % kv for kv in paths.env_values(("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "OMP_DYNAMIC",
                                                    "GOMP_SPINCOUNT", "KMP_BLOCKTIME", SWITCH)).items()]
    extra = ["environment: %s" % " ".join(omp)] if omp else []
    if a.caffe_env:
        extra.append("caffe runs only: %s" % " ".join(a.caffe_env))
    for line in conditions(a.threads) + extra + notes + ([torch_note] if torch_note else []):
        print(line)
    print()

    env = caffe_env(a.threads)
    for item in a.caffe_env:
        var, _, value = item.partition("=")
        env[var] = value
    results = {(m, e[0]): {"time": [], "prelu": [], "train": []} for m in models for e in engines}
    tres = {m: {"fb": [], "train": []} for m in models}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeat):
            for model in models:   # every engine once per round and model, in turn
                for label, binary, more in engines:
                    res = results[(model, label)]
                    e = dict(env, **more)
                    try:
                        ms, prelu = caffe_time(binary, model, a.time_iters, e, tmp)
                        res["time"].append(ms)
                        res["prelu"].append(100.0 * prelu / ms)
                        if not a.no_train:
                            res["train"].append(caffe_train(binary, model, a.train_iters, a.warmup, e, tmp)[0])
                    except RuntimeError as err:
                        res["error"] = str(err)
                if model in torch_benches:
                    tres[model]["fb"].append(torch_benches[model].fwd_bwd_ms(a.torch_iters))
                    tres[model]["train"].append(torch_benches[model].train_ms(a.torch_iters))
            loads.append(os.getloadavg()[0])
            print("round %d/%d done (load %.2f)" % (r + 1, a.repeat, loads[-1]), file=sys.stderr)

    for model in models:
        print("%s x%d" % (TITLES.get(model, model), SCALE))
        head = "%-58s %-22s %-8s %-22s %s" % ("engine", "fwd+bwd (caffe time)", "act. %", "train step (Adam)",
                                              "vs PyTorch" if model in torch_benches else "")
        print(head)
        print("-" * len(head))
        tmed = statistics.median(tres[model]["train"]) if tres[model]["train"] else None
        for label, binary, more in engines:
            blas, omp = describe(binary)
            res = results[(model, label)]
            name = "Caffe %s %s%s" % (build.CAFFE_VERSION, blas, ", per-image conv" if more else "")
            ratio = ("%.2fx" % (statistics.median(res["train"]) / tmed)) if tmed and res["train"] else ""
            print("%-58s %-22s %-8s %-22s %s" % (name, fmt(res["time"]), fmt(res["prelu"], 0),
                                                 fmt(res["train"]) if not a.no_train else "skipped", ratio))
            print("    %s: %s" % (label, binary))
            if "error" in res:
                print("    error: " + res["error"].replace("\n", "\n    "))
        if model in torch_benches:
            print("%-58s %-22s %-8s %-22s %s" % (torch_label, fmt(tres[model]["fb"]), "", fmt(tres[model]["train"]),
                                                 "1.00x"))
        print()
    print("act. % = share of caffe time in the PReLU (FSRCNN) or ReLU (SRCNN) layers; vs PyTorch = train "
          "step / PyTorch's train step")
    print("load average during the rounds: %s; after: %.2f %.2f %.2f"
          % (" ".join("%.2f" % l for l in loads), *os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
