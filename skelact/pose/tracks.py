"""The one video -> tracked people pipeline: frames -> pose front end -> online tracker -> per-track
keypoint buffers.

:class:`PoseStream` is the per-frame step; :func:`track_video` runs it over a whole file (what
``skelact extract``, ``predict`` — the scene, ``--per-person`` and ``--window`` — and ``demo``
read), and ``skelact live`` steps it frame by frame with ring buffers. Frames are dropped as soon
as they are posed; only keypoints are kept. The people a clip keeps are chosen by one rule,
``data/tracking.most_confident`` (:meth:`VideoTracks.scene`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skelact.data.tracking import NUM_JOINTS, PoseResult, PoseTracker, Track, most_confident
from skelact.pose.buffers import TrackBuffers
from skelact.pose.options import PoseModel, reset_pose
from skelact.pose.video import FrameSource, VideoError, warn_short_read
from skelact.progress import progress as progress_bar

__all__ = ["PoseStream", "VideoTracks", "track_video"]


class PoseStream:
    """Poses and tracks people frame by frame, keeping their keypoints per track.

    A new stream is a new video: it resets the front end (``pose.reset()``, when it has one), so
    one front end serves one stream at a time.

    Args:
        pose: A pose front end (:class:`~skelact.pose.options.PoseModel`, e.g. ``MoveNet``).
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
        reset_pose(pose)  # a stateful front end must not carry the last video's people into this one

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
        """The ``max_persons`` most confident people over the whole video as one [M, T, V, 2] scene
        (``data/tracking.most_confident``; M = 0 when nobody was seen)."""
        return most_confident(self.tracks, self.frames, max_persons)

    def annotation(self, max_persons: int) -> dict:
        """The scene as one unlabelled PYSKL annotation (``label`` -1) in COCO-17, what ``extract`` writes."""
        scene = self.scene(max_persons)
        h, w = self.img_shape
        return {"frame_dir": self.name, "total_frames": self.frames, "img_shape": (h, w), "original_shape": (h, w),
                "label": -1, "keypoint": scene.keypoint, "keypoint_score": scene.score}


def track_video(video: str | Path, pose: PoseModel, tracker: PoseTracker | None = None, progress: bool = True,
                min_frames: int = 1) -> VideoTracks:
    """One pass over a video file: decode, pose and track each frame, keep only the keypoints.

    Memory holds a few decoded frames (the decoder's prefetch) and 204 bytes per person per frame.
    A file that ends before its header's frame count is used as far as it plays, with a warning.

    Args:
        video: The video file.
        pose: A pose front end (see :class:`PoseStream`); reset first, used by this video alone.
        tracker: A configured tracker.
        progress: A progress bar (frames/s and ETA) on stderr.
        min_frames: A video with fewer decoded frames is refused as too short.

    Raises:
        VideoError: Unreadable or empty video, frames of changing size, or fewer than ``min_frames`` frames.
    """
    video = Path(video)
    with FrameSource(video, prefetch=4, strict_end=False, one_size=True) as source:
        stream = PoseStream(pose, tracker)
        shape: tuple[int, int] | None = None
        # The header's count is for the bar only: it can be wrong.
        with progress_bar(total=source.expected or None, unit="frame", desc=video.name, enabled=progress) as bar:
            for frame in source:
                shape = frame.image.shape[:2]
                stream.step(frame.image)
                bar.update()
        expected, fps = source.expected, source.fps
    if shape is None:
        raise VideoError(f"{video}: no frame could be decoded")
    if stream.frames < min_frames:
        raise VideoError(f"{video}: too short, {stream.frames} frame(s) (at least {min_frames} needed)")
    warn_short_read(video, stream.frames, expected)  # used as far as it plays, but the user should know
    return VideoTracks(video.stem, stream.frames, fps, (int(shape[0]), int(shape[1])), stream.tracks())
