"""A training segment decided in-process (srcaffe.segments): the options of ./run_train.sh parsed
by tools/train.py's own parser, read against real run folders (run.json written by the toolkit,
real solverstates and caffemodels, small real HDF5 data folders), planned, and written. Nothing
trains here: what Caffe then does with the files is tests/test_training.py's."""
import json
import os
import shutil
import sys

import numpy as np
import pytest

from srcaffe import data_folder, hdf5_patches, nets, paths, pycaffe, runs, segments, solvers
from srcaffe.errors import UserError

from helpers import TOOLS, make_caffemodel

sys.path.insert(0, TOOLS)
import train as train_tool  # noqa: E402 (the tool's parser)

MODEL = "fsrcnn-s"


@pytest.fixture(autouse=True)
def data_root(tmp_path, monkeypatch):
    """Default data folders in the test's own folder; the run folders it held released after it."""
    monkeypatch.setenv("SRCAFFE_DATA", str(tmp_path / "data"))
    yield str(tmp_path / "data")
    for held in [d for d in runs._held if d.startswith(str(tmp_path))]:
        runs.unlock(held)


def small_data(folder, model=MODEL, scale=3, augment=False, n=6, bad=None):
    """A prepared data folder of n random patches of model's geometry; bad=(dataset, patch): NaN there."""
    g = nets.geometry(model, scale)
    rng = np.random.default_rng(0)
    inputs = rng.random((n, g.input_size, g.input_size)).astype(np.float32)
    labels = rng.random((n, g.label_size, g.label_size)).astype(np.float32)
    if bad:
        (inputs if bad[0] == "data" else labels)[bad[1], 0, 0] = np.nan
    os.makedirs(folder)
    data_folder.write_h5(os.path.join(folder, "train_000.h5"), inputs, labels)
    data_folder.write_h5(os.path.join(folder, "test.h5"), inputs, labels)
    data_folder.write_list(folder, folder, "train.txt", ["train_000.h5"])
    data_folder.write_list(folder, folder, "test.txt", ["test.h5"])
    data_folder.write_meta(folder, dict(scale=scale, input_size=g.input_size, label_size=g.label_size,
                                        augment=augment, train_patches=n))
    return str(folder)


@pytest.fixture
def data(data_root):
    """fsrcnn-s x3's default data folder without augmentation (--no-aug), prepared."""
    return small_data(hdf5_patches.data_dir(MODEL, 3, False))


def opts(*argv):
    return train_tool.parse_args([str(a) for a in argv])


def plan(*argv):
    o = opts(*argv)
    return segments.plan_segment(o, segments.read_state(o))


def refused(*argv):
    """The one-line message the command is refused with, by the plan or before it (prepare_run:
    read, plan and write, so that a refusal that left anything behind would show)."""
    with pytest.raises(UserError) as exc:
        segments.prepare_run(opts(*argv), log=lambda line: None)
    assert "\n" not in str(exc.value)
    return str(exc.value)


def start(*argv):
    """A segment planned and written in-process (its run.json, net and solver), as ./run_train.sh
    writes it before Caffe starts."""
    return segments.prepare_run(opts(*argv), log=lambda line: None)


def snapshot(run_dir, it, model=MODEL, scale=3, solver="adam", learned_net=None):
    """A real snapshot pair as Caffe writes it: a solverstate whose history fits the net (Adam keeps
    two moments) naming a caffemodel relative to the run folder."""
    from caffe.proto import caffe_pb2
    name = "%s_x%d_iter_%d" % (model, scale, it)
    state = caffe_pb2.SolverState(iter=it, learned_net=learned_net or name + ".caffemodel")
    for shape in list(nets.arch(model, scale).param_shapes) * (2 if solver == "adam" else 1):
        state.history.add().shape.dim.extend(shape)
    path = os.path.join(str(run_dir), name + ".solverstate")
    with open(path, "wb") as f:
        f.write(state.SerializeToString())
    make_caffemodel(os.path.join(str(run_dir), name + ".caffemodel"), model, scale)
    return path


def trained(run_dir, *argv, to=None, ended="finished"):
    """A run folder whose first segment (argv) reached iteration `to` (its target by default)."""
    p = start(MODEL, *argv, "--run-dir", run_dir)
    to = p.max_iter if to is None else to
    state = snapshot(run_dir, to)
    runs.end_segment(p, ended, to)
    return state


def names(p):
    return [os.path.basename(path) for path, _ in p.files]


def content(p, name):
    return dict((os.path.basename(path), text) for path, text in p.files)[name]


