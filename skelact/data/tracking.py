"""Per-frame pose detections (`PoseResult`) and their online multi-person tracking (`PoseTracker`).

Each frame's people are matched to the live tracks with the Hungarian algorithm on a cost that
mixes box overlap and keypoint distance; unmatched people start new tracks and a track ends after
``max_age`` frames without a match. At the end, fragments of one person (lost for longer than
``max_age``, then found again where they were last seen) are chained into a :class:`Track` each,
and :func:`most_confident` — the one rule, for video extraction, ``predict``'s scene and the
OpenPose converter — makes the ``max_persons`` most confident tracks the rows of a PYSKL
``keypoint`` array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["NUM_JOINTS", "PoseResult", "PoseTracker", "Track", "most_confident", "box_iou", "keypoint_distance"]

NUM_JOINTS = 17  # COCO-17 order, the same as skelact's ``coco17`` layout (MoveNet's; OpenPose's is mapped to it)


@dataclass
class PoseResult:
    """People found in one frame, in original-frame pixels, most confident first.

    Attributes:
        keypoints: float32 [P, 17, 2], x, y.
        scores: float32 [P, 17] joint confidences.
        boxes: float32 [P, 4] x1, y1, x2, y2.
        person_scores: float32 [P].
    """

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    person_scores: np.ndarray

    def __len__(self) -> int:
        return len(self.person_scores)

    @classmethod
    def empty(cls) -> PoseResult:
        return cls(np.zeros((0, NUM_JOINTS, 2), np.float32), np.zeros((0, NUM_JOINTS), np.float32),
                   np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


@dataclass
class Track:
    """One subject's poses over a span of frames, ready to classify.

    Attributes:
        person: The person's number (1, 2, ... by first appearance), or None for the whole scene.
        first: Frame index of the first frame.
        keypoint: float32 [M, T, V, 2] pixels; M = 1 for a person, the tracked people for a scene.
        score: float32 [M, T, V].
        total_score: Summed person score (how confidently and how long the subject was seen).
    """

    person: int | None
    first: int
    keypoint: np.ndarray
    score: np.ndarray
    total_score: float = 0.0

    @property
    def frames(self) -> int:
        return int(self.keypoint.shape[1])

    @property
    def last(self) -> int:
        return self.first + self.frames - 1


def most_confident(tracks: Sequence[Track], num_frames: int, max_persons: int,
                   num_joints: int = NUM_JOINTS) -> Track:
    """The scene of a video: its ``max_persons`` tracks (M = 1 each) with the highest summed person score.

    The one choice of "the people of a video": extraction, ``predict``'s scene and the OpenPose
    converter all keep these rows.

    Args:
        tracks: Whole tracks of one person each.
        num_frames: Frames T of the video.
        max_persons: Rows kept.
        num_joints: Joints V (used when there is no track).

    Returns:
        A :class:`Track` from frame 0 (``person`` None) with keypoint float32 [M, T, V, 2] and score
        float32 [M, T, V], zero where a track is absent, rows by total score (ties: the earlier
        track); ``M = min(max_persons, tracks)``, which is 0 when nobody was ever detected.
    """
    if max_persons < 1:
        raise ValueError(f"max_persons must be at least 1, got {max_persons}")
    best = sorted(tracks, key=lambda tr: (-tr.total_score, tr.first))[:max_persons]
    v = int(best[0].keypoint.shape[2]) if best else num_joints
    keypoint = np.zeros((len(best), num_frames, v, 2), np.float32)
    score = np.zeros((len(best), num_frames, v), np.float32)
    for m, tr in enumerate(best):
        keypoint[m, tr.first: tr.last + 1] = tr.keypoint[0]
        score[m, tr.first: tr.last + 1] = tr.score[0]
    return Track(None, 0, keypoint, score, sum(tr.total_score for tr in best))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a [N, 4] and b [K, 4] (x1, y1, x2, y2) → [N, K]."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def keypoint_distance(kp_a: np.ndarray, sc_a: np.ndarray, kp_b: np.ndarray, sc_b: np.ndarray,
                      scale_a: np.ndarray, min_score: float = 0.1) -> np.ndarray:
    """Mean distance between the joints of N and K people, relative to the size of the first.

    Args:
        kp_a: [N, V, 2] keypoints; sc_a: [N, V] scores.
        kp_b: [K, V, 2]; sc_b: [K, V].
        scale_a: [N] person size (box diagonal) of each ``a``, the distance unit.
        min_score: Joints below this score in either person are ignored.

    Returns:
        [N, K] distances; 1.0 where the two share no confident joint.
    """
    d = np.linalg.norm(kp_a[:, None] - kp_b[None, :], axis=-1)  # [N, K, V]
    w = ((sc_a[:, None] > min_score) & (sc_b[None, :] > min_score)).astype(np.float64)
    n = w.sum(-1)
    mean = (d * w).sum(-1) / np.maximum(n, 1)
    return np.where(n > 0, mean / np.maximum(scale_a[:, None], 1e-6), 1.0)


@dataclass
class _Track:
    frames: list[int] = field(default_factory=list)
    keypoints: list[np.ndarray] = field(default_factory=list)  # [V, 2] each
    scores: list[np.ndarray] = field(default_factory=list)  # [V] each
    boxes: list[np.ndarray] = field(default_factory=list)  # [4] each
    total_score: float = 0.0

    @property
    def box(self) -> np.ndarray:
        return self.boxes[-1]

    def add(self, t: int, kp: np.ndarray, sc: np.ndarray, box: np.ndarray, person_score: float) -> None:
        self.frames.append(t)
        self.keypoints.append(kp)
        self.scores.append(sc)
        self.boxes.append(box)
        self.total_score += person_score

    def extend(self, other: _Track) -> None:
        """Append a track that starts after this one ends."""
        self.frames += other.frames
        self.keypoints += other.keypoints
        self.scores += other.scores
        self.boxes += other.boxes
        self.total_score += other.total_score


class PoseTracker:
    """Links per-frame detections into person tracks.

    Args:
        max_age: A track that has not been matched for this many frames ends.
        iou_weight: Weight of ``1 - IoU`` in the cost; the keypoint distance gets the rest.
        max_cost: Pairs costlier than this are not matched (the person starts a new track).
        join_gap: At the end, a track that starts at most this many frames after another ends, and
            matches where that one was last seen (cost <= ``max_cost``), continues it; 0 turns
            joining off.
        num_joints: Joints V of every detection (17 for MoveNet's COCO-17; OpenPose gives 18 or 25).

    Example:
        >>> tracker = PoseTracker()
        >>> for t, frame in enumerate(frames):
        ...     tracker.update(t, model(frame))
        >>> keypoint, score = tracker.arrays(num_frames=t + 1, max_persons=2)
    """

    def __init__(self, max_age: int = 15, iou_weight: float = 0.5, max_cost: float = 0.7,
                 join_gap: int = 90, num_joints: int = 17) -> None:
        self.max_age = max_age
        self.iou_weight = iou_weight
        self.max_cost = max_cost
        self.join_gap = join_gap
        self.num_joints = num_joints
        self.tracks: list[_Track] = []
        self._live: list[int] = []  # indices into self.tracks that can still be matched

    def update(self, t: int, people: PoseResult) -> list[int]:
        """Add frame ``t``'s detections; return the track index assigned to each person.

        Raises:
            ValueError: The detections do not have ``num_joints`` joints.
        """
        if len(people) and people.keypoints.shape[1:] != (self.num_joints, 2):
            raise ValueError(f"detections have keypoints {list(people.keypoints.shape)}, the tracker expects "
                             f"[P, {self.num_joints}, 2]")
        self._live = self.live_tracks(t)
        assigned = [-1] * len(people)
        if self._live and len(people):
            live = [self.tracks[i] for i in self._live]
            cost = self._cost(np.stack([tr.box for tr in live]), np.stack([tr.keypoints[-1] for tr in live]),
                              np.stack([tr.scores[-1] for tr in live]), people.boxes, people.keypoints,
                              people.scores)  # [N live, K people]
            for r, c in zip(*linear_sum_assignment(cost), strict=True):
                if cost[r, c] <= self.max_cost:
                    assigned[c] = self._live[r]
        for k in range(len(people)):
            if assigned[k] < 0:
                self.tracks.append(_Track())
                assigned[k] = len(self.tracks) - 1
                self._live.append(assigned[k])
            self.tracks[assigned[k]].add(t, people.keypoints[k], people.scores[k], people.boxes[k],
                                         float(people.person_scores[k]))
        return assigned

    def _cost(self, boxes_a: np.ndarray, kps_a: np.ndarray, scs_a: np.ndarray, boxes_b: np.ndarray,
              kps_b: np.ndarray, scs_b: np.ndarray) -> np.ndarray:
        """Matching cost [N, K] of N people ``a`` (boxes [N, 4], keypoints [N, V, 2], scores [N, V]) to K ``b``."""
        diag = np.hypot(boxes_a[:, 2] - boxes_a[:, 0], boxes_a[:, 3] - boxes_a[:, 1])
        iou = box_iou(boxes_a, boxes_b)
        dist = keypoint_distance(kps_a, scs_a, kps_b, scs_b, diag)
        return self.iou_weight * (1 - iou) + (1 - self.iou_weight) * np.minimum(dist, 1.0)

    def chains(self) -> list[list[int]]:
        """Track indices grouped by person: each chain lists the fragments of one person in time order.

        A track that starts at most ``join_gap`` frames after another ends, and matches where that
        one was last seen (cost <= ``max_cost``), continues it. Greedy on the cost between a
        track's last pose and a later track's first pose, cheapest first (ties: earlier track
        first); each track gets at most one successor and one predecessor. Chains are ordered by
        their first track's index.

        Only pairs within ``join_gap`` frames are costed (:meth:`_join_candidates`), in blocks of
        bounded size: memory grows with the tracks that overlap in time, not the square of all
        tracks of a long video.
        """
        n = len(self.tracks)
        if self.join_gap <= 0 or n < 2:
            return [[i] for i in range(n)]
        first, second, cost = self._join_candidates()
        succ: dict[int, int] = {}
        pred: set[int] = set()
        for k in np.lexsort((second, first, cost)):  # by cost, then i, then j
            i, j = int(first[k]), int(second[k])
            if i not in succ and j not in pred:
                succ[int(i)] = int(j)
                pred.add(int(j))
        chains = []
        for i in range(n):
            if i in pred:
                continue  # continues another track
            chain = [i]
            while chain[-1] in succ:
                chain.append(succ[chain[-1]])
            chains.append(chain)
        return chains

    # Pairs costed at a time when joining: blocks of ends x starts, each a few MB at V = 25.
    _JOIN_ROWS = 128
    _JOIN_COLS = 512

    def _join_candidates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every pair (i, j) where track j starts 1..``join_gap`` frames after track i ends and the
        cost of i's last pose to j's first is at most ``max_cost``: (i, j, cost), unsorted.

        A sweep over time: tracks in order of their end, later tracks in order of their start; a
        block of ends is costed only against the starts inside its window.
        """
        tracks = self.tracks
        ends = np.array([t.frames[-1] for t in tracks])
        starts = np.array([t.frames[0] for t in tracks])
        last = (np.stack([t.boxes[-1] for t in tracks]), np.stack([t.keypoints[-1] for t in tracks]),
                np.stack([t.scores[-1] for t in tracks]))
        head = (np.stack([t.boxes[0] for t in tracks]), np.stack([t.keypoints[0] for t in tracks]),
                np.stack([t.scores[0] for t in tracks]))
        by_end = np.argsort(ends, kind="stable")
        by_start = np.argsort(starts, kind="stable")
        sorted_starts = starts[by_start]
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for b in range(0, len(tracks), self._JOIN_ROWS):
            rows = by_end[b:b + self._JOIN_ROWS]
            lo = np.searchsorted(sorted_starts, ends[rows].min(), side="right")
            hi = np.searchsorted(sorted_starts, ends[rows].max() + self.join_gap, side="right")
            for c in range(lo, hi, self._JOIN_COLS):
                cols = by_start[c:min(hi, c + self._JOIN_COLS)]
                cost = self._cost(*(a[rows] for a in last), *(a[cols] for a in head))
                gap = starts[cols][None, :] - ends[rows][:, None]  # frames from the end of i to the start of j
                r, k = np.nonzero((gap > 0) & (gap <= self.join_gap) & (cost <= self.max_cost))
                found.append((rows[r], cols[k], cost[r, k]))
        if not found:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        return tuple(np.concatenate(x) for x in zip(*found, strict=True))  # type: ignore[return-value]

    def joined_tracks(self) -> list[_Track]:
        """The tracks with fragments of one person chained (see :meth:`chains`); ``self.tracks`` is kept."""
        tracks = [_Track(list(t.frames), list(t.keypoints), list(t.scores), list(t.boxes), t.total_score)
                  for t in self.tracks]
        joined = []
        for chain in self.chains():
            head = tracks[chain[0]]
            for k in chain[1:]:
                head.extend(tracks[k])
            joined.append(head)
        return joined

    def joined(self) -> list[Track]:
        """The (joined) tracks as :class:`Track` s (M = 1), in chain order; frames without the person hold zeros."""
        out = []
        for tr in self.joined_tracks():
            first = tr.frames[0]
            idx = np.asarray(tr.frames) - first
            kp = np.zeros((1, int(idx[-1]) + 1, self.num_joints, 2), np.float32)
            sc = np.zeros(kp.shape[:3], np.float32)
            kp[0, idx] = np.stack(tr.keypoints)
            sc[0, idx] = np.stack(tr.scores)
            out.append(Track(None, first, kp, sc, tr.total_score))
        return out

    def arrays(self, num_frames: int, max_persons: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """The ``max_persons`` most confident (joined) tracks as PYSKL arrays (see :func:`most_confident`)."""
        scene = most_confident(self.joined(), num_frames, max_persons, self.num_joints)
        return scene.keypoint, scene.score

    # ----------------------------------------------------------------------------------------
    # Streaming (skelact/stream/): the caller keeps each track's poses itself, so the tracker
    # needs only what matching and joining read.

    def live_tracks(self, t: int) -> list[int]:
        """Indices of the tracks that frame ``t`` can still be matched to (seen within ``max_age`` frames)."""
        return [i for i in self._live if t - self.tracks[i].frames[-1] <= self.max_age]

    def prune(self) -> None:
        """Forget every live track's poses but its first and its last.

        :meth:`update` matches on the last pose and :meth:`chains` joins on the first and last, so
        both work as before; :meth:`arrays` and :meth:`joined_tracks` then see only those two
        poses. Called after each :meth:`update`, this keeps the tracker's memory at a few hundred
        bytes per track, however long the video.
        """
        for i in self._live:
            tr = self.tracks[i]
            if len(tr.frames) > 2:
                for seq in (tr.frames, tr.keypoints, tr.scores, tr.boxes):
                    del seq[1:-1]
