"""README's "Train on your own videos", command by command, on a small labelled folder cut from the real
NTU video (two classes: forward and time-reversed pieces): extract → info → --overfit → train → test →
predict on a new video. Small, but through every real component (decode, MoveNet, tracker, the
zero-config recipe, training, calibration, evaluation, the annotated video)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skelact.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_own_videos_end_to_end(labelled_videos: Path, models_root: Path, data_root: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKELACT_POSE_MODEL", str(models_root / "movenet_multipose_lightning_f16.tflite"))
    monkeypatch.chdir(tmp_path)
    data = "my_videos.pkl"
    assert main(["extract", str(labelled_videos), "-o", data, "--val-fraction", "0.25", "--seed", "0",
                 "--quiet"]) == 0
    assert main(["info", data]) == 0
    info = capsys.readouterr().out
    assert "classes: 2" in info and "train: 6 clips" in info and "val: 2 clips" in info

    # The sanity check: the model learns its own training clips (100 %).
    fast = ["--set", "data.num_workers=0"]
    assert main(["train", data, "--model", "kpc3d", "--work-dir", "work_dirs/mine_overfit", "--overfit", "6",
                 *fast]) == 0
    assert "best.pt: validation top-1 100.00 %" in capsys.readouterr().out
    # The real run (its zero-config schedule is 200 epochs of 6 clips; a shorter one keeps the suite fast).
    assert main(["train", data, "--model", "kpc3d", "--work-dir", "work_dirs/mine", *fast, "optim.epochs=30"]) == 0
    out = capsys.readouterr().out
    assert "recipe chosen for kpc3d" in out and "data.val_split = val" in out
    assert main(["test", "--checkpoint", "work_dirs/mine/last.pt"]) == 0
    metrics = json.loads(Path("work_dirs/mine/test/metrics.json").read_text())
    assert metrics["split"] == "val" and metrics["num_clips"] == 2
    capsys.readouterr()

    new_video = data_root / "videos" / "ntu_sample.avi"  # a video the model never saw whole
    assert main(["predict", str(new_video), "--model", "work_dirs/mine/last.pt", "--out", "new_video_pred.webm",
                 "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {t["label"] for t in result["topk"]} == {"forward", "reversed"} and result["frames"] == 72
    assert Path("new_video_pred.webm").stat().st_size > 0
