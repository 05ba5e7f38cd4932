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
(the source lists Caffe's HDF5Data reads) and meta.json. Datasets `data` and `label` are float32
in [0,1], N x 1 x H x W.
"""
import json
import os
import time

import numpy as np

from . import ROOT, datasets, matlab, nets
from .errors import UserError
from .images import load_image

AUG_ROTATIONS = (0, 1, 2, 3)            # multiples of 90 degrees (rot90's k)
AUG_SCALES = (1.0, 0.9, 0.8, 0.7, 0.6)
PATCHES_PER_FILE = 100000               # ~200 MB of float32 per FSRCNN train file
TEST_PATCHES = 1000                     # fixed, so the solvers' test_iter is fixed (1000 / batch 2)
SEED = 0


def dataset_images(name):
    """Images of a dataset; a registered one missing here is fetched first (downloaded, or copied
    from $SRCAFFE_DATASETS_FROM), and always checksum-verified."""
    if name in datasets.DATASETS and datasets.verify(name):
        datasets.fetch(name, source_dir=os.environ.get("SRCAFFE_DATASETS_FROM"), log=print)
    return datasets.list_images(name)


def data_root():
    return os.environ.get("SRCAFFE_DATA") or os.path.join(ROOT, "data")


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


def collect(model, scale, images, stride, augment):
    inputs, labels = [], []
    for path in images:
        rgb = load_image(path)
        for img in (augmented(rgb) if augment else [rgb]):
            i, l = sub_images(model, scale, image_y(img), stride)
            inputs.append(i.astype(np.float32))
            labels.append(l.astype(np.float32))
    return np.concatenate(inputs), np.concatenate(labels)


def write_h5(path, inputs, labels):
    import h5py
    with h5py.File(path, "w") as f:   # Caffe blobs: N x C x H x W
        f.create_dataset("data", data=inputs[:, None], dtype=np.float32)
        f.create_dataset("label", data=labels[:, None], dtype=np.float32)


def prepare(model, scale, augment=True, train_set="T91", test_set="Set5", stride=None, force=False,
            log=print):
    """Write the train and test HDF5 files of a model/scale; returns the folder.

    An existing complete folder is reused; with force=True it is rewritten.
    """
    nets.check_scale(scale)
    g = nets.geometry(model, scale)
    stride = stride or train_stride(model)
    out = data_dir(model, scale, augment, stride, train_set)
    meta_path = os.path.join(out, "meta.json")
    if os.path.exists(meta_path) and not force:
        log("data: reusing %s" % out)
        return out
    if os.path.isdir(out) and os.listdir(out) and not force:
        raise UserError("%s exists but is incomplete (no meta.json); rerun with --force to rewrite it" % out)
    start = time.time()
    rng = np.random.RandomState(SEED)
    train_images = dataset_images(train_set)
    inputs, labels = collect(model, scale, train_images, stride, augment)
    order = rng.permutation(len(inputs))          # generate_train.m: randperm before store2hdf5
    inputs, labels = inputs[order], labels[order]
    test_in, test_lab = collect(model, scale, dataset_images(test_set), max(stride, g.input_size // 2), False)
    if len(test_in) < TEST_PATCHES:
        raise UserError("%s gives only %d test patches at x%d (need %d)" % (test_set, len(test_in), scale, TEST_PATCHES))
    pick = np.sort(rng.choice(len(test_in), TEST_PATCHES, replace=False))
    test_in, test_lab = test_in[pick], test_lab[pick]

    os.makedirs(out, exist_ok=True)
    for stale in os.listdir(out):                  # only reached with force=True
        os.remove(os.path.join(out, stale))
    files = []
    for i, first in enumerate(range(0, len(inputs), PATCHES_PER_FILE)):
        path = os.path.join(out, "train_%03d.h5" % i)
        write_h5(path, inputs[first:first + PATCHES_PER_FILE], labels[first:first + PATCHES_PER_FILE])
        files.append(path)
    write_h5(os.path.join(out, "test.h5"), test_in, test_lab)
    with open(os.path.join(out, "train.txt"), "w") as f:
        f.write("".join(os.path.abspath(p) + "\n" for p in files))
    with open(os.path.join(out, "test.txt"), "w") as f:
        f.write(os.path.abspath(os.path.join(out, "test.h5")) + "\n")
    meta = dict(scale=scale, input_size=g.input_size, label_size=g.label_size, label_offset=g.label_offset,
                upsampled_input=g.upsampled_input, stride=stride, augment=augment, train_set=train_set,
                test_set=test_set, train_patches=len(inputs), test_patches=len(test_in),
                train_images=len(train_images), files=len(files), seconds=round(time.time() - start, 1))
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)
    log("data: %d train patches (%dx%d -> %dx%d) in %d file(s), %d test patches from %s, %.1f s -> %s"
        % (len(inputs), g.input_size, g.input_size, g.label_size, g.label_size, len(files),
           len(test_in), test_set, meta["seconds"], out))
    return out


def read_meta(folder):
    path = os.path.join(folder, "meta.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise UserError("%s: not a prepared data folder (%s)" % (folder, exc))


def check_matches(folder, model, scale):
    """Catch a data/net mismatch before Caffe does (with a CHECK failure and a core dump)."""
    meta = read_meta(folder)
    g = nets.geometry(model, scale)
    if (meta["scale"], meta["input_size"], meta["label_size"]) != (scale, g.input_size, g.label_size):
        raise UserError("%s holds x%d patches %d->%d, but %s x%d needs %d->%d"
                        % (folder, meta["scale"], meta["input_size"], meta["label_size"], model, scale,
                           g.input_size, g.label_size))
    return meta
