"""tools/mmsr.py: its options and commands (the tool is this module's main)."""
import argparse
import os
import sys
import time

from .. import cli, datasets, device, files, mmsr, paths
from ..errors import UserError
from ..outputs import PADS
from . import report

DESCRIPTION = """\
Multi-model super-resolution (MMSR, after Yuan et al., NPC 2019): one network per texture class
of the training sub-images (TVAT of the LR input, see tools/tvat.py), fragments of the LR image
routed to the network of their class and blended back (overlaps averaged). See docs/mmsr.md.

  split     score T91's training sub-images of the models' geometry and write one prepared data
            folder per class (class0 = flattest) + mmsr.json; thresholds given or K-quantiles
  jobs      write the job list: one ./run_train.sh command per class model (and the single
            model), budget in iterations or in passes over each model's own data (--epochs)
  submit    run the jobs as a Slurm job array (sbatch --array), all or --only some of them
  launch    run the jobs here, without a scheduler (the local fallback; same tasks, same files)
  status    each job's state: Slurm's (squeue/scontrol) and the task's own exit code
  report    training time per class, in total, and of the single model, from the runs' train.log
  quality   time to quality: Set5/Set14 PSNR of the snapshots against training seconds, MMSR vs
            the single model, and the time each needs to reach given PSNR levels
  evaluate  PSNR/SSIM and time on Set5/Set14: MMSR vs single model(s) vs bicubic"""

EPILOG = """\
examples:
  python tools/mmsr.py split --models fsrcnn-s,fsrcnn --scale 3 --hist split.png
  python tools/mmsr.py jobs data/mmsr-fsrcnn-s+fsrcnn-T91-x3-lr11-label19-stride4-aug --iters 2000 \\
         --baseline fsrcnn --runs-dir runs/mmsr-demo
  python tools/mmsr.py jobs SPLIT --epochs 3 --snapshots 6 --baseline fsrcnn --threads 1 --runs-dir runs/e3
  python tools/mmsr.py submit runs/e3 --wait           # Slurm: one array task per job
  python tools/mmsr.py status runs/e3                  # a failed or cancelled one: submit runs/e3 --only 1
  python tools/mmsr.py launch runs/e3 --parallel 1     # or here, without Slurm
  python tools/mmsr.py report runs/e3
  python tools/mmsr.py quality runs/e3 --levels Set5=30.5,31,31.5 Set14=27.6,27.9,28.2
  python tools/mmsr.py evaluate --runs runs/mmsr-demo --fragments 24 --overlap 4 --json mmsr.json
  python tools/mmsr.py evaluate --class-models official-fsrcnn-s official-fsrcnn --thresholds 2300 \\
         --single official-fsrcnn official-fsrcnn-s

Model specs (--class-models, --single): a run folder (its newest snapshot), a .caffemodel, a
toolkit model name (models/NAME_xS.caffemodel) or official-fsrcnn / official-fsrcnn-s (the
authors' released weights, models/official)."""


