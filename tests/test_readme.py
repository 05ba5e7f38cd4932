"""README's command blocks, run as written: every ```bash block of README.md, in order, in a copy
of the tree as a fresh clone has it, from its root, and every ```python block with the venv's
Python there. Two kinds of line are adapted, and only these: the test command itself
(tools/test.sh: this is it) is not run again, and a raw `caffe train -solver solvers/X.prototxt`
runs the same generated solver cut short (the solver's own 100000 iterations take hours): 60
iterations with a snapshot at 60 and no test pass (not even Caffe's at iteration 0: its 500 test
batches cost more than the training), and a line that resumes with `-snapshot ..._iter_N.solverstate`
continues from that snapshot to 120. Everything else, training included, runs as printed;
README keeps its examples short for that."""
import os
import re
import subprocess

import pytest

from srcaffe import ROOT

from test_first_run import clone_tree, user_env

pytestmark = pytest.mark.slow   # trains, prepares data, runs every tool of the quick start

SHORT = {"snapshot": 60, "display": 20, "test_interval": 100000}


def blocks(text, kind):
    return re.findall(r"```%s\n(.*?)```" % kind, text, flags=re.S)


def adapt(line, repo, tmp):
    """The line to run for a README line (None: not run)."""
    if re.search(r"(^|\s)(\./)?tools/test\.sh\b", line):
        return None
    m = re.search(r"caffe train -solver (solvers/\S+\.prototxt)", line)
    if m:
        resume = re.search(r"-snapshot (\S+_iter_)(\d+)(\.solverstate)", line)
        text = open(os.path.join(repo, m.group(1))).read()
        for key, value in dict(SHORT, max_iter=120 if resume else 60).items():
            text = re.sub(r"(?m)^%s: .*$" % key, "%s: %d" % (key, value), text)
        text += "test_initialization: false\n"
        short = os.path.join(tmp, ("resume_" if resume else "") + os.path.basename(m.group(1)))
        with open(short, "w") as f:
            f.write(text)
        line = line.replace(m.group(1), short)
        if resume:
            line = line.replace(resume.group(0), "-snapshot %s60%s" % (resume.group(1), resume.group(3)))
    return line


def test_readme_has_runnable_blocks_and_is_a_front_page():
    text = open(os.path.join(ROOT, "README.md")).read()
    assert len(text.splitlines()) <= 260
    assert len(blocks(text, "bash")) >= 4


def test_every_readme_command_block_runs_as_written(tmp_path, shared_datasets, user_venv):
    repo = clone_tree(tmp_path / "clone")
    env = user_env(VENV=user_venv, SRCAFFE_DATASETS_FROM=shared_datasets, MPLBACKEND="Agg")
    env.pop("SRCAFFE_DATA", None)
    # the test run's user venv (set up here if no earlier test made it), as .venv/ of the clone
    r = subprocess.run(["bash", "tools/setup.sh"], cwd=repo, env=env, capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    os.symlink(user_venv, os.path.join(repo, ".venv"))
    ran = 0
    readme = open(os.path.join(repo, "README.md")).read()
    for block in blocks(readme, "python"):
        r = subprocess.run([os.path.join(repo, ".venv", "bin", "python"), "-c", block], cwd=repo, env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, "README block failed:\n%s\n---\n%s" % (block, r.stderr[-3000:])
        ran += 1
    for block in blocks(readme, "bash"):
        lines = [adapt(l, repo, str(tmp_path)) for l in block.splitlines()]
        script = "\n".join(l for l in lines if l is not None)
        if not script.strip() or all(l.strip().startswith("#") for l in script.splitlines() if l.strip()):
            continue
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=repo, env=env, capture_output=True,
                           text=True, timeout=3600)
        assert r.returncode == 0, "README block failed:\n%s\n---\n%s\n%s" % (block, r.stdout[-2000:], r.stderr[-3000:])
        assert "Traceback" not in r.stderr, block
        ran += 1
    assert ran >= 5
    assert os.path.isfile(os.path.join(repo, "runs", "srcnn_x3_adam_iter_120.caffemodel"))
