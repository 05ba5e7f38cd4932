"""The papers' published mean PSNR (dB, Y channel, `scale` pixels shaved), for side-by-side tables.

SRCNN TPAMI 2015 (Dong, Loy, He, Tang) and FSRCNN ECCV 2016 (Dong, Loy, Tang). Only numbers the
papers print are listed; a missing (dataset, scale) means the paper has no such entry.
"""

# method -> [(source, {(dataset, scale): psnr})], the entry comparable with this toolkit
# (trained on the 91 images) first.
PUBLISHED = {
    "bicubic": [("SRCNN TPAMI 2015", {
        ("Set5", 2): 33.66, ("Set5", 3): 30.39, ("Set5", 4): 28.42,
        ("Set14", 2): 30.23, ("Set14", 3): 27.54, ("Set14", 4): 26.00})],
    "srcnn": [("SRCNN ECCV 2014, 9-1-5", {("Set5", 3): 32.39, ("Set14", 3): 29.00})],
    "srcnn-955": [("SRCNN TPAMI 2015, 9-5-5", {
        ("Set5", 2): 36.66, ("Set5", 3): 32.75, ("Set5", 4): 30.49,
        ("Set14", 2): 32.45, ("Set14", 3): 29.30, ("Set14", 4): 27.50})],
    "fsrcnn": [
        ("FSRCNN ECCV 2016, 91 images", {
            ("Set5", 2): 36.94, ("Set5", 3): 33.06, ("Set5", 4): 30.55,
            ("Set14", 3): 29.37, ("Set14", 4): 27.50}),
        ("FSRCNN ECCV 2016, final (91 images + General-100)", {
            ("Set5", 2): 37.00, ("Set5", 3): 33.16, ("Set5", 4): 30.70,
            ("Set14", 2): 32.63, ("Set14", 3): 29.42, ("Set14", 4): 27.59}),
    ],
    "fsrcnn-s": [("FSRCNN ECCV 2016, FSRCNN-s", {
        ("Set5", 2): 36.57, ("Set5", 3): 32.60, ("Set5", 4): 30.11})],
}
# The authors' released models (srcaffe/official/) are the papers' final models.
PUBLISHED["official-fsrcnn"] = PUBLISHED["fsrcnn"][1:]
PUBLISHED["official-fsrcnn-s"] = PUBLISHED["fsrcnn-s"]
PUBLISHED["official-srcnn-955"] = PUBLISHED["srcnn-955"]


def published(method, dataset, scale):
    """[(psnr, source)] the papers give for method (a model name or 'bicubic') on dataset x scale."""
    return [(table[(dataset, scale)], source) for source, table in PUBLISHED.get(method, [])
            if (dataset, scale) in table]
