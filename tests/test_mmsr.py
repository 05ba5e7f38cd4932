"""Multi-model SR (srcaffe/mmsr/, tools/tvat.py, tools/mmsr.py): TVAT by hand, classes, routing
and blending with real Caffe nets, class data folders trained by the real ./run_train.sh."""
import glob
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("GLOG_minloglevel", "2")

import h5py
import numpy as np
import pytest

from srcaffe import ROOT, hdf5_patches, mmsr

from srcaffe.models import load_model
from srcaffe.errors import UserError

from helpers import assert_figure, assert_one_line_error, make_caffemodel, require

TVAT_TOOL = os.path.join(ROOT, "tools", "tvat.py")
MMSR_TOOL = os.path.join(ROOT, "tools", "mmsr.py")


def run(tool, *args, env=None):
    return subprocess.run([sys.executable, tool] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=300, env=env)


# ---- TVAT ---------------------------------------------------------------------------------------

def test_tvat_of_a_constant_image_is_zero():
    for img in (np.full((7, 5), 0.3), np.full((6, 6), 200, np.uint8), np.full((1, 1), 9.0)):
        assert np.all(mmsr.vsp(img) == 0)
        assert mmsr.tvat(img, threshold=0) == 0
    assert mmsr.tvat(np.full((4, 9, 3), 17, np.uint8), threshold=0, channels=True) == 0


def test_tvat_of_a_checkerboard_by_hand():
    board = np.indices((4, 4)).sum(axis=0) % 2          # 0/1 checkerboard
    # The 4 edge-neighbours of a pixel differ from it by 1, the 4 diagonal ones are equal: VSP is
    # the number of edge-neighbours that exist: 2 at the corners, 3 on the edges, 4 inside.
    np.testing.assert_array_equal(mmsr.vsp(board), [[2, 3, 3, 2], [3, 4, 4, 3], [3, 4, 4, 3], [2, 3, 3, 2]])
    # TVAT = sum of VSP >= threshold / 16:  (4*2 + 8*3 + 4*4) / 16 = 48/16
    assert mmsr.tvat(board, threshold=0) == 3.0
    assert mmsr.tvat(board, threshold=3) == 2.5     # (8*3 + 4*4) / 16 = 40/16
    assert mmsr.tvat(board, threshold=4) == 1.0     # 4*4 / 16
    assert mmsr.tvat(board, threshold=4.5) == 0.0
    # RGB, the paper's version: the three channels' squared differences are summed
    assert mmsr.tvat(np.dstack([board] * 3), threshold=0, channels=True) == 9.0
    # 0/255: the thresholds are on the 0-255 scale
    assert mmsr.tvat(board.astype(np.uint8) * 255, threshold=0) == 3.0 * 255 ** 2


def test_tvat_diagonals_and_borders_by_hand():
    img = np.array([[0, 1], [2, 3]])
    # every pixel has 3 neighbours (2 edge + 1 diagonal): (0,0): 1 + 4 + 9 = 14, (0,1): 1 + 1 + 4 = 6,
    # (1,0): 4 + 1 + 1 = 6, (1,1): 9 + 4 + 1 = 14
    np.testing.assert_array_equal(mmsr.vsp(img), [[14, 6], [6, 14]])
    assert mmsr.tvat(img, threshold=0) == 10.0        # 40 / 4
    assert mmsr.tvat(img, threshold=10) == 7.0        # 28 / 4
    assert mmsr.vsp(np.array([[5.0]]))[0, 0] == 0     # no neighbours at all


def test_tvat_is_vectorised_over_a_batch():
    batch = np.random.default_rng(0).random((6, 11, 11)) * 255
    np.testing.assert_allclose(mmsr.tvat(batch, 500), [mmsr.tvat(b, 500) for b in batch])
    np.testing.assert_allclose(mmsr.score_y(batch / 255.0), [mmsr.tvat(b, mmsr.VSP_THRESHOLD) for b in batch])


