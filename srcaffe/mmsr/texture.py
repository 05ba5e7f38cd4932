"""TVAT (total variance above threshold) of images, fragments and training sub-images, the
texture classes it sorts them into, and its histogram (see srcaffe.mmsr for the method)."""
import math
import os

import numpy as np

from .. import files
from ..errors import UserError

from .settings import DEFAULT_FRAGMENT, DEFAULT_OVERLAP, INTENSITY, VSP_THRESHOLD  # noqa: F401
SCORE_CHUNK = 50000          # sub-images scored at once (bounded memory)


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
    files.save_figure(fig, path)
    return path


def input_images(items):
    """The image files named by image files, folders, dataset names or dataset image names."""
    from .. import datasets
    paths = []
    for item in items:
        if datasets.is_image_set(item):
            paths += datasets.list_images(item)
        else:
            paths.append(datasets.resolve_image(item))
    return paths


def image_values(path, channel, lr):
    """The array that is scored, on the 0-255 scale: HxW (Y) or HxWx3 (RGB)."""
    from .. import evaluation, matlab
    from ..images import load_image
    if channel != "rgb":
        y = evaluation.prepare_pair(path, lr)[1] if lr else matlab.im2double(matlab.rgb2y(load_image(path)))
        return y * INTENSITY    # with lr: demo_SR.m's im_l
    img = load_image(path)
    img = np.dstack([img] * 3) if img.ndim == 2 else img
    if lr:
        img = matlab.imresize(matlab.modcrop(img, lr), 1.0 / lr)
    return np.asarray(img, dtype=np.float64)


def score_images(items, channel="y", lr=None, fragment=None, overlap=DEFAULT_OVERLAP, vsp_threshold=VSP_THRESHOLD,
                 thresholds=()):
    """[{image, y, x, h, w, tvat, cls}] of the images (or of their fragments) of `items`."""
    rows = []
    for path in input_images(items):
        values = image_values(path, channel, lr)
        frags = fragments(values.shape, fragment, overlap) if fragment else [(0, 0) + values.shape[:2]]
        scores = score_fragments(values, frags, vsp_threshold, channels=channel == "rgb")
        classes = classify(scores, thresholds) if thresholds else [None] * len(frags)
        name = os.path.splitext(os.path.basename(path))[0]
        for (y, x, h, w), s, k in zip(frags, scores, classes):
            rows.append(dict(image=name, y=y, x=x, h=h, w=w, tvat=float(s), cls=None if k is None else int(k)))
    return rows
