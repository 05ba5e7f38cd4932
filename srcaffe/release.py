"""Ship a trained model into models/: weights, its numbers, its curve, and what resumes it.

models/<model>_x<scale>.caffemodel        the weights tools/predict.py and evaluate.py use by name
models/<model>_x<scale>.json              recipe, iterations, wall time, Set5/Set14 PSNR/SSIM
models/<model>_x<scale>_curve.png         train loss / test-patch PSNR against iteration
models/<model>_x<scale>_psnr.png          Set5/Set14 PSNR of the run's evaluated snapshots
models/training/<run>/                    train.log, run.json, snapshot_eval.json and the newest
                                          snapshot pair, so a later session (another machine)
                                          resumes with --snapshot
"""
import os
import shutil

from . import caffelog, files, snapshot_eval, snapshots
from .paths import ROOT, models_dir, shipped_weights
from .runs import read_run


def ship(run_dir, iteration=None, force=False, log=print):
    run_dir = os.path.abspath(run_dir)
    info = read_run(run_dir)
    model_name, scale = info["model"], info["scale"]
    weights, state = snapshots.pair(run_dir, iteration)
    stem = shipped_weights(model_name, scale)[:-len(".caffemodel")]
    keep = os.path.join(models_dir(), "training", os.path.basename(run_dir))
    outputs = [stem + ".caffemodel", stem + ".json", stem + "_curve.png", stem + "_psnr.png"]
    for path in outputs:
        files.check_new(path, force)

    log_path = os.path.join(run_dir, "train.log")
    parsed = caffelog.parse_log(log_path)
    iteration = snapshots.iteration(weights)
    # Through the run's snapshot_eval.json: the shipped point joins the curve of earlier snapshots.
    curves = snapshot_eval.evaluate_snapshots(run_dir, ("Set5", "Set14"), iterations=[iteration])
    results = {name: dict(psnr=round(p, 2), ssim=round(s, 4))
               for name, rows in curves.items() for it, p, s in rows if it == iteration}
    record = dict(model=model_name, scale=scale, iterations=iteration, solver=info.get("solver"),
                  augment=info.get("augment"), train_seconds=round(parsed["train"][-1]["seconds"]) if parsed["train"] else None,
                  segments=[dict(start_iter=s["start_iter"], max_iter=s["max_iter"], base_lr=s.get("base_lr"),
                                 deconv_only=s.get("deconv_only", False), weights=s.get("weights") and os.path.basename(s["weights"]))
                            for s in info.get("segments", [])],
                  results=results, run=os.path.relpath(keep, ROOT))
    files.make_dir(keep)
    with files.writing(stem + ".caffemodel") as tmp:
        shutil.copyfile(weights, tmp)
    files.write_json(stem + ".json", record)
    caffelog.plot(parsed, stem + "_curve.png", title="%s x%d (%s)" % (model_name, scale, info.get("solver")))
    upto = {name: [r for r in rows if r[0] <= iteration] for name, rows in curves.items()}
    snapshot_eval.plot(upto, stem + "_psnr.png", model_name, scale,
                     [s for s in info.get("segments", ()) if s["start_iter"] < iteration])
    # The resumable part of the run: the log, the run description, the snapshot evaluations so
    # far, the newest snapshot pair.
    extra = [os.path.join(run_dir, "run.json"), os.path.join(run_dir, snapshot_eval.CACHE), weights]
    for path in [log_path] + extra + ([state] if state else []):
        shutil.copyfile(path, os.path.join(keep, os.path.basename(path)))
    log("shipped %s x%d at iteration %d: Set5 %.2f dB / %.4f, Set14 %.2f dB / %.4f -> %s"
        % (model_name, scale, record["iterations"], results["Set5"]["psnr"], results["Set5"]["ssim"],
           results["Set14"]["psnr"], results["Set14"]["ssim"], os.path.relpath(stem + ".caffemodel", ROOT)))
    return record
