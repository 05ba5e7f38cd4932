"""MMSR's tables as lines of text (tools/mmsr.py prints them): job states, training times,
time to quality, the evaluation summary."""
import os


def fmt_s(v):
    return "%.1f" % v if v is not None else "-"


def split_lines(plan):
    """Lines: a split's folder, thresholds, classes and the next command."""
    split = os.path.dirname(plan["classes"][0]["dir"])
    out = ["split: %s" % split,
           "thresholds (TVAT, VSP threshold %g): %s" % (plan["vsp_threshold"], ", ".join("%.6g" % t for t in plan["thresholds"]))]
    for c in plan["classes"]:
        out.append("  class %d  %-10s %8d train patches (%5.1f%%)  %4d test patches  %s"
                   % (c["cls"], c["model"], c["train_patches"], 100 * c["share"], c["test_patches"], c["dir"]))
    out.append("next: python tools/mmsr.py jobs %s --epochs E [--baseline %s]" % (split, plan["models"][-1]))
    return out


def jobs_lines(jobs, path, next_steps=True):
    """Lines: the job list written to `path`, and (next_steps) how to run and report them."""
    out = ["wrote %s (%d jobs):" % (path, len(jobs["jobs"]))]
    for e in jobs["jobs"]:
        out.append("  %-20s %-10s %8d patches  %s iterations" % (e["name"], e["model"], e["patches"], e["iters"] or "solver's"))
    if next_steps:
        out += ["run them: python tools/mmsr.py submit %s   (Slurm job array)" % jobs["runs_dir"],
                "      or: python tools/mmsr.py launch %s   (here, without a scheduler)" % jobs["runs_dir"],
                "then:     python tools/mmsr.py report %s" % jobs["runs_dir"]]
    return out


def training_report(rep):
    """Lines: training time per class vs the single model."""
    out = []
    out.append("%-22s %-10s %8s %10s %8s %10s" % ("run", "model", "iters", "seconds", "it/s", "test PSNR"))
    for r in rep["rows"]:
        out.append("%-22s %-10s %8s %10s %8s %10s" % (r["name"], r["model"], r["iters"] if r["iters"] is not None else "-",
                                                    fmt_s(r["seconds"]), "%.1f" % r["its"] if r["its"] else "-",
                                                    "%.2f" % r["psnr"] if r["psnr"] is not None else "-"))
    out.append("classes in total: %s s one after the other (%s s if run side by side on separate machines)"
               % (fmt_s(rep["classes_seconds_sum"]), fmt_s(rep["classes_seconds_max"])))
    if rep["single_seconds"] is not None:
        out.append("single model on all the data: %s s" % fmt_s(rep["single_seconds"]))
    return out


def states_table(jobs, states):
    """(lines: each job's state, exit code and run folder, then how to resubmit the failed ones, failed jobs)."""
    out = []
    out.append("%-22s %-14s %-12s %-12s %6s  %s" % ("job", "state", "slurm task", "slurm state", "exit", "run folder"))
    bad = []
    for e in jobs["jobs"]:
        s = states[e["name"]]
        out.append("%-22s %-14s %-12s %-12s %6s  %s" % (e["name"], s["state"], s["slurm_job"] or "-", s["slurm_state"] or "-",
                                                        "-" if s["exit"] is None else s["exit"], e["run_dir"]))
        if s["state"] in ("failed", "cancelled", "timeout", "node_fail", "out_of_memory", "preempted", "boot_fail",
                          "deadline", "not run"):
            bad.append(e)
    for e in bad:
        out.append("%s did not finish (log %s); resubmit it alone: python tools/mmsr.py submit %s --only %s"
                   % (e["name"], e["out"], jobs["runs_dir"], e["cls"] if e["cls"] is not None else "single"))
    return out, bad


