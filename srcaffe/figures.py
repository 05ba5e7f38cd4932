"""Figures of tools/predict.py: side-by-side comparison, error heatmaps, best/worst patches,
the worst frames of a video.

matplotlib's Figure with the Agg canvas (no pyplot): works without a display.
"""

import numpy as np

from . import files
from .metrics import psnr


def _save(fig, path, overwrite):
    return files.save_figure(fig, path, overwrite)


def _show(ax, img, title, interpolation="nearest"):
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation=interpolation)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def _db(value):
    return "%.2f dB" % value if np.isfinite(value) else "inf dB"


def compare(path, panels, overwrite=False):
    """One row of uint8 images [(title, image)], e.g. ground truth / LR / bicubic / network.
    Images of other sizes (the LR) are stretched to the same panel size, pixels kept square-ish."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2 * len(panels), 3.6), dpi=100)
    for ax, (title, img) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        _show(ax, img, title)
    fig.tight_layout()
    return _save(fig, path, overwrite)


def error_maps(path, gt_y, maps, overwrite=False):
    """Per-pixel |method - ground truth| of Y (0..255), one heatmap per (title, y) in maps,
    all on the same colour scale (up to the 99.5th percentile of the largest error map)."""
    from matplotlib.figure import Figure

    errors = [(title, np.abs(y.astype(np.float64) - gt_y.astype(np.float64))) for title, y in maps]
    vmax = max(max(np.percentile(e, 99.5) for _, e in errors), 1.0)
    fig = Figure(figsize=(3.8 * len(errors) + 1, 3.8), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(errors), squeeze=False)[0]
    for ax, (title, err) in zip(axes, errors):
        im = ax.imshow(err, cmap="inferno", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title("%s: |error| (mean %.2f)" % (title, err.mean()), fontsize=9)
        ax.set_axis_off()
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="absolute error of Y (0..255)")
    return _save(fig, path, overwrite)


def rank_patches(gt_y, sr_y, size=32):
    """[(psnr, y, x)] of the non-overlapping size x size patches of two uint8 Y images, best first."""
    h, w = gt_y.shape
    out = [(psnr(sr_y[y:y + size, x:x + size], gt_y[y:y + size, x:x + size], y_channel=False), y, x)
           for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]
    return sorted(out, key=lambda t: -t[0])


def patches(path, ranked, gt, others, size=32, k=4, overwrite=False):
    """The k best (left) and k worst (right) patches of `ranked` (from rank_patches): the ground
    truth, then each (title, image) of others with its own PSNR on that patch. Images are uint8
    (grayscale or RGB) in the coordinates of ranked."""
    from matplotlib.figure import Figure

    k = min(k, len(ranked))
    cols = 1 + len(others)
    fig = Figure(figsize=(1.9 * 2 * cols, 2.2 * k), dpi=100)
    axes = fig.subplots(k, 2 * cols, squeeze=False)
    for i in range(k):
        for half, (kind, (_, y, x)) in enumerate((("best", ranked[i]), ("worst", ranked[-1 - i]))):
            row = axes[i, half * cols:(half + 1) * cols]

            def crop(img):
                return img[y:y + size, x:x + size]
            _show(row[0], crop(gt), "%s %d at (%d,%d)\nground truth" % (kind, i + 1, y, x))
            for ax, (title, img) in zip(row[1:], others):
                _show(ax, crop(img), "%s\n%s" % (title, _db(psnr(crop(img), crop(gt)))))
    fig.tight_layout()
    return _save(fig, path, overwrite)


def worst_frames(path, entries, model_name, overwrite=False):
    """A video's worst frames in --mode gt, one row each: ground truth / bicubic / network, dB in
    the titles. entries: [(-psnr, index, (time_s, bicubic scores, network scores, gt, bicubic, sr))]."""
    from matplotlib.figure import Figure

    h, w = entries[0][2][3].shape[:2]
    fig = Figure(figsize=(3 * 3.2, len(entries) * 3.2 * h / w + 0.4), dpi=100)
    axes = fig.subplots(len(entries), 3, squeeze=False)
    for row, (_, index, (t, b, n, gt, bic, sr)) in zip(axes, entries):
        _show(row[0], gt, "frame %d (%.2f s) ground truth" % (index, t))
        _show(row[1], bic, "bicubic %.2f dB / %.4f" % (b["psnr"], b["ssim"]))
        _show(row[2], sr, "%s %.2f dB / %.4f" % (model_name, n["psnr"], n["ssim"]))
    fig.tight_layout()
    return _save(fig, path, overwrite)
