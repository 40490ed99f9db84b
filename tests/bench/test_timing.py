"""Interleaved timing and its ratios (skelact.bench.timing) on a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from skelact.bench.timing import interleave, median_ratio


def test_interleave_alternates_and_takes_median_of_round_ratios() -> None:
    calls: list[tuple[str, int]] = []
    # A fake machine that slows down round after round: everything in round r costs r x its base.
    clock = {"round": 0}

    def timer(name: str, base: float):
        def run(number: int) -> float:
            calls.append((name, number))
            seconds = number * base * clock["round"]
            if name == "B":
                clock["round"] += 1
            return seconds
        return run

    result = interleave({"A": timer("A", 0.001), "B": timer("B", 0.003)}, rounds=4, numbers={"A": 5, "B": 2},
                        items={"A": 1.0, "B": 2.0})
    # One warm-up call each, then A B A B ...
    assert calls == [("A", 1), ("B", 1)] + [("A", 5), ("B", 2)] * 4
    assert result.seconds["A"] == pytest.approx([0.001 * r for r in range(1, 5)])
    # B costs 1.5x A per item (0.003 per call of 2 items) in every round, although the machine
    # slowed 4x meanwhile: every per-round ratio is 1.5, and so is their median.
    speed, per_round = result.speedup("A", "B")
    assert per_round == pytest.approx([1.5] * 4) and speed == pytest.approx(1.5)
    assert result.median("B") == pytest.approx(0.0015 * 2.5)


def test_median_ratio_is_per_round_not_ratio_of_medians() -> None:
    fast = [1.0, 1.0, 10.0]  # a slow spell in round 3 hits both contenders
    slow = [3.0, 3.0, 30.0]
    assert median_ratio(slow, fast) == 3.0
    drift_fast, drift_slow = [1.0, 2.0, 4.0], [2.0, 8.0, 8.0]  # per round: 2, 4, 2
    assert median_ratio(drift_slow, drift_fast) == 2.0
    assert np.median(drift_slow) / np.median(drift_fast) == 4.0  # what a ratio of medians would claim
    with pytest.raises(ValueError):
        median_ratio([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        interleave({"A": lambda n: 1.0}, rounds=0)
