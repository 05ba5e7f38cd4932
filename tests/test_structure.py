"""The package's structure: no import cycles (function-local imports included), thin tools,
one place for the overwrite rule and the environment."""
import ast
import os

from srcaffe import ROOT

PACKAGE = os.path.join(ROOT, "srcaffe")


def module_name(path):
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def package_modules():
    out = {}
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                out[module_name(path)] = path
    return out


def imports_of(name, path, modules):
    """srcaffe modules imported anywhere in a module (top level or inside functions)."""
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + ["%s.%s" % (base, a.name) for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def import_graph():
    modules = package_modules()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    # a package's __init__ re-exporting its own modules is not a cycle of the pipeline
    for name in graph:
        if modules[name].endswith("__init__.py"):
            graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    return graph


def test_no_module_imports_a_module_that_imports_it_back():
    graph = import_graph()
    assert graph["srcaffe.runs"] >= {"srcaffe.hdf5_patches", "srcaffe.snapshots"}   # the graph is real
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def reads_srcaffe_variable(path):
    """Whether a module looks up an SRCAFFE_* environment variable itself."""
    for node in ast.walk(ast.parse(open(path).read(), path)):
        key = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func in ("get", "getenv", "_env", "setdefault", "pop"):
                key = node.args[0].value
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            key = node.slice.value
        if isinstance(key, str) and key.startswith("SRCAFFE_"):
            return True
    return False


def test_environment_variables_are_read_in_one_place():
    readers = [name for name, path in sorted(package_modules().items()) if reads_srcaffe_variable(path)]
    assert readers == ["srcaffe.paths"]


def test_the_overwrite_rule_is_written_once():
    sources = {p: open(p).read() for p in list(package_modules().values()) +
               [os.path.join(ROOT, "tools", f) for f in os.listdir(os.path.join(ROOT, "tools")) if f.endswith(".py")]}
    writers = sorted(os.path.relpath(p, ROOT) for p, text in sources.items() if "refusing to overwrite it (use" in text)
    assert writers == ["srcaffe/files.py"]


def test_run_train_sh_is_a_few_lines():
    lines = [l for l in open(os.path.join(ROOT, "run_train.sh")) if l.strip()]
    assert len(lines) <= 20


def test_no_merge_conflict_markers_are_committed():
    """A merge was once committed half-resolved (bench/README.md): git's markers never reach a
    tracked file. (A lone "=======" is also a Markdown heading underline, so only <<< and >>>.)"""
    import re
    import subprocess

    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], capture_output=True, text=True, check=True).stdout
    marker = re.compile(r"^(<{7}|>{7}) ", re.M)
    found = []
    for rel in filter(None, files.split("\0")):
        path = os.path.join(ROOT, rel)
        if not os.path.isfile(path) or rel.endswith((".png", ".caffemodel", ".mat", ".bmp", ".h5")):
            continue
        with open(path, errors="replace") as f:
            text = f.read()
        found += ["%s:%d" % (rel, text[:m.start()].count("\n") + 1) for m in marker.finditer(text)]
    assert not found, "merge conflict markers in: %s" % ", ".join(found)


# ---- the tiers: declared marks only -------------------------------------------------------------

TRAINING_FIXTURES = ("train_env", "fsrcnn_run")   # prepare data and train the toolkit's nets


def collected_plan(folder, tmp_path, *args):
    """{node id: {"marks": [...], "fixtures": [...]}} of a --collect-only run over `folder`, with
    the fixture closure pytest itself computes (tests/conftest.py writes it: SRCAFFE_TEST_PLAN)."""
    import json
    import subprocess
    import sys

    plan = tmp_path / "plan.json"
    env = dict(os.environ, SRCAFFE_TEST_PLAN=str(plan))
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                        str(folder)] + list(args), capture_output=True, text=True, env=env, cwd=str(folder))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(plan.read_text())


def tier_violations(plan):
    """Tests that train without the slow mark, and tests of the CUDA build or the Docker images
    without theirs."""
    bad = []
    for node, t in sorted(plan.items()):
        if set(TRAINING_FIXTURES) & set(t["fixtures"]) and "slow" not in t["marks"]:
            bad.append("%s: uses a training fixture but is not marked slow" % node)
        for module, mark in (("test_cuda_build.py", "cuda"), ("test_docker.py", "docker")):
            if node.split("::")[0].endswith(module) and mark not in t["marks"]:
                bad.append("%s: not marked %s" % (node, mark))
    return bad


def test_every_test_that_trains_is_marked_slow(tmp_path):
    plan = collected_plan(os.path.join(ROOT, "tests"), tmp_path)
    assert len(plan) > 100
    assert tier_violations(plan) == []
    fast = [n for n, t in plan.items() if not {"slow", "cuda", "docker"} & set(t["marks"])]
    assert fast and not [n for n in fast if set(TRAINING_FIXTURES) & set(plan[n]["fixtures"])]


