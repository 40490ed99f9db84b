"""Writing skeleton videos (over the original frames or a black canvas) that play in a browser.

OpenCV's writer is asked for H.264 first (``avc1``/``H264`` in .mp4); wheels built without an
H.264 encoder fall back to MPEG-4 Part 2 (``mp4v``), which desktop players open but browsers may
not. A ``.webm`` output uses VP9/VP8, which browsers play and OpenCV's wheels can encode.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skelact.data.io import atomic_path
from skelact.errors import SkelactError
from skelact.files import native_path, quiet_stderr
from skelact.skeleton import Layout, joint_present
from skelact.viz.draw import draw_panel, draw_skeletons, import_cv2

__all__ = ["FOURCCS", "VideoFile", "VideoWriteError", "check_video_path", "to_canvas", "open_video_writer",
           "output_size", "quiet_stderr", "verify_video", "write_skeleton_video"]

log = logging.getLogger(__name__)

#: Codecs tried in order for each output extension; the first one the writer opens is used.
FOURCCS: dict[str, tuple[str, ...]] = {
    ".mp4": ("avc1", "H264", "mp4v"),
    ".m4v": ("avc1", "H264", "mp4v"),
    ".mov": ("avc1", "H264", "mp4v"),
    ".webm": ("VP80", "VP90"),  # VP8 encodes ~4x faster than VP9 and every browser plays it
    ".mkv": ("avc1", "H264", "VP80", "mp4v"),
    ".avi": ("MJPG", "XVID", "mp4v"),
}
_BROWSER_SAFE = {"avc1", "H264", "VP90", "VP80"}


class VideoWriteError(SkelactError, ValueError):
    """A video cannot be written: an unsupported extension, or no codec for it; names the user's path."""


def check_video_path(path: str | Path) -> None:
    """Refuse, before any work, an output whose extension no video writer handles, or whose name
    OpenCV cannot take (not valid UTF-8)."""
    native_path(path, "output video")
    suffix = Path(path).suffix.lower()
    if suffix not in FOURCCS:
        raise VideoWriteError(f"{path}: unsupported video extension {suffix or '(none)'!r}; use one of "
                              f"{', '.join(FOURCCS)}")
_warned: set[str] = set()


def to_canvas(keypoint: np.ndarray, img_shape: tuple[int, int] | None = None,
              size: tuple[int, int] = (480, 640), margin: float = 0.08) -> np.ndarray:
    """Map keypoints of any scale (or 3D) into pixel coordinates of a ``size`` (h, w) canvas.

    2D keypoints keep the image convention (y down). 3D keypoints drop z and flip y, so the
    person's up is the canvas's up. Without ``img_shape`` the box around every valid joint of the
    whole clip is fitted into the canvas (aspect kept, centred, ``margin`` of the canvas on each
    side); with ``img_shape`` (2D pixels of an h×w image) the whole image is fitted instead.
    Missing joints (exactly zero or non-finite) stay (0, 0), so drawing skips them.

    Args:
        keypoint: [..., V, C] with C = 2 or 3, e.g. [M, T, V, C].
        img_shape: (h, w) of the image the 2D coordinates refer to, if any.
        size: Canvas (h, w).
        margin: Border as a fraction of the canvas side.

    Returns:
        float32 [..., V, 2] canvas pixels.
    """
    kp = np.asarray(keypoint, dtype=np.float64)
    if kp.ndim < 2 or kp.shape[-1] not in (2, 3):
        raise ValueError(f"expected keypoints [..., V, 2 or 3], got {list(kp.shape)}")
    ok = joint_present(kp, None)  # [..., V]
    xy = kp[..., :2].copy()
    if kp.shape[-1] == 3:
        xy[..., 1] = -xy[..., 1]  # world y is up, image y is down
        if img_shape is not None:
            raise ValueError("img_shape applies to 2D pixel keypoints, not 3D")
    ch, cw = size
    if img_shape is not None:
        lo, hi = np.zeros(2), np.array([img_shape[1], img_shape[0]], np.float64)
    elif ok.any():
        pts = xy[ok]
        lo, hi = pts.min(0), pts.max(0)
    else:
        lo, hi = np.zeros(2), np.ones(2)
    span = np.maximum(hi - lo, 1e-6)
    inner = np.array([cw, ch], np.float64) * (1 - 2 * margin)
    scale = float(np.min(inner / span))
    offset = np.array([cw, ch], np.float64) / 2 - (lo + hi) / 2 * scale  # centre the box
    out = xy * scale + offset
    out[~ok] = 0.0
    return out.astype(np.float32)


