"""Annotated frames: each person's skeleton and label in their track colour, and a panel with each
person's current top-k. Used for the ``predict --out`` videos (a second decoding pass, so the first
pass keeps no frames) and for every frame of ``skelact live``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from skelact.data.tracking import Track
from skelact.progress import progress as progress_bar
from skelact.stream.timeline import NONE, Timeline
from skelact.viz.draw import draw_people_panel, draw_person_label, draw_skeletons, import_cv2, person_color
from skelact.viz.video import output_size

if TYPE_CHECKING:
    from skelact.inference import Prediction

__all__ = ["PersonView", "Painter", "track_views", "timeline_views", "write_overlay"]


@dataclass
class PersonView:
    """What is drawn of one subject on one frame.

    Attributes:
        person: Person number (track colour), or None for the scene (panel only).
        keypoint: [V, 2] pixels in the source frame, or None (not drawn).
        score: [V] joint scores, or None.
        label: Text written above the person (e.g. ``Prediction.describe()``), or None.
        current: The top-k listed in the panel, or None ("..." while nothing is known yet).
    """

    person: int | None
    keypoint: np.ndarray | None = None
    score: np.ndarray | None = None
    label: str | None = None
    current: Prediction | None = None


class Painter:
    """Draws :class:`PersonView` lists onto frames of one size.

    Args:
        frame_shape: (h, w) of the source frames.
        max_side: Longer side of the output (larger frames are downscaled, keypoints with them).
        topk: Classes per person in the panel.
        panel_width: Panel width (default: a third of the output height, at least 200, even).
        title: First line of the panel.
    """

    def __init__(self, frame_shape: tuple[int, int], max_side: int | None = 1280, topk: int = 3,
                 panel_width: int | None = None, title: str = "now") -> None:
        self.title = title
        self.h, self.w = int(frame_shape[0]), int(frame_shape[1])
        self.oh, self.ow = output_size(self.h, self.w, max_side)
        self.scale = np.array([self.ow / self.w, self.oh / self.h], np.float32)
        self.panel_width = (panel_width or max(200, self.oh // 3)) // 2 * 2
        self.topk = topk

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of painted frames, as a video writer takes it."""
        return self.ow + self.panel_width, self.oh

    def paint(self, image: np.ndarray, views: Sequence[PersonView]) -> np.ndarray:
        """A new uint8 [oh, ow + panel, 3] frame: ``image`` resized, skeletons, labels and the panel."""
        cv2 = import_cv2()
        if image.shape[:2] != (self.h, self.w):
            raise ValueError(f"frame is {image.shape[1]}x{image.shape[0]}, expected {self.w}x{self.h}")
        canvas = (cv2.resize(image, (self.ow, self.oh), interpolation=cv2.INTER_AREA)
                  if (self.oh, self.ow) != (self.h, self.w) else image.copy())
        drawn = [v for v in views if v.keypoint is not None and v.person is not None]
        if drawn:
            kp = np.stack([v.keypoint for v in drawn]) * self.scale  # [P, V, 2] output pixels
            sc = None if any(v.score is None for v in drawn) else np.stack([v.score for v in drawn])
            draw_skeletons(canvas, kp, sc, "coco17" if kp.shape[1] == 17 else None, inplace=True,
                           colors=[person_color(v.person) for v in drawn])
            boxes: list[tuple[int, int, int, int]] = []
            for k, v in enumerate(drawn):
                if v.label:
                    draw_person_label(canvas, kp[k], None if sc is None else sc[k], v.label, person_color(v.person),
                                      avoid=boxes)
        return draw_people_panel(canvas, [(v.person, v.current) for v in views], self.topk, self.panel_width,
                                 self.title)


ViewsAt = Callable[[int], list[PersonView]]


