"""Frames from a camera, a network stream or a file, for ``skelact live``.

Without ``realtime`` every frame is delivered, in order (a file is decoded ahead in a thread; a
camera's driver queues frames, so a slow consumer falls behind). With ``realtime`` a capture
thread reads continuously and keeps only the newest frame: a consumer that falls behind skips
frames instead of seeing older and older ones, so the delay from capture to display stays bounded.
A file is then paced at its frame rate, as a camera would deliver it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skelact.errors import SkelactError, short_repr

__all__ = ["SourceError", "StreamEnded", "Frame", "FrameSource", "describe_source"]


class SourceError(SkelactError):
    """A source cannot be opened or stopped delivering frames; the message names it."""


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


def describe_source(spec: str) -> tuple[str, Any]:
    """``(kind, value)`` of a ``--source``: ``('camera', 0)`` for digits, ``('stream', url)`` for ``scheme://...``,
    else ``('file', Path)``."""
    if spec.isdigit():
        return "camera", int(spec)
    if "://" in spec:
        return "stream", spec
    return "file", Path(spec)


class FrameSource:
    """Frames from a camera index, a stream URL (rtsp://, http://, ...) or a video file.

    Args:
        spec: ``0`` (camera index), ``rtsp://...`` or a file path.
        realtime: Keep only the newest frame (see the module docstring); a file is paced at its fps.
        loop: Play a file source again from the start when it ends (a demo that runs until Ctrl-C).
        stall_timeout: Seconds without a new frame after which a live source counts as dropped.
        open_timeout: Seconds a stream URL may take to open.

    Raises:
        SourceError: The camera, stream or file cannot be opened (one line naming it).
    """

    def __init__(self, spec: str, realtime: bool = False, loop: bool = False, stall_timeout: float = 10.0,
                 open_timeout: float = 10.0) -> None:
        from skelact.pose.movenet import import_cv2

        self._cv2 = cv2 = import_cv2()
        self.kind, value = describe_source(spec)
        self.name = f"camera {value}" if self.kind == "camera" else str(value)
        self.realtime = realtime
        self.loop = loop and self.kind == "file"
        self.stall_timeout = stall_timeout
        self.dropped = 0  # frames the realtime capture overwrote before they were taken
        self.read = 0  # frames read from the source
        self._cap = self._open(value, open_timeout)
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not (0 < self.fps < 1000):
            self.fps = 30.0
        self.expected = max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))) if self.kind == "file" else 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _open(self, value: Any, timeout: float) -> Any:  # -> cv2.VideoCapture
        from skelact.files import native_path
        from skelact.viz.video import quiet_stderr

        cv2 = self._cv2
        if self.kind != "camera":  # a name OpenCV cannot take would crash it
            native_path(value, "video" if self.kind == "file" else "stream URL")
        if self.kind == "file":
            if not value.is_file():
                raise SourceError(f"{value}: video file not found")
            if value.stat().st_size == 0:
                raise SourceError(f"{value}: empty file, not a video")
        with quiet_stderr():  # OpenCV and FFmpeg print their own lines for a missing device or a bad URL
            if self.kind == "stream":
                ms = int(timeout * 1000)
                cap = cv2.VideoCapture(native_path(value, "stream URL"), cv2.CAP_FFMPEG,
                                       [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
            else:
                cap = cv2.VideoCapture(value if self.kind == "camera" else native_path(value, "video"))
            opened = cap.isOpened()
        if not opened:
            cap.release()
            why = {"camera": "no such camera, or it is in use", "stream": "unreachable, refused or not a video stream",
                   "file": "unknown format or corrupt file"}[self.kind]
            what = self.name if self.kind != "stream" else short_repr(value, 120)
            raise SourceError(f"{what}: cannot open ({why})")
        return cap

    def _read(self) -> np.ndarray | None:
        with_loop = self.loop
        ok, image = self._cap.read()
        if not ok and with_loop and self.read > 0:
            self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, 0)  # back to the start of the file
            ok, image = self._cap.read()
        return image if ok else None

    def _ended(self, index: int) -> None:
        """Raise :class:`StreamEnded` unless the source ended normally (a file read to its end)."""
        if self.kind == "file":
            from skelact.pose.extract import short_read

            message = short_read(self.name, index, self.expected)
            if message is not None:
                raise StreamEnded(message)
            return
        raise StreamEnded(f"{self.name}: stopped delivering frames after {index} frame(s)")

    def __iter__(self) -> Iterator[Frame]:
        """Frames until the source ends; then :class:`StreamEnded` if it ended abnormally."""
        return self._latest() if self.realtime else self._every()

    def _every(self) -> Iterator[Frame]:
        start = None
        while not self._stop.is_set():
            image = self._read()
            now = time.monotonic()
            if image is None:
                self._ended(self.read)
                return
            start = now if start is None else start
            pos = self.read / self.fps if self.kind == "file" else now - start
            yield Frame(self.read, image, now, pos)
            self.read += 1

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
        """Stop the capture thread and release the device or file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            if self._thread.is_alive():  # stuck in a read of a stalled stream: releasing now could crash
                return
        self._cap.release()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
