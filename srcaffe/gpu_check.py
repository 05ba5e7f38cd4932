"""tools/gpu_check.sh: pack the venv's CUDA build of Caffe with what a GPU machine without our
setup needs, run it there, summarise the run (the script's --help says what each step does).

pack (here, with pycaffe) writes the FSRCNN x3 train net and its Adam solver into the bundle
with srcaffe.nets and srcaffe.solvers, their paths relative to the run's scratch folder (data/
is the prepared HDF5 folder there, the snapshots go beside the net). run (there, a Python with
NumPy, h5py and Pillow, no pycaffe) only sets the two fields a run chooses, max_iter and
solver_mode, in that solver.
"""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

from . import build, paths
from .errors import UserError

MARK = "BUNDLE.txt"   # marks a folder as a bundle of tools/gpu_check.sh
SCRIPT = "tools/gpu_check.sh"
MODEL, SCALE, SOLVER = "fsrcnn", 3, "adam"
# Loaded by the GPU machine's own copies: the C/C++ runtime, and NVIDIA's libraries there.
SYSTEM_LIBS = re.compile(r"^(linux-vdso|ld-linux|libc|libm|libdl|librt|libpthread|libresolv|libstdc\+\+|libgcc_s)\.so")
NVIDIA_LIBS = re.compile(r"^lib(cublas|cublasLt|curand|cudnn|nccl|cuda|nvidia-.*)\.so")
# `caffe time` of the train net for each engine: (name, the bundle's net, environment); on a GPU
# all three, in CPU mode the last two (cuDNN runs only on a GPU)
ENGINES = (("cudnn", "cudnn", {}), ("caffe", "caffe", {}),
           ("stock", "caffe", {"CAFFE_CONV_BATCH_MB": "0"}))   # stock Caffe's per-image code
# Inference: one 640x360 frame padded by 3 px (as the toolkit pads it) to 1920x1080, per model
FRAME, FRAME_MODELS = (366, 646), ("fsrcnn-s", "fsrcnn")


def net_name(engine, model=None):
    """The bundle's train net (model None) or deploy net of a model for one of Caffe's engines."""
    return "net-%s.prototxt" % engine if model is None else "deploy-%s-%s.prototxt" % (model, engine)


def say(msg):
    print("[gpu_check %4ds] %s" % (time.time() - START, msg), flush=True)


START = time.time()


def mib(n):
    return "%.1f MiB" % (n / 1048576.0)


def tree_size(folder):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs
               if not os.path.islink(os.path.join(d, f)))


