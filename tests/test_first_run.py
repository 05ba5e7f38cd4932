"""A new user's first minutes, on a copy of the tree as a fresh clone has it: every tool's --help
at once with no venv, the headline predict command setting things up and running again and
again beside other models, and the tutorial's raw-Caffe workflow (prepare data, `caffe train
-solver solvers/...` from the repository root, `-snapshot`), also after the clone moved."""
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

from srcaffe import ROOT

from helpers import assert_figure

TOOLS = sorted(glob.glob(os.path.join(ROOT, "tools", "*.py")))
CAFFE = os.path.join(sys.prefix, "bin", "caffe")


def clone_tree(dest):
    """The files a fresh clone of this tree has (tracked and not ignored), copied to dest."""
    listed = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))
    return str(dest)


def user_env(**extra):
    """The environment of a user's shell: no venv active, none of the test session's re-exec mark."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "SRCAFFE_IN_VENV", "PYTHONPATH")}
    env.update(extra)
    return env


def system_python():
    """An interpreter outside the venv, as a user types `python3`."""
    for cand in (shutil.which("python3", path=os.environ.get("PATH", "").replace(os.path.join(sys.prefix, "bin"), "")),
                 getattr(sys, "_base_executable", None), "/usr/bin/python3"):
        if cand and os.path.realpath(os.path.dirname(cand)) != os.path.realpath(os.path.join(sys.prefix, "bin")):
            return cand
    pytest.skip("no Python outside the venv")


@pytest.mark.parametrize("tool", TOOLS, ids=os.path.basename)
def test_every_tool_prints_its_help_at_once_without_a_venv(tool, tmp_path):
    """-S: not even the interpreter's own site-packages (no NumPy, no Pillow): --help needs only
    the standard library, and sets nothing up."""
    assert os.access(tool, os.X_OK) and open(tool).readline().startswith("#!/usr/bin/env python3")   # runs as tools/X.py
    venv = tmp_path / "no-venv"
    r = subprocess.run([system_python(), "-S", tool, "--help"], capture_output=True, text=True, timeout=60,
                       env=user_env(VENV=str(venv)))
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout and "Traceback" not in r.stderr
    prog = "./run_train.sh" if tool.endswith("train.py") else "tools/%s" % os.path.basename(tool)
    assert r.stdout.startswith("usage: %s " % prog)   # the command as README writes it
    assert not venv.exists()


def test_run_train_help_at_once_without_a_venv(tmp_path):
    venv = tmp_path / "no-venv"
    r = subprocess.run([os.path.join(ROOT, "run_train.sh"), "--help"], capture_output=True, text=True, timeout=60,
                       env=user_env(VENV=str(venv)))
    assert r.returncode == 0 and "usage:" in r.stdout, r.stderr
    assert not venv.exists()


@pytest.mark.slow
def test_predict_on_a_fresh_clone_sets_up_then_runs_again_beside_other_models(tmp_path, shared_datasets, user_venv):
    """python3 tools/predict.py butterfly.bmp with no venv: one line saying it sets up, then the
    comparison; again: the same files replaced, said in one line; other models and --analyse
    beside it: their own files; someone else's file under an output name: refused."""
    repo = clone_tree(tmp_path / "clone")
    env = user_env(VENV=user_venv, SRCAFFE_DATASETS_FROM=shared_datasets)

    def predict(*args):
        return subprocess.run([system_python(), "tools/predict.py"] + list(args), cwd=repo, env=env,
                              capture_output=True, text=True, timeout=1800)
    r = predict("butterfly.bmp")
    assert r.returncode == 0, r.stderr[-3000:]
    if not os.path.isfile(os.path.join(user_venv, ".srcaffe-caffe")) or "setting up" in r.stderr:
        assert re.search(r"predict.py: setting up the toolkit in .*venv \(tools/setup.sh", r.stderr)
    first = sorted(n for n in os.listdir(os.path.join(repo, "results")) if not n.startswith("."))
    assert first == ["butterfly_GT_x3_fsrcnn.png", "butterfly_GT_x3_fsrcnn_bicubic.png",
                     "butterfly_GT_x3_fsrcnn_compare.png"]
    assert_figure(os.path.join(repo, "results", "butterfly_GT_x3_fsrcnn_compare.png"))
    assert re.search(r"fsrcnn 2[89]\.\d\d dB", r.stdout)
    r = predict("butterfly.bmp")
    assert r.returncode == 0, r.stderr
    assert "replacing 3 file(s) this same command wrote before" in r.stdout and "setting up" not in r.stderr
    r = predict("butterfly.bmp", "--analyse")   # the same outputs and two figures more
    assert r.returncode == 0, r.stderr
    assert "replacing 3 file(s)" in r.stdout
    assert_figure(os.path.join(repo, "results", "butterfly_GT_x3_fsrcnn_errors.png"))
    for args, name in ((["--model", "srcnn"], "srcnn"), (["--model", "official-fsrcnn"], "official-fsrcnn"),
                       (["--model", "fsrcnn-s", "--analyse"], "fsrcnn-s")):
        r = predict("butterfly.bmp", *args)
        assert r.returncode == 0, r.stderr
        assert "replacing" not in r.stdout and " %s " % name in r.stdout
    names = [n for n in os.listdir(os.path.join(repo, "results")) if not n.startswith(".")]
    assert len(names) == 5 + 3 + 3 + 5 and all(n.startswith("butterfly_GT_x3_") for n in names)
    # the same model in another mode writes its own files too; another command's file is refused
    lr = os.path.join(repo, "results", "butterfly_GT_x3_fsrcnn_bicubic.png")
    r = predict(lr, "--mode", "upscale")
    assert r.returncode == 0, r.stderr
    assert os.path.isfile(os.path.join(repo, "results", "butterfly_GT_x3_fsrcnn_bicubic_x3_fsrcnn_upscale.png"))
    r = predict("butterfly.bmp", "--pad", "zero")
    assert r.returncode == 0 and os.path.isfile(os.path.join(repo, "results", "butterfly_GT_x3_fsrcnn_zeropad.png"))
    os.remove(os.path.join(repo, "results", ".srcaffe-outputs.json"))   # no record: nothing is known to be ours
    r = predict("butterfly.bmp")
    assert r.returncode == 2 and "already exists; refusing to overwrite it (use --force)" in r.stderr
    assert "Traceback" not in r.stderr


