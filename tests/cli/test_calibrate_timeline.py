"""``skelact calibrate`` fits the window timeline's unknown threshold, with and without ``--unknown-data``
(real NTU RGB+D skeletons as the other activities), and refuses a bad ``--unknown-data`` in one line."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from hostile import expect_error
from synthetic import raw_ntu_file

from skelact.checkpoint import Checkpoint
from skelact.cli import main
from skelact.data.io import save_annotations

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ntu_file(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three real raw NTU clips (drink water, ...: no class of the tiny model), 2D, layout ntu25."""
    return raw_ntu_file(data_root, tmp_path_factory.mktemp("ntu"), 3)


def test_calibrate_without_unknown_data_fixes_the_in_class_acceptance(
        run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cal.pt"
    assert main(["calibrate", str(run["ckpt"]), "-o", str(out), "--accept", "0.9"]) == 0
    printed = capsys.readouterr().out
    c = Checkpoint.load(out).calibration
    assert f"timeline (predict --window): unknown below p = {c.timeline_threshold:.3f}" in printed
    assert c.timeline_threshold is not None and 0.0 <= c.timeline_threshold <= 1.0
    assert c.timeline_accept >= 0.9 and c.timeline_flagged is None and c.timeline_data == ""


def test_calibrate_with_unknown_data_reports_what_it_flags(
        run: dict[str, Path], ntu_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cal.pt"
    assert main(["calibrate", str(run["ckpt"]), "-o", str(out), "--unknown-data", str(ntu_file)]) == 0
    printed = capsys.readouterr().out
    c = Checkpoint.load(out).calibration
    assert c.timeline_data == "ntu.pkl" and c.timeline_flagged is not None and 0.0 <= c.timeline_flagged <= 1.0
    assert c.timeline_accept >= 0.95
    assert f"{c.timeline_flagged:.1%} of the ntu.pkl frames joined between them flagged" in printed
    # The clip threshold is fitted as before: the same as without --unknown-data.
    plain = tmp_path / "plain.pt"
    assert main(["calibrate", str(run["ckpt"]), "-o", str(plain)]) == 0
    p = Checkpoint.load(plain).calibration
    assert (p.temperature, p.threshold) == (c.temperature, c.threshold)
    assert p.timeline_flagged is None and p.timeline_data == ""


def _file(path: Path, keypoint: np.ndarray, layout: str | None) -> Path:
    anns = [{"frame_dir": f"x{i}", "label": 0, "total_frames": keypoint.shape[1], "keypoint": keypoint,
             "keypoint_score": np.ones(keypoint.shape[:3], np.float32)} for i in range(2)]
    data = {"annotations": anns, "split": {"all": ["x0", "x1"]}, "classes": ["other"]}
    if layout is not None:
        data["layout"] = layout
    return save_annotations(data, path)


def test_bad_unknown_data_is_one_line(run: dict[str, Path], ntu_file: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "cal.pt"
    out.parent.mkdir()
    base = ["calibrate", str(run["ckpt"]), "-o", str(out), "--unknown-data"]
    rng = np.random.default_rng(0)
    missing = tmp_path / "missing.pkl"
    expect_error(capsys, [*base, str(missing)], [str(missing), "not found"], [out.parent])
    seven = _file(tmp_path / "seven.pkl", rng.uniform(0, 100, (1, 30, 7, 2)).astype(np.float32), None)
    expect_error(capsys, [*base, str(seven)], [str(seven), "7 joints"], [out.parent])
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(pickle.dumps({"annotations": [], "split": {}, "classes": ["other"]}))
    expect_error(capsys, [*base, str(empty)], [str(empty), "no annotations"], [out.parent])
    deep = _file(tmp_path / "deep.pkl", rng.uniform(0, 1, (1, 30, 25, 3)).astype(np.float32), "ntu25")
    expect_error(capsys, [*base, str(deep)], [f"{deep}: 3D keypoints, the model's clips are 2D"], [out.parent])
    # The output may not be the data it reads.
    expect_error(capsys, ["calibrate", str(run["ckpt"]), "-o", str(ntu_file), "--force", "--unknown-data",
                          str(ntu_file)], [str(ntu_file), "is also an input"], [ntu_file.parent])
    assert not out.exists()


def test_train_fits_the_timeline_threshold_as_calibrate_does(
        run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``skelact train`` ends with the timeline's threshold fitted on its validation clips: the value
    ``skelact calibrate`` fits for the same checkpoint (a fresh model's ``predict --window`` no longer
    falls back to the clip threshold)."""
    work = tmp_path / "w"
    assert main(["train", str(run["recipe"]), "--work-dir", str(work)]) == 0
    trained = Checkpoint.load(work / "last.pt").calibration
    assert trained is not None and trained.timeline_threshold is not None and trained.timeline_accept >= 0.95
    assert "; timeline (predict --window): unknown below p = " in (work / "log.txt").read_text()
    again = tmp_path / "cal.pt"
    assert main(["calibrate", str(work / "last.pt"), "-o", str(again)]) == 0
    refit = Checkpoint.load(again).calibration
    assert (refit.timeline_threshold, refit.timeline_accept) == (trained.timeline_threshold, trained.timeline_accept)


def test_train_keeps_its_model_when_the_timeline_fit_fails(
        run: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A timeline fit that cannot be made (clips too short for the windows) is a line in the log, not a
    failed training: the clip calibration is stored, the timeline falls back to it."""
    import skelact.stream.fitting as fitting

    def too_short(*args: object, **kwargs: object) -> None:
        raise ValueError("no in-class frame could be scored")

    monkeypatch.setattr(fitting, "fit_timeline", too_short)
    work = tmp_path / "w"
    assert main(["train", str(run["recipe"]), "--work-dir", str(work)]) == 0
    c = Checkpoint.load(work / "last.pt").calibration
    assert c is not None and c.threshold is not None and c.timeline_threshold is None
    assert "timeline threshold not fitted (timeline threshold: no in-class frame could be scored)" in \
        (work / "log.txt").read_text()
