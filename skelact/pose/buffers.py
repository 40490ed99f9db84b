"""Per-track keypoint buffers: what the stream keeps of each person instead of the frames.

A :class:`TrackBuffer` holds one track's poses densely in time, from the frame it started: a
frame where the tracker did not see the person (a gap shorter than the tracker's ``max_age``)
holds zeros, which :func:`skelact.skeleton.joint_present` reads as missing joints. With a
``capacity`` it is a ring buffer of the last ``capacity`` frames (``skelact live``); without one it
grows (an offline pass keeps whole tracks: 17 joints x 3 float32 = 204 bytes a frame).
:class:`TrackBuffers` keeps one buffer per tracker track id.
"""

from __future__ import annotations

import numpy as np

from skelact.data.tracking import PoseResult, Track

__all__ = ["TrackBuffer", "TrackBuffers"]


class TrackBuffer:
    """Poses of one track, frame by frame.

    Args:
        num_joints: Joints V of a pose.
        capacity: Keep only the last ``capacity`` frames (a ring buffer); ``None`` keeps all.
    """

    def __init__(self, num_joints: int, capacity: int | None = None) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        size = capacity if capacity is not None else 64
        self._kp = np.zeros((size, num_joints, 2), np.float32)  # [slots, V, 2] pixels
        self._sc = np.zeros((size, num_joints), np.float32)  # [slots, V]
        self._head = 0  # slot of the oldest stored frame
        self._n = 0  # frames stored
        self.first = 0  # frame index of the oldest stored frame
        self.total_score = 0.0  # summed person score, to rank tracks
        self.seen = 0  # frames in which the person was detected

    def __len__(self) -> int:
        return self._n

    @property
    def last(self) -> int:
        """Index of the newest stored frame (``first - 1`` when empty)."""
        return self.first + self._n - 1

    def _push(self, kp: np.ndarray | None, sc: np.ndarray | None) -> None:
        size = len(self._kp)
        if self._n == size:
            if self.capacity is None:  # grow: unroll the ring into a buffer twice the size
                order = (self._head + np.arange(size)) % size
                self._kp = np.concatenate([self._kp[order], np.zeros_like(self._kp)])
                self._sc = np.concatenate([self._sc[order], np.zeros_like(self._sc)])
                self._head, size = 0, 2 * size
            else:  # full ring: overwrite the oldest
                self._head = (self._head + 1) % size
                self.first += 1
                self._n -= 1
        slot = (self._head + self._n) % size
        if kp is None:
            self._kp[slot], self._sc[slot] = 0.0, 0.0
        else:
            self._kp[slot], self._sc[slot] = kp, sc
        self._n += 1

    def append(self, t: int, kp: np.ndarray, sc: np.ndarray, person_score: float = 0.0) -> None:
        """Add the pose (keypoints [V, 2], scores [V]) seen at frame ``t``; frames skipped since the last become zeros.

        Raises:
            ValueError: ``t`` is not after the newest stored frame.
        """
        if self._n == 0:
            self.first = t
        elif t <= self.last:
            raise ValueError(f"frame {t} is not after the track's last frame {self.last}")
        else:
            gap = t - self.last - 1
            if self.capacity is not None and gap >= self.capacity:  # the whole ring would be zeros
                self._head, self._n, self.first = 0, 0, t
            else:
                for _ in range(gap):
                    self._push(None, None)
        self._push(kp, sc)
        self.total_score += float(person_score)
        self.seen += 1

    def arrays(self, last: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The stored frames in time order: keypoints float32 [T, V, 2] and scores [T, V] (copies).

        Args:
            last: Only the ``last`` newest frames.
        """
        n = self._n if last is None else min(last, self._n)
        order = (self._head + np.arange(self._n - n, self._n)) % len(self._kp)
        return self._kp[order], self._sc[order]


class TrackBuffers:
    """One :class:`TrackBuffer` per tracker track id.

    Args:
        num_joints: Joints V of a pose.
        capacity: Ring size of each buffer (None: keep whole tracks).
    """

    def __init__(self, num_joints: int, capacity: int | None = None) -> None:
        self.num_joints = num_joints
        self.capacity = capacity
        self.buffers: dict[int, TrackBuffer] = {}

    def add(self, t: int, ids: list[int], people: PoseResult) -> None:
        """Store frame ``t``'s people under the track ids the tracker gave them."""
        for k, i in enumerate(ids):
            buf = self.buffers.get(i)
            if buf is None:
                buf = self.buffers[i] = TrackBuffer(self.num_joints, self.capacity)
            buf.append(t, people.keypoints[k], people.scores[k], float(people.person_scores[k]))

    def drop(self, keep: list[int]) -> None:
        """Forget every buffer whose track id is not in ``keep`` (tracks that ended)."""
        keep_set = set(keep)
        for i in [i for i in self.buffers if i not in keep_set]:
            del self.buffers[i]

    def joined(self, chains: list[list[int]]) -> list[Track]:
        """Whole tracks with fragments of one person chained end to end (see ``PoseTracker.chains``).

        Args:
            chains: Track ids of one person each, in time order.

        Returns:
            One :class:`Track` per chain (M = 1), numbered 1, 2, ... by first frame; the frames
            between two fragments hold zeros.
        """
        out = []
        for chain in chains:
            parts = [self.buffers[i] for i in chain if i in self.buffers and len(self.buffers[i])]
            if not parts:
                continue
            first, last = parts[0].first, parts[-1].last
            kp = np.zeros((1, last - first + 1, self.num_joints, 2), np.float32)
            sc = np.zeros((1, last - first + 1, self.num_joints), np.float32)
            for b in parts:
                k, s = b.arrays()
                kp[0, b.first - first: b.last - first + 1] = k
                sc[0, b.first - first: b.last - first + 1] = s
            out.append(Track(None, first, kp, sc, sum(b.total_score for b in parts)))
        out.sort(key=lambda tr: (tr.first, -tr.total_score))
        for n, tr in enumerate(out, 1):
            tr.person = n
        return out
