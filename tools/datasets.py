#!/usr/bin/env python3
import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E401,E702
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)

import argparse

from srcaffe import datasets, official
from srcaffe import cli
from srcaffe.cli import run_main

DESCRIPTION = "Fetch, list and verify the T91 / Set5 / Set14 image sets against datasets/SHA256SUMS."

EPILOG = """\
examples:
  python tools/datasets.py fetch                          # all sets, from the public sources
  python tools/datasets.py fetch Set5 Set14 --from ../shared/datasets
  python tools/datasets.py list                           # what is present and verified
  python tools/datasets.py verify Set5                    # exit 1 and name every bad file
  python tools/datasets.py fetch official                 # the authors' released .mat models

Files go to $SRCAFFE_DATASETS/<name>/ (default: <repo>/datasets/<name>/). Every file is checked
against datasets/SHA256SUMS; an existing file that differs is only replaced with --force.
`fetch official` downloads the authors' released SRCNN/FSRCNN models (.mat) into
models/official-src/, checked against models/official/SHA256SUMS (tools/import_official.py
turns them into caffemodels).
exit status: 0 ok, 1 verification found problems, 2 usage or fetch error.
"""


def parse_args(argv):
    common = cli.ArgumentParser(add_help=False)
    common.add_argument("--root", metavar="DIR",
                        help="datasets folder (default: $SRCAFFE_DATASETS or <repo>/datasets)")
    fmt = dict(epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p = cli.ArgumentParser(prog="tools/datasets.py", description=DESCRIPTION, **fmt)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    f = sub.add_parser("fetch", parents=[common], help="copy (--from DIR) or download datasets, verifying checksums",
                       description="Copy (--from DIR) or download datasets, verifying every checksum.", **fmt)
    f.add_argument("names", nargs="*", metavar="NAME", help="datasets (default: all: %s), or official" % ", ".join(datasets.DATASETS))
    f.add_argument("--from", dest="source", metavar="DIR",
                   help="local folder holding NAME/ subfolders (e.g. ../shared/datasets) instead of downloading")
    f.add_argument("--force", action="store_true", help="replace existing files that fail their checksum")
    sub.add_parser("list", parents=[common], help="show each dataset: files present/verified/missing", **fmt)
    v = sub.add_parser("verify", parents=[common], help="check every file against SHA256SUMS; exit 1 on any problem",
                       **fmt)
    v.add_argument("names", nargs="*", metavar="NAME", help="datasets (default: all)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    given = getattr(args, "names", None) or []
    if args.command == "fetch" and "official" in given:
        n = official.fetch(log=lambda m: print(m, flush=True))
        print("official: %d released model file(s) written to %s" % (n, official.FETCH_DIR))
        given = [g for g in given if g != "official"]
        if not given:
            return 0
    names = [datasets.canonical_name(n) for n in given or datasets.DATASETS]
    if args.command == "fetch":
        for name in names:
            n = datasets.fetch(name, source_dir=args.source, root=args.root, force=args.force,
                               log=lambda m: print(m, flush=True))
            total = len(datasets.DATASETS[name]["files"])
            print("%s: %d file(s) verified in %s (%d written)" % (name, total, datasets.dataset_dir(name, args.root), n))
        return 0
    if args.command == "list":
        print("%-6s %6s %9s %8s %8s  %s" % ("name", "files", "verified", "missing", "corrupt", "folder"))
        for name in names:
            n, ok, missing, corrupt = datasets.status(name, args.root)
            print("%-6s %6d %9d %8d %8d  %s" % (name, n, ok, missing, corrupt, datasets.dataset_dir(name, args.root)))
        return 0
    bad = 0
    for name in names:
        problems = datasets.verify(name, args.root)
        for prob in problems:
            print(prob)
        bad += len(problems)
        print("%s: %s" % (name, "OK" if not problems else "%d problem(s)" % len(problems)))
    return 1 if bad else 0


if __name__ == "__main__":
    run_main(main)
