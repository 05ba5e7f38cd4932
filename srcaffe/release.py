"""Ship a trained model into models/: weights, its numbers, its curve, and what resumes it.

models/<model>_x<scale>.caffemodel        the weights tools/predict.py and evaluate.py use by name
models/<model>_x<scale>.json              recipe, iterations, wall time, Set5/Set14 PSNR/SSIM
models/<model>_x<scale>_curve.png         train loss / test PSNR against iteration
models/training/<run>/                    train.log, run.json and the newest snapshot pair, so a
                                          later session (another machine) resumes with --snapshot
"""
import glob
import json
import os
import re
import shutil

from . import ROOT, caffelog, datasets, evaluation
from .errors import UserError
from .inference import load_model, models_dir, shipped_weights


def _iteration(path):
    match = re.search(r"_iter_(\d+)\.(caffemodel|solverstate)$", path)
    return int(match.group(1)) if match else -1


def snapshot_pair(run_dir, iteration=None):
    models = sorted(glob.glob(os.path.join(run_dir, "*_iter_*.caffemodel")), key=_iteration)
    if iteration is not None:
        models = [m for m in models if _iteration(m) == iteration]
    if not models:
        raise UserError("%s: no %s.caffemodel" % (run_dir, "_iter_%d" % iteration if iteration else "snapshot"))
    model = models[-1]
    state = model[:-len(".caffemodel")] + ".solverstate"
    return model, (state if os.path.isfile(state) else None)


def ship(run_dir, iteration=None, force=False, log=print):
    run_dir = os.path.abspath(run_dir)
    try:
        with open(os.path.join(run_dir, "run.json")) as f:
            info = json.load(f)
    except (OSError, ValueError) as exc:
        raise UserError("%s: not a run folder of run_train.sh (%s)" % (run_dir, exc))
    model_name, scale = info["model"], info["scale"]
    weights, state = snapshot_pair(run_dir, iteration)
    stem = shipped_weights(model_name, scale)[:-len(".caffemodel")]
    keep = os.path.join(models_dir(), "training", os.path.basename(run_dir))
    outputs = [stem + ".caffemodel", stem + ".json", stem + "_curve.png"]
    for path in outputs:
        if os.path.exists(path) and not force:
            raise UserError("%s: already exists; refusing to overwrite it (use --force)" % path)

    log_path = os.path.join(run_dir, "train.log")
    parsed = caffelog.parse_log(log_path)
    model = load_model(weights, scale=scale, model=model_name)
    results = {}
    for dataset in ("Set5", "Set14"):
        r = evaluation.evaluate(model.upscaler, datasets.list_images(dataset), scale, model_name, dataset=dataset)
        results[dataset] = dict(psnr=round(r["mean_psnr"], 2), ssim=round(r["mean_ssim"], 4))
    record = dict(model=model_name, scale=scale, iterations=_iteration(weights), solver=info.get("solver"),
                  augment=info.get("augment"), train_seconds=round(parsed["train"][-1]["seconds"]) if parsed["train"] else None,
                  segments=[dict(start_iter=s["start_iter"], max_iter=s["max_iter"], base_lr=s.get("base_lr"),
                                 deconv_only=s.get("deconv_only", False), weights=s.get("weights") and os.path.basename(s["weights"]))
                            for s in info.get("segments", [])],
                  results=results, run=os.path.relpath(keep, ROOT))
    os.makedirs(keep, exist_ok=True)
    shutil.copyfile(weights, stem + ".caffemodel")
    with open(stem + ".json", "w") as f:
        json.dump(record, f, indent=1)
    caffelog.plot(parsed, stem + "_curve.png", title="%s x%d (%s)" % (model_name, scale, info.get("solver")))
    # The resumable part of the run: the log, the run description, the newest snapshot pair.
    for path in [log_path, os.path.join(run_dir, "run.json"), weights] + ([state] if state else []):
        shutil.copyfile(path, os.path.join(keep, os.path.basename(path)))
    log("shipped %s x%d at iteration %d: Set5 %.2f dB / %.4f, Set14 %.2f dB / %.4f -> %s"
        % (model_name, scale, record["iterations"], results["Set5"]["psnr"], results["Set5"]["ssim"],
           results["Set14"]["psnr"], results["Set14"]["ssim"], os.path.relpath(stem + ".caffemodel", ROOT)))
    return record
