"""HDF5 patch files for Caffe, as the authors' generate_train.m / generate_test.m / data_aug.m.

FSRCNN (generate_train.m): Y of rgb2ycbcr, im2double, modcrop; the input is the MATLAB-bicubic
downscaled image and sub-images are taken on the LR grid; the label is the HR window the net's
output covers (its position comes from nets.geometry, i.e. from the layers themselves).
SRCNN (generate_train.m): the input is bicubic down- then up-scaled to the HR size; 33x33
sub-images with stride 14, label = the centre the unpadded net outputs.
Augmentation (data_aug.m, as the paper describes it): each training image rotated by 0/90/180/270
degrees and bicubic-downscaled by 1.0/0.9/0.8/0.7/0.6 before the above (on uint8 RGB, as the
script saved its augmented images as .bmp).

Layout: a folder per geometry under data/, with train_NNN.h5 + train.txt, test.h5 + test.txt
(paths relative to the repository root for Caffe run from there: `caffe train -solver
solvers/...`) and meta.json. A run gives Caffe
lists of absolute paths written into its run folder (srcaffe.segments), after checking every file.
One process prepares a folder at a time (a lock); it is written aside and renamed into place
whole, so an interrupted preparation leaves nothing that looks prepared, and is cleaned up by
the next one. Datasets `data` and `label` are float32
in [0,1], N x 1 x H x W.
"""
import json
import os
import sys
import time

import numpy as np

from . import data_folder, datasets, files, matlab, nets
from .data_folder import is_prepared, listed_files, read_meta, write_h5  # noqa: F401 (the module's readers)
from .errors import UserError
from .images import load_image
from .paths import data_root, datasets_source

AUG_ROTATIONS = (0, 1, 2, 3)            # multiples of 90 degrees (rot90's k)
AUG_SCALES = (1.0, 0.9, 0.8, 0.7, 0.6)
PATCHES_PER_FILE = 100000               # ~200 MB of float32 per FSRCNN train file
TEST_PATCHES = 1000                     # fixed, so the solvers' test_iter is fixed (1000 / batch 2)
SEED = 0


def dataset_images(name):
    """Images of a dataset; a registered one missing here is fetched first (downloaded, or copied
    from $SRCAFFE_DATASETS_FROM), and always checksum-verified."""
    if name in datasets.DATASETS and datasets.verify(name):
        datasets.fetch(name, source_dir=datasets_source(), log=print)
    return datasets.list_images(name)


def train_stride(model):
    return nets.SRCNN_STRIDE if nets.geometry(model, 3).upsampled_input else nets.FSRCNN_LR_STRIDE


def data_dir(model, scale, augment, stride=None, dataset="T91"):
    """The folder of a geometry: every model with the same patch geometry shares it."""
    g = nets.geometry(model, scale)
    stride = stride or train_stride(model)
    kind = "bic" if g.upsampled_input else "lr"
    name = "%s-x%d-%s%d-label%d-stride%d%s" % (dataset, scale, kind, g.input_size, g.label_size,
                                                stride, "-aug" if augment else "")
    return os.path.join(data_root(), name)


def image_y(rgb_or_gray):
    """Y channel as double in [0,1]: rgb2ycbcr on uint8 (uint8 result), then im2double."""
    return matlab.im2double(matlab.rgb2y(rgb_or_gray))


def sub_images(model, scale, y_hr, stride):
    """All (input, label) pairs of one HR Y image (float64 [0,1]) for a net's geometry."""
    g = nets.geometry(model, scale)
    label_img = matlab.modcrop(y_hr, scale)
    lr = matlab.imresize(label_img, 1.0 / scale)
    if g.upsampled_input:
        source = matlab.imresize(lr, output_shape=label_img.shape)
        step, grid = 1, source
    else:
        source = lr
        step, grid = scale, lr
    n_y = (grid.shape[0] - g.input_size) // stride + 1
    n_x = (grid.shape[1] - g.input_size) // stride + 1
    if n_y < 1 or n_x < 1:
        return np.empty((0, g.input_size, g.input_size)), np.empty((0, g.label_size, g.label_size))
    ys, xs = np.arange(n_y) * stride, np.arange(n_x) * stride
    # Label origin in the HR image; it must lie inside it (it does for the authors' geometries).
    ly, lx = ys * step + g.label_offset, xs * step + g.label_offset
    keep_y = ly + g.label_size <= label_img.shape[0]
    keep_x = lx + g.label_size <= label_img.shape[1]
    ys, xs, ly, lx = ys[keep_y], xs[keep_x], ly[keep_y], lx[keep_x]
    win_in = np.lib.stride_tricks.sliding_window_view(source, (g.input_size, g.input_size))
    win_lab = np.lib.stride_tricks.sliding_window_view(label_img, (g.label_size, g.label_size))
    inputs = win_in[ys[:, None], xs[None, :]].reshape(-1, g.input_size, g.input_size)
    labels = win_lab[ly[:, None], lx[None, :]].reshape(-1, g.label_size, g.label_size)
    return inputs, labels