def ldd_pairs(binary, env=None):
    """[(soname, path)] of what a binary loads ('not' for a library ldd cannot find)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, env=env).stdout
    return [(p[0], p[2]) for p in (line.split() for line in out.splitlines()) if len(p) >= 3 and p[1] == "=>"]


# ---- pack -----------------------------------------------------------------------------------------

def net_and_solver():
    """{file name: text} of the bundle's nets (net.prototxt with Caffe's default engines, and one per
    engine of ENGINES) and solver.prototxt (pycaffe's net_spec and caffe_pb2)."""
    from google.protobuf import text_format

    from . import hdf5_patches, nets, pycaffe, solvers
    caffe_pb2 = pycaffe.caffe_pb2()
    net = nets.train_test_net(MODEL, SCALE, "data/train.txt", "data/test.txt", nets.geometry(MODEL, SCALE).label_size)
    s = text_format.Parse(solvers.solver_text(MODEL, SCALE, SOLVER, "net.prototxt", hdf5_patches.TEST_PATCHES),
                          caffe_pb2.SolverParameter())
    s.snapshot, s.snapshot_prefix = 0, "%s_x%d" % (MODEL, SCALE)
    files = {"net.prototxt": net, "solver.prototxt": solvers.to_text(s)}
    for engine in nets.ENGINES:
        for model, text in [(None, net)] + [(m, nets.deploy_net(m, SCALE, *FRAME)) for m in FRAME_MODELS]:
            files[net_name(engine, model)] = pycaffe.with_engine(text, engine)
    return files


def pack(folder=None, venv=None):
    from . import datasets
    folder = os.path.abspath(folder or paths.repo_path(".gpu-bundle"))
    venv = venv or paths.venv_dir()
    prefix = build.record("cuda", venv).get("prefix")
    caffe = os.path.join(prefix or "", "bin", "caffe")
    if not prefix or not os.access(caffe, os.X_OK):
        raise UserError("%s has no CUDA build of Caffe: run tools/setup.sh --cuda (or --cuda --build-only) first" % venv)
    if not build.is_cuda(build.linked_libraries(caffe)):
        raise UserError("%s does not link libcudart: not a CUDA build" % caffe)
    if os.path.exists(folder) and not os.path.isfile(os.path.join(folder, MARK)) and os.listdir(folder):
        raise UserError("%s exists and is not a bundle of %s; refusing to overwrite it" % (folder, SCRIPT))
    for name in ("T91", "Set5"):
        if datasets.verify(name):
            raise UserError("%s is missing or not verified in %s (python tools/datasets.py fetch)"
                            % (name, datasets.datasets_root()))
    texts = net_and_solver()
    tmp = "%s.tmp.%d" % (folder, os.getpid())
    stage = os.path.join(tmp, "stage")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for sub in ("bin", "lib", "datasets"):
            os.makedirs(os.path.join(stage, sub))
        shutil.copy(caffe, os.path.join(stage, "bin", "caffe"))
        need = []
        for name, path in ldd_pairs(caffe):   # every library it loads, by soname, from where it loads it here
            if SYSTEM_LIBS.match(name):
                continue
            if NVIDIA_LIBS.match(name):
                need.append(name)
                continue
            if not os.path.isfile(path):
                raise UserError("%s needs %s, which is not found here" % (caffe, name))
            shutil.copyfile(path, os.path.join(stage, "lib", name))
            # copies only: symbol tables are not needed to run (libpython: 23 -> 6 MB)
            subprocess.run(["strip", "--strip-unneeded", os.path.join(stage, "lib", name)], capture_output=True)
        if not any(n.startswith("libcaffe") for n in os.listdir(os.path.join(stage, "lib"))):
            raise UserError("libcaffe was not packed")
        for name in ("T91", "Set5"):
            shutil.copytree(datasets.dataset_dir(name), os.path.join(stage, "datasets", name))
        for name, text in sorted(texts.items()):
            with open(os.path.join(stage, name), "w") as f:
                f.write(text)
        commit = subprocess.run(["git", "-C", paths.ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        cuda = build.record("cuda", venv).get("cuda")
        libs, unpacked = tree_size(os.path.join(stage, "lib")), tree_size(stage)
        with open(os.path.join(tmp, MARK), "w") as f:
            f.write("bundle of %s pack, %s\ncaffe=%s\ncommit=%s\nnvidia=%s\n%sunpacked=%d\n" % (
                SCRIPT, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), prefix,
                commit.stdout.strip() if commit.returncode == 0 else "unknown", " ".join(need),
                "cuda=%s\n" % cuda if cuda else "", unpacked))
        with tarfile.open(os.path.join(tmp, "bundle.tar.gz"), "w:gz") as tar:
            tar.add(stage, arcname=".")
        shutil.rmtree(stage)
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say("bundle %s: %s (%s unpacked, libraries %s); the GPU machine must have %s"
        % (folder, mib(tree_size(folder)), mib(unpacked), mib(libs), " ".join(need)))


# ---- run ------------------------------------------------------------------------------------------

def nvidia_lib_dirs(env):
    """Folders that may hold NVIDIA's libraries on the GPU machine, most explicit first."""
    dirs = (env["CUDA_LIBS"] or "").split(":")
    for d in [env["CUDA_HOME"], env["CUDA_PATH"], "/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*")):
        if d:
            dirs += [os.path.join(d, "targets", "x86_64-linux", "lib"), os.path.join(d, "lib64"), os.path.join(d, "lib")]
    try:   # this Python's nvidia-* wheels (PyTorch brings cuBLAS and cuRAND)
        import nvidia
        for p in nvidia.__path__:
            dirs += sorted(glob.glob(os.path.join(p, "*", "lib")) + glob.glob(os.path.join(p, "*", "*", "lib")))
    except ImportError:
        pass
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout if shutil.which("ldconfig") else ""
    dirs += [os.path.dirname(line.split()[-1]) for line in cache.splitlines() if re.search(r"lib(cublas|curand)\.so", line)]
    return [d for d in dirs + [os.path.join(paths.cache_dir(), "cuda-13.0", "root", "lib64")] if d]


def fatal(log):
    """The reason in a Caffe log: its first glog FATAL line without the prefix, else its last line."""
    lines = open(log, errors="replace").read().splitlines()
    for line in lines:
        if re.match(r"F\d+ ", line):
            return re.sub(r"^[^\]]*\] ", "", line)
    return lines[-1] if lines else ""


def with_fields(text, **fields):
    """A solver's text with top-level scalar fields set (the run has no caffe_pb2 to do it)."""
    for name, value in fields.items():
        text, n = re.subn(r"(?m)^%s: .*$" % name, "%s: %s" % (name, value), text)
        if n != 1:
            raise UserError("the bundle's solver has no single %s field" % name)
    return text


def logged(cmd, log, env, cwd, timeout=None):
    """Run a command into a log; its exit code (124 when stopped by SIGINT after `timeout` s)."""
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)   # Caffe stops with a snapshot (-sigint_effect stop)
            proc.wait()
            return 124


