"""Tools started with another Python than the project's venv (`python tools/predict.py ...`
without activating .venv) re-run themselves with the venv's interpreter, where NumPy, Pillow and
pycaffe are. Only the standard library is imported here, before any of those."""
import os
import sys

from .paths import reexec_mark, venv_dir


def reexec_in_venv():
    python = os.path.join(venv_dir(), "bin", "python")
    if not os.access(python, os.X_OK) or reexec_mark():
        return
    if os.path.realpath(sys.prefix) == os.path.realpath(venv_dir()):
        return
    reexec_mark(set_it=True)    # never twice, whatever the venv's layout
    os.execv(python, [python] + sys.argv)
