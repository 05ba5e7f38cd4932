"""Tools started with another Python than the project's venv (`python3 tools/predict.py ...`
without activating .venv) re-run themselves with the venv's interpreter, where NumPy, Pillow and
pycaffe are. On a fresh clone, where there is no venv yet (or it lacks Caffe, or requirements.txt
changed since it was made), the tool first sets it up as ./run_train.sh does (tools/setup.sh),
saying so in one line. `--help` never waits for that: the tools build their parsers from the
standard library alone. Only the standard library is imported here."""
import hashlib
import os
import subprocess
import sys

from .paths import reexec_mark, repo_path, venv_dir

HELP = ("-h", "--help")


def _ready(venv):
    """The venv has an interpreter, a Caffe linked by tools/setup.sh and the current requirements."""
    try:
        with open(repo_path("requirements.txt"), "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()[:16]
        with open(os.path.join(venv, ".srcaffe-requirements")) as f:
            have = f.read().strip()
    except OSError:
        return False
    return (have == want and os.access(os.path.join(venv, "bin", "python"), os.X_OK)
            and os.path.isfile(os.path.join(venv, ".srcaffe-caffe")))


def set_up(venv):
    """tools/setup.sh, its progress on stderr; exits with its code (and its one-line error) on failure."""
    first = not os.path.isdir(venv)
    print("%s: %s (tools/setup.sh; %s)" % (
        os.path.basename(sys.argv[0]), "setting up the toolkit in %s" % venv if first else "updating %s" % venv,
        "the first time builds Caffe: about 10 minutes on 2 cores" if first else "a few seconds to minutes"),
        file=sys.stderr, flush=True)
    code = subprocess.call(["bash", repo_path("tools", "setup.sh")], stdout=sys.stderr)
    if code:
        sys.exit(code)


def reexec_in_venv():
    venv = venv_dir()
    if reexec_mark() or os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    python = os.path.join(venv, "bin", "python")
    if any(a in HELP for a in sys.argv[1:]):   # --help at once: never a setup first
        if not os.access(python, os.X_OK):
            return                              # this interpreter will do
    elif not _ready(venv):
        set_up(venv)
    reexec_mark(set_it=True)    # never twice, whatever the venv's layout
    os.execv(python, [python] + sys.argv)