def augmented(rgb):
    """data_aug.m: every rotation x downscale of a uint8 image (MATLAB imresize keeps uint8)."""
    for k in AUG_ROTATIONS:
        rotated = np.rot90(rgb, k)
        for factor in AUG_SCALES:
            yield rotated if factor == 1.0 else matlab.imresize(rotated, factor)


def collect(model, scale, images, stride, augment, progress=None):
    inputs, labels = [], []
    for n, path in enumerate(images):
        rgb = load_image(path)
        for img in (augmented(rgb) if augment else [rgb]):
            i, l = sub_images(model, scale, image_y(img), stride)
            inputs.append(i.astype(np.float32))
            labels.append(l.astype(np.float32))
        if progress:
            progress(n + 1, len(images))
    return np.concatenate(inputs), np.concatenate(labels)


class _Progress:
    """'data: 40/91 images, 12 img/s, ETA 4 s' on stderr, at most every second (and at the end)."""

    def __init__(self, what):
        self.what, self.t0, self.shown = what, time.time(), 0.0

    def __call__(self, done, total):
        now = time.time()
        if now - self.shown < 1 and done < total:
            return
        self.shown = now
        rate = done / max(now - self.t0, 1e-9)
        end = "\n" if done == total else ""
        sys.stderr.write("\rdata: %s %d/%d images, %.1f img/s, ETA %.0f s   %s"
                         % (self.what, done, total, rate, (total - done) / rate, end))
        sys.stderr.flush()


def check_stride(stride):
    if stride is not None and stride < 1:
        raise UserError("--stride must be at least 1 pixel, not %d" % stride)


def prepare(model, scale, augment=True, train_set="T91", test_set="Set5", stride=None, force=False,
            log=print):
    """Write the train and test HDF5 files of a model/scale; returns the folder.

    An existing complete folder is reused; with force=True it is rewritten.
    """
    nets.check_scale(scale)
    check_stride(stride)
    g = nets.geometry(model, scale)
    stride = stride or train_stride(model)
    out = data_dir(model, scale, augment, stride, train_set)
    with data_folder.lock(out, log):
        if is_prepared(out) and not force:
            log("data: reusing %s" % out)
            return out
        if os.path.isdir(out) and not force and os.listdir(out):
            raise UserError("%s exists but is incomplete (no meta.json); move it away or prepare with --force" % out)
        with data_folder.build(out) as part:
            meta = _write(model, scale, g, augment, train_set, test_set, stride, part, out, log)
    log("data: %d train patches (%dx%d -> %dx%d) in %d file(s), %d test patches from %s, %.1f s -> %s"
        % (meta["train_patches"], g.input_size, g.input_size, g.label_size, g.label_size, meta["files"],
           meta["test_patches"], test_set, meta["seconds"], out))
    return out


