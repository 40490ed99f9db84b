"""People of every size in a frame: find them over the whole frame and over tiles every few frames,
then pose each person on a crop of their own, every frame (top-down, as the two-stage pipelines do).

MoveNet MultiPose run once on a whole frame (``MoveNet.__call__``) sees a person well only when they
are at least ~70 px tall in its input, and returns at most 6 people a call: at input 256 a 720p frame
shrinks people 2.8×, so anyone under ~200 px is lost, and a crowd is cut at 6. :class:`TopDownPose`
keeps MoveNet's one-stage model but changes how it is fed:

1. **Detection** (every ``detect_every`` frames, from the first): the whole frame at the model's input
   size (big people), plus tiles of the frame at the scale that makes the smallest person of interest
   (``min_height`` of the frame height) ~64 px tall in the input. A call that returns the model's cap
   of 6 people is run again with the people already followed blacked out, or split into four
   overlapping parts, so there is no cap on the people in a frame. Detections of one person from
   several tiles are merged; people already followed keep their crops.
2. **Crops** (every frame): each person followed is posed on a square crop around where they were in
   the previous frame (moved by their recent motion), at ``crop_size`` input: a 100-px person fills
   most of a 128-px input. Followed people are paired with everyone found in any crop (Hungarian on
   joint distance); whoever is missed is looked for once more in the whole frame. A person not found
   for ``max_missed`` frames is let go until the next detection finds them again.

The result per frame is one :class:`PoseResult`, like ``MoveNet.__call__``'s, so the tracker and
everything after it are unchanged. The object remembers the previous frame: call :meth:`reset`
between videos.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from skelact.data.tracking import PoseResult, box_iou
from skelact.pose.movenet import MoveNet, check_frame

__all__ = ["TopDownPose", "MAX_CROP_WORKERS", "detection_plan", "merge_people"]

_CAP = 6  # people per MoveNet call
# The smallest person of interest is posed at about this height in the network input (MoveNet found
# 31 of 32 people 56 px tall in 720p mosaic tiles at 48; 64 leaves room).
_TARGET_PX = 64
_JOINT_SEEN = 0.2  # joint score above which a joint counts as placed (for merging and boxes)
#: Default ceiling of crop workers: a frame rarely has more people to pose than this, and each worker holds a
#: copy of the model (a 64-core host would otherwise load 64).
MAX_CROP_WORKERS = 8
_MAX_STEP = 0.3  # a followed person moves less than this (mean joint distance / height) from one frame to the next

Region = tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels


def _ceil32(v: float) -> int:
    return max(32, -(-int(math.ceil(v)) // 32) * 32)


@dataclass(frozen=True)
class _Pass:
    """One MoveNet call of a detection: a region of the frame at a scale (input px per frame px)."""

    region: Region
    scale: float

    def input_hw(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.region
        return _ceil32((y1 - y0) * self.scale), _ceil32((x1 - x0) * self.scale)

    def split(self, overlap: float) -> list[_Pass]:
        """Four parts (2 x 2) overlapping by ``overlap`` frame pixels, at the same scale."""
        x0, y0, x1, y1 = self.region
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        h = overlap / 2
        return [_Pass((a, b, c, d), self.scale) for a, c in ((x0, mx + h), (mx - h, x1))
                for b, d in ((y0, my + h), (my - h, y1))]


def _spans(length: float, window: float, overlap: float) -> list[tuple[float, float]]:
    """Windows of ``window`` px covering ``[0, length)``, evenly spaced, neighbours overlapping by at least
    ``overlap``."""
    if window >= length:
        return [(0.0, float(length))]
    n = max(2, math.ceil((length - overlap) / max(window - overlap, 1.0)))
    step = (length - window) / (n - 1)
    return [(i * step, i * step + window) for i in range(n)]


def detection_plan(h: int, w: int, full_input: int = 256, tile_input: int = 384,
                   min_height: float = 1 / 8) -> tuple[_Pass, list[_Pass], float]:
    """The MoveNet calls of one detection on an h x w frame: the whole frame, the tiles, and their overlap.

    The tiles' scale makes a person ``min_height`` of the frame tall ``_TARGET_PX`` px in the input,
    never enlarging the frame (MoveNet loses people in enlarged images). No tiles when the whole-frame
    call already has that scale; one call over the whole frame at that scale when it fits in a tile.

    Example:
        >>> full, tiles, overlap = detection_plan(720, 1280)
        >>> full.input_hw(), len(tiles), tiles[0].input_hw()
        ((160, 256), 6, (384, 384))
        >>> len(detection_plan(360, 640, min_height=1 / 4)[1]), len(detection_plan(360, 640, min_height=1 / 2)[1])
        (1, 0)
    """
    full_scale = full_input / max(h, w)
    full = _Pass((0.0, 0.0, float(w), float(h)), full_scale)
    smallest = max(min_height * h, 1.0)
    scale = min(1.0, _TARGET_PX / smallest)
    overlap = 1.2 * smallest  # a whole smallest person fits in the overlap of two neighbours
    if scale <= full_scale * 1.1:
        return full, [], overlap
    if max(h, w) * scale <= tile_input * 1.25:
        return full, [_Pass((0.0, 0.0, float(w), float(h)), scale)], overlap
    side = tile_input / scale
    tiles = [_Pass((x0, y0, x1, y1), scale) for y0, y1 in _spans(h, side, overlap)
             for x0, x1 in _spans(w, side, overlap)]
    return full, tiles, overlap


def _heights(people: PoseResult) -> np.ndarray:
    """Box heights [P] (at least 1 px)."""
    return np.maximum(people.boxes[:, 3] - people.boxes[:, 1], 1.0)


def _same_person(a: PoseResult, b: PoseResult, max_distance: float = 0.1, fragments: bool = True) -> np.ndarray:
    """[A, B] whether person a_i and b_j are one person.

    One person if their joints placed in both lie within ``max_distance`` of a's height on average (at
    least 3 such joints; two detections of one person agree within a few percent, two people hugging
    are 15-30 % apart); or their boxes are nearly the same (IoU above 0.8: the same body with its left
    and right joints swapped); or the box of one with fewer than 12 joints placed lies mostly (80 %)
    inside the other's (a fragment of a body, e.g. cut by a tile's edge, its joints misplaced; only with
    ``fragments``: a followed person half hidden behind another is no fragment).
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), bool)
    d = np.linalg.norm(a.keypoints[:, None] - b.keypoints[None], axis=-1)  # [A, B, V]
    seen_a, seen_b = a.scores > _JOINT_SEEN, b.scores > _JOINT_SEEN
    both = seen_a[:, None] & seen_b[None]
    n = both.sum(-1)
    mean = (d * both).sum(-1) / np.maximum(n, 1) / _heights(a)[:, None]
    ax, bx = a.boxes[:, None], b.boxes[None]
    inter = (np.clip(np.minimum(ax[..., 2], bx[..., 2]) - np.maximum(ax[..., 0], bx[..., 0]), 0, None)
             * np.clip(np.minimum(ax[..., 3], bx[..., 3]) - np.maximum(ax[..., 1], bx[..., 1]), 0, None))
    area_a = np.maximum((ax[..., 2] - ax[..., 0]) * (ax[..., 3] - ax[..., 1]), 1.0)
    area_b = np.maximum((bx[..., 2] - bx[..., 0]) * (bx[..., 3] - bx[..., 1]), 1.0)
    iou = inter / (area_a + area_b - inter)
    smaller_inside = inter / np.minimum(area_a, area_b) > 0.8
    fragment = np.minimum(seen_a.sum(-1)[:, None], seen_b.sum(-1)[None]) < 12
    joints_agree = (n >= 3) & (mean < max_distance)
    return joints_agree | (iou > 0.8) | (smaller_inside & ((fragment & fragments) | (n < 3)))


