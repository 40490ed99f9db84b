"""Classification of tracked people: whole tracks (``predict --per-person``) or sliding windows
(``--window``, ``live``).

The tracks come from the one video pipeline, ``skelact.pose.tracks`` (``track_video`` offline,
``PoseStream`` live); this module only cuts them into clips and batches them through the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from skelact.data.tracking import Track

if TYPE_CHECKING:
    from skelact.inference import Prediction, Predictor
    from skelact.skeleton import Layout

__all__ = ["track_clip", "classify_track", "Window", "window_starts", "classify_windows"]


def track_clip(track: Track, start: int = 0, stop: int | None = None, img_shape: tuple[int, int] | None = None,
               name: str | None = None) -> dict:
    """Frames ``[start, stop)`` of a track (indices relative to ``track.first``) as a PYSKL annotation."""
    stop = track.frames if stop is None else stop
    who = "scene" if track.person is None else f"person {track.person}"
    ann = {"frame_dir": name or f"{who} frames {track.first + start}-{track.first + stop - 1}",
           "total_frames": stop - start, "label": -1,
           "keypoint": track.keypoint[:, start:stop], "keypoint_score": track.score[:, start:stop]}
    if img_shape is not None:
        ann["img_shape"] = ann["original_shape"] = tuple(img_shape)
    return ann


def _enough_frames(predictor: Predictor, ann: dict) -> bool:
    from skelact.inference import valid_frame_count

    return valid_frame_count(ann["keypoint"], ann["keypoint_score"]) >= predictor.min_frames


def classify_track(predictor: Predictor, track: Track, layout: str | Layout = "coco17",
                   img_shape: tuple[int, int] | None = None, topk: int = 5,
                   num_clips: int | None = None) -> Prediction | None:
    """The action of a whole track, or None when it has too few frames with a person for the model."""
    ann = track_clip(track, img_shape=img_shape)
    if not _enough_frames(predictor, ann):
        return None
    return predictor.predict_clip(ann, topk=topk, num_clips=num_clips, layout=layout)


@dataclass
class Window:
    """One classified window: frames ``[start, stop)`` of the video and the class probabilities [C]."""

    start: int
    stop: int
    probs: np.ndarray


def window_starts(frames: int, window: int, stride: int) -> list[int]:
    """Start offsets of ``window``-frame windows every ``stride`` frames over ``frames`` frames.

    The last window ends at the last frame, so the tail is covered; a span shorter than one window
    is one window over all of it.

    Example:
        >>> window_starts(10, 4, 3)
        [0, 3, 6]
        >>> window_starts(11, 4, 3)
        [0, 3, 6, 7]
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be at least 1 frame, got {window} and {stride}")
    if frames <= window:
        return [0]
    starts = list(range(0, frames - window + 1, stride))
    if starts[-1] + window < frames:
        starts.append(frames - window)
    return starts


def classify_windows(predictor: Predictor, track: Track, windows: Sequence[int], strides: Sequence[int],
                     layout: str | Layout = "coco17", img_shape: tuple[int, int] | None = None,
                     num_clips: int | None = None, batch_size: int = 32) -> list[Window]:
    """Classify sliding windows of a track at one or more lengths (see :func:`window_starts`).

    Windows with fewer frames with a person than the model needs (the person mostly out of view)
    are skipped: their frames stay unlabelled unless another window covers them. Windows longer
    than the track shrink to the whole track, once.

    Args:
        predictor: The action model.
        track: The subject.
        windows: Window lengths in frames.
        strides: Step between windows of each length, in frames.
        layout: The track's skeleton layout.
        img_shape: (h, w) of the frames (for recipes that normalise by image size).
        num_clips: Test views per window.
        batch_size: Windows per forward pass.
    """
    spans: dict[tuple[int, int], None] = {}  # ordered, deduplicated (start, stop) relative to track.first
    for window, stride in zip(windows, strides, strict=True):
        for s in window_starts(track.frames, window, stride):
            spans[(s, min(s + window, track.frames))] = None
    out: list[Window] = []
    anns: list[dict] = []
    kept: list[tuple[int, int]] = []

    def flush() -> None:  # one batch at a time: an hour of video is ~10^5 windows a person
        preds = predictor.predict_clips(anns, topk=1, num_clips=num_clips, layout=layout, batch_size=batch_size)
        out.extend(Window(track.first + s, track.first + e, p.probs.astype(np.float32))
                   for (s, e), p in zip(kept, preds, strict=True))
        anns.clear()
        kept.clear()

    for s, e in spans:
        ann = track_clip(track, s, e, img_shape)
        if _enough_frames(predictor, ann):
            anns.append(ann)
            kept.append((s, e))
            if len(anns) == batch_size:
                flush()
    if anns:
        flush()
    return out
