"""MMSR against its single models and bicubic on datasets: PSNR/SSIM, upscaling time and
multiply-adds (tools/mmsr.py evaluate)."""
import time

from ..errors import UserError
from .jobs import read_jobs
from .. import models
from .model import MMSR, macs_per_lr_pixel
from .split import read_plan
from .texture import VSP_THRESHOLD, fragment_starts, parse_thresholds


def load_columns(runs=None, split=None, scale=None, thresholds=None, vsp_threshold=None, class_models=None,
                 single=None, fragments=None, overlap=None, pad="replicate"):
    """(MMSR object, [(label, loaded single model)], settings) from a jobs folder, a split, or
    explicit class models and thresholds."""
    jobs = read_jobs(runs) if runs else None
    plan = read_plan(split) if split else (read_plan(jobs["split"]) if jobs else None)
    scale = scale or (plan["scale"] if plan else 3)
    if plan and int(plan["scale"]) != scale:
        raise UserError("--scale %d contradicts the split's x%d" % (scale, plan["scale"]))
    if thresholds:
        thresholds = parse_thresholds(thresholds)
    elif plan:
        thresholds = plan["thresholds"]
    else:
        raise UserError("no class thresholds: give --thresholds, --split or --runs")
    vsp = vsp_threshold if vsp_threshold is not None else (plan["vsp_threshold"] if plan else VSP_THRESHOLD)
    if class_models:
        specs = class_models
    elif jobs:
        specs = [e["run_dir"] for e in jobs["jobs"] if e["cls"] is not None]
    else:
        raise UserError("no class models: give --class-models or --runs")
    if len(specs) != len(thresholds) + 1:
        raise UserError("%d class models need %d thresholds, got %d" % (len(specs), len(specs) - 1, len(thresholds)))
    fragment_starts(fragments + 1, fragments, overlap)   # validates
    cache = {}

    def load(spec):
        if spec not in cache:
            cache[spec] = models.load_model(spec, scale, pad=pad)
        return cache[spec]
    members = [load(s) for s in specs]
    model = MMSR(members, thresholds, fragment=fragments, overlap=overlap, vsp_threshold=vsp, name="MMSR")
    single_specs = single or ([e["run_dir"] for e in jobs["jobs"] if e["cls"] is None] if jobs else [])
    singles = [(models.label(s), load(s)) for s in single_specs]
    settings = dict(scale=scale, thresholds=thresholds, vsp_threshold=vsp, fragments=fragments, overlap=overlap,
                    class_models=[describe(s, m) for s, m in zip(specs, members)],
                    single_models=[describe(s, m) for s, m in zip(single_specs, [m for _, m in singles])])
    return model, singles, settings


def describe(spec, member):
    return dict(spec=spec, arch=member.arch.name, weights=member.weights)


def compare(model, singles, settings, image_lists, per_image=None):
    """Bicubic, the single models and MMSR on each (dataset, images): {results, labels, mmsr
    (fragments and area per class), macs_per_lr_pixel}. per_image(table) gets each dataset's table."""
    from ..evaluation import bicubic_upscaler, evaluate, format_table

    columns = [("bicubic", bicubic_upscaler, None)] + [(name, m.upscaler, m.arch.name) for name, m in singles]
    columns.append((model.name, model.upscaler, None))
    results, stats = [], {}
    for dataset, images in image_lists:
        rows = []
        model.reset_stats()
        for label, upscaler, _ in columns:
            spent = [0.0]

            def timed(lr, scale, upscaler=upscaler, spent=spent):
                start = time.perf_counter()
                try:
                    return upscaler(lr, scale)
                finally:
                    spent[0] += time.perf_counter() - start
            try:
                res = evaluate(timed, images, settings["scale"], label, dataset=dataset)
            except ValueError as exc:
                raise UserError(str(exc)) from None
            res["seconds"] = round(spent[0], 3)     # upscaling only (routing and nets), not the metrics
            rows.append(res)
        macs, share = model.cost()
        stats[dataset] = dict(fragments=model.stats["fragments"], area_share=[round(s, 4) for s in share],
                              mmsr_macs_per_lr_pixel=round(macs))
        if per_image:
            per_image(format_table(rows))
        results += rows
    costs = {label: macs_per_lr_pixel(arch, settings["scale"]) for label, _, arch in columns if arch}
    return dict(results=results, labels=[c[0] for c in columns], mmsr=stats, macs_per_lr_pixel=costs)
