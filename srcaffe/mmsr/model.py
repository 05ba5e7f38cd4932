"""MMSR reconstruction: each LR fragment routed by its TVAT class to that class's model, the
overlaps blended."""
import time

import numpy as np

from .. import nets
from ..errors import UserError
from .texture import (DEFAULT_FRAGMENT, DEFAULT_OVERLAP, INTENSITY, VSP_THRESHOLD, check_thresholds, classify,
                      fragment_starts, fragments, score_fragments)

# ---- reconstruction -----------------------------------------------------------------------------

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
        self.archs = [m.arch.name for m in self.members]
        self.context = [m.context_px() for m in self.members]
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
            from ..official import shift_down_right
            sr = shift_down_right(sr)
        return sr

    def cost(self):
        """Mean multiply-adds per LR pixel of the fragments run so far (their own area, context
        and overlap excluded), and the share of fragment area per class."""
        area = float(sum(self.stats["area"])) or 1.0
        share = [a / area for a in self.stats["area"]]
        return sum(sh * m for sh, m in zip(share, self.macs)), share