def run(bundle=None, out=None):
    env = paths.gpu_check_settings()
    out = out or env["OUT"]
    if not bundle:
        raise UserError("run needs the bundle folder (%s run BUNDLE OUTDIR)" % SCRIPT)
    if not (os.path.isfile(os.path.join(bundle, MARK)) and os.path.isfile(os.path.join(bundle, "bundle.tar.gz"))):
        raise UserError("%s is not a bundle of %s pack (no %s, bundle.tar.gz)" % (bundle, SCRIPT, MARK))
    if not out:
        raise UserError("run needs an output folder (OUTDIR or $OUT)")
    if os.path.isdir(out) and os.listdir(out):
        raise UserError("%s is not empty; refusing to overwrite it" % out)
    mode, gpu, aug = env["GPU_CHECK_MODE"] or "auto", env["GPU_ID"] or "0", (env["GPU_CHECK_AUG"] or "1") == "1"
    if mode not in ("auto", "gpu", "cpu"):
        raise UserError("GPU_CHECK_MODE must be auto, gpu or cpu, not '%s'" % mode)
    try:
        import h5py, numpy, PIL  # noqa: E401,F401
    except ImportError:
        raise UserError("%s lacks numpy, h5py or Pillow (tools/prepare_data.py needs them)" % sys.executable) from None
    bundle, out = os.path.abspath(bundle), os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    meta = os.path.join(bundle, MARK)
    with tempfile.TemporaryDirectory(prefix="gpu-check.") as work:   # ~0.7 GB with augmentation
        try:
            with tarfile.open(os.path.join(bundle, "bundle.tar.gz")) as tar:
                tar.extractall(os.path.join(work, "bundle"))
        except (OSError, tarfile.TarError):
            raise UserError("%s/bundle.tar.gz does not unpack" % bundle) from None
        unpacked = os.path.join(work, "bundle")
        info = dict(line.rstrip("\n").split("=", 1) for line in open(meta) if "=" in line)
        libpath = [os.path.join(unpacked, "lib")]
        for name in info.get("nvidia", "").split():   # the first folder that holds each soname needed
            found = next((d for d in nvidia_lib_dirs(env) if os.path.exists(os.path.join(d, name))), None)
            if not found:
                raise UserError("%s not found on this machine (set CUDA_LIBS to the folder holding it)" % name)
            libpath += [] if found in libpath else [found]
            say("%s: %s" % (name, found))
        old = paths.env_values(["LD_LIBRARY_PATH"]).get("LD_LIBRARY_PATH")
        # Caffe's INFO lines are what the summary reads: whatever the caller's glog level
        cenv = paths.child_env(LD_LIBRARY_PATH=":".join(libpath + ([old] if old else [])),
                               GLOG_logtostderr="1", GLOG_minloglevel="0")
        caffe = os.path.join(unpacked, "bin", "caffe")
        missing = [n for n, p in ldd_pairs(caffe, cenv) if p == "not"]
        if missing:
            raise UserError("%s cannot load: %s" % (caffe, " ".join(missing)))
        return run_steps(caffe, cenv, work, unpacked, out, meta, env, mode, gpu, aug)


