"""Multi-model super-resolution (MMSR, after Yuan et al., NPC 2019) with the toolkit's Caffe nets.

Several networks of different depth are trained, each on the training sub-images of one texture
class; at test time the LR image is cut into overlapping fragments, each fragment is routed to
the model of its class, and the SR fragments are blended back into one image.

Texture measure, TVAT (total variance above threshold), vectorised NumPy:
    VSP(p)  = sum over the 8 neighbours q of p of (I(p) - I(q))^2      (summed over channels for RGB)
    TVAT(I) = sum of VSP(p) over the pixels with VSP(p) >= threshold, divided by rows * cols
Border pixels use only the neighbours that exist (a corner has 3, an edge pixel 5); their VSP is
that partial sum, not rescaled to 8 neighbours. Intensities are on the 0-255 scale (uint8 images
as they are, the pipeline's [0,1] Y values times 255). The default VSP threshold, 100, ignores
pixels whose RMS difference to their neighbours is under ~3.5 grey levels (noise, smooth ramps).
`tvat(..., channels=True)` is the paper's RGB version (3 channels summed: use ~3x the threshold).

What the classes are computed on: the **LR input** (Y), for training sub-images and test
fragments alike, because at reconstruction time only the LR image exists: a class computed on the
HR label during training could not be computed for the fragment the model will be given. A
sub-image or fragment is scored on its own pixels only (no surroundings), so its class does not
depend on where it lies or on the other fragments. Classes: K-1 increasing thresholds t_1..t_K-1;
class k holds the scores in (t_k, t_k+1] (class 0: score <= t_1, so all-flat zero scores share
class 0). Thresholds are given, or the K-quantiles of the training sub-images' scores
(equal-count classes).

Reconstruction: fragments of `fragment` LR pixels on a grid with `overlap` LR pixels of overlap
(the last row/column of fragments is moved back to end at the image's edge, so it may overlap
more). Each fragment is run with `context` LR pixels of its surroundings on every side (derived
from the member's layers: its receptive field, plus the bicubic support for SRCNN), clipped at the
image border where the network's own border padding applies as in a whole-image run; its SR
block is cut out and the overlaps are averaged. With one model for every class the result is
the whole-image result (no seams), to float precision.

Training data: `split` scores the sub-images of a prepared data folder (patches.prepare, the same
data the single model trains on) and writes one data folder per class with the same layout and
meta.json (train_NNN.h5, train.txt, test.h5, test.txt), consumable by
`./run_train.sh MODEL --data CLASS_DIR`; `write_jobs` writes one run_train.sh command per class.
"""
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import time

import numpy as np

from . import ROOT, nets, patches
from .errors import UserError

VSP_THRESHOLD = 100.0        # on the 0-255 scale, Y (see the module docstring)
DEFAULT_FRAGMENT = 24        # LR pixels
DEFAULT_OVERLAP = 4          # LR pixels
INTENSITY = 255.0            # [0,1] pipeline values -> the 0-255 scale of the thresholds
SCORE_CHUNK = 50000          # sub-images scored at once (bounded memory)
PLAN = "mmsr.json"           # the split's description, in the split folder
JOBS = "jobs.txt"            # one shell command per model, in the runs folder
JOBS_META = "jobs.json"

# The 8-neighbourhood as 4 offsets: each unordered pair of neighbours is visited once and its
# squared difference added to both pixels.
_HALF_NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))


# ---- TVAT ---------------------------------------------------------------------------------------

