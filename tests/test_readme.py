"""README's command blocks, run as written: every ```bash block of README.md, in order, in a copy
of the tree as a fresh clone has it, from its root. Two kinds of line are adapted, and only
these: the test command itself (tools/test.sh: this is it) is not run again, and a raw
`caffe train -solver solvers/X.prototxt` runs the same generated solver with max_iter cut to 60
(the solver's own 100000 iterations take hours). Everything else, training included, runs as
printed; README keeps its examples short for that."""
import os
import re
import subprocess
import sys

import pytest

from srcaffe import ROOT

from test_first_run import clone_tree, user_env

pytestmark = pytest.mark.slow   # trains, prepares data, runs every tool of the quick start

SHORT = {"max_iter": 60, "snapshot": 60, "display": 20, "test_interval": 100000}


def bash_blocks(text):
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def adapt(line, repo, tmp):
    """The line to run for a README line (None: not run)."""
    if re.search(r"(^|\s)(\./)?tools/test\.sh\b", line):
        return None
    m = re.search(r"caffe train -solver (solvers/\S+\.prototxt)", line)
    if m:
        text = open(os.path.join(repo, m.group(1))).read()
        for key, value in SHORT.items():
            text = re.sub(r"(?m)^%s: .*$" % key, "%s: %d" % (key, value), text)
        short = os.path.join(tmp, os.path.basename(m.group(1)))
        with open(short, "w") as f:
            f.write(text)
        line = line.replace(m.group(1), short)
    return line


def test_readme_has_runnable_blocks_and_is_a_front_page():
    text = open(os.path.join(ROOT, "README.md")).read()
    assert len(text.splitlines()) <= 260
    assert len(bash_blocks(text)) >= 4


def test_every_readme_command_block_runs_as_written(tmp_path, shared_datasets):
    repo = clone_tree(tmp_path / "clone")
    os.symlink(sys.prefix, os.path.join(repo, ".venv"))   # the suite's own venv, set up once (.venv/bin/caffe)
    env = user_env(VENV=sys.prefix, SRCAFFE_DATASETS_FROM=shared_datasets, MPLBACKEND="Agg")
    env.pop("SRCAFFE_DATA", None)
    env["PATH"] = os.path.join(sys.prefix, "bin") + os.pathsep + env.get("PATH", "")
    ran = 0
    for block in bash_blocks(open(os.path.join(repo, "README.md")).read()):
        lines = [adapt(l, repo, str(tmp_path)) for l in block.splitlines()]
        script = "\n".join(l for l in lines if l is not None)
        if not script.strip() or all(l.strip().startswith("#") for l in script.splitlines() if l.strip()):
            continue
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=repo, env=env, capture_output=True,
                           text=True, timeout=3600)
        assert r.returncode == 0, "README block failed:\n%s\n---\n%s\n%s" % (block, r.stdout[-2000:], r.stderr[-3000:])
        assert "Traceback" not in r.stderr, block
        ran += 1
    assert ran >= 4
