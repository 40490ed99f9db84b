"""Video files → PYSKL annotations: decode, detect poses per frame, track people.

``extract_video`` turns one video into one unlabeled annotation (``label = -1``) in the COCO-17
layout. Folders of videos (labelled by sub-folder, sharded, resumable, in parallel) are
``skelact.pose.folder``'s.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from skelact.data.tracking import PoseTracker
from skelact.errors import SkelactError
from skelact.files import PathNameError, native_path
from skelact.pose.movenet import MoveNet, import_cv2
from skelact.progress import progress as progress_bar

__all__ = ["VIDEO_EXTENSIONS", "VideoError", "iter_frames", "video_info", "find_videos", "is_video", "extract_video",
           "short_read", "warn_short_read"]

#: File name endings taken for videos when a folder is scanned (compared lower-case).
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


class VideoError(SkelactError, ValueError):
    """A video cannot be read, is too short or shows nobody, or a folder holds no usable videos; the
    message names the file or folder."""


def _open(video: Path):  # -> cv2.VideoCapture
    cv2 = import_cv2()
    try:
        name = native_path(video, "video")  # OpenCV crashes on a name that is not valid UTF-8
    except PathNameError as e:
        raise VideoError(str(e)) from None  # a bad video like any other (extract lists it as failed)
    if not video.is_file():
        raise VideoError(f"{video}: video file not found")
    if video.stat().st_size == 0:
        raise VideoError(f"{video}: empty file, not a video")
    cap = cv2.VideoCapture(name)
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{video}: cannot open as a video (unknown format or corrupt file)")
    return cap


def video_info(video: str | Path) -> dict:
    """Container metadata: ``frames`` (the header's count, may be 0 or approximate), ``fps``, ``height``,
    ``width``."""
    cv2 = import_cv2()
    cap = _open(Path(video))
    try:
        return {
            "frames": max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
            "fps": float(cap.get(cv2.CAP_PROP_FPS)) or 30.0,
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        }
    finally:
        cap.release()


def short_read(name: str | Path, decoded: int, expected: int | None) -> str | None:
    """What to say about a video that ended well before its header's frame count (a cut or damaged
    file), or None. Header counts can be one or two off, so only a larger gap counts."""
    if expected and decoded < expected - 2:
        return f"{name}: the video ended after {decoded} of its {expected} frames (truncated or damaged file)"
    return None


def warn_short_read(name: str | Path, decoded: int, expected: int | None) -> None:
    """Print :func:`short_read`'s line as a warning on stderr (the frames read are still used)."""
    message = short_read(name, decoded, expected)
    if message is not None:
        print(f"warning: {message}", file=sys.stderr, flush=True)


def iter_frames(video: str | Path, prefetch: int = 4) -> Iterator[np.ndarray]:
    """Decoded BGR frames uint8 [H, W, 3] of a video, in order.

    Decoding runs in a background thread ``prefetch`` frames ahead (OpenCV releases the GIL), so
    it overlaps with whatever the caller does with each frame. ``prefetch=0`` decodes inline.

    Raises:
        VideoError: The file is missing, empty or not a video (raised on the first ``next``).
    """
    video = Path(video)
    cap = _open(video)
    if prefetch <= 0:
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                yield frame
        finally:
            cap.release()

    q: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()
    done = object()

    def wanted() -> bool:
        # The consumer went away (closed the generator), or the interpreter is exiting with the
        # generator never closed (an exception's traceback held it): stop either way.
        return not stop.is_set() and threading.main_thread().is_alive()

    def put(item: object) -> None:
        while wanted():  # block, but notice a consumer that went away
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def decode() -> None:
        try:
            while wanted():
                ok, frame = cap.read()
                put(frame if ok else done)
                if not ok:
                    return
        except BaseException as e:  # re-raised in the consumer
            put(e)

    # Not a daemon: at exit the interpreter would end a daemon thread inside OpenCV's C++ read, which
    # aborts the process ("FATAL: exception not rethrown"); this one is joined and ends by itself.
    worker = threading.Thread(target=decode, name=f"decode {video.name}")
    worker.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise VideoError(f"{video}: decoding failed ({item})") from item
            yield item
    finally:
        stop.set()
        worker.join()
        cap.release()


def iter_frames_one_size(video: str | Path) -> Iterator[np.ndarray]:
    """:func:`iter_frames`, refusing a frame whose size differs from the first frame's.

    Raises:
        VideoError: As :func:`iter_frames`, or frame N has another size (the message gives both).
    """
    shape: tuple[int, ...] | None = None
    for i, frame in enumerate(iter_frames(video)):
        if shape is None:
            shape = frame.shape[:2]
        elif frame.shape[:2] != shape:
            raise VideoError(f"{video}: frame {i} is {frame.shape[1]}x{frame.shape[0]}, "
                             f"earlier frames {shape[1]}x{shape[0]}")
        yield frame


def extract_video(video: str | Path, model: MoveNet, max_persons: int = 2, progress: bool = True,
                  tracker: PoseTracker | None = None, min_frames: int = 1) -> dict:
    """Detect and track people in a video.

    Args:
        video: The video file.
        model: A loaded pose model.
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
    video = Path(video)
    tracker = tracker or PoseTracker()
    expected = video_info(video)["frames"] or None  # for the bar only: header counts can be wrong
    total = 0
    shape: tuple[int, int] | None = None
    with progress_bar(total=expected, unit="frame", desc=video.name, enabled=progress) as bar:
        for frame in iter_frames_one_size(video):
            shape = frame.shape[:2]
            tracker.update(total, model(frame))
            total += 1
            bar.update()
    if total == 0 or shape is None:
        raise VideoError(f"{video}: no frame could be decoded")
    if total < min_frames:
        raise VideoError(f"{video}: too short, {total} frame(s) (at least {min_frames} needed)")
    warn_short_read(video, total, expected)  # used as far as it plays, but the user should know
    keypoint, score = tracker.arrays(total, max_persons)
    if len(keypoint) == 0:
        raise VideoError(f"{video}: no person detected in any frame")
    return {
        "frame_dir": video.stem,
        "total_frames": total,
        "img_shape": (int(shape[0]), int(shape[1])),
        "original_shape": (int(shape[0]), int(shape[1])),
        "label": -1,
        "keypoint": keypoint,
        "keypoint_score": score,
    }


def find_videos(folder: str | Path) -> list[Path]:
    """Video files directly in ``folder`` (by extension, see :data:`VIDEO_EXTENSIONS`; hidden files
    skipped), sorted."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and is_video(p) and not p.name.startswith("."))


def is_video(path: Path) -> bool:
    """Whether the file name has a video extension (see :data:`VIDEO_EXTENSIONS`); the file is not opened."""
    return path.suffix.lower() in VIDEO_EXTENSIONS