def vsp(img, channels=False):
    """VSP of every pixel: sum of squared differences to the existing 8 neighbours.

    img: (..., H, W), or (..., H, W, C) with channels=True (the channels' sums are added).
    Leading axes are a batch. Returns float64 of shape (..., H, W)."""
    x = np.asarray(img, dtype=np.float64)
    if channels:
        if x.ndim < 3:
            raise UserError("vsp(channels=True) needs an HxWxC image, got shape %s" % (x.shape,))
        x = np.moveaxis(x, -1, 0)           # (C, ..., H, W)
    if x.ndim < 2:
        raise UserError("vsp needs an image (HxW), got shape %s" % (x.shape,))
    h, w = x.shape[-2:]
    out = np.zeros(x.shape)
    for dy, dx in _HALF_NEIGHBOURS:
        p = (Ellipsis, slice(0, h - dy), slice(max(0, -dx), w - max(0, dx)))
        q = (Ellipsis, slice(dy, h), slice(max(0, dx), w - max(0, -dx)))
        d = (x[p] - x[q]) ** 2
        out[p] += d
        out[q] += d
    return out.sum(axis=0) if channels else out


def tvat(img, threshold=VSP_THRESHOLD, channels=False):
    """TVAT of an image (or a batch (N, H, W)): sum of VSP >= threshold / (rows * cols)."""
    v = vsp(img, channels)
    h, w = v.shape[-2:]
    return np.where(v >= threshold, v, 0.0).sum(axis=(-2, -1)) / float(h * w)


def score_y(y01, threshold=VSP_THRESHOLD):
    """TVAT of Y values in [0,1] (the pipeline's scale) on the 0-255 scale; batches in chunks."""
    y = np.asarray(y01)
    if y.ndim == 2:
        return float(tvat(y * INTENSITY, threshold))
    return np.concatenate([tvat(y[i:i + SCORE_CHUNK].astype(np.float64) * INTENSITY, threshold)
                           for i in range(0, len(y), SCORE_CHUNK)]) if len(y) else np.empty(0)


def parse_thresholds(text):
    """'a,b,c' -> [a, b, c], strictly increasing (UserError otherwise)."""
    try:
        values = [float(v) for v in str(text).split(",") if v.strip() != ""]
    except ValueError:
        raise UserError("--thresholds %r: expected comma-separated numbers, e.g. 500,2000" % text) from None
    return check_thresholds(values, "--thresholds %s" % text)


def check_thresholds(values, what="thresholds"):
    values = [float(v) for v in values]
    if not values:
        raise UserError("%s: no thresholds given" % what)
    if not all(np.isfinite(values)):
        raise UserError("%s: thresholds must be finite numbers" % what)
    if any(b <= a for a, b in zip(values, values[1:])):
        raise UserError("%s: thresholds must be strictly increasing" % what)
    return values


def classify(scores, thresholds):
    """Class of each score: k such that t_k < score <= t_k+1 (0 .. len(thresholds))."""
    return np.searchsorted(np.asarray(thresholds, dtype=np.float64), np.asarray(scores), side="left")


def quantile_thresholds(scores, classes):
    """K-1 thresholds splitting the scores into K equal-count classes (ties permitting)."""
    classes = int(classes)
    if classes < 2:
        raise UserError("--classes must be at least 2, not %d" % classes)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size < classes:
        raise UserError("%d scores cannot make %d classes" % (scores.size, classes))
    t = np.quantile(scores, np.arange(1, classes) / float(classes))
    if np.any(np.diff(t) <= 0):
        raise UserError("the %d-quantiles of the training scores are not distinct (%s): too many equal "
                        "scores; use fewer classes or --thresholds" % (classes, ", ".join("%.4g" % v for v in t)))
    return [float(v) for v in t]


def class_ranges(thresholds):
    """[(low, high)] of each class: (-inf, t1], (t1, t2], ..., (tK-1, inf)."""
    edges = [-math.inf] + list(thresholds) + [math.inf]
    return list(zip(edges[:-1], edges[1:]))


# ---- fragments ----------------------------------------------------------------------------------

