"""Options checked before any work (issue 27, items 10, 12, 13, 14, 15 and 19): a usage error is one
line and status 2; a bad input is one line naming that input (not the output) and status 1."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from skelact.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        status = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own usage errors
        status = int(e.code)
    return status, capsys.readouterr().err


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("skelact: error: "), err
    assert "Traceback" not in err and "unexpected" not in err, err
    return err.rstrip("\n")


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    from videos import write_video

    from skelact.data.io import save_annotations

    rng = np.random.default_rng(0)
    write_video(tmp_path / "v.avi", (rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(30)))
    kp = rng.uniform(1, 40, (1, 12, 13, 2)).astype(np.float32)
    save_annotations({"split": {"train": ["a", "b"]}, "classes": ["x"], "annotations": [
        {"frame_dir": n, "label": 0, "total_frames": 12, "keypoint": kp} for n in "ab"]}, tmp_path / "d.pkl")
    (tmp_path / "np").mkdir()
    np.save(tmp_path / "np" / "c.npy", kp[0])
    (tmp_path / "outdir").mkdir()
    return tmp_path


USAGE = [  # (argv after the paths are filled in, what the line says)
    (["predict", "{v}", "--window", "2", "--stride", "100"], "--stride 100 s is longer than --window 2 s"),
    (["predict", "{v}", "--stride", "1"], "--stride: applies with --window"),
    (["predict", "{v}", "--window", "1e308"], "--window: must be at most 3600 s"),
    (["predict", "{v}", "--window", "1", "--min-segment", "1e308"], "--min-segment: must be a number of seconds"),
    (["predict", "{v}", "--window", "1", "--min-segment", "nan"], "--min-segment: must be a number of seconds"),
    (["predict", "{v}", "--window", "1", "--min-segment", "-1"], "--min-segment: must be a number of seconds"),
    (["predict", "{v}", "--window", "1", "--min-segment", "inf"], "--min-segment: must be a number of seconds"),
    (["predict", "{v}", "--window", "1", "--timeline", "{t}/outdir"], "--timeline: '"),
    (["predict", "{v}", "--window", "1", "--timeline", "{t}/new/"], "names a folder"),
    (["predict", "{v}", "--window", "1", "--timeline", ""], "--timeline: must be a file stem"),
    (["live", "--source", "{v}", "--window", "1e308"], "--window: must be at most 3600 s"),
    (["live", "--source", "{v}", "--serve", "abc"], "--serve: expected [HOST:]PORT"),
    (["live", "--source", "{v}", "--serve", "99999"], "--serve: expected [HOST:]PORT"),
    (["demo"], "no video: pass one"),
    (["extract", "{t}", "-o", "{t}/e.pkl", "--seed", "3"], "--seed: applies to --val-fraction only"),
    (["split", "{t}/d.pkl", "-o", "{t}/s.pkl", "--val-fraction", "0.5", "--name", ""], "--name: must be a non-empty"),
    (["convert", "numpy", "{t}/np", "-o", "{t}/o.pkl", "--img-shape", "99999999999", "1"],
     "--img-shape: must be at most 2147483647"),
    (["viz", "{t}/d.pkl", "--clip", "a", "--out", "{t}/v.mp4", "--fps", "1e308"], "--fps: must be 0.01 to 1000"),
    (["viz", "{t}/d.pkl", "--clip", "a", "--out", "{t}/v.mp4", "--fps", "1e-300"], "--fps: must be 0.01 to 1000"),
]


@pytest.mark.parametrize(("argv", "message"), USAGE, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(USAGE)])
def test_usage_errors_exit_2_before_any_work(argv: list[str], message: str, inputs: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKELACT_DEMO_VIDEO", raising=False)
    monkeypatch.chdir(inputs)
    before = sorted(inputs.rglob("*"))
    status, err = _run([a.format(v=inputs / "v.avi", t=inputs) for a in argv], capsys)
    assert status == 2, err
    assert message in _one_line(err)
    assert sorted(inputs.rglob("*")) == before


def _openpose_far_joint(t: Path) -> list[str]:
    (t / "op" / "v1").mkdir(parents=True)
    for f in range(3):
        people = []
        for p in range(2):
            kp = [v for j in range(25) for v in (10.0 + j + 20 * p, 20.0 + j, 0.9)]
            if f == 1 and p == 1:
                kp[0], kp[1] = 3e38, -3e38
            people.append({"pose_keypoints_2d": kp})
        (t / "op" / "v1" / f"v1_{f:012d}_keypoints.json").write_text(json.dumps({"people": people}))
    return ["convert", "openpose", str(t / "op"), "-o", str(t / "o.pkl")]


def _numpy_mixed_scores(t: Path) -> list[str]:
    kp = np.random.default_rng(1).uniform(1, 40, (12, 17, 2)).astype(np.float32)
    (t / "mix").mkdir()
    np.save(t / "mix" / "a.npy", kp)
    np.savez(t / "mix" / "b.npz", keypoint=kp, keypoint_score=np.ones((12, 17), np.float32))
    return ["convert", "numpy", str(t / "mix"), "-o", str(t / "o.pkl")]


def _merge_mixed_scores(t: Path) -> list[str]:
    kp = np.random.default_rng(2).uniform(1, 40, (1, 12, 13, 2)).astype(np.float32)
    for name, score in (("unscored", None), ("scored", np.ones((1, 12, 13), np.float32))):
        ann = {"frame_dir": name, "label": 0, "total_frames": 12, "keypoint": kp}
        if score is not None:
            ann["keypoint_score"] = score
        (t / f"{name}.pkl").write_bytes(pickle.dumps({"split": {}, "classes": ["x"], "annotations": [ann]}))
    return ["merge", str(t / "unscored.pkl"), str(t / "scored.pkl"), "-o", str(t / "o.pkl")]


def _labelled_folder_with_a_loose_file(t: Path) -> list[str]:
    from videos import write_video

    rng = np.random.default_rng(3)
    (t / "ds2" / "a").mkdir(parents=True)
    write_video(t / "ds2" / "a" / "x.avi", (rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(9)))
    (t / "vid").mkdir()
    write_video(t / "vid" / "vshort.avi", (rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(9)))
    return ["extract", str(t / "ds2"), str(t / "vid" / "vshort.avi"), "-o", str(t / "o.pkl")]


BAD_INPUT = [  # (builder, the input the line must name, what it says)
    (_openpose_far_joint, "v1_000000000001_keypoints.json", "keypoint coordinate of 3e+38"),
    (_numpy_mixed_scores, "b.npz", "has a 'keypoint_score' but a.npy has none"),
    (_merge_mixed_scores, "scored.pkl", "have keypoint scores but those of"),
    (_labelled_folder_with_a_loose_file, "ds2", "holds its videos in class folders"),
]


@pytest.mark.parametrize(("build", "named", "message"), BAD_INPUT, ids=[b.__name__ for b, _, _ in BAD_INPUT])
def test_errors_name_the_bad_input_not_the_output(build, named: str, message: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    argv = build(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    status, err = _run(argv, capsys)
    assert status == 1, err
    line = _one_line(err)
    assert named in line and message in line, line
    assert "o.pkl" not in line  # the output is not the culprit
    assert sorted(tmp_path.rglob("*")) == before