def test_the_tier_check_finds_an_unmarked_training_test(tmp_path):
    """The same check on a scratch suite (this suite's conftest, helpers and pytest.ini) with one
    test using train_env only through a fixture of its own, unmarked, and one marked test."""
    import shutil

    suite = tmp_path / "suite"
    (suite / "tests").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "pytest.ini"), suite)
    for name in ("conftest.py", "helpers.py"):
        shutil.copy(os.path.join(ROOT, "tests", name), suite / "tests")
    (suite / "tests" / "test_scratch.py").write_text(
        "import pytest\n\n"
        "@pytest.fixture\ndef runs(train_env):\n    return train_env\n\n"
        "def test_trains_unmarked(runs):\n    pass\n\n"
        "@pytest.mark.slow\ndef test_trains_marked(fsrcnn_run):\n    pass\n\n"
        "def test_plain():\n    pass\n")
    plan = collected_plan(suite, tmp_path)
    assert sorted(n.split("::")[1] for n in plan) == ["test_plain", "test_trains_marked", "test_trains_unmarked"]
    assert tier_violations(plan) == ["tests/test_scratch.py::test_trains_unmarked: uses a training fixture but is not marked slow"]
    # --strict-markers (pytest.ini): a mark that is not declared is an error, not a new tier
    (suite / "tests" / "test_scratch.py").write_text("import pytest\n\n@pytest.mark.slwo\ndef test_typo():\n    pass\n")
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", str(suite)],
                       capture_output=True, text=True, cwd=str(suite))
    assert r.returncode != 0 and "'slwo' not found in `markers` configuration option" in r.stdout, r.stdout[-2000:]


# ---- thin tools, the environment in one module, one definition of each default -------------------

TOOL_FILES = sorted(os.path.join(ROOT, "tools", f) for f in os.listdir(os.path.join(ROOT, "tools")) if f.endswith(".py"))
BENCH_FILES = sorted(os.path.join(ROOT, "bench", f) for f in os.listdir(os.path.join(ROOT, "bench")) if f.endswith(".py"))


def test_every_tool_is_under_120_lines():
    long = ["%s: %d lines" % (os.path.relpath(p, ROOT), n) for p in TOOL_FILES
            for n in [sum(1 for _ in open(p))] if n >= 120]
    assert len(TOOL_FILES) > 10 and long == []


def environment_reads(path):
    """Lines where a module touches os.environ or os.getenv itself (also `from os import environ`)."""
    found = []
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv", "unsetenv") \
                and isinstance(node.value, ast.Name) and node.value.id == "os":
            found.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" \
                and {a.name for a in node.names} & {"environ", "getenv", "putenv", "unsetenv"}:
            found.append(node.lineno)
    return sorted(found)


def test_the_environment_is_read_and_set_in_srcaffe_paths_only():
    sources = list(package_modules().values()) + TOOL_FILES + BENCH_FILES
    readers = sorted("%s:%s" % (os.path.relpath(p, ROOT), ",".join(map(str, lines)))
                     for p in sources for lines in [environment_reads(p)] if lines)
    assert readers == ["srcaffe/paths.py:%s" % ",".join(map(str, environment_reads(os.path.join(PACKAGE, "paths.py"))))]


def test_the_environment_check_finds_a_reader(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\nfrom os import getenv\nx = os.environ.get('A')\ny = dict(os.environ)\n")
    assert environment_reads(str(f)) == [2, 3, 4]


def literal_tuples(path):
    """(line, value) of every tuple or list of plain numbers or strings written in a module."""
    out = []
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, (ast.Tuple, ast.List)) and node.elts and all(isinstance(e, ast.Constant) for e in node.elts):
            out.append((node.lineno, tuple(e.value for e in node.elts)))
    return out


def test_each_default_is_defined_once():
    """The scales, the evaluation sets, the venv and the build cache folders: written in one module
    each (nets.SCALES, datasets.EVAL_SETS, paths.venv_dir / cache_dir), every other one asks there."""
    sources = list(package_modules().values()) + TOOL_FILES + BENCH_FILES
    where = {}
    for value, owner in (((2, 3, 4), "srcaffe/nets.py"), (("Set5", "Set14"), "srcaffe/datasets.py")):
        where[value] = sorted({os.path.relpath(p, ROOT) for p in sources for _, v in literal_tuples(p) if v == value})
        assert where[value] == [owner], (value, where[value])
    for text, owner in (('".venv"', "srcaffe/paths.py"), ('"~/.cache"', "srcaffe/paths.py"),
                        ('"Set5,Set14"', None)):
        writers = sorted(os.path.relpath(p, ROOT) for p in sources if text in open(p).read())
        assert writers == ([owner] if owner else []), (text, writers)