def fragment_starts(length, size, overlap):
    """Start positions along one axis: step size-overlap, the last one ending at the edge."""
    if size < 1:
        raise UserError("--fragments must be at least 1 pixel, not %d" % size)
    if overlap < 0 or overlap >= size:
        raise UserError("--overlap must be 0 .. fragment size - 1 (%d), not %d" % (size - 1, overlap))
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, size - overlap))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def fragments(shape, size=DEFAULT_FRAGMENT, overlap=DEFAULT_OVERLAP):
    """[(y, x, h, w)] covering an image of shape (H, W, ...), row by row."""
    height, width = shape[:2]
    return [(y, x, min(size, height), min(size, width))
            for y in fragment_starts(height, size, overlap) for x in fragment_starts(width, size, overlap)]


def score_fragments(img, frags, threshold=VSP_THRESHOLD, channels=False):
    """TVAT of each fragment of an image (values on the 0-255 scale), each on its own pixels."""
    img = np.asarray(img)
    return np.array([float(tvat(img[y:y + h, x:x + w], threshold, channels)) for y, x, h, w in frags])


# ---- training data of each class ----------------------------------------------------------------

def check_models(models, scale):
    """The per-class models must be LR-input nets (FSRCNN family) of one patch geometry."""
    if len(models) < 2:
        raise UserError("MMSR needs at least 2 models (one per class), got %d" % len(models))
    geos = []
    for m in models:
        g = nets.geometry(m, scale)
        if g.upsampled_input:
            raise UserError("%s takes a bicubic-upscaled input; MMSR classes are computed on LR "
                            "sub-images, so the class models must be FSRCNN variants (fsrcnn, fsrcnn-s, "
                            "fsrcnn-D-S-M)" % m)
        geos.append((g.input_size, g.label_size))
    if len(set(geos)) > 1:
        raise UserError("the class models have different patch geometries: %s"
                        % ", ".join("%s %d->%d" % ((m,) + g) for m, g in zip(models, geos)))


def read_list(path):
    try:
        with open(path) as f:
            return [line.strip() for line in f if line.strip()]
    except OSError as exc:
        raise UserError("%s: %s" % (path, exc.strerror or exc)) from None


def training_scores(folder, threshold=VSP_THRESHOLD):
    """TVAT of every training input of a prepared data folder, in train.txt order."""
    import h5py

    out = []
    for path in read_list(os.path.join(folder, "train.txt")):
        with h5py.File(path, "r") as f:
            data = f["data"]
            for i in range(0, data.shape[0], SCORE_CHUNK):
                out.append(score_y(data[i:i + SCORE_CHUNK, 0], threshold))
    return np.concatenate(out)


def training_thresholds(model, scale, classes, augment=True, vsp_threshold=VSP_THRESHOLD, train_set="T91", log=print):
    """(K-quantile thresholds, scores) of the training sub-images of a model's prepared data
    folder (prepared first if missing): the thresholds `split` chooses by default."""
    check_models([model, model], scale)
    folder = patches.prepare(model, scale, augment=augment, train_set=train_set, log=log)
    scores = training_scores(folder, vsp_threshold)
    return quantile_thresholds(scores, classes), scores


def default_split_dir(models, common):
    return os.path.join(patches.data_root(), "mmsr-%s-%s" % ("+".join(models), os.path.basename(common)))


def _plan_key(plan):
    return {k: plan.get(k) for k in ("models", "scale", "thresholds", "vsp_threshold", "source", "test")}


