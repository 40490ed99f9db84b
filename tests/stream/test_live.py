"""`skelact live`: a file as the stream, sources that fail or drop, Ctrl-C, and the web page in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from videos import cli_status, frame_count, write_video

from skelact.cli import main

cv2 = pytest.importorskip("cv2")
pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]
POSE_MODEL = "movenet_multipose_lightning_f16.tflite"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def pose_model(models_root: Path) -> Path:
    pytest.importorskip("ai_edge_litert")
    return models_root / POSE_MODEL


@pytest.fixture(scope="module")
def frames(data_root: Path) -> list[np.ndarray]:
    """The two-person NTU clip at 640x360 (72 frames)."""
    cap = cv2.VideoCapture(str(data_root / "videos" / "ntu_sample.avi"))
    out = []
    while (got := cap.read())[0]:
        out.append(cv2.resize(got[1], (640, 360), interpolation=cv2.INTER_AREA))
    cap.release()
    return out


@pytest.fixture(scope="module")
def clip(frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("live") / "two.avi", frames)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _live_process(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SKELACT_DEBUG": "0"}
    return subprocess.Popen([sys.executable, "-m", "skelact.cli", "live", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ------------------------------------------------------------------------------------------ a file as the stream


def test_file_source_every_frame(clip: Path, pose_model: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "annotated.avi"
    assert main(["live", "--source", str(clip), "--out", str(out), "--every", "6", "--quiet",
                 "--pose-model", str(pose_model)]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert lines, captured.err
    frames = sorted({line["frame"] for line in lines})
    assert all(f % 6 == 0 for f in frames) and frames[-1] >= 66  # every 6th frame, to the end
    assert {line["person"] for line in lines} == {1, 2}
    for line in lines:
        assert line["time"] == pytest.approx(line["frame"] / 30, abs=1e-3)
        assert line["closest"] == line["topk"][0]["label"]  # the shipped model is calibrated: some are unknown
        assert line["label"] == (None if line["unknown"] else line["closest"])
        assert len(line["topk"]) == 3 and line["probability"] == line["topk"][0]["probability"]
    assert "72 frames processed (0 dropped)" in captured.err and f"wrote {out} (72 frames)" in captured.err
    assert frame_count(out) == 72


def test_unknown_in_json_lines_and_page_state(clip: Path, pose_model: Path) -> None:
    """A calibrated threshold nobody reaches: JSON lines and the page's state say unknown, with the closest class."""
    import dataclasses
    import io

    from skelact.checkpoint import Calibration
    from skelact.inference import load_predictor
    from skelact.pose import MoveNet
    from skelact.pose.video import FrameSource
    from skelact.stream.live import LiveAnalyzer
    from skelact.stream.server import LiveServer

    predictor = dataclasses.replace(load_predictor(), calibration=Calibration(threshold=1.0))
    lines = io.StringIO()
    server = LiveServer("127.0.0.1", 0)
    try:
        analyzer = LiveAnalyzer(MoveNet(pose_model, num_threads=2), predictor, every=10, windows=[20], lines=lines,
                                server=server)
        with FrameSource(str(clip)) as source:
            stats = analyzer.run(source, max_frames=25)
        state = json.loads(urllib.request.urlopen(server.url + "state.json", timeout=5).read())
    finally:
        server.close()
    assert stats.frames == 25 and stats.predictions >= 2
    for line in map(json.loads, lines.getvalue().splitlines()):
        assert line["label"] is None and line["unknown"] is True and line["closest"] == line["topk"][0]["label"]
    assert state["ended"] is True and state["people"]
    for p in state["people"]:
        assert p["unknown"] is True and p["text"].startswith("unknown action (closest: ")


# ------------------------------------------------------------------------------------------ sources that fail


