"""The one frame reader: video files, cameras and network streams, for every command that reads video.

:class:`FrameSource` opens the source (the file name checked by ``files.native_path``; a missing,
empty or unreadable file is one :class:`VideoError` naming it) and delivers its frames.

Without ``realtime`` every frame is delivered, in order: a file may be decoded ``prefetch`` frames
ahead in a thread (OpenCV releases the GIL, so decoding overlaps with the caller's work); a
camera's driver queues frames, so a slow consumer falls behind. With ``realtime`` a capture thread
reads continuously and keeps only the newest frame: a consumer that falls behind skips frames
instead of seeing older and older ones, so the delay from capture to display stays bounded. A file
is then paced at its frame rate, as a camera would deliver it.

A file that ends well before its header's frame count (cut or damaged) raises :class:`StreamEnded`
at the end, or, with ``strict_end=False``, ends normally and :meth:`FrameSource.short_read` says
so (extraction uses the frames and warns). ``one_size`` refuses a frame whose size differs from
the first's. :func:`iter_frames`, :func:`iter_frames_one_size` and :func:`video_info` are the
file-only shorthands built on it.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skelact.errors import SkelactError, short_repr
from skelact.files import PathNameError, native_path, quiet_stderr

__all__ = ["VideoError", "SourceError", "StreamEnded", "Frame", "FrameSource", "describe_source", "iter_frames",
           "iter_frames_one_size", "video_info", "short_read", "warn_short_read"]


class VideoError(SkelactError, ValueError):
    """A video cannot be read, is too short or shows nobody, or a folder holds no usable videos; the
    message names the file or folder."""


class SourceError(VideoError):
    """A camera, stream or file cannot be opened or stopped delivering frames; the message names it."""


class StreamEnded(SourceError):
    """A camera or stream stopped delivering frames, or a file ended before its header's frame count."""


@dataclass
class Frame:
    """One captured frame.

    Attributes:
        index: Position in the source (0, 1, ...); with ``realtime``, skipped frames leave gaps.
        image: uint8 [H, W, 3] BGR.
        captured: ``time.monotonic()`` when the frame was read (for a paced file: when it was due).
        pos_s: Seconds into the stream: ``index / fps`` for a file, time since the first frame otherwise.
    """

    index: int
    image: np.ndarray
    captured: float
    pos_s: float


def describe_source(spec: str | Path) -> tuple[str, Any]:
    """``(kind, value)`` of a source: ``('camera', 0)`` for digits, ``('stream', url)`` for ``scheme://...``,
    else ``('file', Path)``; a ``Path`` is always a file (a file may be named ``0``)."""
    if isinstance(spec, Path):
        return "file", spec
    if spec.isdigit():
        return "camera", int(spec)
    if "://" in spec:
        return "stream", spec
    return "file", Path(spec)


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


