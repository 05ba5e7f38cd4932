"""The training data of each texture class: a prepared HDF5 folder split by the TVAT of its
sub-images into one prepared data folder per class (usable by ./run_train.sh --data)."""
import math
import os
import shutil
import time

import numpy as np

from .. import data_folder, files, hdf5_patches, nets
from ..errors import UserError
from ..paths import data_root
from .texture import SCORE_CHUNK, VSP_THRESHOLD, check_thresholds, class_ranges, classify, quantile_thresholds, score_y

PLAN = "mmsr.json"           # the split's description, in the split folder


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


def training_scores(folder, threshold=VSP_THRESHOLD):
    """TVAT of every training input of a prepared data folder, in train.txt order."""
    import h5py

    out = []
    for path in data_folder.listed_files(folder, "train.txt"):
        with h5py.File(path, "r") as f:
            data = f["data"]
            for i in range(0, data.shape[0], SCORE_CHUNK):
                out.append(score_y(data[i:i + SCORE_CHUNK, 0], threshold))
    return np.concatenate(out)


def training_thresholds(model, scale, classes, augment=True, vsp_threshold=VSP_THRESHOLD, train_set="T91", log=print):
    """(K-quantile thresholds, scores) of the training sub-images of a model's prepared data
    folder (prepared first if missing): the thresholds `split` chooses by default."""
    check_models([model, model], scale)
    folder = hdf5_patches.prepare(model, scale, augment=augment, train_set=train_set, log=log)
    scores = training_scores(folder, vsp_threshold)
    return quantile_thresholds(scores, classes), scores


def default_split_dir(models, common):
    return os.path.join(data_root(), "mmsr-%s-%s" % ("+".join(models), os.path.basename(common)))


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
    common = hdf5_patches.prepare(models[0], scale, augment=augment, train_set=train_set, log=log)
    meta = hdf5_patches.check_matches(common, models[0], scale)
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
    # One writer at a time; written aside and renamed into place whole (srcaffe.data_folder), so
    # an interrupted split never looks prepared.
    with data_folder.lock(out, log):
        plan_path = os.path.join(out, PLAN)
        if os.path.isfile(plan_path) and not force:
            old = files.read_json(plan_path, "MMSR split description")
            if _plan_key(old) == _plan_key(plan):
                log("mmsr: reusing %s" % out)
                return old
            raise UserError("%s holds a split with other settings; rerun with --force to rewrite it, or give --out"
                            % out)
        if os.path.isdir(out) and os.listdir(out) and not force:
            raise UserError("%s exists and is not an MMSR split; give another --out (or --force)" % out)
        with data_folder.build(out) as part:
            _write_split(plan, meta, common, labels, counts, part, out, start, log)
    log("mmsr: thresholds %s, %.1f s -> %s" % (", ".join("%.4g" % t for t in thresholds), plan["seconds"], out))
    return plan


def _write_split(plan, meta, common, labels, counts, part, out, start, log):
    """Every class folder and mmsr.json (last) into `part`, naming the files where they will be: in `out`."""
    models, thresholds, vsp_threshold, test = plan["models"], plan["thresholds"], plan["vsp_threshold"], plan["test"]
    dirs = [(os.path.join(part, "class%d" % k), os.path.join(out, "class%d" % k)) for k in range(len(models))]
    for d, _ in dirs:
        files.make_dir(d)
    n_files = _write_train(common, labels, dirs, log)
    tests = _write_tests(common, models[0], plan["scale"], test, thresholds, vsp_threshold, dirs)
    ranges = class_ranges(thresholds)
    plan["classes"] = []
    for k, (d, final) in enumerate(dirs):
        cmeta = {key: meta[key] for key in ("scale", "input_size", "label_size", "label_offset",
                                            "upsampled_input", "stride", "augment", "train_set", "train_images")}
        cmeta.update(test_set=meta["test_set"], train_patches=int(counts[k]), test_patches=tests[k],
                     files=n_files[k], seconds=round(time.time() - start, 1),
                     mmsr=dict(cls=k, classes=len(models), model=models[k], tvat_range=_json_range(ranges[k]),
                               vsp_threshold=vsp_threshold, test=test, source=common,
                               share=round(float(counts[k]) / len(labels), 4)))
        data_folder.write_meta(d, cmeta)
        plan["classes"].append(dict(cls=k, model=models[k], dir=final, train_patches=int(counts[k]),
                                    test_patches=tests[k], share=cmeta["mmsr"]["share"],
                                    tvat_range=cmeta["mmsr"]["tvat_range"]))
        log("mmsr: class %d (%s, TVAT in %s): %d train patches (%.1f%%), %d test patches -> %s"
            % (k, models[k], _range_text(ranges[k]), counts[k], 100.0 * counts[k] / len(labels), tests[k], final))
    plan.update(train_patches=int(len(labels)), seconds=round(time.time() - start, 1),
                created=time.strftime("%Y-%m-%d %H:%M:%S"))
    files.write_json(os.path.join(part, PLAN), plan)