def split(models, scale=3, thresholds=None, vsp_threshold=VSP_THRESHOLD, augment=True, train_set="T91",
          test="class", out=None, force=False, log=print):
    """One prepared data folder per class (class0 = flattest) under `out`; returns the plan dict.

    models: one model per class, flattest class first (e.g. ["fsrcnn-s", "fsrcnn"]).
    thresholds: K-1 TVAT thresholds, or None for the K-quantiles of the training sub-images.
    test: 'class' (the class's own Set5 patches, LR sub-images at stride 1, up to 1000) or
          'common' (the common folder's 1000 Set5 patches, as the single model is tested).
    """
    nets.check_scale(scale)
    models = list(models)
    check_models(models, scale)
    if test not in ("class", "common"):
        raise UserError("--test must be 'class' or 'common', not %r" % test)
    if thresholds is not None:
        thresholds = check_thresholds(thresholds)
        if len(thresholds) != len(models) - 1:
            raise UserError("%d models need %d thresholds, got %d" % (len(models), len(models) - 1, len(thresholds)))
    vsp_threshold = float(vsp_threshold)
    start = time.time()
    common = patches.prepare(models[0], scale, augment=augment, train_set=train_set, log=log)
    meta = patches.check_matches(common, models[0], scale)
    out = os.path.abspath(out or default_split_dir(models, common))

    scores = training_scores(common, vsp_threshold)
    if thresholds is None:
        thresholds = quantile_thresholds(scores, len(models))
    labels = classify(scores, thresholds)
    counts = np.bincount(labels, minlength=len(models))
    if not counts.all():
        raise UserError("class %d gets no training sub-image with thresholds %s (scores %.4g .. %.4g)"
                        % (int(np.argmin(counts)), ",".join("%g" % t for t in thresholds), scores.min(), scores.max()))
    plan = dict(method="MMSR (TVAT classes)", models=models, scale=scale, thresholds=thresholds,
                vsp_threshold=vsp_threshold, scored_on="LR input sub-image, Y, 0-255 scale",
                source=common, test=test, augment=meta.get("augment"), train_set=meta.get("train_set"))
    plan_path = os.path.join(out, PLAN)
    if os.path.isfile(plan_path) and not force:
        with open(plan_path) as f:
            old = json.load(f)
        if _plan_key(old) == _plan_key(plan):
            log("mmsr: reusing %s" % out)
            return old
        raise UserError("%s holds a split with other settings; rerun with --force to rewrite it, or give --out"
                        % out)
    if os.path.isdir(out) and os.listdir(out) and not force:
        raise UserError("%s exists and is not an MMSR split; give another --out (or --force)" % out)
    if os.path.isdir(out):
        shutil.rmtree(out)
    dirs = [os.path.join(out, "class%d" % k) for k in range(len(models))]
    for d in dirs:
        os.makedirs(d)

    _write_train(common, labels, dirs, log)
    tests = _write_tests(common, models[0], scale, test, thresholds, vsp_threshold, dirs)
    ranges = class_ranges(thresholds)
    plan["classes"] = []
    for k, d in enumerate(dirs):
        files = read_list(os.path.join(d, "train.txt"))
        cmeta = {key: meta[key] for key in ("scale", "input_size", "label_size", "label_offset",
                                            "upsampled_input", "stride", "augment", "train_set", "train_images")}
        cmeta.update(test_set=meta["test_set"], train_patches=int(counts[k]), test_patches=tests[k],
                     files=len(files), seconds=round(time.time() - start, 1),
                     mmsr=dict(cls=k, classes=len(models), model=models[k], tvat_range=_json_range(ranges[k]),
                               vsp_threshold=vsp_threshold, test=test, source=common,
                               share=round(float(counts[k]) / len(labels), 4)))
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(cmeta, f, indent=1)
        plan["classes"].append(dict(cls=k, model=models[k], dir=d, train_patches=int(counts[k]),
                                    test_patches=tests[k], share=cmeta["mmsr"]["share"],
                                    tvat_range=cmeta["mmsr"]["tvat_range"]))
        log("mmsr: class %d (%s, TVAT in %s): %d train patches (%.1f%%), %d test patches -> %s"
            % (k, models[k], _range_text(ranges[k]), counts[k], 100.0 * counts[k] / len(labels), tests[k], d))
    plan.update(train_patches=int(len(labels)), seconds=round(time.time() - start, 1),
                created=time.strftime("%Y-%m-%d %H:%M:%S"))
    with open(plan_path, "w") as f:
        json.dump(plan, f, indent=1)
    log("mmsr: thresholds %s, %.1f s -> %s" % (", ".join("%.4g" % t for t in thresholds), plan["seconds"], out))
    return plan


