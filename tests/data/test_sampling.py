"""Exact-value tests of temporal sampling and person padding."""

from __future__ import annotations

import numpy as np
import pytest

from skelact.data.sampling import pad_persons, uniform_sample_indices


def test_test_mode_takes_segment_centres() -> None:
    inds = uniform_sample_indices(20, 10, train=False)
    np.testing.assert_array_equal(inds, np.arange(1, 20, 2))
    assert inds.dtype == np.int64


def test_test_mode_centres_uneven() -> None:
    # floor((i + 0.5) * 7 / 3) for i = 0, 1, 2
    np.testing.assert_array_equal(uniform_sample_indices(7, 3, train=False), [1, 3, 5])


def test_train_one_frame_per_segment() -> None:
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(50):
        inds = uniform_sample_indices(20, 10, rng=rng)
        assert inds.shape == (10,)
        for i, x in enumerate(inds):
            assert x in (2 * i, 2 * i + 1)
        seen.add(tuple(inds))
    assert len(seen) > 1  # actually random


def test_short_clip_loops() -> None:
    np.testing.assert_array_equal(uniform_sample_indices(5, 10, train=False), [0, 1, 2, 3, 4] * 2)
    rng = np.random.default_rng(1)
    for _ in range(20):
        inds = uniform_sample_indices(5, 10, rng=rng)
        # consecutive modulo T from a random start
        np.testing.assert_array_equal(inds, (inds[0] + np.arange(10)) % 5)


@pytest.mark.parametrize("t", [10, 11, 15, 19, 20, 37, 300])
def test_monotone_and_in_range(t: int) -> None:
    rng = np.random.default_rng(t)
    for train in (True, False):
        inds = uniform_sample_indices(t, 10, num_clips=3, train=train, rng=rng)
        assert inds.shape == (30,)
        assert inds.min() >= 0 and inds.max() < t
        for view in inds.reshape(3, 10):
            assert np.all(np.diff(view) >= 0)


def test_between_one_and_two_frames_per_segment_keeps_runs() -> None:
    # T in [L, 2L): strictly increasing, each step 1 or 2 (single skips), first <= 1, last >= T-2.
    rng = np.random.default_rng(0)
    for _ in range(50):
        inds = uniform_sample_indices(15, 10, rng=rng)
        steps = np.diff(inds)
        assert set(steps.tolist()) <= {1, 2}
        assert steps.sum() + 10 - 1 <= 14 + 9  # stays in range
        assert (steps == 2).sum() <= 5
        assert inds[0] <= 1 and inds[-1] >= 13
    np.testing.assert_array_equal(uniform_sample_indices(10, 10, rng=rng), np.arange(10))


def test_test_views_reproducible_and_distinct() -> None:
    a = uniform_sample_indices(100, 10, num_clips=4, train=False)
    b = uniform_sample_indices(100, 10, num_clips=4, train=False, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)  # test mode ignores rng
    views = a.reshape(4, 10)
    np.testing.assert_array_equal(views[0], uniform_sample_indices(100, 10, train=False))
    assert len({tuple(v) for v in views}) == 4
    c = uniform_sample_indices(100, 10, num_clips=4, train=False, seed=1)
    assert not np.array_equal(a, c)


def test_short_clip_test_views_start_spread() -> None:
    inds = uniform_sample_indices(5, 10, num_clips=2, train=False).reshape(2, 10)
    np.testing.assert_array_equal(inds[0], [0, 1, 2, 3, 4] * 2)
    np.testing.assert_array_equal(inds[1], (2 + np.arange(10)) % 5)  # start = 1 * 5 // 2


def test_train_reproducible_with_seeded_rng() -> None:
    a = uniform_sample_indices(50, 8, 2, rng=np.random.default_rng(3))
    b = uniform_sample_indices(50, 8, 2, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        uniform_sample_indices(0, 10)
    with pytest.raises(ValueError):
        uniform_sample_indices(10, 0)


def test_pad_persons() -> None:
    kp = np.arange(1 * 2 * 3 * 2, dtype=np.float32).reshape(1, 2, 3, 2) + 1
    sc = np.ones((1, 2, 3), dtype=np.float32)
    pk, ps = pad_persons(kp, sc, 3)
    assert pk.shape == (3, 2, 3, 2) and ps.shape == (3, 2, 3)
    np.testing.assert_array_equal(pk[0], kp[0])
    assert not pk[1:].any() and not ps[1:].any()
    np.testing.assert_array_equal(ps[0], 1)


def test_pad_persons_truncates_keeping_first() -> None:
    kp = np.stack([np.full((4, 2, 3), i, dtype=np.float32) for i in range(3)])
    pk, ps = pad_persons(kp, None, 2)
    assert ps is None
    np.testing.assert_array_equal(pk[:, 0, 0, 0], [0, 1])
    pk, _ = pad_persons(kp, None, 3)
    np.testing.assert_array_equal(pk, kp)
