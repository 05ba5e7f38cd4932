"""Registry of the SRCNN/FSRCNN image sets: where they live, where they come from, are they intact.

Every registered file has a SHA-256 in datasets/SHA256SUMS; nothing unverified is ever used.
Images live under $SRCAFFE_DATASETS/<name>/ (default: <repo>/datasets/<name>/).
"""
import os
import sys

from . import files as safe_files
from .errors import UserError
from .fetching import fetch_verified, install, read_sha256sums, sha256_file  # noqa: F401 (re-exported)
from .paths import ROOT, datasets_root as _datasets_root, datasets_source

SUMS_FILE = os.path.join(ROOT, "datasets", "SHA256SUMS")
EVAL_SETS = ("Set5", "Set14")   # the papers' test sets: what the tools evaluate on by default
IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")

# Public copies. The tegg89 folders hold the same bytes as the local reference copy (see
# datasets/README.md); the authors' SRCNN_train.zip (project page) has Train/ and Test/Set5|Set14.
# Every downloaded file is checked against SHA256SUMS, so a changed mirror fails loudly.
_TEGG89 = "https://raw.githubusercontent.com/tegg89/SRCNN-Tensorflow/master/"
_JINSUYOO = "https://raw.githubusercontent.com/jinsuyoo/srcnn/07ea13a9e4a3266e1f703913423405bda9600a7f/"
_SRCNN_TRAIN_ZIP = "http://mmlab.ie.cuhk.edu.hk/projects/SRCNN/SRCNN_train.zip"


def _load_sums(path=SUMS_FILE):
    """{dataset: {filename: sha256}} from lines 'sha256  Dataset/file'."""
    out = {}
    for rel, digest in read_sha256sums(path).items():
        folder, fname = rel.split("/", 1)
        out.setdefault(folder, {})[fname] = digest
    return out


_SUMS = _load_sums()

# sources: ("files", base URL the file names are appended to) or ("zip", archive URL, folder
# inside the archive that holds the files).
DATASETS = {
    "T91": {
        "description": "91-image training set of Yang et al. (SRCNN, FSRCNN training)",
        "files": _SUMS.get("T91", {}),
        "sources": [("files", _TEGG89 + "Train/"), ("zip", _SRCNN_TRAIN_ZIP, "Train/")],
    },
    "Set5": {
        "description": "Set5 test set (Bevilacqua et al.), *_GT.bmp",
        "files": _SUMS.get("Set5", {}),
        "sources": [("files", _TEGG89 + "Test/Set5/"), ("files", _JINSUYOO + "Test/Set5/gt/"),
                    ("zip", _SRCNN_TRAIN_ZIP, "Test/Set5/")],
    },
    "Set14": {
        "description": "Set14 test set (Zeyde et al.); bridge.bmp is grayscale",
        "files": _SUMS.get("Set14", {}),
        "sources": [("files", _TEGG89 + "Test/Set14/"), ("files", _JINSUYOO + "Test/Set14/gt/"),
                    ("zip", _SRCNN_TRAIN_ZIP, "Test/Set14/")],
    },
}


def canonical_name(name):
    """'set5' -> 'Set5'; UserError for names not in the registry."""
    for key in DATASETS:
        if key.lower() == str(name).lower():
            return key
    raise UserError("unknown dataset %r (known: %s)" % (name, ", ".join(DATASETS)))


def datasets_root(root=None):
    """root, else $SRCAFFE_DATASETS, else <repo>/datasets."""
    return _datasets_root(root)


def dataset_dir(name, root=None):
    """Folder that holds (or will hold) dataset `name`."""
    return os.path.join(datasets_root(root), canonical_name(name))


def _check(path, expected):
    """None if path holds the expected bytes, else a problem string naming the file."""
    if not os.path.isfile(path):
        return "%s: missing" % path
    got = sha256_file(path)
    if got != expected:
        return "%s: checksum mismatch (expected %s..., got %s...)" % (path, expected[:12], got[:12])
    return None


def verify(name, root=None):
    """List of problems of dataset `name` (empty when every file is present and intact)."""
    name = canonical_name(name)
    folder = dataset_dir(name, root)
    return [p for p in (_check(os.path.join(folder, f), d)
                        for f, d in sorted(DATASETS[name]["files"].items())) if p]


def status(name, root=None):
    """(n_files, n_verified, n_missing, n_corrupt) for a summary listing."""
    probs = verify(name, root)
    missing = sum(p.endswith(": missing") for p in probs)
    n = len(DATASETS[canonical_name(name)]["files"])
    return n, n - len(probs), missing, len(probs) - missing


def _install(src_path, dest, expected):
    install(src_path, dest, expected, "datasets/SHA256SUMS")


def _fetch_remote(name, todo, folder, log):
    """Each public source in turn; {fname: reason} of the files none could provide intact."""
    sources = [(kind, url, (lambda f, prefix=(rest[0] if rest else ""): prefix + f))
               for kind, url, *rest in DATASETS[name]["sources"]]
    return fetch_verified(todo, folder, [("zip" if k == "zip" else "files", u, w) for k, u, w in sources],
                          "datasets/SHA256SUMS", log)


