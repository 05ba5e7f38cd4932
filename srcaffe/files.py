"""Safe writes, in one place: nothing the toolkit writes is ever left half-written, mixed with
another process's output, or overwritten without being asked to.

- check_new(path, force): the overwrite rule (an existing file is refused unless --force).
- writing(path): a temporary name beside `path` for any writer that takes a file name (h5py,
  matplotlib, PIL, protobuf...), moved into place only when the writer finished; on any error,
  Ctrl-C or a full disk, the temporary file is removed and `path` is untouched. Two processes
  writing the same target each write their own temporary file; the last rename wins whole.
- write_text / write_bytes / write_json: the same for data in memory.
- make_dir(path): mkdir -p with a one-line error naming the folder.
Errors (permission, read-only, disk full, a file where a folder should be) become UserError
naming the path.
"""
import contextlib
import errno
import json
import os
import tempfile

from .errors import UserError

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def describe_os_error(path, exc):
    if exc.errno == errno.ENOSPC:
        return "%s: no space left on the device" % path
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "%s: not writable (%s)" % (path, exc.strerror)
    return "%s: %s" % (path, exc.strerror or exc)


def check_new(path, force=False, why="already exists", more=""):
    """The overwrite rule: an existing output is refused unless force (`why` says what is wrong
    with it, `more` names others)."""
    if os.path.lexists(path) and not force:
        raise UserError("%s: %s; refusing to overwrite it (use --force)%s" % (path, why, more))


def check_writable_file(path, force=False):
    """Before long work: `path` may be written (the overwrite rule, and its folder exists and
    takes files)."""
    check_new(path, force)
    check_writable_dir(os.path.dirname(os.path.abspath(path)), create=False)


def make_dir(path):
    """mkdir -p, or one line naming the folder (a file in the way, no permission, read-only)."""
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        raise UserError("%s: exists and is not a folder" % path) from None
    except OSError as exc:
        raise UserError(describe_os_error(path, exc)) from None
    return path


def check_writable_dir(path, create=True):
    """Fail early, before long work, where `path` cannot take files: made if missing (create),
    else only its nearest existing ancestor is checked, so a refused command leaves no folder."""
    if create:
        make_dir(path)
    probe = os.path.abspath(path)
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise UserError("%s: %s exists and is not a folder" % (path, probe))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError("%s: folder %s not writable" % (path, probe))
    return path


def normal_mode(path):
    """The permissions an ordinary new file gets (mkstemp makes its files private)."""
    os.chmod(path, 0o666 & ~_UMASK)


@contextlib.contextmanager
def writing(path, force=True, suffix=None):
    """Yield a temporary file name beside `path`; move it onto `path` when the block ends well."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    check_new(path, force)
    make_dir(folder)
    suffix = suffix if suffix is not None else os.path.splitext(path)[1]
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".%s.part-" % os.path.basename(path)[:40], suffix=suffix)
    except OSError as exc:
        raise UserError(describe_os_error(path, exc)) from None
    os.close(fd)
    try:
        yield tmp
        normal_mode(tmp)
        if not force:   # another process may have got there first
            check_new(path)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(describe_os_error(path, exc)) from None
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def write_bytes(path, data, force=True):
    with writing(path, force) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return path


def write_text(path, text, force=True):
    return write_bytes(path, text.encode("utf-8"), force)


def write_json(path, obj, force=True):
    return write_text(path, json.dumps(obj, indent=1) + "\n", force)


def read_json(path, what="file", missing=None):
    """A JSON file's content, or one line: `missing` when the file does not exist, else why not."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError(missing or "%s: %s" % (path, "no such file")) from None
    except OSError as exc:
        raise UserError("%s: %s" % (path, exc.strerror or exc)) from None
    except ValueError as exc:
        raise UserError("%s: not a valid JSON %s (%s)" % (path, what, exc)) from None


def save_figure(fig, path, force=True):
    """A matplotlib Figure as a PNG, written whole or not at all."""
    with writing(path, force, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path