def parse_args(argv):
    p = cli.ArgumentParser(prog="tools/mmsr.py", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("split", help="one prepared data folder per TVAT class", description="one prepared data folder per TVAT class")
    s.add_argument("--models", default="fsrcnn-s,fsrcnn",
                   help="one model per class, flattest class first (default fsrcnn-s,fsrcnn)")
    cli.add_scale(s)
    s.add_argument("--thresholds", metavar="A,B", help="TVAT class thresholds (default: K-quantiles of the sub-images)")
    s.add_argument("--vsp-threshold", type=float, default=mmsr.VSP_THRESHOLD, metavar="T",
                   help="VSP threshold of TVAT (default %g)" % mmsr.VSP_THRESHOLD)
    s.add_argument("--no-aug", action="store_true", help="T91 without the rotation/downscale augmentation")
    s.add_argument("--test", choices=("class", "common"), default="class",
                   help="test set of a class: its own Set5 patches (default) or the common 1000")
    s.add_argument("--out", metavar="DIR", help="split folder (default $SRCAFFE_DATA or data/, mmsr-MODELS-GEOMETRY)")
    s.add_argument("--hist", metavar="PNG", help="histogram of the training scores with the class boundaries")
    s.add_argument("--force", action="store_true", help="rewrite an existing split folder")

    j = sub.add_parser("jobs", help="the job list: one run_train.sh command per class", description="the job list: one run_train.sh command per class")
    j.add_argument("split", metavar="SPLIT", help="a folder written by `split`")
    j.add_argument("--iters", type=int, help="iterations per model (default: the solver's max_iter)")
    j.add_argument("--epochs", type=float, metavar="E", help="instead of --iters: E passes over each model's own "
                   "data, iterations = ceil(E * patches / 128) (the paper's budget)")
    j.add_argument("--snapshots", type=int, metavar="N", help="N evenly spaced snapshots per model (for `quality`)")
    j.add_argument("--solver", choices=("adam", "sgd"), help="solver (default: run_train.sh's, adam)")
    j.add_argument("--runs-dir", metavar="DIR", help="where the run folders go (default runs/SPLIT-DATE-TIME)")
    j.add_argument("--baseline", metavar="MODEL", help="also a job training MODEL on all the data (the single model)")
    j.add_argument("--threads", type=int, metavar="N", help="OPENBLAS/OMP threads of each job")
    j.add_argument("--launch", action="store_true", help="run the jobs now, here (as `launch`), and report their times")
    j.add_argument("--parallel", type=int, metavar="N", help="--launch: at most N at a time (default all)")
    j.add_argument("--force", action="store_true", help="rewrite an existing jobs.txt")

    sb = sub.add_parser("submit", help="the jobs as a Slurm job array", description="the jobs as a Slurm job array")
    sb.add_argument("runs", metavar="RUNS", help="a folder written by `jobs`")
    sb.add_argument("--only", nargs="+", metavar="CLASS", help="only these jobs: class numbers, run names or "
                    "'single' (to resubmit a failed or cancelled one; it continues from its snapshots)")
    sb.add_argument("--partition", metavar="P", help="sbatch --partition")
    sb.add_argument("--cpus", type=int, metavar="N", help="sbatch --cpus-per-task (default: the jobs' --threads, else 1)")
    sb.add_argument("--time", metavar="LIMIT", help="sbatch --time")
    sb.add_argument("--wait", action="store_true", help="wait until the tasks have left the queue, then print status")

    la = sub.add_parser("launch", help="run the jobs here, without a scheduler", description="run the jobs here, without a scheduler")
    la.add_argument("runs", metavar="RUNS", help="a folder written by `jobs`")
    la.add_argument("--only", nargs="+", metavar="CLASS", help="only these jobs (class numbers, run names, 'single')")
    la.add_argument("--parallel", type=int, metavar="N", help="at most N at a time (default all)")

    st = sub.add_parser("status", help="each job's state and exit code", description="each job's state and exit code")
    st.add_argument("runs", metavar="RUNS", help="a folder written by `jobs`")
    st.add_argument("--json", metavar="FILE", help="also write the states as JSON")

    t = sub.add_parser("task", help="run one job with its status file (what each Slurm array task runs)", description="run one job with its status file (what each Slurm array task runs)")
    t.add_argument("runs", metavar="RUNS", help="a folder written by `jobs`")
    t.add_argument("index", type=int, help="the job's number (its line in jobs.txt, from 0)")

    r = sub.add_parser("report", help="training time per class vs the single model", description="training time per class vs the single model")
    r.add_argument("runs", metavar="RUNS", help="a folder written by `jobs`")
    r.add_argument("--json", metavar="FILE", help="also write the report as JSON")

    q = sub.add_parser("quality", help="time to quality: MMSR vs the single model, from their snapshots", description="time to quality: MMSR vs the single model, from their snapshots")
    q.add_argument("runs", metavar="RUNS", help="a folder written by `jobs` (with --snapshots and --baseline)")
    q.add_argument("--levels", nargs="+", default=["Set5=30.5,31,31.5", "Set14=27.6,27.9,28.2"], metavar="SET=DB,DB",
                   help="PSNR levels to reach, per dataset (default Set5=30.5,31,31.5 Set14=27.6,27.9,28.2)")
    q.add_argument("--points", type=int, metavar="N", help="milestones (default: the jobs' --snapshots)")
    cli.add_datasets(q)
    q.add_argument("--fragments", type=int, default=mmsr.DEFAULT_FRAGMENT, metavar="N",
                   help="MMSR fragment side in LR pixels (default %d)" % mmsr.DEFAULT_FRAGMENT)
    q.add_argument("--overlap", type=int, default=mmsr.DEFAULT_OVERLAP, metavar="K",
                   help="fragment overlap (default %d)" % mmsr.DEFAULT_OVERLAP)
    q.add_argument("--json", metavar="FILE", help="also write the figures as JSON")

    e = sub.add_parser("evaluate", help="MMSR vs single model vs bicubic on Set5/Set14", description="MMSR vs single model vs bicubic on Set5/Set14")
    e.add_argument("--runs", metavar="RUNS", help="class models (and the single model) from `jobs`' run folders")
    e.add_argument("--split", metavar="SPLIT", help="thresholds from a split folder")
    e.add_argument("--class-models", nargs="+", metavar="SPEC", help="one model per class, flattest first")
    e.add_argument("--single", nargs="+", metavar="SPEC", help="single-model columns (default: the runs' baseline)")
    e.add_argument("--thresholds", metavar="A,B", help="TVAT class thresholds (default: the split's)")
    e.add_argument("--vsp-threshold", type=float, metavar="T", help="VSP threshold (default: the split's, else %g)"
                   % mmsr.VSP_THRESHOLD)
    cli.add_scale(e, default=None, help="upscaling factor (default: the split's, else 3)")
    e.add_argument("--fragments", type=int, default=mmsr.DEFAULT_FRAGMENT, metavar="N",
                   help="fragment side in LR pixels (default %d)" % mmsr.DEFAULT_FRAGMENT)
    e.add_argument("--overlap", type=int, default=mmsr.DEFAULT_OVERLAP, metavar="K",
                   help="overlap of neighbouring fragments in LR pixels (default %d)" % mmsr.DEFAULT_OVERLAP)
    cli.add_datasets(e)
    e.add_argument("--pad", choices=PADS, default="replicate", help="border padding (default replicate)")
    e.add_argument("--threads", type=int, metavar="N", help="Caffe's BLAS/OpenMP threads (default: as the "
                   "environment says); 1 gives meaningful times on a machine shared with other jobs")
    e.add_argument("--per-image", action="store_true", help="also the per-image tables")
    e.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    e.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    return p.parse_args(argv)


def log(msg):
    print(msg, file=sys.stderr)


def check_output(path, force):
    if path:
        files.check_writable_file(path, force)


def write_json(path, payload):
    files.write_json(path, payload)
    print("wrote %s" % path)


# ---- split / jobs / report ----------------------------------------------------------------------

def cmd_split(a):
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    thresholds = mmsr.parse_thresholds(a.thresholds) if a.thresholds else None
    check_output(a.hist, True)
    plan = mmsr.split(models, a.scale, thresholds=thresholds, vsp_threshold=a.vsp_threshold, augment=not a.no_aug,
                      test=a.test, out=a.out, force=a.force, log=log)
    print("\n".join(report.split_lines(plan)))
    if a.hist:
        scores = mmsr.training_scores(plan["source"], plan["vsp_threshold"])
        mmsr.histogram(a.hist, scores, plan["thresholds"], title="TVAT of the training sub-images (%s)"
                       % os.path.basename(plan["source"]), labels=("training sub-images", ""))
        print("wrote %s" % a.hist)
    return 0


def cmd_jobs(a):
    if a.parallel is not None and a.parallel < 1:
        raise UserError("--parallel must be positive, not %d" % a.parallel)
    jobs = mmsr.write_jobs(a.split, iters=a.iters, solver=a.solver, runs_dir=a.runs_dir, baseline=a.baseline,
                           threads=a.threads, force=a.force, epochs=a.epochs, snapshots=a.snapshots)
    print("\n".join(report.jobs_lines(jobs, os.path.join(jobs["runs_dir"], mmsr.JOBS), next_steps=not a.launch)))
    if not a.launch:
        return 0
    return launch_and_report(jobs, None, a.parallel)


def launch_and_report(jobs, only, parallel):
    start = time.time()
    codes = mmsr.launch(jobs, parallel=parallel, entries=mmsr.select(jobs, only), log=log)
    print("jobs done in %.1f s wall" % (time.time() - start))
    print("\n".join(report.training_report(mmsr.training_times(jobs))))
    return 1 if any(codes.values()) else 0


def cmd_launch(a):
    if a.parallel is not None and a.parallel < 1:
        raise UserError("--parallel must be positive, not %d" % a.parallel)
    return launch_and_report(mmsr.read_jobs(a.runs), a.only, a.parallel)


def cmd_task(a):
    return mmsr.run_task(mmsr.read_jobs(a.runs), a.index, log=log)


def cmd_submit(a):
    from srcaffe.mmsr import slurm
    if a.cpus is not None and a.cpus < 1:
        raise UserError("--cpus must be positive, not %d" % a.cpus)
    jobs = mmsr.read_jobs(a.runs)
    slurm.submit(jobs, only=a.only, cpus=a.cpus, partition=a.partition, time_limit=a.time, log=print)
    if not a.wait:
        print("follow: python tools/mmsr.py status %s" % jobs["runs_dir"])
        return 0
    lines, bad = report.states_table(jobs, slurm.wait(jobs))
    print("\n".join(lines))
    return 1 if bad else 0


def cmd_status(a):
    from srcaffe.mmsr import slurm
    check_output(a.json, True)
    jobs = mmsr.read_jobs(a.runs)
    states = slurm.states(jobs)
    lines, bad = report.states_table(jobs, states)
    print("\n".join(lines))
    code = 1 if bad else 0
    if a.json:
        write_json(a.json, states)
    return code


def cmd_report(a):
    check_output(a.json, True)
    rep = mmsr.training_times(mmsr.read_jobs(a.runs))
    print("\n".join(report.training_report(rep)))
    if a.json:
        write_json(a.json, rep)
    return 0


def cmd_quality(a):
    from srcaffe.mmsr import quality
    check_output(a.json, True)
    names = a.datasets
    levels = {}
    for item in a.levels:
        d, _, values = item.partition("=")
        try:
            levels[d] = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            levels[d] = None
        if d not in names or not levels[d]:
            raise UserError("--levels %s: give DATASET=DB,DB,... for one of %s" % (item, ",".join(names)))
    jobs = mmsr.read_jobs(a.runs)
    res = quality.measure(jobs, names, n=a.points, fragment=a.fragments, overlap=a.overlap, log=log)
    ttq = [t for d, values in levels.items() for t in quality.time_to_quality(res, values, d)]
    print("\n".join(report.quality_table(res, names, ttq)))
    if a.json:
        write_json(a.json, dict(res, time_to_quality=ttq))
    return 0


# ---- evaluate -----------------------------------------------------------------------------------

def cmd_evaluate(a):
    check_output(a.json, a.force)
    if a.threads is not None:
        if a.threads < 1:
            raise UserError("--threads must be positive, not %d" % a.threads)
        if "caffe" in sys.modules:
            raise UserError("--threads: Caffe is already loaded in this process")
        paths.set_env(**device.thread_env(a.threads))     # read when Caffe's BLAS is loaded, below
    names = a.datasets
    image_lists = [(datasets.set_name(n), datasets.list_images(n)) for n in names]
    model, singles, settings = mmsr.load_columns(
        runs=a.runs, split=a.split, scale=a.scale, thresholds=a.thresholds, vsp_threshold=a.vsp_threshold,
        class_models=a.class_models, single=a.single, fragments=a.fragments, overlap=a.overlap, pad=a.pad)
    out = mmsr.compare(model, singles, settings, image_lists,
                       per_image=(lambda table: print(table + "\n")) if a.per_image else None)
    print("\n".join(report.evaluate_summary(out["results"], out["labels"], image_lists, out["macs_per_lr_pixel"],
                                           out["mmsr"], model, settings)))
    if a.json:
        write_json(a.json, dict(settings=settings, results=out["results"], mmsr=out["mmsr"],
                                macs_per_lr_pixel=out["macs_per_lr_pixel"]))
    return 0


def main(argv=None):
    a = parse_args(argv)
    return {"split": cmd_split, "jobs": cmd_jobs, "report": cmd_report, "evaluate": cmd_evaluate,
            "submit": cmd_submit, "launch": cmd_launch, "status": cmd_status, "task": cmd_task,
            "quality": cmd_quality}[a.command](a)
