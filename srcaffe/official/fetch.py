"""Fetching the released .mat files from their public copies (network: only when asked),
through the toolkit's one verified fetcher (srcaffe.fetching)."""
import os

from .. import files
from ..errors import UserError
from ..fetching import fetch_verified, sha256_file
from . import registry
from .registry import FETCH_DIR, MODELS, SUMS_FILE, check_name, load_sums, mat_relpath


def fetch(names=None, dest=None, force=False, log=None):
    """Download the released .mat files of `names` (default: all) into dest (default
    <repo>/models/official-src), each checked against models/official/SHA256SUMS before it is
    put in place. Intact files are kept; a differing one is replaced only with force.
    Returns the number of files written."""
    log = log or (lambda msg: None)
    dest = os.path.abspath(dest or FETCH_DIR)
    sums = load_sums()
    todo = {}
    for name in names or list(MODELS):
        for s in check_name(name)["scales"]:
            rel = mat_relpath(name, s)
            path = os.path.join(dest, rel)
            if os.path.isfile(path) and sha256_file(path) == sums[rel]:
                continue
            files.check_new(path, force, why="exists but differs from %s" % SUMS_FILE)
            todo[rel] = sums[rel]
    if not todo:
        return 0
    # registry.SOURCES: ("raw" | "zip", url, {our folder: their folder}); read now (tests swap it)
    sources = [("zip" if kind == "zip" else "files", url,
                (lambda rel, folders=folders: folders.get(os.path.dirname(rel)) and
                 "%s/%s" % (folders[os.path.dirname(rel)], os.path.basename(rel))))
               for kind, url, folders in registry.SOURCES]
    failed = fetch_verified(todo, dest, sources, SUMS_FILE, log)
    if failed:
        rel = sorted(failed)[0]
        raise UserError("could not fetch %d file(s), first %s (%s)" % (len(failed), rel, failed[rel]))
    return len(todo)
