"""Exact-value tests of skelact.engine.metrics on small hand-computed score matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skelact.engine import metrics
from skelact.engine.metrics import auroc, expected_calibration_error

# 4 clips, 3 classes. Top-1 predictions: 0, 1, 2 and 0 (clip 3 ties 0.4 / 0.4 -> the lower index).
PROBS = np.array([
    [0.7, 0.2, 0.1],
    [0.2, 0.5, 0.3],
    [0.1, 0.3, 0.6],
    [0.4, 0.4, 0.2],
])
LABELS = np.array([0, 2, 2, 1])


def test_rank_classes_breaks_ties_towards_lower_index() -> None:
    np.testing.assert_array_equal(metrics.rank_classes(PROBS), [[0, 1, 2], [1, 2, 0], [2, 1, 0], [0, 1, 2]])


def test_topk_accuracy_by_hand() -> None:
    assert metrics.topk_accuracy(PROBS, LABELS, 1) == 0.5  # clips 0 and 2
    assert metrics.topk_accuracy(PROBS, LABELS, 2) == 1.0  # clip 1: label 2 ranked 2nd; clip 3: label 1 2nd
    assert metrics.topk_accuracy(PROBS, LABELS, 5) == 1.0  # k > C counts every class


def test_top5_uses_scores_not_ranks_and_ties_are_deterministic() -> None:
    # 7 classes, all tied: the top 5 are classes 0..4 whatever the label.
    scores = np.full((2, 7), 0.1)
    assert metrics.topk_accuracy(scores, np.array([4, 5]), 5) == 0.5
    # Label 6 has the 5th highest score among distinct values -> inside the top 5.
    scores = np.array([[0.9, 0.0, 0.8, 0.1, 0.7, 0.2, 0.6]])
    assert metrics.topk_accuracy(scores, np.array([6]), 5) == 1.0
    assert metrics.topk_accuracy(scores, np.array([3]), 5) == 0.0


def test_confusion_and_mean_class_accuracy() -> None:
    cm = metrics.confusion_matrix(LABELS, metrics.rank_classes(PROBS)[:, 0], 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [1, 0, 0], [0, 1, 1]])
    # Per-class recall 1, 0, 1/2 -> mean 0.5.
    assert metrics.mean_class_accuracy(PROBS, LABELS) == pytest.approx(0.5)
    # A class absent from the labels is skipped, not counted as 0.
    assert metrics.mean_class_accuracy(PROBS[:1], LABELS[:1]) == 1.0


def test_macro_precision_recall_f1_by_hand() -> None:
    # precision: class 0 predicted for clips 0 (true 0) and 3 (true 1) -> 1/2; class 1 -> 0; class 2 -> 1.
    # recall: 1, 0, 1/2. F1: 2/3, 0, 2/3.
    p, r, f = metrics.precision_recall_f1(PROBS, LABELS)
    assert p == pytest.approx(0.5)
    assert r == pytest.approx(0.5)
    assert f == pytest.approx(4 / 9)


def test_cross_entropy_and_brier_by_hand() -> None:
    expected_ce = -(math.log(0.7) + math.log(0.3) + math.log(0.6) + math.log(0.4)) / 4
    assert metrics.cross_entropy(PROBS, LABELS) == pytest.approx(expected_ce)
    # Per clip sum of squared errors: 0.14, 0.78, 0.26, 0.56 -> mean 0.435.
    assert metrics.brier_score(PROBS, LABELS) == pytest.approx(0.435)
    onehot = np.eye(3)[LABELS]
    assert metrics.brier_score(onehot, LABELS) == 0.0
    assert metrics.cross_entropy(onehot, LABELS) == pytest.approx(0.0, abs=1e-9)


def test_summarize_and_report() -> None:
    s = metrics.summarize(PROBS, LABELS)
    assert s["num_clips"] == 4
    assert (s["top1"], s["top5"], s["mean_class_acc"]) == (0.5, 1.0, 0.5)
    assert s["brier"] == pytest.approx(0.435)
    text = metrics.classification_report(PROBS, LABELS, ["run", "jump", "sit"])
    lines = text.splitlines()
    assert lines[0].split() == ["class", "precision", "recall", "f1", "support"]
    assert lines[1].split() == ["run", "0.5000", "1.0000", "0.6667", "1"]
    assert lines[3].split() == ["sit", "1.0000", "0.5000", "0.6667", "2"]
    assert "top1             0.5000" in text


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="labels must be in"):
        metrics.topk_accuracy(PROBS, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="expected scores"):
        metrics.topk_accuracy(PROBS[0], LABELS)
    with pytest.raises(ValueError, match="class names"):
        metrics.classification_report(PROBS, LABELS, ["a", "b"])


def test_ece_exact_values() -> None:
    # Two bins used: conf 0.9 (2 clips, 1 right) and conf 0.6 (2 clips, both right).
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    # |0.5 - 0.9| * 2/4 + |1.0 - 0.6| * 2/4 = 0.4
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0])) == 0.0  # conf 1 is in the last bin


def test_auroc_exact_values() -> None:
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.1], [0.9]) == 0.0
    assert auroc([0.5, 0.9], [0.5]) == pytest.approx(0.75)  # a tie counts half