def test_classes_from_thresholds_and_quantiles():
    # class k holds t_k < score <= t_k+1: a score equal to a threshold stays in the lower class
    np.testing.assert_array_equal(mmsr.classify([0, 10, 10.5, 20, 21], [10, 20]), [0, 0, 1, 1, 2])
    scores = np.arange(1000.0)
    t = mmsr.quantile_thresholds(scores, 4)
    assert np.bincount(mmsr.classify(scores, t)).tolist() == [250, 250, 250, 250]
    with pytest.raises(UserError, match="not distinct"):
        mmsr.quantile_thresholds(np.r_[np.zeros(900), np.arange(100.0)], 3)
    with pytest.raises(UserError, match="strictly increasing"):
        mmsr.parse_thresholds("5,3")


def test_fragments_cover_the_image_with_the_overlap():
    assert mmsr.fragment_starts(50, 24, 4) == [0, 20, 26]      # the last one ends at the edge
    assert mmsr.fragment_starts(44, 24, 4) == [0, 20]
    assert mmsr.fragment_starts(10, 24, 4) == [0]
    frags = mmsr.fragments((50, 10), 24, 4)
    assert frags == [(0, 0, 24, 10), (20, 0, 24, 10), (26, 0, 24, 10)]
    with pytest.raises(UserError, match="overlap"):
        mmsr.fragments((50, 50), 8, 8)


def test_classes_are_stable():
    rng = np.random.default_rng(3)
    lr = np.clip(np.kron(rng.random((6, 6)), np.ones((8, 8))) + 0.05 * rng.random((48, 48)), 0, 1)
    lr[:, :20] = 0.5                                       # a flat part and a textured one
    frags = mmsr.fragments(lr.shape, 12, 3)
    scores = mmsr.score_fragments(lr * 255, frags)
    classes = mmsr.classify(scores, [np.median(scores)])
    assert 0 < classes.sum() < len(classes)                # both classes occur
    # the same input gives the same classes
    np.testing.assert_array_equal(mmsr.classify(mmsr.score_fragments(lr * 255, frags), [np.median(scores)]), classes)
    # a fragment's class does not depend on its position in the list ...
    order = rng.permutation(len(frags))
    again = mmsr.classify(mmsr.score_fragments(lr * 255, [frags[i] for i in order]), [np.median(scores)])
    np.testing.assert_array_equal(again, classes[order])
    # ... nor on its surroundings: the same pixels elsewhere in another image score the same
    y, x, h, w = frags[7]
    other = rng.random((40, 40)) * 255
    other[20:20 + h, 5:5 + w] = lr[y:y + h, x:x + w] * 255
    assert mmsr.score_fragments(other, [(20, 5, h, w)])[0] == scores[7]


# ---- routing and blending with real Caffe nets --------------------------------------------------

@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    d = tmp_path_factory.mktemp("mmsr_models")
    return {
        "fsrcnn": load_model(make_caffemodel(d / "a.caffemodel", "fsrcnn", seed=1), 3, arch="fsrcnn"),
        "fsrcnn-s": load_model(make_caffemodel(d / "b.caffemodel", "fsrcnn-s", seed=2), 3, arch="fsrcnn-s"),
        "srcnn": load_model(make_caffemodel(d / "c.caffemodel", "srcnn", seed=3), 3, arch="srcnn"),
    }