def run_steps(caffe, cenv, work, unpacked, out, meta, env, mode, gpu, aug):
    # 1. The GPU, as Caffe sees it.
    gpuflag, solver_mode, dq = [], "CPU", os.path.join(out, "device_query.log")
    if mode != "cpu" and logged([caffe, "device_query", "-gpu", gpu], dq, cenv, work) == 0:
        gpuflag, solver_mode = ["-gpu", gpu], "GPU"
        name = re.search(r"Name: *(.*)", open(dq, errors="replace").read())
        say("GPU %s: %s" % (gpu, name.group(1) if name else ""))
    else:
        if mode == "cpu":
            with open(dq, "w") as f:
                f.write("GPU_CHECK_MODE=cpu: device_query not run\n")
        why = fatal(dq)
        if mode == "gpu":
            raise UserError("no GPU %s for Caffe: %s (whole output: %s)" % (gpu, why, dq))
        say("no GPU: %s; running in CPU mode" % why)
    on_gpu = solver_mode == "GPU"
    iters = int(env["GPU_CHECK_ITERS"] or (2000 if on_gpu else 60))
    time_iters = int(env["GPU_CHECK_TIME_ITERS"] or (50 if on_gpu else 5))
    limit = float(env["GPU_CHECK_TRAIN_LIMIT"] or 170)

    # 2. Data, prepared into the scratch folder; data/ there is the net's.
    say("preparing FSRCNN x3 data (%s)" % ("--aug" if aug else "--no-aug"))
    prepare = [sys.executable, paths.repo_path("tools", "prepare_data.py"), MODEL, "--scale", str(SCALE),
               "--aug" if aug else "--no-aug"]
    penv = paths.child_env(SRCAFFE_DATA=os.path.join(work, "prepared"), SRCAFFE_DATASETS=os.path.join(unpacked, "datasets"))
    if logged(prepare, os.path.join(out, "prepare.log"), penv, paths.ROOT) != 0:
        raise UserError("tools/prepare_data.py failed: %s" % fatal(os.path.join(out, "prepare.log")))
    folders = sorted(glob.glob(os.path.join(work, "prepared", "*", "train.txt")))
    if len(folders) != 1:
        raise UserError("tools/prepare_data.py wrote %d data folders, not one" % len(folders))
    os.symlink(os.path.dirname(folders[0]), os.path.join(work, "data"))
    for name in os.listdir(unpacked):
        if name.endswith(".prototxt") and name != "solver.prototxt":
            shutil.copy(os.path.join(unpacked, name), os.path.join(work, name))
    solver = os.path.join(out, "solver.prototxt")
    with open(solver, "w") as f:
        f.write(with_fields(open(os.path.join(unpacked, "solver.prototxt")).read(), max_iter=iters,
                            solver_mode=solver_mode))

    # 3. Speed for each engine (one time.log): a forward-backward pass of the train net, the
    # forward pass of a frame to 1080p; PyTorch on the same nets; then training.
    tlog = os.path.join(out, "time.log")
    with open(tlog, "w") as joined:
        for model in [None] + list(FRAME_MODELS):
            for engine, net, extra in ENGINES[0 if on_gpu else 1:]:
                what = "engine %s" % engine if model is None else "%s 1080p, engine %s" % (model, engine)
                say("caffe time, %s (%d iterations, %s)" % (what, time_iters, solver_mode))
                part = os.path.join(work, "time.part.log")
                rc = logged([caffe, "time", "-model", net_name(net, model)] + gpuflag
                            + ["-iterations", str(time_iters)], part, dict(cenv, **extra), work)
                joined.write("=== %s\n%s" % (what, open(part, errors="replace").read()))
                if rc:
                    raise UserError("caffe time failed, %s: %s (see %s)" % (what, fatal(part), tlog))
        try:
            torch_lines = torch_times(work, on_gpu, time_iters)
        except Exception as exc:   # a comparison only: the run goes on to its training
            torch_lines = ["failed: %s" % (str(exc).splitlines() or [type(exc).__name__])[0]]
        joined.write("=== pytorch\n%s\n" % "\n".join(torch_lines))
    say("training %d iterations (%s; stopped with a snapshot after %gs)" % (iters, solver_mode, limit))
    t0, trainlog = time.time(), os.path.join(out, "train.log")
    rc = logged([caffe, "train", "-solver", solver] + gpuflag + ["-sigint_effect", "stop"], trainlog, cenv, work,
                timeout=limit)
    seconds = time.time() - t0
    models = sorted(glob.glob(os.path.join(work, "%s_x%d_iter_*.caffemodel" % (MODEL, SCALE))), key=os.path.getmtime)
    if not models:
        raise UserError("training wrote no caffemodel (exit %d): %s (see %s)" % (rc, fatal(trainlog), trainlog))
    shutil.copy(models[-1], out)

    # 4. Summary.
    text = summary(out, solver_mode, gpu, seconds, rc, meta, os.path.basename(models[-1]))
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write(text)
    print(text, end="")
    # A training stopped by the time limit still leaves its snapshot: that is a result, not a failure.
    if rc not in (0, 124):
        raise UserError("caffe train exited with %d (see %s)" % (rc, trainlog))
    return 0


