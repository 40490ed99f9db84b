"""The window timeline's own "unknown action" threshold, fitted on joined validation sequences.

A timeline frame takes the most confident of the many windows that cover it (see
``timeline.frame_probabilities``), so its top-1 probability is higher than a single clip's, on
known and unknown actions alike: the threshold fitted on single clips (``Calibration.threshold``)
lets most unknown footage through. This module fits a threshold for the rule the timeline uses:

1. Sequences: the validation clips joined end to end as ``benchmarks/segmentation.py`` joins test
   clips (seeded order, no two neighbours of one class); with out-of-class clips (other activities
   in a layout mappable to the model's), one to three of them are joined after each validation
   clip, labelled :data:`OUTSIDE`.
2. Each sequence is classified in sliding windows with ``predict --window``'s defaults and each
   frame gets the top-1 probability of its most confident covering window (the timeline's rule).
3. The threshold (:func:`timeline_threshold`): without out-of-class frames, the one that accepts
   ``accept`` of the in-class frames; with them, the one that best separates the two (highest
   mean of in-class frames accepted and out-of-class frames flagged) among those that still
   accept ``accept`` of the in-class frames.

The result goes into ``Calibration.timeline_threshold`` (``skelact calibrate --unknown-data``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from skelact.data.io import OutsideDataError, check_outside_dims
from skelact.data.tracking import Track
from skelact.stream.defaults import DEFAULT_STRIDE_FRACTION, DEFAULT_WINDOW_VIEWS, DEFAULT_WINDOWS
from skelact.stream.timeline import frame_probabilities
from skelact.stream.tracks import classify_windows

if TYPE_CHECKING:
    from skelact.inference import Predictor

__all__ = ["OUTSIDE", "FIT_FPS", "TRAIN_FIT_CLIPS", "TimelineFit", "JoinedSequence", "join_sequences",
           "frame_confidence", "timeline_threshold", "fit_timeline", "timeline_refiner"]

OUTSIDE = -1  #: true label of a joined out-of-class frame
#: Frame rate assumed for clips (PYSKL files carry none; Penn Action's YouTube clips are ~30 fps).
FIT_FPS = 30.0
#: Validation clips ``skelact train`` fits the timeline threshold on, at most (a seeded draw beyond).
TRAIN_FIT_CLIPS = 500


@dataclass(frozen=True)
class TimelineFit:
    """A fitted timeline threshold and what it does on the sequences it was fitted on.

    Attributes:
        threshold: Frames whose most confident covering window is below it are unknown.
        accept: Share of in-class frames at or above it.
        flagged: Share of out-of-class frames below it (None: there were none).
        inside: In-class frames scored.
        outside: Out-of-class frames scored.
    """

    threshold: float
    accept: float
    flagged: float | None
    inside: int
    outside: int


def _people(ann: dict, persons: int, each: bool) -> list[dict]:
    """``ann`` with exactly ``persons`` people; with ``each`` (one-person models), every body seen is a clip."""
    kp = np.asarray(ann["keypoint"], np.float32)
    sc = ann.get("keypoint_score")
    sc = (np.asarray(sc, np.float32) if sc is not None
          else (kp != 0).any(-1).astype(np.float32))  # no scores (3D data): a joint is there when it is not 0
    if each and persons == 1:
        return [{**ann, "keypoint": kp[m:m + 1], "keypoint_score": sc[m:m + 1]} for m in range(kp.shape[0])
                if (sc[m] > 0).any()]
    pad = max(0, persons - kp.shape[0])
    kp = np.concatenate([kp[:persons], np.zeros((pad, *kp.shape[1:]), np.float32)])
    sc = np.concatenate([sc[:persons], np.zeros((pad, *sc.shape[1:]), np.float32)])
    return [{**ann, "keypoint": kp, "keypoint_score": sc}]


@dataclass
class JoinedSequence:
    """Clips joined end to end, as one person's track.

    Attributes:
        track: The joined keypoints (person 1, from frame 0).
        truth: int64 [T]: each frame's class, :data:`OUTSIDE` for out-of-class frames.
        img_shape: (h, w) the coordinates are in (None: the clips gave none).
        names: The clips' ``frame_dir``, in order.
    """

    track: Track
    truth: np.ndarray
    img_shape: tuple[int, int] | None
    names: list[str]


def join_sequences(clips: Sequence[dict], per_sequence: int, seed: int = 0, count: int | None = None,
                   between: Sequence[dict] = (), persons: int = 1) -> list[JoinedSequence]:
    """Clips joined end to end into sequences, no two neighbouring clips of one class.

    The clips are taken in a seeded order, each once; a sequence takes the next clip whose class
    differs from the last one's. With ``between``, one to three of its clips (in their own seeded
    order, reused when they run out) follow each clip, labelled :data:`OUTSIDE`. Coordinates stay as
    they are (each clip in its own image, as benchmarks/segmentation.py has always joined them: the
    bounding-box normalised models do not see the difference); the sequence's ``img_shape`` is the
    first clip's, for recipes that normalise by the image.

    Args:
        clips: Labelled clips (``keypoint`` [M, T, V, C], ``label``), all in one layout.
        per_sequence: Labelled clips per sequence.
        seed: Seeds the orders and the out-of-class run lengths.
        count: Sequences to make (None: until the clips run out).
        between: Out-of-class clips, in the same layout.
        persons: People per clip the model takes (1: each body of an out-of-class clip is a clip).
    """
    rng = np.random.default_rng(seed)
    pool = [clips[i] for i in rng.permutation(len(clips))]
    others = [p for c in between for p in _people(c, persons, each=True)]
    others = [others[i] for i in np.random.default_rng(seed + 1).permutation(len(others))]
    used = 0
    out = []
    while pool and (count is None or len(out) < count):
        chosen: list[tuple[dict, int]] = []
        last = None
        while sum(label >= 0 for _, label in chosen) < per_sequence:
            k = next((i for i, a in enumerate(pool) if int(a["label"]) != last), None)
            if k is None:
                break
            clip = pool.pop(k)
            last = int(clip["label"])
            chosen.append((_people(clip, persons, each=False)[0], last))
            for _ in range(int(rng.integers(1, 4)) if others else 0):
                chosen.append((others[used % len(others)], OUTSIDE))
                used += 1
        if not chosen:
            break
        out.append(_join(chosen))
    return out


def _join(parts: list[tuple[dict, int]]) -> JoinedSequence:
    shape = next((tuple(a["img_shape"]) for a, _ in parts if a.get("img_shape") is not None), None)
    kps, scs, truth = [], [], []
    for a, label in parts:
        kps.append(np.asarray(a["keypoint"], np.float32))
        scs.append(np.asarray(a["keypoint_score"], np.float32))
        truth.append(np.full(kps[-1].shape[1], label, np.int64))
    track = Track(1, 0, np.concatenate(kps, axis=1), np.concatenate(scs, axis=1))
    return JoinedSequence(track, np.concatenate(truth), shape, [str(a.get("frame_dir", "")) for a, _ in parts])


def frame_confidence(predictor: Predictor, seq: JoinedSequence, fps: float = FIT_FPS) -> tuple[np.ndarray, np.ndarray]:
    """What the timeline's unknown rule sees in each frame of ``seq``: the top-1 probability of its most
    confident covering window, with ``predict --window``'s default windows at ``fps``.

    Returns:
        float64 [T] confidence and bool [T] coverage (frames no window covers are not scored).
    """
    lengths = [max(1, round(w * fps)) for w in DEFAULT_WINDOWS]
    strides = [max(1, round(n * DEFAULT_STRIDE_FRACTION)) for n in lengths]
    wins = classify_windows(predictor, seq.track, lengths, strides, predictor.layout, seq.img_shape,
                            DEFAULT_WINDOW_VIEWS)
    probs, covered = frame_probabilities(wins, 0, seq.track.frames, len(predictor.classes))
    return probs.max(axis=1).astype(np.float64), covered


def timeline_threshold(inside: np.ndarray, outside: np.ndarray, accept: float) -> TimelineFit:
    """The threshold on frame confidences: ``accept`` of ``inside`` at least, the best separation from ``outside``.

    Without out-of-class frames it is the ``1 - accept`` quantile of the in-class ones (the rule
    ``calibrate`` applies to single clips). With them, of the thresholds that still accept ``accept``
    of the in-class frames, the one with the highest mean of in-class accepted and out-of-class
    flagged (the lower one on ties): the floor on acceptance keeps in-class timelines labelled, the
    out-of-class frames can only lower the threshold where that costs them nothing.

    Example:
        >>> fit = timeline_threshold(np.array([0.9, 0.95, 0.99, 1.0]), np.array([]), 0.75)
        >>> fit.threshold, fit.accept, fit.flagged
        (0.95, 0.75, None)
    """
    if not 0.0 < accept <= 1.0:
        raise ValueError(f"accept must be in (0, 1], got {accept}")
    inside, outside = np.sort(np.asarray(inside, np.float64)), np.asarray(outside, np.float64)
    if inside.size == 0:
        raise ValueError("no in-class frames to fit the timeline threshold on")
    floor = float(np.quantile(inside, 1.0 - accept, method="lower"))
    threshold = floor
    if outside.size:
        cands = np.unique(np.concatenate([inside[inside <= floor], outside[outside <= floor], [floor]]))
        accepted = 1.0 - np.searchsorted(inside, cands, side="left") / inside.size
        flagged = np.searchsorted(np.sort(outside), cands, side="left") / outside.size
        threshold = float(cands[int(np.argmax(accepted + flagged))])
    return TimelineFit(threshold, float((inside >= threshold).mean()),
                       float((outside < threshold).mean()) if outside.size else None, int(inside.size),
                       int(outside.size))


def fit_timeline(predictor: Predictor, clips: Sequence[dict], between: Sequence[dict] = (), accept: float = 0.95,
                 per_sequence: int = 10, seed: int = 0, fps: float = FIT_FPS) -> TimelineFit:
    """Fit the timeline threshold on ``clips`` (validation clips, the model's layout) joined into sequences,
    with ``between`` (out-of-class clips, mapped to the model's layout) joined between them.

    Raises:
        ValueError: No in-class frame could be scored (clips too short for the model's windows).
    """
    persons = predictor.cfg.data.max_persons
    inside, outside = [], []
    for seq in join_sequences(clips, per_sequence, seed, None, between, persons):
        conf, covered = frame_confidence(predictor, seq, fps)
        inside.append(conf[covered & (seq.truth >= 0)])
        outside.append(conf[covered & (seq.truth == OUTSIDE)])
    return timeline_threshold(np.concatenate(inside or [np.zeros(0)]), np.concatenate(outside or [np.zeros(0)]),
                              accept)


def timeline_refiner(outside: Sequence[dict] = (), source: str | Path = "", accept: float = 0.95,
                     max_clips: int | None = None):  # -> Refine
    """The ``refine`` step of ``engine.calibrate.calibrate_checkpoint`` (and of training's calibration) that
    adds the timeline threshold.

    Args:
        outside: Out-of-class clips in the model's layout (:func:`load_outside`).
        source: Their file as the user named it (in messages; its name is stored as ``Calibration.timeline_data``).
        accept: Share of in-class frames the threshold accepts at least.
        max_clips: Fit on at most this many of the validation clips (a seeded draw): the fit classifies
            sliding windows over them, about 0.1 s a clip on one CPU core.
    """
    import dataclasses

    from skelact.checkpoint import Calibration
    from skelact.inference import Predictor

    def refine(calibration: Calibration, ckpt, model, clips: list[dict]) -> Calibration:
        if max_clips is not None and len(clips) > max_clips:
            keep = np.sort(np.random.default_rng(0).choice(len(clips), max_clips, replace=False))
            clips = [clips[int(i)] for i in keep]
        if clips:  # known only now: the validation clips are loaded by calibrate_checkpoint
            check_outside_dims(outside, int(np.shape(clips[0]["keypoint"])[-1]), source, "the model's")
        device = next(model.parameters()).device
        predictor = Predictor(model, ckpt.config, ckpt.classes, ckpt.layout, ckpt.in_channels, "calibration",
                              device, calibration)
        try:
            fit = fit_timeline(predictor, clips, outside, accept)
        except ValueError as e:
            raise OutsideDataError(f"timeline threshold: {e}") from None
        return dataclasses.replace(calibration, timeline_threshold=fit.threshold, timeline_accept=fit.accept,
                                   timeline_flagged=fit.flagged, timeline_data=Path(source).name if outside else "")

    return refine
