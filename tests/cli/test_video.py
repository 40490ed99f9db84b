"""`skelact extract / predict / demo` at the command line (skelact.cli.video)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import penn_clip

from skelact.cli import main
from skelact.data.io import save_annotations

pytestmark = pytest.mark.usefixtures("one_thread")


def test_clip_data_without_keypoint_score_predicts(tmp_path: Path, run: dict[str, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A clip file the project did not write (no scores, no classes, no layout) still predicts."""
    clip = penn_clip("x", 0, 30, np.random.default_rng(9))
    clip.pop("keypoint_score")
    path = save_annotations({"annotations": [clip]}, tmp_path / "x.pkl")
    assert main(["predict", str(path), "--model", str(run["ckpt"]), "--json"]) == 1  # trained with a score channel
    assert "input channels" in capsys.readouterr().err


def test_extract_bad_video_writes_nothing(models_root, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    out = tmp_path / "o.pkl"
    model = models_root / "movenet_multipose_lightning_f16.tflite"
    assert main(["extract", str(bad), "-o", str(out), "--pose-model", str(model), "--quiet"]) == 1
    assert "bad.mp4" in capsys.readouterr().err
    assert not out.exists()