def _pose_at(track: Track, frame: int, m: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    f = frame - track.first
    if not 0 <= f < track.frames:
        return None
    return track.keypoint[m, f], track.score[m, f]


def track_views(tracks: Sequence[Track], predictions: dict[int, Prediction | None], note: str = "too short") -> ViewsAt:
    """Views for ``predict --per-person``: each person's whole-track prediction, on every frame they are in.

    Args:
        tracks: The people.
        predictions: ``person -> Prediction`` (None: not classified, labelled with ``note``).
        note: Label of a person without a prediction.
    """
    def views(frame: int) -> list[PersonView]:
        out = []
        for tr in tracks:
            pose = _pose_at(tr, frame)
            if pose is None:
                continue
            pred = predictions.get(tr.person)
            out.append(PersonView(tr.person, pose[0], pose[1], pred.describe() if pred is not None else note, pred))
        return out

    return views


def timeline_views(tracks: Sequence[Track], timeline: Timeline, is_unknown: Callable[[np.ndarray], bool],
                   topk: int = 3) -> ViewsAt:
    """Views for ``predict --window``: the label of the timeline row a frame is in (above the person) and
    the mean top-k of the windows covering it (in the panel).

    Args:
        tracks: The people drawn (all of them for a scene timeline).
        timeline: The timeline (per person, or one scene subject with person None).
        is_unknown: The model's unknown rule.
        topk: Classes in the panel.
    """
    # frame -> row for each subject: row index per frame, -1 where the subject has no row.
    row_of: dict[int | None, np.ndarray] = {}
    for p in timeline.people:
        idx = np.full(len(p.labels), -1, np.int64)
        for k, seg in enumerate(timeline.segments):
            if seg.person == p.person and seg.prediction is not None:
                idx[seg.start - p.first: seg.stop - p.first] = k
        row_of[p.person] = idx
    subjects = {p.person: p for p in timeline.people}

    def label_at(person: int | None, frame: int) -> str | None:
        p = subjects.get(person)
        if p is None or not 0 <= frame - p.first < len(p.labels) or p.labels[frame - p.first] == NONE:
            return None
        seg = timeline.segments[int(row_of[person][frame - p.first])]
        return seg.prediction.describe() if seg.prediction is not None else None

    def views(frame: int) -> list[PersonView]:
        out = []
        scene = subjects.get(None)
        if scene is not None:
            out.append(PersonView(None, current=scene.current(frame, timeline.classes, topk, is_unknown)))
        for tr in tracks:
            pose = _pose_at(tr, frame)
            if pose is None:
                continue
            p = subjects.get(tr.person)
            current = None if p is None else p.current(frame, timeline.classes, topk, is_unknown)
            out.append(PersonView(tr.person, pose[0], pose[1], label_at(tr.person, frame), current))
        return out

    return views


def write_overlay(out: str | Path, video: str | Path, views_at: ViewsAt, fps: float, frames: int | None = None,
                  progress: bool = True, title: str = "now") -> int:
    """Decode ``video`` again and write it annotated by ``views_at(frame)`` to ``out`` (temporary file, then rename).

    Args:
        out: Output video (.mp4, .webm, ...).
        video: The source video.
        views_at: Frame index -> what to draw.
        fps: Frame rate of the output.
        frames: Frames expected (progress bar only).
        progress: Show a progress bar.
        title: First line of the panel.

    Returns:
        Frames written.
    """
    from skelact.pose.video import VideoError, iter_frames
    from skelact.viz.video import VideoFile

    out = Path(out)
    written = 0
    painter: Painter | None = None
    with VideoFile(out, fps) as sink, \
            progress_bar(total=frames, unit="frame", desc=f"writing {out.name}", enabled=progress) as bar:
        for image in iter_frames(video):
            if painter is None:
                painter = Painter(image.shape[:2], title=title)
            sink.write(painter.paint(image, views_at(written)))
            written += 1
            bar.update()
        if written == 0:
            raise VideoError(f"{video}: no frame could be decoded")
    return written