def _inside(boxes: np.ndarray, region: Region) -> np.ndarray:
    """[K] whether each box's centre lies in the region."""
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return (cx >= region[0]) & (cx < region[2]) & (cy >= region[1]) & (cy < region[3])


def _take(people: PoseResult, idx: np.ndarray | list[int]) -> PoseResult:
    idx = np.asarray(idx, int)
    return PoseResult(people.keypoints[idx], people.scores[idx], people.boxes[idx], people.person_scores[idx])


def _concat(parts: list[PoseResult]) -> PoseResult:
    parts = [p for p in parts if len(p)]
    if not parts:
        return PoseResult.empty()
    return PoseResult(np.concatenate([p.keypoints for p in parts]), np.concatenate([p.scores for p in parts]),
                      np.concatenate([p.boxes for p in parts]), np.concatenate([p.person_scores for p in parts]))


def merge_people(people: PoseResult, priority: np.ndarray | None = None) -> PoseResult:
    """One entry per person: of detections that are one person (see ``_same_person``), the one with the
    highest ``priority`` (default: person score) is kept."""
    if len(people) < 2:
        return people
    priority = people.person_scores if priority is None else priority
    order = np.argsort(-priority, kind="stable")
    people = _take(people, order)
    same = _same_person(people, people)
    kept: list[int] = []
    for i in range(len(people)):
        if not any(same[i, j] or same[j, i] for j in kept):
            kept.append(i)
    return _take(people, kept)