def torch_times(work, on_gpu, iters):
    """Lines of PyTorch's times on the same nets (this machine's PyTorch, if it has one): the FSRCNN
    x3 Adam step at batch 128 on the prepared patches, and the frame's forward pass per model.
    Plain FP32 (TF32 off), as Caffe computes."""
    try:
        import torch
    except ImportError:
        return ["not installed"]
    import h5py

    from . import torch_reference
    device = "cuda" if on_gpu and torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    first = open(os.path.join(work, "data", "train.txt")).readline().strip()
    path = first if os.path.isabs(first) else os.path.join(paths.ROOT, first)
    with h5py.File(path, "r") as h:
        n = min(len(h["data"]), 10 * torch_reference.BATCH)
        data, label = h["data"][:n], h["label"][:n]
    lines = ["%s on %s" % (torch.__version__, torch.cuda.get_device_name() if device == "cuda" else "cpu")]
    net = torch_reference.TorchNet(MODEL, SCALE, data, label, device=device)
    lines.append("train step %.3f ms" % net.train_ms(iters))
    for model in FRAME_MODELS:
        lines.append("%s 1080p forward %.3f ms" % (model, torch_reference.forward_ms(
            model, SCALE, FRAME[0], FRAME[1], iters, device=device)))
    return lines


def summary(out, mode, gpu, seconds, rc, meta, model):
    """summary.txt: the device, the build, the speeds, the loss and PSNR, and the weights."""
    from . import caffelog

    def text(name):
        return open(os.path.join(out, name), errors="replace").read()
    name = re.search(r"Name:\s*(.+)", text("device_query.log"))
    sections = dict(re.findall(r"(?ms)^=== (.*?)\n(.*?)(?=^=== |\Z)", text("time.log")))

    def ms(section, what):
        m = re.search(r"Average %s: ([\d.]+) ms" % what, sections.get(section, ""))
        return float(m.group(1)) if m else None
    engines = [e for e, _, _ in ENGINES if "engine %s" % e in sections]
    times = [(e, ms("engine %s" % e, "Forward-Backward")) for e in engines]
    frames = ["%s %s" % (m, ", ".join("%s %.2f ms" % (e, t) for e in engines
                                       for t in [ms("%s 1080p, engine %s" % (m, e), "Forward pass")] if t))
              for m in FRAME_MODELS]
    torch_lines = sections.get("pytorch", "").splitlines()
    log = caffelog.parse_log(os.path.join(out, "train.log"))
    train, test = log["train"], log["test"]
    done = int(re.search(r"_iter_(\d+)\.caffemodel", model).group(1))
    bundle = dict(line.rstrip("\n").split("=", 1) for line in open(meta) if "=" in line)
    lines = ["mode:              %s" % mode,
             "device:            %s" % (name.group(1).strip() if name else "none (CPU mode)"),
             "caffe:             %s (%s)" % (bundle.get("caffe"), bundle.get("cuda") or "CUDA build"),
             "commit:            %s" % bundle.get("commit"),
             "caffe time:        %s ms per forward-backward (batch 128)" % (
                 ", ".join("%s %s" % (e, t) for e, t in times if t) or "?"),
             "1080p forward:     %s (one 640x360 frame)" % "; ".join(frames),
             "pytorch:           %s" % ("; ".join(torch_lines) or "?"),
             "training:          %d iterations, %.1f s from start to snapshot (caffe exit %s)" % (done, seconds, rc)]
    timed = [r for r in train if r["seconds"] is not None]
    if len(timed) > 1 and timed[-1]["iter"] > timed[0]["iter"]:   # glog clock, test phases included
        lines.append("speed:             %.1f ms per iteration (iterations %d-%d)" % (
            1000.0 * (timed[-1]["seconds"] - timed[0]["seconds"]) / (timed[-1]["iter"] - timed[0]["iter"]),
            timed[0]["iter"], timed[-1]["iter"]))
    if train:
        lines.append("loss:              %.6g at iteration %d (%.6g at %d)" % (
            train[-1]["loss"], train[-1]["iter"], train[0]["loss"], train[0]["iter"]))
    psnr = [r for r in test if r.get("psnr") is not None]
    if psnr:
        lines.append("test PSNR:         %.2f dB at iteration %d (Set5 patches)" % (psnr[-1]["psnr"], psnr[-1]["iter"]))
    lines += ["weights:           %s" % model,
              "evaluate here:     python tools/evaluate.py --model %s --dataset Set5 --scale 3" % model]
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["pack"] and len(argv) <= 2:
        return pack(*argv[1:]) or 0
    if argv[:1] == ["run"] and len(argv) <= 3:
        return run(*argv[1:])
    raise UserError("usage: %s pack [DIR] | run BUNDLE [OUTDIR] (see %s --help)" % (SCRIPT, SCRIPT))


if __name__ == "__main__":
    from .cli import run_main
    run_main(main)
