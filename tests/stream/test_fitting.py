"""The window timeline's own unknown threshold (skelact.stream.fitting, Calibration.unknown(timeline=True)):
exact values on hand-made windows, frames and sequences."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from synthetic import penn_clip

from skelact.checkpoint import Calibration, CheckpointError
from skelact.inference import load_predictor
from skelact.stream.fitting import OUTSIDE, join_sequences, timeline_threshold
from skelact.stream.timeline import UNKNOWN, build_timeline, frame_labels, frame_probabilities
from skelact.stream.tracks import Window


def _one_sure_many_unsure() -> list[Window]:
    # Frames 0-9: one window sure of class 0 (0.97) among eight unsure ones (top-1 0.4 or 1/3); the timeline
    # takes the sure one for every frame it covers.
    wins = [Window(0, 10, np.array([0.97, 0.02, 0.01]))]
    wins += [Window(s, s + 4, np.array([0.4, 0.35, 0.25])) for s in range(0, 7)] + [Window(0, 10, np.full(3, 1 / 3))]
    return wins


def test_a_frame_is_unknown_by_the_timeline_threshold_not_the_clip_one() -> None:
    cal = Calibration(threshold=0.8, timeline_threshold=0.98)
    probs, covered = frame_probabilities(_one_sure_many_unsure(), 0, 10, 3)
    assert probs.max(axis=1).tolist() == pytest.approx([0.97] * 10)
    # A single clip at 0.97 is known (clip threshold 0.8) ...
    assert not cal.unknown(np.array([0.97, 0.02, 0.01]))
    # ... the same probabilities as a timeline frame (the best of nine windows) are not (0.97 < 0.98).
    labels = frame_labels(probs, covered, lambda p: bool(cal.unknown(p, timeline=True)))
    assert labels.tolist() == [UNKNOWN] * 10
    # Just above the timeline threshold: known again.
    labels = frame_labels(probs, covered, lambda p: bool(dataclasses.replace(cal, timeline_threshold=0.96)
                                                          .unknown(p, timeline=True)))
    assert labels.tolist() == [0] * 10
    # A model calibrated before timeline thresholds existed: the timeline uses the clip threshold.
    old = Calibration(threshold=0.8)
    assert frame_labels(probs, covered, lambda p: bool(old.unknown(p, timeline=True))).tolist() == [0] * 10
    assert not Calibration().unknown(np.array([0.2, 0.8]), timeline=True)  # no threshold at all: never


def test_the_predictor_passes_the_timeline_rule_to_build_timeline() -> None:
    shipped = load_predictor()
    classes = shipped.classes
    sure = np.zeros(len(classes), np.float32)
    sure[3], sure[4] = 0.97, 0.03
    wins = {1: (0, 10, [Window(0, 10, sure)])}
    for value, state in ((0.98, "unknown"), (0.9, "action"), (None, "action")):
        cal = dataclasses.replace(shipped.calibration, threshold=0.8, timeline_threshold=value)
        pred = dataclasses.replace(shipped, calibration=cal)
        tl = build_timeline(wins, 10, 10.0, classes, pred.timeline_unknown)
        assert [s.state for s in tl.segments] == [state], value
        assert not pred.is_unknown(sure)  # the single-clip rule is unchanged


def test_timeline_threshold_exact() -> None:
    inside = np.array([0.5, 0.9, 0.92, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995, 1.0])
    # No out-of-class frames: the (1 - accept) quantile, the lower value (so at least 80 % are accepted).
    fit = timeline_threshold(inside, np.array([]), 0.8)
    assert (fit.threshold, fit.accept, fit.flagged, fit.inside, fit.outside) == (0.9, 0.9, None, 10, 0)
    # Out-of-class frames all below 0.5: 0.5 accepts every in-class frame and flags them all.
    fit = timeline_threshold(inside, np.array([0.1, 0.2, 0.45]), 0.8)
    assert (fit.threshold, fit.accept, fit.flagged) == (0.5, 1.0, 1.0)
    # The best separation (0.95: 70 % accepted, all flagged) would accept fewer than 80 %: the floor holds.
    fit = timeline_threshold(inside, np.array([0.3, 0.6, 0.93, 0.94]), 0.8)
    assert (fit.threshold, fit.accept, fit.flagged) == (0.9, 0.9, 0.5)
    with pytest.raises(ValueError, match="accept"):
        timeline_threshold(inside, np.array([]), 0.0)
    with pytest.raises(ValueError, match="no in-class frames"):
        timeline_threshold(np.array([]), np.array([0.5]), 0.9)


def test_join_sequences_alternates_classes_and_puts_outside_runs_between() -> None:
    rng = np.random.default_rng(0)
    clips = [penn_clip(f"c{c}_{i}", c, 20 + i, rng) for c in range(3) for i in range(4)]
    other = [penn_clip(f"o{i}", 0, 15, rng) for i in range(5)]
    plain = join_sequences(clips, 4, seed=1)
    assert [len(s.names) for s in plain] == [4, 4, 4]
    assert sorted(n for s in plain for n in s.names) == sorted(c["frame_dir"] for c in clips)  # each clip once
    for seq in join_sequences(clips, 4, seed=1, between=other):
        # Every in-class clip is followed by 1 to 3 out-of-class clips (15 frames each).
        assert seq.truth[0] >= 0 and seq.truth[-1] == OUTSIDE
        assert seq.track.frames == len(seq.truth)
        inside = [n for n in seq.names if n.startswith("c")]
        assert len(inside) == 4 and all(1 <= k <= 3 for k in _outside_runs(seq.names))
        labels = [int(n[1]) for n in inside]
        assert all(a != b for a, b in zip(labels[:-1], labels[1:], strict=True))
        assert (seq.truth == OUTSIDE).sum() == 15 * sum(n.startswith("o") for n in seq.names)


def _outside_runs(names: list[str]) -> list[int]:
    runs, k = [], 0
    for n in names:
        if n.startswith("o"):
            k += 1
        elif k:
            runs.append(k)
            k = 0
    return runs + ([k] if k else [])


def test_calibration_stores_and_validates_the_timeline_fields() -> None:
    cal = Calibration(0.9, 0.8, "val", timeline_threshold=0.95, timeline_accept=0.95, timeline_flagged=0.7,
                      timeline_data="other.pkl")
    assert Calibration.from_dict(cal.to_dict(), "x.pt") == cal
    old = Calibration(0.9, 0.8, "val").to_dict()
    assert "timeline_threshold" not in old  # files without it keep their keys
    assert Calibration.from_dict(old, "x.pt").timeline_threshold is None
    with pytest.raises(CheckpointError, match="x.pt: calibration 'timeline_threshold' must be a probability"):
        Calibration.from_dict({**cal.to_dict(), "timeline_threshold": 1.5}, "x.pt")
    with pytest.raises(CheckpointError, match="'timeline_data' must be a string"):
        Calibration.from_dict({**cal.to_dict(), "timeline_data": 3}, "x.pt")
