"""The class models as a Slurm job array: sbatch, squeue and scontrol, nothing home-made.

`submit` writes RUNS/slurm_job.sh (one array task = one line of jobs.txt, run by
`tools/mmsr.py task RUNS $SLURM_ARRAY_TASK_ID`, which keeps RUNS/<name>.status.json) and runs
`sbatch --array=...` on it; every submission is recorded in RUNS/slurm.json. Each command has
--resume, so a requeued task, or one resubmitted alone (`--only CLASS`), continues its run folder
from its newest snapshot; the run folders of finished classes are never touched.

`states` merges what Slurm says (squeue while the task is queued or running, scontrol after,
as long as slurmctld remembers the job: MinJobAge) with the task's own status file (its exit
code; the only record once Slurm has forgotten the job).
"""
import os
import shlex
import shutil
import subprocess
import sys
import time

from .. import files
from ..errors import UserError
from ..paths import ROOT
from .jobs import read_status, select

SCRIPT = "slurm_job.sh"
RECORD = "slurm.json"
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED")


def _tool(name):
    path = shutil.which(name)
    if path is None:
        raise UserError("%s not found: Slurm's client commands are not installed here (tools/slurm_local.sh "
                        "start makes a one-machine cluster; without Slurm: tools/mmsr.py launch RUNS)" % name)
    return path


def _call(args, timeout=30):
    try:
        return subprocess.run([_tool(args[0])] + list(args[1:]), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UserError("%s did not answer within %d s (is slurmctld running?)" % (args[0], timeout)) from None


def job_script(jobs, cpus=None, partition=None, time_limit=None):
    """The array job's script: task i runs job i of jobs.json through `tools/mmsr.py task`."""
    runs = jobs["runs_dir"]
    opts = ["--job-name=mmsr-%s" % os.path.basename(runs),
            "--output=%s" % os.path.join(runs, "slurm-%A_%a.out"),
            "--chdir=%s" % ROOT,
            "--cpus-per-task=%d" % (cpus or jobs.get("threads") or 1)]
    opts += ["--partition=%s" % partition] if partition else []
    opts += ["--time=%s" % time_limit] if time_limit else []
    lines = ["#!/bin/bash"] + ["#SBATCH %s" % o for o in opts] + [
        "# written by tools/mmsr.py submit; task i = line i+1 of jobs.txt (continued with --resume when resubmitted)",
        "exec %s %s task %s \"$SLURM_ARRAY_TASK_ID\"" % (shlex.quote(sys.executable),
                                                      shlex.quote(os.path.join(ROOT, "tools", "mmsr.py")),
                                                      shlex.quote(runs))]
    return "\n".join(lines) + "\n"


def read_record(runs_dir):
    path = os.path.join(runs_dir, RECORD)
    return files.read_json(path, "Slurm record") if os.path.isfile(path) else dict(submissions=[], tasks={})


def submit(jobs, only=None, cpus=None, partition=None, time_limit=None, extra=(), log=print):
    """sbatch the jobs (all, or those named by `only`) as one array; returns the array job id.
    A job still queued or running in Slurm is refused (it would train twice into one folder)."""
    entries = select(jobs, only)
    current = states(jobs)
    busy = [e["name"] for e in entries if current[e["name"]]["slurm_state"] in ACTIVE]
    if busy:
        raise UserError("%s: still queued or running in Slurm (%s); wait, or scancel it first"
                        % (", ".join(busy), ", ".join(current[n]["slurm_job"] for n in busy)))
    runs = jobs["runs_dir"]
    script = os.path.join(runs, SCRIPT)
    files.write_text(script, job_script(jobs, cpus, partition, time_limit))
    array = ",".join(str(e["index"]) for e in entries)
    r = _call(["sbatch", "--parsable", "--array=%s" % array] + list(extra) + [script])
    if r.returncode != 0:
        raise UserError("sbatch failed (exit %d): %s" % (r.returncode, " ".join(r.stderr.split())[:300]))
    job_id = r.stdout.strip().split(";")[0]
    record = read_record(runs)
    record["submissions"].append(dict(job=job_id, array=array, time=time.time(), script=script))
    for e in entries:
        record["tasks"][e["name"]] = "%s_%d" % (job_id, e["index"])
    files.write_json(os.path.join(runs, RECORD), record)
    log("submitted array job %s: tasks %s (%s)" % (job_id, array, ", ".join(e["name"] for e in entries)))
    return job_id


def slurm_state(task_id):
    """(state, exit code text) of an array task in Slurm, or (None, None) if Slurm does not know it
    (any more)."""
    r = _call(["squeue", "-h", "-j", task_id, "-o", "%T"])
    if r.returncode == 0 and r.stdout.strip():
        return r.stdout.split()[0], None
    r = _call(["scontrol", "-o", "show", "job", task_id])
    if r.returncode != 0:
        return None, None
    fields = dict(f.split("=", 1) for f in r.stdout.split() if "=" in f)
    return fields.get("JobState"), fields.get("ExitCode")


def states(jobs):
    """{name: {state, slurm_job, slurm_state, slurm_exit, exit, status}} for every job.
    state: what is known best: Slurm's while it is queued or running, else the task's status file,
    else Slurm's final state (a task killed before it could write one), else 'not run' (submitted,
    but Slurm no longer knows it and it never started: cancelled while queued, since Slurm drops
    those at once, or forgotten after MinJobAge), else 'not submitted'."""
    record = read_record(jobs["runs_dir"])
    out = {}
    for e in jobs["jobs"]:
        task = record["tasks"].get(e["name"])
        s_state, s_exit = slurm_state(task) if task else (None, None)
        status = read_status(e)
        if s_state in ACTIVE:
            state = s_state.lower()
        elif status and status["state"] != "running":
            state = status["state"]
        elif s_state:
            state = s_state.lower()           # e.g. cancelled while pending, or killed (no status written)
        elif status:
            state = "running?" if task else status["state"]   # Slurm forgot it; the status file never ended
        else:
            # Slurm drops an array task cancelled while still queued from its records at once
            state = "not submitted" if not task else "not run"
        out[e["name"]] = dict(state=state, slurm_job=task, slurm_state=s_state, slurm_exit=s_exit,
                              exit=status.get("exit") if status else None, status=status)
    return out


def wait(jobs, timeout=None, poll=2.0, log=None):
    """Block until none of the jobs is queued or running in Slurm; returns states()."""
    start = time.time()
    while True:
        now = states(jobs)
        if not any(s["slurm_state"] in ACTIVE for s in now.values()):
            return now
        if timeout is not None and time.time() - start > timeout:
            raise UserError("jobs still queued or running after %d s: %s" % (timeout, ", ".join(
                "%s %s" % (n, s["state"]) for n, s in now.items() if s["slurm_state"] in ACTIVE)))
        time.sleep(poll)
