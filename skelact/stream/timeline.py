"""Sliding-window predictions -> per-frame labels -> a timeline of who does what, when.

How a frame gets its label: of the windows (of every length) that cover the frame, the one the
model is most confident about gives the frame its class probabilities, and the frame takes the most
probable class ("unknown" when the model's calibrated threshold rejects it: the caller passes
``Predictor.timeline_unknown``, the threshold fitted for this max-of-windows rule where the model
has one, see ``skelact.stream.fitting``). Runs of equal labels shorter than ``min_segment`` frames
are then absorbed by a neighbouring run (the one whose label the short run's frames find more
probable; a known label is preferred over "unknown"), which removes one-window flickers at action
boundaries. A timeline row is a maximal run of one label for one person; spans of the video where
no person is labelled become "nobody" rows.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skelact.errors import printable
from skelact.inference import Prediction
from skelact.stream.segmentation import runs
from skelact.stream.tracks import Window

__all__ = ["UNKNOWN", "NONE", "frame_probabilities", "frame_labels", "absorb_short", "prediction_fields",
           "Segment", "PersonTimeline", "Timeline", "build_timeline", "TIMELINE_FIELDS"]

UNKNOWN = -1  #: frame label: the model's threshold rejects every class
NONE = -2  #: frame label: no window covers the frame

#: Columns of the CSV (and keys of each JSON row), in order.
TIMELINE_FIELDS = ("start_s", "end_s", "person", "state", "label", "probability", "closest", "unknown",
                   "start_frame", "end_frame")


def prediction_fields(pred: Prediction) -> dict[str, Any]:
    """How a prediction is shown in JSON: ``label`` (None when unknown), ``unknown``, ``closest``
    (the most probable class, even when unknown) and its ``probability``."""
    name, p = pred.topk[0]
    return {"label": pred.label, "unknown": pred.unknown, "closest": name, "probability": round(float(p), 4)}


def frame_probabilities(windows: Sequence[Window], first: int, frames: int,
                        num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's probabilities: those of the most confident window covering it.

    The model is trained on whole actions, and the window that holds one whole action is
    usually the one it is surest about; averaging the windows instead mixes in the windows that
    see only part of it (benchmarks/segmentation.py measures both). Ties keep the earlier window.

    Args:
        windows: Windows with video frame ranges inside ``[first, first + frames)``.
        first: Video index of the first frame.
        frames: Frames T.
        num_classes: Classes C.

    Returns:
        float32 [T, C] probabilities (zero where uncovered) and bool [T] coverage.
    """
    probs = np.zeros((frames, num_classes), np.float32)
    best = np.full(frames, -1.0)  # confidence (top-1 probability) of the window each frame took
    for w in windows:
        s, e = w.start - first, w.stop - first
        if not 0 <= s < e <= frames:
            raise ValueError(f"window [{w.start}, {w.stop}) is outside frames [{first}, {first + frames})")
        conf = float(np.max(w.probs))
        take = s + np.flatnonzero(best[s:e] < conf)
        best[take] = conf
        probs[take] = w.probs
    return probs, best >= 0


def frame_labels(probs: np.ndarray, covered: np.ndarray, is_unknown: Callable[[np.ndarray], bool]) -> np.ndarray:
    """int64 [T]: the most probable class of each frame, :data:`UNKNOWN` or :data:`NONE` (uncovered)."""
    labels = np.where(covered, np.argmax(probs, axis=1), NONE).astype(np.int64)
    for f in np.flatnonzero(covered):
        if is_unknown(probs[f]):
            labels[f] = UNKNOWN
    return labels


