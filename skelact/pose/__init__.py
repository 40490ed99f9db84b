"""Video → keypoints: the MoveNet pose model, multi-person tracking, whole-video and whole-folder extraction.

Importing this package is cheap; OpenCV and ``ai-edge-litert`` (the ``pose`` extra) are imported
only when a model is built or a video is opened.
"""

from skelact.data.tracking import PoseResult, PoseTracker
from skelact.pose.extract import VIDEO_EXTENSIONS, VideoError, extract_video, find_videos, iter_frames
from skelact.pose.folder import extract_folder, extract_videos, scan_videos
from skelact.pose.movenet import MoveNet, PoseModelError, default_cache_path, resolve_pose_model

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
    "extract_folder",
    "scan_videos",
    "find_videos",
    "iter_frames",
]
