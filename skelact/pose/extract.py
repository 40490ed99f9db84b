"""Video files → PYSKL annotations: one video, one unlabelled clip of its most confident people.

``extract_video`` is the video pipeline of ``skelact.pose.tracks`` (``track_video``: frames →
pose front end → tracker → per-track buffers) followed by the one choice of the people kept
(``data/tracking.most_confident``). Frames come from ``skelact.pose.video``. Folders of videos
(labelled by sub-folder, sharded, resumable, in parallel) are ``skelact.pose.folder``'s.
"""

from __future__ import annotations

from pathlib import Path

from skelact.data.tracking import PoseTracker
from skelact.pose.options import PoseModel
from skelact.pose.tracks import track_video
from skelact.pose.video import VideoError

__all__ = ["VIDEO_EXTENSIONS", "VideoError", "find_videos", "is_video", "extract_video"]

#: File name endings taken for videos when a folder is scanned (compared lower-case).
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


def extract_video(video: str | Path, model: PoseModel, max_persons: int = 2, progress: bool = True,
                  tracker: PoseTracker | None = None, min_frames: int = 1) -> dict:
    """Detect and track people in a video.

    Args:
        video: The video file.
        model: A pose front end (reset first; used by this video alone while it runs).
        max_persons: Keep at most this many people (the most confident tracks).
        progress: Show a progress bar with frames/s on stderr.
        tracker: A configured tracker (default ``PoseTracker()``).
        min_frames: A video with fewer decoded frames is refused as too short.

    Returns:
        One PYSKL annotation: ``frame_dir`` (the file stem), ``total_frames`` (frames decoded),
        ``img_shape`` = ``original_shape`` = (h, w), ``label`` = -1, ``keypoint`` float32
        [M, T, 17, 2] in pixels and ``keypoint_score`` float32 [M, T, 17].

    Raises:
        VideoError: Unreadable or empty video, fewer than ``min_frames`` frames, or nobody detected in any
            frame.
    """
    if max_persons < 1:
        raise ValueError(f"max_persons must be at least 1, got {max_persons}")
    video = Path(video)
    ann = track_video(video, model, tracker, progress=progress, min_frames=min_frames).annotation(max_persons)
    if len(ann["keypoint"]) == 0:
        raise VideoError(f"{video}: no person detected in any frame (for small, distant people lower "
                         "--min-person-height)")
    return ann


def find_videos(folder: str | Path) -> list[Path]:
    """Video files directly in ``folder`` (by extension, see :data:`VIDEO_EXTENSIONS`; hidden files
    skipped), sorted."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and is_video(p) and not p.name.startswith("."))


def is_video(path: Path) -> bool:
    """Whether the file name has a video extension (see :data:`VIDEO_EXTENSIONS`); the file is not opened."""
    return path.suffix.lower() in VIDEO_EXTENSIONS