def absorb_short(labels: np.ndarray, probs: np.ndarray, min_len: int) -> np.ndarray:
    """Relabel runs shorter than ``min_len`` frames with a neighbouring run's label, shortest first.

    Only runs between labelled frames are touched (:data:`NONE` is a hard border). The short run
    takes the neighbour label with the higher mean probability over its frames; an
    :data:`UNKNOWN` neighbour loses to a known one.

    Example:
        >>> labels = np.array([0, 0, 0, 1, 0, 0])
        >>> absorb_short(labels, np.full((6, 2), 0.5), 2).tolist()
        [0, 0, 0, 0, 0, 0]
    """
    out = np.array(labels, dtype=np.int64, copy=True)
    if min_len <= 1:
        return out
    segs = [list(r) for r in runs(out)]  # [start, stop, label]
    prev = list(range(-1, len(segs) - 1))
    nxt = list(range(1, len(segs) + 1))
    nxt[-1] = -1
    alive = [True] * len(segs)
    heap = [(e - s, i) for i, (s, e, lab) in enumerate(segs) if lab != NONE and e - s < min_len]
    heapq.heapify(heap)

    def score(i: int, lab: int) -> float:
        if lab == UNKNOWN:
            return -1.0
        s, e, _ = segs[i]
        return float(probs[s:e, lab].mean())

    def unlink(j: int) -> None:
        alive[j] = False
        p, n = prev[j], nxt[j]
        if p >= 0:
            nxt[p] = n
        if n >= 0:
            prev[n] = p

    while heap:
        length, i = heapq.heappop(heap)
        if not alive[i] or segs[i][1] - segs[i][0] != length:
            continue  # stale entry: the run has grown or gone
        cands = [j for j in (prev[i], nxt[i]) if j >= 0 and segs[j][2] != NONE]
        if not cands:
            continue
        j = max(cands, key=lambda j: score(i, segs[j][2]))
        # Run i takes j's label and merges with j (and with the run beyond i if it has that label too).
        lab = segs[j][2]
        s, e = min(segs[i][0], segs[j][0]), max(segs[i][1], segs[j][1])
        unlink(i)
        segs[j][0], segs[j][1] = s, e
        for k in (prev[j], nxt[j]):
            if k >= 0 and segs[k][2] == lab:
                segs[j][0], segs[j][1] = min(segs[j][0], segs[k][0]), max(segs[j][1], segs[k][1])
                unlink(k)
        if segs[j][1] - segs[j][0] < min_len:
            heapq.heappush(heap, (segs[j][1] - segs[j][0], j))
    for i, (s, e, lab) in enumerate(segs):
        if alive[i]:
            out[s:e] = lab
    return out


@dataclass
class Segment:
    """One timeline row: frames ``[start, stop)`` of the video.

    Attributes:
        person: The person's number, None for the scene or for nobody.
        start: First frame.
        stop: One past the last frame.
        prediction: What the person does there (probabilities averaged over the run's frames), or
            None: nobody is there.
    """

    person: int | None
    start: int
    stop: int
    prediction: Prediction | None

    @property
    def state(self) -> str:
        """``action``, ``unknown`` or ``nobody``."""
        if self.prediction is None:
            return "nobody"
        return "unknown" if self.prediction.unknown else "action"

    def to_dict(self, fps: float) -> dict[str, Any]:
        """The row's fields (:data:`TIMELINE_FIELDS`); times in seconds, ``end_s`` exclusive."""
        fields = (prediction_fields(self.prediction) if self.prediction is not None
                  else {"label": None, "unknown": False, "closest": None, "probability": None})
        row = {"start_s": round(self.start / fps, 3), "end_s": round(self.stop / fps, 3), "person": self.person,
               "state": self.state, **fields, "start_frame": self.start, "end_frame": self.stop - 1}
        return {k: row[k] for k in TIMELINE_FIELDS}


@dataclass
class PersonTimeline:
    """One subject's per-frame results.

    Attributes:
        person: The person's number (None: the scene).
        first: Video index of ``probs[0]``.
        probs: float32 [T, C]: each frame's probabilities (see :func:`frame_probabilities`).
        labels: int64 [T]: the frame's label after smoothing (class index, UNKNOWN or NONE).
    """

    person: int | None
    first: int
    probs: np.ndarray
    labels: np.ndarray

    def current(self, frame: int, classes: Sequence[str], topk: int,
                is_unknown: Callable[[np.ndarray], bool]) -> Prediction | None:
        """The top-k of the window that labels video frame ``frame`` (None where none does)."""
        f = frame - self.first
        if not 0 <= f < len(self.labels) or self.labels[f] == NONE:
            return None
        return _prediction(self.probs[f].astype(np.float64), classes, topk, is_unknown, 1)