def middle_threshold(scores):
    """A threshold with about half of the distinct scores on each side."""
    s = np.unique(scores)
    return float((s[len(s) // 2 - 1] + s[len(s) // 2]) / 2)


def texture_image(shape=(41, 35), seed=4):
    rng = np.random.default_rng(seed)
    img = rng.random(shape)
    img[:, : shape[1] // 2] = 0.4 + 0.01 * img[:, : shape[1] // 2]     # flat left half
    return img


@pytest.mark.parametrize("name", ["fsrcnn", "fsrcnn-s", "srcnn"])
@pytest.mark.parametrize("fragment,overlap", [(8, 3), (13, 0), (24, 4)])
def test_one_model_for_all_classes_reproduces_the_whole_image(nets, name, fragment, overlap):
    m, lr = nets[name], texture_image()
    whole = m.upscale_y(lr)
    scores = mmsr.score_fragments(lr * 255, mmsr.fragments(lr.shape, fragment, overlap))
    split = middle_threshold(scores)
    router = mmsr.MMSR([m, m], [split], fragment=fragment, overlap=overlap)
    sr = router.upscaler(lr, 3)
    assert sr.shape == whole.shape and whole.std() > 0.01
    assert min(router.stats["fragments"]) > 0            # both classes were routed
    np.testing.assert_allclose(sr, whole, atol=1e-5, rtol=0)
    if name.startswith("fsrcnn"):                         # the context is exactly what is needed
        router.context = [c - 1 for c in router.context]
        assert np.abs(router.upscale_y(lr) - whole).max() > 1e-3


def test_fragments_go_to_their_class_model_and_overlaps_are_averaged(nets):
    flat, textured = nets["fsrcnn-s"], nets["fsrcnn"]
    lr = texture_image((40, 52))
    whole = [flat.upscale_y(lr), textured.upscale_y(lr)]
    router = mmsr.MMSR([flat, textured], [300.0], fragment=16, overlap=5)
    sr = router.upscale_y(lr)
    frags, _, classes = router.classes(lr)
    assert set(classes) == {0, 1}
    acc, count = np.zeros_like(sr), np.zeros_like(sr)
    for (y, x, h, w), k in zip(frags, classes):
        acc[3 * y:3 * (y + h), 3 * x:3 * (x + w)] += whole[k][3 * y:3 * (y + h), 3 * x:3 * (x + w)]
        count[3 * y:3 * (y + h), 3 * x:3 * (x + w)] += 1
    assert count.max() > 1
    np.testing.assert_allclose(sr, acc / count, atol=1e-5, rtol=0)
    assert np.abs(sr - whole[1]).max() > 1e-2               # it is not simply one of the models


def test_mmsr_checks_its_models(nets):
    with pytest.raises(UserError, match="2 models need 1 thresholds"):
        mmsr.MMSR([nets["fsrcnn"], nets["fsrcnn"]], [])
    with pytest.raises(UserError, match="cannot upscale x2"):
        mmsr.MMSR([nets["fsrcnn"]], []).upscale_y(np.zeros((20, 20)), 2)


# ---- class data folders, the job list, the real run_train.sh ------------------------------------

@pytest.fixture(scope="module")
def env(fetched, tmp_path_factory):
    data = str(tmp_path_factory.mktemp("mmsr_data"))
    return dict(os.environ, SRCAFFE_DATA=data, SRCAFFE_DATASETS=fetched, PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module")
def split_dir(env):
    """Two classes of T91 x3 without augmentation (fsrcnn-s for the flat one, fsrcnn)."""
    out = os.path.join(env["SRCAFFE_DATA"], "split")
    r = run(MMSR_TOOL, "split", "--models", "fsrcnn-s,fsrcnn", "--no-aug", "--vsp-threshold", 50, "--out", out, env=env)
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.slow
def test_a_split_killed_mid_write_leaves_nothing_that_looks_prepared(env, split_dir, tmp_path):
    """SIGKILL while the class files are written (the common folder is prepared already): no
    folder under the split's name, nothing is_prepared; the next split removes the leftover and
    writes it whole."""
    from srcaffe import data_folder

    out = str(tmp_path / "split")
    cmd = [sys.executable, MMSR_TOOL, "split", "--models", "fsrcnn-s,fsrcnn", "--no-aug", "--vsp-threshold", "50",
           "--out", out]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600     # bounds a hang; the kill waits for the event itself
    part = None
    while time.time() < deadline and p.poll() is None and part is None:
        parts = glob.glob(out + ".part-*/class*/train_*.h5")
        part = parts[0] if parts else None
        time.sleep(0.01)
    assert part is not None, "the split finished or failed before it wrote a class file"
    p.kill()
    p.wait()
    assert not os.path.exists(out) and glob.glob(out + ".part-*")
    assert not any(data_folder.is_prepared(d) for d in glob.glob(out + "*/class*") + [out])
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert not glob.glob(out + ".part-*") and os.path.isfile(os.path.join(out, "mmsr.json"))
    for k in (0, 1):
        folder = os.path.join(out, "class%d" % k)
        assert data_folder.is_prepared(folder)
        assert all(os.path.isfile(f) for f in data_folder.listed_files(folder, "train.txt"))


def test_split_folders_train_with_run_train(env, split_dir, tmp_path):
    out = split_dir
    plan = json.load(open(os.path.join(out, "mmsr.json")))
    assert plan["vsp_threshold"] == 50 and len(plan["thresholds"]) == 1
    common = hdf5_patches.read_meta(plan["source"])
    total = 0
    for k, c in enumerate(plan["classes"]):
        meta = hdf5_patches.check_matches(c["dir"], c["model"], 3)     # what run_train.sh checks
        for key in ("scale", "input_size", "label_size", "augment", "train_patches", "test_patches"):
            assert key in meta
        with h5py.File(os.path.join(c["dir"], "train_000.h5"), "r") as f:
            data = f["data"][:, 0]
            assert f["label"].shape[1:] == (1, 19, 19) and len(data) == meta["train_patches"]
        assert np.all(mmsr.classify(mmsr.score_y(data, plan["vsp_threshold"]), plan["thresholds"]) == k)
        assert open(os.path.join(c["dir"], "test.txt")).read().strip() == os.path.join(c["dir"], "test.h5")
        total += meta["train_patches"]
    assert total == common["train_patches"]

    runs = str(tmp_path / "runs")
    r = run(MMSR_TOOL, "jobs", out, "--iters", 10, "--runs-dir", runs, env=env)
    assert r.returncode == 0, r.stderr
    lines = open(os.path.join(runs, "jobs.txt")).read().splitlines()
    assert len(lines) == 2 and "./run_train.sh fsrcnn-s --scale 3 --data %s/class0 --resume" % out in lines[0]
    # the first job, as xargs or a scheduler would run it: a real ./run_train.sh with the class data
    job = subprocess.run(["bash", "-c", lines[0]], capture_output=True, text=True, env=env, timeout=300)
    log = open(os.path.join(runs, "class0-fsrcnn-s.out")).read()
    assert job.returncode == 0, log[-2000:]
    assert os.path.isfile(os.path.join(runs, "class0-fsrcnn-s", "fsrcnn-s_x3_iter_10.caffemodel"))
    r = run(MMSR_TOOL, "report", runs, "--json", tmp_path / "report.json", env=env)
    assert r.returncode == 0, r.stderr
    rows = json.load(open(tmp_path / "report.json"))["rows"]
    assert rows[0]["iters"] == 10 and rows[0]["seconds"] > 0 and rows[1]["iters"] is None

    # the trained class model serves both classes: MMSR vs single vs bicubic, through the CLI
    run0 = os.path.join(runs, "class0-fsrcnn-s")
    r = run(MMSR_TOOL, "evaluate", "--split", out, "--class-models", run0, run0, "--single", run0,
            "--datasets", "Set5", "--json", tmp_path / "eval.json", env=env)
    assert r.returncode == 0, r.stderr
    res = {x["method"]: x for x in json.load(open(tmp_path / "eval.json"))["results"]}
    assert set(res) == {"bicubic", "class0-fsrcnn-s", "MMSR"}
    assert abs(res["bicubic"]["mean_psnr"] - 30.39) < 0.01
    assert abs(res["MMSR"]["mean_psnr"] - res["class0-fsrcnn-s"]["mean_psnr"]) < 1e-6


def test_tvat_tool_scores_classifies_and_plots(fetched, tmp_path):
    env = dict(os.environ, SRCAFFE_DATASETS=fetched)
    r = run(TVAT_TOOL, "butterfly", "--lr", 3, "--fragments", 24, "--overlap", 4, "--thresholds", "800,3000",
            "--hist", tmp_path / "h.png", "--json", tmp_path / "s.json", env=env)
    assert r.returncode == 0, r.stderr
    rows = json.load(open(tmp_path / "s.json"))["rows"]
    assert len(rows) == 25 and {r_["cls"] for r_ in rows} <= {0, 1, 2}
    assert_figure(tmp_path / "h.png")
    r = run(TVAT_TOOL, "Set5", "--channel", "rgb", env=env)
    assert r.returncode == 0 and "5 images" in r.stdout


@pytest.mark.parametrize("tool,args,words", [
    (TVAT_TOOL, ["no_such_image.png"], ["no_such_image.png"]),
    (TVAT_TOOL, ["Set5", "--thresholds", "3,x"], ["--thresholds"]),
    (TVAT_TOOL, ["Set5", "--fragments", "8", "--overlap", "8"], ["--overlap"]),
    (TVAT_TOOL, ["Set5", "--classes", "2", "--channel", "rgb"], ["--channel y"]),
    (MMSR_TOOL, ["split", "--models", "fsrcnn"], ["at least 2 models"]),
    (MMSR_TOOL, ["split", "--models", "srcnn,fsrcnn"], ["srcnn", "FSRCNN variants"]),
    (MMSR_TOOL, ["split", "--models", "fsrcnn-s,fsrcnn", "--thresholds", "1,2"], ["2 models need 1 thresholds"]),
    (MMSR_TOOL, ["jobs", ROOT], ["not an MMSR split"]),
    (MMSR_TOOL, ["report", ROOT], ["not an MMSR runs folder"]),
    (MMSR_TOOL, ["submit", ROOT], ["not an MMSR runs folder"]),
    (MMSR_TOOL, ["status", ROOT], ["not an MMSR runs folder"]),
    (MMSR_TOOL, ["quality", ROOT], ["not an MMSR runs folder"]),
    (MMSR_TOOL, ["launch", ROOT, "--parallel", "0"], ["--parallel must be positive"]),
    (MMSR_TOOL, ["evaluate", "--class-models", "a.caffemodel", "b.caffemodel"], ["no class thresholds"]),
    (MMSR_TOOL, ["evaluate", "--class-models", "nothere.caffemodel", "b.caffemodel", "--thresholds", "5"],
     ["nothere.caffemodel"]),
])
def test_bad_inputs_give_one_error_line(fetched, tool, args, words):
    r = run(tool, *args, env=dict(os.environ, SRCAFFE_DATASETS=fetched))
    assert_one_line_error(r, *words)


# ---- the class models as a Slurm job array, on a real one-machine Slurm -------------------------

SLURM_LOCAL = os.path.join(ROOT, "tools", "slurm_local.sh")


@pytest.fixture
def slurm(env):
    """A real single-node Slurm (munged, slurmctld, slurmd) started by tools/slurm_local.sh in a
    scratch folder, stopped afterwards; the environment the client commands need."""
    import shutil
    import tempfile

    have = all(shutil.which(t) for t in ("sbatch", "slurmctld", "slurmd", "munged"))
    require(have or os.geteuid() == 0, "Slurm is not installed and installing it needs root")
    d = tempfile.mkdtemp(prefix="slurm-")     # short: munge's socket path must fit a sockaddr_un
    r = subprocess.run(["bash", SLURM_LOCAL, "start", d], capture_output=True, text=True, timeout=900)
    try:
        assert r.returncode == 0, r.stderr + r.stdout
        yield dict(env, SLURM_CONF=os.path.join(d, "slurm.conf"))
    finally:
        subprocess.run(["bash", SLURM_LOCAL, "stop", d], capture_output=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)


def slurm_status(runs, env, tmp_path, wait=120):
    """`tools/mmsr.py status` once no task is queued or running any more: (exit code, stdout, states)."""
    import time

    deadline = time.time() + wait
    while True:
        path = tmp_path / "status.json"
        r = run(MMSR_TOOL, "status", runs, "--json", path, env=env)
        states = json.load(open(path))
        if not any(s["slurm_state"] in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING") for s in states.values()):
            return r, states
        assert time.time() < deadline, states
        time.sleep(1)


def test_a_task_cancelled_as_it_starts_is_recorded_as_cancelled(tmp_path, monkeypatch):
    """scancel the moment a task's status says running (before its command has started): the task
    records the signal and passes it on, instead of dying with its status left at running."""
    import signal

    from srcaffe.mmsr import jobs as mmsr_jobs
    entry = dict(index=0, name="class-0", run_dir=str(tmp_path / "class-0"), command="sleep 30", iters=None)
    real = mmsr_jobs.files.write_json

    def write_json(path, data):
        real(path, data)
        if data.get("state") == "running":
            os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(mmsr_jobs.files, "write_json", write_json)
    code = mmsr_jobs.run_task(dict(jobs=[entry], runs_dir=str(tmp_path)), 0, log=lambda line: None)
    status = json.load(open(mmsr_jobs.status_path(entry)))
    assert (status["state"], status["signal"]) == ("cancelled", signal.SIGTERM), status
    assert code == status["exit"] == -signal.SIGTERM   # the command got it too (not its 30 s of sleep)


@pytest.mark.slow
def test_class_jobs_run_as_a_slurm_array_and_a_cancelled_one_is_resubmitted(slurm, split_dir, tmp_path):
    env, runs = slurm, str(tmp_path / "runs")
    plan = json.load(open(os.path.join(split_dir, "mmsr.json")))
    epochs = 12 * 128.0 / plan["classes"][0]["train_patches"]          # about 12 iterations per class
    r = run(MMSR_TOOL, "jobs", split_dir, "--epochs", epochs, "--snapshots", 2, "--threads", 1, "--baseline", "fsrcnn",
            "--runs-dir", runs, env=env)
    assert r.returncode == 0, r.stderr
    jobs = json.load(open(os.path.join(runs, "jobs.json")))
    for e in jobs["jobs"]:          # the paper's budget: the same passes over each model's own data
        assert e["iters"] == -(-epochs * e["patches"] // 128) and e["iters"] >= 10
    assert jobs["jobs"][2]["iters"] > jobs["jobs"][1]["iters"]       # the single model sees all the data

    names = [e["name"] for e in jobs["jobs"]]
    r = run(MMSR_TOOL, "submit", runs, env=env)
    assert r.returncode == 0, r.stderr
    job = json.load(open(os.path.join(runs, "slurm.json")))["submissions"][0]["job"]
    assert job.isdigit()
    # cancel class 1 once it runs (its status file is written before ./run_train.sh starts, which
    # takes seconds to set up and start Caffe; its ~12 iterations follow)
    import time
    status1, deadline = jobs["jobs"][1]["run_dir"] + ".status.json", time.time() + 90
    while not (os.path.isfile(status1) and json.load(open(status1))["state"] == "running"):
        assert time.time() < deadline, "class 1 did not start"
        time.sleep(0.05)
    c = subprocess.run(["scancel", "%s_1" % job], capture_output=True, text=True, env=env, timeout=30)
    assert c.returncode == 0, c.stderr
    # a job still queued or running is not submitted twice (the single model's: 3 tasks, 2 CPUs)
    r = run(MMSR_TOOL, "submit", runs, "--only", "single", env=env)
    assert_one_line_error(r, "still queued or running", names[2])
    r, states = slurm_status(runs, env, tmp_path)
    assert states[names[0]]["state"] == "done" and states[names[0]]["exit"] == 0, states
    assert states[names[2]]["state"] == "done" and states[names[2]]["exit"] == 0, states
    assert states[names[1]]["state"] == "cancelled" and states[names[1]]["slurm_state"] == "CANCELLED", states
    assert states[names[1]]["status"]["signal"] == 15                 # its own record: SIGTERM from scancel
    assert r.returncode == 1 and "submit %s --only 1" % runs in r.stdout, r.stdout
    for e in (jobs["jobs"][0], jobs["jobs"][2]):
        assert os.path.isfile(os.path.join(e["run_dir"], "%s_x3_iter_%d.caffemodel" % (e["model"], e["iters"])))
    assert open(os.path.join(runs, "slurm-%s_0.out" % job)).read().count("done (exit 0)") == 1
    done = os.path.join(jobs["jobs"][0]["run_dir"], "train.log")
    before = (os.path.getmtime(done), open(done).read())

    # resubmit the cancelled class alone: it runs (continues its folder) and the others are untouched
    r = run(MMSR_TOOL, "submit", runs, "--only", 1, "--wait", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    again = json.load(open(os.path.join(runs, "slurm.json")))
    assert len(again["submissions"]) == 2 and again["submissions"][1]["array"] == "1"
    assert again["tasks"][names[1]] == "%s_1" % again["submissions"][1]["job"]
    r, states = slurm_status(runs, env, tmp_path)
    assert r.returncode == 0 and all(s["state"] == "done" for s in states.values()), states
    e1 = jobs["jobs"][1]
    assert os.path.isfile(os.path.join(e1["run_dir"], "fsrcnn_x3_iter_%d.caffemodel" % e1["iters"]))
    assert (os.path.getmtime(done), open(done).read()) == before

    # resubmitting a finished class trains nothing and leaves it as it was
    r = run(MMSR_TOOL, "submit", runs, "--only", 0, "--wait", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (os.path.getmtime(done), open(done).read()) == before
    r = run(MMSR_TOOL, "report", runs, "--json", tmp_path / "report.json", env=env)
    assert r.returncode == 0, r.stderr
    rows = json.load(open(tmp_path / "report.json"))["rows"]
    assert [x["iters"] for x in rows] == [e["iters"] for e in jobs["jobs"]]


@pytest.mark.slow
def test_jobs_without_slurm_run_locally_and_give_time_to_quality(env, split_dir, tmp_path):
    runs = str(tmp_path / "runs")
    r = run(MMSR_TOOL, "jobs", split_dir, "--iters", 4, "--snapshots", 2, "--baseline", "fsrcnn", "--runs-dir", runs,
            env=env)
    assert r.returncode == 0, r.stderr
    r = run(MMSR_TOOL, "launch", runs, "--only", "0", env=env)
    assert r.returncode == 0, r.stderr
    jobs = json.load(open(os.path.join(runs, "jobs.json")))
    status = json.load(open(jobs["jobs"][0]["run_dir"] + ".status.json"))
    assert status["state"] == "done" and status["exit"] == 0 and status["slurm_job"] is None
    assert not os.path.exists(jobs["jobs"][1]["run_dir"] + ".status.json")
    r = run(MMSR_TOOL, "launch", runs, "--parallel", 1, env=env)      # class 0 is done: not trained again
    assert r.returncode == 0, r.stderr
    assert "class0-fsrcnn-s already trained to iteration 4" in r.stderr

    # time to quality from the real snapshots: MMSR of the class models at each milestone vs the single model
    r = run(MMSR_TOOL, "quality", runs, "--datasets", "Set5", "--levels", "Set5=0,99", "--json", tmp_path / "q.json",
            env=env)
    assert r.returncode == 0, r.stderr
    q = json.load(open(tmp_path / "q.json"))
    assert [row["k"] for row in q["rows"]] == [1, 2]
    last = q["rows"][-1]
    assert last["mmsr"]["iters"] == [4, 4] and last["single"]["iters"] == 4
    assert last["mmsr"]["seconds_sum"] == pytest.approx(sum(last["mmsr"]["seconds"]))
    assert last["mmsr"]["seconds_max"] == max(last["mmsr"]["seconds"]) > 0 and last["single"]["seconds"] > 0
    assert 5 < last["mmsr"]["Set5"][0] < 40 and 5 < last["single"]["Set5"][0] < 40
    reached, never = q["time_to_quality"]
    assert reached["single"] == q["rows"][0]["single"]["seconds"] and reached["speedup_1"] > 0
    assert never["single"] is None and never["mmsr_sum"] is None and never["speedup_k"] is None
