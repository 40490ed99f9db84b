"""``extract``'s output: one run at a time (a lock, as ``train`` has), a progress folder that always holds
its settings, and a warning for a video that ends before its header says (also in ``predict``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from videos import write_video

from skelact.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]
POSE_MODEL = "movenet_multipose_lightning_f16.tflite"


@pytest.fixture(scope="module")
def pose_model(models_root: Path) -> Path:
    pytest.importorskip("ai_edge_litert")
    return models_root / POSE_MODEL


def _extract(args: list[str | Path], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("SKELACT_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "skelact.cli", "extract", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_second_run_on_one_output_refuses(labelled_videos: Path, pose_model: Path, tmp_path: Path) -> None:
    """The second run (``--resume``, started while the first works) fails at once with one line naming the
    output and the first run's PID; the first one finishes as if alone, and leaves nothing hidden."""
    out = tmp_path / "poses.pkl"
    args = [labelled_videos, "-o", out, "--pose-model", pose_model, "--val-fraction", "0.5", "--quiet"]
    first = _extract(args, tmp_path)
    try:
        t0 = time.monotonic()
        while not (tmp_path / ".poses.pkl.progress").is_dir():  # the first run is at work
            assert first.poll() is None and time.monotonic() - t0 < 120, first.communicate()
            time.sleep(0.05)
        second = _extract([*args, "--resume"], tmp_path)
        out2, err2 = second.communicate(timeout=120)
        out1, err1 = first.communicate(timeout=300)
    finally:
        first.kill()
    assert second.returncode == 1, err2
    assert re.fullmatch(rf"skelact: error: {re.escape(str(out))}: another extraction \(PID {first.pid}\) is writing "
                        r"this output; wait for it, or remove \S+\.poses\.pkl\.lock if that run is gone\n", err2), err2
    assert first.returncode == 0, err1
    assert "8 video(s) extracted" in out1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["poses.pkl"]  # no lock, progress or temporary left


def test_a_run_killed_while_creating_its_progress_folder_leaves_none(labelled_videos: Path, pose_model: Path,
                                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Stopped while writing settings.json, a run leaves no progress folder that every later run would
    stumble on (it used to: "pass --resume"), and a creation that a SIGKILL cut is cleared."""
    import skelact.pose.resume as progress

    out = tmp_path / "poses.pkl"
    args = ["extract", str(labelled_videos / "forward"), "-o", str(out), "--pose-model", str(pose_model), "--quiet"]

    def killed(path: Path, write: object, force: bool = True) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr(progress, "atomic_write", killed)
    assert main(args) == 130
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / ".poses.pkl.progress.0123456789ab.tmp").mkdir()  # what a SIGKILL at that moment leaves
    (tmp_path / ".poses.pkl.progress.0123456789ab.tmp" / "settings.json").write_text("{")
    capsys.readouterr()
    assert main(args) == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["poses.pkl"]


@pytest.fixture(scope="module")
def truncated(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """A 72-frame video cut in half (its header still says 72): the path, decodable frames, header frames."""
    import cv2

    cap = cv2.VideoCapture(str(data_root / "videos" / "ntu_sample.avi"))
    frames = []
    while (got := cap.read())[0]:
        frames.append(cv2.resize(got[1], (640, 360), interpolation=cv2.INTER_AREA))
    cap.release()
    folder = tmp_path_factory.mktemp("truncated") / "cut" / "action"
    folder.mkdir(parents=True)
    path = write_video(folder / "cut.avi", frames)
    os.truncate(path, path.stat().st_size // 2)
    cap = cv2.VideoCapture(str(path))
    header, decoded = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0
    while cap.grab():
        decoded += 1
    cap.release()
    assert header == len(frames) == 72 and 8 <= decoded < header - 2
    return path, decoded, header


def _warning(path: Path, decoded: int, header: int) -> str:
    return f"warning: {path}: the video ended after {decoded} of its {header} frames (truncated or damaged file)"


@pytest.mark.parametrize("extra", [[], ["--per-person"]], ids=["whole", "per-person"])
def test_predict_warns_about_a_truncated_video(truncated: tuple[Path, int, int], pose_model: Path, extra: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path, decoded, header = truncated
    assert main(["predict", str(path), "--pose-model", str(pose_model), "--quiet", "--json", *extra]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err.count(_warning(path, decoded, header)) == 1, err


def test_extract_warns_about_a_truncated_video(truncated: tuple[Path, int, int], pose_model: Path, tmp_path: Path,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    path, decoded, header = truncated
    out = tmp_path / "cut.pkl"
    assert main(["extract", str(path.parent.parent), "-o", str(out), "--pose-model", str(pose_model), "--quiet",
                 "--min-frames", "8"]) == 0
    err = capfd.readouterr().err.splitlines()
    assert err.count(_warning(path, decoded, header)) == 1, err
    from skelact.data.io import load_annotations

    assert load_annotations(out, allow_unlabeled=True)["annotations"][0]["total_frames"] == decoded  # still used