@dataclass
class _Followed:
    """A person being posed on their own crop."""

    box: np.ndarray  # [4] x1, y1, x2, y2 where last seen
    keypoints: np.ndarray  # [17, 2] where last seen
    scores: np.ndarray  # [17]
    velocity: np.ndarray  # [2] box-centre motion per frame
    missed: int = 0  # frames in a row their crop found nobody

    @classmethod
    def first_seen(cls, people: PoseResult, i: int) -> _Followed:
        return cls(people.boxes[i].copy(), people.keypoints[i].copy(), people.scores[i].copy(),
                   np.zeros(2, np.float32))

    def expected(self) -> tuple[np.ndarray, np.ndarray]:
        """Box [4] and keypoints [17, 2] where they should be now (moved by their recent motion)."""
        return self.box + np.tile(self.velocity, 2), self.keypoints + self.velocity

    def distance(self, people: PoseResult) -> np.ndarray:
        """[P] how far each of ``people`` is from where this person should be: the mean distance of
        the joints placed in both over the person's height, or (fewer than 3 such joints) 1 - box IoU."""
        box, kp = self.expected()
        both = (people.scores > _JOINT_SEEN) & (self.scores > _JOINT_SEEN)[None]  # [P, 17]
        d = np.linalg.norm(people.keypoints - kp[None], axis=-1)  # [P, 17]
        n = both.sum(-1)
        mean = (d * both).sum(-1) / np.maximum(n, 1) / max(float(box[3] - box[1]), 1.0)
        return np.where(n >= 3, mean, 1.0 - box_iou(box[None], people.boxes)[0])


