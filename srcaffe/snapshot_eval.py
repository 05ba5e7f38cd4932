"""Set5/Set14 PSNR of a run's snapshots against iteration: the papers' convergence figures.

The test PSNR in Caffe's log is measured on test-set *patches*; the papers plot the image-level
Set5 PSNR against the number of backprops (SRCNN Fig. 1 and 6, FSRCNN Fig. 5). This evaluates
every snapshot with the toolkit's exact evaluation (evaluation.evaluate) and plots that, with the
bicubic and paper lines.

Results are kept in RUN_DIR/snapshot_eval.json, keyed by dataset and iteration and checked
against the snapshot's SHA-256 (copies keep it, mtimes do not), so each snapshot is evaluated
once and a run resumed later, elsewhere (from models/training/<run>/, where release.ship
keeps this file) only evaluates its new snapshots.
"""
import json
import os

from . import datasets, evaluation, files, papers, snapshots
from .errors import UserError
from .models import load_model
from .runs import read_run

CACHE = "snapshot_eval.json"
PLOT = "snapshot_eval.png"


def select(snaps, every=None, last=True):
    """The snapshots at multiples of `every` (all when None), plus the newest when `last`."""
    if not every:
        return list(snaps)
    picked = [s for s in snaps if s[0] % every == 0]
    if last and snaps and snaps[-1] not in picked:
        picked.append(snaps[-1])
    return picked


def _load_cache(path):
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as exc:
        raise UserError("%s: not valid JSON (%s); move it away to evaluate again" % (path, exc))


def evaluate_snapshots(run_dir, dataset_names=datasets.EVAL_SETS, every=None, iterations=None, log=None):
    """{dataset: [(iteration, psnr, ssim)]}: evaluates the snapshots of run_dir at multiples of
    `every` and the newest (or exactly `iterations`) that the cache lacks, and returns every cached
    point, including those of snapshots since deleted (a shipped run keeps only its newest)."""
    info = read_run(run_dir)
    model_name, scale = info["model"], info["scale"]
    snaps = snapshots.listing(run_dir)
    if iterations is not None:
        snaps = [s for s in snaps if s[0] in set(iterations)]
    else:
        snaps = select(snaps, every)
    if not snaps:
        raise UserError("%s: no %s.caffemodel snapshot" % (
            run_dir, "/".join("_iter_%d" % i for i in iterations) if iterations else "*_iter_N"))
    cache_path = os.path.join(run_dir, CACHE)
    cache = _load_cache(cache_path)
    images = {name: datasets.list_images(name) for name in dataset_names}
    for it, path in snaps:
        stamp = datasets.sha256_file(path)
        model = None
        for name in dataset_names:
            entry = cache.setdefault(name, {}).get(str(it))
            if entry is None or entry.get("sha256") != stamp:
                if model is None:
                    try:
                        model = load_model(path, scale=scale, arch=model_name)
                    except UserError as exc:
                        if iterations is not None:   # asked for this one snapshot (ship)
                            raise
                        # a snapshot cut short (a kill or a full disk during its write): the
                        # others are still evaluated, as --resume skips it
                        if log:
                            log("skipping snapshot %s: %s" % (os.path.basename(path), exc))
                        break
                r = evaluation.evaluate(model.upscaler, images[name], scale, model_name, dataset=name)
                cache[name][str(it)] = dict(psnr=r["mean_psnr"], ssim=r["mean_ssim"], sha256=stamp)
                if log:
                    log("iteration %d: %s %.2f dB / %.4f" % (it, name, r["mean_psnr"], r["mean_ssim"]))
        if model is not None:   # save as we go: an interrupted evaluation keeps what it did
            files.write_json(cache_path, cache)
    return {name: sorted((int(it), e["psnr"], e["ssim"]) for it, e in cache[name].items())
            for name in dataset_names}


def bicubic_psnr(dataset, scale):
    r = evaluation.evaluate(evaluation.bicubic_upscaler, datasets.list_images(dataset), scale, "bicubic", dataset)
    return r["mean_psnr"]


def format_table(curves):
    names = list(curves)
    its = sorted({it for rows in curves.values() for it, _, _ in rows})
    by = {n: {it: (p, s) for it, p, s in rows} for n, rows in curves.items()}
    head = "%10s" % "iteration" + "".join("  %16s" % ("%s PSNR / SSIM" % n) for n in names)
    lines = [head, "-" * len(head)]
    for it in its:
        cells = ["  %16s" % ("%.2f / %.4f" % by[n][it] if it in by[n] else "-") for n in names]
        lines.append("%10d" % it + "".join(cells))
    return "\n".join(lines)


def plot(curves, png_path, model_name, scale, segments=(), title=None):
    """PNG: one panel per dataset, PSNR against iteration, with bicubic and the paper's figure;
    segments (run.json's) mark where training resumed, with the segment's --base-lr if it had one."""
    from matplotlib.figure import Figure   # Agg canvas, no pyplot

    fig = Figure(figsize=(8, 3.4 * len(curves)), dpi=100)
    axes = fig.subplots(len(curves), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, rows) in zip(axes, curves.items()):
        its, dbs = [r[0] for r in rows], [r[1] for r in rows]
        ax.plot(its, dbs, "o-", ms=3, lw=1, label="%s x%d (this run)" % (model_name, scale))
        refs = [(bicubic_psnr(name, scale), "bicubic", "grey")]
        refs += [(value, source, "C%d" % (i + 1)) for i, (value, source) in
                 enumerate(papers.published(model_name, name, scale))]
        for value, label, color in refs:
            ax.axhline(value, ls="--", lw=1, color=color, label="%s %.2f dB" % (label, value))
        # Bicubic stays in view, as in the papers' figures; the lowest tenth of the snapshots (the
        # first ones, before they pass bicubic) may fall below the range.
        top = max(dbs + [v for v, _, _ in refs[1:]])
        ax.set_ylim(min(sorted(dbs)[len(dbs) // 10] - 0.2, refs[0][0] - 0.1), top + 0.15)
        for seg in segments:
            if seg.get("start_iter"):
                ax.axvline(seg["start_iter"], color="grey", ls=":", lw=1)
                if seg.get("base_lr") and ax is axes[0]:
                    ax.annotate("lr %g" % seg["base_lr"], (seg["start_iter"], 0.97), xycoords=("data", "axes fraction"),
                                xytext=(2, 0), textcoords="offset points", fontsize=7, color="grey",
                                rotation=90, va="top")
        ax.set_ylabel("%s PSNR (dB)" % name)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    axes[-1].set_xlabel("iteration (batch of 128 patches each)" + ("; dotted: resumed" if segments else ""))
    axes[0].set_title(title or "%s x%d: image PSNR of each snapshot (exact evaluation)" % (model_name, scale))
    fig.tight_layout()
    files.save_figure(fig, png_path)
    return png_path
