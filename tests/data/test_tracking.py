"""Tracking people across frames (skelact.data.tracking)."""

from __future__ import annotations

import numpy as np
import pytest

from skelact.pose import PoseResult, PoseTracker


def _people(centres: list[tuple[float, float]], score: float = 0.8) -> PoseResult:
    """Detections of stick people of height 100 px centred at the given points."""
    kps, boxes = [], []
    offsets = np.stack([np.linspace(-20, 20, 17), np.linspace(-50, 50, 17)], -1)  # [17, 2]
    for cx, cy in centres:
        kp = offsets + [cx, cy]
        kps.append(kp)
        boxes.append([cx - 25, cy - 50, cx + 25, cy + 50])
    n = len(centres)
    return PoseResult(np.asarray(kps, np.float32).reshape(n, 17, 2), np.full((n, 17), 0.9, np.float32),
                      np.asarray(boxes, np.float32).reshape(n, 4), np.full(n, score, np.float32))


def test_tracker_keeps_identities_when_detection_order_changes() -> None:
    tr = PoseTracker()
    for t in range(10):
        a, b = (100 + 3 * t, 200), (400 - 3 * t, 200)  # walking towards each other
        tr.update(t, _people([a, b] if t % 2 else [b, a]))
    kp, sc = tr.arrays(10, max_persons=2)
    assert kp.shape == (2, 10, 17, 2) and sc.shape == (2, 10, 17)
    cx = kp[..., 0].mean(-1)  # [2, T]
    assert (sc.sum(-1) > 0).all()
    assert np.all(np.abs(np.diff(cx, axis=1)) < 10)  # each row follows one person smoothly


def test_tracker_max_age_and_selection() -> None:
    tr = PoseTracker(max_age=2, join_gap=0)
    for t in range(12):
        people = [(100, 200)] if t < 3 or t > 7 else []  # gone for 5 frames > max_age: a new track
        people.append((400, 200))
        tr.update(t, _people(people))
    assert len(tr.tracks) == 3
    kp, sc = tr.arrays(12, max_persons=2)
    present = sc.sum(-1) > 0  # [2, T]
    assert present[0].all()  # the always-present person has the highest total confidence
    assert present[1].sum() == 4 and present[1, 8:].all()  # the return (4 frames) beats the first visit (3)
    kp1, _ = tr.arrays(12, max_persons=1)
    assert kp1.shape[0] == 1
    assert PoseTracker().arrays(5)[0].shape == (0, 5, 17, 2)


def test_tracker_joins_fragments_of_one_person() -> None:
    tr = PoseTracker(max_age=2, join_gap=10)
    for t in range(20):
        people = [(400, 200)]
        if t < 3 or 7 < t < 12:
            people.append((100 + t, 200))  # lost for 5 frames, found again near where it was
        if t >= 15:
            people.append((250, 200))  # someone new, far from where the first was last seen
        tr.update(t, _people(people))
    assert len(tr.tracks) == 4
    joined = tr.joined_tracks()
    assert len(tr.tracks) == 4 and len(joined) == 3  # tr.tracks is unchanged
    assert sorted(j.frames[0] for j in joined) == [0, 0, 15]
    first = next(j for j in joined if j.frames[0] == 0 and j.keypoints[0][:, 0].mean() < 200)
    assert first.frames == [0, 1, 2, 8, 9, 10, 11]
    kp, sc = tr.arrays(20, max_persons=3)
    present = sc.sum(-1) > 0  # rows by total confidence: always there (20), joined (7), new (5)
    assert present.sum(1).tolist() == [20, 7, 5]
    # Only gaps up to join_gap frames (last seen at 2, seen again at 2 + missed + 1) are bridged.
    for missed, expected in ((3, 1), (4, 2)):
        tr = PoseTracker(max_age=2, join_gap=4)
        for t in (0, 1, 2, 2 + missed + 1, 2 + missed + 2):
            tr.update(t, _people([(100, 200)]))
        assert len(tr.tracks) == 2 and len(tr.joined_tracks()) == expected, missed


def test_tracker_any_joint_count() -> None:
    tr = PoseTracker(num_joints=25)
    assert tr.arrays(4)[0].shape == (0, 4, 25, 2)
    kp = np.stack([np.linspace(0, 40, 25), np.linspace(0, 100, 25)], -1).astype(np.float32)  # [25, 2]
    for t in range(4):
        box = np.array([[3 * t, 3 * t, 40 + 3 * t, 100 + 3 * t]], np.float32)
        tr.update(t, PoseResult(kp[None] + 3 * t, np.full((1, 25), 0.9, np.float32), box, np.ones(1, np.float32)))
    keypoint, score = tr.arrays(4)
    assert keypoint.shape == (1, 4, 25, 2) and score.shape == (1, 4, 25)
    np.testing.assert_array_equal(keypoint[0, 3], kp + 9)
    with pytest.raises(ValueError, match="expects"):
        tr.update(4, PoseResult(np.zeros((1, 17, 2), np.float32), np.zeros((1, 17), np.float32),
                                np.zeros((1, 4), np.float32), np.ones(1, np.float32)))