def _json_range(r):
    return [None if math.isinf(v) else v for v in r]


def _range_text(r):
    lo, hi = r
    if math.isinf(lo):
        return "<= %.4g" % hi
    return "> %.4g" % lo if math.isinf(hi) else "(%.4g, %.4g]" % (lo, hi)


def _write_train(common, labels, dirs, log):
    """Copy each training sub-image to its class, keeping the common folder's (shuffled) order,
    in files of hdf5_patches.PATCHES_PER_FILE like hdf5_patches.prepare. dirs: (folder written,
    its final place). Returns the number of files of each class."""
    import h5py

    buffers = [([], []) for _ in dirs]
    names = [[] for _ in dirs]

    def flush(k, final=False):
        inputs, labs = buffers[k]
        if sum(len(a) for a in inputs) < hdf5_patches.PATCHES_PER_FILE and not (final and inputs):
            return
        data, lab = np.concatenate(inputs), np.concatenate(labs)
        while len(data) >= hdf5_patches.PATCHES_PER_FILE or (final and len(data)):
            names[k].append("train_%03d.h5" % len(names[k]))
            data_folder.write_h5(os.path.join(dirs[k][0], names[k][-1]), data[:hdf5_patches.PATCHES_PER_FILE],
                                 lab[:hdf5_patches.PATCHES_PER_FILE])
            data, lab = data[hdf5_patches.PATCHES_PER_FILE:], lab[hdf5_patches.PATCHES_PER_FILE:]
        buffers[k] = ([data], [lab]) if len(data) else ([], [])

    first = 0
    for path in hdf5_patches.listed_files(common, "train.txt"):
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
    for k, (d, final) in enumerate(dirs):
        flush(k, final=True)
        data_folder.write_list(d, final, "train.txt", names[k])
    return [len(n) for n in names]


def _write_tests(common, model, scale, test, thresholds, vsp_threshold, dirs):
    """test.h5 + test.txt of each class; returns the patch counts."""
    import h5py

    counts = []
    if test == "common":
        for d, _ in dirs:
            shutil.copyfile(os.path.join(common, "test.h5"), os.path.join(d, "test.h5"))
            with h5py.File(os.path.join(d, "test.h5"), "r") as f:
                counts.append(int(f["data"].shape[0]))
    else:
        meta = hdf5_patches.read_meta(common)
        inputs, labels = hdf5_patches.collect(model, scale, hdf5_patches.dataset_images(meta["test_set"]), 1, False)
        cls = classify(score_y(inputs, vsp_threshold), thresholds)
        rng = np.random.RandomState(hdf5_patches.SEED)
        for k, (d, _) in enumerate(dirs):
            idx = np.flatnonzero(cls == k)
            if not len(idx):
                raise UserError("class %d has no %s test patch; use --test common" % (k, meta["test_set"]))
            if len(idx) > hdf5_patches.TEST_PATCHES:
                idx = np.sort(rng.choice(idx, hdf5_patches.TEST_PATCHES, replace=False))
            data_folder.write_h5(os.path.join(d, "test.h5"), inputs[idx], labels[idx])
            counts.append(int(len(idx)))
    for d, final in dirs:
        data_folder.write_list(d, final, "test.txt", ["test.h5"])
    return counts


def read_plan(split_dir):
    path = os.path.join(split_dir, PLAN)
    plan = files.read_json(path, "MMSR split description", missing=(
        "%s: not an MMSR split (no %s; make one with tools/mmsr.py split)" % (split_dir, PLAN)))
    for key in ("models", "scale", "thresholds", "vsp_threshold", "classes"):
        if key not in plan:
            raise UserError("%s: not an MMSR split description (no %r)" % (path, key))
    return plan


