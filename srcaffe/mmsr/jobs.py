"""The training jobs of a split: one ./run_train.sh command per class model (and the baseline),
run in parallel here or elsewhere, and their training times read back from the logs."""
import json
import os
import shlex
import subprocess
import time

from .. import hdf5_patches, nets
from ..errors import UserError
from ..paths import ROOT
from .split import read_plan

JOBS = "jobs.txt"            # one shell command per model, in the runs folder
JOBS_META = "jobs.json"


# ---- job list -----------------------------------------------------------------------------------

def write_jobs(split_dir, iters=None, solver=None, runs_dir=None, baseline=None, threads=None, force=False):
    """Write RUNS/jobs.txt (one ./run_train.sh command per class model, plus the single model on all
    the data with `baseline`) and RUNS/jobs.json; returns the jobs dict."""
    split_dir = os.path.abspath(split_dir)
    plan = read_plan(split_dir)
    scale = int(plan["scale"])
    if baseline:
        nets.architecture(baseline)
        g, c = nets.geometry(baseline, scale), hdf5_patches.read_meta(plan["source"])
        if (g.input_size, g.label_size) != (c["input_size"], c["label_size"]):
            raise UserError("--baseline %s does not fit the split's data (%d->%d patches)"
                            % (baseline, c["input_size"], c["label_size"]))
    if iters is not None and iters < 1:
        raise UserError("--iters must be positive, not %d" % iters)
    if threads is not None and threads < 1:
        raise UserError("--threads must be positive, not %d" % threads)
    runs_dir = os.path.abspath(runs_dir or os.path.join(ROOT, "runs", "%s-%s" % (
        os.path.basename(split_dir), time.strftime("%Y%m%d-%H%M%S"))))
    jobs_path = os.path.join(runs_dir, JOBS)
    if os.path.exists(jobs_path) and not force:
        raise UserError("%s exists; rerun with --force to rewrite it, or give another --runs-dir" % jobs_path)
    entries = [dict(name="class%d-%s" % (c["cls"], c["model"]), cls=c["cls"], model=c["model"], data=c["dir"])
               for c in plan["classes"]]
    if baseline:
        entries.append(dict(name="single-%s" % baseline, cls=None, model=baseline, data=plan["source"]))
    lines = []
    for e in entries:
        e["run_dir"] = os.path.join(runs_dir, e["name"])
        e["out"] = e["run_dir"] + ".out"
        cmd = ["./run_train.sh", e["model"], "--scale", str(scale), "--data", e["data"], "--run-dir", e["run_dir"]]
        cmd += ["--iters", str(iters)] if iters else []
        cmd += ["--solver", solver] if solver else []
        env = "OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d " % (threads, threads) if threads else ""
        e["command"] = "cd %s && %s%s > %s 2>&1" % (shlex.quote(ROOT), env, " ".join(map(shlex.quote, cmd)),
                                                    shlex.quote(e["out"]))
        lines.append(e["command"])
    os.makedirs(runs_dir, exist_ok=True)
    with open(jobs_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    jobs = dict(split=split_dir, scale=scale, models=plan["models"], thresholds=plan["thresholds"],
                vsp_threshold=plan["vsp_threshold"], iters=iters, solver=solver, threads=threads,
                baseline=baseline, runs_dir=runs_dir, jobs=entries)
    with open(os.path.join(runs_dir, JOBS_META), "w") as f:
        json.dump(jobs, f, indent=1)
    return jobs


def read_jobs(runs_dir):
    path = os.path.join(runs_dir, JOBS_META)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError("%s: not an MMSR runs folder (no %s; write one with tools/mmsr.py jobs)" % (runs_dir, JOBS_META)) from None
    except (OSError, ValueError) as exc:
        raise UserError("%s: unreadable (%s)" % (path, exc)) from None


def launch(jobs, parallel=None, log=print):
    """Run the job list's commands together (at most `parallel` at a time); returns exit codes."""
    pending, running, codes = list(jobs["jobs"]), [], {}
    parallel = parallel or len(pending)
    while pending or running:
        while pending and len(running) < parallel:
            e = pending.pop(0)
            log("mmsr: started %s (log %s)" % (e["name"], e["out"]))
            running.append((e, subprocess.Popen(["bash", "-c", e["command"]])))
        time.sleep(0.5)
        for e, p in list(running):
            if p.poll() is not None:
                running.remove((e, p))
                codes[e["name"]] = p.returncode
                log("mmsr: %s %s" % (e["name"], "finished" if p.returncode == 0 else
                                     "FAILED (exit %d), see %s" % (p.returncode, e["out"])))
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


