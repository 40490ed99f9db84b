"""Keypoint buffers of tracks (skelact.pose.buffers): a ring of the last frames, a growing buffer."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import STICK_OFFSETS, stick_person

from skelact.pose.buffers import TrackBuffer


def test_ring_buffer_keeps_the_last_frames_and_fills_gaps() -> None:
    buf = TrackBuffer(17, capacity=3)
    for t in (5, 6, 7, 8):
        buf.append(t, *stick_person(t, 0)[:2], person_score=0.5)
    kp, sc = buf.arrays()
    assert (buf.first, buf.last, len(buf)) == (6, 8, 3) and buf.seen == 4 and buf.total_score == 2.0
    np.testing.assert_array_equal(kp[:, 0, 0], STICK_OFFSETS[0, 0] + np.array([6, 7, 8], np.float32))
    buf.append(10, *stick_person(10, 0)[:2])  # frame 9 unseen: zeros (a missing pose)
    kp, sc = buf.arrays()
    assert (buf.first, buf.last) == (8, 10) and not kp[1].any() and not sc[1].any() and sc[2].all()
    assert buf.arrays(last=1)[0].shape == (1, 17, 2)
    buf.append(20, *stick_person(20, 0)[:2])  # a gap longer than the ring: only the new frame is left
    assert (buf.first, len(buf)) == (20, 1)
    with pytest.raises(ValueError, match="not after"):
        buf.append(20, *stick_person(20, 0)[:2])


def test_growing_buffer_holds_every_frame() -> None:
    buf = TrackBuffer(17)
    for t in range(3, 203):
        buf.append(t, *stick_person(t, 2 * t)[:2])
    kp, _ = buf.arrays()
    assert kp.shape == (200, 17, 2) and buf.first == 3
    np.testing.assert_array_equal(kp[:, 0], STICK_OFFSETS[0] + np.stack([np.arange(3, 203), 2 * np.arange(3, 203)], -1))
