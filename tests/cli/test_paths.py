"""File names that are not valid UTF-8 (issue 27, item 1), through the CLI as a user meets them.

Such a name reaches Python as lone surrogates (``os.fsdecode(b'x\\xff.avi')``); given to OpenCV it
crashed the process (a segmentation fault), so every command runs in a child process here
(``hostile.run_cli_batch``): a crash fails the test instead of taking pytest down.
"""

from __future__ import annotations

import csv
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hostile import REPO, run_cli_batch

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BAD = os.fsdecode(b"x\xff")  # 'x\udcff': what Python makes of a name that is not UTF-8
SHOWN = "x\\xff"  # how the one-line error shows it


def _video(path: Path, frames: int = 12) -> Path:
    from videos import write_video

    rng = np.random.default_rng(0)
    return write_video(path, (rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(frames)))


def _assert_refused(result, folder: Path, before: set[Path]) -> None:
    err = result.stderr
    where = f"{result.args}: {err[:300]!r}"
    assert result.rc == 1, where
    assert err.count("\n") == 1 and err.startswith("skelact: error: "), where
    assert "Traceback" not in err and "unexpected" not in err, where
    assert SHOWN in err and "not valid UTF-8" in err, where
    if result.args[:1] == ["demo"] and "--out" not in result.args:
        assert f"{SHOWN}.avi" in err, where
    assert set(folder.rglob("*")) == before, f"{where}: left {set(folder.rglob('*')) - before}"


def test_undecodable_names_are_refused_in_one_line_not_a_crash(tmp_path: Path) -> None:
    good = _video(tmp_path / "good.avi")
    bad_video = tmp_path / f"{BAD}.avi"
    shutil.copy(good, bad_video)
    bad_model = tmp_path / f"{BAD}.tflite"
    bad_model.write_bytes(b"not looked at: the name is refused first")
    from skelact.data.io import save_annotations

    kp = np.random.default_rng(0).uniform(10, 50, (1, 12, 17, 2)).astype(np.float32)
    save_annotations({"split": {}, "annotations": [{"frame_dir": "c", "label": -1, "total_frames": 12,
                                                    "keypoint": kp, "img_shape": (64, 96)}]},
                     tmp_path / "clip.pkl", allow_unlabeled=True)
    out = tmp_path / f"{BAD}.mp4"
    cases = [
        ["predict", bad_video],  # OpenCV's VideoCapture
        ["predict", good, "--out", out],  # OpenCV's VideoWriter
        ["predict", good, "--pose-model", bad_model],  # the LiteRT interpreter
        ["predict", bad_video, "--window", "0.2"],
        ["demo", bad_video, "--out", tmp_path / "d.mp4"],
        ["demo", bad_video],  # the default output, named after the video: the video is named
        ["demo", good, "--out", out],
        ["viz", tmp_path / "clip.pkl", "--out", out],
        ["viz", tmp_path / "clip.pkl", "--video", bad_video, "--out", tmp_path / "v.mp4"],
        ["live", "--source", bad_video],
        ["live", "--source", good, "--out", out],
        ["extract", tmp_path, "-o", tmp_path / "e.pkl", "--pose-model", bad_model],  # and no progress folder left
    ]
    before = set(tmp_path.rglob("*"))
    for result in run_cli_batch([(args, tmp_path) for args in cases]):
        _assert_refused(result, tmp_path, before)


@pytest.mark.usefixtures("one_thread")
def test_extract_lists_an_undecodable_video_as_failed_and_finishes(labelled_videos: Path, models_root: Path,
                                                                   tmp_path: Path) -> None:
    root = tmp_path / "videos"
    for cls in ("forward", "reversed"):
        (root / cls).mkdir(parents=True)
        shutil.copy(labelled_videos / cls / "clip_0.avi", root / cls / "clip_0.avi")
    shutil.copy(labelled_videos / "forward" / "clip_1.avi", root / "forward" / f"{BAD}.avi")
    (root / f"class_{BAD}").mkdir()  # a class folder whose name is not UTF-8: keys, split and labels see it
    shutil.copy(labelled_videos / "forward" / "clip_2.avi", root / f"class_{BAD}" / "clip_2.avi")
    out = tmp_path / "data.pkl"
    model = models_root / "movenet_multipose_lightning_f16.tflite"
    args = ["extract", root, "-o", out, "--pose-model", model, "--quiet", "--min-frames", "4", "--val-fraction", "0.5"]
    first, again = run_cli_batch([(args, tmp_path), (args + ["--force"], tmp_path)])
    for result in (first, again):  # a rerun needs no --resume: no progress folder is left behind
        assert result.rc == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert "2 video(s) extracted" in result.stdout and "2 video(s) failed" in result.stdout, result.stdout
    assert not list(tmp_path.glob(".data.pkl.progress*"))
    rows = list(csv.reader((tmp_path / "data.pkl.failures.csv").read_text(encoding="utf-8").splitlines()))
    assert sorted(r[0][len(str(root)) + 1:] for r in rows[1:]) == [f"class_{SHOWN}/clip_2.avi", f"forward/{SHOWN}.avi"]
    assert all("not valid UTF-8" in r[1] for r in rows[1:]), rows


def test_fuse_writes_a_whole_report_with_an_undecodable_class_name(tmp_path: Path) -> None:
    from skelact.engine.evaluate import save_scores

    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], 9)
    for name in ("a", "b"):
        save_scores(tmp_path / f"{name}.npz", probs, np.arange(9) % 3, [f"c{i}" for i in range(9)],
                    ["ok", f"{BAD}y", "z"])
    out = tmp_path / "fused"
    (result,) = run_cli_batch([(["fuse", tmp_path / "a.npz", tmp_path / "b.npz", "--out-dir", out], tmp_path)])
    assert result.rc == 0, result.stderr
    report = (out / "report.txt").read_text(encoding="utf-8")
    assert f"{SHOWN}y" in report and "macro_f1" in report
    assert (out / "confusion.png").stat().st_size > 0


def test_stdout_prints_an_undecodable_name_without_raising(tmp_path: Path) -> None:
    """``info`` prints class names to stdout; a pipe's stdout is strict UTF-8 unless the CLI relaxes it."""
    kp = np.zeros((1, 10, 13, 2), np.float32) + 5
    data = {"split": {"train": ["c"]}, "classes": [f"{BAD}name"],
            "annotations": [{"frame_dir": "c", "label": 0, "total_frames": 10, "keypoint": kp}]}
    (tmp_path / "d.pkl").write_bytes(pickle.dumps(data))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run([sys.executable, "-m", "skelact.cli", "info", str(tmp_path / "d.pkl")],
                          capture_output=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert b"Traceback" not in proc.stderr
    assert b"x\\udcffname" in proc.stdout or b"x\\xffname" in proc.stdout, proc.stdout[-500:]
