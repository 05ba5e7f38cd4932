"""tools/predict.py on videos (srcaffe/video/) with real Caffe and real FFmpeg (PyAV).

The clips are made here: a camera panning and zooming over a Set14 image, 96x64, encoded with
PyAV (H.264 + AAC in .mp4, VP9 + Opus in .webm). Nothing is downloaded. The network is the
shipped FSRCNN x3.
"""
import os
import signal
import subprocess
import sys
import time

os.environ.setdefault("GLOG_minloglevel", "2")

import av   # pinned in requirements.txt: a missing PyAV fails here rather than skipping
import numpy as np
import pytest

from srcaffe import ROOT, datasets, inference, matlab, outputs, video  # noqa: E402

from srcaffe.models import load_model
from srcaffe.errors import UserError  # noqa: E402
from srcaffe.evaluation import bicubic_upscaler, evaluate  # noqa: E402
from srcaffe.images import load_image, save_image  # noqa: E402

TOOL = os.path.join(ROOT, "tools", "predict.py")
W, H, N = 96, 64, 24


def run_tool(*args, **kw):
    return subprocess.run([sys.executable, TOOL] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=300, **kw)


def assert_one_line_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def probe(path):
    """Frames (decoded), size, frame rate, audio codec and samples of a video file."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        info = {"rate": v.average_rate, "size": (v.codec_context.width, v.codec_context.height),
                "matrix": v.codec_context.colorspace,
                "audio": a.codec_context.name if a is not None else None}
        info["frames"] = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    if info["audio"]:
        with av.open(str(path)) as c:
            info["samples"] = sum(f.samples for f in c.decode(audio=0))
    return info


@pytest.fixture(scope="module")
def image(fetched):
    return load_image(datasets.resolve_image("baboon"))


@pytest.fixture(scope="module")
def clips(image, tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {"audio": video.pan_zoom_clip(str(d / "pan.mp4"), image, W, H, N, audio_rate=16000),
            "silent": video.pan_zoom_clip(str(d / "silent.mkv"), image, W, H, 12),
            "webm": video.pan_zoom_clip(str(d / "pan.webm"), image, W, H, N, audio_rate=48000, codec="libvpx-vp9")}


@pytest.fixture(scope="module")
def model():
    return load_model("fsrcnn", scale=3)


def psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


def test_frame_net_equals_upscale_y_and_to_uint8(model):
    """The video path's shortcuts give the image path's numbers exactly."""
    rng = np.random.default_rng(1)
    y = rng.integers(16, 236, (H, W), dtype=np.uint8)
    net = inference.FrameNet(model, H, W)
    assert net.whole
    want = matlab.to_uint8(model.upscale_y(matlab.im2double(y)))   # upscale_y reshapes the net: reshaped back
    assert np.array_equal(net(y), want) and np.array_equal(net(y[::-1].copy()), matlab.to_uint8(
        model.upscale_y(matlab.im2double(y[::-1]))))
    x = np.concatenate([rng.normal(0.5, 0.7, 200000), np.arange(-300, 600) / 255.0,
                        (np.arange(-300, 600) + 0.5) / 255.0, [np.nextafter(0.5 / 255, 1)]]).astype(np.float32)
    assert np.array_equal(inference.sr_to_uint8(x), matlab.to_uint8(x.astype(np.float64)))
    assert video.parse_frames("3:") == (3, None) and video.parse_frames(":7") == (0, 7)


def test_upscale_keeps_frames_rate_size_and_audio(clips, model, tmp_path):
    r = run_tool(clips["audio"], "--mode", "upscale", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "pan_x3_fsrcnn_upscale.mp4"
    # no temporary file left; the record of which command wrote it (a rerun replaces it)
    assert sorted(os.listdir(tmp_path)) == [outputs.RECORD, "pan_x3_fsrcnn_upscale.mp4"]
    src, got = probe(clips["audio"]), probe(out)
    assert len(got["frames"]) == N and got["size"] == (3 * W, 3 * H) and got["rate"] == 24
    assert got["audio"] == "aac" and got["samples"] == src["samples"]   # the packets, remuxed
    assert got["matrix"] == 6   # BT.601, as players read the untagged SD source; not BT.709 as for HD
    # the frames are the network's: Y of each decoded frame through upscale_y, up to H.264's loss
    for i in (0, N // 2, N - 1):
        lr_y = src["frames"][i]
        net = matlab.to_uint8(model.upscale_y(matlab.im2double(lr_y)))
        bic = matlab.to_uint8(matlab.imresize(matlab.im2double(lr_y), 3))
        assert psnr(got["frames"][i], net) > 38
        assert psnr(got["frames"][i], net) > psnr(got["frames"][i], bic) + 3


def test_silent_video_frames_selection_and_compare(clips, tmp_path):
    r = run_tool(clips["silent"], "--mode", "upscale", "--out", tmp_path, "--frames", "2:", "--max-frames", "5",
                 "--compare", "--model", "fsrcnn-s")
    assert r.returncode == 0, r.stderr
    got = probe(tmp_path / "silent_x3_fsrcnn-s_upscale.mkv")
    assert len(got["frames"]) == 5 and got["audio"] is None and got["size"] == (3 * W, 3 * H)
    both = probe(tmp_path / "silent_x3_fsrcnn-s_upscale_compare.mkv")
    assert len(both["frames"]) == 5 and both["size"] == (6 * W, 3 * H)
    # right half is the network's video, left half bicubic
    assert psnr(both["frames"][0][:, 3 * W:], got["frames"][0]) > 38
    assert psnr(both["frames"][0][:, :3 * W], got["frames"][0]) < psnr(both["frames"][0][:, 3 * W:], got["frames"][0])


def test_webm_becomes_mkv_with_its_opus_track_cut_to_the_frames(clips, tmp_path):
    r = run_tool(clips["webm"], "--mode", "upscale", "--out", tmp_path, "--frames", "6:18", "--model", "fsrcnn-s")
    assert r.returncode == 0, r.stderr
    got = probe(tmp_path / "pan_x3_fsrcnn-s_upscale.mkv")
    assert len(got["frames"]) == 12 and got["audio"] == "opus"
    assert abs(got["samples"] / 48000.0 - 12 / 24.0) < 0.1   # half a second of sound, not the whole second


def test_full_range_source_stays_full_range(image, model, tmp_path):
    """An MJPEG .avi (full-range yuvj420p): its planes are upscaled as they are, and tagged so."""
    clip = video.pan_zoom_clip(str(tmp_path / "cam.avi"), image, W, H, 6, codec="mjpeg", pix_fmt="yuvj420p")
    r = run_tool(clip, "--mode", "upscale", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    with av.open(str(tmp_path / "cam_x3_fsrcnn_upscale.avi")) as c:
        assert c.streams.video[0].codec_context.color_range == video.JPEG_RANGE
        got = [f for f in c.decode(video=0)]
    with av.open(clip) as c:
        src = [video.yuv_planes(f)[0] for f in c.decode(video=0)]
    assert len(got) == 6
    y = np.frombuffer(got[2].planes[0], np.uint8).reshape(got[2].planes[0].height, -1)[:, :3 * W]
    assert psnr(y, matlab.to_uint8(model.upscale_y(matlab.im2double(src[2])))) > 38


@pytest.mark.slow
def test_gt_mode_scores_equal_evaluate_on_the_frames_saved_as_images(clips, model, tmp_path):
    r = run_tool(clips["audio"], "--out", tmp_path, "--max-frames", "5")
    assert r.returncode == 0, r.stderr
    assert "mean on Y" in r.stdout
    rows = [line.split(",") for line in (tmp_path / "pan_x3_fsrcnn_frames.csv").read_text().splitlines()]
    assert rows[0][:3] == ["frame", "time_s", "bicubic_psnr"] and len(rows) == 6
    assert (tmp_path / "pan_x3_fsrcnn_worst.png").stat().st_size > 0
    assert len(probe(tmp_path / "pan_x3_fsrcnn.mp4")["frames"]) == 5
    pngs = []
    with av.open(clips["audio"]) as c:
        for i, f in zip(range(5), c.decode(video=0)):
            pngs.append(str(tmp_path / ("frame%02d.png" % i)))
            save_image(pngs[-1], f.to_ndarray(format="rgb24"))
    bic, net = evaluate(bicubic_upscaler, pngs, 3, "bicubic"), evaluate(model.upscaler, pngs, 3, "fsrcnn")
    for row, b, n in zip(rows[1:], bic["images"], net["images"]):
        assert float(row[2]) == pytest.approx(b["psnr"], abs=6e-5)
        assert float(row[3]) == pytest.approx(b["ssim"], abs=6e-6)
        assert float(row[4]) == pytest.approx(n["psnr"], abs=6e-5)
        assert float(row[5]) == pytest.approx(n["ssim"], abs=6e-6)
    assert net["mean_psnr"] > bic["mean_psnr"]


@pytest.mark.slow
def test_bad_videos_and_outputs_are_one_line_errors(clips, tmp_path):
    """Through the command: exit code 2 and one line, no traceback, nothing left behind."""
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n")
    assert_one_line_error(run_tool(fake, "--mode", "upscale", "--out", tmp_path / "o1"), "notes.mp4", "not a readable video")
    cut_mkv = tmp_path / "cut.mkv"   # Matroska starts playing, then the data stops mid-frame
    data = open(clips["silent"], "rb").read()
    cut_mkv.write_bytes(data[: len(data) * 2 // 3])
    assert_one_line_error(run_tool(cut_mkv, "--mode", "upscale", "--out", tmp_path / "o3"), "cut.mkv", "truncated")
    assert not os.listdir(tmp_path / "o3")   # what was written of it is removed
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_one_line_error(run_tool(clips["audio"], "--mode", "upscale", "--out", blocker / "sub"), str(blocker),
                          "not a folder")
    assert not os.path.exists(tmp_path / "o1") or not os.listdir(tmp_path / "o1")
    r = run_tool(clips["audio"], "--mode", "upscale", "--gpu", "0", "--max-frames", "2", "--out", tmp_path / "o6")
    if r.returncode != 0:   # no CUDA Caffe or no GPU here: one line, not Caffe's abort
        assert_one_line_error(r, "--gpu 0")


@pytest.mark.parametrize("case, words", [
    ("cut.mp4", ["cut.mp4", "not a readable video"]),   # an MP4 cut in half has no index (moov) yet
    ("exists", ["pan_x3_fsrcnn_upscale.mp4", "already exists"]),
    ("frames 5:2", ["--frames 5:2"]),
    ("frames 100:", ["has 24 frames", "100"]),
])
def test_more_refusals(clips, model, tmp_path, case, words):
    path, kw, out = clips["audio"], {}, tmp_path / "out"
    if case == "cut.mp4":
        data = open(path, "rb").read()
        path = str(tmp_path / "cut.mp4")
        open(path, "wb").write(data[: len(data) // 2])
    elif case == "exists":
        out.mkdir()
        (out / "pan_x3_fsrcnn_upscale.mp4").write_text("mine")
    else:
        kw["frames"] = case.split()[1]
    with pytest.raises(UserError) as e:
        video.predict_video(path, model, str(out), "upscale", **kw)
    assert all(w in str(e.value) for w in words), str(e.value)
    left = sorted(os.listdir(out)) if out.is_dir() else []
    assert left == (["pan_x3_fsrcnn_upscale.mp4"] if case == "exists" else []), left
    if case == "exists":
        assert (out / "pan_x3_fsrcnn_upscale.mp4").read_text() == "mine"


@pytest.mark.slow
def test_ctrl_c_leaves_a_playable_partial_file_or_none(image, tmp_path):
    clip = video.pan_zoom_clip(str(tmp_path / "long.mp4"), image, W, H, 480, audio_rate=16000)
    out = tmp_path / "out"
    # SIGINT as a terminal's Ctrl-C finds it: a suite started in the background (`cmd &` in a
    # script) runs with SIGINT ignored, which the tool would inherit and never see the signal.
    p = subprocess.Popen([sys.executable, TOOL, clip, "--mode", "upscale", "--out", str(out), "--compare"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120   # bounds a hang only
    # the event: the encoder has written part of an output still in progress (.NAME.*.tmp.mp4,
    # renamed once finished), so the interrupt lands mid-video
    while not (out.is_dir() and any(".tmp." in f.name and f.stat().st_size > 20000 for f in out.iterdir())):
        assert p.poll() is None, "the tool ended before its output grew: %s" % p.stderr.read()[-1500:]
        assert time.monotonic() < deadline, "nothing written within 120 s"
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    names = sorted(os.listdir(out))
    assert names in ([], ["long_x3_fsrcnn_upscale.partial.mp4", "long_x3_fsrcnn_upscale_compare.partial.mp4"]), names
    for name in names:
        frames = len(probe(out / name)["frames"])
        assert 0 < frames < 480
    r = run_tool(clip, "--mode", "upscale", "--out", out, "--max-frames", "3")   # nothing blocks a rerun
    assert r.returncode == 0, r.stderr
    assert len(probe(out / "long_x3_fsrcnn_upscale.mp4")["frames"]) == 3
