"""Segmentation metrics (skelact.stream.segmentation): exact values on hand-made sequences."""

from __future__ import annotations

import pytest

from skelact.stream.segmentation import edit_score, f1_counts, frame_accuracy, runs, segmentation_scores

# Boundaries one frame off: every segment still overlaps its true one by 60-75 %.
TRUE_A = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
PRED_A = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
# Over-segmentation: a one-frame blip of class 1 inside the class-0 segment.
TRUE_B = [0] * 6 + [1] * 4
PRED_B = [0, 0, 1, 0, 0, 0, 1, 1, 1, 1]


def test_runs() -> None:
    assert runs([0, 0, 1, 1, 1, 0]) == [(0, 2, 0), (2, 5, 1), (5, 6, 0)]
    assert runs([]) == [] and runs([3]) == [(0, 1, 3)]


def test_frame_accuracy_and_edit_score() -> None:
    assert frame_accuracy(PRED_A, TRUE_A) == 0.8
    assert frame_accuracy(PRED_B, TRUE_B) == 0.9
    assert edit_score(PRED_A, TRUE_A) == 100.0  # same order of segments
    assert edit_score(PRED_B, TRUE_B) == 50.0  # 0 1 0 1 vs 0 1: two insertions over max(4, 2)
    assert edit_score([0, 1, 2], [0, 2]) == pytest.approx(100 * (1 - 1 / 3))
    with pytest.raises(ValueError, match="equal, non-empty"):
        frame_accuracy([0, 1], [0])


def test_f1_counts() -> None:
    # IoUs 3/4, 3/5, 2/3: all match at 0.5, only the first at 0.7.
    assert f1_counts(PRED_A, TRUE_A, 0.5) == (3, 0, 0)
    assert f1_counts(PRED_A, TRUE_A, 0.7) == (1, 2, 2)
    # [0,2) has IoU 1/3 with the true 0-segment, [3,6) 1/2 (and that segment is taken once); the blip is a false
    # positive; [6,10) is exact.
    assert f1_counts(PRED_B, TRUE_B, 0.1) == (2, 2, 0)
    assert f1_counts(PRED_B, TRUE_B, 0.5) == (2, 2, 0)
    assert f1_counts(PRED_B, TRUE_B, 0.6) == (1, 3, 1)


def test_background_is_ignored() -> None:
    pred, true = [9, 9, 0, 0, 9], [0, 0, 0, 0, 9]
    assert edit_score(pred, true, ignore=[9]) == 100.0
    assert f1_counts(pred, true, 0.5, ignore=[9]) == (1, 0, 0)  # IoU 2/4
    assert f1_counts(pred, true, 0.75, ignore=[9]) == (0, 1, 1)


def test_segmentation_scores_sum_counts_over_sequences() -> None:
    s = segmentation_scores([PRED_A, PRED_B], [TRUE_A, TRUE_B])
    assert s["accuracy"] == pytest.approx(85.0)  # (8 + 9) / 20 frames
    assert s["edit"] == pytest.approx(75.0)  # mean of 100 and 50
    # F1@50: tp 3 + 2, fp 0 + 2, fn 0 -> P 5/7, R 1 -> F1 10/12.
    assert s["f1@50"] == pytest.approx(100 * 10 / 12)
    # F1@25 sees the same counts as F1@50 here; F1@10 too.
    assert s["f1@10"] == s["f1@25"] == s["f1@50"]
