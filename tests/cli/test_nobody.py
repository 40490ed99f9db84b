"""A video where the front end finds nobody: every video command says so in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skelact.cli import main
from skelact.pose.movenet import MODEL_FILENAME

cv2 = pytest.importorskip("cv2")
pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def empty_room(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("nobody") / "empty room.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 240))
    for i in range(24):
        writer.write(np.full((240, 320, 3), 40 + i, np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("mode", [[], ["--per-person"], ["--window"]])
def test_predict_says_nobody_in_one_line(empty_room: Path, models_root: Path, mode: list[str], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    args = ["predict", str(empty_room), "--pose-model", str(models_root / MODEL_FILENAME), *mode]
    if mode == ["--window"]:
        args += ["--timeline", str(tmp_path / "t.csv")]
    status = main(args)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln and not ln.startswith("INFO")]
    assert "Traceback" not in err
    if mode == ["--window"]:  # a timeline of nobody is a result; the warning says why it is empty
        assert status == 0
        assert lines == [f"warning: {empty_room}: no person detected in any frame (for small, distant people "
                         "lower --min-person-height)"]
    else:
        assert status == 1 and len(lines) == 1
        assert str(empty_room) in lines[0] and ("no person detected" in lines[0] or "nobody" in lines[0])


def test_extract_says_nobody(empty_room: Path, models_root: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "poses.pkl"
    status = main(["extract", str(empty_room), "-o", str(out), "--pose-model", str(models_root / MODEL_FILENAME),
                   "--quiet"])
    err = capsys.readouterr().err
    assert status == 1 and not out.exists()
    assert "no person detected in any frame (for small, distant people lower --min-person-height)" in err