class FrameSource:
    """Frames from a camera index, a stream URL (rtsp://, http://, ...) or a video file.

    Args:
        spec: ``0`` (camera index), ``rtsp://...``, a file path (a ``Path`` is always a file).
        realtime: Keep only the newest frame (see the module docstring); a file is paced at its fps.
        loop: Play a file source again from the start when it ends (a demo that runs until Ctrl-C).
        stall_timeout: Seconds without a new frame after which a live source counts as dropped.
        open_timeout: Seconds a stream URL may take to open.
        prefetch: Without ``realtime``: decode this many frames ahead in a thread (0: inline).
        strict_end: A file that ends short of its header's count raises :class:`StreamEnded`;
            false: the iteration ends and :meth:`short_read` says so.
        one_size: Refuse (:class:`VideoError`) a frame whose size differs from the first frame's.

    Raises:
        VideoError: The file is missing, empty, not a video or has a name OpenCV cannot take;
            :class:`SourceError` for a camera or stream that cannot be opened (one line naming it).
    """

    def __init__(self, spec: str | Path, realtime: bool = False, loop: bool = False, stall_timeout: float = 10.0,
                 open_timeout: float = 10.0, prefetch: int = 0, strict_end: bool = True,
                 one_size: bool = False) -> None:
        from skelact.pose.movenet import import_cv2

        self._cv2 = cv2 = import_cv2()
        self.kind, value = describe_source(spec)
        self.name = f"camera {value}" if self.kind == "camera" else str(value)
        self.realtime = realtime
        self.loop = loop and self.kind == "file"
        self.stall_timeout = stall_timeout
        self.prefetch = prefetch
        self.strict_end = strict_end
        self.one_size = one_size
        self.dropped = 0  # frames the realtime capture overwrote before they were taken
        self.read = 0  # frames read from the source
        self._shape: tuple[int, ...] | None = None  # the first frame's (h, w), for one_size
        self._decoded = 0  # frames decoded (ahead of ``read`` when prefetching)
        self._cap = self._open(value, open_timeout)
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not (0 < self.fps < 1000):
            self.fps = 30.0
        self.expected = max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))) if self.kind == "file" else 0
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _open(self, value: Any, timeout: float) -> Any:  # -> cv2.VideoCapture
        cv2 = self._cv2
        if self.kind == "file":
            try:
                name = native_path(value, "video")  # OpenCV crashes on a name that is not valid UTF-8
            except PathNameError as e:
                raise VideoError(str(e)) from None  # a bad video like any other (extract lists it as failed)
            if not value.is_file():
                raise VideoError(f"{value}: video file not found")
            if value.stat().st_size == 0:
                raise VideoError(f"{value}: empty file, not a video")
        elif self.kind == "stream":
            name = native_path(value, "stream URL")
        with quiet_stderr():  # OpenCV and FFmpeg print their own lines for a missing device or a bad URL
            if self.kind == "stream":
                ms = int(timeout * 1000)
                cap = cv2.VideoCapture(name, cv2.CAP_FFMPEG,
                                       [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
            else:
                cap = cv2.VideoCapture(value if self.kind == "camera" else name)
            opened = cap.isOpened()
        if not opened:
            cap.release()
            if self.kind == "file":
                raise VideoError(f"{value}: cannot open as a video (unknown format or corrupt file)")
            why = {"camera": "no such camera, or it is in use",
                   "stream": "unreachable, refused or not a video stream"}[self.kind]
            what = self.name if self.kind == "camera" else short_repr(value, 120)
            raise SourceError(f"{what}: cannot open ({why})")
        return cap

    def _read(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        if not ok and self.loop and self.read > 0:
            self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, 0)  # back to the start of the file
            ok, image = self._cap.read()
        if not ok:
            return None
        if self.one_size:
            if self._shape is None:
                self._shape = image.shape[:2]
            elif image.shape[:2] != self._shape:
                h, w = self._shape
                raise VideoError(f"{self.name}: frame {self._decoded} is {image.shape[1]}x{image.shape[0]}, "
                                 f"earlier frames {w}x{h}")
        self._decoded += 1
        return image

    def short_read(self) -> str | None:
        """After a file's last frame: :func:`short_read`'s line if it ended short of its header's count."""
        return short_read(self.name, self.read, self.expected) if self.kind == "file" else None

    def _ended(self, index: int) -> None:
        """Raise :class:`StreamEnded` unless the source ended normally (a file read to its end)."""
        if self.kind == "file":
            message = short_read(self.name, index, self.expected)
            if message is not None and self.strict_end:
                raise StreamEnded(message)
            return
        raise StreamEnded(f"{self.name}: stopped delivering frames after {index} frame(s)")

    def __iter__(self) -> Iterator[Frame]:
        """Frames until the source ends; then :class:`StreamEnded` if it ended abnormally."""
        return self._latest() if self.realtime else self._every()

    def _every(self) -> Iterator[Frame]:
        start = None
        for image in self._prefetched() if self.prefetch > 0 else self._inline():
            if self._stop.is_set():
                return
            now = time.monotonic()
            start = now if start is None else start
            pos = self.read / self.fps if self.kind == "file" else now - start
            yield Frame(self.read, image, now, pos)
            self.read += 1
        if not self._stop.is_set():
            self._ended(self.read)

    def _inline(self) -> Iterator[np.ndarray]:
        while (image := self._read()) is not None:
            yield image

    def _prefetched(self) -> Iterator[np.ndarray]:
        """The frames, decoded ``prefetch`` ahead in a thread; an error there is raised here."""
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        done = object()
        stop = threading.Event()  # this generator was closed (the source's own stop is close())

        def wanted() -> bool:
            # The consumer went away (closed the source or the generator), or the interpreter is exiting
            # with the generator never closed (an exception's traceback held it): stop either way.
            return not (stop.is_set() or self._stop.is_set()) and threading.main_thread().is_alive()

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
                    image = self._read()
                    put(done if image is None else image)
                    if image is None:
                        return
            except BaseException as e:  # re-raised in the consumer
                put(e)

        # Not a daemon: at exit the interpreter would end a daemon thread inside OpenCV's C++ read, which
        # aborts the process ("FATAL: exception not rethrown"); this one is joined and ends by itself.
        self._thread = worker = threading.Thread(target=decode, name=f"decode {Path(self.name).name}")
        worker.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, VideoError):  # a frame of another size
                    raise item
                if isinstance(item, BaseException):
                    raise VideoError(f"{self.name}: decoding failed ({item})") from item
                yield item
        finally:
            stop.set()
            worker.join()

    def _latest(self) -> Iterator[Frame]:
        slot: list[Frame | None] = [None]
        state = {"error": None, "done": False}
        cond = threading.Condition()

        def capture() -> None:
            start = time.monotonic()
            try:
                while not self._stop.is_set():
                    if self.kind == "file":  # a file arrives at its frame rate, like a camera
                        due = start + self.read / self.fps
                        delay = due - time.monotonic()
                        if delay > 0:
                            self._stop.wait(delay)
                    image = self._read()
                    now = time.monotonic()
                    if image is None:
                        self._ended(self.read)
                        break
                    frame = Frame(self.read, image, due if self.kind == "file" else now,
                                  self.read / self.fps if self.kind == "file" else now - start)
                    self.read += 1
                    with cond:
                        if slot[0] is not None:
                            self.dropped += 1  # the consumer did not take the previous frame in time
                        slot[0] = frame
                        cond.notify()
            except BaseException as e:  # handed to the consumer
                state["error"] = e
            finally:
                with cond:
                    state["done"] = True
                    cond.notify()

        self._thread = threading.Thread(target=capture, name=f"capture {self.name}", daemon=True)
        self._thread.start()
        waited = 0.0
        while not self._stop.is_set():
            with cond:  # short waits, so that stop() is noticed at once
                got = cond.wait_for(lambda: slot[0] is not None or state["done"], timeout=0.1)
                frame, slot[0] = slot[0], None
                done = state["done"]
            if frame is not None:
                waited = 0.0
                yield frame
                continue
            if done:
                if state["error"] is not None:
                    raise state["error"]
                return
            waited += 0.1 if not got else 0.0
            if waited >= self.stall_timeout:
                raise StreamEnded(f"{self.name}: no frame for {self.stall_timeout:g} s after {self.read} frame(s)")

    def stop(self) -> None:
        """End the iteration after the current frame (safe from a signal handler or another thread)."""
        self._stop.set()

    def close(self) -> None:
        """Stop the capture or decode thread and release the device or file."""
        self._stop.set()
        if self._thread is not None:
            try:
                self._thread.join(timeout=1.0)
            except RuntimeError:  # a signal inside Thread.start(): it has not run, and with _stop set it reads nothing
                pass
            if self._thread.is_alive():  # stuck in a read of a stalled stream: releasing now could crash
                return
        self._cap.release()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def video_info(video: str | Path) -> dict:
    """Container metadata: ``frames`` (the header's count, may be 0 or approximate), ``fps``, ``height``,
    ``width``.

    Raises:
        VideoError: The file is missing, empty or not a video.
    """
    with FrameSource(Path(video)) as source:
        return {"frames": source.expected, "fps": source.fps, "height": source.height, "width": source.width}


def iter_frames(video: str | Path, prefetch: int = 4, one_size: bool = False) -> Iterator[np.ndarray]:
    """Decoded BGR frames uint8 [H, W, 3] of a video file, in order (see :class:`FrameSource`).

    Decoding runs in a background thread ``prefetch`` frames ahead; ``prefetch=0`` decodes inline.
    A file that ends short of its header's count ends here without a word (callers that care warn).

    Raises:
        VideoError: The file is missing, empty or not a video (raised on the first ``next``), decoding
            failed, or (``one_size``) frame N has another size than the first (the message gives both).
    """
    with FrameSource(Path(video), prefetch=prefetch, strict_end=False, one_size=one_size) as source:
        frames = iter(source)
        try:
            for frame in frames:
                yield frame.image
        finally:
            frames.close()  # joins the decode thread before the file is released


def iter_frames_one_size(video: str | Path) -> Iterator[np.ndarray]:
    """:func:`iter_frames`, refusing a frame whose size differs from the first frame's.

    Raises:
        VideoError: As :func:`iter_frames`, or frame N has another size (the message gives both).
    """
    return iter_frames(video, one_size=True)
