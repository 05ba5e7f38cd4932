#!/usr/bin/env python3
"""Multi-model super-resolution (MMSR): srcaffe/mmsr/command.py holds its options and commands."""
import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E401,E702
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)

from srcaffe.cli import run_main  # noqa: E402
from srcaffe.mmsr.command import main  # noqa: E402

if __name__ == "__main__":
    run_main(main)