def _json_range(r):
    return [None if math.isinf(v) else v for v in r]


def _range_text(r):
    lo, hi = r
    if math.isinf(lo):
        return "<= %.4g" % hi
    return "> %.4g" % lo if math.isinf(hi) else "(%.4g, %.4g]" % (lo, hi)


def _write_train(common, labels, dirs, log):
    """Copy each training sub-image to its class, keeping the common folder's (shuffled) order,
    in files of patches.PATCHES_PER_FILE like patches.prepare."""
    import h5py

    buffers = [([], []) for _ in dirs]
    files = [[] for _ in dirs]

    def flush(k, final=False):
        inputs, labs = buffers[k]
        if sum(len(a) for a in inputs) < patches.PATCHES_PER_FILE and not (final and inputs):
            return
        data, lab = np.concatenate(inputs), np.concatenate(labs)
        while len(data) >= patches.PATCHES_PER_FILE or (final and len(data)):
            path = os.path.join(dirs[k], "train_%03d.h5" % len(files[k]))
            patches.write_h5(path, data[:patches.PATCHES_PER_FILE], lab[:patches.PATCHES_PER_FILE])
            files[k].append(path)
            data, lab = data[patches.PATCHES_PER_FILE:], lab[patches.PATCHES_PER_FILE:]
        buffers[k] = ([data], [lab]) if len(data) else ([], [])

    first = 0
    for path in read_list(os.path.join(common, "train.txt")):
        with h5py.File(path, "r") as f:
            data, lab = f["data"][:, 0], f["label"][:, 0]
        mine = labels[first:first + len(data)]
        first += len(data)
        for k in range(len(dirs)):
            pick = mine == k
            if pick.any():
                buffers[k][0].append(data[pick])
                buffers[k][1].append(lab[pick])
                flush(k)
    for k, d in enumerate(dirs):
        flush(k, final=True)
        with open(os.path.join(d, "train.txt"), "w") as f:
            f.write("".join(os.path.abspath(p) + "\n" for p in files[k]))


def _write_tests(common, model, scale, test, thresholds, vsp_threshold, dirs):
    """test.h5 + test.txt of each class; returns the patch counts."""
    import h5py

    counts = []
    if test == "common":
        for d in dirs:
            shutil.copyfile(os.path.join(common, "test.h5"), os.path.join(d, "test.h5"))
            with h5py.File(os.path.join(d, "test.h5"), "r") as f:
                counts.append(int(f["data"].shape[0]))
    else:
        meta = patches.read_meta(common)
        inputs, labels = patches.collect(model, scale, patches.dataset_images(meta["test_set"]), 1, False)
        cls = classify(score_y(inputs, vsp_threshold), thresholds)
        rng = np.random.RandomState(patches.SEED)
        for k, d in enumerate(dirs):
            idx = np.flatnonzero(cls == k)
            if not len(idx):
                raise UserError("class %d has no %s test patch; use --test common" % (k, meta["test_set"]))
            if len(idx) > patches.TEST_PATCHES:
                idx = np.sort(rng.choice(idx, patches.TEST_PATCHES, replace=False))
            patches.write_h5(os.path.join(d, "test.h5"), inputs[idx], labels[idx])
            counts.append(int(len(idx)))
    for d in dirs:
        with open(os.path.join(d, "test.txt"), "w") as f:
            f.write(os.path.abspath(os.path.join(d, "test.h5")) + "\n")
    return counts