def open_video_writer(path: str | Path, fps: float, frame_size: tuple[int, int]) -> tuple[Any, str]:
    """Open an OpenCV writer for ``path``, trying the codecs in :data:`FOURCCS` for its extension.

    Args:
        path: Output file; the extension picks the container.
        fps: Frames per second.
        frame_size: (width, height) in pixels.

    Returns:
        The opened ``cv2.VideoWriter`` and the fourcc used.

    Raises:
        OSError: No codec could be opened.
    """
    cv2 = import_cv2()
    path = Path(path)
    check_video_path(path)
    if not (math.isfinite(fps) and fps > 0):
        raise VideoWriteError(f"{path}: frame rate must be a finite number > 0, got {fps}")
    suffix = path.suffix.lower()
    candidates = FOURCCS[suffix]
    for fourcc in candidates:
        with quiet_stderr():
            writer = cv2.VideoWriter(native_path(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), tuple(frame_size))
            opened = writer.isOpened()
        if opened:
            skipped = candidates[:candidates.index(fourcc)]  # an .avi never had a browser codec to miss
            if any(c in _BROWSER_SAFE for c in skipped) and suffix not in _warned:
                _warned.add(suffix)
                log.warning("this OpenCV build has no H.264 encoder: writing %s as %s (%s), which browsers may not "
                            "play; use a .webm output for a browser-playable video", suffix, fourcc,
                            "Motion JPEG" if fourcc == "MJPG" else "MPEG-4 Part 2")
            return writer, fourcc
        writer.release()
    problem = _cannot_write(path)  # the codecs may be there, but not the room for a file header
    if problem:
        raise VideoWriteError(f"{path}: {problem}")
    raise VideoWriteError(f"{path}: OpenCV cannot write {suffix} videos here (tried {', '.join(candidates)})")


def _free_bytes(folder: Path) -> int | None:
    """Bytes this process may still write on ``folder``'s file system (None where unknown)."""
    try:
        st = os.statvfs(folder)
    except (AttributeError, OSError):  # no statvfs (Windows), or the folder went away
        return None
    return st.f_bavail * st.f_frsize


def _cannot_write(path: Path) -> str | None:
    """Why ``path`` (a file the writers just failed to open) takes no data (a full disk, a size limit,
    a read-only folder), found by writing a video header's worth of zeros; None if it does."""
    try:
        with open(path, "wb") as f:
            f.write(bytes(1 << 16))
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return (e.strerror or str(e))[:1].lower() + (e.strerror or str(e))[1:]
    finally:
        with contextlib.suppress(OSError):
            os.truncate(path, 0)
    return None


def verify_video(path: Path, frames: int, name: str | Path | None = None) -> None:
    """Check that the finished video ``path`` plays its ``frames`` frames; ``name`` is what the user
    calls it (the error names it, not a temporary file).

    OpenCV's writer ignores a failed write ("Failed to write frame"), so a full disk would otherwise
    give a 0-byte or undecodable file reported as written. The container's frame count must equal
    ``frames`` and the last frame must decode (cheap: one seek); if not (some containers store no
    count), the frames are counted by decoding them, which a cut file stops early.

    Raises:
        VideoWriteError: Fewer frames can be read back; says when the file system is full.
    """
    cv2 = import_cv2()
    name = path if name is None else name
    readable = 0
    with quiet_stderr():  # FFmpeg prints "moov atom not found" and the like for a cut file
        cap = cv2.VideoCapture(str(path))
        try:
            if cap.isOpened():
                count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
                if count == frames and cap.set(cv2.CAP_PROP_POS_FRAMES, frames - 1) and cap.read()[0]:
                    return
                cap.release()
                cap = cv2.VideoCapture(str(path))
                while readable < frames and cap.grab():
                    readable += 1
        finally:
            cap.release()
    if readable >= frames:
        return
    free = _free_bytes(path.parent)
    why = "no space left on device" if free is not None and free < _FULL else "the video was not written completely"
    raise VideoWriteError(f"{name}: {why} ({readable} of the {frames} frames written can be read back)")


