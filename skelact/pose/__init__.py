"""Video → keypoints: the MoveNet pose model, multi-person tracking, whole-video and whole-folder extraction.

Importing this package is cheap; OpenCV and ``ai-edge-litert`` (the ``pose`` extra) are imported
only when a model is built or a video is opened.
"""

from skelact.data.tracking import PoseResult, PoseTracker
from skelact.pose.extract import VIDEO_EXTENSIONS, extract_video, find_videos
from skelact.pose.folder import extract_folder, extract_videos, scan_videos
from skelact.pose.movenet import MoveNet, PoseModelError, default_cache_path, resolve_pose_model
from skelact.pose.options import PoseModel, PoseOptions
from skelact.pose.tracks import PoseStream, VideoTracks, track_video
from skelact.pose.video import FrameSource, VideoError, iter_frames, video_info

__all__ = [
    "MoveNet",
    "PoseModel",
    "PoseOptions",
    "PoseStream",
    "VideoTracks",
    "track_video",
    "FrameSource",
    "video_info",
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
