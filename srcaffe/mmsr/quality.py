"""Time to quality: MMSR against the single model, from real runs (tools/mmsr.py quality).

Both are measured at the same fractions of their budgets (k/N of the passes over their data, N =
the jobs' --snapshots): at each milestone every class model's snapshot is combined into one MMSR
and evaluated on Set5/Set14 (evaluation.evaluate), and the single model's snapshot likewise
(snapshot_eval, whose cache it shares). Training seconds at a snapshot come from the run's
train.log (caffelog: cumulative seconds of `caffe train`, test phases included), interpolated
between logged iterations. MMSR's time at a milestone is the sum of its class models' times (one
worker, the classes one after the other) and their maximum (one worker per class).
"""
import os

import numpy as np

from .. import datasets, evaluation, files, snapshots
from ..caffelog import parse_log
from ..errors import UserError
from ..models import load_model
from ..snapshot_eval import evaluate_snapshots
from .model import MMSR
from .texture import DEFAULT_FRAGMENT, DEFAULT_OVERLAP

CACHE = "quality.json"


def seconds_at(run_dir, iterations):
    """Cumulative training seconds of run_dir at the given iterations (from its train.log)."""
    log = os.path.join(run_dir, "train.log")
    if not os.path.isfile(log):
        raise UserError("%s: no train.log (has this job run?)" % run_dir)
    parsed = parse_log(log)
    timed = sorted((r["iter"], r["seconds"]) for r in parsed["train"] + parsed["test"] if r.get("seconds") is not None)
    if not timed:
        raise UserError("%s: no timed iteration in it" % log)
    its = np.array([0] + [t[0] for t in timed], float)
    secs = np.maximum.accumulate(np.array([0.0] + [t[1] for t in timed]))
    if max(iterations) > its[-1]:   # the snapshot at the very end: its seconds are the last line's
        its = np.append(its, max(iterations))
        secs = np.append(secs, secs[-1])
    return [float(s) for s in np.interp(iterations, its, secs)]


def milestones(entry, n):
    """[(k, iteration, caffemodel)] for k = 1..n: the snapshot nearest to k/n of the budget (the
    jobs' --snapshot-every puts one exactly there; the timed snapshots of a long run are extra)."""
    snaps = snapshots.listing(entry["run_dir"])
    if not snaps:
        raise UserError("%s: no snapshot (has this job run?)" % entry["run_dir"])
    total = entry.get("iters") or snaps[-1][0]
    every = entry.get("snapshot_every") or total // n
    out = []
    for k in range(1, n + 1):
        target = total if k == n else k * every
        it, path = min(snaps, key=lambda s: abs(s[0] - target))
        if abs(it - target) > max(1, every // 4):
            break          # not trained that far yet
        out.append((k, it, path))
    return out


def measure(jobs, dataset_names=datasets.EVAL_SETS, n=None, fragment=DEFAULT_FRAGMENT, overlap=DEFAULT_OVERLAP,
            log=None):
    """{rows: [{k, epochs, single: {seconds, Set5, Set14...}, mmsr: {seconds_sum, seconds_max, ...}}]}."""
    n = n or jobs.get("snapshots")
    if not n:
        raise UserError("%s: the jobs were written without --snapshots; give --points N" % jobs["runs_dir"])
    classes = [e for e in jobs["jobs"] if e["cls"] is not None]
    single = [e for e in jobs["jobs"] if e["cls"] is None]
    scale = int(jobs["scale"])
    images = {d: datasets.list_images(d) for d in dataset_names}
    cache_path = os.path.join(jobs["runs_dir"], CACHE)
    cache = files.read_json(cache_path, "cache") if os.path.isfile(cache_path) else {}
    per_class = [milestones(e, n) for e in classes]
    k_max = min(len(m) for m in per_class)
    rows = []
    for i in range(k_max):
        k = per_class[0][i][0]
        its = [m[i][1] for m in per_class]
        secs = [seconds_at(e["run_dir"], [it])[0] for e, it in zip(classes, its)]
        key = "%d:%d/%d:" % (fragment, overlap, len(dataset_names)) + ",".join(
            datasets.sha256_file(m[i][2])[:16] for m in per_class)
        if key not in cache:
            members = [load_model(m[i][2], scale=scale, arch=e["model"]) for m, e in zip(per_class, classes)]
            model = MMSR(members, jobs["thresholds"], fragment=fragment, overlap=overlap,
                         vsp_threshold=jobs["vsp_threshold"], name="MMSR")
            cache[key] = {}
            for d in dataset_names:
                r = evaluation.evaluate(model.upscaler, images[d], scale, "MMSR", dataset=d)
                cache[key][d] = [r["mean_psnr"], r["mean_ssim"]]
                if log:
                    log("MMSR at %d/%d of the budget (iterations %s): %s %.2f dB" % (k, n, its, d, r["mean_psnr"]))
            files.write_json(cache_path, cache)
        row = dict(k=k, epochs=(jobs.get("epochs") or 0) * k / float(n) or None,
                   mmsr=dict(iters=its, seconds=secs, seconds_sum=sum(secs), seconds_max=max(secs),
                             **{d: cache[key][d] for d in dataset_names}))
        rows.append(row)
    if single:
        e = single[0]
        ms = milestones(e, n)
        curves = evaluate_snapshots(e["run_dir"], dataset_names, iterations=[it for _, it, _ in ms], log=log)
        by = {d: {it: (p, s) for it, p, s in curves[d]} for d in dataset_names}
        for row, (k, it, _) in zip(rows, ms):
            row["single"] = dict(iters=it, seconds=seconds_at(e["run_dir"], [it])[0],
                                 **{d: list(by[d][it]) for d in dataset_names})
    return dict(rows=rows, points=n, datasets=list(dataset_names), fragment=fragment, overlap=overlap,
                classes=[dict(name=e["name"], model=e["model"], patches=e["patches"], iters=e["iters"])
                         for e in classes],
                single=dict(name=single[0]["name"], model=single[0]["model"], patches=single[0]["patches"],
                            iters=single[0]["iters"]) if single else None)


def time_to(rows, who, seconds_key, dataset, level):
    """Training seconds of the first milestone at which `who` reaches `level` dB, or None."""
    for r in rows:
        if who in r and r[who][dataset][0] >= level:
            return r[who][seconds_key]
    return None


def time_to_quality(result, levels, dataset="Set5"):
    """[{level, single, mmsr_sum, mmsr_max, speedup_1, speedup_k}] for each PSNR level."""
    out = []
    for level in levels:
        single = time_to(result["rows"], "single", "seconds", dataset, level)
        one = time_to(result["rows"], "mmsr", "seconds_sum", dataset, level)
        many = time_to(result["rows"], "mmsr", "seconds_max", dataset, level)
        out.append(dict(level=level, dataset=dataset, single=single, mmsr_sum=one, mmsr_max=many,
                        speedup_1=single / one if single and one else None,
                        speedup_k=single / many if single and many else None))
    return out
