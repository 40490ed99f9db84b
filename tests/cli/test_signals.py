"""SIGTERM and SIGHUP take Ctrl-C's path (one handler, installed by the CLI's ``run``): ``live`` closes and
keeps its recording, ``extract`` keeps its progress for ``--resume``, ``train`` keeps its last whole
epoch, and nothing is left half written. The status is 128 + the signal's number and the last line
names the signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from synthetic import make_dataset, recipe
from videos import frame_count, write_video

from skelact.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]
POSE_MODEL = "movenet_multipose_lightning_f16.tflite"
SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGHUP, id="SIGHUP")]


def _default_signals() -> None:
    """In the child: the stop signals at their defaults, so the tests hold under ``nohup`` (whose
    ignored SIGHUP a child inherits, and the CLI rightly keeps)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def _start(args: list[str], cwd: Path, group: bool = False) -> subprocess.Popen:
    # A progress line per step on the pipe (no bar there), so a test can see how far the work got.
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "SKELACT_PROGRESS_INTERVAL": "0"}
    env.pop("SKELACT_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "skelact.cli", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                            start_new_session=group, preexec_fn=_default_signals)


def _signal_when(proc: subprocess.Popen, stream: str, pattern: str, signum: int,
                 timeout: float = 180, group: bool = False) -> tuple[str, str]:
    """Send ``signum`` once ``pattern`` appears on the process's ``stream`` (``group``: to its whole
    process group, as a terminal or ``kill -- -PGID`` does); return (stdout, stderr)."""
    pipe = getattr(proc, stream)
    seen = ""
    t0 = time.monotonic()
    try:
        while not re.search(pattern, seen):
            ch = pipe.read(1)
            if not ch or time.monotonic() - t0 > timeout:
                out, err = proc.communicate(timeout=60)
                raise AssertionError(f"{pattern!r} never came; {stream}: {seen[-1500:]!r}; "
                                     f"stderr: {err[-1500:] if stream == 'stdout' else ''!r}")
            seen += ch
        if group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return (seen + out, err) if stream == "stdout" else (out, seen + err)


def _check_interrupted(proc: subprocess.Popen, err: str, signum: int) -> list[str]:
    lines = [line for line in re.sub(r"[^\n]*\r", "", err).splitlines() if line.strip()]
    assert proc.returncode == 128 + signum, err[-2000:]
    assert lines[-1] == f"skelact: interrupted ({signal.Signals(signum).name})", err[-2000:]
    assert "Traceback" not in err
    return lines


def _hidden(folder: Path) -> list[str]:
    """Temporaries, locks and other hidden files anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


@pytest.fixture(scope="module")
def pose_model(models_root: Path) -> Path:
    pytest.importorskip("ai_edge_litert")
    return models_root / POSE_MODEL


@pytest.mark.parametrize("signum", SIGNALS)
def test_live_recording_survives(signum: int, labelled_videos: Path, pose_model: Path, tmp_path: Path) -> None:
    clip = labelled_videos / "forward" / "clip_0.avi"
    out = tmp_path / "rec.avi"
    proc = _start(["live", "--source", clip, "--loop", "--out", out, "--every", "5", "--quiet",
                   "--pose-model", pose_model], tmp_path)
    _, err = _signal_when(proc, "stdout", r"\n", signum)  # the first prediction: frames are being written
    lines = _check_interrupted(proc, err, signum)
    written = int(re.search(r"wrote .* \((\d+) frames\)", lines[-2]).group(1))
    assert written >= 5 and frame_count(out) == written  # closed properly: every frame plays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.avi"]  # no hidden temporary left


@pytest.mark.parametrize("signum", SIGNALS)
def test_extract_keeps_its_progress(signum: int, labelled_videos: Path, pose_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "poses.pkl"
    args = ["extract", labelled_videos, "-o", out, "--pose-model", pose_model, "--val-fraction", "0.5"]
    proc = _start(args, tmp_path)
    _, err = _signal_when(proc, "stderr", r"extract: [1-7]/8 video.*\n", signum)  # some videos done, not all
    lines = _check_interrupted(proc, err, signum)
    assert any("progress kept in" in line for line in lines), lines
    assert not out.exists()
    # The progress folder with its settings and whole entries only: no temporary, no lock.
    assert _hidden(tmp_path) == [".poses.pkl.progress"]
    progress = tmp_path / ".poses.pkl.progress"
    entries = sorted(p.name for p in progress.iterdir())
    assert entries[-1] == "settings.json" and 1 <= len(entries) - 1 < 8, entries
    assert all(re.fullmatch(r"[0-9a-f]{24}\.pkl", e) for e in entries[:-1]), entries
    assert main([*map(str, args), "--resume", "--quiet"]) == 0
    assert out.is_file() and _hidden(tmp_path) == []


@pytest.mark.parametrize("signum", SIGNALS)
def test_train_keeps_its_last_epoch(signum: int, tmp_path: Path) -> None:
    from skelact.checkpoint import Checkpoint

    data = make_dataset(tmp_path / "tiny.pkl")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(recipe(data, epochs=200)))
    work = tmp_path / "work"
    proc = _start(["train", cfg, "--work-dir", work], tmp_path)
    _, err = _signal_when(proc, "stdout", r"epoch 2/200 ", signum)
    _check_interrupted(proc, err, signum)
    ckpt = Checkpoint.load(work / "last.pt", require_train_state=True)  # whole, and resumable
    assert ckpt.epoch >= 2
    assert _hidden(work) == [], _hidden(work)  # no temporary, and the lock is released


def test_train_stopped_with_its_loader_workers(tmp_path: Path) -> None:
    """A signal to the whole process group reaches the DataLoader workers too: they ignore it and the
    main process shuts them down, so no worker dies by the signal and no traceback is printed."""
    data = make_dataset(tmp_path / "tiny.pkl")
    raw = recipe(data, epochs=200)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**raw, "data": {**raw["data"], "num_workers": 2}}))
    proc = _start(["train", cfg, "--work-dir", tmp_path / "work"], tmp_path, group=True)
    _, err = _signal_when(proc, "stdout", r"epoch 2/200 ", signal.SIGTERM, group=True)
    _check_interrupted(proc, err, signal.SIGTERM)
    assert "DataLoader worker" not in err


def test_predict_leaves_no_video(tmp_path: Path, pose_model: Path, data_root: Path) -> None:
    """``predict VIDEO --out``: stopped by SIGTERM while posing, it leaves no video and no temporary."""
    import cv2

    cap = cv2.VideoCapture(str(data_root / "videos" / "ntu_sample.avi"))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    video = write_video(tmp_path / "long.avi", frames * 6)  # long enough to be interrupted
    out = tmp_path / "pred.mp4"
    proc = _start(["predict", video, "--out", out, "--pose-model", pose_model], tmp_path)
    _, err = _signal_when(proc, "stderr", r"long\.avi: [1-9]\d*/\d+ frame.*\n", signal.SIGTERM)
    _check_interrupted(proc, err, signal.SIGTERM)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.avi"]



def test_one_handler_for_the_three_signals_and_an_ignored_one_stays_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    """Inside ``run`` each stop signal raises the same interruption (exit 128 + N, named); a signal the
    parent ignored (``nohup`` ignores SIGHUP) is left ignored; the handlers before ``run`` come back."""
    from skelact.cli import run

    def deliver(signum: int) -> None:
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("the signal did not interrupt")

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        t0 = time.monotonic()
        assert run(lambda s=signum: deliver(s)) == 128 + signum
        assert time.monotonic() - t0 < 4
        assert capsys.readouterr().err == f"skelact: interrupted ({signal.Signals(signum).name})\n"
    assert {s: signal.getsignal(s) for s in before} == before
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        seen: list[object] = []
        assert run(lambda: seen.append(signal.getsignal(signal.SIGHUP))) == 0
        assert seen == [signal.SIG_IGN]
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before[signal.SIGHUP])


def _lingering_worker(ready: object) -> None:
    from skelact.signals import worker_exits_quietly

    worker_exits_quietly(0)
    ready.set()  # type: ignore[attr-defined]
    time.sleep(60)


def test_a_lingering_worker_ends_on_terminate() -> None:
    """DataLoader stops a worker that does not exit by itself with SIGTERM and then waits for it: the
    worker must end (status 0), not ignore it (which hung every run's exit), and a signal the parent
    ignores (nohup's SIGHUP) stays ignored."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    ready = ctx.Event()
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        proc = ctx.Process(target=_lingering_worker, args=(ready,), daemon=True)
        proc.start()
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert ready.wait(30)
    os.kill(proc.pid, signal.SIGHUP)  # ignored, as in the parent
    proc.join(1.0)
    assert proc.is_alive()
    proc.terminate()
    proc.join(10)
    assert proc.exitcode == 0