def test_camera_that_cannot_be_opened(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cam.mp4"
    assert main(["live", "--source", "7", "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "skelact: error: camera 7: cannot open (no such camera, or it is in use)"
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_options(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [(["--every", "0"], 2, "--every: must be at least 1, got 0"),
             (["--serve", "localhost:http"], 2, "--serve: expected [HOST:]PORT"),
             (["--out", str(clip)], 1, "is also an input of this command"),
             (["--out", str(tmp_path / "x.gif")], 1, "unsupported video extension '.gif'"),
             (["--source", "rtsp://127.0.0.1:1/none", "--loop"], 2, "--loop: applies to a video file source")]
    for extra, status, message in cases:
        argv = ["live", "--source", str(clip), "--quiet", *extra]
        assert cli_status(argv) == status, extra
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
    assert cli_status(["live", "--source", str(tmp_path / "none.avi")]) == 1
    assert capsys.readouterr().err.strip() == f"skelact: error: {tmp_path / 'none.avi'}: video file not found"


def test_serve_on_a_port_in_use(clip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["live", "--source", str(clip), "--serve", f"127.0.0.1:{port}", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"skelact: error: --serve 127.0.0.1:{port}: cannot listen there (") and "in use" in err


def test_file_that_ends_early(frames: list[np.ndarray], pose_model: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    """A cut file (half its bytes): the frames that decode are processed and written, then a one-line error."""
    full = write_video(tmp_path / "full.avi", frames)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    out = tmp_path / "partial.avi"
    assert main(["live", "--source", str(cut), "--out", str(out), "--quiet", "--every", "50",
                 "--pose-model", str(pose_model)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    written = int(re.search(r"wrote .* \((\d+) frames\)", err[0]).group(1))
    assert 20 < written < 72 and frame_count(out) == written
    assert err[-1] == (f"skelact: error: {cut}: the video ended after {written} of its 72 frames "
                       "(truncated or damaged file)")


def test_network_stream_that_drops(frames: list[np.ndarray], pose_model: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """An HTTP MJPEG stream (skelact's own server) that goes away mid-way: the frames so far are kept."""
    import threading

    from skelact.stream.server import LiveServer

    server = LiveServer("127.0.0.1", 0)

    def broadcast() -> None:
        for i in range(150):  # 5 s at 30 frames/s, then the server closes
            server.publish(frames[i % len(frames)], {})
            time.sleep(1 / 30)
        server.close()

    thread = threading.Thread(target=broadcast, daemon=True)
    thread.start()
    out = tmp_path / "stream.avi"
    url = server.url + "stream.mjpg"
    assert main(["live", "--source", url, "--out", str(out), "--quiet", "--pose-model", str(pose_model)]) == 1
    thread.join()
    err = capsys.readouterr().err.strip().splitlines()
    written = int(re.search(r"wrote .* \((\d+) frames\)", err[-2]).group(1))
    assert err[-1] == f"skelact: error: {url}: stopped delivering frames after {written} frame(s)"
    assert 5 <= written <= 150 and frame_count(out) == written
    assert main(["live", "--source", "rtsp://127.0.0.1:1/none", "--quiet"]) == 1
    assert capsys.readouterr().err.strip() == (
        "skelact: error: 'rtsp://127.0.0.1:1/none': cannot open (unreachable, refused or not a video stream)")


class _FlakyCamera:
    """A cv2.VideoCapture stand-in: ``good`` frames, then reads that fail (or hang, with ``hang``)."""

    def __init__(self, frames: list[np.ndarray], good: int, hang: float = 0.0) -> None:
        self.frames, self.good, self.hang, self.n = frames, good, hang, 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def get(self, prop: int) -> float:
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.n >= self.good:
            time.sleep(self.hang)
            return False, None
        self.n += 1
        return True, self.frames[self.n % len(self.frames)]

    def release(self) -> None:
        pass


@pytest.mark.parametrize("realtime", [False, True])
def test_camera_that_stops_delivering(frames: list[np.ndarray], pose_model: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                      realtime: bool) -> None:
    camera = _FlakyCamera(frames, good=12)
    real = cv2.VideoCapture  # the recording is read back (checked) by file name: that one stays real
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a, **k: real(*a, **k) if isinstance(a[0], str) else camera)
    out = tmp_path / "cam.avi"
    argv = ["live", "--source", "0", "--out", str(out), "--quiet", "--pose-model", str(pose_model)]
    assert main(argv + (["--realtime"] if realtime else [])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    written = int(re.search(r"wrote .* \((\d+) frames\)", err[0]).group(1))
    assert err[-1] == "skelact: error: camera 0: stopped delivering frames after 12 frame(s)"
    assert (written == 12) if not realtime else (1 <= written <= 12)
    monkeypatch.undo()
    assert frame_count(out) == written


def test_stalled_stream_times_out(frames: list[np.ndarray], pose_model: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    camera = _FlakyCamera(frames, good=3, hang=30.0)  # then a read that does not return for 30 s
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a, **k: camera)
    t0 = time.monotonic()
    assert main(["live", "--source", "0", "--realtime", "--stall", "1", "--quiet",
                 "--pose-model", str(pose_model)]) == 1
    assert time.monotonic() - t0 < 25
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "skelact: error: camera 0: no frame for 1 s after 3 frame(s)")


# ------------------------------------------------------------------------------------------ Ctrl-C


def _wait_for_line(proc: subprocess.Popen, timeout: float) -> str:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = proc.stdout.readline()
        if line:
            return line
        if proc.poll() is not None:
            break
    raise AssertionError(f"no JSON line from skelact live: {proc.stderr.read()[-2000:]}")


def test_ctrl_c_closes_the_output(clip: Path, pose_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "interrupted.avi"
    proc = _live_process(["--source", str(clip), "--loop", "--out", str(out), "--every", "5", "--quiet",
                          "--pose-model", str(pose_model)], tmp_path)
    try:
        json.loads(_wait_for_line(proc, 120))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert lines[-1] == "skelact: interrupted (SIGINT)"
    written = int(re.search(r"wrote .* \((\d+) frames\)", lines[-2]).group(1))
    assert written >= 5 and frame_count(out) == written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["interrupted.avi"]  # no temporary file left


# ------------------------------------------------------------------------------------------ the web page


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1280,720", "--virtual-time-budget=4000"]
    return subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=90)


def test_web_page_in_headless_chromium(clip: Path, pose_model: Path, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("SKELACT_REQUIRE_DATA") == "1" and os.environ.get("SKELACT_NO_CHROMIUM") != "1":
            pytest.fail(f"{CHROMIUM} not found (.ci/run installs it)")
        pytest.skip(f"{CHROMIUM} not found")
    port = _free_port()
    proc = _live_process(["--source", str(clip), "--loop", "--realtime", "--serve", f"127.0.0.1:{port}", "--every",
                          "5", "--quiet", "--pose-model", str(pose_model)], tmp_path)
    try:
        first = json.loads(_wait_for_line(proc, 120))  # a prediction exists: the page has labels to show
        url = f"http://127.0.0.1:{port}/"
        state = json.loads(urllib.request.urlopen(url + "state.json", timeout=10).read())
        assert state["people"] and all(p["color"].startswith("#") for p in state["people"])
        # On a busy machine the page's first poll or the stream's first frame can miss Chromium's
        # time budget: a few tries, each with a fresh profile.
        for k in range(3):
            dom = _chromium(["--dump-dom", url], tmp_path / f"dom{k}").stdout
            labels = re.findall(r'<div class="who[^"]*" style="color: [^"]+;">person (\d+): ([^<]+)</div>', dom)
            if labels and "..." not in {text for _, text in labels}:
                break
        for k in range(3):
            shot = tmp_path / f"page{k}.png"
            _chromium([f"--screenshot={shot}", url], tmp_path / f"shot{k}")
            png = cv2.imread(str(shot))
            if png is not None and png[60:400, 20:640].std() > 20:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        finally:
            proc.kill()
    # The labels, filled in by the page's script from /state.json.
    assert labels, dom[-3000:]
    from skelact.models.weights import pretrained_info

    classes = set(pretrained_info("penn_kpc3d").classes)
    assert first["closest"] in classes
    for _, text in labels:  # as Prediction.describe(): "golf_swing (0.93)" / "unknown action (closest: X, 0.41)"
        m = re.fullmatch(r"(\w+) \((?:0|1)\.\d\d\)|unknown action \(closest: (\w+), (?:0|1)\.\d\d\)", text)
        assert m and (m.group(1) or m.group(2)) in classes, text
    assert '<img id="stream" alt="annotated stream" src="/stream.mjpg">' in dom
    # The screenshot: the stream area shows the video (not the page's flat background), the label list has text.
    assert png is not None and png.shape[:2] == (720, 1280)
    background = np.array([0x1e, 0x1e, 0x1e])
    video = png[60:400, 20:640].astype(int)
    assert video.std() > 20 and (np.abs(video - background).sum(-1) > 30).mean() > 0.7  # the video has dark parts
    label_area = png[50:200, 880:1270].astype(int)
    assert (np.abs(label_area - background).sum(-1) > 60).sum() > 200