class TopDownPose:
    """Finds people of any size and number (see the module docstring); a stateful pose callable.

    Args:
        model: The loaded MoveNet; its ``input_size`` is the whole-frame detection's.
        detect_every: Frames between two detections (1: every frame). People who enter are found at
            the next detection; everyone else is followed on crops in between.
        crop_size: Network input side for a person's crop (a multiple of 32).
        min_height: The smallest person to find, as a fraction of the frame height; sets the tiles.
        tile_input: Network input side of one tile.
        margin: A crop's side over the person's larger box side (room for motion and limbs).
        max_missed: Frames a person may go unfound in their crop before they are let go.
        crop_workers: Crops posed side by side, each worker with a one-thread copy of the model
            (default: the model's ``num_threads``, at most :data:`MAX_CROP_WORKERS`; 1: in turn with the
            model itself). A 128-px crop keeps two threads of one interpreter half idle: on 2 cores the
            32-person mosaics ran 8 % faster this way (BENCHMARKS.md, crowds), with the same outputs.
    """

    def __init__(self, model: MoveNet, detect_every: int = 10, crop_size: int = 128, min_height: float = 1 / 8,
                 tile_input: int = 384, margin: float = 1.3, max_missed: int = 2,
                 crop_workers: int | None = None) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, got {detect_every}")
        if crop_size < 32 or crop_size % 32:
            raise ValueError(f"crop_size must be a positive multiple of 32, got {crop_size}")
        if not 0 < min_height <= 1:
            raise ValueError(f"min_height must be a fraction of the frame height in (0, 1], got {min_height}")
        self.model = model
        self.detect_every = detect_every
        self.crop_size = crop_size
        self.min_height = min_height
        self.tile_input = tile_input
        self.margin = margin
        self.max_missed = max_missed
        workers = min(MAX_CROP_WORKERS, getattr(model, "num_threads", 1)) if crop_workers is None else crop_workers
        if workers < 1:
            raise ValueError(f"crop_workers must be at least 1, got {workers}")
        self._crop_models: list[MoveNet] = [model] if workers == 1 else [
            MoveNet(model.model_path, model.input_size, model.min_person_score, num_threads=1, download=False)
            for _ in range(workers)]
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="skelact-crops") if workers > 1 else None
        self.reset()

    def reset(self) -> None:
        """Forget the people followed (call between videos)."""
        self._people: list[_Followed] = []
        self._frame = 0
        self._plan: tuple[tuple[int, int], tuple[_Pass, list[_Pass], float]] | None = None
        self.calls = 0  # MoveNet calls so far (for benchmarks)

    def __call__(self, frame: np.ndarray, bgr: bool = True) -> PoseResult:
        """The people in one frame (uint8 [H, W, 3], BGR unless ``bgr=False``), most confident first."""
        check_frame(frame)
        seen, followed = self._pose_crops(frame, bgr, self._people)
        missed = [p for p in self._people if p.missed]
        if self._frame % self.detect_every == 0:
            found = self._detect(frame, bgr, seen.boxes)
            if len(seen) and len(found):
                found = _take(found, np.flatnonzero(~_same_person(found, seen).any(1)))
            if missed and len(found):  # found again where they were lost: follow the detection instead
                near = np.stack([p.distance(found) for p in missed]) < _MAX_STEP  # [missed, found]
                missed = [p for p, n in zip(missed, near.any(1), strict=True) if not n]
            more, kept = self._pose_crops(frame, bgr, [_Followed.first_seen(found, i) for i in range(len(found))])
            if len(seen) and len(more):
                # A detection unlike anyone followed (a body cut by a tile, its joints misplaced) can be,
                # posed on its own crop, someone followed after all: not a second track of them.
                new = ~_same_person(more, seen, fragments=False).any(1)
                more, kept = _take(more, np.flatnonzero(new)), [p for p, n in zip(kept, new, strict=True) if n]
            seen, followed = _concat([seen, more]), followed + kept
        self._people = followed + [p for p in missed if p.missed <= self.max_missed]
        self._frame += 1
        return seen

    # ---------------------------------------------------------------------------------------------

    def _pose_crops(self, frame: np.ndarray, bgr: bool, people: list[_Followed]) -> tuple[PoseResult, list[_Followed]]:
        """Pose each person on a crop around where they should be now.

        Everyone found in any of the crops is a candidate (a person lost in their own crop is often
        found in a neighbour's); followed people and candidates are paired by least total distance
        (Hungarian), a pair farther than ``_MAX_STEP`` refused, a person's own crop preferred on a near
        tie. Two followed people paired with one person seen in two crops leave it to the nearer. Whoever
        is still unpaired is looked for once more in the whole frame (MoveNet sometimes misses a half-hidden
        person in a crop that it finds with more context). Returns the people found, most confident
        first, and whom they are (``box``, ``keypoints``, ``velocity`` updated); the others' ``missed``
        is counted up.
        """
        regions: list[Region] = []
        for p in people:
            box, _ = p.expected()
            side = max(box[2] - box[0], box[3] - box[1], 16.0) * self.margin
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            regions.append((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
        unsure = self.model.min_person_score / 2  # someone known to be right here a frame ago, half hidden
        crops = self._pose_regions(frame, regions, bgr, unsure)
        owner = [np.full(len(c), i) for i, c in enumerate(crops)]  # per candidate: whose crop found it
        self.calls += len(regions)
        found: list[PoseResult] = []
        kept: list[_Followed] = []
        self._pair(people, _concat(crops), np.concatenate(owner) if owner else np.zeros(0, int), found, kept)
        paired = {id(p) for p in kept}
        missing = [p for p in people if id(p) not in paired]
        if missing:
            full = self._detection_plan(*frame.shape[:2])[0]
            whole = self.model.pose_region(frame, full.region, *full.input_hw(), bgr, full.scale, min_score=unsure)
            self.calls += 1
            self._pair(missing, whole, np.full(len(whole), -1), found, kept)
            paired = {id(p) for p in kept}
        for p in people:
            if id(p) not in paired:  # not found this frame: looked for again where they should be next
                p.box, p.keypoints = p.expected()
                p.velocity, p.missed = p.velocity * 0.5, p.missed + 1
        seen = _concat(found)
        if len(seen) > 1:  # most confident first, as MoveNet orders its people
            order = np.argsort(-seen.person_scores, kind="stable")
            seen, kept = _take(seen, order), [kept[i] for i in order]
        return seen, kept

    def _pose_regions(self, frame: np.ndarray, regions: list[Region], bgr: bool, min_score: float) -> list[PoseResult]:
        """Each region posed at ``crop_size``, in order; with K workers, worker j takes regions j, j + K, ..."""
        models = self._crop_models  # one model without a pool, one copy per pool worker with one
        k = max(1, min(len(models), len(regions)))

        def share(j: int) -> list[PoseResult]:
            return [models[j].pose_region(frame, r, self.crop_size, self.crop_size, bgr, min_score=min_score)
                    for r in regions[j::k]]

        if k == 1 or self._pool is None:
            return share(0)
        jobs = [self._pool.submit(share, j) for j in range(k)]
        wait(jobs)  # all finished before an error is raised: no copy still runs when the caller goes on
        out: list[PoseResult] = [PoseResult.empty()] * len(regions)
        for j, job in enumerate(jobs):
            out[j::k] = job.result()
        return out

    @staticmethod
    def _pair(people: list[_Followed], cands: PoseResult, owner: np.ndarray, found: list[PoseResult],
              kept: list[_Followed]) -> None:
        """Pair ``people`` with ``cands`` (see :meth:`_pose_crops`), appending to ``found`` and ``kept``."""
        if not people or not len(cands):
            return
        cost = np.stack([p.distance(cands) for p in people])  # [followed, candidates]
        cost -= 0.02 * (owner[None] == np.arange(len(people))[:, None])
        rows, cols = linear_sum_assignment(np.minimum(cost, 2 * _MAX_STEP))
        pairs = sorted(((int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _MAX_STEP),
                       key=lambda rc: cost[rc])
        for r, c in pairs:
            one = _take(cands, [c])
            if any(_same_person(one, other, fragments=False)[0, 0] for other in found):
                continue  # someone nearer has this person (seen in two crops)
            p = people[r]
            box = one.boxes[0]
            moved = (box[:2] + box[2:]) / 2 - (p.box[:2] + p.box[2:]) / 2
            p.velocity = (0.5 * p.velocity + 0.5 * moved).astype(np.float32)
            p.box, p.keypoints, p.scores, p.missed = box.copy(), one.keypoints[0].copy(), one.scores[0].copy(), 0
            found.append(one)
            kept.append(p)

    def _detection_plan(self, h: int, w: int) -> tuple[_Pass, list[_Pass], float]:
        if self._plan is None or self._plan[0] != (h, w):
            self._plan = ((h, w), detection_plan(h, w, self.model.input_size, self.tile_input, self.min_height))
        return self._plan[1]

    def _detect(self, frame: np.ndarray, bgr: bool, known: np.ndarray) -> PoseResult:
        """People in the frame, from the whole frame and the tiles; ``known`` [K, 4]: boxes of the people
        already followed in this frame."""
        h, w = frame.shape[:2]
        full, tiles, overlap = self._detection_plan(h, w)
        parts: list[PoseResult] = []
        inner: list[np.ndarray] = []
        masked: np.ndarray | None = None  # the frame with the followed people blacked out, made when needed
        todo = [(full, 0, False), *((t, 0, False) for t in tiles)]
        while todo:
            p, depth, hide = todo.pop()
            in_h, in_w = p.input_hw()
            if hide and masked is None:
                masked = frame.copy()
                for x1, y1, x2, y2 in known.astype(int):
                    masked[max(0, y1):y2 + 1, max(0, x1):x2 + 1] = 0
            got = self.model.pose_region(masked if hide else frame, p.region, in_h, in_w, bgr, p.scale)
            self.calls += 1
            if len(got) >= _CAP:  # the model's cap: there may be more people here
                if not hide and len(known) and _inside(known, p.region).any():
                    # A crowd whose people are mostly followed already: look again for the others only
                    # (one call, where splitting would take four).
                    todo.append((p, depth, True))
                elif depth < 2:
                    todo.extend((q, depth + 1, hide) for q in p.split(overlap))
            parts.append(got)
            inner.append(self._touches_inner_edge(got, p.region, w, h))
        people = _concat(parts)
        if len(people) == 0:
            return people
        # A person cut by a tile's edge is found whole in the neighbouring tile: prefer that one.
        priority = people.person_scores * np.where(np.concatenate(inner), 0.5, 1.0)
        return merge_people(people, priority)

    @staticmethod
    def _touches_inner_edge(people: PoseResult, region: Region, w: int, h: int, tol: float = 3.0) -> np.ndarray:
        """[P] whether a person's box touches an edge of the region that is not the frame's edge."""
        if len(people) == 0:
            return np.zeros(0, bool)
        x0, y0, x1, y1 = region
        b = people.boxes
        return (((b[:, 0] <= x0 + tol) & (x0 > tol)) | ((b[:, 1] <= y0 + tol) & (y0 > tol))
                | ((b[:, 2] >= x1 - tol) & (x1 < w - tol)) | ((b[:, 3] >= y1 - tol) & (y1 < h - tol)))

