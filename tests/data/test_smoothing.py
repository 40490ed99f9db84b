"""Gap filling and One Euro smoothing of tracked keypoints (skelact.data.smoothing)."""

from __future__ import annotations

import numpy as np
import pytest

from skelact.data.smoothing import fill_gaps, one_euro


def _track(t: int, present: list[int], v: int = 3) -> tuple[np.ndarray, np.ndarray]:
    kp = np.zeros((1, t, v, 2), np.float32)
    sc = np.zeros((1, t, v), np.float32)
    for i in present:
        kp[0, i] = [[i * 2.0, 100.0 + 50 * j] for j in range(v)]
        sc[0, i] = 0.8
    return kp, sc


def test_fill_gaps_exact_and_bounded() -> None:
    kp, sc = _track(12, [1, 2, 5, 11])  # gaps: 3-4 (2 frames), 6-10 (5 frames); 0 before the track
    k, s = fill_gaps(kp, sc, max_gap=3)
    assert np.array_equal(k[0, [3, 4], 0, 0], [6.0, 8.0])  # on the line from frame 2 (x=4) to frame 5 (x=10)
    assert (s[0, [3, 4]] == 0.8).all()
    assert (s[0, 6:11] == 0).all() and (k[0, 6:11] == 0).all()  # longer than max_gap: left empty
    assert (s[0, 0] == 0).all()  # before the first sighting: left empty
    assert np.array_equal(k[0, [1, 2, 5, 11]], kp[0, [1, 2, 5, 11]])  # seen frames unchanged
    k0, s0 = fill_gaps(kp, sc, max_gap=0)
    assert np.array_equal(k0, kp) and np.array_equal(s0, sc)
    assert (sc[0, 3] == 0).all()  # the input is not modified


def test_one_euro_still_joint_jitter_is_reduced_and_constant_kept() -> None:
    rng = np.random.default_rng(0)
    kp, sc = _track(90, list(range(90)))
    kp[..., 0] = 50.0  # still
    const = one_euro(kp, sc, fps=30)
    assert np.allclose(const, kp)
    noisy = kp + rng.normal(0, 2.0, kp.shape).astype(np.float32)
    smooth = one_euro(noisy, sc, fps=30)
    assert smooth[0, 10:, :, 0].std() < 0.5 * noisy[0, 10:, :, 0].std()


def test_one_euro_follows_fast_motion_with_beta() -> None:
    kp, sc = _track(60, list(range(60)))
    kp[0, 30:, :, 0] += 100.0  # a joint jumps by one person height
    slow = one_euro(kp, sc, fps=30, beta=0.0)
    fast = one_euro(kp, sc, fps=30, beta=5.0)
    lag = lambda k: np.abs(k[0, 32, 0, 0] - kp[0, 32, 0, 0])  # noqa: E731
    assert lag(fast) < lag(slow)


def test_one_euro_restarts_after_a_gap() -> None:
    kp, sc = _track(20, [*range(0, 8), *range(12, 20)])
    kp[0, 12:, :, 0] += 500.0  # reappears far away: no smoothing across the gap
    out = one_euro(kp, sc, fps=30)
    assert np.array_equal(out[0, 12], kp[0, 12])
    assert (out[0, 8:12] == 0).all()
    with pytest.raises(ValueError, match="fps"):
        one_euro(kp, sc, fps=0)