def read_plan(split_dir):
    path = os.path.join(split_dir, PLAN)
    try:
        with open(path) as f:
            plan = json.load(f)
    except FileNotFoundError:
        raise UserError("%s: not an MMSR split (no %s; make one with tools/mmsr.py split)" % (split_dir, PLAN)) from None
    except (OSError, ValueError) as exc:
        raise UserError("%s: unreadable (%s)" % (path, exc)) from None
    for key in ("models", "scale", "thresholds", "vsp_threshold", "classes"):
        if key not in plan:
            raise UserError("%s: not an MMSR split description (no %r)" % (path, key))
    return plan


# ---- job list -----------------------------------------------------------------------------------

def write_jobs(split_dir, iters=None, solver=None, runs_dir=None, baseline=None, threads=None, force=False):
    """Write RUNS/jobs.txt (one ./run_train.sh command per class model, plus the single model on all
    the data with `baseline`) and RUNS/jobs.json; returns the jobs dict."""
    split_dir = os.path.abspath(split_dir)
    plan = read_plan(split_dir)
    scale = int(plan["scale"])
    if baseline:
        nets.architecture(baseline)
        g, c = nets.geometry(baseline, scale), patches.read_meta(plan["source"])
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
    from .caffelog import parse_log

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


def newest_caffemodel(run_dir):
    found = []
    for name in os.listdir(run_dir) if os.path.isdir(run_dir) else []:
        m = re.search(r"_iter_(\d+)\.caffemodel$", name)
        if m:
            found.append((int(m.group(1)), os.path.join(run_dir, name)))
    if not found:
        raise UserError("%s: no .caffemodel snapshot (has its training run?)" % run_dir)
    return max(found)[1]


# ---- reconstruction -----------------------------------------------------------------------------

def member_arch(member):
    """Architecture name (srcaffe.nets) of a loaded model: inference.Model or official.OfficialModel."""
    return getattr(member, "arch", None) or member.name


