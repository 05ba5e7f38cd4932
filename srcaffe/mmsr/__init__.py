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

Training data: `split` scores the sub-images of a prepared data folder (hdf5_patches.prepare, the same
data the single model trains on) and writes one data folder per class with the same layout and
meta.json (train_NNN.h5, train.txt, test.h5, test.txt), consumable by
`./run_train.sh MODEL --data CLASS_DIR`; `write_jobs` writes one run_train.sh command per class.
"""
from .settings import DEFAULT_FRAGMENT, DEFAULT_OVERLAP, INTENSITY, VSP_THRESHOLD  # noqa: F401

# The rest needs NumPy (and Caffe): imported on first use, so that tools/mmsr.py --help comes
# with the standard library alone.
_LAZY = dict(
    {n: "texture" for n in ("check_thresholds", "class_ranges", "classify", "fragment_starts", "fragments",
                            "histogram", "parse_thresholds", "quantile_thresholds", "score_fragments",
                            "score_y", "tvat", "vsp", "input_images", "image_values", "score_images")},
    **{n: "split" for n in ("PLAN", "read_plan", "split", "training_scores", "training_thresholds")},
    **{n: "jobs" for n in ("JOBS", "iterations_for", "launch", "read_jobs", "read_status", "run_task", "select",
                           "training_times", "write_jobs")},
    **{n: "model" for n in ("MMSR", "macs_per_lr_pixel")},
    **{n: "compare" for n in ("compare", "load_columns")})

from ..lazy import lazy_package  # noqa: E402

lazy_package(__name__, _LAZY)
