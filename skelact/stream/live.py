"""The live loop: frames -> pose (every frame) -> tracker -> ring buffer per track -> a prediction every
N frames -> annotated frame (file, web page) and one JSON line per prediction.

A person's label is the latest prediction: the most confident of the windows of each length
ending at the current frame of their track (the offline rule of skelact/stream/timeline.py,
restricted to what has been seen); it stays on screen until the next one. Latency is measured per
frame, from capture (the source's timestamp) to the annotated frame being handed to the outputs.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from skelact.pose.options import PoseModel
from skelact.pose.tracks import PoseStream
from skelact.pose.video import FrameSource, SourceError, StreamEnded
from skelact.stream.overlay import Painter, PersonView
from skelact.stream.timeline import prediction_fields
from skelact.viz.draw import person_color
from skelact.viz.video import VideoFile

if TYPE_CHECKING:
    from skelact.inference import Prediction, Predictor
    from skelact.stream.server import LiveServer

__all__ = ["LiveStats", "LiveAnalyzer", "VideoSink", "prediction_line"]


def prediction_line(pred: Prediction, person: int, frame: int, time_s: float) -> dict[str, Any]:
    """One JSON line: ``time`` (s into the stream), ``frame``, ``person``, label / unknown / closest, ``topk``."""
    return {"time": round(time_s, 3), "frame": frame, "person": person, **prediction_fields(pred),
            "topk": _topk(pred)}


def _topk(pred: Prediction) -> list[dict[str, Any]]:
    return [{"label": n, "probability": round(float(p), 4)} for n, p in pred.topk]


def _hex(bgr: tuple[int, int, int]) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass
class LiveStats:
    """What a live run did.

    Attributes:
        frames: Frames processed (posed, drawn, written).
        dropped: Frames the realtime capture skipped because processing fell behind.
        predictions: Predictions made (one per person each time).
        written: Frames written to the output file.
        latencies: Seconds from capture to display, per processed frame.
        seconds: Wall time of the run.
    """

    frames: int = 0
    dropped: int = 0
    predictions: int = 0
    written: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def latency_ms(self, q: float) -> float:
        """The ``q``-th percentile (0-100) of the latency in milliseconds (NaN with no frame)."""
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class LiveAnalyzer:
    """Runs one source through pose, tracking, classification and the outputs.

    Args:
        pose: The pose model (see :class:`~skelact.pose.tracks.PoseStream`).
        predictor: The action model.
        every: Predict every ``every`` processed frames.
        windows: Lengths (frames) of the last part of each person's track classified at each
            prediction; the most confident is kept (the rule of skelact/stream/timeline.py). The ring
            buffer holds the longest.
        topk: Classes per prediction.
        num_clips: Test views per prediction.
        lines: Where the JSON lines go (None: nowhere).
        server: The web page to publish to, if any.
        max_persons: Predict for at most this many people at a time (the most confident).
        background: Classify in a worker thread while the frames go on (``--realtime``: a prediction
            does not hold up the frames; one that is due while the last is still running is
            skipped). Otherwise every prediction is made in place, exactly every ``every`` frames.
        pose_every: Pose every ``pose_every``-th frame, holding the poses between (see ``PoseStream``).
    """

    def __init__(self, pose: PoseModel, predictor: Predictor, every: int = 10, windows: Sequence[int] = (60,),
                 topk: int = 3, num_clips: int = 1, lines: IO[str] | None = sys.stdout,
                 server: LiveServer | None = None, max_persons: int | None = None, background: bool = False,
                 pose_every: int = 1) -> None:
        if every < 1 or not windows or min(windows) < 1:
            raise ValueError(f"every and the windows must be at least 1 frame, got {every} and {list(windows)}")
        self.pose, self.predictor = pose, predictor
        self.every, self.windows, self.topk, self.num_clips = every, sorted(set(windows)), topk, num_clips
        self.lines, self.server, self.max_persons = lines, server, max_persons
        self.background, self.pose_every = background, pose_every
        self.current: dict[int, Prediction] = {}  # track id -> latest prediction
        self.stats = LiveStats()
        self._shape: tuple[int, int] | None = None  # (h, w) of the frames
        self._lock = threading.Lock()  # current, stats.predictions and lines, shared with the worker
        self._jobs: queue.Queue = queue.Queue()
        self._busy = threading.Event()  # a prediction is running in the worker
        self._error: BaseException | None = None

    def _snapshot(self, stream: PoseStream) -> tuple[list[int], list[dict]]:
        """The windows to classify now: the last frames of every live track that has enough frames with a
        person (copies, so a background thread may classify them while the stream goes on)."""
        from skelact.inference import valid_frame_count

        live = stream.live()
        with self._lock:
            self.current = {i: p for i, p in self.current.items() if i in live}
        owners, anns = [], []  # anns[k] is a window of track owners[k]
        ranked = sorted(live, key=lambda i: -stream.buffers.buffers[i].total_score)
        for i in ranked[: self.max_persons]:
            buf = stream.buffers.buffers[i]
            for n in sorted({min(w, len(buf)) for w in self.windows}):
                kp, sc = buf.arrays(n)  # [n, V, 2], [n, V]: the last n frames
                if valid_frame_count(kp[None], sc[None]) >= self.predictor.min_frames:
                    owners.append(i)
                    anns.append({"frame_dir": f"person {i + 1}", "keypoint": kp[None], "keypoint_score": sc[None],
                                 "img_shape": self._shape, "total_frames": n, "label": -1})
        return owners, anns

    def _classify(self, owners: list[int], anns: list[dict], frame_index: int, time_s: float) -> None:
        """Classify a snapshot; each person keeps their most confident window."""
        preds = self.predictor.predict_clips(anns, topk=self.topk, num_clips=self.num_clips, layout="coco17")
        best: dict[int, Prediction] = {}
        for i, pred in zip(owners, preds, strict=True):
            if i not in best or pred.topk[0][1] > best[i].topk[0][1]:
                best[i] = pred
        with self._lock:
            self.current = {**self.current, **best}
            self.stats.predictions += len(best)
            if self.lines is not None:
                for i, pred in best.items():
                    self.lines.write(json.dumps(prediction_line(pred, i + 1, frame_index, time_s)) + "\n")
                self.lines.flush()

    def _worker(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._classify(*job)
            except BaseException as e:  # re-raised by the frame loop
                self._error = e
            finally:
                self._busy.clear()

    def _state(self, frame_index: int, time_s: float, present: list[int]) -> dict[str, Any]:
        people = []
        for i in present:
            pred = self.current.get(i)
            entry: dict[str, Any] = {"person": i + 1, "color": _hex(person_color(i + 1)),
                                     "text": None if pred is None else pred.describe()}
            if pred is not None:
                entry.update(prediction_fields(pred))
                entry["topk"] = _topk(pred)
            people.append(entry)
        return {"frame": frame_index, "time": round(time_s, 3), "fps": round(self.stats.fps, 2), "ended": False,
                "people": people}

    def run(self, source: FrameSource, write: Callable[[np.ndarray], None] | None = None,
            max_frames: int | None = None, on_frame: Callable[[LiveStats], None] | None = None) -> LiveStats:
        """Process ``source`` until it ends, ``max_frames`` frames are done, or Ctrl-C (re-raised after the
        current frame's outputs are done).

        Args:
            source: Where the frames come from.
            write: Called with each annotated frame (e.g. a video writer's ``write``).
            max_frames: Stop after this many processed frames.
            on_frame: Called after each frame (progress display).

        Raises:
            StreamEnded: The source dropped (the frames so far have been handed to ``write``).
        """
        stream = PoseStream(self.pose, capacity=max(self.windows), pose_every=self.pose_every)
        painter: Painter | None = None
        worker = None
        if self.background:
            worker = threading.Thread(target=self._worker, name="skelact predict", daemon=True)
            worker.start()
        t0 = time.monotonic()
        try:
            for frame in source:
                if painter is None:
                    painter = Painter(frame.image.shape[:2])
                    self._shape = (int(frame.image.shape[0]), int(frame.image.shape[1]))
                people, ids = stream.step(frame.image)
                if self._error is not None:
                    raise self._error
                if self.stats.frames % self.every == 0 and not self._busy.is_set():
                    owners, anns = self._snapshot(stream)
                    if anns and worker is not None:
                        self._busy.set()
                        self._jobs.put((owners, anns, frame.index, frame.pos_s))
                    elif anns:
                        self._classify(owners, anns, frame.index, frame.pos_s)
                views = []
                current = self.current  # one consistent dict (the worker replaces it whole)
                for k, i in sorted(enumerate(ids), key=lambda ki: ki[1]):  # in person order
                    pred = current.get(i)
                    views.append(PersonView(i + 1, people.keypoints[k], people.scores[k],
                                            None if pred is None else pred.describe(), pred))
                canvas = painter.paint(frame.image, views)
                if write is not None:
                    write(canvas)
                    self.stats.written += 1
                self.stats.frames += 1
                self.stats.dropped = source.dropped
                self.stats.seconds = time.monotonic() - t0
                if self.server is not None:
                    self.server.publish(canvas, self._state(frame.index, frame.pos_s, sorted(ids)))
                self.stats.latencies.append(time.monotonic() - frame.captured)
                if on_frame is not None:
                    on_frame(self.stats)
                if max_frames is not None and self.stats.frames >= max_frames:
                    break
        finally:
            if worker is not None:
                self._jobs.put(None)  # after the prediction in hand, if any
                worker.join()
            self.stats.seconds = time.monotonic() - t0
            self.stats.dropped = source.dropped
            if self.server is not None:
                self.server.end()
        return self.stats



class VideoSink(VideoFile):
    """Annotated frames -> a video file, through a temporary file renamed at the end.

    The file is kept, closed, checked and playable, when the stream ends, drops (:class:`StreamEnded`)
    or is interrupted (Ctrl-C, SIGTERM, SIGHUP) after at least one frame; any other error, or no frame
    at all, leaves nothing. Use as a context manager around the run.

    Args:
        path: Output video (the extension picks the container and codec).
        fps: Frame rate written in the file.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        super().__init__(path, fps, keep_on=(KeyboardInterrupt, StreamEnded))

    def empty_error(self) -> BaseException:
        return SourceError(f"no frame was processed; {self.path} not written")
