"""The authors' released models: names, architectures, files, checksums, where they are."""
import os

from .. import nets, papers
from ..errors import UserError
from ..fetching import read_sha256sums, sha256_file
from ..paths import SHARED, official_weights_env, repo_path

OFFICIAL_DIR = repo_path("models", "official")          # imported caffemodels
SUMS_FILE = os.path.join(OFFICIAL_DIR, "SHA256SUMS")             # checksums of the released .mat
FETCH_DIR = repo_path("models", "official-src")         # where `fetch` puts the .mat files
SHARED_DIR = os.path.join(SHARED, "weights", "official")
PROTOTXT_DIR = repo_path("prototxt", "official")
PADDINGS = ("replicate", "zero")
LAYER_MODULE = "srcaffe.caffe_layers"

# name -> architecture (srcaffe.nets.MODELS), folder of the .mat files, scales, description.
MODELS = {
    "official-fsrcnn": dict(arch="fsrcnn", folder="FSRCNN", scales=nets.SCALES,
                            description="FSRCNN(56,12,4), 91-image + General-100 (ECCV 2016)"),
    "official-fsrcnn-s": dict(arch="fsrcnn-s", folder="FSRCNN-s", scales=nets.SCALES,
                              description="FSRCNN-s = FSRCNN(32,5,1), 91-image + General-100 (ECCV 2016)"),
    "official-srcnn-915": dict(arch="srcnn", folder="SRCNN/9-1-5-91images", scales=nets.SCALES,
                               description="SRCNN 9-1-5, 91 images (ECCV 2014)"),
    "official-srcnn-915-imagenet": dict(arch="srcnn", folder="SRCNN/9-1-5-ImageNet", scales=(3,),
                                        description="SRCNN 9-1-5, ImageNet (TPAMI 2015)"),
    "official-srcnn-935": dict(arch="srcnn-935", folder="SRCNN/9-3-5-ImageNet", scales=(3,),
                               description="SRCNN 9-3-5, ImageNet (TPAMI 2015)"),
    "official-srcnn-955": dict(arch="srcnn-955", folder="SRCNN/9-5-5-ImageNet", scales=nets.SCALES,
                               description="SRCNN 9-5-5, ImageNet (TPAMI 2015)"),
}

# The papers' mean PSNR (dB) for these very models: {name: {(dataset, scale): psnr}} (srcaffe/papers.py).
# The other released SRCNN variants have no table entry in the papers we could read.
PAPERS = {name: papers.PUBLISHED[name][0][1] for name in ("official-fsrcnn", "official-fsrcnn-s", "official-srcnn-955")}

# Public copies of the released files, tried in order by `fetch`; every file is checked against
# models/official/SHA256SUMS, so a changed or wrong source fails loudly instead of being used.
#   ("raw", base URL, {our folder: their folder}): base + their folder + "/x<s>.mat"
#   ("zip", archive URL, {our folder: their folder}): a member ending in their folder/x<s>.mat
_YABORN = "https://raw.githubusercontent.com/yaBorn/Super-resolution/74efc0394f0a07b615d6a25be412cf4ffc72169a/"
_PIYUSH = "https://raw.githubusercontent.com/Piyush3dB/SR-convnet/eaa95e3fa5c27de473b0ce9be62a586dcf2bb422/"
_SRCNN_FOLDERS = {"SRCNN/9-1-5-91images": "9-1-5(91 images)", "SRCNN/9-1-5-ImageNet": "9-1-5(ImageNet)",
                  "SRCNN/9-3-5-ImageNet": "9-3-5(ImageNet)", "SRCNN/9-5-5-ImageNet": "9-5-5(ImageNet)"}
SOURCES = [
    # the authors' SRCNN test package from the project page (model/<variant>/x<s>.mat inside)
    ("zip", "http://mmlab.ie.cuhk.edu.hk/projects/SRCNN/SRCNN_v1.zip",
     {k: "model/" + v for k, v in _SRCNN_FOLDERS.items()}),
    # FSRCNN_test as committed in yaBorn/Super-resolution (byte-identical to the release)
    ("raw", _YABORN + "Algorithm/FSRCNN/FSRCNN_test/model/",
     {"FSRCNN": "FSRCNN", "FSRCNN-s": "FSRCNN-s"}),
    # SRCNN_v1's models as committed in Piyush3dB/SR-convnet's first commit, and in yaBorn
    ("raw", _PIYUSH + "model/", dict(_SRCNN_FOLDERS)),
    ("raw", _YABORN + "Algorithm/SRCNN/model/", dict(_SRCNN_FOLDERS)),
]


def check_name(name, scale=None):
    """The registry entry of a model name (UserError for unknown names or scales)."""
    if name not in MODELS:
        raise UserError("unknown official model %r (known: %s)" % (name, ", ".join(MODELS)))
    entry = MODELS[name]
    if scale is not None and int(scale) not in entry["scales"]:
        raise UserError("%s: the authors released no x%s model (scales: %s)"
                        % (name, scale, "/".join("x%d" % s for s in entry["scales"])))
    return entry


def is_fsrcnn(name):
    return isinstance(nets.architecture(check_name(name)["arch"]), nets.FSRCNN)


def mat_relpath(name, scale):
    """'FSRCNN/x3.mat': the file's path inside the weights folder (and in SHA256SUMS)."""
    return "%s/x%d.mat" % (check_name(name, scale)["folder"], int(scale))


def load_sums(path=SUMS_FILE):
    """{relative path: sha256} of the released files, e.g. 'FSRCNN/x3.mat'."""
    return read_sha256sums(path)


def weights_dir():
    """Folder holding the released .mat files: $SRCAFFE_OFFICIAL_WEIGHTS, else
    <repo>/../shared/weights/official, else <repo>/models/official-src (after a fetch); None if
    none of them exists."""
    env = official_weights_env()
    if env:
        if not os.path.isdir(env):
            raise UserError("SRCAFFE_OFFICIAL_WEIGHTS=%s: no such folder" % env)
        return os.path.abspath(env)
    for folder in (SHARED_DIR, FETCH_DIR):
        if os.path.isdir(folder):
            return folder
    return None


def mat_path(name, scale, folder=None):
    """Path of a released .mat, verified against models/official/SHA256SUMS (UserError otherwise)."""
    rel = mat_relpath(name, scale)
    folder = folder or weights_dir()
    if folder is None:
        raise UserError("the authors' .mat files are not here (looked for $SRCAFFE_OFFICIAL_WEIGHTS, %s, %s); "
                        "run: python tools/import_official.py --fetch" % (SHARED_DIR, FETCH_DIR))
    path = os.path.join(folder, rel)
    if not os.path.isfile(path):
        raise UserError("%s: missing; run: python tools/import_official.py --fetch" % path)
    expected = load_sums().get(rel)
    if expected is None:
        raise UserError("%s: no checksum for %s" % (SUMS_FILE, rel))
    if sha256_file(path) != expected:
        raise UserError("%s: checksum mismatch with %s (not the authors' file)" % (path, SUMS_FILE))
    return path


def caffemodel_path(name, scale, out_dir=None):
    return os.path.join(out_dir or OFFICIAL_DIR, "%s_x%d.caffemodel" % (name, int(scale)))