def fetch(name, source_dir=None, root=None, force=False, log=None):
    """Make dataset `name` present and verified under dataset_dir(name, root).

    source_dir: a local folder holding <name>/<files> (or the files themselves), e.g. a shared copy;
    None downloads from the public sources. Intact files already present are kept; an existing file
    that differs is never replaced silently (UserError naming it, unless force=True). Every file
    is checked against SHA256SUMS before it is put in place. Returns the number of files written.
    """
    name = canonical_name(name)
    log = log or (lambda msg: None)
    files = DATASETS[name]["files"]
    if not files:
        raise UserError("%s: no checksums for dataset %s; cannot verify it" % (SUMS_FILE, name))
    folder = dataset_dir(name, root)
    safe_files.make_dir(folder)
    todo, differing = {}, []
    for fname, digest in sorted(files.items()):
        dest = os.path.join(folder, fname)
        if os.path.exists(dest):
            if os.path.isfile(dest) and sha256_file(dest) == digest:
                continue
            differing.append(dest)
        todo[fname] = digest
    if differing:
        safe_files.check_new(differing[0], force, why="exists but differs from datasets/SHA256SUMS",
                             more=_more(differing))
    if not todo:
        return 0
    if source_dir is not None:
        base = os.path.join(source_dir, name)
        if not os.path.isdir(base):
            base = source_dir
        if not os.path.isdir(base):
            raise UserError("%s: no such folder" % source_dir)
        missing = [os.path.join(base, f) for f in todo if not os.path.isfile(os.path.join(base, f))]
        if missing:
            raise UserError("%s: missing from the source folder%s" % (missing[0], _more(missing)))
        for fname, digest in todo.items():
            _install(os.path.join(base, fname), os.path.join(folder, fname), digest)
        log("%s: copied %d file(s) from %s" % (name, len(todo), base))
        return len(todo)
    failed = _fetch_remote(name, todo, folder, log)
    if failed:
        first = sorted(failed)[0]
        raise UserError("%s: could not fetch %d file(s), first %s (%s); offline, copy them from a folder "
                        "that has them: python3 tools/datasets.py fetch %s --from DIR"
                        % (name, len(failed), os.path.join(folder, first), failed[first], name))
    return len(todo)


def _more(items):
    return " (and %d more)" % (len(items) - 1) if len(items) > 1 else ""


def is_registered(name_or_path):
    """The name of a registered dataset (Set5, set14, ...), and no folder of that name here."""
    key = str(name_or_path)
    return key.lower() in (k.lower() for k in DATASETS) and not os.path.isdir(key)


def is_image_set(name_or_path):
    """A folder or a registered dataset's name: the tools then process every image in it."""
    return os.path.isdir(str(name_or_path)) or (not os.path.exists(str(name_or_path)) and is_registered(name_or_path))


def set_name(name_or_path):
    """What tables call an image set: a registered dataset's own name, else the folder's name."""
    if is_registered(name_or_path):
        return canonical_name(name_or_path)
    return os.path.basename(os.path.normpath(str(name_or_path)))


def list_images(name_or_path, root=None):
    """Sorted image paths of a registered dataset (fetched first where files are missing, as
    resolve_image does; then verified: a corrupt file is a UserError naming it) or of any folder
    (png/bmp/jpg/jpeg/tif, any case)."""
    key = str(name_or_path)
    if is_registered(key):
        name = canonical_name(key)
        probs = verify(name, root)
        if probs and all(p.endswith(": missing") for p in probs):   # not fetched yet: fetch it now (verified)
            fetch(name, source_dir=datasets_source(), root=root, log=lambda msg: print(msg, file=sys.stderr))
            probs = verify(name, root)
        if probs:
            raise UserError("%s%s; run: python3 tools/datasets.py fetch %s"
                            % (probs[0], _more(probs), name))
        folder = dataset_dir(name, root)
        return [os.path.join(folder, f) for f in sorted(DATASETS[name]["files"])]
    if not os.path.isdir(key):
        raise UserError("%s: neither a registered dataset (%s) nor a folder" % (key, ", ".join(DATASETS)))
    paths = sorted(os.path.join(key, f) for f in os.listdir(key)
                   if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(key, f)))
    if not paths:
        raise UserError("%s: no images (%s) in this folder" % (key, "/".join(e[1:] for e in IMAGE_EXTENSIONS)))
    return paths


def resolve_image(path, root=None):
    """An existing path as is; otherwise look the file name up in the registered datasets
    ('butterfly_GT.bmp', 'butterfly.bmp' or 'butterfly' -> <datasets>/Set5/butterfly_GT.bmp).
    The found file is verified; missing or corrupt gives a UserError naming it."""
    path = os.fspath(path)
    if os.path.exists(path):
        return path
    base = os.path.basename(path)
    stem, ext = os.path.splitext(base)
    wanted = {base.lower()} | {(stem + "_GT" + e).lower() for e in ([ext] if ext else IMAGE_EXTENSIONS)}
    if not ext:
        wanted |= {(stem + e).lower() for e in IMAGE_EXTENSIONS}
    for name, info in DATASETS.items():
        for fname, digest in sorted(info["files"].items()):
            if fname.lower() in wanted:
                found = os.path.join(dataset_dir(name, root), fname)
                problem = _check(found, digest)
                if problem and not os.path.exists(found):
                    # Not fetched yet: fetch the dataset now (verified), as run_train.sh does.
                    try:
                        fetch(name, source_dir=datasets_source(), root=root,
                              log=lambda msg: print(msg, file=sys.stderr))
                        problem = _check(found, digest)
                    except UserError as exc:   # its own line says what to do offline
                        raise UserError("%s is in %s, which is not here: %s" % (path, name, exc)) from None
                if problem:
                    raise UserError("%s (matched %s in dataset %s); run: python3 tools/datasets.py fetch %s"
                                    % (problem, path, name, name))
                return found
    raise UserError("%s: no such file, and no registered dataset has an image of that name" % path)
