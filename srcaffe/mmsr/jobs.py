"""The training jobs of a split: one ./run_train.sh command per class model (and the baseline),
run in parallel here or elsewhere, and their training times read back from the logs."""
import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

from .. import device, files, hdf5_patches, nets, paths, snapshots
from ..errors import UserError
from ..paths import ROOT, runs_root
from .split import read_plan

JOBS = "jobs.txt"            # one shell command per model, in the runs folder
JOBS_META = "jobs.json"


# ---- job list -----------------------------------------------------------------------------------

def iterations_for(epochs, patches, batch=nets.TRAIN_BATCH):
    """Iterations for `epochs` passes over `patches` training patches (the paper's budget)."""
    return max(1, int(math.ceil(epochs * patches / float(batch))))


def write_jobs(split_dir, iters=None, solver=None, runs_dir=None, baseline=None, threads=None, force=False,
               epochs=None, snapshots=None):
    """Write RUNS/jobs.txt (one ./run_train.sh command per class model, plus the single model on all
    the data with `baseline`) and RUNS/jobs.json; returns the jobs dict.

    The budget is either `iters` per model, or `epochs`: every model makes that many passes over
    its own data (a class model over its class, the single model over all of it), the paper's
    protocol. `snapshots`: that many evenly spaced snapshots per model (for time-to-quality).
    Every command has --resume: on a fresh run folder it starts the run, on a partly done one it
    continues it, so a requeued or resubmitted job never starts over."""
    split_dir = os.path.abspath(split_dir)
    plan = read_plan(split_dir)
    scale = int(plan["scale"])
    common = hdf5_patches.read_meta(plan["source"])
    if baseline:
        nets.architecture(baseline)
        g = nets.geometry(baseline, scale)
        if (g.input_size, g.label_size) != (common["input_size"], common["label_size"]):
            raise UserError("--baseline %s does not fit the split's data (%d->%d patches)"
                            % (baseline, common["input_size"], common["label_size"]))
    if iters is not None and epochs is not None:
        raise UserError("give --iters or --epochs, not both")
    if iters is not None and iters < 1:
        raise UserError("--iters must be positive, not %d" % iters)
    if epochs is not None and not epochs > 0:
        raise UserError("--epochs must be positive, not %s" % epochs)
    if threads is not None and threads < 1:
        raise UserError("--threads must be positive, not %d" % threads)
    if snapshots is not None and snapshots < 1:
        raise UserError("--snapshots must be positive, not %d" % snapshots)
    runs_dir = os.path.abspath(runs_dir or os.path.join(runs_root(), "%s-%s" % (
        os.path.basename(split_dir), time.strftime("%Y%m%d-%H%M%S"))))
    jobs_path = os.path.join(runs_dir, JOBS)
    files.check_new(jobs_path, force)
    entries = [dict(name="class%d-%s" % (c["cls"], c["model"]), cls=c["cls"], model=c["model"], data=c["dir"],
                    patches=int(c["train_patches"])) for c in plan["classes"]]
    if baseline:
        entries.append(dict(name="single-%s" % baseline, cls=None, model=baseline, data=plan["source"],
                            patches=int(common["train_patches"])))
    lines = []
    for i, e in enumerate(entries):
        e["index"] = i
        e["run_dir"] = os.path.join(runs_dir, e["name"])
        e["out"] = e["run_dir"] + ".out"
        e["iters"] = iterations_for(epochs, e["patches"]) if epochs is not None else iters
        cmd = ["./run_train.sh", e["model"], "--scale", str(scale), "--data", e["data"], "--resume",
               "--run-dir", e["run_dir"]]
        cmd += ["--iters", str(e["iters"])] if e["iters"] else []
        cmd += ["--solver", solver] if solver else []
        if snapshots and e["iters"]:
            e["snapshot_every"] = max(1, e["iters"] // snapshots)
            cmd += ["--snapshot-every", str(e["snapshot_every"])]
        env = "".join("%s=%s " % kv for kv in sorted(device.thread_env(threads).items())) if threads else ""
        e["command"] = "cd %s && %s%s >> %s 2>&1" % (shlex.quote(ROOT), env, " ".join(map(shlex.quote, cmd)),
                                                     shlex.quote(e["out"]))
        lines.append(e["command"])
    files.make_dir(runs_dir)
    jobs = dict(split=split_dir, scale=scale, models=plan["models"], thresholds=plan["thresholds"],
                vsp_threshold=plan["vsp_threshold"], iters=iters, epochs=epochs, snapshots=snapshots,
                batch=nets.TRAIN_BATCH, solver=solver, threads=threads, baseline=baseline, runs_dir=runs_dir,
                jobs=entries)
    files.write_json(os.path.join(runs_dir, JOBS_META), jobs)
    files.write_text(jobs_path, "\n".join(lines) + "\n")
    return jobs


def select(jobs, only):
    """The entries named by `only` (class numbers, run names, or 'single'); all when empty."""
    if not only:
        return list(jobs["jobs"])
    picked = []
    for want in only:
        hits = [e for e in jobs["jobs"] if want in (e["name"], str(e["cls"]))
                or (want == "single" and e["cls"] is None)]
        if not hits:
            raise UserError("--only %s: no such job in %s (known: %s)" % (
                want, jobs["runs_dir"], ", ".join([str(e["cls"]) for e in jobs["jobs"] if e["cls"] is not None]
                                                  + [e["name"] for e in jobs["jobs"]])))
        picked += [e for e in hits if e not in picked]
    return picked


def read_jobs(runs_dir):
    jobs = files.read_json(os.path.join(runs_dir, JOBS_META), "jobs file", missing=(
        "%s: not an MMSR runs folder (no %s; write one with tools/mmsr.py jobs)" % (runs_dir, JOBS_META)))
    for i, e in enumerate(jobs["jobs"]):
        e.setdefault("index", i)      # runs folders written before jobs had numbers
    return jobs


# ---- one task: a job's command, with a status file -------------------------------------------

STATUS_SUFFIX = ".status.json"   # RUNS/<name>.status.json, beside the run folder and its .out


def status_path(entry):
    return entry["run_dir"] + STATUS_SUFFIX


def read_status(entry):
    """The task's own status file ({state: running|done|failed|cancelled, exit, ...}), or None."""
    path = status_path(entry)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError:
        return None      # being replaced right now; files.write_json renames whole files


def run_task(jobs, index, log=print):
    """Run job `index`'s command here and keep its status file up to date; returns the exit code.

    This is what a Slurm array task and the local launcher both run. A SIGTERM or SIGINT (scancel,
    a requeue, Ctrl-C) is passed on to the command (run_train.sh stops Caffe with a snapshot and
    exits 143 / 130) and the task is recorded as cancelled: stopped with its snapshot, not done."""
    entries = {e["index"]: e for e in jobs["jobs"]}
    if index not in entries:
        raise UserError("%s: no job %d (it has %d)" % (jobs["runs_dir"], index, len(entries)))
    e = entries[index]
    where = dict(name=e["name"], host=socket.gethostname(), pid=os.getpid(), slurm_job=paths.slurm_task())
    trained = snapshots.listing(e["run_dir"])
    if e.get("iters") and trained and trained[-1][0] >= e["iters"]:
        # resubmitted or requeued after it finished: nothing to train (run_train.sh would refuse
        # an --iters that is not past the snapshot)
        files.write_json(status_path(e), dict(where, state="done", exit=0, already=trained[-1][0],
                                              finished=time.time()))
        log("mmsr: %s already trained to iteration %d" % (e["name"], trained[-1][0]))
        return 0
    # The handlers come first: a scancel that arrives as the task starts (its status already says
    # running) is recorded, and passed on once the command has started.
    got, child = [], dict(proc=None, told=False)

    def tell(signum):
        child["told"] = True
        try:
            os.killpg(child["proc"].pid, signum)
        except ProcessLookupError:
            pass

    def forward(signum, frame):
        got.append(signum)
        if child["proc"] is not None:
            tell(signum)
    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        files.write_json(status_path(e), dict(where, state="running", exit=None, started=time.time()))
        child["proc"] = subprocess.Popen(["bash", "-c", e["command"]], start_new_session=True)
        if got and not child["told"]:
            tell(got[0])
        code = child["proc"].wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    state = "cancelled" if got else ("done" if code == 0 else "failed")
    files.write_json(status_path(e), dict(where, state=state, exit=code, signal=got[0] if got else None,
                                          finished=time.time()))
    log("mmsr: %s %s (exit %d)" % (e["name"], state, code))
    return code if not got else (code or 128 + got[0])


def launch(jobs, parallel=None, entries=None, log=print):
    """The local fallback of a scheduler: run the jobs' tasks here (at most `parallel` at a time),
    each through run_task (`tools/mmsr.py task`), so the status files are those of Slurm's tasks.
    Returns {name: exit code}."""
    pending, running, codes = list(entries or jobs["jobs"]), [], {}
    parallel = parallel or len(pending)
    tool = os.path.join(ROOT, "tools", "mmsr.py")
    while pending or running:
        while pending and len(running) < parallel:
            e = pending.pop(0)
            log("mmsr: started %s (log %s)" % (e["name"], e["out"]))
            running.append((e, subprocess.Popen([sys.executable, tool, "task", jobs["runs_dir"], str(e["index"])])))
        time.sleep(0.5)
        for e, p in list(running):
            if p.poll() is not None:
                running.remove((e, p))
                codes[e["name"]] = p.returncode
                if p.returncode:
                    log("mmsr: %s FAILED (exit %d), see %s" % (e["name"], p.returncode, e["out"]))
    return codes


def training_times(jobs):
    """Per job: iterations, training seconds (from train.log via caffelog.parse_log), it/s, the
    last test PSNR; plus totals. Missing logs are reported as such."""
    from ..caffelog import parse_log

    rows = []
    for e in jobs["jobs"]:
        log = os.path.join(e["run_dir"], "train.log")
        row = dict(name=e["name"], cls=e["cls"], model=e["model"], iters=None, seconds=None, its=None, psnr=None)
        if os.path.isfile(log):
            parsed = parse_log(log)
            if parsed["train"]:
                last = parsed["train"][-1]
                secs = max([r["seconds"] for r in parsed["train"] + parsed["test"] if r.get("seconds") is not None] or [0])
                row.update(iters=last["iter"], seconds=secs,
                           its=(last["iter"] / secs) if secs else None)
            tests = [r for r in parsed["test"] if r.get("psnr") is not None]
            if tests:
                row["psnr"] = tests[-1]["psnr"]
        rows.append(row)
    classes = [r for r in rows if r["cls"] is not None and r["seconds"] is not None]
    total = dict(sum=sum(r["seconds"] for r in classes) if classes else None,
                 max=max(r["seconds"] for r in classes) if classes else None)
    single = [r for r in rows if r["cls"] is None]
    return dict(rows=rows, classes_seconds_sum=total["sum"], classes_seconds_max=total["max"],
                single_seconds=single[0]["seconds"] if single else None)