def context_px(member):
    """LR pixels of surroundings a fragment needs so that its SR block equals the whole-image run.

    For the toolkit's models (inference.Model) this is exact: the input span its own tiling
    derives from the layers (Model._span), for a fragment's target block, back in LR pixels (for
    SRCNN, whose input is the bicubic-upscaled image, 2 more LR pixels: the 4-tap bicubic kernel).
    For others (the authors' released models, padded layer by layer) a bound from the layers:
    every spatial conv reaches (k-1)/2 pixels (LR for FSRCNN, HR for SRCNN), a deconvolution of
    kernel k and stride s ceil(((k-1)/2 + 1)/s) LR pixels, plus one for safety."""
    scale = member.scale
    if hasattr(member, "_span"):
        a, b = 100, 110                       # any fragment: the span is translation invariant
        if member.upsampled:                  # rows [a, b) of LR = rows [s*a, s*b) of the HR input
            lo, hi = member._span(scale * a + member.crop, scale * b - 1 + member.crop)
            lo, hi = (lo - member.pad_px) // scale - 2, -(-(hi - member.pad_px) // scale) + 2
        else:
            lo, hi = member._span(scale * a + member.crop, scale * b - 1 + member.crop)
            lo, hi = lo - member.pad_px, hi - member.pad_px
        return max(0, a - lo, hi - (b - 1))
    arch = member_arch(member)
    radius, reach = 0, 0
    for layer in nets.layers(arch, scale):
        if layer.kind == "conv":
            radius += (layer.kernel - 1) // 2
        else:
            reach = -(-((layer.kernel - 1) // 2 + 1) // layer.stride)
    if nets.geometry(arch, scale).upsampled_input:
        return -(-radius // scale) + 2 + 1
    return radius + reach + 1


def macs_per_lr_pixel(arch, scale):
    """Multiply-adds of a net per LR pixel (conv: k*k*n_in*n_out per input pixel; the
    deconvolution the same per input pixel; SRCNN works on scale^2 pixels per LR pixel)."""
    px = float(scale * scale) if nets.geometry(arch, scale).upsampled_input else 1.0
    macs, n_in = 0.0, 1
    for layer in nets.layers(arch, scale):
        macs += px * layer.kernel ** 2 * n_in * layer.num_output
        if layer.kind == "deconv":
            px *= layer.stride ** 2
        n_in = layer.num_output
    return macs


def load_member(spec, scale, pad="replicate"):
    """A class model from a spec: 'official-NAME' (the authors' released weights), a run folder
    (its newest snapshot), a .caffemodel file or a toolkit model name (models/NAME_xS)."""
    spec = str(spec)
    if spec.startswith("official-"):
        from . import official
        return official.load_official(spec, scale, padding=pad)
    from . import inference
    path = newest_caffemodel(spec) if os.path.isdir(spec) else spec
    return inference.load_model(path, scale, pad=pad)


class MMSR:
    """Route LR fragments to the model of their TVAT class and blend the SR fragments.

    members: one loaded model per class (inference.Model or official.OfficialModel; the same
    object may serve several classes). thresholds: len(members)-1 TVAT thresholds."""

    def __init__(self, members, thresholds, fragment=DEFAULT_FRAGMENT, overlap=DEFAULT_OVERLAP,
                 vsp_threshold=VSP_THRESHOLD, name="mmsr"):
        self.members = list(members)
        if not self.members:
            raise UserError("MMSR needs at least one model")
        thresholds = list(thresholds or [])
        if len(thresholds) != len(self.members) - 1:
            raise UserError("%d models need %d thresholds, got %d"
                            % (len(self.members), len(self.members) - 1, len(thresholds)))
        self.thresholds = check_thresholds(thresholds) if thresholds else []
        scales = {m.scale for m in self.members}
        if len(scales) != 1:
            raise UserError("the class models have different scales: %s" % sorted(scales))
        self.scale = scales.pop()
        shifts = {bool(getattr(m, "shift", False)) for m in self.members}
        if len(shifts) != 1:
            raise UserError("the authors' FSRCNN x3 models (official-*) compare their output one pixel "
                            "off (shave_x3) and cannot be mixed with the toolkit's models in one MMSR")
        self.shift = shifts.pop()
        fragment_starts(fragment + 1, fragment, overlap)   # validates both
        self.fragment, self.overlap, self.vsp_threshold, self.name = int(fragment), int(overlap), float(vsp_threshold), name
        self.archs = [member_arch(m) for m in self.members]
        self.context = [context_px(m) for m in self.members]
        self.macs = [macs_per_lr_pixel(a, self.scale) for a in self.archs]
        self.reset_stats()

    def reset_stats(self):
        self.stats = dict(fragments=[0] * len(self.members), area=[0] * len(self.members), pixels=0, seconds=0.0)

    def classes(self, lr_y, frags=None):
        """(fragments, their TVAT scores, their classes) of an LR Y image in [0,1]."""
        lr = np.asarray(lr_y, dtype=np.float64)
        frags = fragments(lr.shape, self.fragment, self.overlap) if frags is None else frags
        scores = score_fragments(lr * INTENSITY, frags, self.vsp_threshold)
        return frags, scores, classify(scores, self.thresholds) if self.thresholds else np.zeros(len(frags), int)

    def upscale_y(self, lr_y, scale=None):
        """SR Y (float64, unclipped) of an LR Y image in [0,1], fragment by fragment."""
        if scale is not None and int(scale) != self.scale:
            raise UserError("this MMSR holds x%d models; it cannot upscale x%s" % (self.scale, scale))
        lr = np.asarray(lr_y, dtype=np.float64)
        if lr.ndim != 2:
            raise UserError("upscale_y expects an HxW Y image, got shape %s" % (lr.shape,))
        start = time.time()
        s, (height, width) = self.scale, lr.shape
        acc, count = np.zeros((s * height, s * width)), np.zeros((s * height, s * width))
        frags, _, cls = self.classes(lr)
        for (y, x, h, w), k in zip(frags, cls):
            member, c = self.members[k], self.context[k]
            y0, y1, x0, x1 = max(0, y - c), min(height, y + h + c), max(0, x - c), min(width, x + w + c)
            out = member.upscale_y(lr[y0:y1, x0:x1])
            oy, ox = s * (y - y0), s * (x - x0)
            acc[s * y:s * (y + h), s * x:s * (x + w)] += out[oy:oy + s * h, ox:ox + s * w]
            count[s * y:s * (y + h), s * x:s * (x + w)] += 1
            self.stats["fragments"][k] += 1
            self.stats["area"][k] += h * w
        self.stats["pixels"] += height * width
        self.stats["seconds"] += time.time() - start
        return acc / count

    def upscaler(self, lr_y, scale):
        """srcaffe.evaluation upscaler; the authors' FSRCNN x3 models get their one-pixel shift
        (official.shift_down_right) on the whole image, as OfficialModel.upscaler does."""
        sr = self.upscale_y(lr_y, scale)
        if self.shift:
            from .official import shift_down_right
            sr = shift_down_right(sr)
        return sr

    def cost(self):
        """Mean multiply-adds per LR pixel of the fragments run so far (their own area, context
        and overlap excluded), and the share of fragment area per class."""
        area = float(sum(self.stats["area"])) or 1.0
        share = [a / area for a in self.stats["area"]]
        return sum(sh * m for sh, m in zip(share, self.macs)), share


# ---- figure -------------------------------------------------------------------------------------

def histogram(path, scores, thresholds=(), reference=None, title=None, labels=("scored", "training sub-images")):
    """PNG: histogram of TVAT scores on a log axis (zeros in the first bin), an optional
    reference distribution (e.g. the training sub-images) as a density, the class boundaries
    as dashed vertical lines with the class numbers between them. matplotlib Agg, no display."""
    from matplotlib.figure import Figure

    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UserError("--hist %s: folder %s does not exist" % (path, parent))
    scores = np.asarray(scores, dtype=np.float64)
    every = np.concatenate([scores] + ([np.asarray(reference, dtype=np.float64)] if reference is not None else []))
    lo = 1.0
    hi = max(lo * 10, every.max() * 1.1 if every.size else 1.0, max(thresholds, default=0) * 1.5)
    bins = np.geomspace(lo, hi, 60)
    fig = Figure(figsize=(8, 4.5), dpi=100)
    ax = fig.subplots()

    def fraction(x):
        return np.full(len(x), 1.0 / max(1, len(x)))
    if reference is not None:
        ref = np.clip(np.asarray(reference, dtype=np.float64), lo, None)
        ax.hist(ref, bins=bins, weights=fraction(ref), color="0.75", label="%s (%d)" % (labels[1], ref.size))
    if scores.size:
        ax.hist(np.clip(scores, lo, None), bins=bins, weights=fraction(scores),
                histtype="step" if reference is not None else "bar", lw=1.5, color="C0",
                alpha=1.0 if reference is not None else 0.8, label="%s (%d)" % (labels[0], scores.size))
    ax.set_xscale("log")
    edges = [lo] + list(thresholds) + [hi]
    for t in thresholds:
        ax.axvline(t, color="C3", ls="--", lw=1.2)
        ax.text(t, 1.0, " %.4g" % t, color="C3", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
    counts = np.bincount(classify(scores, thresholds), minlength=len(thresholds) + 1) if scores.size else None
    for k in range(len(thresholds) + 1):
        centre = math.sqrt(max(edges[k], lo) * edges[k + 1])
        text = "class %d" % k + ("\n%d" % counts[k] if counts is not None else "")
        ax.text(centre, 0.9, text, ha="center", va="top", transform=ax.get_xaxis_transform(), fontsize=9)
    ax.set_xlabel("TVAT (0-255 scale; log axis; values below 1, zeros included, in the first bin)")
    ax.set_ylabel("fraction per bin")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    return path
