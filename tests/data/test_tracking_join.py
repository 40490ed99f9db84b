"""Joining track fragments (PoseTracker.chains) in memory bounded by the tracks that overlap in time,
not the square of all tracks (issue 27, item 8), with the same chains as the former all-pairs join."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from skelact.data.tracking import PoseResult, PoseTracker


def _all_pairs_chains(tracker: PoseTracker) -> list[list[int]]:
    """The former join: the cost of every track's end to every track's start at once ([n, n, V] arrays)."""
    tracks, n = tracker.tracks, len(tracker.tracks)
    if tracker.join_gap <= 0 or n < 2:
        return [[i] for i in range(n)]
    cost = tracker._cost(np.stack([t.boxes[-1] for t in tracks]), np.stack([t.keypoints[-1] for t in tracks]),
                         np.stack([t.scores[-1] for t in tracks]), np.stack([t.boxes[0] for t in tracks]),
                         np.stack([t.keypoints[0] for t in tracks]), np.stack([t.scores[0] for t in tracks]))
    ends = np.array([t.frames[-1] for t in tracks])
    starts = np.array([t.frames[0] for t in tracks])
    gap = starts[None, :] - ends[:, None]
    ok = (gap > 0) & (gap <= tracker.join_gap) & (cost <= tracker.max_cost)
    succ: dict[int, int] = {}
    pred: set[int] = set()
    for i, j in sorted(zip(*np.nonzero(ok), strict=True), key=lambda ij: cost[ij]):
        if i not in succ and j not in pred:
            succ[int(i)] = int(j)
            pred.add(int(j))
    chains = []
    for i in range(n):
        if i not in pred:
            chain = [i]
            while chain[-1] in succ:
                chain.append(succ[chain[-1]])
            chains.append(chain)
    return chains


def _people(centres: np.ndarray, rng: np.random.Generator, size: float = 40.0) -> PoseResult:
    """One frame's detections: a 17-joint person of ``size`` pixels around each centre."""
    p = len(centres)
    kp = centres[:, None, :] + rng.uniform(-size / 2, size / 2, (p, 17, 2))
    boxes = np.concatenate([kp.min(1), kp.max(1)], axis=1)
    return PoseResult(keypoints=kp.astype(np.float32), scores=rng.uniform(0.3, 1, (p, 17)).astype(np.float32),
                      boxes=boxes.astype(np.float32), person_scores=rng.uniform(0.3, 1, p).astype(np.float32))


def _scene(seed: int, frames: int = 300, people: int = 12) -> PoseTracker:
    """People walking slowly, each missed for runs of frames (fragments that the join reconnects or not)."""
    rng = np.random.default_rng(seed)
    tracker = PoseTracker(max_age=3, join_gap=30)
    pos = rng.uniform(0, 2000, (people, 2))
    vel = rng.normal(0, 3, (people, 2))
    hidden = np.zeros(people, int)
    for t in range(frames):
        pos += vel
        hidden = np.where(hidden > 0, hidden - 1, np.where(rng.random(people) < 0.03, rng.integers(4, 40, people), 0))
        seen = hidden == 0
        tracker.update(t, _people(pos[seen], rng))
    return tracker


@pytest.mark.parametrize("seed", range(6))
def test_same_chains_as_the_all_pairs_join(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = _scene(seed)
    assert len(tracker.tracks) > 40  # fragments to join
    expected = _all_pairs_chains(tracker)
    assert any(len(c) > 1 for c in expected)
    assert tracker.chains() == expected
    # blocks smaller than the scene: pairs found across block edges are the same
    monkeypatch.setattr(PoseTracker, "_JOIN_ROWS", 7)
    monkeypatch.setattr(PoseTracker, "_JOIN_COLS", 5)
    assert tracker.chains() == expected


def _never_matching(frames: int, people: int = 64) -> PoseTracker:
    """``people`` new people every frame, each far from everyone before (one track per detection)."""
    rng = np.random.default_rng(0)
    tracker = PoseTracker(max_age=0, join_gap=90)
    for t in range(frames):
        grid = np.stack(np.meshgrid(np.arange(8), np.arange(people // 8)), -1).reshape(-1, 2).astype(float)
        tracker.update(t, _people(grid * 500 + t * 4000 + 10, rng, size=40.0))
    return tracker


def _peak(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_join_memory_does_not_grow_with_the_square_of_tracks() -> None:
    """31 frames x 64 people that never match (1984 tracks, all within the join's window): the former
    join allocated [n, n, 17] arrays (gigabytes); the windowed one a few blocks. Python-level peak
    (tracemalloc sees numpy's buffers), so the bound holds with any torch wheel."""
    tracker = _never_matching(31)
    assert len(tracker.tracks) == 31 * 64
    chains, peak = _peak(tracker.chains)
    assert chains == [[i] for i in range(len(tracker.tracks))]
    assert peak < 48 << 20, f"{peak / 2**20:.0f} MiB"


def test_join_memory_is_linear_in_a_long_video() -> None:
    """Four times the frames (and tracks) of a busy scene: the join's peak stays about the same,
    since only tracks within join_gap of each other are compared."""
    short, long = _never_matching(60, people=16), _never_matching(240, people=16)
    _, peak_short = _peak(short.chains)
    _, peak_long = _peak(long.chains)
    assert peak_long < 2 * peak_short + (4 << 20), (peak_short, peak_long)
