"""The streaming analysis engine: frames -> pose -> online tracker -> per-track keypoint buffers ->
classification of whole tracks or of sliding windows.

:class:`PoseStream` is the per-frame step shared by ``skelact predict --per-person`` / ``--window``
(one offline pass, :func:`track_video`) and ``skelact live`` (ring buffers). Frames are dropped as
soon as they are posed; only keypoints are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from skelact.data.tracking import NUM_JOINTS, PoseResult, PoseTracker
from skelact.progress import progress as progress_bar
from skelact.stream.buffers import Track, TrackBuffers

if TYPE_CHECKING:
    from skelact.inference import Prediction, Predictor
    from skelact.skeleton import Layout

__all__ = ["PoseStream", "VideoTracks", "track_video", "track_clip", "classify_track", "Window", "window_starts",
           "classify_windows"]

PoseModel = Callable[[np.ndarray], PoseResult]


class PoseStream:
    """Poses and tracks people frame by frame, keeping their keypoints per track.

    Args:
        pose: A pose model: BGR uint8 [H, W, 3] -> :class:`PoseResult` (e.g. ``MoveNet``).
        tracker: The online tracker (default ``PoseTracker()``).
        capacity: Keep only the last ``capacity`` frames of each track and forget tracks that
            ended (live); ``None`` keeps whole tracks for :meth:`tracks` (offline).
        num_joints: Joints per pose (MoveNet: 17).
        pose_every: Run the pose model on every ``pose_every``-th frame only; the frames between
            hold the last poses (half the pose cost at 2, for a CPU that cannot pose every frame).
    """

    def __init__(self, pose: PoseModel, tracker: PoseTracker | None = None, capacity: int | None = None,
                 num_joints: int = NUM_JOINTS, pose_every: int = 1) -> None:
        if pose_every < 1:
            raise ValueError(f"pose_every must be at least 1, got {pose_every}")
        self.pose = pose
        self.tracker = tracker or PoseTracker(num_joints=num_joints)
        self.capacity = capacity
        self.pose_every = pose_every
        self.buffers = TrackBuffers(num_joints, capacity)
        self.frames = 0  # frames stepped so far; the next frame's index
        self._last: tuple[PoseResult, list[int]] = (PoseResult.empty(), [])

    def step(self, image: np.ndarray) -> tuple[PoseResult, list[int]]:
        """Pose one frame and track its people; returns the people and their track ids."""
        t = self.frames
        if t % self.pose_every == 0:
            people = self.pose(image)
            ids = self.tracker.update(t, people)
            self.tracker.prune()  # the buffers hold the poses; the tracker keeps only first and last
            self._last = people, ids
        else:  # held: the people where they were last posed
            people, ids = self._last
        self.buffers.add(t, ids, people)
        if self.capacity is not None:
            self.buffers.drop(self.tracker.live_tracks(t))
        self.frames += 1
        return people, ids

    def live(self) -> list[int]:
        """Ids of the tracks that can still be matched (seen within the tracker's ``max_age``)."""
        return self.tracker.live_tracks(self.frames - 1)

    def tracks(self) -> list[Track]:
        """Whole tracks, fragments of one person joined (needs ``capacity=None``)."""
        if self.capacity is not None:
            raise ValueError("tracks() needs whole tracks: build the PoseStream with capacity=None")
        return self.buffers.joined(self.tracker.chains())


@dataclass
class VideoTracks:
    """The people of one video, as :func:`track_video` found them.

    Attributes:
        name: The video's file stem.
        frames: Frames decoded.
        fps: Frame rate from the container.
        img_shape: (h, w) of the frames.
        tracks: People, numbered by first appearance (1, 2, ...).
    """

    name: str
    frames: int
    fps: float
    img_shape: tuple[int, int]
    tracks: list[Track]

    def scene(self, max_persons: int) -> Track:
        """The ``max_persons`` most confident people over the whole video as one [M, T, V, 2] scene."""
        best = sorted(self.tracks, key=lambda tr: -tr.total_score)[:max_persons]
        v = best[0].keypoint.shape[2] if best else NUM_JOINTS
        kp = np.zeros((max(1, len(best)), self.frames, v, 2), np.float32)
        sc = np.zeros(kp.shape[:3], np.float32)
        for m, tr in enumerate(best):
            kp[m, tr.first: tr.last + 1] = tr.keypoint[0]
            sc[m, tr.first: tr.last + 1] = tr.score[0]
        return Track(None, 0, kp, sc, sum(tr.total_score for tr in best))


def track_video(video: str | Path, pose: PoseModel, tracker: PoseTracker | None = None,
                progress: bool = True) -> VideoTracks:
    """One pass over a video: decode, pose and track each frame, keep only the keypoints.

    Memory holds a few decoded frames (the decoder's prefetch) and 204 bytes per person per frame.

    Args:
        video: The video file.
        pose: A pose model (see :class:`PoseStream`).
        tracker: A configured tracker.
        progress: A progress bar (frames/s and ETA) on stderr.

    Raises:
        VideoError: Unreadable or empty video, or frames of changing size.
    """
    from skelact.pose.extract import VideoError, iter_frames_one_size, video_info, warn_short_read

    video = Path(video)
    info = video_info(video)
    stream = PoseStream(pose, tracker)
    shape: tuple[int, int] | None = None
    with progress_bar(total=info["frames"] or None, unit="frame", desc=video.name, enabled=progress) as bar:
        for frame in iter_frames_one_size(video):
            shape = frame.shape[:2]
            stream.step(frame)
            bar.update()
    if shape is None:
        raise VideoError(f"{video}: no frame could be decoded")
    warn_short_read(video, stream.frames, info["frames"])
    return VideoTracks(video.stem, stream.frames, info["fps"], (int(shape[0]), int(shape[1])), stream.tracks())


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