def listing(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else None


# ---- a new run ------------------------------------------------------------------------------------

def test_a_fresh_run_is_planned_without_writing_then_written_as_planned(data, tmp_path):
    run_dir = str(tmp_path / "r")
    p = plan(MODEL, "--no-aug", "--iters", 40, "--run-dir", run_dir)
    assert not os.path.exists(run_dir)                     # planning writes nothing
    assert (p.run_dir, p.new_run, p.start_iter, p.max_iter, p.snapshot, p.weights) == (run_dir, True, 0, 40, None, None)
    assert (p.base_lr, p.init, p.deconv_only, p.snapshot_every, p.solver_snapshot) == (None, "authors", False, None, 5000)
    assert (p.snapshot_minutes, p.display, p.data, p.augment, p.prepare_data) == (10, 2, data, False, True)
    assert p.messages == []
    assert names(p) == ["data-train.txt", "data-test.txt", "train_test-start.prototxt", "solver-start.prototxt",
                        "run.json"]
    assert content(p, "data-train.txt") == os.path.join(data, "train_000.h5") + "\n"
    assert content(p, "data-test.txt") == os.path.join(data, "test.h5") + "\n"
    net = content(p, "train_test-start.prototxt")
    assert 'source: "%s/data-train.txt"' % run_dir in net and 'source: "%s/data-test.txt"' % run_dir in net
    solver = content(p, "solver-start.prototxt")
    for line in ('net: "%s/train_test-start.prototxt"' % run_dir, "max_iter: 40", "display: 2", "snapshot: 5000",
                 'snapshot_prefix: "fsrcnn-s_x3"', 'type: "Adam"'):
        assert line + "\n" in solver, line
    record = content(p, "run.json")
    assert {k: v for k, v in record.items() if k != "segments"} == dict(
        model=MODEL, scale=3, solver="adam", augment=False, data=data, display=2)
    (segment,) = record["segments"]
    assert segment == dict(started=segment["started"], start_iter=0, max_iter=40, snapshot=None, weights=None,
                           solver_file=os.path.join(run_dir, "solver-start.prototxt"), base_lr=None,
                           deconv_only=False, init="authors", snapshot_every=None, snapshot_minutes=10,
                           engine=None)

    said = []
    written = segments.write_segment(p, log=said.append)
    assert said == ["data: reusing %s" % data]
    assert listing(run_dir) == sorted([".lock"] + names(p))
    for path, text in p.files:
        assert (json.load(open(path)) if path.endswith(".json") else open(path).read()) == text
    assert written == runs.Plan(MODEL, 3, "adam", run_dir, os.path.join(run_dir, "solver-start.prototxt"), 0, 40,
                                None, None, os.path.join(run_dir, "train.log"), 5000, 10, 2)
    assert runs.lock_holder(run_dir) == os.getpid()
    assert "already holds a run; resume it with --resume" in refused(MODEL, "--no-aug", "--run-dir", run_dir)


def test_an_engine_is_set_in_the_segments_copy_of_the_net_and_not_kept_by_a_resume(data, tmp_path):
    from google.protobuf import text_format

    caffe_pb2 = pycaffe.caffe_pb2()

    def engines(p, name):
        net = text_format.Parse(content(p, name), caffe_pb2.NetParameter())
        return [(layer.type, layer.convolution_param.engine) for layer in net.layer
                if layer.type in ("Convolution", "Deconvolution")]
    default = caffe_pb2.ConvolutionParameter.DEFAULT
    plain = plan(MODEL, "--no-aug", "--iters", 3, "--run-dir", tmp_path / "a")
    assert engines(plain, "train_test-start.prototxt") == [("Convolution", default)] * 4 + [("Deconvolution", default)]
    for name, value in (("caffe", caffe_pb2.ConvolutionParameter.CAFFE), ("cudnn", caffe_pb2.ConvolutionParameter.CUDNN)):
        p = plan(MODEL, "--no-aug", "--iters", 3, "--run-dir", tmp_path / name, "--engine", name)
        assert engines(p, "train_test-start.prototxt") == [("Convolution", value)] * 4 + [("Deconvolution", value)]
        assert content(p, "run.json")["segments"][-1]["engine"] == name
    intel = plan(MODEL, "--no-aug", "--iters", 3, "--run-dir", tmp_path / "i", "--engine", "MKLDNN")
    assert engines(intel, "train_test-start.prototxt") == engines(plain, "train_test-start.prototxt")   # -engine
    assert content(intel, "run.json")["segments"][-1]["engine"] is None
    run_dir = tmp_path / "r"
    trained(run_dir, "--no-aug", "--iters", 3, "--snapshot-every", 3, "--engine", "caffe")
    resumed = plan(MODEL, "--resume", "--run-dir", run_dir, "--iters", 6)
    assert engines(resumed, "train_test-from3.prototxt") == engines(plain, "train_test-start.prototxt")
    assert "engine" not in open(paths.net_file(MODEL, 3, "train_test")).read()   # the committed net as it was


def test_the_target_and_snapshot_interval_default_to_the_solvers(data, tmp_path):
    adam = plan(MODEL, "--no-aug", "--run-dir", tmp_path / "a")
    sgd = plan(MODEL, "--no-aug", "--solver", "sgd", "--run-dir", tmp_path / "s", "--snapshot-every", 7,
               "--snapshot-minutes", 0)
    assert (adam.max_iter, adam.solver_snapshot, adam.display) == (100000, 5000, 100)
    assert (sgd.solver, sgd.max_iter, sgd.snapshot_every, sgd.solver_snapshot, sgd.snapshot_minutes) == \
        ("sgd", 15000000, 7, 7, 0)
    assert 'type: "SGD"' in content(sgd, "solver-start.prototxt") and "snapshot: 7\n" in content(sgd, "solver-start.prototxt")
    assert adam.augment is False


def test_a_run_without_a_folder_named_goes_to_a_new_one_under_runs(data):
    p = plan(MODEL, "--no-aug", "--iters", 3)
    assert os.path.dirname(p.run_dir) == paths.runs_root() and p.new_run
    assert os.path.basename(p.run_dir).startswith("fsrcnn-s-x3-") and not os.path.exists(p.run_dir)


def test_srcnn_under_adam_starts_from_he_fillers_unless_told(data_root, tmp_path):
    small_data(hdf5_patches.data_dir("srcnn", 3, False), model="srcnn")
    he = plan("srcnn", "--iters", 2, "--run-dir", tmp_path / "adam")
    sgd = plan("srcnn", "--solver", "sgd", "--iters", 2, "--run-dir", tmp_path / "sgd")
    authors = plan("srcnn", "--init", "authors", "--iters", 2, "--run-dir", tmp_path / "adam-authors")
    assert (he.init, sgd.init, authors.init) == ("he", "authors", "authors")
    assert (he.augment, sgd.augment) == (False, False)      # SRCNN: the plain 91 images
    net = {p.init + p.solver: content(p, "train_test-start.prototxt") for p in (he, sgd, authors)}
    assert 'type: "msra"' in net["headam"] and "std: 0.001" not in net["headam"]
    assert 'type: "msra"' not in net["authorssgd"] and "std: 0.001" in net["authorssgd"]
    assert net["authorsadam"].replace("adam-authors", "sgd") == net["authorssgd"]
    assert content(he, "run.json")["segments"][0]["init"] == "he"


def test_fsrcnn_defaults_to_augmented_data(data_root, tmp_path):
    aug = small_data(hdf5_patches.data_dir(MODEL, 3, True), augment=True)
    p = plan(MODEL, "--iters", 2, "--run-dir", tmp_path / "r")
    assert (p.data, p.augment) == (aug, True)


def test_a_data_folder_prepared_only_at_writing_is_checked_and_listed_then(data_root, tmp_path):
    p = plan(MODEL, "--no-aug", "--iters", 2, "--run-dir", tmp_path / "r")
    assert p.prepare_data and p.checked is None and "data-train.txt" not in names(p)
    folder = small_data(p.data)   # prepared meanwhile (by another trainer, or as write_segment would)
    segments.write_segment(p, log=lambda line: None)
    assert open(tmp_path / "r" / "data-train.txt").read() == os.path.join(folder, "train_000.h5") + "\n"


# ---- refused options --------------------------------------------------------------------------------

REFUSED = [
    (("vdsr",), "unknown model 'vdsr'"),
    ((MODEL, "--solver", "rmsprop"), "unknown solver 'rmsprop' (known: adam, sgd)"),
    ((MODEL, "--snapshot", "a.solverstate", "--weights", "b.caffemodel"),
     "--snapshot and --weights exclude each other (resume, or fine-tune)"),
    ((MODEL, "--deconv-only", "--weights", "x3.caffemodel"), "--deconv-only is for FSRCNN at x2/x4"),
    (("srcnn", "--scale", 2, "--deconv-only", "--weights", "x3.caffemodel"), "--deconv-only is for FSRCNN at x2/x4"),
    ((MODEL, "--scale", 2, "--deconv-only"), "give that model with --weights FILE.caffemodel"),
    (("srcnn", "--init", "xavier"), "unknown --init 'xavier' (known: authors, he)"),
    ((MODEL, "--init", "he"), "--init he is for SRCNN: FSRCNN's own fillers already are He's (MSRA)"),
    (("srcnn", "--init", "he", "--resume", "--run-dir", "r"), "--init sets the weights of a new run"),
    (("srcnn", "--init", "authors", "--weights", "w.caffemodel"), "--init sets the weights of a new run"),
    ((MODEL, "--resume"), "--resume needs --run-dir DIR (or give --snapshot FILE)"),
    ((MODEL, "--base-lr", "inf"), "--base-lr must be a positive finite number, not inf"),
    ((MODEL, "--base-lr", "nan"), "--base-lr must be a positive finite number, not nan"),
    ((MODEL, "--base-lr", "-1"), "--base-lr must be a positive finite number, not -1.0"),
    ((MODEL, "--base-lr", "0"), "--base-lr must be a positive finite number, not 0.0"),
    ((MODEL, "--snapshot-minutes", "inf"), "--snapshot-minutes must be 0 (off) or a finite number of minutes, not inf"),
    ((MODEL, "--snapshot-minutes", "-1"), "--snapshot-minutes must be 0 (off) or a finite number of minutes, not -1.0"),
    ((MODEL, "--iters", 0), "--iters must be at least 1, not 0"),
    ((MODEL, "--display", 0), "--display must be at least 1 iteration, not 0"),
    ((MODEL, "--snapshot-every", 0), "--snapshot-every must be at least 1 iteration, not 0"),
]


@pytest.mark.parametrize("argv, message", REFUSED)
def test_options_that_are_refused_before_anything_is_read(argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    o = opts(*argv)
    with pytest.raises(UserError) as exc:
        segments.plan_segment(o, segments.RunState(None, None, None, "stamp"))   # an empty state will do
    assert message in str(exc.value)
    with pytest.raises(UserError) as again:
        segments.prepare_run(o, log=lambda line: None)
    assert str(again.value) == str(exc.value) and os.listdir(tmp_path) == []


def test_a_run_folder_that_is_a_file_or_not_empty_is_refused(data, tmp_path):
    (tmp_path / "file").write_text("x")
    assert refused(MODEL, "--no-aug", "--run-dir", tmp_path / "file") == \
        "--run-dir %s: exists and is not a folder" % (tmp_path / "file")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    assert refused(MODEL, "--no-aug", "--run-dir", tmp_path / "full") == \
        "%s exists and is not empty; pick another --run-dir" % (tmp_path / "full")
    assert refused(MODEL, "--no-aug", "--resume", "--run-dir", tmp_path / "full") == \
        "%s: not a run folder (no run.json) and not empty: nothing to resume" % (tmp_path / "full")
    assert listing(tmp_path / "full") == ["notes.txt"]


def test_resume_of_a_folder_with_nothing_yet_starts_a_new_run(data, tmp_path):
    for folder in (tmp_path / "missing", tmp_path / "killed"):
        if folder.name == "killed":      # a first segment killed before its run.json
            folder.mkdir()
            (folder / "train.log").write_text("")
            (folder / "solver-start.prototxt").write_text("")
        p = plan(MODEL, "--no-aug", "--resume", "--run-dir", folder, "--iters", 4)
        assert p.messages == ["%s: nothing to resume yet: starting a new run" % folder]
        assert (p.new_run, p.start_iter, p.max_iter, p.init) == (True, 0, 4, "authors")


# ---- resuming ---------------------------------------------------------------------------------------

def test_resume_starts_from_the_newest_whole_snapshot_skipping_a_cut_one(data, tmp_path):
    run_dir = tmp_path / "r"
    trained(run_dir, "--no-aug", "--iters", 20, "--snapshot-every", 10, to=10, ended="stopped")
    cut = snapshot(run_dir, 20)
    with open(cut[:-len(".solverstate")] + ".caffemodel", "r+b") as f:
        f.truncate(100)
    p = plan(MODEL, "--resume", "--run-dir", run_dir, "--iters", 30)
    older = str(run_dir / "fsrcnn-s_x3_iter_10.solverstate")
    assert len(p.messages) == 2 and p.messages[0].startswith("skipping snapshot fsrcnn-s_x3_iter_20.solverstate: ")
    assert "fsrcnn-s_x3_iter_20.caffemodel" in p.messages[0]
    assert p.messages[1] == "resuming from the newest snapshot: %s" % older
    assert (p.snapshot, p.start_iter, p.max_iter, p.new_run, p.init, p.weights) == (older, 10, 30, False, None, None)
    assert (p.snapshot_every, p.solver_snapshot, p.display) == (10, 10, 1)   # kept: the first segment's
    assert names(p) == ["data-train.txt", "data-test.txt", "train_test-from10.prototxt", "solver-from10.prototxt",
                        "run.json"]
    first, second = content(p, "run.json")["segments"]
    assert (first["ended"], first["end_iter"]) == ("stopped", 10)
    assert (second["start_iter"], second["max_iter"], second["snapshot"]) == (10, 30, older)
    assert "max_iter: 30\n" in content(p, "solver-from10.prototxt")
    assert segments.write_segment(p, log=lambda line: None).snapshot == older
    assert len(runs.read_run(str(run_dir))["segments"]) == 2


def test_resume_without_iters_goes_on_to_the_runs_target_and_a_finished_run_has_nothing_to_do(data, tmp_path):
    run_dir = tmp_path / "r"
    start(MODEL, "--no-aug", "--iters", 20, "--run-dir", run_dir)
    snapshot(run_dir, 8)
    p = plan(MODEL, "--resume", "--run-dir", run_dir)
    assert (p.start_iter, p.max_iter) == (8, 20)
    snapshot(run_dir, 20)
    with pytest.raises(runs.NothingToDo) as done:
        plan(MODEL, "--resume", "--run-dir", run_dir)
    assert str(done.value) == ("%s: already trained to iteration 20 (target 20): nothing to do; give --iters N "
                               "(past 20) to train it further" % run_dir)
    assert done.value.messages == ["resuming from the newest snapshot: %s" % (run_dir / "fsrcnn-s_x3_iter_20.solverstate")]
    assert refused(MODEL, "--snapshot", run_dir / "fsrcnn-s_x3_iter_20.solverstate", "--iters", 20) == \
        "--iters 20 is not past the snapshot's iteration 20"
    assert len(runs.read_run(str(run_dir))["segments"]) == 1    # nothing recorded


def test_a_run_restarted_before_its_first_snapshot_keeps_its_weights_and_fillers(data_root, tmp_path):
    small_data(hdf5_patches.data_dir("srcnn", 3, False), model="srcnn")
    run_dir = tmp_path / "r"
    segments.prepare_run(opts("srcnn", "--init", "authors", "--iters", 4, "--run-dir", run_dir), log=lambda line: None)
    p = plan("srcnn", "--resume", "--run-dir", run_dir)
    assert p.messages == ["%s has no snapshot yet: starting it again from iteration 0" % run_dir]
    assert (p.start_iter, p.max_iter, p.init, p.new_run) == (0, 4, "authors", False)   # not Adam's default, he
    assert "std: 0.001" in content(p, "train_test-start.prototxt")

    small_data(hdf5_patches.data_dir(MODEL, 3, False))
    weights = make_caffemodel(tmp_path / "fsrcnn-s_x3.caffemodel", MODEL)
    run_dir = tmp_path / "ft"
    start(MODEL, "--no-aug", "--weights", weights, "--iters", 4, "--run-dir", run_dir)
    p = plan(MODEL, "--resume", "--run-dir", run_dir)
    assert (p.weights, p.init, p.start_iter) == (weights, None, 0)


def test_a_resumed_run_keeps_its_last_learning_rate_unless_given_another(data, tmp_path):
    def step(*argv, to):
        """A segment planned, written and ended at iteration `to` (with its snapshot)."""
        p = plan(MODEL, *argv)
        runs.end_segment(segments.write_segment(p, log=lambda line: None), "finished", to)
        snapshot(run_dir, to)
        return p

    run_dir = tmp_path / "annealed"
    trained(run_dir, "--no-aug", "--iters", 4, "--base-lr", 3e-5)
    kept = step("--resume", "--run-dir", run_dir, "--iters", 6, to=6)
    assert (kept.base_lr, kept.messages[-1]) == (3e-5, "learning rate 3e-05, the last segment's (--base-lr LR to change it)")
    assert "base_lr: 3e-05\n" in content(kept, "solver-from4.prototxt")
    given = step("--snapshot", run_dir / "fsrcnn-s_x3_iter_6.solverstate", "--iters", 8, "--base-lr", 1e-4, to=8)
    assert given.base_lr == 1e-4 and not [m for m in given.messages if m.startswith("learning rate")]
    assert "base_lr: 0.0001\n" in (run_dir / "solver-from6.prototxt").read_text()
    again = plan(MODEL, "--resume", "--run-dir", run_dir, "--iters", 10)
    assert again.base_lr == 1e-4 and "base_lr: 0.0001\n" in content(again, "solver-from8.prototxt")
    assert [seg["base_lr"] for seg in content(again, "run.json")["segments"]] == [3e-5, 3e-5, 1e-4, 1e-4]

    # a run that never set one resumes at the solver file's rate
    run_dir = tmp_path / "plain"
    trained(run_dir, "--no-aug", "--iters", 2)
    p = plan(MODEL, "--resume", "--run-dir", run_dir, "--iters", 4)
    assert p.base_lr is None and p.messages == ["resuming from the newest snapshot: %s" % (
        run_dir / "fsrcnn-s_x3_iter_2.solverstate")]
    want = "base_lr: %g\n" % solvers.base_lr(paths.solver_file(MODEL, 3, "adam"))
    assert want in content(p, "solver-from2.prototxt") and want in (run_dir / "solver-start.prototxt").read_text()


def test_segment_settings_are_kept_on_resume_unless_given_again(data, tmp_path):
    run_dir = tmp_path / "r"
    trained(run_dir, "--no-aug", "--iters", 3, "--snapshot-every", 3, "--snapshot-minutes", 2, "--display", 5)
    kept = plan(MODEL, "--resume", "--run-dir", run_dir, "--iters", 9)
    assert (kept.snapshot_every, kept.snapshot_minutes, kept.display, kept.solver_snapshot) == (3, 2, 5, 3)
    assert "display: 5\n" in content(kept, "solver-from3.prototxt")
    given = plan(MODEL, "--resume", "--run-dir", run_dir, "--iters", 9, "--snapshot-every", 7,
                 "--snapshot-minutes", 0, "--display", 2)
    assert (given.snapshot_every, given.snapshot_minutes, given.display) == (7, 0, 2)
    assert content(given, "run.json")["display"] == 2 and "snapshot: 7\n" in content(given, "solver-from3.prototxt")
    seg = content(given, "run.json")["segments"][-1]
    assert (seg["snapshot_every"], seg["snapshot_minutes"]) == (7, 0)


def test_a_snapshot_resumes_in_its_own_run_folder_with_its_solver(data, tmp_path):
    run_dir = tmp_path / "r"
    start(MODEL, "--no-aug", "--solver", "sgd", "--iters", 4, "--run-dir", run_dir)
    state = snapshot(run_dir, 4, solver="sgd")
    p = plan(MODEL, "--resume", "--run-dir", run_dir, "--iters", 8)    # the run's solver, not the default
    assert (p.solver, p.snapshot, p.start_iter) == ("sgd", state, 4)
    assert 'type: "SGD"' in content(p, "solver-from4.prototxt")
    p = plan(MODEL, "--snapshot", state, "--solver", "sgd", "--iters", 8)   # no --run-dir: the snapshot's
    assert (p.run_dir, p.new_run) == (str(run_dir), False)


def test_deconv_only_is_kept_by_resume_and_ended_by_all_layers(data_root, tmp_path):
    small_data(hdf5_patches.data_dir(MODEL, 2, False), scale=2)
    x3 = make_caffemodel(tmp_path / "fsrcnn-s_x3.caffemodel", MODEL)
    run_dir = tmp_path / "x2"
    p = start(MODEL, "--scale", 2, "--no-aug", "--deconv-only", "--weights", x3, "--iters", 4, "--run-dir", run_dir)
    first = runs.read_run(str(run_dir))["segments"][0]
    assert (first["deconv_only"], first["weights"], first["init"]) == (True, x3, None)
    runs.end_segment(p, "finished", 4)
    snapshot(run_dir, 4, scale=2)
    deconv = runs.base_net_text(MODEL, 2, "deconv_train_test")
    sources = tuple(str(run_dir / n) for n in ("data-train.txt", "data-test.txt"))
    kept = plan(MODEL, "--scale", 2, "--resume", "--run-dir", run_dir, "--iters", 8)
    assert kept.deconv_only and content(kept, "train_test-from4.prototxt") == runs.segment_net(deconv, sources)
    ended = plan(MODEL, "--scale", 2, "--resume", "--run-dir", run_dir, "--iters", 8, "--all-layers")
    assert not ended.deconv_only and content(ended, "train_test-from4.prototxt") == runs.segment_net(
        runs.base_net_text(MODEL, 2, "train_test"), sources)
    assert deconv != runs.base_net_text(MODEL, 2, "train_test")


def test_weights_of_another_scale_are_fine_tuned_with_a_note(data_root, tmp_path):
    small_data(hdf5_patches.data_dir(MODEL, 2, False), scale=2)
    x3 = make_caffemodel(tmp_path / "fsrcnn-s_x3.caffemodel", MODEL)
    every = plan(MODEL, "--scale", 2, "--no-aug", "--weights", x3, "--iters", 4, "--run-dir", tmp_path / "a")
    assert every.messages == ["note: %s holds x3 weights (its name); fine-tuning them at x2 with every layer trained "
                              "(--deconv-only trains the deconvolution alone, the paper's way)" % x3]
    deconv = plan(MODEL, "--scale", 2, "--no-aug", "--weights", x3, "--deconv-only", "--iters", 4,
                  "--run-dir", tmp_path / "b")
    assert deconv.messages == ["note: %s holds x3 weights (its name); fine-tuning them at x2" % x3]
    assert (every.weights, every.init, every.start_iter) == (x3, None, 0)


def test_weights_of_another_network_or_a_solverstate_are_refused(data, tmp_path):
    other = make_caffemodel(tmp_path / "fsrcnn_x3.caffemodel", "fsrcnn")
    message = refused(MODEL, "--no-aug", "--weights", other, "--iters", 2, "--run-dir", tmp_path / "r")
    assert message.startswith(other) and "looks like fsrcnn (train it as ./run_train.sh fsrcnn)" in message
    state = snapshot(tmp_path, 4)
    assert refused(MODEL, "--no-aug", "--weights", state, "--run-dir", tmp_path / "r") == \
        "%s is a .solverstate: resume it with --snapshot, or give its .caffemodel to --weights" % state
    assert not (tmp_path / "r").exists()


def test_snapshots_that_cannot_be_resumed_are_refused(data, tmp_path):
    run_dir = tmp_path / "r"
    state = trained(run_dir, "--no-aug", "--iters", 10)
    model = state[:-len(".solverstate")] + ".caffemodel"
    assert refused(MODEL, "--snapshot", tmp_path / "nope.solverstate") == \
        "%s: snapshot file not found" % (tmp_path / "nope.solverstate")
    assert refused(MODEL, "--snapshot", model) == ("%s is a .caffemodel (weights only): --snapshot resumes from a "
                                                   ".solverstate (use --weights to fine-tune from a .caffemodel)" % model)
    fine_tuned = plan(MODEL, "--no-aug", "--weights", model, "--iters", 5, "--run-dir", tmp_path / "ft")
    assert (fine_tuned.weights, fine_tuned.init, fine_tuned.start_iter, fine_tuned.messages) == (model, None, 0, [])
    message = refused("fsrcnn", "--snapshot", state, "--run-dir", tmp_path / "other")
    assert message.startswith(state + " was written for another network") and message.endswith("not fsrcnn x3")
    assert refused(MODEL, "--snapshot", state, "--solver", "sgd", "--run-dir", tmp_path / "o2") == \
        "%s was written by the adam solver; resume it with --solver adam" % state
    assert refused(MODEL, "--snapshot", state, "--iters", 5, "--run-dir", tmp_path / "o3") == \
        "--iters 5 is not past the snapshot's iteration 10"
    assert refused(MODEL, "--scale", 2, "--snapshot", state) == "%s is a run of fsrcnn-s x3, not fsrcnn-s x2" % run_dir
    assert refused(MODEL, "--iters", 5, "--run-dir", run_dir) == \
        "%s already holds a run; resume it with --resume, or pick another --run-dir" % run_dir
    with open(model, "r+b") as f:
        f.truncate(os.path.getsize(model) // 2)
    assert refused(MODEL, "--snapshot", state, "--iters", 20) == "%s: %s: not a Caffe .caffemodel (it does not parse)" % (
        state, model)
    assert not any((tmp_path / d).exists() for d in ("other", "o2", "o3"))


# ---- the data of a run ------------------------------------------------------------------------------

def test_a_run_keeps_its_data_folder_unless_given_another(data, tmp_path):
    mine = small_data(tmp_path / "mine", augment=True)
    run_dir = tmp_path / "r"
    trained(run_dir, "--data", mine, "--iters", 2)
    p = plan(MODEL, "--resume", "--run-dir", run_dir, "--iters", 4)
    assert (p.data, p.augment, p.prepare_data) == (mine, True, False)   # a given folder's meta.json says
    assert content(p, "data-train.txt") == os.path.join(mine, "train_000.h5") + "\n"
    other = plan(MODEL, "--resume", "--run-dir", run_dir, "--iters", 4, "--data", data)
    assert (other.data, other.augment, content(other, "run.json")["data"]) == (data, False, data)

    before = (run_dir / "run.json").read_text()
    shutil.rmtree(mine)
    with pytest.raises(UserError) as exc:
        segments.prepare_run(opts(MODEL, "--resume", "--run-dir", run_dir, "--iters", 4), log=lambda line: None)
    assert str(exc.value) == ("%s: the data folder this run trained on is gone; give --data DIR to go on with "
                              "another" % mine)
    assert exc.value.messages == ["resuming from the newest snapshot: %s" % (run_dir / "fsrcnn-s_x3_iter_2.solverstate")]
    assert (run_dir / "run.json").read_text() == before


def test_a_runs_default_data_folder_from_another_machine_is_used_here(data, tmp_path):
    run_dir = tmp_path / "r"
    trained(run_dir, "--no-aug", "--iters", 2)
    info = runs.read_run(str(run_dir))
    elsewhere = os.path.join(str(tmp_path / "elsewhere"), os.path.basename(data))
    runs.write_run(str(run_dir), dict(info, data=elsewhere))
    p = plan(MODEL, "--resume", "--run-dir", run_dir, "--iters", 4)
    assert p.messages[-1] == "the run's data folder %s is not here: using %s" % (elsewhere, data)
    assert (p.data, p.augment, p.prepare_data) == (data, False, True)
    assert content(p, "run.json")["data"] == data


def test_data_that_does_not_fit_or_holds_non_finite_values_is_named(data_root, tmp_path):
    x2 = small_data(tmp_path / "x2", scale=2)
    assert refused(MODEL, "--data", x2, "--iters", 2, "--run-dir", tmp_path / "r") == \
        "%s holds x2 patches 11->13, but fsrcnn-s x3 needs 11->19" % x2
    for where in ("data", "label"):
        bad = small_data(tmp_path / where, bad=(where, 3))
        assert refused(MODEL, "--data", bad, "--iters", 2, "--run-dir", tmp_path / "r") == (
            "%s: '%s' holds non-finite values (NaN or Inf), first in patch 3; prepare the data again"
            % (os.path.join(bad, "train_000.h5"), where))
    assert refused(MODEL, "--data", tmp_path / "none", "--run-dir", tmp_path / "r") == \
        "%s: no such data folder" % (tmp_path / "none")
    assert not (tmp_path / "r").exists()


# ---- moved run folders --------------------------------------------------------------------------------

def test_a_moved_run_folder_resumes_and_a_gone_absolute_weights_path_is_relocated(data, tmp_path):
    from caffe.proto import caffe_pb2
    run_dir = tmp_path / "orig"
    trained(run_dir, "--no-aug", "--iters", 10)
    moved = tmp_path / "moved"
    runs.unlock(str(run_dir))   # its trainer ended
    run_dir.rename(moved)
    state = str(moved / "fsrcnn-s_x3_iter_10.solverstate")
    p = plan(MODEL, "--snapshot", state, "--iters", 15)    # weights named relative to the folder: just works
    assert (p.run_dir, p.snapshot, p.new_run) == (str(moved), state, False)
    assert not [n for n in names(p) if n.endswith(".solverstate")]

    snapshot(moved, 15, learned_net="/gone/elsewhere/fsrcnn-s_x3_iter_15.caffemodel")
    p = plan(MODEL, "--snapshot", moved / "fsrcnn-s_x3_iter_15.solverstate", "--iters", 20)
    relocated = str(moved / "fsrcnn-s_x3_iter_15.relocated.solverstate")
    assert p.snapshot == relocated and p.files[0][0] == relocated
    copy = caffe_pb2.SolverState()
    copy.ParseFromString(p.files[0][1])
    assert (copy.iter, copy.learned_net) == (15, str(moved / "fsrcnn-s_x3_iter_15.caffemodel"))
    assert content(p, "run.json")["segments"][-1]["snapshot"] == relocated
    segments.write_segment(p, log=lambda line: None)
    assert open(relocated, "rb").read() == p.files[0][1]


def test_a_snapshot_outside_a_run_folder_starts_a_new_run_with_a_relocated_copy(data, tmp_path):
    state = snapshot(tmp_path, 6)
    p = plan(MODEL, "--no-aug", "--snapshot", state, "--iters", 9, "--run-dir", tmp_path / "new")
    assert (p.run_dir, p.new_run, p.start_iter) == (str(tmp_path / "new"), True, 6)
    assert p.snapshot == str(tmp_path / "new" / "fsrcnn-s_x3_iter_6.relocated.solverstate")
    assert names(p)[0] == "fsrcnn-s_x3_iter_6.relocated.solverstate"