def caffe(cwd, *args, env=None):
    r = subprocess.run([CAFFE] + list(args), cwd=cwd, capture_output=True, text=True, timeout=1800,
                       env=dict(env or os.environ, GLOG_minloglevel="0", GLOG_logtostderr="1"))
    return r


def short_solver(repo, solver, max_iter, path):
    """The generated solver with only its length changed (and no test pass, not even Caffe's at
    iteration 0): `caffe train -solver` of it from the repository root is the tutorial's command."""
    text = open(os.path.join(repo, "solvers", solver)).read()
    for key, value in (("max_iter", max_iter), ("snapshot", 50), ("display", 10), ("test_interval", 100000)):
        text = re.sub(r"(?m)^%s: .*$" % key, "%s: %d" % (key, value), text)
    text += "test_initialization: false\n"
    with open(path, "w") as f:
        f.write(text)
    return str(path)


@pytest.mark.slow
def test_raw_caffe_train_and_snapshot_from_the_repository_root_also_after_a_move(tmp_path, shared_datasets):
    repo = clone_tree(tmp_path / "clone")
    env = user_env(SRCAFFE_DATASETS_FROM=shared_datasets, VENV=sys.prefix)
    env.pop("SRCAFFE_DATA", None)
    r = subprocess.run([sys.executable, "tools/prepare_data.py", "srcnn"], cwd=repo, env=env,
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    listed = open(glob.glob(os.path.join(repo, "data", "*", "train.txt"))[0]).read().split()
    assert listed and all(p.startswith("data/") for p in listed)    # moves with the clone
    net = open(os.path.join(repo, "prototxt", "srcnn_x3_he_train_test.prototxt")).read()
    assert 'type: "msra"' in net and "std: 0.001" not in net    # Adam starts from He's fillers
    assert 'net: "prototxt/srcnn_x3_he_train_test.prototxt"' in open(os.path.join(repo, "solvers", "srcnn_x3_adam.prototxt")).read()

    r = caffe(repo, "train", "-solver", short_solver(repo, "srcnn_x3_adam.prototxt", 50, tmp_path / "s50.prototxt"))
    assert r.returncode == 0, r.stderr[-2000:]
    snap = os.path.join(repo, "runs", "srcnn_x3_adam_iter_50.solverstate")
    assert os.path.isfile(snap) and os.path.isfile(snap.replace(".solverstate", ".caffemodel"))
    r = caffe(repo, "train", "-solver", short_solver(repo, "srcnn_x3_adam.prototxt", 100, tmp_path / "s100.prototxt"),
              "-snapshot", "runs/srcnn_x3_adam_iter_50.solverstate")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Resuming from runs/srcnn_x3_adam_iter_50.solverstate" in r.stderr
    assert re.search(r"Iteration 100, loss = [0-9.e-]+", r.stderr)
    assert os.path.isfile(os.path.join(repo, "runs", "srcnn_x3_adam_iter_100.caffemodel"))

    moved = str(tmp_path / "moved")
    os.rename(repo, moved)
    r = caffe(moved, "train", "-solver", short_solver(moved, "srcnn_x3_adam.prototxt", 50, tmp_path / "m50.prototxt"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert re.search(r"Iteration 50, loss = [0-9.e-]+", r.stderr)


def doc_blocks(path):
    text = open(os.path.join(ROOT, path)).read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_python_api_and_the_raw_pycaffe_recipe_work_as_documented(fetched, monkeypatch, capsys):
    """docs/inference.md's two code blocks, run as written from the repository root."""
    import numpy as np

    from srcaffe.models import load_model

    api, raw = doc_blocks("docs/inference.md")
    monkeypatch.chdir(ROOT)
    scope = {}
    exec(compile(api, "docs/inference.md (API)", "exec"), scope)
    assert scope["hr"].shape == (768, 768, 3) and scope["hr"].dtype == np.uint8
    assert scope["sr"].name == "fsrcnn" and scope["sr"].arch.name == "fsrcnn"
    raw_scope = {}
    exec(compile(raw, "docs/inference.md (raw pycaffe)", "exec"), raw_scope)
    assert raw_scope["out"].shape == (259, 259) and raw_scope["sr_y"].shape == (255, 255)
    want = load_model("fsrcnn", 3).upscale_y(raw_scope["y"])
    np.testing.assert_allclose(raw_scope["sr_y"], want, atol=1e-6, rtol=0)
    # and the whole colour image the API gave is the network's Y merged with bicubic Cb/Cr
    assert abs(scope["hr"].astype(int) - scope["sr"].upscale(scope["lr"]).astype(int)).max() == 0


def tool_parser(path, monkeypatch):
    """The argparse parser a tool builds (caught as its main() parses)."""
    import argparse
    import importlib.util

    caught = []

    def catch(self, args=None, namespace=None):
        caught.append(self)
        raise SystemExit(0)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", catch)
    spec = importlib.util.spec_from_file_location("tool_" + os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit):
        module.main([])
    return caught[0]


@pytest.mark.parametrize("tool", TOOLS, ids=os.path.basename)
def test_every_option_of_every_tool_is_explained(tool, monkeypatch):
    import argparse

    todo, unexplained = [tool_parser(tool, monkeypatch)], []
    while todo:
        parser = todo.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += list(action.choices.values())
            elif not action.help and not isinstance(action, argparse._HelpAction):
                unexplained.append("%s %s" % (parser.prog, "/".join(action.option_strings) or action.dest))
        assert parser.prog.startswith(("tools/", "./run_train.sh")), parser.prog   # as README writes them
    assert not unexplained


SCRIPTS = ["tools/setup.sh", "tools/test.sh", "tools/build_caffe.sh", "tools/cuda_toolchain.sh", "tools/gpu_check.sh",
           "tools/caffe_selftest.sh", "tools/slurm_local.sh", "docker/build.sh"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_prints_its_help_at_once(script, tmp_path):
    """--help sets nothing up: no venv made, no build started, nothing installed."""
    venv = tmp_path / "no-venv"
    r = subprocess.run(["bash", os.path.join(ROOT, script), "--help"], capture_output=True, text=True, timeout=30,
                       env=user_env(VENV=str(venv), SRCAFFE_CACHE=str(tmp_path / "cache")))
    assert r.returncode == 0 and r.stdout.strip() and not r.stderr, (r.stdout, r.stderr)
    assert "usage:" in r.stdout or script.split("/")[-1] in r.stdout
    assert not venv.exists() and not (tmp_path / "cache").exists()
