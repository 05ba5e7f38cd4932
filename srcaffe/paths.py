"""Where things live: the repository's folders, and the SRCAFFE_* environment variables that move
them. Every other module asks here; none reads those variables itself.

| variable                  | what it moves                               | default              |
| SRCAFFE_DATASETS          | the dataset images (T91, Set5, Set14)       | <repo>/datasets      |
| SRCAFFE_DATASETS_FROM     | a local folder to fetch datasets from       | (their public homes) |
| SRCAFFE_DATA              | prepared HDF5 patch folders                 | <repo>/data          |
| SRCAFFE_MODELS            | the toolkit's shipped models                | <repo>/models        |
| SRCAFFE_OFFICIAL_WEIGHTS  | the authors' released .mat files            | see official.weights_dir |
| SRCAFFE_CACHE             | Caffe builds (tools/setup.sh)               | ~/.cache/srcaffe     |
| SRCAFFE_MAX_IMAGE_PIXELS  | the largest image read (width x height)     | 100000000            |
| SRCAFFE_PROGRESS_AFTER    | seconds before a long image job shows progress | 3                 |

Other variables the toolkit reads are read here too (CAFFE_SRC of tools/setup.sh's build key,
VENV / VIRTUAL_ENV, Slurm's array task, CUDA_VISIBLE_DEVICES in a message), and the environment
of a child process or of Caffe's libraries is set here: the functions at the end.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The folder shared beside a checkout (datasets and the authors' weights, for tests and CI).
SHARED = os.path.join(os.path.dirname(ROOT), "shared")


def repo_path(*parts):
    return os.path.join(ROOT, *parts)


def _env(name):
    return os.environ.get(name) or None


def datasets_root(root=None):
    return os.path.abspath(root or _env("SRCAFFE_DATASETS") or repo_path("datasets"))


def datasets_source():
    """A local folder to fetch missing datasets from instead of their public homes, or None."""
    return _env("SRCAFFE_DATASETS_FROM")


def data_root():
    return _env("SRCAFFE_DATA") or repo_path("data")


def models_dir():
    """Where the toolkit's trained models are shipped ($SRCAFFE_MODELS overrides models/)."""
    return _env("SRCAFFE_MODELS") or repo_path("models")


DEFAULT_MAX_IMAGE_PIXELS = 100000000


def max_image_pixels():
    """The largest image (width x height) the tools decode, or a UserError naming the variable."""
    from .errors import UserError

    text = _env("SRCAFFE_MAX_IMAGE_PIXELS")
    if text is None:
        return DEFAULT_MAX_IMAGE_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise UserError("SRCAFFE_MAX_IMAGE_PIXELS=%s: must be a positive whole number of pixels" % text)
    return int(text)


def progress_after():
    try:
        return max(0.0, float(_env("SRCAFFE_PROGRESS_AFTER") or 3))
    except ValueError:
        return 3.0


def official_weights_env():
    return _env("SRCAFFE_OFFICIAL_WEIGHTS")


def runs_root():
    return repo_path("runs")


def cache_dir():
    return _env("SRCAFFE_CACHE") or os.path.join(_env("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "srcaffe")


def net_file(model, scale, kind):
    """prototxt/<model>_x<scale>_<kind>.prototxt (kind: train_test, deconv_train_test, deploy)."""
    return repo_path("prototxt", "%s_x%d_%s.prototxt" % (model, scale, kind))


def solver_file(model, scale, solver):
    return repo_path("solvers", "%s_x%d_%s.prototxt" % (model, scale, solver))


def shipped_weights(model, scale):
    return os.path.join(models_dir(), "%s_x%d.caffemodel" % (model, scale))


def venv_dir():
    """The project's venv, as tools/setup.sh chooses it: $VENV, the active venv, else .venv/."""
    return _env("VENV") or _env("VIRTUAL_ENV") or repo_path(".venv")


def reexec_mark(set_it=False):
    """Whether a tool has already re-run itself with the venv's interpreter (srcaffe.venv)."""
    if set_it:
        os.environ["SRCAFFE_IN_VENV"] = "1"
    return bool(_env("SRCAFFE_IN_VENV"))


def caffe_source():
    """$CAFFE_SRC: the Caffe source tarball or folder tools/setup.sh builds from (None: Debian's)."""
    return _env("CAFFE_SRC")


def slurm_task():
    """'JOB_TASK' of the Slurm array task this process runs in, or None outside Slurm."""
    job = _env("SLURM_ARRAY_JOB_ID")
    return "%s_%s" % (job, os.environ.get("SLURM_ARRAY_TASK_ID")) if job else None


def cuda_visible_devices():
    return os.environ.get("CUDA_VISIBLE_DEVICES", "unset")


# ---- the environment of this process and of its children -----------------------------------------

def child_env(**values):
    """This process's environment with `values` set: for a child process (Caffe, a tool)."""
    return dict(os.environ, **values)


def set_env(**values):
    """Set variables in this process (read by libraries loaded afterwards: Caffe's BLAS, glog)."""
    os.environ.update(values)


def default_env(**values):
    """Set variables in this process unless the user has set them."""
    for name, value in values.items():
        os.environ.setdefault(name, value)


def unset_env(name):
    os.environ.pop(name, None)


def env_values(names):
    """{name: value} of those of `names` that are set (a benchmark's report of its settings)."""
    return {n: os.environ[n] for n in names if n in os.environ}


def gpu_check_settings():
    """tools/gpu_check.sh's settings ($GPU_CHECK_*, GPU_ID, CUDA_LIBS, CUDA_HOME, CUDA_PATH, OUT),
    unset ones None: srcaffe/gpu_check.py gives their defaults."""
    names = ("GPU_CHECK_MODE", "GPU_CHECK_ITERS", "GPU_CHECK_TRAIN_LIMIT", "GPU_CHECK_TIME_ITERS", "GPU_CHECK_AUG",
             "GPU_ID", "CUDA_LIBS", "CUDA_HOME", "CUDA_PATH", "OUT")
    return {n: _env(n) for n in names}