def _write(model, scale, g, augment, train_set, test_set, stride, out, final, log):
    """Prepare into `out`; the lists name the files where they will be: in `final`."""
    start = time.time()
    rng = np.random.RandomState(SEED)
    train_images = dataset_images(train_set)
    log("data: preparing %s x%d from %d %s images%s (once; reused afterwards)"
        % (model, scale, len(train_images), train_set, " with augmentation" if augment else ""))
    inputs, labels = collect(model, scale, train_images, stride, augment, _Progress(train_set))
    if not len(inputs):
        raise UserError("%s gives no %dx%d training sub-images at x%d with stride %d"
                        % (train_set, g.input_size, g.input_size, scale, stride))
    order = rng.permutation(len(inputs))          # generate_train.m: randperm before store2hdf5
    inputs, labels = inputs[order], labels[order]
    test_in, test_lab = collect(model, scale, dataset_images(test_set), max(stride, g.input_size // 2), False)
    if len(test_in) < TEST_PATCHES:
        raise UserError("%s gives only %d test patches at x%d (need %d)" % (test_set, len(test_in), scale, TEST_PATCHES))
    pick = np.sort(rng.choice(len(test_in), TEST_PATCHES, replace=False))
    test_in, test_lab = test_in[pick], test_lab[pick]

    names = []
    for i, first in enumerate(range(0, len(inputs), PATCHES_PER_FILE)):
        names.append("train_%03d.h5" % i)
        write_h5(os.path.join(out, names[-1]), inputs[first:first + PATCHES_PER_FILE],
                 labels[first:first + PATCHES_PER_FILE])
    write_h5(os.path.join(out, "test.h5"), test_in, test_lab)
    data_folder.write_list(out, final, "train.txt", names)
    data_folder.write_list(out, final, "test.txt", ["test.h5"])
    meta = dict(scale=scale, input_size=g.input_size, label_size=g.label_size, label_offset=g.label_offset,
                upsampled_input=g.upsampled_input, stride=stride, augment=augment, train_set=train_set,
                test_set=test_set, train_patches=len(inputs), test_patches=len(test_in),
                train_images=len(train_images), files=len(names), seconds=round(time.time() - start, 1))
    data_folder.write_meta(out, meta)
    return meta


def check_h5(path, input_size, label_size):
    """One line naming the file unless it opens and holds data/label of the expected shapes."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            shapes = {k: f[k].shape for k in ("data", "label") if k in f}
    except OSError as exc:
        raise UserError("%s: not a readable HDF5 file (%s); prepare the data again" % (path, exc)) from None
    want = dict(data=(1, input_size, input_size), label=(1, label_size, label_size))
    for key, shape in want.items():
        got = shapes.get(key)
        if got is None:
            raise UserError("%s: has no '%s' dataset; prepare the data again" % (path, key))
        if tuple(got[1:]) != shape or got[0] < 1:
            raise UserError("%s: '%s' is %s, expected N x %s with N > 0"
                            % (path, key, "x".join(map(str, got)), "x".join(map(str, shape))))
        if key == "label" and got[0] != shapes["data"][0]:
            raise UserError("%s: %d inputs but %d labels" % (path, shapes["data"][0], got[0]))
    check_finite(path)


FINITE_CACHE = ".finite.json"   # {file name: [size, mtime_ns]} of files found finite
CHUNK = 8192                    # patches read at a time


def check_finite(path):
    """One line naming the file and dataset unless every value is finite (NaN or Inf labels train
    to 'loss nan'). A file found finite is noted in the folder's .finite.json by size and mtime,
    so a large training set is read once, not at every segment."""
    import h5py

    folder, name = os.path.split(os.path.abspath(path))
    cache_path = os.path.join(folder, FINITE_CACHE)
    st = os.stat(path)
    stamp = [st.st_size, st.st_mtime_ns]
    try:
        with open(cache_path) as f:
            cache = json.load(f)
    except (OSError, ValueError):
        cache = {}
    if not isinstance(cache, dict):
        cache = {}
    if cache.get(name) == stamp:
        return
    try:
        with h5py.File(path, "r") as f:
            for key in ("data", "label"):
                ds = f[key]
                for first in range(0, ds.shape[0], CHUNK):
                    block = ds[first:first + CHUNK]
                    if not np.isfinite(block).all():
                        rows = ~np.isfinite(block.reshape(len(block), -1)).all(axis=1)
                        bad = first + int(np.flatnonzero(rows)[0])
                        raise UserError("%s: '%s' holds non-finite values (NaN or Inf), first in patch %d; "
                                        "prepare the data again" % (path, key, bad))
    except OSError as exc:
        raise UserError("%s: not a readable HDF5 file (%s); prepare the data again" % (path, exc)) from None
    cache[name] = stamp
    try:
        files.write_json(cache_path, cache)
    except UserError:
        pass   # a read-only data folder: checked again next time


def checked_files(folder):
    """Every HDF5 file of a prepared folder, checked: (train files, test files)."""
    meta = read_meta(folder)
    out = []
    for name in ("train.txt", "test.txt"):
        paths = listed_files(folder, name)
        for path in paths:
            check_h5(path, meta["input_size"], meta["label_size"])
        out.append(paths)
    return tuple(out)


def check_matches(folder, model, scale):
    """Catch a data/net mismatch before Caffe does (with a CHECK failure and a core dump)."""
    meta = read_meta(folder)
    g = nets.geometry(model, scale)
    if (meta["scale"], meta["input_size"], meta["label_size"]) != (scale, g.input_size, g.label_size):
        raise UserError("%s holds x%d patches %d->%d, but %s x%d needs %d->%d"
                        % (folder, meta["scale"], meta["input_size"], meta["label_size"], model, scale,
                           g.input_size, g.label_size))
    return meta
