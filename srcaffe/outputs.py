"""What predict writes is called, in one place, and which earlier outputs a rerun may replace.

Names carry the input, the scale, the model and the mode, so no two models, modes or paddings
collide:  results/butterfly_GT_x3_fsrcnn.png, ..._fsrcnn_bicubic.png, ..._fsrcnn_compare.png
(--mode gt), results/photo_x3_fsrcnn_upscale.png (--mode upscale), clip_x3_fsrcnn-s.mp4 (videos).

Running the same command again replaces what that same command wrote: every output folder keeps
a record (.srcaffe-outputs.json) of which command wrote each file; any other existing file is
still refused without --force. Only the standard library here: the tools' --help needs nothing
else.
"""
import json
import os

from . import files

PADS = ("replicate", "zero")          # how a net's input border is padded (srcaffe.inference)
VIDEO_EXTS = (".mp4", ".mkv", ".avi", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts",
              ".wmv", ".flv", ".ogv", ".3gp")
# containers that take H.264 and the usual audio codecs as they are; anything else is written as .mkv
OUT_EXTS = (".mp4", ".mkv", ".mov", ".avi", ".m4v")
# near-transparent H.264; x264's fastest preset (1080p: about 2.5x faster than veryfast, files
# about 2x larger at the same quality): encoding must not be what keeps a video from real time
CRF, PRESET = 18, "ultrafast"
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
RECORD = ".srcaffe-outputs.json"


def is_video(path):
    return os.path.splitext(str(path))[1].lower() in VIDEO_EXTS


def video_ext(path):
    ext = os.path.splitext(path)[1].lower()
    return ext if ext in OUT_EXTS else ".mkv"


def stem(out_dir, source, scale, model_name, mode="gt", pad="replicate"):
    """out_dir/NAME_xS_MODEL[_upscale][_zeropad]: the common start of one command's outputs."""
    name = "%s_x%d_%s" % (os.path.splitext(os.path.basename(os.fspath(source)))[0], scale, model_name)
    if mode == "upscale":
        name += "_upscale"
    if pad != "replicate":
        name += "_%spad" % pad
    return os.path.join(out_dir, name)


def image_outputs(out_dir, source, scale, model_name, mode="gt", pad="replicate", analyse=False, bicubic=True):
    """{kind: path} of predict on one image (bicubic=False: no bicubic image, --mode upscale only)."""
    base = stem(out_dir, source, scale, model_name, mode, pad)
    out = {"sr": base + ".png"}
    if bicubic or mode == "gt":
        out["bicubic"] = base + "_bicubic.png"
    if mode == "gt":
        out["compare"] = base + "_compare.png"
        if analyse:
            out.update(errors=base + "_errors.png", patches=base + "_patches.png")
    return out


def video_outputs(out_dir, source, scale, model_name, mode="upscale", pad="replicate", compare=False):
    """{kind: path} of predict on one video."""
    base = stem(out_dir, source, scale, model_name, mode, pad)
    out = {"sr": base + video_ext(source)}
    if compare:
        out["compare"] = base + "_compare" + video_ext(source)
    if mode == "gt":
        out.update(frames=base + "_frames.csv", worst=base + "_worst.png")
    return out


class Record:
    """Which command wrote each output of a folder. `claim(paths, force)` before any work: returns
    the paths this same command wrote before (to be replaced), refuses any other existing file
    unless force; `done(paths)` once they are written."""

    def __init__(self, out_dir, command):
        self.path, self.command = os.path.join(out_dir, RECORD), command

    def _read(self):
        try:
            with open(self.path) as f:
                data = json.load(f)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def claim(self, paths, force=False):
        written = self._read()
        again = [p for p in paths if os.path.lexists(p) and written.get(os.path.basename(p)) == self.command]
        for p in paths:
            files.check_writable_file(p, force or p in again)
        return again

    def done(self, paths):
        written = self._read()
        written.update({os.path.basename(p): self.command for p in paths})
        files.write_json(self.path, written)


def claim(records, force):
    """[(Record, its output paths)]: refuse before any work; say in one line what a rerun of this
    same command replaces."""
    again = [p for record, paths in records for p in record.claim(paths, force)]
    if again:
        print("replacing %d file(s) this same command wrote before (%s%s)"
              % (len(again), os.path.basename(again[0]), ", ..." if len(again) > 1 else ""))