def _prediction(probs: np.ndarray, classes: Sequence[str], topk: int, is_unknown: Callable[[np.ndarray], bool],
                frames: int, label: int | None = None) -> Prediction:
    """A Prediction for averaged ``probs``; ``label`` forces the top-1 (a smoothed run's label)."""
    order = [int(i) for i in np.argsort(-probs, kind="stable")[: max(1, min(topk, len(classes)))]]
    if label is not None and label >= 0 and order[0] != label:
        order = [label] + [i for i in order if i != label][: len(order) - 1]
    unknown = label == UNKNOWN if label is not None else is_unknown(probs)
    return Prediction([(classes[i], float(probs[i])) for i in order], probs, list(classes), frames, 0, unknown=unknown)


@dataclass
class Timeline:
    """Who does what, when, in one video.

    Attributes:
        fps: Frame rate (frames -> seconds).
        frames: Frames in the video.
        classes: Class names.
        people: Per-subject frame results, in person order.
        segments: Rows ordered by start time, then person ("nobody" rows have no person).
    """

    fps: float
    frames: int
    classes: list[str]
    people: list[PersonTimeline]
    segments: list[Segment]

    def rows(self) -> list[dict[str, Any]]:
        """JSON-ready rows (see :meth:`Segment.to_dict`)."""
        return [s.to_dict(self.fps) for s in self.segments]

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(TIMELINE_FIELDS), lineterminator="\n")
        writer.writeheader()
        for row in self.rows():
            writer.writerow({k: "" if v is None else str(v).lower() if isinstance(v, bool) else v
                             for k, v in row.items()})
        return buf.getvalue()

    def to_json(self, **extra: Any) -> str:
        return json.dumps({**extra, "fps": self.fps, "frames": self.frames,
                           "duration_s": round(self.frames / self.fps, 3), "classes": self.classes,
                           "rows": self.rows()}, indent=2)

    def write(self, base: str | Path) -> list[Path]:
        """Write ``BASE.csv``, ``BASE.json`` and ``BASE.png`` (each through a temporary file)."""
        from skelact.data.io import atomic_path, atomic_write
        from skelact.viz.plots import plot_timeline

        base = Path(base)
        paths = [base.with_name(base.name + ext) for ext in (".csv", ".json", ".png")]
        # class names from a file need not be valid UTF-8: escape them rather than fail (the JSON escapes them itself)
        atomic_write(paths[0], lambda f: f.write(printable(self.to_csv()).encode()))
        atomic_write(paths[1], lambda f: f.write(self.to_json().encode()))
        with atomic_path(paths[2], suffix=".tmp.png") as tmp:
            plot_timeline(self.rows(), self.frames / self.fps, tmp, self.classes)
        return paths


def build_timeline(windows: dict[int | None, tuple[int, int, list[Window]]], frames: int, fps: float,
                   classes: Sequence[str], is_unknown: Callable[[np.ndarray], bool],
                   min_segment: int = 1) -> Timeline:
    """Per-frame labels and rows from each subject's windows.

    Args:
        windows: ``person -> (first frame, frames, windows)`` for each subject.
        frames: Frames in the video.
        fps: Frame rate.
        classes: Class names.
        is_unknown: The model's rule for an unknown action (``Predictor.is_unknown``).
        min_segment: Runs shorter than this many frames are absorbed (see :func:`absorb_short`).
    """
    people, segments = [], []
    labelled = np.zeros(frames, bool)
    for person, (first, n, wins) in windows.items():
        probs, covered = frame_probabilities(wins, first, n, len(classes))
        labels = absorb_short(frame_labels(probs, covered, is_unknown), probs, min_segment)
        people.append(PersonTimeline(person, first, probs, labels))
        for s, e, lab in runs(labels):
            if lab == NONE:
                continue
            labelled[first + s: first + e] = True
            mean = probs[s:e].astype(np.float64).mean(0)
            pred = _prediction(mean, classes, 5, is_unknown, e - s, lab)
            segments.append(Segment(person, first + s, first + e, pred))
    for s, e, lab in runs(labelled):
        if not lab:
            segments.append(Segment(None, s, e, None))
    segments.sort(key=lambda seg: (seg.start, -1 if seg.person is None else seg.person))
    return Timeline(fps, frames, list(classes), people, segments)
