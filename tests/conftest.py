"""Shared fixtures: every test session works on its own copy of the datasets in a temporary folder.

SRCAFFE_DATASETS points at a fresh temporary root for the whole session (so tests never touch
<repo>/datasets), and `fetched` fills it with T91/Set5/Set14 copied from the local shared folder
($SRCAFFE_SHARED_DATASETS, else <repo>/../shared/datasets) through the normal verified fetch.
Nothing is ever downloaded.
"""
import os

import pytest

from srcaffe import paths

from helpers import require

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