#: Below this many free bytes a short video counts as cut by a full file system (an encoder's last
#: packets and the container's index need more than a few blocks).
_FULL = 1 << 20
#: A recording's size is checked every this many frames: one that stops growing on a full file
#: system fails then, not hours later when it is closed.
_GROWTH_EVERY = 64


class VideoFile:
    """A video written through a hidden temporary file beside ``path``, checked (:func:`verify_video`)
    and renamed into place when the block ends; any error, or no frame at all, leaves nothing.

    Args:
        path: Output file (the extension picks the container and codec).
        fps: Frame rate.
        keep_on: Exceptions after which the frames written so far are still kept (``live`` keeps a
            recording stopped by Ctrl-C or a dropped stream); they propagate after the file is safe.
    """

    def __init__(self, path: str | Path, fps: float, keep_on: tuple[type[BaseException], ...] = ()) -> None:
        self.path, self.fps, self.keep_on = Path(path), float(fps), keep_on
        check_video_path(self.path)
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise VideoWriteError(f"{self.path}: frame rate must be a finite number > 0, got {fps}")
        self.frames = 0
        self._writer: Any = None
        self._ctx: Any = None
        self._tmp: Path | None = None
        self._size = 0  # the temporary's size at the last growth check
        self._log_level = 0  # OpenCV's, restored when the writer is closed

    def __enter__(self) -> VideoFile:
        self._ctx = atomic_path(self.path, suffix=f".tmp{self.path.suffix}")  # the writer picks the codec by it
        self._tmp = self._ctx.__enter__()
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 [H, W, 3] BGR frame (the first one sets the size)."""
        assert self._tmp is not None, "use VideoFile as a context manager"
        if self._writer is None:
            try:
                self._writer, _ = open_video_writer(self._tmp, self.fps, (frame.shape[1], frame.shape[0]))
            except VideoWriteError as e:  # name the user's file, not the hidden temporary one
                raise VideoWriteError(str(e).replace(str(self._tmp), str(self.path))) from None
            # OpenCV logs "Failed to write frame" once per frame on a full disk and carries on: the
            # check below and the one at the end report it, in one line.
            logging_ = import_cv2().utils.logging
            self._log_level = logging_.getLogLevel()
            logging_.setLogLevel(min(self._log_level, logging_.LOG_LEVEL_ERROR))
        self._writer.write(frame)
        self.frames += 1
        if self.frames % _GROWTH_EVERY == 0:
            size = self._tmp.stat().st_size
            if size <= self._size and _free_bytes(self._tmp.parent) == 0:
                raise VideoWriteError(f"{self.path}: no space left on device (the video stopped growing after "
                                      f"{self.frames} frames)")
            self._size = size

    def empty_error(self) -> BaseException:
        """What a block that wrote no frame raises."""
        return VideoWriteError(f"{self.path}: no frame to write")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if self._writer is not None:
            self._writer.release()  # finishes the container: the file plays, with every frame written
            self._writer = None
            import_cv2().utils.logging.setLogLevel(self._log_level)
        keep = kind is None or issubclass(kind, self.keep_on)
        if keep and self.frames > 0:
            assert self._tmp is not None
            try:
                verify_video(self._tmp, self.frames, self.path)
            except BaseException as e:
                self._ctx.__exit__(type(e), e, e.__traceback__)  # removes the temporary file
                raise
            self._ctx.__exit__(None, None, None)  # rename into place
            return False  # an interruption or a drop still propagates, after the file is safe
        if exc is None:
            exc = self.empty_error()
            self._ctx.__exit__(type(exc), exc, None)  # removes the temporary file
            raise exc
        self._ctx.__exit__(kind, exc, tb)
        return False


def output_size(h: int, w: int, max_side: int | None = 1280) -> tuple[int, int]:
    """(height, width) a video writer gets for h×w frames: downscaled so the longer side is at most
    ``max_side``, sides even (yuv420p encoders require it)."""
    s = min(1.0, max_side / max(h, w)) if max_side else 1.0
    return max(2, round(h * s) // 2 * 2), max(2, round(w * s) // 2 * 2)


def write_skeleton_video(
    out: str | Path,
    keypoint: np.ndarray,
    score: np.ndarray | None = None,
    layout: str | Path | Layout | None = "coco17",
    frames: Iterable[np.ndarray] | None = None,
    img_shape: tuple[int, int] | None = None,
    topk: Sequence[tuple[str, float]] | None = None,
    true_label: str | None = None,
    fps: float = 30.0,
    panel_width: int | None = None,
    max_side: int | None = 1280,
    thickness: int | None = None,
    threshold: float = 0.1,
    force: bool = True,
) -> Path:
    """Write a video of skeletons drawn over ``frames`` (or a black background), with an optional
    prediction panel.

    The file is written to a temporary name in the same folder and renamed at the end, so an
    error leaves no partial output.

    Args:
        out: Output file (.mp4, .webm, .avi, ...).
        keypoint: [M, T, V, 2] pixel coordinates in the frames (use :func:`to_canvas` for others).
        score: [M, T, V] joint scores, or None.
        layout: Skeleton layout (``None`` infers it from V).
        frames: BGR uint8 frames [H, W, 3]; T are used (missing ones are black). None: black
            background of ``img_shape``.
        img_shape: (h, w) of the background when there are no frames.
        topk: (class name, probability) pairs for the side panel; no panel when None and there is
            no ``true_label``.
        true_label: The real action, shown in the panel.
        fps: Frame rate.
        panel_width: Panel width in pixels (default: a third of the output height, at least 200).
        max_side: Frames larger than this (longer side) are downscaled, keypoints with them.
        thickness: Line width (default scales with the output size).
        threshold: Joints with score <= threshold are not drawn.
        force: Overwrite an existing ``out``.

    Returns:
        ``out``.
    """
    cv2 = import_cv2()
    out = Path(out)
    check_video_path(out)
    if not (math.isfinite(fps) and fps > 0):
        raise VideoWriteError(f"{out}: frame rate must be a finite number > 0, got {fps}")
    keypoint = np.asarray(keypoint, dtype=np.float32)
    if keypoint.ndim != 4 or keypoint.shape[-1] != 2:
        raise ValueError(f"expected pixel keypoints [M, T, V, 2], got {list(keypoint.shape)} "
                         "(map 3D or normalised keypoints with skelact.viz.video.to_canvas first)")
    m, t, v, _ = keypoint.shape
    if score is not None:
        score = np.asarray(score, dtype=np.float32)
        if score.shape != (m, t, v):
            raise ValueError(f"score shape {list(score.shape)} does not match keypoint [M, T, V] {[m, t, v]}")
    if frames is None and img_shape is None:
        raise ValueError("give the background size img_shape=(h, w) when there are no frames")
    if not force and out.exists():
        raise FileExistsError(f"{out}: already exists (use --force to overwrite)")
    frame_iter = iter(frames) if frames is not None else None
    first = next(frame_iter, None) if frame_iter is not None else None
    if first is not None:
        h, w = first.shape[:2]
    elif img_shape is not None:
        h, w = int(img_shape[0]), int(img_shape[1])
    else:
        raise ValueError("no frames given and no img_shape for a black background")

    oh, ow = output_size(h, w, max_side)
    sx, sy = ow / w, oh / h
    kp = keypoint * np.array([sx, sy], np.float32)
    kp[~joint_present(keypoint, None)] = 0.0  # missing joints stay exactly (0, 0)
    panel = None
    if topk is not None or true_label is not None:
        pw = (panel_width or max(200, oh // 3)) // 2 * 2
        # The panel is the same on every frame: draw it once (on a zero-width image) and append it.
        panel = draw_panel(np.zeros((oh, 0, 3), np.uint8), list(topk or []), true_label, width=pw)

    with VideoFile(out, fps) as video:  # checked when closed: OpenCV ignores a failed write
        black = np.zeros((oh, ow, 3), np.uint8)
        for i in range(t):
            frame = first if i == 0 else (next(frame_iter, None) if frame_iter is not None else None)
            if frame is None:
                canvas = black.copy()
            else:
                if frame.shape[:2] != (h, w):
                    raise ValueError(f"frame {i} is {frame.shape[1]}x{frame.shape[0]}, expected {w}x{h}")
                canvas = cv2.resize(frame, (ow, oh), interpolation=cv2.INTER_AREA) if (oh, ow) != (h, w) \
                    else frame.copy()
            draw_skeletons(canvas, kp[:, i], None if score is None else score[:, i], layout,
                           thickness=thickness, threshold=threshold, inplace=True)
            if panel is not None:
                canvas = np.concatenate([canvas, panel], axis=1)
            video.write(canvas)
    return out