def quality_table(res, names, ttq):
    """Lines: the time-to-quality table (single model vs MMSR per budget milestone), then the
    training seconds to reach each PSNR level (ttq: quality.time_to_quality rows)."""
    out = []
    out.append("classes: %s" % ", ".join("%s (%d patches, %d it)" % (c["name"], c["patches"], c["iters"] or 0)
                                         for c in res["classes"]))
    if res["single"]:
        out.append("single:  %s (%d patches, %d it)" % (res["single"]["name"], res["single"]["patches"],
                                                        res["single"]["iters"] or 0))
    head = "%8s | %9s %s | %9s %9s %s" % ("budget", "single s", " ".join("%-15s" % d for d in names), "MMSR s 1w",
                                          "MMSR s Kw", " ".join("%-15s" % d for d in names))
    out.append(head + "\n" + "-" * len(head))
    for r in res["rows"]:
        s, m = r.get("single"), r["mmsr"]
        cells = lambda x: " ".join("%-15s" % ("%.2f / %.4f" % tuple(x[d])) for d in names)  # noqa: E731
        out.append("%8s | %9s %s | %9.1f %9.1f %s" % ("%d/%d" % (r["k"], res["points"]), fmt_s(s["seconds"]) if s else "-",
                                                     cells(s) if s else " ".join("%-15s" % "-" for d in names),
                                                     m["seconds_sum"], m["seconds_max"], cells(m)))
    out.append("(PSNR / SSIM, Y, shaved; seconds: training time from train.log; MMSR 1w: class models one after "
               "the other on one worker, Kw: one worker per class)")
    out.append("training seconds to reach a PSNR (first milestone at or above it; -: not reached):")
    for t in ttq:
        sp = lambda v: "%.2fx" % v if v else "-"  # noqa: E731
        out.append("  %-5s %.2f dB: single %s s, MMSR %s s on 1 worker (speedup %s), %s s on %d workers (speedup %s)"
                   % (t["dataset"], t["level"], fmt_s(t["single"]), fmt_s(t["mmsr_sum"]), sp(t["speedup_1"]),
                      fmt_s(t["mmsr_max"]), len(res["classes"]), sp(t["speedup_k"])))
    return out


def evaluate_summary(results, labels, image_lists, costs, stats, model, settings):
    """Lines: PSNR / SSIM / seconds per set and multiply-adds of every column, then the MMSR settings."""
    out = []
    sets = [d for d, _ in image_lists]
    by = {(r["method"], r["dataset"]): r for r in results}
    width = max(len(l) for l in labels + ["method"])
    head = "%-*s" % (width, "x%d" % settings["scale"]) + "".join("  %-25s" % ("%s PSNR / SSIM / s" % d) for d in sets)
    out.append(head + "  MACs/LR px")
    out.append("-" * (len(head) + 12))
    for label in labels:
        line = "%-*s" % (width, label)
        for d in sets:
            r = by[(label, d)]
            line += "  %-25s" % ("%.2f / %.4f / %.2f" % (r["mean_psnr"], r["mean_ssim"], r["seconds"]))
        if label == model.name:
            cost = "%.0f" % (sum(stats[d]["mmsr_macs_per_lr_pixel"] for d in sets) / len(sets))
        else:
            cost = "%.0f" % costs[label] if label in costs else "-"
        out.append(line + "  " + cost)
    out.append("MMSR: %s, %d-px fragments, overlap %d, VSP threshold %g, class thresholds %s"
               % (" | ".join("class %d: %s" % (k, c["spec"]) for k, c in enumerate(settings["class_models"])),
                  settings["fragments"], settings["overlap"], settings["vsp_threshold"],
                  ", ".join("%.6g" % t for t in settings["thresholds"])))
    for d in sets:
        s = stats[d]
        out.append("  %s: fragments per class %s, fragment area per class %s"
                   % (d, "/".join(map(str, s["fragments"])), "/".join("%.0f%%" % (100 * v) for v in s["area_share"])))
    out.append("  (s: seconds spent upscaling the whole set, metrics excluded; MACs: multiply-adds per LR pixel of "
               "the nets, MMSR's the area-weighted mean over its fragments, context and overlap excluded)")
    return out


def tvat_lines(rows, fragments, thresholds, quantiles=None):
    """Lines of tools/tvat.py: one per image or fragment, then the summary (quantiles: how the
    thresholds were found, e.g. '2-quantiles of 1000 fsrcnn x3 training sub-images')."""
    import numpy as np

    width = max(len(r["image"]) for r in rows)
    head = "%-*s" % (width, "image") + ("  %-19s" % "fragment y,x hxw" if fragments else "") + "  %10s" % "TVAT"
    out = [head + ("  class" if thresholds else "")]
    for r in rows:
        line = "%-*s" % (width, r["image"])
        if fragments:
            line += "  %-19s" % ("%d,%d %dx%d" % (r["y"], r["x"], r["h"], r["w"]))
        line += "  %10.2f" % r["tvat"]
        out.append(line + ("  %5d" % r["cls"] if thresholds else ""))
    scores = np.array([r["tvat"] for r in rows])
    summary = "%d %s, TVAT %.2f .. %.2f (median %.2f)" % (len(rows), "fragments" if fragments else "images",
                                                        scores.min(), scores.max(), np.median(scores))
    if thresholds:
        counts = np.bincount([r["cls"] for r in rows], minlength=len(thresholds) + 1)
        summary += "; thresholds %s%s; per class: %s" % (
            ",".join("%.6g" % t for t in thresholds), " (%s)" % quantiles if quantiles else "",
            " ".join("%d:%d" % (k, c) for k, c in enumerate(counts)))
    return out + [summary]
