"""A prepared data folder, written and read in one way: what Caffe's HDF5Data reads
(train_NNN.h5 + train.txt, test.h5 + test.txt) and meta.json, which describes it.

Written by one process at a time (a lock beside it), into a folder aside (NAME.part-PID) that is
renamed into place only once whole: a folder under its final name is always complete, so
`is_prepared` (meta.json there) can be trusted, and a preparation killed half-way leaves only a
.part folder, removed by the next one. hdf5_patches.prepare (the authors' patches) and MMSR's
split (one folder per texture class) both write through `build`.

The lists name their files relative to the repository root when the folder is inside it
(Caffe opens them from its working folder: `caffe train -solver solvers/...` from the repository
root, wherever the clone is), else by absolute path; readers resolve every entry to the file of
that name in the folder itself, so a moved or copied folder reads its own files.
"""
import contextlib
import fcntl
import os
import shutil

from . import files
from .errors import UserError
from .paths import ROOT

META = "meta.json"
LISTS = ("train.txt", "test.txt")


def is_prepared(folder):
    return os.path.isfile(os.path.join(folder, META))


@contextlib.contextmanager
def lock(out, log=print):
    """One writer of a folder at a time; the others wait here (then find it prepared)."""
    files.make_dir(os.path.dirname(os.path.abspath(out)))
    with open(out + ".lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("data: another process is writing %s; waiting for it" % out)
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def build(out):
    """Under the caller's lock: a fresh folder aside to write `out` into, renamed onto `out` (an
    older `out` replaced) when the block ends well; removed on any error or interruption."""
    parent, name = os.path.split(os.path.abspath(out))
    for stale in os.listdir(parent):   # left by a writer that was killed
        if stale.startswith(name + ".part-"):
            shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
    part = "%s.part-%d" % (os.path.abspath(out), os.getpid())
    files.make_dir(part)
    try:
        yield part
        if os.path.isdir(out):
            shutil.rmtree(out)
        os.rename(part, out)
    finally:
        shutil.rmtree(part, ignore_errors=True)


def list_entry(folder, name):
    """How a source list names folder/name: relative to the repository root when inside it."""
    path = os.path.abspath(os.path.join(folder, name))
    return os.path.relpath(path, ROOT) if os.path.commonpath([path, ROOT]) == ROOT else path


def write_list(part, final, list_name, names):
    """part/list_name naming the files `names` where they will be: in `final`."""
    files.write_text(os.path.join(part, list_name), "".join(list_entry(final, n) + "\n" for n in names))


def write_h5(path, inputs, labels):
    """One HDF5 file of N x 1 x H x W float32 `data` and `label` (Caffe's blobs), written whole."""
    import h5py
    import numpy as np

    with files.writing(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("data", data=inputs[:, None], dtype=np.float32)
            f.create_dataset("label", data=labels[:, None], dtype=np.float32)


def write_meta(folder, meta):
    files.write_json(os.path.join(folder, META), meta)


def read_meta(folder):
    if not os.path.isdir(folder):
        raise UserError("%s: no such data folder" % folder)
    if not is_prepared(folder):
        raise UserError("%s: not a prepared data folder (no %s)" % (folder, META))
    return files.read_json(os.path.join(folder, META), META)


def listed_files(folder, name):
    """The HDF5 files a list names, each resolved to the file of that name in this folder."""
    try:
        with open(os.path.join(folder, name)) as f:
            lines = [l.strip() for l in f if l.strip()]
    except OSError as exc:
        raise UserError("%s: %s" % (os.path.join(folder, name), exc.strerror)) from None
    if not lines:
        raise UserError("%s: lists no HDF5 file" % os.path.join(folder, name))
    return [os.path.join(folder, os.path.basename(l)) for l in lines]
