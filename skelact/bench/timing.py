"""Timing: repeated runs, contenders interleaved in one run, per-round ratios, thread counts.

Machines that are shared or throttled drift by 2x and more within minutes, so a ratio between
two figures taken minutes (or days) apart says little. :func:`interleave` times every contender
once per round, A B C A B C ..., and a speed-up is the median over rounds of the per-round
ratio: a slow spell that hits one round hits every contender in it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Timer", "local_timer", "calibrate", "time_runs", "Interleaved", "interleave", "median_ratio",
           "rates", "rate_stats", "Threads"]

#: Runs ``number`` calls of the work and returns their total wall-clock seconds.
Timer = Callable[[int], float]


def local_timer(fn: Callable[[], object]) -> Timer:
    """A :data:`Timer` for a function of this process."""

    def run(number: int) -> float:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        return time.perf_counter() - t0

    return run


def calibrate(timer: Timer, min_seconds: float, max_number: int = 1000) -> int:
    """Calls per timing so that one timing lasts about ``min_seconds`` (the first call is a warm-up)."""
    once = max(timer(1), 1e-9)
    return max(1, min(max_number, math.ceil(min_seconds / once)))


def time_runs(fn: Callable[[], object], runs: int, warmup: int = 1, number: int = 1) -> list[float]:
    """Seconds per call of ``fn``: ``warmup`` untimed calls, then ``runs`` timings of ``number`` calls each."""
    timer = local_timer(fn)
    if warmup:
        timer(warmup)
    return [timer(number) / number for _ in range(runs)]


def rates(seconds: Sequence[float], items: float = 1.0) -> list[float]:
    """Items per second of each timing, for ``items`` items per call."""
    return [items / s for s in seconds]


def median_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """Median over rounds of ``num[i] / den[i]``."""
    if len(num) != len(den) or not num:
        raise ValueError(f"need two equally long, non-empty series, got {len(num)} and {len(den)}")
    return statistics.median(n / d for n, d in zip(num, den, strict=True))


@dataclass
class Interleaved:
    """Seconds per item of each contender, one entry per round.

    Attributes:
        names: Contender names, in the order they ran within each round.
        seconds: ``seconds[name][r]``: seconds per item in round ``r``.
        numbers: Calls per timing of each contender.
    """

    names: list[str]
    seconds: dict[str, list[float]] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)

    def median(self, name: str) -> float:
        """Median seconds per item of ``name``."""
        return statistics.median(self.seconds[name])

    def speedup(self, fast: str, slow: str) -> tuple[float, list[float]]:
        """How many times faster ``fast`` ran than ``slow``: the median per-round ratio and every round's."""
        per_round = [s / f for f, s in zip(self.seconds[fast], self.seconds[slow], strict=True)]
        return statistics.median(per_round), per_round


def interleave(timers: dict[str, Timer], rounds: int, min_seconds: float = 0.05,
               items: dict[str, float] | None = None, numbers: dict[str, int] | None = None) -> Interleaved:
    """Time every contender once per round, in turn: A B C, A B C, ...

    Each contender first runs once untimed (warm-up and calibration), then ``rounds`` timings of
    enough calls to last ``min_seconds`` (or ``numbers[name]`` calls).

    Args:
        timers: Contender name -> :data:`Timer`.
        rounds: Rounds (per-round ratios; their median is the speed-up).
        min_seconds: Shortest timing, so that the clock's resolution and per-call overheads vanish.
        items: Items (clips) per call of each contender; default 1.
        numbers: Fixed calls per timing, overriding the calibration.

    Returns:
        Seconds per item of every contender in every round.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    items = items or {}
    result = Interleaved(list(timers))
    for name, timer in timers.items():
        fixed = (numbers or {}).get(name)
        if fixed is None:
            result.numbers[name] = calibrate(timer, min_seconds)
        else:
            timer(1)  # warm-up
            result.numbers[name] = fixed
        result.seconds[name] = []
    for _ in range(rounds):
        for name, timer in timers.items():
            number = result.numbers[name]
            result.seconds[name].append(timer(number) / (number * items.get(name, 1.0)))
    return result


class Threads:
    """``with Threads(n):`` runs torch on ``n`` threads (``None``: unchanged), then restores the count."""

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.old = 0

    def __enter__(self) -> Threads:
        import torch

        self.old = torch.get_num_threads()
        if self.n is not None:
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.old)


def rate_stats(seconds: Sequence[float], items: float = 1.0) -> tuple[float, list[float]]:
    """Median items/s and every timing's items/s, for ``items`` items per call."""
    every = rates(seconds, items)
    return statistics.median(every), every
