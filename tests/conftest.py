"""Shared fixtures: every test session works on its own copy of the datasets in a temporary folder.

SRCAFFE_DATASETS points at a fresh temporary root for the whole session (so tests never touch
<repo>/datasets), and `fetched` fills it with T91/Set5/Set14 copied from the local shared folder
($SRCAFFE_SHARED_DATASETS, else <repo>/../shared/datasets) through the normal verified fetch.
Nothing is ever downloaded.
"""
import os

# Parallel workers (pytest-xdist, as tools/test.sh runs the suite) share the cores: one thread each
# for Caffe's OpenMP and OpenBLAS, set before NumPy or any Caffe is loaded (a test that is about
# threads sets its own count).
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import pytest  # noqa: E402

from srcaffe import paths  # noqa: E402

from helpers import require  # noqa: E402

SHARED = os.environ.get("SRCAFFE_SHARED_DATASETS") or os.path.join(paths.SHARED, "datasets")


@pytest.fixture(scope="session", autouse=True)
def datasets_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("datasets"))
    old = os.environ.get("SRCAFFE_DATASETS")
    os.environ["SRCAFFE_DATASETS"] = root
    yield root
    if old is None:
        os.environ.pop("SRCAFFE_DATASETS", None)
    else:
        os.environ["SRCAFFE_DATASETS"] = old


@pytest.fixture(scope="session")
def shared_datasets():
    """The local source folder (a failure in CI, a skip elsewhere, when this machine has no copy)."""
    missing = [n for n in ("T91", "Set5", "Set14") if not os.path.isdir(os.path.join(SHARED, n))]
    require(not missing, "the datasets %s are missing from %s (set SRCAFFE_SHARED_DATASETS)"
            % (", ".join(missing), SHARED))
    return SHARED


@pytest.fixture(scope="session")
def fetched(datasets_root, shared_datasets):
    """SRCAFFE_DATASETS filled with verified T91, Set5 and Set14."""
    from srcaffe import datasets
    for name in ("T91", "Set5", "Set14"):
        datasets.fetch(name, source_dir=shared_datasets)
    return datasets_root


@pytest.fixture(scope="session")
def train_env(fetched, tmp_path_factory):
    """Environment for ./run_train.sh: a data folder of the session (so each HDF5 set is
    prepared once for every test module), the session's verified datasets."""
    data = str(tmp_path_factory.mktemp("data"))
    return dict(os.environ, SRCAFFE_DATA=data, SRCAFFE_DATASETS=fetched, PYTHONUNBUFFERED="1")


@pytest.fixture(scope="session")
def user_venv(tmp_path_factory):
    """Where a user's venv goes in the fresh-clone tests: made by the first tool run there (a real
    tools/setup.sh: pip, and the cached Caffe build linked), shared by the clones of the session,
    so that the suite's own venv is never pointed at a temporary clone."""
    return str(tmp_path_factory.mktemp("user") / "venv")


@pytest.fixture(scope="module")
def data_x3(train_env):
    """FSRCNN x3 data without augmentation (fsrcnn-s shares its geometry), in the session's data folder."""
    from helpers import tool

    out = tool("prepare_data.py", "fsrcnn", "--scale", 3, "--no-aug", env=train_env)
    assert out.returncode == 0, out.stderr
    return os.path.join(train_env["SRCAFFE_DATA"], "T91-x3-lr11-label19-stride4")


@pytest.fixture(scope="session")
def fsrcnn_run(fetched, tmp_path_factory):
    """FSRCNN x3's generated net on T91 patches (no augmentation, to keep it small) and a
    20-iteration Adam solver with a fixed seed, in a scratch folder (helpers.caffe_train_losses
    trains it with a given Caffe: two builds, or two images, give the same losses)."""
    import re

    from srcaffe import ROOT, hdf5_patches

    tmp = tmp_path_factory.mktemp("fsrcnn-run")
    old = os.environ.get("SRCAFFE_DATA")
    os.environ["SRCAFFE_DATA"] = str(tmp / "data")
    try:
        folder = hdf5_patches.prepare("fsrcnn", 3, augment=False, log=lambda *a: None)
    finally:
        os.environ.pop("SRCAFFE_DATA") if old is None else os.environ.__setitem__("SRCAFFE_DATA", old)
    net = open(os.path.join(ROOT, "prototxt", "fsrcnn_x3_train_test.prototxt")).read()
    net = re.sub(r'source: "data/[^"]*/(train|test)\.txt"', lambda m: 'source: "%s/%s.txt"' % (folder, m.group(1)), net)
    assert net.count(folder) == 2
    (tmp / "net.prototxt").write_text(net)
    solver = open(os.path.join(ROOT, "solvers", "fsrcnn_x3_adam.prototxt")).read()
    for key, value in (("net", '"%s"' % (tmp / "net.prototxt")), ("max_iter", "20"), ("display", "1"),
                       ("snapshot", "0"), ("snapshot_prefix", '"%s"' % (tmp / "snap")), ("solver_mode", "CPU")):
        solver = re.sub(r"(?m)^%s: .*$" % key, "%s: %s" % (key, value), solver)
    solver += "random_seed: 1\ntest_initialization: false\nsnapshot_after_train: false\n"
    (tmp / "solver.prototxt").write_text(solver)
    return tmp


# A machine without a GPU toolchain or without Docker: tools/test.sh --no-cuda / --no-docker (or
# these variables) skip every test that carries the mark, whatever module it is in.
SKIPPED_MARKS = {"cuda": "SRCAFFE_SKIP_CUDA", "docker": "SRCAFFE_SKIP_DOCKER"}


def pytest_collection_modifyitems(config, items):
    for mark, var in SKIPPED_MARKS.items():
        if os.environ.get(var) == "1":
            skip = pytest.mark.skip(reason="%s=1" % var)
            for item in items:
                if item.get_closest_marker(mark):
                    item.add_marker(skip)


def pytest_collection_finish(session):
    """With SRCAFFE_TEST_PLAN=FILE, a --collect-only run writes the selected tests there as JSON,
    {node id: {"marks": [...], "fixtures": [...]}}: tools/test.sh reads from it which builds the
    selection needs before making any (the CUDA build only for `cuda` tests), and
    tests/test_structure.py checks the tiers against the fixtures."""
    out = os.environ.get("SRCAFFE_TEST_PLAN")
    if not out or not session.config.option.collectonly:
        return
    import json

    plan = {item.nodeid: {"marks": sorted({m.name for m in item.iter_markers()}),
                          "fixtures": sorted(getattr(item, "fixturenames", ()))} for item in session.items}
    with open(out, "w") as f:
        json.dump(plan, f, indent=1, sort_keys=True)
