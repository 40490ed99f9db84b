"""Video → keypoints: the MoveNet pose model, multi-person tracking and whole-video extraction.

Importing this package is cheap; OpenCV and ``ai-edge-litert`` (the ``pose`` extra) are imported
only when a model is built or a video is opened.
"""

from skelact.pose.extract import VIDEO_EXTENSIONS, VideoError, extract_video, extract_videos, find_videos, iter_frames
from skelact.pose.movenet import MoveNet, PoseModelError, PoseResult, default_cache_path, resolve_pose_model
from skelact.pose.tracker import PoseTracker

__all__ = [
    "MoveNet",
    "PoseResult",
    "PoseModelError",
    "resolve_pose_model",
    "default_cache_path",
    "PoseTracker",
    "VideoError",
    "VIDEO_EXTENSIONS",
    "extract_video",
    "extract_videos",
    "find_videos",
    "iter_frames",
]
