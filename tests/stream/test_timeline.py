"""Per-frame labels and timelines (skelact.stream.timeline): exact values on hand-made sequences."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from skelact.stream.timeline import (
    NONE,
    TIMELINE_FIELDS,
    UNKNOWN,
    absorb_short,
    build_timeline,
    frame_labels,
    frame_probabilities,
)
from skelact.stream.tracks import Window


def test_frame_probabilities_take_the_most_confident_window() -> None:
    wins = [Window(10, 14, np.array([0.9, 0.1])), Window(12, 16, np.array([0.2, 0.8])),
            Window(14, 16, np.array([0.8, 0.2]))]
    probs, covered = frame_probabilities(wins, first=10, frames=7, num_classes=2)
    expected = [[0.9, 0.1]] * 4 + [[0.2, 0.8]] * 2 + [[0.0, 0.0]]  # 0.8 ties 0.8: the earlier window stays
    np.testing.assert_allclose(probs, expected, atol=1e-7)
    assert covered.tolist() == [True] * 6 + [False]
    labels = frame_labels(probs, covered, lambda p: False)
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, NONE]
    unknown = frame_labels(probs, covered, lambda p: p.max() < 0.85)
    assert unknown.tolist() == [0, 0, 0, 0, UNKNOWN, UNKNOWN, NONE]
    with pytest.raises(ValueError, match="outside"):
        frame_probabilities([Window(0, 20, np.array([1.0, 0.0]))], 10, 7, 2)


def test_absorb_short() -> None:
    flat = np.full((7, 3), 1 / 3)
    assert absorb_short(np.array([0, 0, 0, 1, 0, 0]), flat[:6], 2).tolist() == [0] * 6
    # The short run of 2 takes the neighbour its frames find more probable (class 1: 0.3 > class 0: 0.1).
    probs = np.zeros((7, 3))
    probs[3] = [0.1, 0.3, 0.6]
    assert absorb_short(np.array([0, 0, 0, 2, 1, 1, 1]), probs, 2).tolist() == [0, 0, 0, 1, 1, 1, 1]
    # NONE is a border; a known label beats an unknown neighbour.
    assert absorb_short(np.array([0, 0, NONE, 1, 0, 0, 0]), flat, 2).tolist() == [0, 0, NONE, 0, 0, 0, 0]
    assert absorb_short(np.array([UNKNOWN] * 3 + [2, 1, 1, 1]), flat, 2).tolist() == [UNKNOWN] * 3 + [1] * 4
    # Equally probable neighbours: the earlier one.
    assert absorb_short(np.array([0, 0, 0, 1, 2, 2, 2]), flat, 2).tolist() == [0, 0, 0, 0, 2, 2, 2]
    # Shortest first: the 1-frame run joins its neighbour, which is then long enough to stay.
    assert absorb_short(np.array([0, 0, 0, 1, 2, 2, 1, 1, 1]), np.full((9, 3), 1 / 3), 3).tolist() == [0] * 6 + [1] * 3
    assert absorb_short(np.array([0, 1, 0]), flat[:3], 1).tolist() == [0, 1, 0]  # min_len 1: off


def _timeline(is_unknown=lambda p: False):
    # Person 1 does class 0 in frames 0-9, person 2 class 1 in frames 20-29 (the second half less surely);
    # nobody is seen in frames 10-19 and 30-39. 10 frames/s.
    wins = {1: (0, 10, [Window(0, 10, np.array([0.7, 0.2, 0.1]))]),
            2: (20, 10, [Window(20, 25, np.array([0.1, 0.9, 0.0])), Window(25, 30, np.array([0.3, 0.5, 0.2]))])}
    return build_timeline(wins, frames=40, fps=10.0, classes=["run", "jump", "sit"], is_unknown=is_unknown)


def test_timeline_rows_csv_json(tmp_path: Path) -> None:
    tl = _timeline()
    rows = tl.rows()
    assert [(r["start_s"], r["end_s"], r["person"], r["state"], r["label"]) for r in rows] == [
        (0.0, 1.0, 1, "action", "run"), (1.0, 2.0, None, "nobody", None), (2.0, 3.0, 2, "action", "jump"),
        (3.0, 4.0, None, "nobody", None)]
    assert rows[0]["probability"] == pytest.approx(0.7) and rows[0]["closest"] == "run"
    assert rows[2]["probability"] == pytest.approx(0.7)  # mean of 0.9 and 0.5 over the row's frames
    assert (rows[2]["start_frame"], rows[2]["end_frame"]) == (20, 29)
    assert list(rows[0]) == list(TIMELINE_FIELDS)
    parsed = list(csv.DictReader(io.StringIO(tl.to_csv())))
    assert [r["label"] for r in parsed] == ["run", "", "jump", ""] and parsed[1]["state"] == "nobody"
    assert parsed[0]["unknown"] == "false" and parsed[1]["person"] == ""
    doc = json.loads(tl.to_json(input="x.mp4"))
    assert doc["input"] == "x.mp4" and doc["duration_s"] == 4.0 and doc["rows"] == rows
    # The overlay's view of a frame: person 2 at frame 27 sees the second window's top-k.
    current = tl.people[1].current(27, tl.classes, 2, lambda p: False)
    assert current.topk == [("jump", pytest.approx(0.5)), ("run", pytest.approx(0.3))]
    assert tl.people[1].current(31, tl.classes, 2, lambda p: False) is None

    paths = tl.write(tmp_path / "tl")
    assert [p.name for p in paths] == ["tl.csv", "tl.json", "tl.png"]
    assert paths[0].read_text() == tl.to_csv() and json.loads(paths[1].read_text())["rows"] == rows
    import cv2

    png = cv2.imread(str(paths[2]))
    assert png is not None and png.shape[1] > 500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tl.csv", "tl.json", "tl.png"]  # no temporary files


def test_timeline_unknown_rows_and_colour(tmp_path: Path) -> None:
    tl = _timeline(is_unknown=lambda p: p.max() < 0.6)  # person 2's second window (0.5) is unknown
    rows = [r for r in tl.rows() if r["person"] == 2]
    assert [(r["start_frame"], r["end_frame"], r["state"], r["label"], r["unknown"], r["closest"]) for r in rows] == [
        (20, 24, "action", "jump", False, "jump"), (25, 29, "unknown", None, True, "jump")]
    assert tl.segments[3].prediction.describe() == "unknown action (closest: jump, 0.50)"
    import cv2

    from skelact.viz.plots import NOBODY_COLOR, UNKNOWN_COLOR

    png = cv2.imread(str(tl.write(tmp_path / "u")[2]))
    colours = {tuple(int(c) for c in px) for px in png.reshape(-1, 3)}

    def bgr(hex_colour: str) -> tuple[int, int, int]:
        r, g, b = (int(hex_colour[i: i + 2], 16) for i in (1, 3, 5))
        return b, g, r

    assert bgr(UNKNOWN_COLOR) in colours and bgr(NOBODY_COLOR) in colours


def test_calibrated_predictor_marks_unknown_windows(data_root: Path) -> None:
    """Two real Penn Action test clips joined; a threshold above every window's confidence makes all of it unknown."""
    import dataclasses

    from skelact.checkpoint import Calibration
    from skelact.data.convert.penn import read_penn_mat
    from skelact.data.tracking import Track
    from skelact.inference import load_predictor
    from skelact.stream.tracks import classify_windows

    anns = [read_penn_mat(data_root / "penn_action" / "labels" / f"{n}.mat")[0] for n in ("0001", "0900")]
    track = Track(1, 0, np.concatenate([a["keypoint"] for a in anns], 1), np.concatenate([a["keypoint_score"]
                                                                                             for a in anns], 1))
    predictor = load_predictor()
    wins = classify_windows(predictor, track, [30, 60], [10, 20], "penn13", None, 1)
    assert wins and all(w.stop - w.start in (30, 60) for w in wins)
    plain = build_timeline({1: (0, track.frames, wins)}, track.frames, 30.0, predictor.classes, predictor.is_unknown)
    assert "action" in [r["state"] for r in plain.rows()]  # the stored threshold accepts (most of) both clips
    top = max(float(w.probs.max()) for w in wins)
    unsure = dataclasses.replace(predictor, calibration=Calibration(threshold=min(1.0, top + 1e-6)))
    tl = build_timeline({1: (0, track.frames, wins)}, track.frames, 30.0, unsure.classes, unsure.is_unknown)
    rows = tl.rows()
    assert [r["state"] for r in rows] == ["unknown"] and rows[0]["label"] is None and rows[0]["closest"]
    assert tl.segments[0].prediction.describe().startswith("unknown action (closest: ")


def test_batched_prediction_matches_one_clip_at_a_time(data_root: Path) -> None:
    from skelact.data.convert.penn import read_penn_mat
    from skelact.inference import InferenceError, load_predictor

    anns = [read_penn_mat(data_root / "penn_action" / "labels" / f"{n}.mat")[0] for n in ("0001", "0450", "0900")]
    predictor = load_predictor()
    batched = predictor.predict_clips(anns, topk=3, num_clips=2, batch_size=2)  # two forwards: 2 clips, then 1
    for ann, pred in zip(anns, batched, strict=True):
        one = predictor.predict_clip(ann, topk=3, num_clips=2)
        np.testing.assert_allclose(pred.probs, one.probs, atol=1e-5)
        assert [n for n, _ in pred.topk] == [n for n, _ in one.topk] and pred.views == 2
    assert predictor.predict_clips([]) == []
    short = dict(anns[0], frame_dir="short", keypoint=anns[0]["keypoint"][:, :3],
                 keypoint_score=anns[0]["keypoint_score"][:, :3])
    with pytest.raises(InferenceError, match="clip 'short' has 3 frame"):
        predictor.predict_clips([anns[1], short])
