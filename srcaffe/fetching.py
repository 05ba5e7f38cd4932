"""One fetcher for everything the toolkit downloads (the datasets, the authors' released
weights): every file is checked against its SHA-256 before it is put in place, atomically, so a
changed mirror fails loudly and an interrupted download leaves nothing behind.

A source is (kind, url, where): `where(rel)` names the file `rel` inside that source (None: it
does not hold it); kind "files": url + where(rel) is the file's own address; "zip": url is an
archive holding a member that ends in where(rel). Local folders are the `copy_from` path.
"""
import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile

from . import files
from .errors import UserError

_HASH_CACHE = {}


def read_sha256sums(path):
    """{relative path: sha256} from sha256sum lines 'digest  path' (a leading ./ or * dropped)."""
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                digest, rel = line.split(None, 1)
                rel = rel.strip().lstrip("*")
                out[rel[2:] if rel.startswith("./") else rel] = digest.lower()
    return out


def sha256_file(path):
    """SHA-256 of a file, cached on (path, size, mtime) so repeated verifies stay cheap."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def install(src_path, dest, expected, sums_file):
    """Copy src_path to dest atomically after checking its checksum."""
    if sha256_file(src_path) != expected:
        raise UserError("%s: checksum mismatch with %s; not used" % (src_path, sums_file))
    with files.writing(dest) as tmp:
        shutil.copyfile(src_path, tmp)


def download(url, dest, timeout=120):
    req = urllib.request.Request(url, headers={"User-Agent": "srcaffe"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
        shutil.copyfileobj(resp, out)


def fetch_verified(todo, dest_dir, sources, sums_file, log):
    """Try each source in turn for the files {rel: sha256} of `todo`, installing each intact one
    as dest_dir/rel. Returns {rel: reason} for the files no source could provide intact."""
    failed = {rel: "no source has it" for rel in todo}
    files.make_dir(dest_dir)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".download-") as tmpdir:
        for kind, url, where in sources:
            wanted = {rel: where(rel) for rel in failed if where(rel)}
            if not wanted:
                continue
            zf = None
            if kind == "zip":
                archive = os.path.join(tmpdir, "archive.zip")
                try:
                    log("downloading %s" % url)
                    download(url, archive, timeout=600)
                    zf = zipfile.ZipFile(archive)
                except (OSError, zipfile.BadZipFile) as exc:
                    for rel in wanted:
                        failed[rel] = "%s: %s" % (url, exc)
                    continue
                members = {m.replace("\\", "/"): m for m in zf.namelist()}
            for rel, theirs in sorted(wanted.items()):
                tmp = os.path.join(tmpdir, "file")
                try:
                    if zf is not None:
                        hit = [m for m in members if m == theirs or m.endswith("/" + theirs)]
                        if not hit:
                            failed[rel] = "%s: no %s inside" % (url, theirs)
                            continue
                        with zf.open(members[hit[0]]) as src, open(tmp, "wb") as out:
                            shutil.copyfileobj(src, out)
                        origin = "%s!%s" % (url, hit[0])
                    else:
                        origin = url + urllib.request.quote(theirs)
                        download(origin, tmp)
                    path = os.path.join(dest_dir, rel)
                    files.make_dir(os.path.dirname(path))
                    install(tmp, path, todo[rel], sums_file)
                except (OSError, UserError) as exc:
                    failed[rel] = "%s: %s" % (url, exc)
                    continue
                log("fetched %s (from %s)" % (path, origin))
                del failed[rel]
            if zf is not None:
                zf.close()
    return failed
